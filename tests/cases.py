"""The table of kernel optimizers that the property suites (``test_kernels.py``) run over.

A new kernel optimizer joins every property test by adding rows here; ``reference`` (its
element maths in NumPy, in MXNet's association order) is needed only for the chunk-edge
test against hand-computed values.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional

import numpy as np

from mxopt.optimizer import Optimizer, create

LR, WD, MOMENTUM, CLIP = 0.1, 0.01, 0.9, 0.5


def _kernel_params(d: type) -> tuple:
    # Kernels parse hyper-parameters as float32, then convert them to the weight's dtype.
    return tuple(d(np.float32(x)) for x in (LR, WD, MOMENTUM, CLIP))


def sgd_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    lr, wd, _, _ = _kernel_params(d)
    for _ in range(steps):
        w = w + ((d(0) - (lr * wd) * w) - (lr * d(1.0)) * g)
    return w


def sgd_momentum_clip_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    lr, wd, mu, clip = _kernel_params(d)
    m = np.zeros_like(w)
    for _ in range(steps):
        m = (mu * m - (lr * wd) * w) - lr * np.clip(g * d(1.0), -clip, clip)
        w = w + m
    return w


def nag_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    lr, wd, mu, _ = _kernel_params(d)
    m = np.zeros_like(w)
    for _ in range(steps):
        m1 = mu * m
        w_new = (w - m1) + (mu + d(1)) * (m1 - lr * (g * d(1.0) + wd * w))
        m = m1 - lr * (g * d(1.0) + wd * w_new)
        w = w_new
    return w


def adam_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    _, wd, _, _ = _kernel_params(d)
    b1, b2, eps = (d(np.float32(x)) for x in (0.9, 0.999, 1e-8))
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        lr_t = d(np.float32(LR * (np.sqrt(1 - 0.999**t) / (1 - 0.9**t))))
        gh = g * d(1.0) + w * wd
        m = b1 * m + (d(1) - b1) * gh
        v = b2 * v + (d(1) - b2) * gh * gh
        w = w - lr_t * m / (np.sqrt(v) + eps)
    return w


@dataclasses.dataclass(frozen=True)
class Case:
    """One optimizer configuration under test."""

    id: str
    name: str
    kwargs: Dict[str, Any]
    reference: Optional[Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = None
    #: ``update`` accepts lists of indices/weights/grads/states (MXNet's aggregation).
    aggregates: bool = False
    #: Row-sparse gradients update rows (lazy/standard) instead of being densified.
    row_sparse: bool = False
    #: The multi-precision state is ``(master, state)`` (MXNet's generic fallback) rather
    #: than ``(momentum, master)`` (SGD, NAG, LARS).
    master_first: bool = True
    #: A row-sparse gradient listing every row gives the dense numbers bit for bit in
    #: both lazy and standard mode (else a sparse kernel associates differently from the
    #: dense one, which shows in the last bit).
    rows_exact: bool = True
    #: Learning rates depend on per-tensor norms that MXNet takes in the arrays' own
    #: precision (the float16 weight and gradient under multi-precision; float32 copies on
    #: the row-sparse path), so the master copy does not follow a float32 update, and
    #: float64 rows match the dense update only to float32 precision (LARS).
    layerwise: bool = False

    def make(self, **overrides: Any) -> Optimizer:
        return create(self.name, **{**self.kwargs, **overrides})


CASES = [
    Case("sgd", "sgd", {"learning_rate": LR, "wd": WD}, sgd_reference, True, True, False, False),
    Case(
        "sgd_mom_clip",
        "sgd",
        {"learning_rate": LR, "wd": WD, "momentum": MOMENTUM, "clip_gradient": CLIP},
        sgd_momentum_clip_reference,
        True,
        True,
        False,
    ),
    Case(
        "ccsgd_mom",
        "ccsgd",
        {"learning_rate": LR, "wd": WD, "momentum": MOMENTUM},
        None,
        True,
        True,
        False,
    ),
    Case(
        "nag_mom",
        "nag",
        {"learning_rate": LR, "wd": WD, "momentum": MOMENTUM},
        nag_reference,
        master_first=False,
    ),
    Case("nag", "nag", {"learning_rate": LR, "wd": WD}, master_first=False),
    Case(
        "adam",
        "adam",
        {"learning_rate": LR, "wd": WD},
        adam_reference,
        True,
        True,
        rows_exact=False,
    ),
    Case(
        "adam_std_clip",
        "adam",
        {"learning_rate": LR, "wd": WD, "lazy_update": False, "clip_gradient": CLIP},
        None,
        True,
        True,
        rows_exact=False,
    ),
    # LARS's dense path scales each tensor's rate by norms computed natively; its sparse
    # path computes them otherwise (BLAS dot of the rows), so rows equal dense only nearly.
    Case(
        "lars_mom",
        "lars",
        {"learning_rate": LR, "wd": WD, "momentum": MOMENTUM, "eta": 0.5, "eps": 1e-3},
        None,
        True,
        True,
        False,
        rows_exact=False,
        layerwise=True,
    ),
    Case(
        "lars_clip_fast_norms",
        "lars",
        {"learning_rate": LR, "wd": WD, "clip_gradient": CLIP, "eta": 0.5, "exact_norms": False},
        None,
        True,
        True,
        False,
        rows_exact=False,
        layerwise=True,
    ),
    Case("lbsgd_mom", "lbsgd", {"learning_rate": LR, "wd": WD, "momentum": MOMENTUM}, None, True),
]
BY_ID = {case.id: case for case in CASES}


def ids(predicate: Callable[[Case], bool] = lambda case: True) -> list:
    """Ids of the cases that satisfy ``predicate``, for ``pytest.mark.parametrize``."""
    return [case.id for case in CASES if predicate(case)]
