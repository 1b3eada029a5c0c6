"""FTML (Follow the Moving Leader), MXNet 1.6 semantics. Spec: optimizers.md §5."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Tuple

from ._kernel import AdaptiveKernelOptimizer, kernel_clip
from .base import register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargs

__all__ = ["FTML"]


@register
class FTML(AdaptiveKernelOptimizer):
    """FTML (Zheng & Kwok, 2017).

    Per element, with ``ĝ = clip(rescale_grad·g + wd·w)`` and update count ``t``::

        v = beta2·v + (1 - beta2)·ĝ²
        d' = (1 - beta1^t)/lr · (sqrt(v/(1 - beta2^t)) + epsilon)
        z = beta1·z + (1 - beta1)·ĝ - (d' - beta1·d)·w
        d = d'
        w = -z/d

    The state ``(d, v, z)`` has the weight's dtype (float16 weights without
    ``multi_precision`` compute in float16, with a warning).

    Parameters
    ----------
    beta1, beta2 : float
        Decay rates.
    epsilon : float
        Added to the corrected root mean square.
    **kwargs
        The :class:`Optimizer` arguments (the learning rate defaults to 0.01).

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.FTML(learning_rate=0.1)
    >>> w = np.ones(2, dtype=np.float32)
    >>> opt.update(0, w, np.full(2, 0.5, dtype=np.float32), opt.create_state(0, w))
    >>> w.round(4)
    array([0.9, 0.9], dtype=float32)
    """

    kernel = "ftml"
    kernel_hyper = ("beta1", "beta2", "epsilon", "rescale_grad", "clip_gradient")
    state_names = ("d", "v", "z")

    def __init__(
        self,
        beta1: float = 0.6,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        **kwargs: Unpack[OptimizerKwargs],
    ) -> None:
        super().__init__(**kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon

    def _hyper(self) -> Tuple[Any, ...]:
        clip = kernel_clip(self.clip_gradient)
        return (self.beta1, self.beta2, self.epsilon, self.rescale_grad, clip)
