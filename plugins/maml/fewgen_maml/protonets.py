"""Prototypical Networks (Snell, Swersky and Zemel, *Prototypical Networks for Few-shot Learning*,
NeurIPS 2017) on the body of MAML's conv-4.

The embedding is what MAML's network feeds its classification head
(:meth:`fewgen_maml.backbones.ConvNet.features`: the last feature map averaged over space for the
Omniglot network, flattened for the MiniImagenet one); the head itself is never used. A class's
prototype is the mean embedding of its support examples, and a query is classified by a softmax
over the negative squared Euclidean distances to the prototypes (the paper's choice of distance,
section 2.3). Nothing is adapted at test time: the support set only places the prototypes.

Training is episodic, on N-way K-shot episodes with Q queries per class, minimising the query
cross-entropy with Adam at 1e-3, halved every 2000 updates as in the paper (which takes one
episode per update and halves every 2000 episodes; an update here averages over a meta-batch of
episodes, as MAML's meta-update does, so the two methods take the same gradient steps on the same
episodes).

**Batch norm** is MAML's (:mod:`fewgen_maml.backbones`): every forward pass normalises with the
statistics of the batch it is given, per episode, at training and at test, and the support set and
the query set are separate passes, as MAML's adaptation (support set) and prediction (query set)
are. The paper's code normalises support and query together while training and uses running
averages at test; here all the compared methods share one treatment, so only the method differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch.func import vmap

from fewgen_maml.backbones import ConvNet
from fewgen_maml.tasks import TaskBatch


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """(N, D) mean of the (S, D) support ``embeddings`` of each label 0..N-1."""
    # A comparison rather than F.one_hot, which checks its input's values and so cannot run under vmap.
    members = (labels[:, None] == torch.arange(ways, device=labels.device)).to(embeddings.dtype)  # (S, N)
    return members.T @ embeddings / members.sum(0)[:, None]


def squared_distances(queries: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(Q, N) squared Euclidean distance from each of the (Q, D) ``queries`` to each (N, D) centre."""
    return (queries[:, None, :] - centres[None, :, :]).pow(2).sum(-1)


def episode_ways(batch: TaskBatch) -> int:
    """N of a batch of episodes: their labels are 0..N-1 and every label has support examples."""
    return int(batch.support_y.max()) + 1


@dataclass(frozen=True)
class ProtoConfig:
    """The paper's optimiser: Adam at ``lr``, halved every ``lr_halving`` updates (``None``: never)."""

    lr: float = 1e-3
    lr_halving: int | None = 2000

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.lr_halving is not None and self.lr_halving < 1:
            raise ValueError(f"lr_halving must be at least 1 or None, got {self.lr_halving}")


class PrototypicalNetwork:
    """A conv-4 body used as an embedding, its optimiser, and the episodic training and scoring.

    Move ``model`` to its device before building this. Only the body is optimised.
    """

    def __init__(self, model: ConvNet, config: ProtoConfig | None = None) -> None:
        self.model = model
        self.config = config or ProtoConfig()
        body = [p for name, p in model.named_parameters() if not name.startswith("head.")]
        self.optimizer = torch.optim.Adam(body, lr=self.config.lr)
        self.scheduler = (
            None
            if self.config.lr_halving is None
            else torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=self.config.lr_halving, gamma=0.5)
        )
        self.updates = 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def episode_logits(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, ways: int
    ) -> torch.Tensor:
        """(Q, N) logits of one episode's queries: minus their squared distances to the prototypes."""
        centres = prototypes(self.model.features(support_x), support_y, ways)
        return -squared_distances(self.model.features(query_x), centres)

    def _episode(
        self, sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor, ways: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.episode_logits(sx, sy, qx, ways)
        return F.cross_entropy(logits, qy), (logits.argmax(-1) == qy).float().mean()

    def train_step(self, batch: TaskBatch) -> dict[str, float]:
        """One update on the mean query cross-entropy of the batch's episodes."""
        batch = batch.to(self.device)
        self.model.train()
        task = partial(self._episode, ways=episode_ways(batch))
        losses, accuracies = vmap(task)(batch.support_x, batch.support_y, batch.query_x, batch.query_y)
        self.optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.updates += 1
        return {"loss": losses.mean().item(), "query_accuracy": accuracies.mean().item()}

    @torch.no_grad()
    def evaluate(self, batch: TaskBatch, chunk_size: int | None = None) -> torch.Tensor:
        """(T,) query accuracy of each episode, on the CPU; ``chunk_size`` episodes at a time."""
        batch = batch.to(self.device)
        self.model.eval()
        task = partial(self._episode, ways=episode_ways(batch))
        _, accuracies = vmap(task, chunk_size=chunk_size)(
            batch.support_x, batch.support_y, batch.query_x, batch.query_y
        )
        return accuracies.cpu()
