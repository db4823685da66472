"""Recipe parameters shared by the adapter step and the few-shot evaluator (no torch imported here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from fewgen.api import Params, StepContext
from fewgen.dataset import Dataset
from fewgen.errors import UsageError

if TYPE_CHECKING:
    from fewgen_maml.examples import ClassSplit
    from fewgen_maml.maml import MAMLConfig


class FewShotParams(Params):
    """Which examples are classes, how they are read, and how MAML is meta-trained on them."""

    source: Literal["images", "boxes", "masks"] = Field(
        "images",
        description="What one example is: a whole image classed by its label, a crop around each box classed "
        "by the box's class, or a crop around each image's mask classed by the image's label (defect types).",
    )
    novel_classes: list[str] = Field(
        min_length=1,
        description="The new classes to adapt to, as names or shell patterns ('dent/*', 'MT_Crack'); "
        "every other class is a base class that MAML is meta-trained on.",
    )
    base_classes: list[str] = Field(
        default_factory=lambda: ["*"], description="Base classes as names or patterns (novel ones are never base)."
    )
    include_synthetic: bool = Field(False, description="Also use synthetic samples made by earlier steps.")
    size: int = Field(28, ge=8, le=256, description="Examples are resized to size x size (the paper: 28 for Omniglot).")
    channels: Literal[1, 3] = Field(1, description="1 reads examples as grey, 3 as RGB.")
    invert: bool = Field(
        False, description="Use 255 - pixel (dark strokes on white become bright on black, as for Omniglot)."
    )
    margin: float = Field(
        0.15, ge=0, le=2, description="Context around box and mask crops, as a share of the longer side."
    )
    backbone: Literal["conv4", "conv4-maxpool"] = Field(
        "conv4", description="The paper's Omniglot network (64 filters, strided) or MiniImagenet one (32, max-pool)."
    )
    rotate_classes: bool = Field(False, description="Each 90-degree rotation of a base class is a class of its own.")
    shots: int = Field(1, ge=1, description="K: labelled examples per class to adapt from.")
    queries: int = Field(5, ge=1, description="Query examples per class in each meta-training episode.")
    inner_lr: float = Field(0.4, gt=0, description="alpha, the adaptation step size (the paper, 5-way Omniglot: 0.4).")
    inner_steps: int = Field(1, ge=1, description="Adaptation steps while meta-training.")
    test_inner_steps: int = Field(3, ge=0, description="Adaptation steps on the support set at test time.")
    meta_batch_size: int = Field(16, ge=1, description="Episodes per meta-update (the paper: 32 for 5-way Omniglot).")
    meta_lr: float = Field(1e-3, gt=0, description="Adam step size of the meta-updates.")
    first_order: bool = Field(False, description="First-order MAML (no second derivatives; faster, a little worse).")
    meta_steps: int = Field(2000, ge=1, description="Meta-updates (the paper: 60000).")
    minutes: float | None = Field(None, gt=0, description="Wall-clock cap on meta-training; stops early when reached.")
    meta_optimizer: Literal["adam", "sgd"] = Field("adam", description="The meta-optimiser (the paper: Adam).")
    cross_entropy_scale: Literal["shots", "mean"] = Field(
        "shots",
        description="'shots': the official loss, each example's cross-entropy divided by K, summed over the set "
        "(alpha and grad_clip as in the paper); 'mean': MAML++'s mean cross-entropy (alpha x N for the same step).",
    )
    grad_clip: float | None = Field(
        None,
        gt=0,
        description="Clamp every meta-gradient element to [-c, c] before the meta-optimiser's step (the official "
        "MiniImagenet and MAML++: 10); None: no clipping.",
    )
    first_order_until: int = Field(
        0,
        ge=0,
        description="MAML++ derivative-order annealing: the first this-many meta-updates are first order, "
        "the rest second order; 0: off.",
    )
    multi_step_loss: bool = Field(
        False, description="MAML++ multi-step loss: the query losses after every inner step, weighted and annealed."
    )
    multi_step_loss_anneal: int = Field(
        5000, ge=1, description="Meta-updates until only the last step's query loss counts (MAML++: 10 epochs)."
    )
    learn_inner_lr: bool = Field(
        False, description="MAML++ LSLR: a learned inner learning rate per parameter tensor and inner step."
    )
    per_step_bn: bool = Field(
        False, description="MAML++ per-step batch norm: a scale, shift and running statistics per inner step."
    )
    bn_eval_statistics: Literal["batch", "running"] = Field(
        "batch",
        description="Batch norm at test: each batch's own statistics (the paper) or the per-step running "
        "averages (MAML++; needs per_step_bn).",
    )
    cosine_meta_lr: bool = Field(False, description="MAML++: cosine-anneal the meta learning rate to min_meta_lr.")
    cosine_steps: int | None = Field(
        None, ge=1, description="Meta-updates over which the cosine schedule falls; default: meta_steps."
    )
    min_meta_lr: float = Field(1e-5, ge=0, description="The cosine schedule's last meta learning rate.")

    @model_validator(mode="after")
    def _running_statistics_need_per_step_bn(self) -> FewShotParams:
        if self.bn_eval_statistics == "running" and not self.per_step_bn:
            raise ValueError("bn_eval_statistics 'running' needs per_step_bn: only per-step batch norm keeps them")
        return self

    def load_classes(self, dataset: Dataset, ctx: StepContext) -> ClassSplit:
        """The dataset's examples in memory, split into base and novel classes; a bad split is a usage error."""
        from fewgen_maml.examples import split_classes

        try:
            return split_classes(
                dataset,
                self.source,
                self.novel_classes,
                self.base_classes,
                self.size,
                self.channels,
                self.invert,
                self.margin,
                self.include_synthetic,
                ctx.skip,
            )
        except ValueError as exc:
            raise UsageError(f"step {ctx.step!r}: {exc}") from None

    def maml_config(self) -> MAMLConfig:
        """The MAML configuration these parameters ask for (every field that changes meta-training)."""
        from fewgen_maml.maml import MAMLConfig

        return MAMLConfig(
            inner_lr=self.inner_lr,
            inner_steps=self.inner_steps,
            test_inner_steps=self.test_inner_steps,
            meta_batch_size=self.meta_batch_size,
            meta_lr=self.meta_lr,
            meta_optimizer=self.meta_optimizer,
            first_order=self.first_order,
            first_order_until=self.first_order_until,
            cross_entropy_scale=self.cross_entropy_scale,
            grad_clip=self.grad_clip,
            multi_step_loss=self.multi_step_loss,
            multi_step_loss_anneal=self.multi_step_loss_anneal,
            learn_inner_lr=self.learn_inner_lr,
            per_step_bn=self.per_step_bn,
            bn_eval_statistics=self.bn_eval_statistics,
            cosine_meta_lr=self.cosine_meta_lr,
            cosine_steps=self.cosine_steps if self.cosine_steps is not None else self.meta_steps,
            min_meta_lr=self.min_meta_lr,
        )
