"""Type stubs of the native module ``mxopt._core`` (written by hand; see src/python/)."""

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, final

import numpy as np

__all__ = [
    "FILL_BLOCK_LEN",
    "HAS_WGPU",
    "MIN_PARALLEL_LEN",
    "GpuArray",
    "GpuDevice",
    "Kernel",
    "__version__",
    "checkpoint_read",
    "checkpoint_write",
    "fill_normal",
    "fill_orthogonal",
    "fill_uniform",
    "gpu_group_adagrad",
    "gpu_lamb",
    "gpu_lars",
    "gpu_lbsgd",
    "gpu_step",
    "gpu_step_noisy",
    "gpu_test",
    "lamb_many",
    "lars_many",
    "norm",
    "step",
    "step_group_adagrad",
    "step_many",
    "step_mixed",
    "step_noisy",
    "step_rows",
    "sum_sq",
]

__version__: str
MIN_PARALLEL_LEN: int
FILL_BLOCK_LEN: int
#: Whether the module was built with the GPU path (cargo feature ``wgpu``); without it,
#: the ``Gpu*`` classes and ``gpu_*`` functions below are absent.
HAS_WGPU: bool

@final
class Kernel:
    """A kernel with its hyper-parameters: ``Kernel("multi_sgd_mom", momentum=0.9, ...)``.

    Names: ``sgd`` (``sgd_update``), ``sgd_std`` (its non-lazy row-sparse form),
    ``sgd_mom`` (``sgd_mom_update``: scalar ``lr``/``wd``, parsed as MXNet's operators parse
    them), ``multi_sgd``, ``multi_sgd_mom`` (``lrs``/``wds`` lists, rounded correctly),
    ``nag_mom``, ``adam``, ``adam_lazy``, ``adam_std``.
    Hyper-parameters: ``momentum``, ``rescale_grad``, ``clip_gradient`` (``None`` or
    negative: no clipping). Unknown names or keys raise; NaN values raise ``ValueError``.
    """

    def __new__(cls, name: str, **hyper: Optional[float]) -> Kernel: ...
    @property
    def num_states(self) -> int: ...

# ``t``/``ts``: the update count after the increment, a signed 64-bit integer (MXNet
# accepts a negative ``begin_num_update``; a non-positive count makes Adam-like bias
# corrections non-finite, which the kernels refuse naming ``lr``).

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

# Optimizer checkpoints (safetensors; format in the README's "Checkpoints"). A parameter is
# (update count, dtype name, float32 master copy or None, state arrays in kernel order).
def checkpoint_write(
    path: Union[str, os.PathLike[str]],
    metadata: Dict[str, str],
    params: Dict[str, Tuple[int, str, Optional[np.ndarray], List[np.ndarray]]],
) -> None:
    """Write a checkpoint through a temporary file renamed when complete."""

def checkpoint_read(
    path: Union[str, os.PathLike[str]],
) -> Tuple[Dict[str, str], Dict[str, Tuple[int, str, Optional[np.ndarray], List[np.ndarray]]]]:
    """Read and check a checkpoint: ``(metadata, params)`` with new writeable arrays."""

def fill_uniform(out: np.ndarray, low: float, high: float, seed: int, stream: int) -> None:
    """Fill ``out`` in place with U[low, high) draws; depends only on (seed, stream, size)."""

def fill_normal(out: np.ndarray, loc: float, scale: float, seed: int, stream: int) -> None:
    """Fill ``out`` in place with N(loc, scale²) draws; depends only on (seed, stream, size)."""

def fill_orthogonal(out: np.ndarray, scale: float, normal: bool, seed: int, stream: int) -> None:
    """Fill the (at least 2-d) ``out`` with ``scale`` times the orthonormal factor of a float32
    matrix of U(-1, 1) (N(0, 1) with ``normal``) draws from (seed, stream)."""

# Reductions: one result per array, arrays reduced in parallel. ``exact=True`` follows
# MXNet 1.6's sequential recipes bit for bit; ``exact=False`` sums in float64 over fixed
# blocks (same result at any thread count, not MXNet's last bit).
def sum_sq(arrays: Sequence[np.ndarray], exact: bool = True) -> list[float]:
    """``multi_sum_sq``: ``Σ v²`` per array as a float32 value (0 for an empty array)."""

def norm(arrays: Sequence[np.ndarray], exact: bool = True, row_sparse: bool = False) -> list[float]:
    """``NDArray.norm()`` per array, in the array's dtype (0 for an empty array); with
    ``row_sparse=True``, the norm MXNet takes of a row-sparse float32 array's stored
    values (a BLAS dot product)."""

def lars_many(
    weights: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    states: Sequence[np.ndarray],
    lrs: Sequence[float],
    wds: Sequence[float],
    ts: Sequence[int],
    scaled: Sequence[bool],
    masters: Optional[Sequence[np.ndarray]] = None,
    exact_norms: bool = True,
    *,
    eta: float = 0.001,
    eps: float = 0.0,
    momentum: float = 0.0,
    rescale_grad: float = 1.0,
    clip_gradient: Optional[float] = None,
) -> None:
    """LARS's dense update of a list (one dtype): trust-ratio rates of the ``scaled``
    tensors from the sums of squares of weights and raw gradients, then SGD's preloaded
    update. ``states``: one momentum array per weight, or none (no momentum kernel).
    With ``masters`` the weights are float16 with float32 master copies."""

def lamb_many(
    weights: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    states: Sequence[np.ndarray],
    lrs: Sequence[float],
    wds: Sequence[float],
    ts: Sequence[int],
    masters: Optional[Sequence[np.ndarray]] = None,
    exact_norms: bool = True,
    write_master: bool = False,
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-6,
    rescale_grad: float = 1.0,
    clip_gradient: Optional[float] = None,
    bias_correction: bool = True,
    lower_bound: Optional[float] = None,
    upper_bound: Optional[float] = None,
) -> None:
    """LAMB's update of a list of float32 weights (or float16 weights with float32
    ``masters``); ``states`` is flat, ``(mean, var)`` per weight, float32. MXNet 1.6 never
    writes the master copy; ``write_master=True`` does."""

# ---------------------------------------------------------------- GPU path (feature wgpu)

@final
class GpuDevice:
    """A Vulkan adapter (a GPU or a software driver) with its queue; ``RuntimeError``
    naming what is missing when there is none."""

    def __new__(cls) -> GpuDevice: ...
    @property
    def name(self) -> str: ...
    @property
    def device_type(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def driver(self) -> str: ...
    def array(self, data: np.ndarray) -> GpuArray: ...
    def zeros(self, shape: Union[int, Sequence[int]], dtype: Any = None) -> GpuArray: ...
    def synchronize(self) -> None: ...

@final
class GpuArray:
    """A float32 or float16 array resident on a :class:`GpuDevice`."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def device(self) -> GpuDevice: ...
    @property
    def size(self) -> int: ...
    @property
    def ndim(self) -> int: ...
    def asnumpy(self) -> np.ndarray: ...
    def copy_from(self, data: np.ndarray) -> None: ...

def gpu_step(
    device: GpuDevice,
    kernel: Kernel,
    weights: Sequence[GpuArray],
    grads: Sequence[GpuArray],
    states: Sequence[GpuArray],
    lrs: Sequence[float],
    wds: Sequence[float],
    ts: Sequence[int],
    masters: Optional[Sequence[GpuArray]] = None,
    schedules: Optional[Sequence[float]] = None,
) -> None: ...
def gpu_lars(
    device: GpuDevice,
    weights: Sequence[GpuArray],
    grads: Sequence[GpuArray],
    states: Sequence[GpuArray],
    lrs: Sequence[float],
    wds: Sequence[float],
    ts: Sequence[int],
    scaled: Sequence[bool],
    masters: Optional[Sequence[GpuArray]] = None,
    **hyper: Optional[float],
) -> None: ...
def gpu_lamb(
    device: GpuDevice,
    weights: Sequence[GpuArray],
    grads: Sequence[GpuArray],
    states: Sequence[GpuArray],
    lrs: Sequence[float],
    wds: Sequence[float],
    ts: Sequence[int],
    masters: Optional[Sequence[GpuArray]] = None,
    write_master: bool = False,
    **hyper: Optional[float],
) -> None: ...
def gpu_group_adagrad(
    device: GpuDevice,
    weights: Sequence[GpuArray],
    grads: Sequence[GpuArray],
    states: Sequence[GpuArray],
    lrs: Sequence[float],
    epsilon: float,
    rescale_grad: float,
    clip_gradient: Optional[float] = None,
    masters: Optional[Sequence[GpuArray]] = None,
) -> None: ...
def gpu_step_noisy(
    device: GpuDevice,
    kernel: Kernel,
    weights: Sequence[GpuArray],
    grads: Sequence[GpuArray],
    states: Sequence[GpuArray],
    lrs: Sequence[float],
    wds: Sequence[float],
    ts: Sequence[int],
    scales: Sequence[float],
    seeds: Sequence[int],
    streams: Sequence[int],
    masters: Optional[Sequence[GpuArray]] = None,
) -> None: ...
def gpu_test(
    device: GpuDevice,
    weights: Sequence[GpuArray],
    grads: Sequence[GpuArray],
    states: Sequence[GpuArray],
    rescale_grad: float,
    masters: Optional[Sequence[GpuArray]] = None,
) -> None: ...
def gpu_lbsgd(
    device: GpuDevice,
    weights: Sequence[GpuArray],
    grads: Sequence[GpuArray],
    states: Sequence[GpuArray],
    lrs: Sequence[float],
    wds: Sequence[float],
    ts: Sequence[int],
    fresh: Sequence[bool],
    finishes: Sequence[bool],
    multipliers: Sequence[float],
    masters: Optional[Sequence[GpuArray]] = None,
    *,
    momentum: float,
    rescale_grad: float,
    batch_scale: int,
    lars_warmup: bool,
    clip_gradient: Optional[float] = None,
) -> None: ...
