"""Model-agnostic meta-learning (Finn, Abbeel and Levine, ICML 2017), with torch.func.

One meta-batch is one batched computation: the per-task inner loop (adapt on the support set,
measure on the query set) is written for a single task with ``torch.func.functional_call`` and
``torch.func.grad`` and mapped over the tasks with ``torch.func.vmap``; the meta-gradient is
ordinary autograd through all of it. Parameters start unbatched (the meta-parameters, shared by
every task) and become per-task tensors at the first inner update, so the conv layers of the
adapted models run as one batched (grouped) convolution, not a Python loop over tasks.

**Second and first order.** ``torch.func.grad`` inside the map is itself differentiable by the
outer autograd, so the meta-gradient flows through the inner gradients (second order, the
paper's MAML). ``first_order=True`` detaches the inner gradients (the official ``stop_grad``
flag): theta' = theta - alpha * stopgrad(grad L), whose Jacobian with respect to theta is the
identity.

**Batch norm** normalises every forward pass with its own batch statistics, per task, at
meta-training and at evaluation, as the official code does (see :mod:`fewgen_maml.backbones`).
Under ``vmap`` each task is its own batch, so the statistics are computed per task with no extra
code. Batch-norm scales and shifts are meta-learned but not adapted in the inner loop, as in
the official code and MAML++ (the official author reports that adapting them made no difference
on Omniglot or MiniImagenet, cbfinn/maml issue #43).

**Loss scale, so the paper's step sizes and clipping threshold mean the same thing.** The
official classification loss (``utils.xent``) is every example's softmax cross-entropy divided by
K, the shots per class, summed over the examples (``tf.gradients`` of the vector on the support
set, ``tf.reduce_sum`` over the query sets of the meta-batch, divided by the number of tasks): on
a support set of N*K examples that is N times the mean cross-entropy, on a query set of N*Q
examples N*Q/K times the mean. ``cross_entropy_scale="shots"`` (the default) computes exactly that
on both sets, so the paper's alpha = 0.4 (5-way Omniglot) and 0.1 (20-way), both a step of 2.0 on
the mean, carry over, and the MiniImagenet meta-gradients that the official code clips to
[-10, 10] (15 queries per class: 75/K times the mean cross-entropy per task) are the ones clipped
here. ``"mean"`` is MAML++'s scale: the mean cross-entropy on both sets, averaged over the tasks,
which needs alpha multiplied by N for the paper's step and is the scale MAML++ clamps at 10.
Regression uses the mean squared error over the points, as the official ``utils.mse`` does
(``tf.reduce_mean``), so the paper's sinusoid alpha = 0.01 carries over too.

**Gradient clipping** (``grad_clip``) clamps every element of the network's meta-gradient to
[-c, c] after the backward pass and before the meta-optimiser's step, as both official codes do
(``tf.clip_by_value`` in cbfinn/maml, ``grad.clamp_`` in MAML++, on MiniImagenet only); as in
MAML++, the learned inner learning rates are not clamped.

**Derivative-order annealing** (MAML++ "DA"): the first ``first_order_until`` meta-updates are
first order, the rest second order (``first_order`` makes all of them first order). MAML++ counts
in epochs and is second order once ``epoch > first_order_to_second_order_epoch``, so its setting
E is ``first_order_until = (E + 1) * iterations_per_epoch`` here.

**MAML++ switches** (Antoniou, Edwards and Storkey, *How to train your MAML*, ICLR 2019), all off
by default: the multi-step loss (a weighted sum of the query losses after every inner step,
annealed towards the last step and then the last step only), learned per-layer per-step inner
learning rates (LSLR), per-step batch-norm weights and running statistics (the network must be
built with ``bn_steps = inner_steps + 1``), and a cosine-annealed meta learning rate. With more
inner steps at test time than at training, the learned rates and the batch-norm sets of the
last training step are reused for the extra steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from fewgen_maml.backbones import NormMode, StatisticsSink, TaskBatchNorm
from fewgen_maml.tasks import TaskBatch

CHECKPOINT_FORMAT = 2  # 2: the query loss on the official scale, first_order_until
# Fields a checkpoint may disagree on: they change how a model is evaluated, not what it learned.
EVALUATION_FIELDS = frozenset({"test_inner_steps", "bn_eval_statistics"})

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class MAMLConfig:
    """Everything that defines a MAML run; ``PAPER_SETTINGS`` has the paper's values."""

    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    inner_lr: float = 0.01  # alpha, the inner step size
    inner_steps: int = 1  # inner updates per task at meta-training
    test_inner_steps: int = 10  # inner updates per task at evaluation
    meta_batch_size: int = 4  # tasks per meta-update (for the sampler that feeds meta_step)
    meta_lr: float = 1e-3  # beta, the meta step size
    meta_optimizer: Literal["adam", "sgd"] = "adam"
    first_order: bool = False
    first_order_until: int = 0  # MAML++'s derivative-order annealing: this many first-order meta-updates first
    cross_entropy_scale: Literal["shots", "mean"] = "shots"  # sum of cross-entropies / K (official), or the mean
    grad_clip: float | None = None  # clamp every meta-gradient element to [-c, c]; the official MiniImagenet uses 10
    # MAML++
    multi_step_loss: bool = False
    multi_step_loss_anneal: int = 5000  # meta-updates until only the last step's loss counts (MAML++: 10 epochs of 500)
    learn_inner_lr: bool = False
    per_step_bn: bool = False
    bn_eval_statistics: Literal["batch", "running"] = "batch"
    cosine_meta_lr: bool = False
    cosine_steps: int = 0  # meta-updates over which the meta learning rate falls to min_meta_lr
    min_meta_lr: float = 1e-5

    @property
    def bn_steps(self) -> int:
        """Sets of batch-norm weights the network needs: one per inner step and the query, or one."""
        return self.inner_steps + 1 if self.per_step_bn else 1

    def __post_init__(self) -> None:
        problems = []
        if self.loss not in ("cross_entropy", "mse"):
            problems.append(f"loss must be 'cross_entropy' or 'mse', got {self.loss!r}")
        if self.inner_steps < 1:
            problems.append(f"inner_steps must be at least 1, got {self.inner_steps}")
        if self.test_inner_steps < 0:
            problems.append(f"test_inner_steps must be at least 0, got {self.test_inner_steps}")
        if self.meta_batch_size < 1:
            problems.append(f"meta_batch_size must be at least 1, got {self.meta_batch_size}")
        if self.meta_lr <= 0:
            problems.append(f"meta_lr must be positive, got {self.meta_lr}")
        if self.meta_optimizer not in ("adam", "sgd"):
            problems.append(f"meta_optimizer must be 'adam' or 'sgd', got {self.meta_optimizer!r}")
        if self.first_order_until < 0:
            problems.append(f"first_order_until must be at least 0, got {self.first_order_until}")
        if self.cross_entropy_scale not in ("shots", "mean"):
            problems.append(f"cross_entropy_scale must be 'shots' or 'mean', got {self.cross_entropy_scale!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            problems.append(f"grad_clip must be positive, got {self.grad_clip}")
        if self.multi_step_loss and self.multi_step_loss_anneal < 1:
            problems.append(f"multi_step_loss_anneal must be at least 1, got {self.multi_step_loss_anneal}")
        if self.bn_eval_statistics not in ("batch", "running"):
            problems.append(f"bn_eval_statistics must be 'batch' or 'running', got {self.bn_eval_statistics!r}")
        if self.bn_eval_statistics == "running" and not self.per_step_bn:
            problems.append("bn_eval_statistics='running' needs per_step_bn: only per-step batch norm keeps them")
        if self.cosine_meta_lr and self.cosine_steps < 1:
            problems.append("cosine_meta_lr needs cosine_steps, the number of meta-updates to anneal over")
        if problems:
            raise ValueError("; ".join(problems))


# Finn et al. 2017, appendix A.1, with the official code where the paper is silent (meta-batch size of
# the sinusoid, meta learning rates, gradient clipping on MiniImagenet). The paper trains for 60000
# meta-updates (70000 for the sinusoid in the official README).
PAPER_SETTINGS: dict[str, MAMLConfig] = {
    "sinusoid": MAMLConfig(loss="mse", inner_lr=0.01, inner_steps=1, test_inner_steps=10, meta_batch_size=25),
    "omniglot-5way": MAMLConfig(inner_lr=0.4, inner_steps=1, test_inner_steps=3, meta_batch_size=32),
    "omniglot-20way": MAMLConfig(inner_lr=0.1, inner_steps=5, test_inner_steps=5, meta_batch_size=16),
    "miniimagenet-1shot": MAMLConfig(
        inner_lr=0.01, inner_steps=5, test_inner_steps=10, meta_batch_size=4, grad_clip=10.0
    ),
    "miniimagenet-5shot": MAMLConfig(
        inner_lr=0.01, inner_steps=5, test_inner_steps=10, meta_batch_size=2, grad_clip=10.0
    ),
}


def multi_step_loss_weights(steps: int, progress: float) -> list[float]:
    """MAML++'s weights of the query losses after inner steps 1..``steps``.

    Uniform at ``progress`` 0; the earlier steps' weights fall linearly to a floor of 0.03/steps
    at ``progress`` 1 and the last step takes up the rest, so the weights always sum to 1.
    """
    progress = min(max(progress, 0.0), 1.0)
    floor = 0.03 / steps
    earlier = max((1.0 - progress) / steps, floor)
    last = min(1.0 / steps + (steps - 1) / steps * progress, 1.0 - (steps - 1) * floor)
    return [earlier] * (steps - 1) + [last]


class MAML:
    """A model, its meta-optimiser and the MAML procedure around them.

    The model takes ``forward(x, norm)`` with a :class:`fewgen_maml.backbones.NormMode` (all the
    backbones in :mod:`fewgen_maml.backbones` do) and maps a batch of one task's inputs to outputs.
    ``meta_step`` and ``evaluate`` take a :class:`TaskBatch`; ``adapt`` and ``predict`` expose the
    inner loop for callers that only want to adapt to support sets and predict. Move the model to
    its device before building this: the meta-optimiser and learned rates are made for it there.
    """

    def __init__(self, model: nn.Module, config: MAMLConfig) -> None:
        self.model = model
        self.config = config
        self.norm_layers = [m for m in model.modules() if isinstance(m, TaskBatchNorm)]
        self._check_norm_layers()
        norm_params = {id(p) for layer in self.norm_layers for p in layer.parameters()}
        # Everything but batch-norm scales and shifts is adapted in the inner loop.
        self.adapted_names = [name for name, p in model.named_parameters() if id(p) not in norm_params]
        if not self.adapted_names:
            raise ValueError("the model has no parameters to adapt")
        self.inner_lrs: nn.Parameter | None = None
        if config.learn_inner_lr:
            device = next(model.parameters()).device
            self.inner_lrs = nn.Parameter(
                torch.full((len(self.adapted_names), config.inner_steps), config.inner_lr, device=device)
            )
        parameters = self.meta_parameters()
        if config.meta_optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(parameters, lr=config.meta_lr)
        else:
            self.optimizer = torch.optim.SGD(parameters, lr=config.meta_lr)
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        if config.cosine_meta_lr:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=config.cosine_steps, eta_min=config.min_meta_lr
            )
        self.meta_steps = 0  # meta-updates done

    def _check_norm_layers(self) -> None:
        wanted = self.config.bn_steps
        wrong = sorted({layer.steps for layer in self.norm_layers} - {wanted})
        if wrong:
            build = f"bn_steps={wanted} (inner_steps + 1)" if self.config.per_step_bn else "bn_steps=1"
            raise ValueError(f"the model's batch norm has {wrong} sets of weights; build it with {build}")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def meta_parameters(self) -> list[nn.Parameter]:
        """Everything the meta-optimiser updates: the model, and the inner learning rates when learned."""
        params = list(self.model.parameters())
        return params if self.inner_lrs is None else [*params, self.inner_lrs]

    def initial_params(self) -> Params:
        """The meta-learned initialisation of the adapted parameters (live: gradients reach the model)."""
        named = dict(self.model.named_parameters())
        return {name: named[name] for name in self.adapted_names}

    # The single-task functions below run inside vmap: one task's tensors, no task dimension.

    def _forward(self, params: Params, x: torch.Tensor, norm: NormMode) -> torch.Tensor:
        return functional_call(self.model, params, (x,), {"norm": norm})

    def _loss(self, output: torch.Tensor, target: torch.Tensor, support_size: int) -> torch.Tensor:
        """The loss on one set of one task whose support set has ``support_size`` examples."""
        if self.config.loss == "mse":
            return F.mse_loss(output, target)
        if self.config.cross_entropy_scale == "mean":
            return F.cross_entropy(output, target)
        # The sum over the set divided by K = support_size / N (balanced episodes, N = the head's outputs).
        return F.cross_entropy(output, target, reduction="sum") * output.shape[-1] / support_size

    def _inner_lr(self, index: int, step: int) -> torch.Tensor | float:
        if self.inner_lrs is None:
            return self.config.inner_lr
        return self.inner_lrs[index, min(step, self.config.inner_steps - 1)]

    def _inner_step(
        self,
        params: Params,
        x: torch.Tensor,
        y: torch.Tensor,
        step: int,
        first_order: bool,
        use_running: bool,
        sink: dict[int, StatisticsSink] | None,
    ) -> tuple[Params, torch.Tensor]:
        """One gradient step on the support set: the updated parameters and the loss before it."""

        def support_loss(p: Params) -> tuple[torch.Tensor, tuple[torch.Tensor, StatisticsSink]]:
            norm = NormMode(step, use_running, [] if sink is not None else None)
            loss = self._loss(self._forward(p, x, norm), y, x.shape[0])
            return loss, (loss.detach(), norm.sink or [])

        grads, (loss, statistics) = grad(support_loss, has_aux=True)(params)
        if sink is not None:
            sink[step] = statistics
        updated = {}
        for index, (name, value) in enumerate(params.items()):
            g = grads[name].detach() if first_order else grads[name]
            updated[name] = value - self._inner_lr(index, step) * g
        return updated, loss

    def _query(
        self,
        params: Params,
        x: torch.Tensor,
        y: torch.Tensor,
        support_size: int,
        step: int,
        use_running: bool,
        sink: StatisticsSink | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and output on the query set with the parameters after ``step`` inner updates."""
        output = self._forward(params, x, NormMode(step, use_running, sink))
        return self._loss(output, y, support_size), output

    def _accuracy(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (output.argmax(-1) == target).float().mean()

    def _step_weights(self) -> list[float] | None:
        config = self.config
        if not config.multi_step_loss or self.meta_steps >= config.multi_step_loss_anneal:
            return None  # only the last step's query loss
        return multi_step_loss_weights(config.inner_steps, self.meta_steps / config.multi_step_loss_anneal)

    def first_order_now(self) -> bool:
        """Whether the next meta-update is first order (always with ``first_order``; during annealing)."""
        return self.config.first_order or self.meta_steps < self.config.first_order_until

    def meta_step(self, batch: TaskBatch) -> dict[str, float]:
        """One meta-update on a batch of tasks; returns the batch's mean losses (and accuracy).

        ``support_loss`` is before adaptation, ``query_loss`` and ``query_accuracy`` after the last
        inner step, ``objective`` what was minimised (with the multi-step loss, its weighted sum).
        """
        config = self.config
        batch = batch.to(self.device)
        self.model.train()
        steps = config.inner_steps
        weights = self._step_weights()
        collect = config.per_step_bn
        first_order = self.first_order_now()
        initial = self.initial_params()

        def task(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor) -> tuple[Any, ...]:
            sink: dict[int, StatisticsSink] | None = {} if collect else None
            params = initial
            objective = sx.new_zeros(())
            first_support_loss = sx.new_zeros(())
            for step in range(steps):
                params, support_loss = self._inner_step(params, sx, sy, step, first_order, False, sink)
                if step == 0:
                    first_support_loss = support_loss
                if weights is not None and step < steps - 1:
                    query = self._query(params, qx, qy, sx.shape[0], step + 1, False, None)
                    objective = objective + weights[step] * query[0]
            final_sink: StatisticsSink | None = [] if collect else None
            query_loss, output = self._query(params, qx, qy, sx.shape[0], steps, False, final_sink)
            objective = objective + (weights[-1] if weights is not None else 1.0) * query_loss
            if sink is not None and final_sink is not None:
                sink[steps] = final_sink
            metrics = {
                "objective": objective.detach(),
                "support_loss": first_support_loss,
                "query_loss": query_loss.detach(),
            }
            if config.loss == "cross_entropy":
                metrics["query_accuracy"] = self._accuracy(output, qy)
            return objective, metrics, sink or {}

        objectives, metrics, statistics = vmap(task)(batch.support_x, batch.support_y, batch.query_x, batch.query_y)
        self.optimizer.zero_grad(set_to_none=True)
        objectives.mean().backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), config.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self._update_running_statistics(statistics)
        self.meta_steps += 1
        return {name: value.mean().item() for name, value in metrics.items()}

    def _update_running_statistics(self, statistics: dict[int, StatisticsSink]) -> None:
        for step, per_layer in statistics.items():
            if len(per_layer) != len(self.norm_layers):
                raise RuntimeError(
                    f"{len(per_layer)} batch-norm calls in one forward pass for {len(self.norm_layers)} layers: "
                    "per-step statistics need each TaskBatchNorm called once per forward"
                )
            for layer, (mean, var) in zip(self.norm_layers, per_layer, strict=True):
                layer.update_running(step, mean.mean(0), var.mean(0))

    @torch.no_grad()
    def evaluate(
        self, batch: TaskBatch, steps: int | None = None, chunk_size: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Adapt to each task's support set and measure on its query set, changing nothing.

        Returns (T, steps + 1) tensors on the CPU: ``query_loss`` (and ``query_accuracy`` for
        classification) after 0, 1, ..., ``steps`` inner updates (default ``test_inner_steps``).
        ``chunk_size`` tasks at a time are computed together (default: all), which bounds the
        memory and changes no result: every task is normalised and adapted on its own.
        """
        steps = self.config.test_inner_steps if steps is None else steps
        batch = batch.to(self.device)
        self.model.eval()
        use_running = self.config.bn_eval_statistics == "running"
        initial = {name: p.detach() for name, p in self.initial_params().items()}

        def task(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor) -> dict[str, torch.Tensor]:
            params = initial
            losses, accuracies = [], []
            for step in range(steps + 1):
                if step > 0:
                    params = self._inner_step(params, sx, sy, step - 1, True, use_running, None)[0]
                loss, output = self._query(params, qx, qy, sx.shape[0], step, use_running, None)
                losses.append(loss)
                if self.config.loss == "cross_entropy":
                    accuracies.append(self._accuracy(output, qy))
            result = {"query_loss": torch.stack(losses)}
            if accuracies:
                result["query_accuracy"] = torch.stack(accuracies)
            return result

        result = vmap(task, chunk_size=chunk_size)(batch.support_x, batch.support_y, batch.query_x, batch.query_y)
        return {name: value.cpu() for name, value in result.items()}

    def adapt(
        self,
        params: Params | None,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        steps: int | None = None,
        *,
        create_graph: bool = False,
        chunk_size: int | None = None,
    ) -> Params:
        """The parameters after ``steps`` inner updates (default ``test_inner_steps``) on each task.

        ``support_x`` and ``support_y`` have a leading task dimension T; so does every returned
        tensor. ``params`` is the starting point (``None``: the meta-learned initialisation).
        Without ``create_graph`` the result is detached from the meta-parameters, and batch norm
        normalises as in :meth:`evaluate`; with it, as in :meth:`meta_step`. ``chunk_size`` as in
        :meth:`evaluate`.
        """
        steps = self.config.test_inner_steps if steps is None else steps
        start = self.initial_params() if params is None else params
        if not create_graph:
            start = {name: value.detach() for name, value in start.items()}
        use_running = not create_graph and self.config.bn_eval_statistics == "running"

        def task(sx: torch.Tensor, sy: torch.Tensor) -> Params:
            adapted = start
            for step in range(steps):
                adapted = self._inner_step(adapted, sx, sy, step, not create_graph, use_running, None)[0]
            return adapted

        return vmap(task, chunk_size=chunk_size)(support_x.to(self.device), support_y.to(self.device))

    def predict(
        self,
        params: Params,
        x: torch.Tensor,
        step: int,
        *,
        use_running: bool | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """Outputs of each task's adapted model on its inputs ``x`` (T, examples, ...).

        ``step`` is the number of inner updates ``params`` had (it picks per-step batch norm).
        ``use_running`` defaults to the configured evaluation statistics; ``chunk_size`` as in
        :meth:`evaluate`.
        """
        if use_running is None:
            use_running = self.config.bn_eval_statistics == "running"

        def task(p: Params, inputs: torch.Tensor) -> torch.Tensor:
            return self._forward(p, inputs, NormMode(step, use_running))

        return vmap(task, chunk_size=chunk_size)(params, x.to(self.device))

    # Checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue meta-training: plain tensors and Python values only."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(self.config),
            "model": self.model.state_dict(),
            "inner_lrs": None if self.inner_lrs is None else self.inner_lrs.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "meta_steps": self.meta_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"unknown MAML checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        mine = asdict(self.config)
        theirs = state["config"]
        differing = sorted(
            name for name in mine if name not in EVALUATION_FIELDS and theirs.get(name, mine[name]) != mine[name]
        )
        if differing:
            details = ", ".join(f"{name}: {theirs[name]!r} saved, {mine[name]!r} now" for name in differing)
            raise ValueError(f"the checkpoint was made with a different MAML configuration ({details})")
        self.model.load_state_dict(state["model"])
        if self.inner_lrs is not None:
            with torch.no_grad():
                self.inner_lrs.copy_(state["inner_lrs"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.meta_steps = int(state["meta_steps"])

    def checkpoint_identity(self) -> dict[str, Any]:
        """What a checkpoint must share to be resumed: the state's format and every training setting
        (evaluation-only settings may differ: they change how a model is scored, not what it learned)."""
        config = {name: value for name, value in asdict(self.config).items() if name not in EVALUATION_FIELDS}
        return {"format": CHECKPOINT_FORMAT, "config": config}


def config_from_dict(values: dict[str, Any]) -> MAMLConfig:
    """A :class:`MAMLConfig` from a checkpoint's ``config`` (unknown keys are an error)."""
    known = {f.name for f in fields(MAMLConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown MAML configuration keys: {', '.join(unknown)}")
    return MAMLConfig(**values)
