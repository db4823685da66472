"""The module the ``fewgen`` entry point names.

It registers nothing yet: the MAML core (:mod:`fewgen_maml.maml`, the backbones, the task and
episode samplers) is a library for now, and the recipe step, evaluator and benchmarks that use
it will be registered here. Nothing imported here may import torch, so listing plugins and
validating recipes stay fast.
"""

from __future__ import annotations
