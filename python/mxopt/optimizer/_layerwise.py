"""Helpers shared by the layer-wise optimizers (LARS, LAMB, LBSGD)."""

from __future__ import annotations

import math
from typing import Any, Hashable

import numpy as np

#: Largest finite float32: MXNet's kernels parse every hyper-parameter as float32.
_F32_MAX = float(np.finfo(np.float32).max)

#: LARS leaves layers whose name ends so at their plain learning rate (no underscore
#: needed: ``xgamma`` is excluded too).
EXCLUDED_SUFFIXES = ("gamma", "beta", "bias")


def check_kernel_params(owner: Any, *names: str) -> None:
    """Raise ``ValueError`` naming the first of ``owner``'s attributes ``names`` that a
    kernel cannot take: NaN, infinite, or beyond float32 (e.g. ``1e39``). ``None`` passes
    (the parameter is then not handed to the kernel)."""
    for name in names:
        value = getattr(owner, name)
        if value is None or isinstance(value, bool):
            continue
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(x) or abs(x) > _F32_MAX:
            raise ValueError(f"{name} must be finite in float32, got {value!r}")


def layer_name(optimizer: Any, index: Hashable) -> str:
    """The name MXNet's LARS matches suffixes against: ``param_idx2name`` or ``str(index)``."""
    name = optimizer.idx2name.get(index)
    return str(index) if name is None else name


def finite_scaled_lr(index: Hashable, lr: float) -> float:
    """``lr`` after the LARS scaling of ``index``'s layer, refused when a weight or gradient
    that is not finite made it NaN or infinite (MXNet went on and wrote NaN weights)."""
    if not math.isfinite(lr):
        raise ValueError(
            f"index {index!r}: the learning rate scaled by the LARS trust ratio is {lr} "
            "(a weight or gradient norm is not finite)"
        )
    return lr


def describe(value: Any) -> str:
    """A short description of a state object, for error messages."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__
