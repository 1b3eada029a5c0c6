"""Adam, MXNet 1.6 semantics. Spec: optimizers.md §11."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

from ._kernel import AdaptiveKernelOptimizer, kernel_clip
from .base import register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargsNoLR

__all__ = ["Adam"]


@register
class Adam(AdaptiveKernelOptimizer):
    """Adam (Kingma & Ba), with MXNet's bias correction folded into the learning rate.

    Per element, with ``ĝ = clip(rescale_grad·g + wd·w)`` and update count ``t``::

        m = beta1·m + (1 - beta1)·ĝ
        v = beta2·v + (1 - beta2)·ĝ²
        w = w - lr·sqrt(1 - beta2^t)/(1 - beta1^t) · m/(sqrt(v) + epsilon)

    ``epsilon`` is not bias-corrected. Row-sparse gradients update only their rows
    (weight decay included) when ``lazy_update`` is true, every row otherwise.

    Parameters
    ----------
    learning_rate : float
        Step size (default 0.001; it replaces a scheduler's ``base_lr``).
    beta1, beta2 : float
        Decay rates of the first and second moment estimates.
    epsilon : float
        Added to ``sqrt(v)``.
    lazy_update : bool
        Row-sparse gradients touch only their own rows.
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.Adam(learning_rate=0.1)
    >>> w = np.ones(2, dtype=np.float32)
    >>> opt.update(0, w, np.full(2, 0.5, dtype=np.float32), opt.create_state(0, w))
    >>> w
    array([0.9, 0.9], dtype=float32)
    """

    kernel = "adam"
    kernel_hyper = ("beta1", "beta2", "epsilon", "rescale_grad", "clip_gradient")
    state_names = ("mean", "var")

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        lazy_update: bool = True,
        **kwargs: Unpack[OptimizerKwargsNoLR],
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lazy_update = lazy_update

    def _hyper(self) -> Tuple[Any, ...]:
        clip = kernel_clip(self.clip_gradient)
        return (self.beta1, self.beta2, self.epsilon, self.rescale_grad, clip)

    def _rows_kernel(self) -> Optional[Tuple[str, bool]]:
        return ("adam_lazy", True) if self.lazy_update else ("adam_std", False)
