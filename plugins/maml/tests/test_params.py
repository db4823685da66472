"""The steps' parameters reach MAMLConfig whole: every field that changes meta-training can be set in a recipe."""

from __future__ import annotations

from dataclasses import asdict, fields

import pytest
from fewgen_maml.adapter import AdapterParams
from fewgen_maml.evaluator import FewShotEvaluatorParams
from fewgen_maml.maml import MAMLConfig
from fewgen_maml.params import FewShotParams
from pydantic import ValidationError

# Classification only: the steps never regress.
NOT_A_PARAMETER = {"loss"}

# A value other than the default for every MAMLConfig field a recipe can set.
CHANGED = {
    "inner_lr": 0.2,
    "inner_steps": 3,
    "test_inner_steps": 7,
    "meta_batch_size": 5,
    "meta_lr": 3e-4,
    "meta_optimizer": "sgd",
    "first_order": True,
    "first_order_until": 50,
    "cross_entropy_scale": "mean",
    "grad_clip": 10.0,
    "multi_step_loss": True,
    "multi_step_loss_anneal": 123,
    "learn_inner_lr": True,
    "per_step_bn": True,
    "bn_eval_statistics": "running",
    "cosine_meta_lr": True,
    "cosine_steps": 900,
    "min_meta_lr": 1e-6,
}


def test_every_training_field_of_the_config_is_a_parameter() -> None:
    settable = {f.name for f in fields(MAMLConfig)} - NOT_A_PARAMETER
    assert settable == set(CHANGED)  # a new MAMLConfig field needs a parameter (and a line here)
    assert settable <= set(FewShotParams.model_fields)
    for name in settable:
        assert FewShotParams.model_fields[name].description, name


@pytest.mark.parametrize("params_class", [FewShotEvaluatorParams, AdapterParams])
def test_each_parameter_reaches_the_config(params_class: type[FewShotParams]) -> None:
    defaults = params_class(novel_classes=["x"]).maml_config()
    for name, value in CHANGED.items():
        assert getattr(defaults, name) != value, name  # the test would prove nothing otherwise
    params = params_class(novel_classes=["x"], **CHANGED)
    assert {name: value for name, value in asdict(params.maml_config()).items() if name in CHANGED} == CHANGED
    dumped = params.model_dump(mode="json")  # what the engine keys the step's cache (and its checkpoint) on
    assert all(dumped[name] == value for name, value in CHANGED.items())


def test_cosine_schedule_spans_the_meta_updates_by_default() -> None:
    params = FewShotParams(novel_classes=["x"], cosine_meta_lr=True, meta_steps=321)
    assert params.maml_config().cosine_steps == 321


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grad_clip": 0}, "grad_clip"),
        ({"first_order_until": -1}, "first_order_until"),
        ({"multi_step_loss_anneal": 0}, "multi_step_loss_anneal"),
        ({"cross_entropy_scale": "ways"}, "cross_entropy_scale"),
        ({"meta_optimizer": "rmsprop"}, "meta_optimizer"),
        ({"cosine_steps": 0}, "cosine_steps"),
        ({"bn_eval_statistics": "running"}, "per_step_bn"),
    ],
)
def test_bad_values_are_refused_when_the_recipe_loads(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FewShotParams(novel_classes=["x"], **changes)
