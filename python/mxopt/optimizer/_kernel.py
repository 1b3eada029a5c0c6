"""The shared base of optimizers whose update runs in a Rust kernel of ``mxopt._core``.

Subclasses say which kernel runs and with which hyper-parameters; this module owns the
MXNet preamble (count, then lr and wd), kernel caching, and the choice between the dense,
multi-precision, row-sparse and aggregated entry points of the native module.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from .base import Optimizer, warn_float16_without_multi_precision

__all__ = ["KernelOptimizer", "MomentumKernelOptimizer", "is_row_sparse"]


def is_row_sparse(grad: Any) -> bool:
    """Whether ``grad`` is a row-sparse array (``mxopt.sparse.RowSparseNDArray``)."""
    return type(grad) is not np.ndarray and getattr(grad, "stype", "default") == "row_sparse"


def kernel_clip(clip_gradient: Optional[float]) -> Optional[float]:
    """The bound MXNet hands to a kernel: only a truthy ``clip_gradient`` is passed."""
    return clip_gradient if clip_gradient else None


def _states_tuple(state: Any) -> Tuple[np.ndarray, ...]:
    return () if state is None else (state,)


class KernelOptimizer(Optimizer):
    """An :class:`Optimizer` whose element maths runs in ``mxopt._core``.

    Weights, gradients and states are NumPy arrays updated in place; every array is
    validated (dtype, shape, contiguity, writability, aliasing) before anything is written.
    """

    #: Names of the kernel hyper-parameters, in the order ``_kernel`` receives their values.
    kernel_hyper: ClassVar[Tuple[str, ...]] = ()

    def _kernel(self, name: str, values: tuple) -> _core.Kernel:
        """The native kernel ``name`` with hyper-parameter ``values`` (named by
        ``kernel_hyper``), rebuilt only when a value changed: MXNet users mutate
        ``rescale_grad`` and friends between steps."""
        key = (name, values)
        cache: Optional[Dict[tuple, _core.Kernel]] = self.__dict__.get("_kernel_cache")
        if cache is None:
            cache = self._kernel_cache = {}
        kernel = cache.get(key)
        if kernel is None:
            if len(cache) > 64:  # hyper-parameters changed many times: keep the cache small
                cache.clear()
            kernel = cache[key] = _core.Kernel(name, **dict(zip(self.kernel_hyper, values)))
        return kernel

    def _preamble(self, indices: Sequence[Hashable]) -> Tuple[List[float], List[float], List[int]]:
        """MXNet's per-step preamble: count each index, then read lrs, wds and counts."""
        self._update_count(indices)
        counts = self._index_update_count
        return (
            self._get_lrs(indices),
            self._get_wds(indices),
            list(map(counts.__getitem__, indices)),
        )

    def _run_dense(
        self,
        kernel: _core.Kernel,
        weights: Sequence[np.ndarray],
        grads: Sequence[np.ndarray],
        states: Sequence[np.ndarray],
        steps: Tuple[List[float], List[float], List[int]],
        masters: Optional[Sequence[np.ndarray]] = None,
    ) -> None:
        """Dense update of every weight in one native call (the single-tensor entry point
        when there is one weight: it has the smallest overhead). ``states`` is flat:
        ``kernel.num_states`` arrays per weight."""
        lrs, wds, ts = steps
        if len(weights) == 1:
            if masters is None:
                _core.step(kernel, weights[0], grads[0], states, lrs[0], wds[0], ts[0])
            else:
                _core.step_mixed(
                    kernel, weights[0], grads[0], masters[0], states, lrs[0], wds[0], ts[0]
                )
        else:
            _core.step_many(kernel, weights, grads, states, lrs, wds, ts, masters)

    @staticmethod
    def _run_rows(
        kernel: _core.Kernel,
        lazy: bool,
        weight: np.ndarray,
        grad: Any,
        states: Tuple[np.ndarray, ...],
        lr: float,
        wd: float,
        t: int,
    ) -> None:
        """Update of a dense weight from a row-sparse gradient, lazily or on every row."""
        if grad.shape != weight.shape:
            raise ValueError(
                f"grad: expected shape {weight.shape} (the weight's), got {grad.shape}"
            )
        _core.step_rows(kernel, lazy, weight, grad.indices, grad.data, states, lr, wd, t)

    def __getstate__(self) -> Dict[str, Any]:
        state = super().__getstate__()
        state.pop("_kernel_cache", None)  # native kernels are rebuilt on demand
        return state


class MomentumKernelOptimizer(KernelOptimizer):
    """A kernel optimizer whose state is one momentum buffer (or none without momentum),
    with MXNet's native multi-precision layout ``(momentum, float32 master)`` — the reverse
    of the base class's ``(master, state)`` fallback. SGD, NAG and LARS are built on it."""

    kernel_hyper = ("momentum", "rescale_grad", "clip_gradient")

    def __init__(self, momentum: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.momentum = momentum

    def create_state(self, index: Hashable, weight: np.ndarray) -> Any:
        """Momentum buffer of the weight's dtype, or ``None`` without momentum."""
        return None if self.momentum == 0.0 else np.zeros_like(weight)

    def create_state_multi_precision(self, index: Hashable, weight: np.ndarray) -> Any:
        """``(momentum, master)`` for float16 weights with ``multi_precision``."""
        if self.multi_precision and weight.dtype == np.float16:
            master = weight.astype(np.float32)
            return (self.create_state(index, master), master)
        if weight.dtype == np.float16:
            warn_float16_without_multi_precision()
        return self.create_state(index, weight)

    def _hyper(self) -> tuple:
        """Kernel values of ``kernel_hyper``: MXNet passes momentum only when positive and
        clips only for a truthy ``clip_gradient``."""
        momentum = self.momentum if self.momentum > 0 else 0.0
        return (momentum, self.rescale_grad, kernel_clip(self.clip_gradient))
