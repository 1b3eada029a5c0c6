"""MXNet's ``Test`` optimizer: ``w ← w + rescale_grad·g``; the state mirrors the weight."""

from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from ._kernel import is_row_sparse
from .base import Optimizer, register

__all__ = ["Test"]


@register
class Test(Optimizer):
    """A trivial optimizer for tests: adds the rescaled gradient, ignoring lr, wd and clip.

    It does not count updates. Each of its two operations rounds to the weight's dtype,
    as MXNet's NDArray arithmetic does.
    """

    __test__ = False  # not a pytest class

    def create_state(self, index: Hashable, weight: np.ndarray) -> np.ndarray:
        """A float32 zero array of the weight's shape."""
        return np.zeros(weight.shape, dtype=np.float32)

    def update(self, index: Hashable, weight: np.ndarray, grad: Any, state: np.ndarray) -> None:
        """``weight ← weight + grad·rescale_grad``; ``state ← weight``."""
        if is_row_sparse(grad):
            grad = grad.todense()
        weight[...] = weight + grad * weight.dtype.type(self.rescale_grad)
        state[...] = weight
