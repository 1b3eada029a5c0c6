"""AdaDelta, MXNet 1.6 semantics. Spec: optimizers.md §14."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Hashable, Sequence, Tuple

from ._kernel import AdaptiveKernelOptimizer, Steps
from .base import register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargs

__all__ = ["AdaDelta"]


@register
class AdaDelta(AdaptiveKernelOptimizer):
    """AdaDelta (Zeiler): steps scaled by the ratio of two running RMS values, no
    learning rate.

    Per element, with ``ĝ = clip(rescale_grad·g)``::

        acc_g = rho·acc_g + (1 - rho)·ĝ²
        delta = sqrt(acc_delta + epsilon)/sqrt(acc_g + epsilon)·ĝ
        acc_delta = rho·acc_delta + (1 - rho)·delta²
        w = w - (delta + wd·w)

    The learning rate, its multipliers and any ``lr_scheduler`` are ignored (the scheduler
    is never called), and weight decay is added unscaled after the clip, as in MXNet. The
    clip applies whenever ``clip_gradient`` is not ``None``. The states are float32:
    float16 weights need ``multi_precision=True``, and float64 weights are refused.
    Unlike MXNet, which rescales the caller's gradient in place, the gradient is left
    unchanged. Row-sparse gradients are densified.

    Parameters
    ----------
    rho : float
        Decay rate of both running averages.
    epsilon : float
        Added under both square roots.
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.AdaDelta(epsilon=1e-4)
    >>> w = np.ones(2, dtype=np.float32)
    >>> opt.update(0, w, np.full(2, 0.5, dtype=np.float32), opt.create_state(0, w))
    >>> w
    array([0.9684403, 0.9684403], dtype=float32)
    """

    kernel = "adadelta"
    kernel_hyper = ("rho", "epsilon", "rescale_grad", "clip_gradient")
    state_names = ("acc_g", "acc_delta")
    float32_states = True

    def __init__(
        self, rho: float = 0.90, epsilon: float = 1e-5, **kwargs: Unpack[OptimizerKwargs]
    ) -> None:
        super().__init__(**kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def _hyper(self) -> Tuple[Any, ...]:
        return (self.rho, self.epsilon, self.rescale_grad, self.clip_gradient)

    def _steps(self, indices: Sequence[Hashable]) -> Steps:
        """Weight decays, then counts; no learning rate (the kernel takes none, so 0.0
        is passed) and no scheduler call."""
        wds = self._get_wds(indices)
        self._update_count(indices)
        counts = self._index_update_count
        return [0.0] * len(indices), wds, [counts[index] for index in indices], None
