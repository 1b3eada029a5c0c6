"""DCASGD (delay-compensated SGD), MXNet 1.6 semantics. Spec: optimizers.md §9."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Hashable, Tuple

import numpy as np

from ._kernel import AdaptiveKernelOptimizer
from .base import register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargs

__all__ = ["DCASGD"]


def _check_momentum(momentum: float) -> None:
    if momentum != 0.0:
        raise ValueError(
            f"DCASGD: momentum={momentum!r} is not supported; MXNet 1.6 fails on every "
            "update with a non-zero momentum, so mxopt accepts only momentum=0.0"
        )


@register
class DCASGD(AdaptiveKernelOptimizer):
    """Delay-compensated SGD (Zheng et al., 2016), as MXNet 1.6's Python code computes it.

    Per element, with ``ĝ = pyclip(rescale_grad·g)`` and ``w_prev`` the weight before the
    previous update (the state)::

        w_prev, w = w, w - lr·(ĝ + wd·w + lamda·ĝ²·(w - w_prev))

    Every operation rounds in the weight's dtype; a ``clip_gradient`` of 0 or below still
    clips (MXNet's NDArray clip). The state is ``(None, copy of the weight)``.

    ``momentum`` must be 0: MXNet 1.6 raises on every update with a non-zero momentum (it
    tests an array's truth value), so mxopt rejects it at construction (``ValueError``)
    instead of reproducing an error on the first update.

    Parameters
    ----------
    momentum : float
        Must be 0.0 (see above).
    lamda : float
        Strength of the delay compensation (MXNet's spelling).
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.DCASGD(learning_rate=0.5)
    >>> w = np.ones(2, dtype=np.float64)
    >>> state = opt.create_state(0, w)
    >>> opt.update(0, w, np.full(2, 0.5), state)
    >>> w, state[1]
    (array([0.75, 0.75]), array([1., 1.]))
    """

    kernel = "dcasgd"
    kernel_hyper = ("lamda", "rescale_grad", "clip_gradient")
    state_names = ("momentum", "previous_weight")
    absent_states = ("momentum",)

    def __init__(
        self, momentum: float = 0.0, lamda: float = 0.04, **kwargs: Unpack[OptimizerKwargs]
    ) -> None:
        _check_momentum(momentum)
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lamda = lamda
        #: Unused; MXNet 1.6 defines it too.
        self.weight_previous: Dict[Hashable, Any] = {}

    def create_state(self, index: Hashable, weight: np.ndarray) -> Any:
        """``(None, copy of the weight)``."""
        return (None, weight.copy())

    def _hyper(self) -> Tuple[Any, ...]:
        _check_momentum(self.momentum)
        return (self.lamda, self.rescale_grad, self.clip_gradient)
