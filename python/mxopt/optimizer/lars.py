"""LARS, layer-wise adaptive rate scaling, MXNet 1.6 semantics. Spec: optimizers.md §6."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from ._kernel import (
    MomentumKernelOptimizer,
    is_row_sparse,
    kernel_clip,
    restored_on_error,
    single_sgd_kernel,
)
from ._layerwise import (
    EXCLUDED_SUFFIXES,
    check_kernel_params,
    describe,
    finite_scaled_lr,
    layer_name,
)
from .base import _aggregation_size_from_env, register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargs

__all__ = ["LARS"]


@register
class LARS(MomentumKernelOptimizer):
    """SGD with momentum whose learning rate is scaled per layer by its trust ratio.

    For a layer with weight ``w`` and raw gradient ``g`` (dense gradients)::

        lr_layer = lr·eta·‖w‖ / (‖g‖·rescale_grad + wd·‖w‖ + eps)   if ‖w‖ > 0 and ‖g‖ > 0

    then the SGD momentum update of :class:`SGD` runs with ``lr_layer``. Layers whose name
    (``param_idx2name``, else ``str(index)``) ends in ``gamma``, ``beta`` or ``bias`` keep
    their learning rate, and only names ending in ``_weight`` keep weight decay. With
    ``momentum_correction`` the momentum is scaled by ``lr/previous lr`` of the scheduler.

    Dense gradients: one native call for a whole list (norms, ratios and update), in
    MXNet's float32 order (``multi_sum_sq``, ``multi_lars``, ``preloaded_multi_sgd``).
    Row-sparse gradients: norms of the float32 weight and ``rescale_grad·g`` rows, then
    SGD's lazy or standard row update. ``multi_precision=True`` keeps ``(momentum,
    float32 master)`` for float16 weights; norms are then taken of the float16 arrays.

    Parameters
    ----------
    momentum : float
        Momentum; ``0`` keeps no state.
    lazy_update : bool
        Row-sparse gradients touch only their own rows.
    eta : float
        Trust coefficient.
    eps : float
        Added to the ratio's denominator.
    momentum_correction : bool
        Scale the momentum by ``cur_lr/last_lr`` when the scheduler changes the rate.
    exact_norms : bool
        ``True`` (default): norms bit-exact with MXNet, one sequential pass per layer
        (layers in parallel). ``False``: blocked parallel sums in float64, identical at
        any thread count but not MXNet's last bit — faster for a few very large layers.
    **kwargs
        The :class:`Optimizer` arguments.
    """

    def __init__(
        self,
        momentum: float = 0.0,
        lazy_update: bool = True,
        eta: float = 0.001,
        eps: float = 0,
        momentum_correction: bool = True,
        exact_norms: bool = True,
        **kwargs: Unpack[OptimizerKwargs],
    ) -> None:
        super().__init__(momentum=momentum, **kwargs)
        self.lazy_update = lazy_update
        self.aggregate_num = _aggregation_size_from_env()
        self.eta = eta
        self.eps = eps
        self.momentum_correction = momentum_correction
        self.exact_norms = exact_norms
        self.skip = 0
        self.last_lr: Optional[float] = None
        self.cur_lr: Optional[float] = None

    def set_wd_mult(self, args_wd_mult: Dict[Hashable, float]) -> None:
        """Like :meth:`Optimizer.set_wd_mult`, but only ``*_weight`` names keep weight decay."""
        self.wd_mult = {n: 0.0 for n in self.idx2name.values() if not n.endswith("_weight")}
        self.wd_mult.update(self._symbol_attribute("__wd_mult__"))
        self.wd_mult.update(args_wd_mult)

    def _get_lrs(self, indices: Sequence[Hashable]) -> List[float]:
        """Learning rates, remembering this and the previous call's scheduler rate."""
        if self.cur_lr is not None:
            self.last_lr = self.cur_lr
        lr: float = self.learning_rate  # the scheduler's rate at num_update, else lr
        if self.cur_lr is None:
            self.last_lr = lr
        self.cur_lr = lr
        return self._apply_multipliers(lr, indices, self.lr_mult, "lr_mult")

    def update(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update one weight (or lists of them), in place."""
        self._update_impl(index, weight, grad, state, multi_precision=False)

    def update_multi_precision(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update float16 weights through their float32 master copies (with
        ``multi_precision``); other weights as :meth:`update` does."""
        self._update_impl(index, weight, grad, state, multi_precision=self.multi_precision)

    def _momentum(self) -> float:
        """The momentum handed to the kernels, corrected by the scheduler's lr ratio."""
        if self.momentum_correction and self.last_lr != 0:
            assert self.cur_lr is not None and self.last_lr is not None
            return self.momentum * (self.cur_lr / self.last_lr)
        return self.momentum

    def _split_states(
        self, weights: Sequence[Any], states: Sequence[Any], multi_precision: bool
    ) -> Tuple[List[Any], List[Any]]:
        """``(momentum or None, master or None)`` per weight, structure checked."""
        moms: List[Any] = []
        masters: List[Any] = []
        for i, (weight, state) in enumerate(zip(weights, states)):
            where = f" at position {i}" if len(weights) > 1 else ""
            mixed = multi_precision and getattr(weight, "dtype", None) == np.float16
            if mixed:
                if not (
                    isinstance(state, (tuple, list))
                    and len(state) == 2
                    and isinstance(state[1], np.ndarray)
                ):
                    raise TypeError(
                        "state: expected (momentum or None, float32 master) for a float16 "
                        f"weight with multi_precision, got {describe(state)}{where}"
                    )
                mom, master = state
            else:
                mom, master = state, None
            if not (mom is None or isinstance(mom, np.ndarray)):
                raise TypeError(
                    f"state: expected a momentum array or None, got {describe(mom)}{where}"
                )
            if self.momentum > 0 and not isinstance(mom, np.ndarray):
                raise TypeError(
                    f"state: expected a momentum array (momentum > 0), got {describe(mom)}{where}"
                )
            moms.append(mom if isinstance(mom, np.ndarray) else None)
            masters.append(master)
        return moms, masters

    def _update_impl(
        self, indices: Any, weights: Any, grads: Any, states: Any, multi_precision: bool
    ) -> None:
        if not isinstance(indices, (list, tuple)):
            indices, weights, grads, states = [indices], [weights], [grads], [states]
        self._check_params()
        moms, masters = self._split_states(weights, states, multi_precision)
        lrs, wds, ts, momentum = self._lars_preamble(indices)
        hyper = (momentum, self.rescale_grad, kernel_clip(self.clip_gradient))

        if not any(map(is_row_sparse, grads)):
            scaled = self._scaled(indices)
            # One native call per (dtype, multi-precision) group; per-layer numbers do not
            # depend on the grouping (MXNet's Updater groups by dtype too).
            groups: Dict[Tuple[Any, bool], List[int]] = {}
            for i, weight in enumerate(weights):
                key = (getattr(weight, "dtype", None), masters[i] is not None)
                groups.setdefault(key, []).append(i)
            # Each native call checks its tensors (and their scaled rates, which depend on
            # norms) before writing; when a later group refuses, the groups already
            # written are restored, so that a refused call leaves every array as it was.
            written = [a for i in range(len(weights)) for a in (weights[i], moms[i], masters[i])]
            # Each native call checks its tensors (and their norm-scaled rates) before
            # writing; when a later group refuses, the groups already written are restored.
            with restored_on_error(written, len(groups) > 1):
                for (_, mixed), group in groups.items():
                    _core.lars_many(
                        [weights[i] for i in group],
                        [grads[i] for i in group],
                        [moms[i] for i in group] if self.momentum > 0 else [],
                        [lrs[i] for i in group],
                        [wds[i] for i in group],
                        [ts[i] for i in group],
                        [scaled[i] for i in group],
                        [masters[i] for i in group] if mixed else None,
                        exact_norms=self.exact_norms,
                        **self._kernel_kwargs(momentum),
                    )
            return

        written = [a for i in range(len(weights)) for a in (weights[i], moms[i], masters[i])]
        with restored_on_error(written, len(weights) > 1):
            self._rows_update(indices, weights, grads, moms, masters, lrs, wds, ts, hyper)

    def _check_params(self) -> None:
        """Refuses hyper-parameters the kernels cannot take, before anything is counted."""
        check_kernel_params(self, "eta", "eps", "momentum", "rescale_grad", "clip_gradient")

    def _lars_preamble(
        self, indices: Sequence[Hashable]
    ) -> Tuple[List[float], List[float], List[int], float]:
        """Count the indices, then their lrs, wds and counts and the call's momentum
        (corrected by the scheduler's lr ratio); shared with the GPU path."""
        self._update_count(indices)
        lrs = self._get_lrs(indices)
        wds = self._get_wds(indices)
        ts = [self._index_update_count[i] for i in indices]
        momentum = self._momentum() if self.momentum > 0 else 0.0
        return lrs, wds, ts, momentum

    def _scaled(self, indices: Sequence[Hashable]) -> List[bool]:
        """Whether each layer's rate is scaled by its trust ratio (by its name)."""
        return [not layer_name(self, i).endswith(EXCLUDED_SUFFIXES) for i in indices]

    def _kernel_kwargs(self, momentum: float) -> Dict[str, Any]:
        """The layer-wise kernels' hyper-parameters, with the call's ``momentum``."""
        return {
            "eta": self.eta,
            "eps": self.eps,
            "momentum": momentum,
            "rescale_grad": self.rescale_grad,
            "clip_gradient": kernel_clip(self.clip_gradient),
        }

    def _rows_update(
        self,
        indices: Sequence[Any],
        weights: Sequence[Any],
        grads: Sequence[Any],
        moms: Sequence[Any],
        masters: Sequence[Any],
        lrs: Sequence[float],
        wds: Sequence[float],
        ts: Sequence[int],
        hyper: Tuple[Any, ...],
    ) -> None:
        """One call per index (a list with a row-sparse gradient is not aggregated)."""
        for i, index in enumerate(indices):
            weight, grad, mom, master = weights[i], grads[i], moms[i], masters[i]
            lr = self._get_lars(index, weight, grad, lrs[i], wds[i])
            # Row-sparse calls pick the kernel by the state, not by the momentum.
            kernel = self._kernel(single_sgd_kernel(mom, grad, self.lazy_update), hyper)
            kernel_states = () if mom is None else (mom,)
            if master is not None:
                # The multi-precision kernels have no sparse path: MXNet densifies.
                dense = grad.todense() if is_row_sparse(grad) else grad
                _core.step_mixed(kernel, weight, dense, master, kernel_states, lr, wds[i], ts[i])
            elif is_row_sparse(grad):
                self._run_rows(
                    kernel, self.lazy_update, weight, grad, kernel_states, lr, wds[i], ts[i]
                )
            else:
                _core.step(kernel, weight, grad, kernel_states, lr, wds[i], ts[i])

    def _get_lars(
        self, index: Hashable, weight: np.ndarray, grad: Any, lr: float, wd: float
    ) -> float:
        """The row-sparse path's scaled rate (MXNet's ``_get_lars``): norms of the float32
        weight and of ``rescale_grad·g`` in float32, ratio in Python floats."""
        if layer_name(self, index).endswith(EXCLUDED_SUFFIXES):
            return lr
        exact = self.exact_norms
        (w_norm,) = _core.norm([np.ascontiguousarray(weight, dtype=np.float32)], exact=exact)
        sparse = is_row_sparse(grad)
        # asarray: a malformed grad reaches the kernel, which names what is wrong with it.
        values = np.asarray(grad.data if sparse else grad, dtype=np.float32)
        values = values * np.float32(self.rescale_grad)
        # MXNet's norm of a row-sparse array follows another recipe than a dense one's.
        (g_norm,) = _core.norm([values], exact=exact, row_sparse=sparse)
        if w_norm > 0.0 and g_norm > 0.0:
            return finite_scaled_lr(
                index, self.eta * w_norm / (g_norm + wd * w_norm + self.eps) * lr
            )
        return lr
