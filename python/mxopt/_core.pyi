"""Type stubs of the native module ``mxopt._core`` (written by hand; see src/python/)."""

from typing import Optional, Sequence, final

import numpy as np

__all__ = [
    "FILL_BLOCK_LEN",
    "MIN_PARALLEL_LEN",
    "Kernel",
    "__version__",
    "fill_normal",
    "fill_uniform",
    "step",
    "step_group_adagrad",
    "step_many",
    "step_mixed",
    "step_noisy",
    "step_rows",
]

__version__: str
MIN_PARALLEL_LEN: int
FILL_BLOCK_LEN: int

@final
class Kernel:
    """A kernel with its hyper-parameters: ``Kernel("multi_sgd_mom", momentum=0.9, ...)``.

    Names: ``sgd`` (``sgd_update``), ``multi_sgd``, ``multi_sgd_mom``, ``nag_mom``.
    Hyper-parameters: ``momentum``, ``rescale_grad``, ``clip_gradient`` (``None`` or
    negative: no clipping). Unknown names or keys raise; NaN values raise ``ValueError``.
    """

    def __new__(cls, name: str, **hyper: Optional[float]) -> Kernel: ...
    @property
    def num_states(self) -> int: ...

def step(
    kernel: Kernel,
    weight: np.ndarray,
    grad: np.ndarray,
    states: Sequence[np.ndarray],
    lr: float,
    wd: float,
    t: int = 1,
    schedule: float = 1.0,
) -> None: ...
def step_mixed(
    kernel: Kernel,
    weight: np.ndarray,
    grad: np.ndarray,
    master: np.ndarray,
    states: Sequence[np.ndarray],
    lr: float,
    wd: float,
    t: int = 1,
    schedule: float = 1.0,
) -> None: ...
def step_rows(
    kernel: Kernel,
    lazy: bool,
    weight: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    states: Sequence[np.ndarray],
    lr: float,
    wd: float,
    t: int = 1,
    schedule: float = 1.0,
) -> None: ...

# ``states`` is flat: ``kernel.num_states`` arrays per weight, weight after weight.
def step_many(
    kernel: Kernel,
    weights: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    states: Sequence[np.ndarray],
    lrs: Sequence[float],
    wds: Sequence[float],
    ts: Sequence[int],
    masters: Optional[Sequence[np.ndarray]] = None,
    schedules: Optional[Sequence[float]] = None,
) -> None: ...

# ``step_many`` plus seeded noise: tensor ``i`` gets ``N(0, scales[i]**2)`` from the
# keystream ``(seeds[i], streams[i])``, the values ``fill_normal`` writes for its dtype/size.
def step_noisy(
    kernel: Kernel,
    weights: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    states: Sequence[np.ndarray],
    lrs: Sequence[float],
    wds: Sequence[float],
    ts: Sequence[int],
    scales: Sequence[float],
    seeds: Sequence[int],
    streams: Sequence[int],
) -> None: ...

# GroupAdaGrad of a 2-D weight and its (rows, 1) history: dense ``grad`` (Python-op maths,
# pyclip, Kahan row mean), or with ``indices`` the row-sparse values (kernel maths, kclip).
def step_group_adagrad(
    weight: np.ndarray,
    grad: np.ndarray,
    history: np.ndarray,
    lr: float,
    epsilon: float,
    rescale_grad: float,
    clip_gradient: Optional[float],
    indices: Optional[np.ndarray] = None,
) -> None: ...
def fill_uniform(out: np.ndarray, low: float, high: float, seed: int, stream: int) -> None:
    """Fill ``out`` in place with U[low, high) draws; depends only on (seed, stream, size)."""

def fill_normal(out: np.ndarray, loc: float, scale: float, seed: int, stream: int) -> None:
    """Fill ``out`` in place with N(loc, scale²) draws; depends only on (seed, stream, size)."""
