"""The module the ``fewgen`` entry point names. It registers nothing yet: the translation
generator, its evaluator and the benchmarks come with the training loop.

Nothing imported here may import torch, so listing plugins and validating recipes stay fast.
"""

from __future__ import annotations
