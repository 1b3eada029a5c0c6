"""Nesterov accelerated gradient, MXNet 1.6 semantics. Spec: optimizers.md §3."""

from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from ._kernel import MomentumKernelOptimizer, _states_tuple, is_row_sparse
from .base import register

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
    ``sgd_update`` updates only the gradient's rows.

    Parameters
    ----------
    momentum : float
        Momentum; ``0`` keeps no state.
    **kwargs
        The :class:`Optimizer` arguments.
    """

    def update(self, index: Hashable, weight: np.ndarray, grad: Any, state: Any) -> None:
        """Update ``weight`` in place."""
        self._update_impl(index, weight, grad, state, master=None)

    def update_multi_precision(
        self, index: Hashable, weight: np.ndarray, grad: Any, state: Any
    ) -> None:
        """Update through the float32 master copy for float16 weights."""
        mixed = self.multi_precision and getattr(weight, "dtype", None) == np.float16
        if mixed and isinstance(state, (tuple, list)):
            mom, master = self._momentum_and_master(state)
            self._update_impl(index, weight, grad, mom, master=master)
        else:
            self._update_impl(index, weight, grad, state, master=None)

    def _update_impl(
        self, index: Hashable, weight: np.ndarray, grad: Any, mom: Any, master: Any
    ) -> None:
        steps = self._preamble([index])
        kernel = self._kernel("sgd" if mom is None else "nag_mom", self._hyper())
        if is_row_sparse(grad):
            if mom is None and master is None:
                lazy = True  # sgd_update's default
                self._run_rows(kernel, lazy, weight, grad, (), *(s[0] for s in steps[:3]))
                return
            grad = grad.todense()
        masters = None if master is None else [master]
        self._run_dense(kernel, [weight], [grad], _states_tuple(mom), steps, masters)
