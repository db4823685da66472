"""N-way K-shot episodes from a dataset of image classes, and loading such a dataset into memory.

An episode (a task) draws N distinct classes, then K support and Q query images of each, all
different; the N classes get the labels 0..N-1 in the random order they were drawn, so a label
means a different class in every episode. A meta-batch of T episodes is one :class:`TaskBatch`
with (T, N·K, C, H, W) support and (T, N·Q, C, H, W) query images (class-major: the K images of
label 0 first), and (T, N·K) and (T, N·Q) labels.

**Rotated classes.** For Omniglot the paper (after Santoro et al. 2016) augments the classes with
rotations by multiples of 90°: with ``rotate_classes``, every character rotated by 0°, 90°, 180°
or 270° is a class of its own, so the sampler draws from four times as many classes and two
rotations of one character can meet in an episode as two classes. (The official code instead
draws the N characters and then one random rotation per character per episode, which never puts
two rotations of one character in the same episode.)

**Images** are loaded once, kept in memory as uint8 and turned into float in [0, 1] per
episode. ``load_class_images`` resizes with Lanczos (antialiased) filtering, as the official
``resize_images.py`` prepares Omniglot (PIL, 105x105 to 28x28). Omniglot characters are black
strokes on white; the official code feeds ``1 - image`` (``data_generator.py``: "invert"), so
strokes are 1 on a 0 background, and ``invert=True`` does the same; it is off by default, for
natural images such as MiniImagenet.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path

import torch

from fewgen_maml.tasks import TaskBatch

ROTATIONS = 4


def load_class_images(
    items: Iterable[tuple[Hashable, str | Path]],
    size: tuple[int, int] = (28, 28),
    channels: int = 1,
    invert: bool = False,
    on_error: Callable[[Path, str], None] | None = None,
) -> dict[Hashable, torch.Tensor]:
    """Read ``(class_key, image_path)`` pairs into one uint8 (n, C, H, W) tensor per class.

    ``size`` is (width, height). ``channels`` is 1 (grey) or 3 (RGB). An image that cannot be
    decoded raises, or is passed to ``on_error(path, reason)`` and left out when that is given.
    Images are stored in the order of their paths, not of ``items``, so the result does not
    depend on the order a folder was listed in.
    """
    import numpy as np
    from PIL import Image

    from fewgen.imageio import CorruptImage, open_image

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    mode = "L" if channels == 1 else "RGB"
    by_class: dict[Hashable, list[np.ndarray]] = {}
    for key, raw_path in sorted(items, key=lambda item: (str(item[0]), str(item[1]))):
        path = Path(raw_path)
        try:
            with open_image(path, "image") as image:  # the pixel limit and Pillow's errors, in one place
                resized = image.convert(mode).resize(size, Image.Resampling.LANCZOS)
        except CorruptImage as exc:
            if on_error is None:
                raise ValueError(f"cannot decode image {path}: {exc}") from None
            on_error(path, f"cannot decode image: {exc}")
            continue
        array = np.asarray(resized, dtype=np.uint8).reshape(size[1], size[0], channels)
        by_class.setdefault(key, []).append(255 - array if invert else array)
    return {
        key: torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous() for key, arrays in by_class.items()
    }


class EpisodeSampler:
    """Draws meta-batches of N-way K-shot episodes with Q query images per class.

    ``images`` maps each class key to its (n, C, H, W) images: uint8 (0-255) or float (kept as
    they are). Classes are ordered by ``str(key)``, so the same generator state draws the same
    episodes whatever the mapping's order.
    """

    def __init__(
        self,
        images: Mapping[Hashable, torch.Tensor],
        ways: int,
        shots: int,
        queries: int,
        rotate_classes: bool = False,
    ) -> None:
        if ways < 1 or shots < 1 or queries < 0:
            raise ValueError(f"need ways >= 1, shots >= 1 and queries >= 0, got {ways}, {shots}, {queries}")
        self.ways, self.shots, self.queries = ways, shots, queries
        self.rotate_classes = rotate_classes
        self.keys = sorted(images, key=str)
        if len(self.keys) == 0:
            raise ValueError("no classes to sample from")
        shapes = {tuple(images[key].shape[1:]) for key in self.keys}
        if len(shapes) != 1:
            raise ValueError(f"all images must have one shape (C, H, W), got {sorted(shapes)}")
        (shape,) = shapes
        if len(shape) != 3:
            raise ValueError(f"images must be (n, C, H, W) tensors, got per-image shape {shape}")
        if rotate_classes and shape[1] != shape[2]:
            raise ValueError(f"rotated classes need square images, got {shape[1]}x{shape[2]}")
        too_few = [str(key) for key in self.keys if images[key].shape[0] < shots + queries]
        if too_few:
            raise ValueError(
                f"{len(too_few)} classes have fewer than shots + queries = {shots + queries} images: "
                + ", ".join(too_few[:5])
                + (", ..." if len(too_few) > 5 else "")
            )
        if self.classes < ways:
            raise ValueError(f"{ways}-way episodes need {ways} classes, the dataset has {self.classes}")
        counts = [images[key].shape[0] for key in self.keys]
        self._pool = torch.cat([images[key] for key in self.keys])
        self._counts = counts
        self._offsets = [0]
        for count in counts[:-1]:
            self._offsets.append(self._offsets[-1] + count)

    @property
    def classes(self) -> int:
        """Number of classes episodes draw from (four per key with rotated classes)."""
        return len(self.keys) * (ROTATIONS if self.rotate_classes else 1)

    def class_of(self, index: int) -> tuple[Hashable, int]:
        """The (key, quarter turns) a class index stands for."""
        if self.rotate_classes:
            return self.keys[index // ROTATIONS], index % ROTATIONS
        return self.keys[index], 0

    def sample_classes(self, tasks: int, generator: torch.Generator) -> torch.Tensor:
        """(T, N) class indices, distinct within each episode, in label order."""
        return torch.stack([torch.randperm(self.classes, generator=generator)[: self.ways] for _ in range(tasks)])

    def sample_images(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` images drawn at random (with replacement) from every class, and their class indices.

        An ordinary classifier's mini-batch: each image of the pool is equally likely, and with
        ``rotate_classes`` it is turned by a random number of quarter turns, its class the
        rotated one (the indices :meth:`class_of` reads, as in the episodes).
        """
        index = torch.randint(len(self._pool), (count,), generator=generator)
        owner = torch.searchsorted(torch.tensor(self._offsets), index, right=True) - 1
        images = self._pool[index]
        images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if not self.rotate_classes:
            return images, owner
        turns = torch.randint(ROTATIONS, (count,), generator=generator)
        for quarter in range(1, ROTATIONS):
            chosen = turns == quarter
            if chosen.any():
                images[chosen] = torch.rot90(images[chosen], quarter, dims=(-2, -1))
        return images, owner * ROTATIONS + turns

    def sample(self, tasks: int, generator: torch.Generator) -> TaskBatch:
        return self.sample_with_classes(tasks, generator)[0]

    def sample_with_classes(self, tasks: int, generator: torch.Generator) -> tuple[TaskBatch, torch.Tensor]:
        """A meta-batch and its (T, N) class indices: episode label j of task t is class ``[t, j]``.

        The same draws as :meth:`sample`, so a classifier over all classes can be trained on
        exactly the episodes MAML sees (``classes.gather(1, batch.support_y)`` are the global labels).
        """
        classes = self.sample_classes(tasks, generator)
        per_class = self.shots + self.queries
        rotate = ROTATIONS if self.rotate_classes else 1
        keys, turns = classes // rotate, classes % rotate
        picks = torch.empty(tasks, self.ways, per_class, dtype=torch.long)
        for t in range(tasks):
            for j in range(self.ways):
                key = int(keys[t, j])
                order = torch.randperm(self._counts[key], generator=generator)[:per_class]
                picks[t, j] = self._offsets[key] + order
        images = self._pool[picks]  # (T, N, K+Q, C, H, W)
        images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        for quarter in range(1, rotate):
            chosen = turns == quarter
            if chosen.any():
                images[chosen] = torch.rot90(images[chosen], quarter, dims=(-2, -1))
        labels = torch.arange(self.ways).repeat_interleave(per_class).reshape(self.ways, per_class)
        labels = labels.expand(tasks, -1, -1)
        shape = images.shape[3:]
        batch = TaskBatch(
            support_x=images[:, :, : self.shots].reshape(tasks, -1, *shape),
            support_y=labels[:, :, : self.shots].reshape(tasks, -1),
            query_x=images[:, :, self.shots :].reshape(tasks, -1, *shape),
            query_y=labels[:, :, self.shots :].reshape(tasks, -1),
        )
        return batch, classes
