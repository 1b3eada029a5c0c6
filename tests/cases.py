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


def _pyclip(x: np.ndarray, bound: float) -> np.ndarray:
    # The NDArray clip of MXNet's Python-side optimizers (bounds -c, c, parsed as float32
    # by the clip operator).
    c = x.dtype.type(np.float32(bound))
    return np.where(x > c, c, np.where(x < -c, -c, x))


# Python-side optimizers (NDArray operations): Python floats are converted straight to
# the array's dtype, scalar sub-expressions are computed in float64 first.


def adamax_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    m, u = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        lr_t = d(LR / (1.0 - 0.9**t))
        gh = g * d(1.0) + w * d(WD)
        m = m * d(0.9)
        m = m + d(1.0 - 0.9) * gh
        u = np.maximum(d(0.999) * u, np.abs(gh))
        w = w - lr_t * m / u
    return w


def nadam_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    m, v = np.zeros_like(w), np.zeros_like(w)
    schedule = 1.0
    for t in range(1, steps + 1):
        mu = 0.9 * (1.0 - 0.5 * 0.96 ** (t * 0.004))
        mu_next = 0.9 * (1.0 - 0.5 * 0.96 ** ((t + 1) * 0.004))
        schedule *= mu
        gh = _pyclip(g * d(1.0) + w * d(WD), CLIP)
        m = m * d(0.9)
        m = m + d(1.0 - 0.9) * gh
        v = v * d(0.999)
        v = v + d(1.0 - 0.999) * gh * gh
        g_prime = gh / d(1.0 - schedule)
        m_prime = m / d(1.0 - schedule * mu_next)
        v_prime = v / d(1.0 - 0.999**t)
        m_bar = d(1.0 - mu) * g_prime + d(mu_next) * m_prime
        w = w - d(LR) * m_bar / (np.sqrt(v_prime) + d(1e-8))
    return w


def adagrad_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    h = np.zeros_like(w)
    for _ in range(steps):
        gh = _pyclip(g * d(1.0), CLIP)
        h = h + np.square(gh)
        div = gh / np.sqrt(h + d(1e-7))
        w = w + (div + w * d(WD)) * d(-LR)
    return w


def adadelta_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    acc_g, acc_delta = np.zeros_like(w), np.zeros_like(w)
    for _ in range(steps):
        gh = _pyclip(g * d(1.0), CLIP)
        acc_g = acc_g * d(0.9)
        acc_g = acc_g + d(1.0 - 0.9) * gh * gh
        delta = np.sqrt(acc_delta + d(1e-5)) / np.sqrt(acc_g + d(1e-5)) * gh
        acc_delta = acc_delta * d(0.9)
        acc_delta = acc_delta + d(1.0 - 0.9) * delta * delta
        w = w - (delta + w * d(WD))
    return w


def rmsprop_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    """Plain RMSProp with ``clip_gradient=CLIP`` (``rmsprop_update``)."""
    d = w.dtype.type
    lr, wd, _, clip = _kernel_params(d)
    g1, eps = (d(np.float32(x)) for x in (0.9, 1e-8))
    n = np.zeros_like(w)
    for _ in range(steps):
        gh = np.clip(d(1.0) * g + wd * w, -clip, clip)
        n = (d(1) - g1) * (gh * gh) + g1 * n
        w = w - lr * (gh / np.sqrt(n + eps))
    return w


def rmsprop_centered_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    """Centered RMSProp with ``clip_weights=2`` (``rmspropalex_update``)."""
    d = w.dtype.type
    lr, wd, _, _ = _kernel_params(d)
    g1, g2, eps, cw = (d(np.float32(x)) for x in (0.9, 0.9, 1e-8, 2.0))
    n, mean, delta = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for _ in range(steps):
        gh = d(1.0) * g + wd * w
        n = (d(1) - g1) * gh * gh + g1 * n
        mean = (d(1) - g1) * gh + g1 * mean
        delta = g2 * delta - lr * gh / np.sqrt((n - mean * mean) + eps)
        w = np.clip(w + delta, -cw, cw)
    return w


def ftml_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    lr, wd, _, _ = _kernel_params(d)
    b1, b2 = (d(np.float32(x)) for x in (0.6, 0.999))
    eps = d(1e-8)  # ftml_update's epsilon is a double: converted once, straight to d
    dd, v, z = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        gh = d(1.0) * g + wd * w
        v = b2 * v + (d(1) - b2) * (gh * gh)
        d_t = (d(1) - b1 ** d(t)) / lr * (np.sqrt(v / (d(1) - b2 ** d(t))) + eps)
        z = (b1 * z + (d(1) - b1) * gh) - (d_t - b1 * dd) * w
        dd = d_t
        w = -z / d_t
    return w


def ftrl_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    d = w.dtype.type
    lr, wd, _, _ = _kernel_params(d)
    l1, beta = d(np.float32(0.01)), d(1)
    z, n = np.zeros_like(w), np.zeros_like(w)
    for _ in range(steps):
        gh = g * d(1.0)
        z = z + (gh - (np.sqrt(n + gh * gh) - np.sqrt(n)) * w / lr)
        n = n + gh * gh
        active = (np.abs(z) > l1).astype(w.dtype)
        w = (np.sign(z) * l1 - z) / ((beta + np.sqrt(n)) / lr + wd) * active
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


def test_reference(w: np.ndarray, g: np.ndarray, steps: int) -> np.ndarray:
    # MXNet's Test optimizer: w = w + g·rescale_grad, lr and wd ignored.
    for _ in range(steps):
        w = w + g * w.dtype.type(1.0)
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
    #: States are float32 whatever the weight's dtype: like MXNet 1.6, the optimizer
    #: refuses float16 and float64 weights without multi-precision.
    float32_states: bool = False
    #: Settings the row-sparse comparison runs with (AdaGrad's sparse kernel refuses
    #: weight decay).
    rows_overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Attributes set on the optimizer after construction (SGLD's ``add_noise``).
    attributes: Dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Learning rates depend on per-tensor norms that MXNet takes in the arrays' own
    #: precision (the float16 weight and gradient under multi-precision; float32 copies on
    #: the row-sparse path), so the master copy does not follow a float32 update, and
    #: float64 rows match the dense update only to float32 precision (LARS).
    layerwise: bool = False

    #: The optimizer takes 2-D weights only (GroupAdaGrad): the property tests give it
    #: their 1-D data as one-column matrices (``shaped``).
    matrix: bool = False

    def shaped(self, a: np.ndarray) -> np.ndarray:
        """``a`` as the optimizer takes it (a column for matrix-only optimizers)."""
        return a.reshape(-1, 1) if self.matrix else a

    def accepts(self, dtype: Any) -> bool:
        """Whether the optimizer takes weights of ``dtype`` without multi-precision."""
        return not self.float32_states or np.dtype(dtype) == np.float32

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
        aggregates=True,
        master_first=False,
    ),
    Case("nag", "nag", {"learning_rate": LR, "wd": WD}, aggregates=True, master_first=False),
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
    Case("adamax", "adamax", {"learning_rate": LR, "wd": WD}, adamax_reference, True),
    Case(
        "nadam_clip",
        "nadam",
        {"learning_rate": LR, "wd": WD, "clip_gradient": CLIP},
        nadam_reference,
        True,
    ),
    Case(
        "adagrad_clip",
        "adagrad",
        {"learning_rate": LR, "wd": WD, "clip_gradient": CLIP},
        adagrad_reference,
        True,
        float32_states=True,
        rows_overrides={"wd": 0.0},
    ),
    Case(
        "adadelta_clip",
        "adadelta",
        {"wd": WD, "clip_gradient": CLIP},
        adadelta_reference,
        True,
        float32_states=True,
    ),
    Case(
        "rmsprop_clip",
        "rmsprop",
        {"learning_rate": LR, "wd": WD, "clip_gradient": CLIP},
        rmsprop_reference,
        True,
        float32_states=True,
    ),
    Case(
        "rmsprop_centered_clipw",
        "rmsprop",
        {"learning_rate": LR, "wd": WD, "centered": True, "clip_weights": 2.0},
        rmsprop_centered_reference,
        True,
        float32_states=True,
    ),
    Case("ftml", "ftml", {"learning_rate": LR, "wd": WD}, ftml_reference, True),
    Case(
        "ftml_clip",
        "ftml",
        {"learning_rate": LR, "wd": WD, "clip_gradient": CLIP, "beta1": 0.8, "epsilon": 1e-3},
        None,
        True,
    ),
    Case(
        "ftrl", "ftrl", {"learning_rate": LR, "wd": WD}, ftrl_reference, True, float32_states=True
    ),
    Case(
        "ftrl_clip",
        "ftrl",
        {"learning_rate": LR, "wd": WD, "clip_gradient": CLIP, "lamda1": 0.2, "beta": 0.5},
        None,
        True,
        float32_states=True,
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
CASES += [
    # MXNet 1.6's multi-precision LAMB never writes its master copy back; the property
    # tests use the corrected mode (the golden trajectories pin the default).
    Case(
        "lamb_master",
        "lamb",
        {"learning_rate": LR, "wd": WD, "update_master_copy": True},
        None,
        True,
        float32_states=True,
        layerwise=True,
    ),
    Case(
        "groupadagrad_clip",
        "groupadagrad",
        {"learning_rate": LR, "clip_gradient": CLIP},
        None,
        True,
        float32_states=True,
        matrix=True,
    ),
    Case("test", "test", {}, test_reference),
]
BY_ID = {case.id: case for case in CASES}


def ids(predicate: Callable[[Case], bool] = lambda case: True) -> list:
    """Ids of the cases that satisfy ``predicate``, for ``pytest.mark.parametrize``."""
    return [case.id for case in CASES if predicate(case)]
