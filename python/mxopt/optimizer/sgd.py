"""SGD with momentum, MXNet 1.6 semantics. Spec: optimizers.md §2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from ._kernel import (
    MomentumKernelOptimizer,
    Steps,
    _states_tuple,
    as_lists,
    check_momentum_states,
    is_row_sparse,
    precheck,
    restored_on_error,
    single_sgd_kernel,
)
from .base import _aggregation_size_from_env, register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargs

__all__ = ["SGD", "ccSGD"]


@register
class SGD(MomentumKernelOptimizer):
    """Stochastic gradient descent with optional momentum.

    Per element, with ``G = lr·clip(rescale_grad·g)`` (clipped only when ``clip_gradient``
    is truthy and positive)::

        m = momentum·m - lr·wd·w - G
        w = w + m

    The momentum buffer holds the negative, lr-scaled velocity, as in MXNet. Dense
    gradients go through one multi-tensor call for a whole list of weights (no limit on
    its length); row-sparse gradients update only their rows when ``lazy_update`` is
    true, every row otherwise. With ``multi_precision=True`` float16 weights are updated
    through a float32 master copy; the state is then ``(momentum or None, master)``.

    Parameters
    ----------
    momentum : float
        Momentum; ``0`` keeps no state.
    lazy_update : bool
        Row-sparse gradients touch only their own rows (weight decay included).
    **kwargs
        The :class:`Optimizer` arguments (``learning_rate``, ``wd``, ``rescale_grad``,
        ``clip_gradient``, ``lr_scheduler``, ``multi_precision``, ...).

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.SGD(learning_rate=0.1, momentum=0.9)
    >>> w = np.ones(3, dtype=np.float32)
    >>> opt.update(0, w, np.full(3, 0.5, dtype=np.float32), opt.create_state(0, w))
    >>> w
    array([0.95, 0.95, 0.95], dtype=float32)
    """

    def __init__(
        self, momentum: float = 0.0, lazy_update: bool = True, **kwargs: Unpack[OptimizerKwargs]
    ) -> None:
        super().__init__(momentum=momentum, **kwargs)
        self.lazy_update = lazy_update
        self.aggregate_num = _aggregation_size_from_env()

    def update(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update one weight (or lists of them), in place."""
        self._update_impl(index, weight, grad, state, multi_precision=False)

    def update_multi_precision(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update through the float32 master copy when the (first) weight is float16."""
        first = weight[0] if isinstance(weight, (list, tuple)) else weight
        mp = self.multi_precision and getattr(first, "dtype", None) == np.float16
        self._update_impl(index, weight, grad, state, multi_precision=mp)

    def _update_impl(
        self,
        indices: Any,
        weights: Any,
        grads: Any,
        states: Any,
        multi_precision: bool,
    ) -> None:
        indices, weights, grads, states = as_lists(indices, weights, grads, states)
        moms: Sequence[Any]
        masters: Optional[List[Any]]
        if multi_precision:
            pairs = [self._momentum_and_master(state) for state in states]
            moms, masters = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            moms, masters = states, None
        check_momentum_states(moms)
        steps = self._preamble(indices)
        hyper = self._hyper()

        if not any(map(is_row_sparse, grads)):
            kernel, reads_momentum = self._dense_kernel(hyper)
            flat_states = list(moms) if reads_momentum else []
            self._run_dense(kernel, weights, grads, flat_states, steps, masters)
            return

        if len(weights) > 1:
            per_weight = [_states_tuple(m) for m in moms]
            precheck(weights, grads, per_weight, masters or [None] * len(weights), steps)
        written = [*weights, *[m for m in moms if m is not None], *(masters or [])]
        with restored_on_error(written, len(weights) > 1):
            self._run_split(weights, grads, moms, masters, steps, hyper, multi_precision)

    def _dense_kernel(self, hyper: Tuple[Any, ...]) -> Tuple[_core.Kernel, bool]:
        """The kernel of dense gradients and whether it reads the momentum state: MXNet
        always takes the multi-tensor kernel, with the momentum only when it is positive
        (also the GPU path's choice)."""
        if hyper[0] > 0:
            return self._kernel("multi_sgd_mom", hyper), True
        return self._kernel("multi_sgd", hyper), False

    def _run_split(
        self,
        weights: Sequence[Any],
        grads: Sequence[Any],
        moms: Sequence[Any],
        masters: Any,
        steps: Steps,
        hyper: Tuple[Any, ...],
        multi_precision: bool,
    ) -> None:
        """One native call per tensor (a list with a row-sparse gradient is not aggregated)."""
        lrs, wds, ts, _ = steps
        for i, (weight, grad, mom) in enumerate(zip(weights, grads, moms)):
            # Row-sparse calls pick the kernel by the state, not by the momentum.
            kernel = self._kernel(single_sgd_kernel(mom, grad, self.lazy_update), hyper)
            states = _states_tuple(mom)
            if masters is not None:
                # The multi-precision kernels have no sparse path: MXNet densifies.
                dense = grad.todense() if is_row_sparse(grad) else grad
                _core.step_mixed(kernel, weight, dense, masters[i], states, lrs[i], wds[i], ts[i])
            elif is_row_sparse(grad):
                lazy = self.lazy_update
                self._run_rows(kernel, lazy, weight, grad, states, lrs[i], wds[i], ts[i])
            else:
                _core.step(kernel, weight, grad, states, lrs[i], wds[i], ts[i])


@register
class ccSGD(SGD):
    """Deprecated alias of :class:`SGD`, kept because MXNet 1.6 registers ``ccsgd``."""
