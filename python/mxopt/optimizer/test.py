"""MXNet's ``Test`` optimizer: ``w ← w + rescale_grad·g``; the state mirrors the weight."""

from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from ._kernel import is_row_sparse
from .base import Optimizer, check_real, register

__all__ = ["Test"]


def _check_arguments(weight: Any, grad: Any, state: Any) -> None:
    """Raise ``TypeError``/``ValueError`` naming the bad argument; touches nothing."""
    if type(weight) is not np.ndarray:
        raise TypeError(f"weight: expected a numpy.ndarray, got {type(weight).__name__}")
    if weight.dtype.kind != "f":
        raise TypeError(f"weight: expected a floating-point array, got dtype {weight.dtype}")
    if not weight.flags.writeable:
        raise ValueError("weight: the array is read-only; it is updated in place")
    if not weight.flags.c_contiguous:
        raise ValueError("weight: expected a C-contiguous array")
    if is_row_sparse(grad):
        if tuple(grad.shape) != weight.shape:
            raise ValueError(
                f"grad: a row-sparse gradient must have the weight's shape {weight.shape}, "
                f"got {tuple(grad.shape)}"
            )
    elif not isinstance(grad, np.ndarray):
        raise TypeError(
            f"grad: expected a numpy.ndarray or a RowSparseNDArray, got {type(grad).__name__}"
        )
    elif grad.shape != weight.shape or grad.dtype != weight.dtype:
        raise ValueError(
            f"grad: expected shape {weight.shape} and dtype {weight.dtype} like the weight, "
            f"got shape {grad.shape} and dtype {grad.dtype}"
        )
    if not isinstance(state, np.ndarray):
        raise TypeError(f"state: expected a numpy.ndarray, got {type(state).__name__}")
    if state.shape != weight.shape or state.dtype != np.float32:
        raise ValueError(
            f"state: expected a float32 array of the weight's shape {weight.shape}, got "
            f"shape {state.shape} and dtype {state.dtype}"
        )
    if not state.flags.writeable:
        raise ValueError("state: the array is read-only; it is updated in place")


@register
class Test(Optimizer):
    """A trivial optimizer for tests: adds the rescaled gradient, ignoring lr, wd and clip.

    It does not count updates. Each of its two operations rounds to the weight's dtype,
    as MXNet's NDArray arithmetic does. The arguments are checked before anything is
    written: ``weight`` must be a writable, C-contiguous float ``numpy.ndarray``; ``grad``
    an array of the weight's shape and dtype or a row-sparse array of the weight's shape;
    ``state`` a float32 array of the weight's shape. Otherwise ``TypeError`` or
    ``ValueError`` names the argument and nothing is modified.
    """

    __test__ = False  # not a pytest class

    def create_state(self, index: Hashable, weight: np.ndarray) -> np.ndarray:
        """A float32 zero array of the weight's shape."""
        return np.zeros(weight.shape, dtype=np.float32)

    def update(self, index: Hashable, weight: np.ndarray, grad: Any, state: np.ndarray) -> None:
        """``weight ← weight + grad·rescale_grad``; ``state ← weight``."""
        _check_arguments(weight, grad, state)
        check_real("rescale_grad", self.rescale_grad)
        if is_row_sparse(grad):
            grad = grad.todense()
        new_weight = weight + grad * weight.dtype.type(self.rescale_grad)
        weight[...] = new_weight
        state[...] = weight
