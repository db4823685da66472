"""The ``maml_adapter`` step: meta-train on the base classes, adapt to the new ones from K examples, label.

The step meta-trains MAML with N-way episodes of the dataset's base classes, N being the number
of novel classes; then takes K labelled examples of each novel class (the support set: from the
``train`` split when it has enough, drawn by the step seed), adapts once, and labels every other
example of a novel class and every unlabelled example with the adapted model. Each labelled
sample gets ``attributes[<step>]``: the predicted class and its softmax confidence (``boxes``: a
list with one entry per box crop), the true class when known, and whether it was a support
example. The step's metrics are the accuracy of those labels where the truth is known, per class
and overall with a 95 % CI, and the confusion matrix.

**Batch statistics when labelling.** The paper's network normalises with the statistics of the
batch it is given (transductive: a query's output depends on the other queries). For labelling an
arbitrary, unbalanced set of examples that would let one example change another's label, so each
example is classified in a batch of the support set plus itself: the statistics are the support
set's, nudged by the one example, and no example sees another.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from fewgen.api import Evaluator, StepContext
from fewgen.dataset import Dataset
from fewgen.errors import UsageError
from fewgen_maml.evaluator import training_bar
from fewgen_maml.params import FewShotParams


class AdapterParams(FewShotParams):
    support_split: str = Field("train", description="Split the K support examples are drawn from first.")
    chunk: int = Field(64, ge=1, description="Examples labelled per batched forward pass (memory bound only).")


class MamlAdapter(Evaluator):
    name = "maml_adapter"
    description = (
        "Few-shot adapter: MAML meta-trained on the base classes adapts to the novel classes from K labelled "
        "examples each and writes the predicted class and confidence into every other sample (or box crop)."
    )
    Params = AdapterParams

    def evaluate(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        import torch

        from fewgen_maml.episodes import EpisodeSampler
        from fewgen_maml.fewshot import build_backbone, meta_train_for
        from fewgen_maml.maml import MAML
        from fewgen_maml.stats import summary

        p: AdapterParams = self.params
        ctx.seed_torch()
        classes = p.load_classes(dataset, ctx)
        ways = len(classes.novel)
        if ways < 2:
            raise UsageError(f"step {ctx.step!r}: adapting needs at least 2 novel classes, got {classes.novel}")
        support = choose_support(classes.examples, classes.novel, p.shots, p.support_split, ctx.rng(1))
        short = [name for name in classes.novel if len(support[name]) < p.shots]
        if short:
            raise UsageError(f"step {ctx.step!r}: fewer than {p.shots} examples of novel class(es) {', '.join(short)}")

        config = p.maml_config()
        try:
            sampler = EpisodeSampler(classes.images_of(classes.base), ways, p.shots, p.queries, p.rotate_classes)
        except ValueError as exc:
            raise UsageError(f"step {ctx.step!r}: base classes: {exc}") from None
        model = build_backbone(p.backbone, ways, p.channels, p.size, config.bn_steps).to(ctx.device)
        maml = MAML(model, config)
        ctx.note(f"meta-training on {sampler.classes} base classes, {ways}-way {p.shots}-shot")
        with training_bar(ctx) as on_progress:
            trained = meta_train_for(
                maml,
                sampler,
                torch.Generator().manual_seed(ctx.seed),
                p.meta_steps,
                p.minutes,
                ctx.scratch_dir / "maml.pt" if ctx.scratch_dir is not None else None,
                on_progress=on_progress,
            )

        # Support set in label order: class i of classes.novel has label i.
        support_positions = [pos for name in classes.novel for pos in support[name]]
        support_x = classes.images[support_positions].float() / 255.0
        support_y = torch.arange(ways).repeat_interleave(p.shots)
        adapted = maml.adapt(None, support_x[None], support_y[None])
        chosen = set(support_positions)
        novel = set(classes.novel)
        targets = [
            i
            for i, e in enumerate(classes.examples)
            if i not in chosen and (e.class_name in novel or e.class_name is None)
        ]
        ctx.note(f"labelling {len(targets)} examples")
        probabilities = label_examples(
            maml, adapted, support_x, classes.images, targets, config.test_inner_steps, ways, p.chunk
        )

        correct: dict[str, list[float]] = {name: [] for name in classes.novel}
        confusion = [[0] * ways for _ in range(ways)]
        labels: dict[str, list[dict[str, Any]] | dict[str, Any]] = {}
        for row, position in enumerate(targets):
            example = classes.examples[position]
            confidence, predicted = probabilities[row].max(0)
            entry = {
                "class": classes.novel[int(predicted)],
                "confidence": round(float(confidence), 4),
                "truth": example.class_name,
                "support": False,
            }
            if example.class_name is not None:
                truth = classes.novel.index(example.class_name)
                correct[example.class_name].append(float(truth == int(predicted)))
                confusion[truth][int(predicted)] += 1
            add_label(labels, example, entry)
        for position in support_positions:
            example = classes.examples[position]
            add_label(labels, example, {"class": example.class_name, "truth": example.class_name, "support": True})
        for sample_id, values in labels.items():
            if isinstance(values, list):
                values = {"boxes": sorted(values, key=lambda entry: entry["box"])}
            ctx.annotate(sample_id, values)

        scored = [v for values in correct.values() for v in values]
        metrics: dict[str, Any] = {
            "ways": ways,
            "shots": p.shots,
            "novel_classes": classes.novel,
            "base_classes": len(classes.base),
            "labelled": len(targets),
            "accuracy": summary(scored) if scored else None,
            "chance": round(1.0 / ways, 4),
            "per_class": {
                name: {"examples": len(values), "accuracy": round(sum(values) / len(values), 4) if values else None}
                for name, values in correct.items()
            },
            "confusion": confusion,
            "support": {name: [classes.examples[i].sample_id for i in support[name]] for name in classes.novel},
            **trained,
        }
        torch.save(maml.model.state_dict(), ctx.work_dir / "model.pt")
        (ctx.work_dir / "report.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        return metrics


def choose_support(examples: list[Any], novel: list[str], shots: int, split: str, rng: Any) -> dict[str, list[int]]:
    """K example positions per novel class: from ``split`` first, then any split, drawn at random."""
    chosen: dict[str, list[int]] = {}
    for name in novel:
        preferred = [i for i, e in enumerate(examples) if e.class_name == name and e.split == split]
        others = [i for i, e in enumerate(examples) if e.class_name == name and e.split != split]
        picks = [int(i) for i in rng.permutation(preferred)][:shots]
        if len(picks) < shots:
            picks += [int(i) for i in rng.permutation(others)][: shots - len(picks)]
        chosen[name] = sorted(picks)
    return chosen


def label_examples(
    maml: Any, adapted: Any, support_x: Any, images: Any, targets: list[int], steps: int, ways: int, chunk: int
) -> Any:
    """Class probabilities (len(targets), ways) of each target, each in a batch of the support set and itself."""
    import torch

    rows = []
    with torch.no_grad():
        for start in range(0, len(targets), chunk):
            part = images[targets[start : start + chunk]].float() / 255.0
            count = part.shape[0]
            batch = torch.cat([support_x[None].expand(count, *support_x.shape), part[:, None]], dim=1)
            params = {name: value.expand(count, *value.shape[1:]) for name, value in adapted.items()}
            logits = maml.predict(params, batch, steps)[:, -1]
            rows.append(logits.softmax(-1).cpu())
    return torch.cat(rows) if rows else torch.empty(0, ways)


def add_label(labels: dict[str, Any], example: Any, entry: dict[str, Any]) -> None:
    """Box crops collect a list per sample (with the box's index); whole images and mask crops one entry."""
    if example.box_index is None:
        labels[example.sample_id] = entry
    else:
        labels.setdefault(example.sample_id, []).append({"box": example.box_index, **entry})
