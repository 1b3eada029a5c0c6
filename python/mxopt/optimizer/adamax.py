"""Adamax, MXNet 1.6 semantics. Spec: optimizers.md §16."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Tuple

from ._kernel import AdaptiveKernelOptimizer
from .base import register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargsNoLR

__all__ = ["Adamax"]


@register
class Adamax(AdaptiveKernelOptimizer):
    """Adamax: Adam with the infinity norm (Kingma & Ba, section 7).

    Per element, with ``ĝ = clip(rescale_grad·g + wd·w)`` and update count ``t``::

        m = beta1·m + (1 - beta1)·ĝ
        u = maximum(beta2·u, |ĝ|)
        w = w - lr/(1 - beta1^t) · m/u

    MXNet runs this as NDArray operations in Python, and so does mxopt's kernel, rounding
    like them: the clip applies whenever ``clip_gradient`` is not ``None`` (``0`` zeroes
    the gradient), and a coordinate whose ``ĝ`` is zero at the first step becomes NaN
    (``0/0``), as in MXNet. Row-sparse gradients are densified.

    Parameters
    ----------
    learning_rate : float
        Step size (default 0.002; it replaces a scheduler's ``base_lr``).
    beta1, beta2 : float
        Decay rates of the first moment and of the infinity norm.
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.Adamax(learning_rate=0.1)
    >>> w = np.ones(2, dtype=np.float32)
    >>> opt.update(0, w, np.full(2, 0.5, dtype=np.float32), opt.create_state(0, w))
    >>> w
    array([0.9, 0.9], dtype=float32)
    """

    kernel = "adamax"
    kernel_hyper = ("beta1", "beta2", "rescale_grad", "clip_gradient")
    state_names = ("mean", "inf_norm")

    def __init__(
        self,
        learning_rate: float = 0.002,
        beta1: float = 0.9,
        beta2: float = 0.999,
        **kwargs: Unpack[OptimizerKwargsNoLR],
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2

    def _hyper(self) -> Tuple[Any, ...]:
        return (self.beta1, self.beta2, self.rescale_grad, self.clip_gradient)
