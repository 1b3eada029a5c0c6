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


WD_LH, LAMDA = 0.05, 0.04


def signum_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    lr, wd, mu, _ = _kernel_params(d)
    wd_lh = d(np.float32(WD_LH))
    m = np.zeros_like(w)
    for _ in range(steps):
        # The kernel keeps the negated momentum.
        m = (mu * m - ((d(1) - mu) * wd) * w) - ((d(1) - mu) * d(1.0)) * g
        w = (d(1) - lr * wd_lh) * w + lr * np.sign(m)
    return w


def signsgd_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    lr, wd, _, _ = _kernel_params(d)
    for _ in range(steps):
        w = (d(1) - lr * wd) * w - lr * np.sign(g)
    return w


def dcasgd_clip_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    # Python-side optimizer: Python floats go straight to the array's dtype.
    d = w.dtype.type
    wd, lamda, clip, neg_lr = d(WD), d(LAMDA), d(CLIP), d(-LR)
    previous = w.copy()
    for _ in range(steps):
        gh = np.clip(g * d(1.0), -clip, clip)
        delta = ((gh + w * wd) + ((gh * lamda) * gh) * (w - previous)) * neg_lr
        w, previous = w + delta, w
    return w


def sgld_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    for _ in range(steps):
        w = w + (g * d(1.0) + w * d(WD)) * d(-LR / 2)
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
    #: Attributes set on the optimizer after construction (SGLD's ``add_noise``).
    attributes: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def make(self, **overrides: Any) -> Optimizer:
        opt = create(self.name, **{**self.kwargs, **overrides})
        for name, value in self.attributes.items():
            setattr(opt, name, value)
        return opt


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
]
CASES += [
    Case(
        "signum",
        "signum",
        {"learning_rate": LR, "wd": WD, "momentum": MOMENTUM, "wd_lh": WD_LH},
        signum_reference,
        True,
    ),
    Case(
        "signsgd",
        "signum",
        # rescale_grad and clip_gradient are ignored without momentum.
        {
            "learning_rate": LR,
            "wd": WD,
            "momentum": 0.0,
            "rescale_grad": -3.0,
            "clip_gradient": CLIP,
        },
        signsgd_reference,
        True,
    ),
    Case(
        "dcasgd_clip",
        "dcasgd",
        {"learning_rate": LR, "wd": WD, "clip_gradient": CLIP},
        dcasgd_clip_reference,
        True,
    ),
    # The deterministic half of SGLD; its noise is covered by test_group_sign_noise.py.
    # (GroupAdaGrad has no row here: it takes only 2-D float32 weights.)
    Case(
        "sgld_no_noise",
        "sgld",
        {"learning_rate": LR, "wd": WD},
        sgld_reference,
        True,
        attributes={"add_noise": False},
    ),
]
BY_ID = {case.id: case for case in CASES}


def ids(predicate: Callable[[Case], bool] = lambda case: True) -> list:
    """Ids of the cases that satisfy ``predicate``, for ``pytest.mark.parametrize``."""
    return [case.id for case in CASES if predicate(case)]
