"""RMSProp, MXNet 1.6 semantics. Spec: optimizers.md §13."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

from ._kernel import AdaptiveKernelOptimizer, kernel_clip
from .base import register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargsNoLR

__all__ = ["RMSProp"]


@register
class RMSProp(AdaptiveKernelOptimizer):
    """RMSProp (Tieleman & Hinton), or its centered form (Graves) with ``centered=True``.

    Per element, with ``ĝ = clip(rescale_grad·g + wd·w)``::

        n = (1 - gamma1)·ĝ² + gamma1·n
        w = w - lr·ĝ/sqrt(n + epsilon)                      # centered=False

        g = (1 - gamma1)·ĝ + gamma1·g                       # centered=True
        delta = gamma2·delta - lr·ĝ/sqrt(n - g² + epsilon)
        w = w + delta

    then ``w`` is clipped to ``[-clip_weights, clip_weights]`` when ``clip_weights`` is
    truthy and positive. The state is the 1-tuple ``(n,)`` or ``(n, g, delta)``, float32:
    like MXNet 1.6, only float32 weights are accepted without ``multi_precision``.

    Parameters
    ----------
    learning_rate : float
        Step size (default 0.001; it replaces a scheduler's ``base_lr``).
    gamma1 : float
        Decay of the running mean square (and mean).
    gamma2 : float
        Momentum of the centered update.
    epsilon : float
        Added to the mean square inside the square root.
    centered : bool
        Use the centered update (``rmspropalex_update``).
    clip_weights : float, optional
        Bound of the updated weights.
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.RMSProp(learning_rate=0.1)
    >>> w = np.ones(2, dtype=np.float32)
    >>> state = opt.create_state(0, w)
    >>> opt.update(0, w, np.full(2, 0.5, dtype=np.float32), state)
    >>> len(state), w.round(4)
    (1, array([0.6838, 0.6838], dtype=float32))
    """

    kernel_hyper = ("gamma1", "gamma2", "epsilon", "rescale_grad", "clip_gradient", "clip_weights")
    float32_states = True

    def __init__(
        self,
        learning_rate: float = 0.001,
        gamma1: float = 0.9,
        gamma2: float = 0.9,
        epsilon: float = 1e-8,
        centered: bool = False,
        clip_weights: Optional[float] = None,
        **kwargs: Unpack[OptimizerKwargsNoLR],
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.epsilon = epsilon
        self.centered = centered
        self.clip_weights = clip_weights

    # ``centered`` is read at every call, as MXNet does: the kernel and the state layout
    # follow it.
    @property
    def kernel(self) -> str:  # type: ignore[override]
        return "rmspropalex" if self.centered else "rmsprop"

    @property
    def state_names(self) -> Tuple[str, ...]:  # type: ignore[override]
        return ("n", "g", "delta") if self.centered else ("n",)

    def _hyper(self) -> Tuple[Any, ...]:
        # MXNet passes gamma2 only to the centered kernel (whose default is also 0.9), and
        # clip_gradient / clip_weights only when truthy.
        gamma2 = self.gamma2 if self.centered else 0.9
        return (
            self.gamma1,
            gamma2,
            self.epsilon,
            self.rescale_grad,
            kernel_clip(self.clip_gradient),
            kernel_clip(self.clip_weights),
        )
