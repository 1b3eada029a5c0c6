"""LBSGD, large-batch SGD with warm-up and gradient accumulation, MXNet 1.6 semantics.
Spec: optimizers.md §7."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Dict, Hashable, Tuple

import numpy as np

from .. import _core
from ..sparse import RowSparseNDArray
from ._kernel import (
    MomentumKernelOptimizer,
    as_lists,
    is_row_sparse,
    precheck,
    restored_on_error,
)
from ._layerwise import check_kernel_params, describe, finite_scaled_lr
from .base import Optimizer, register, warn_float16_without_multi_precision

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargsNoMP

__all__ = ["LBSGD"]


def _shaped(cum: Any, grad: Any) -> Any:
    """An accumulator loaded from a checkpoint (the Rust side writes flat arrays, rows of
    one value run) in the gradient's shape; a checked error for one of another size."""
    if isinstance(cum, int) or cum.shape == grad.shape:
        return cum
    same_rows = not is_row_sparse(cum) or cum.shape[0] == grad.shape[0]
    if int(np.prod(cum.shape)) != int(np.prod(grad.shape)) or not same_rows:
        raise ValueError(
            f"grad: shape {grad.shape} does not fit the gradients accumulated so far, of shape "
            f"{cum.shape}"
        )
    if is_row_sparse(cum):
        data = cum.data.reshape((len(cum.indices), *grad.shape[1:]))
        return RowSparseNDArray(data, cum.indices, grad.shape)
    return cum.reshape(grad.shape)


def _accumulate(cum: Any, grad: Any) -> Any:
    """``cum + grad`` as NDArray addition gives it: a new array (row-sparse when both
    are, over the union of their rows)."""
    cum = _shaped(cum, grad)
    if isinstance(cum, int):  # the 0 left by a reset; a row-sparse gradient stays so
        zero = grad.dtype.type(cum)
        if is_row_sparse(grad):
            return RowSparseNDArray(grad.data + zero, grad.indices, grad.shape)
        return np.asarray(grad + zero)  # NumPy gives a scalar for 0-d operands
    if is_row_sparse(cum) and is_row_sparse(grad):
        rows = np.union1d(cum.indices, grad.indices)
        data = np.empty((rows.size, *cum.shape[1:]), dtype=cum.dtype)
        data[np.searchsorted(rows, cum.indices)] = cum.data
        shared = np.isin(grad.indices, cum.indices)
        at = np.searchsorted(rows, grad.indices)
        data[at[~shared]] = grad.data[~shared]
        data[at[shared]] += grad.data[shared]
        return RowSparseNDArray(data, rows, cum.shape)
    dense = [x.todense() if is_row_sparse(x) else x for x in (cum, grad)]
    return np.asarray(dense[0] + dense[1])


def _mean(cum: Any, count: Any) -> Any:
    """``cum / count`` in ``cum``'s dtype (row-sparse stays row-sparse). Dividing by 1 is
    exact, so with ``batch_scale=1`` the gradient itself is used (no full-size copy)."""
    if count == 1:
        return cum
    if is_row_sparse(cum):
        return RowSparseNDArray(cum.data / cum.dtype.type(count), cum.indices, cum.shape)
    return np.asarray(cum / cum.dtype.type(count))


def _squared_norm(v: Any) -> float:
    """MXNet's ``LBSGD._l2norm``: the *squared* norm, element squares summed by NumPy in
    the array's dtype."""
    dense = v.todense() if is_row_sparse(v) else v
    return float(np.multiply(dense, dense).sum())


def _check_arrays(weight: Any, grad: Any) -> None:
    if not isinstance(weight, np.ndarray):
        raise TypeError(f"weight: expected a numpy.ndarray, got {type(weight).__name__}")
    if not (isinstance(grad, np.ndarray) or is_row_sparse(grad)):
        raise TypeError(f"grad: expected a numpy.ndarray, got {type(grad).__name__}")
    if grad.shape != weight.shape or grad.dtype != weight.dtype:
        raise ValueError(
            f"grad: expected the weight's shape {weight.shape} and dtype {weight.dtype}, "
            f"got {grad.shape} {grad.dtype}"
        )


@register
class LBSGD(MomentumKernelOptimizer):
    """SGD for large batches: gradients accumulated over ``batch_scale`` calls, and a
    learning-rate multiplier that warms up over ``warmup_epochs·updates_per_epoch`` steps.

    Each call for an index adds its gradient to that index's accumulator. When the count
    of accumulated gradients (starting at ``begin_epoch·updates_per_epoch + 1``) is a
    multiple of ``batch_scale``, the mean gradient updates the weight with SGD (momentum
    optional) at ``lr·multiplier``, and the accumulator is reset. Other calls leave the
    weight as it is (they run an update with learning rate 0). The multiplier after
    ``nup`` accumulated steps, with ``M = batch_scale`` and ``N`` warm-up steps, is
    ``1 + (M-1)·nup/N`` (``'linear'``), ``1 + (M-1)·(nup/N)²`` (``'power2'``),
    ``1 + (M-1)·sqrt(nup/N)`` (``'sqrt'``) and ``M`` once ``nup ≥ N``; ``'lars'`` uses
    ``sqrt(‖w‖²/(‖ḡ‖² + wd·‖w‖² + 1e-18))`` clipped to ``[0.01, 100]`` instead.

    As in MXNet 1.6: the learning rate is read *before* the update is counted; the first
    gradient of an accumulation is kept by reference (not copied), so a caller that
    overwrites its gradient buffer changes the accumulated sum; and with the
    :class:`Updater`, ``multi_precision`` runs the generic float32 path with state
    ``(master, momentum or None)``.

    Parameters
    ----------
    momentum : float
        Momentum; ``0`` keeps no state.
    multi_precision : bool
        Keep float32 master copies of float16 weights.
    warmup_strategy : str
        ``'linear'``, ``'power2'``, ``'sqrt'`` or ``'lars'`` (any other: multiplier 1).
    warmup_epochs, updates_per_epoch : int
        The warm-up lasts ``warmup_epochs·updates_per_epoch`` accumulated steps.
    batch_scale : int
        Gradients accumulated per update, and the final multiplier.
    begin_epoch : int
        Epoch training starts at (the accumulation count starts past it).
    num_epochs : int
        Stored, unused (as in MXNet).
    **kwargs
        The :class:`Optimizer` arguments.
    """

    def __init__(
        self,
        momentum: float = 0.0,
        multi_precision: bool = False,
        warmup_strategy: str = "linear",
        warmup_epochs: int = 5,
        batch_scale: int = 1,
        updates_per_epoch: int = 32,
        begin_epoch: int = 0,
        num_epochs: int = 60,
        **kwargs: Unpack[OptimizerKwargsNoMP],
    ) -> None:
        super().__init__(momentum=momentum, **kwargs)
        logging.info("Running Large-Batch SGD Algorithm")
        logging.info(
            "(Batch_scale=%f, warmup_epochs=%d, warmup_strategy=%s, updates_per_epoch=%d)",
            batch_scale,
            warmup_epochs,
            warmup_strategy,
            updates_per_epoch,
        )
        self.multi_precision = multi_precision
        self.warmup_strategy = warmup_strategy
        self.warmup_epochs = warmup_epochs
        self.batch_scale = batch_scale
        self.updates_per_epoch = updates_per_epoch
        self.init_updates = begin_epoch * updates_per_epoch
        self.num_epochs = num_epochs
        self.lbmult = 1
        self.cumgrads: Dict[Hashable, Dict[str, Any]] = {}
        self.adaptive = False
        self.admult = 1

    # MXNet's LBSGD keeps the base class's generic layout ``(master, state)`` here.
    create_state_multi_precision = Optimizer.create_state_multi_precision

    def create_state(self, index: Hashable, weight: np.ndarray) -> Any:
        """Momentum (or ``None``); ``(momentum or None, float32 master)`` for a float16
        weight with ``multi_precision``."""
        if self.multi_precision and weight.dtype == np.float16:
            master = weight.astype(np.float32)
            momentum = np.zeros(weight.shape, np.float32) if self.momentum != 0.0 else None
            return (momentum, master)
        if weight.dtype == np.float16:
            warn_float16_without_multi_precision("SGD optimizer")
        return np.zeros_like(weight) if self.momentum != 0.0 else None

    def _get_lbmult(self, nup: int) -> float:
        """The warm-up multiplier after ``nup`` accumulated steps."""
        nwup = self.warmup_epochs * self.updates_per_epoch
        maxmult = float(self.batch_scale)
        if nup >= nwup:
            return maxmult
        if nwup <= 1:
            return 1.0
        if self.warmup_strategy == "linear":
            return 1.0 + (maxmult - 1) * nup / nwup
        if self.warmup_strategy == "power2":
            return 1.0 + (maxmult - 1) * (nup * nup) / (nwup * nwup)
        if self.warmup_strategy == "sqrt":
            return 1.0 + (maxmult - 1) * math.sqrt(float(nup) / nwup)
        return 1.0

    def _get_lars(self, weight: np.ndarray, grad: Any, wd: float) -> float:
        """The ``'lars'`` multiplier from squared norms, clipped to ``[0.01, 100]``."""
        weight2 = _squared_norm(weight)
        grad2 = _squared_norm(grad)
        lars = math.sqrt(weight2 / (grad2 + wd * weight2 + 1e-18))
        return min(max(lars, 0.01), 100.0)

    def _accumulated(self, grad: Any, index: Hashable) -> Dict[str, Any]:
        """``index``'s accumulator with ``grad`` added (a fresh one holds ``grad`` itself),
        not stored yet: the caller stores it once nothing can refuse the update."""
        cgrad = self.cumgrads.get(index)
        if cgrad and cgrad["num_cums"] > 0:
            return {
                "cum_grad": _accumulate(cgrad["cum_grad"], grad),
                "num_cums": cgrad["num_cums"] + 1,
            }
        return {"cum_grad": grad, "num_cums": self.init_updates + 1}

    def update(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Accumulate ``grad`` and, every ``batch_scale`` calls, update ``weight`` in place.
        Lists of indices, weights, grads and states are processed one index at a time."""
        if isinstance(index, (list, tuple)):
            index, weight, grad, state = as_lists(index, weight, grad, state)
            # Every tensor is checked before the first one is updated (or accumulated).
            parts = [self._split_state(s) for s in state]
            for i, w, g in zip(index, weight, grad):
                _check_arrays(w, g)
                self._check_accumulator(i, g)
            n = len(weight)
            precheck(
                weight,
                grad,
                [() if m is None else (m,) for m, _ in parts],
                [master for _, master in parts],
                ([0.0] * n, [0.0] * n, [0] * n, None),
            )
            written = [w for w in weight] + [a for m in parts for a in m]
            with restored_on_error(written, n > 1):
                for i, w, g, s in zip(index, weight, grad, state):
                    self.update(i, w, g, s)
            return
        check_kernel_params(self, "momentum", "rescale_grad", "clip_gradient", "batch_scale")
        if not self.batch_scale > 0:
            raise ValueError(f"batch_scale must be positive, got {self.batch_scale!r}")
        momentum, master = self._split_state(state)
        _check_arrays(weight, grad)  # before anything is counted or accumulated
        self._check_accumulator(index, grad)
        lr = self._get_lr(index)
        wd = self._get_wd(index)
        cgrad = self._accumulated(grad, index)
        finishes = cgrad["num_cums"] % self.batch_scale == 0
        if finishes:
            mean = _mean(cgrad["cum_grad"], self.batch_scale)
            if self.warmup_strategy == "lars":
                # Refused (an infinite weight or gradient) before anything is counted.
                lr = finite_scaled_lr(index, lr * self._get_lars(weight, mean, wd))
            else:
                lr *= self._get_lbmult(cgrad["num_cums"])
        self._update_count(index)
        t = self._index_update_count[index]
        self.cumgrads[index] = cgrad
        if not finishes:
            # MXNet's placeholder update: lr 0, default rescale and no clip.
            kernel = self._kernel("sgd", (0.0, 1.0, None))
            self._step(kernel, weight, grad, (), None, 0.0, wd, t)
            return
        kernel = self._kernel("sgd" if momentum is None else "sgd_mom", self._hyper())
        states = () if momentum is None else (momentum,)
        self._step(kernel, weight, mean, states, master, lr, wd, t)
        cgrad["cum_grad"] = 0

    def _check_accumulator(self, index: Hashable, grad: Any) -> None:
        """Raise ``ValueError`` if ``grad`` does not fit the gradients ``index`` has
        accumulated (one loaded from a checkpoint may have another shape)."""
        cgrad = self.cumgrads.get(index)
        if cgrad and cgrad["num_cums"] > 0:
            _shaped(cgrad["cum_grad"], grad)

    @staticmethod
    def _split_state(state: Any) -> Tuple[Any, Any]:
        """``(momentum or None, master or None)`` of one state object, checked."""
        mixed = isinstance(state, (tuple, list))
        if mixed and not (len(state) == 2 and isinstance(state[1], np.ndarray)):
            raise TypeError(
                f"state: expected (momentum or None, float32 master), got {describe(state)}"
            )
        momentum = state[0] if mixed else state
        if momentum is not None and not isinstance(momentum, np.ndarray):
            raise TypeError(f"state: expected a momentum array or None, got {describe(momentum)}")
        return momentum, state[1] if mixed else None

    def _step(
        self,
        kernel: _core.Kernel,
        weight: np.ndarray,
        grad: Any,
        states: Tuple[np.ndarray, ...],
        master: Any,
        lr: float,
        wd: float,
        t: int,
    ) -> None:
        if master is not None:
            # The multi-precision kernels have no sparse path: MXNet densifies.
            dense = grad.todense() if is_row_sparse(grad) else grad
            _core.step_mixed(kernel, weight, dense, master, states, lr, wd, t)
        elif is_row_sparse(grad):
            self._run_rows(kernel, True, weight, grad, states, lr, wd, t)  # kernels' lazy default
        else:
            _core.step(kernel, weight, grad, states, lr, wd, t)
