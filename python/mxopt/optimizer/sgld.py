"""SGLD (stochastic gradient Langevin dynamics), MXNet 1.6 semantics. Spec: optimizers.md
§10."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .. import _core, random
from ._kernel import AdaptiveKernelOptimizer, Steps
from .base import register

__all__ = ["SGLD"]


@register
class SGLD(AdaptiveKernelOptimizer):
    """Stochastic gradient Langevin dynamics (Welling & Teh, 2011).

    Per element, with ``ĝ = pyclip(rescale_grad·g)``::

        w = w - lr/2·(ĝ + wd·w) + N(0, sqrt(lr))

    as MXNet 1.6's Python code computes it (every operation rounds in the weight's dtype;
    the noise is drawn in that dtype too). The noise of each update comes from mxopt's
    global generator: one fresh stream per weight per update, so
    ``mxopt.random.seed(n)`` replays a trajectory exactly, whatever the thread count. The
    draw equals ``mxopt.random.normal(0, sqrt(lr), out)`` for an array ``out`` of the
    weight's dtype and size with the same stream. Set ``add_noise = False`` for the
    deterministic part only. There is no state (``None``).

    :class:`mxopt.gpu.Updater` draws the noise on the device from the same streams (taken
    in the same order, so the same seed replays a GPU run too), with another normal
    generator: the GPU noise has the same distribution, not the CPU's values.

    Parameters
    ----------
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.SGLD(learning_rate=0.1)
    >>> opt.add_noise = False
    >>> w = np.ones(2, dtype=np.float64)
    >>> opt.update(0, w, np.full(2, 0.5), None)
    >>> w
    array([0.975, 0.975])
    """

    kernel = "sgld"
    kernel_hyper = ("rescale_grad", "clip_gradient")
    state_names = ()
    state_tuple = False
    #: Add the Langevin noise (``False``: only the deterministic half step).
    add_noise: bool = True

    def _hyper(self) -> Tuple[Any, ...]:
        return (self.rescale_grad, self.clip_gradient)

    def _update_impl(
        self, indices: Any, weights: Any, grads: Any, states: Any, multi_precision: bool
    ) -> None:
        # A list may run as several native calls (one per dtype); the noise keystreams are
        # drawn in the caller's order first, so that it equals one call per index.
        if self.add_noise and isinstance(weights, (list, tuple)) and len(weights) > 1:
            self._streams = {id(w): random.next_stream() for w in weights}
            try:
                super()._update_impl(indices, weights, grads, states, multi_precision)
            finally:
                del self._streams
            return
        super()._update_impl(indices, weights, grads, states, multi_precision)

    def _run_dense(
        self,
        kernel: _core.Kernel,
        weights: Sequence[np.ndarray],
        grads: Sequence[np.ndarray],
        states: Sequence[np.ndarray],
        steps: Steps,
        masters: Optional[Sequence[np.ndarray]] = None,
    ) -> None:
        if not self.add_noise:
            super()._run_dense(kernel, weights, grads, states, steps, masters)
            return
        lrs, wds, ts, _ = steps
        scales = [_noise_scale(lr) for lr in lrs]
        drawn = self.__dict__.get("_streams")
        keystreams = [
            drawn.pop(id(w)) if drawn and id(w) in drawn else random.next_stream() for w in weights
        ]
        seeds, streams = [s for s, _ in keystreams], [s for _, s in keystreams]
        if masters is None:
            _core.step_noisy(kernel, weights, grads, states, lrs, wds, ts, scales, seeds, streams)
            return
        # MXNet's generic multi-precision fallback: the whole update, noise included, runs
        # in float32 on the master copy, which is then rounded into the float16 weight.
        for i, weight in enumerate(weights):  # the final copy must not fail half-way
            where = f"weight[{i}]" if len(weights) > 1 else "weight"
            if not weight.flags.writeable:
                raise ValueError(f"{where}: array is read-only; it must be writeable")
            if not weight.flags.c_contiguous:
                raise ValueError(f"{where}: expected a C-contiguous array")
            if weight.size and np.may_share_memory(weight, grads[i]):
                raise ValueError(f"{where}: shares memory with its gradient")
        grads32 = [g.astype(np.float32) for g in grads]
        _core.step_noisy(kernel, masters, grads32, states, lrs, wds, ts, scales, seeds, streams)
        for weight, master in zip(weights, masters):
            weight[...] = master


def _noise_scale(lr: float) -> float:
    """``sqrt(lr)``, the noise's standard deviation (MXNet computes it with ``math.sqrt``)."""
    if not lr >= 0.0:
        raise ValueError(f"SGLD: lr must be >= 0 for the noise N(0, sqrt(lr)), got {lr!r}")
    return math.sqrt(lr)
