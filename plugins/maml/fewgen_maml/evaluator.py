"""The ``fewshot`` evaluator: N-way K-shot accuracy of MAML, fine-tuning and ProtoNets, with CIs.

It trains MAML (meta-training), the fine-tuning baseline (pretraining) and Prototypical Networks on
the base classes of the dataset with the same number of gradient steps on the same episodes, then
scores all three on the same test episodes drawn from the novel classes: accuracy and its 95 %
confidence interval over 600 episodes by default, and each pair's mean paired difference with its
interval and verdict (see :mod:`fewgen_maml.fewshot`). Writes ``report.json`` (with each training's
seconds, which the engine keeps out of ``metrics.json``) and the meta-trained ``model.pt``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from fewgen.api import Evaluator, StepContext
from fewgen.dataset import Dataset
from fewgen.errors import UsageError
from fewgen_maml.params import FewShotParams


class FewShotEvaluatorParams(FewShotParams):
    ways: int = Field(5, ge=2, description="N: classes per test episode.")
    tasks: int = Field(600, ge=1, description="Test episodes averaged over (the field reports 600).")
    validation_tasks: int = Field(
        100, ge=1, description="Episodes of held-out base classes that pick the baseline's step size."
    )
    validation_share: float = Field(
        0.15, gt=0, lt=1, description="Share of base classes held out of both trainings for that."
    )
    pretrain_steps: int | None = Field(
        None,
        ge=1,
        description="Updates of the baseline's classifier training; default: as many as MAML's meta-updates "
        "(matched compute in gradient steps).",
    )
    pretrain_batches: Literal["episodes", "random"] = Field(
        "episodes",
        description="What the baseline's classifier trains on: MAML's episodes replayed (each support and query "
        "set its own batch), or random batches of base images, as many per step as a meta-update sees "
        "(Chen et al. 2019).",
    )
    finetune_steps: int = Field(10, ge=1, description="Gradient steps of the baseline on each support set.")
    proto_steps: int | None = Field(
        None, ge=1, description="Updates of the prototypical network; default: as many as MAML's meta-updates."
    )
    proto_train_ways: int | None = Field(
        None, ge=2, description="N of the prototypical network's training episodes; default: ways (as MAML)."
    )


class FewShotEvaluator(Evaluator):
    name = "fewshot"
    description = (
        "Few-shot accuracy on novel classes: MAML, pretraining + fine-tuning and Prototypical Networks trained "
        "on the base classes with matched gradient steps; mean and 95% CI over 600 test episodes, paired "
        "differences with verdicts."
    )
    Params = FewShotEvaluatorParams

    def evaluate(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        import torch

        from fewgen_maml.fewshot import Comparison, Episodes, compare

        p: FewShotEvaluatorParams = self.params
        ctx.seed_torch()
        classes = p.load_classes(dataset, ctx)
        if len(classes.novel) < p.ways:
            raise UsageError(
                f"step {ctx.step!r}: {p.ways}-way test episodes need {p.ways} novel classes, "
                f"{len(classes.novel)} match {p.novel_classes}"
            )
        setup = Comparison(
            shape=Episodes(p.ways, p.shots, p.queries),
            maml=p.maml_config(),
            backbone=p.backbone,
            channels=p.channels,
            size=p.size,
            rotate_classes=p.rotate_classes,
            meta_steps=p.meta_steps,
            minutes=p.minutes,
            pretrain_steps=p.pretrain_steps,
            pretrain_batches=p.pretrain_batches,
            finetune_steps=p.finetune_steps,
            proto_steps=p.proto_steps,
            proto_train_ways=p.proto_train_ways,
            tasks=p.tasks,
            validation_tasks=p.validation_tasks,
            validation_share=p.validation_share,
            seed=ctx.seed,
        )
        with training_bar(ctx) as on_progress:
            try:
                report, maml = compare(
                    classes.images_of(classes.base),
                    classes.images_of(classes.novel),
                    setup,
                    ctx.device,
                    ctx.scratch_dir,
                    ctx.note,
                    on_progress,
                )
            except ValueError as exc:  # too few classes or images per class for the episodes asked for
                raise UsageError(f"step {ctx.step!r}: {exc}") from None
        for name, comparison in report["comparisons"].items():
            ctx.note(f"{name.replace('_', ' ')}: {comparison['line']}")
        report["novel_classes"] = classes.novel
        report["base_classes"] = len(classes.base)
        torch.save(maml.model.state_dict(), ctx.work_dir / "model.pt")
        (ctx.work_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return report


class training_bar:
    """A progress bar for the step's training loops (meta-training, then pretraining), hidden with --no-progress."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.bar: Any = None
        self.total = -1

    def __enter__(self) -> Any:
        from tqdm.auto import tqdm

        def update(done: int, total: int, metrics: dict[str, float]) -> None:
            if total != self.total or self.bar is None or done < self.bar.n:
                if self.bar is not None:
                    self.bar.close()
                self.bar = tqdm(total=total, desc=self.ctx.step, disable=not self.ctx.show_progress, leave=False)
                self.total = total
            self.bar.update(done - self.bar.n)
            if done % 50 == 0:
                self.bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items() if k in ("query_accuracy", "loss")})

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
