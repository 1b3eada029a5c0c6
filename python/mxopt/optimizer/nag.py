"""Nesterov accelerated gradient, MXNet 1.6 semantics. Spec: optimizers.md §3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple

import numpy as np

from ._kernel import (
    MomentumKernelOptimizer,
    Steps,
    _pick,
    _states_tuple,
    as_lists,
    is_row_sparse,
    precheck,
    restored_on_error,
)
from .base import _aggregation_size_from_env, register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargs

__all__ = ["NAG"]


@register
class NAG(MomentumKernelOptimizer):
    """Nesterov momentum SGD.

    With ``Ĝ = clip(rescale_grad·g)`` and ``m1 = momentum·m``::

        w' = (w - m1) + (momentum + 1)·(m1 - lr·(Ĝ + wd·w))
        m' = m1 - lr·(Ĝ + wd·w')

    The momentum update reads the *new* weight, as MXNet's in-place kernel does. Without
    momentum the update is plain SGD (MXNet's ``sgd_update``: ``(1 - lr·wd)·w - lr·Ĝ``).
    Row-sparse gradients are densified, except without momentum, where MXNet's
    ``sgd_update`` updates only the gradient's rows. Lists of weights run as one native
    call per dtype (MXNet updates them one by one; the numbers are the same).

    Parameters
    ----------
    momentum : float
        Momentum; ``0`` keeps no state.
    **kwargs
        The :class:`Optimizer` arguments.
    """

    aggregates_by_dtype = False

    float16_advice = "NAG optimizer"

    def __init__(self, momentum: float = 0.0, **kwargs: Unpack[OptimizerKwargs]) -> None:
        super().__init__(momentum=momentum, **kwargs)
        self.aggregate_num = _aggregation_size_from_env()

    def update(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update one weight (or lists of them) in place."""
        self._update_impl(index, weight, grad, state, multi_precision=False)

    def update_multi_precision(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update through the float32 master copy each float16 weight whose state is a
        ``(momentum, master)`` pair (MXNet's condition)."""
        self._update_impl(index, weight, grad, state, multi_precision=self.multi_precision)

    def _update_impl(
        self, indices: Any, weights: Any, grads: Any, states: Any, multi_precision: bool
    ) -> None:
        indices, weights, grads, states = as_lists(indices, weights, grads, states)
        steps = self._sequential_preamble(indices)
        hyper = self._hyper()
        # (kernel, dtype, through a master copy) -> positions; each group is one call.
        groups: Dict[Tuple[str, Any, bool], List[int]] = {}
        dense_grads, moms = list(grads), list(states)
        masters: List[Any] = [None] * len(states)
        rows = []
        for i, (weight, grad, state) in enumerate(zip(weights, grads, states)):
            dtype = getattr(weight, "dtype", None)
            if multi_precision and dtype == np.float16 and isinstance(state, (tuple, list)):
                moms[i], masters[i] = self._momentum_and_master(state)
            if is_row_sparse(grad):
                if moms[i] is None and masters[i] is None:
                    rows.append(i)  # sgd_update's own row-sparse path
                    continue
                dense_grads[i] = grad.todense()
            kernel = self._kernel_name(moms[i])
            groups.setdefault((kernel, dtype, masters[i] is not None), []).append(i)
        if len(groups) + len(rows) > 1:
            precheck(weights, grads, [_states_tuple(m) for m in moms], masters, steps)
        written = [*weights, *[m for m in moms if isinstance(m, np.ndarray)]]
        written += [m for m in masters if m is not None]
        with restored_on_error(written, len(groups) + len(rows) > 1):
            self._run_split(weights, grads, dense_grads, moms, masters, steps, hyper, groups, rows)

    @staticmethod
    def _kernel_name(momentum_state: Any) -> str:
        """``nag_mom`` for a weight with a momentum state, else MXNet's ``sgd_update``
        (also the GPU path's choice)."""
        return "sgd" if momentum_state is None else "nag_mom"

    def _run_split(
        self,
        weights: Sequence[Any],
        grads: Sequence[Any],
        dense_grads: Sequence[Any],
        moms: Sequence[Any],
        masters: Sequence[Any],
        steps: Steps,
        hyper: Tuple[Any, ...],
        groups: Dict[Tuple[str, Any, bool], List[int]],
        rows: Sequence[int],
    ) -> None:
        """The native calls: one per (kernel, dtype, precision) group, then one per
        row-sparse gradient on ``sgd_update``'s own sparse path."""
        for (kernel, _, mixed), group in groups.items():
            self._run_dense(
                self._kernel(kernel, hyper),
                [weights[i] for i in group],
                [dense_grads[i] for i in group],
                [m for i in group for m in _states_tuple(moms[i])],
                _pick(steps, group),
                [masters[i] for i in group] if mixed else None,
            )
        for i in rows:
            lazy = True  # sgd_update's default
            lr, wd, t = steps[0][i], steps[1][i], steps[2][i]
            self._run_rows(self._kernel("sgd", hyper), lazy, weights[i], grads[i], (), lr, wd, t)
