"""FTRL-Proximal, MXNet 1.6 semantics. Spec: optimizers.md §15."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

from ._kernel import AdaptiveKernelOptimizer, kernel_clip
from .base import register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargsNoLR

__all__ = ["Ftrl"]


@register
class Ftrl(AdaptiveKernelOptimizer):
    """FTRL-Proximal (McMahan et al., 2013), with L1 (``lamda1``) and L2 (``wd``) terms.

    Per element, with ``ĝ = clip(rescale_grad·g)``::

        z = z + ĝ - (sqrt(n + ĝ²) - sqrt(n))·w/lr
        n = n + ĝ²
        w = (sign(z)·lamda1 - z)/((beta + sqrt(n))/lr + wd)   if |z| > lamda1, else 0

    The state ``(z, n)`` is float32: like MXNet 1.6, only float32 weights are accepted
    without ``multi_precision``. Row-sparse gradients are densified (every row updates).

    As in MXNet, ``learning_rate`` is not handed to :class:`Optimizer`: it is stored in
    ``lr`` afterwards, so with an ``lr_scheduler`` the scheduler's own ``base_lr`` is used.

    Parameters
    ----------
    lamda1 : float
        L1 regularisation strength.
    learning_rate : float
        Step size (default 0.1).
    beta : float
        The ``beta`` of the per-coordinate learning rate.
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.Ftrl(lamda1=0.0)
    >>> w = np.ones(2, dtype=np.float32)
    >>> opt.update(0, w, np.full(2, 0.5, dtype=np.float32), opt.create_state(0, w))
    >>> w.round(4)
    array([0.3, 0.3], dtype=float32)
    """

    kernel = "ftrl"
    kernel_hyper = ("lamda1", "beta", "rescale_grad", "clip_gradient")
    state_names = ("z", "n")
    float32_states = True

    def __init__(
        self,
        lamda1: float = 0.01,
        learning_rate: Optional[float] = 0.1,
        beta: float = 1,
        **kwargs: Unpack[OptimizerKwargsNoLR],
    ) -> None:
        super().__init__(**kwargs)
        self.lamda1 = lamda1
        self.beta = beta
        self.lr = learning_rate

    def _hyper(self) -> Tuple[Any, ...]:
        clip = kernel_clip(self.clip_gradient)
        return (self.lamda1, self.beta, self.rescale_grad, clip)
