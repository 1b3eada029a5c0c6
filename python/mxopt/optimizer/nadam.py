"""Nadam, MXNet 1.6 semantics. Spec: optimizers.md §17."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Hashable, Sequence, Tuple

from ._kernel import AdaptiveKernelOptimizer, Steps
from .base import register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargsNoLR

__all__ = ["Nadam"]


@register
class Nadam(AdaptiveKernelOptimizer):
    """Nadam: Adam with Nesterov momentum and a warming-up momentum schedule (Dozat).

    Per element, with ``ĝ = clip(rescale_grad·g + wd·w)``, update count ``t``,
    ``μ(t) = beta1·(1 - 0.5·0.96^(t·schedule_decay))`` and ``Π`` = ``m_schedule``::

        Π = Π·μ(t)
        m = beta1·m + (1 - beta1)·ĝ
        v = beta2·v + (1 - beta2)·ĝ²
        m̄ = (1 - μ(t))·ĝ/(1 - Π) + μ(t+1)·m/(1 - Π·μ(t+1))
        w = w - lr·m̄/(sqrt(v/(1 - beta2^t)) + epsilon)

    As in MXNet, ``m_schedule`` is one number on the optimizer (pickled with it), advanced
    by every update of every index: with P parameters it is multiplied P times per step.
    In a list call each tensor sees the value after its own factor, in list order. The
    clip applies whenever ``clip_gradient`` is not ``None``; row-sparse gradients are
    densified.

    Parameters
    ----------
    learning_rate : float
        Step size (default 0.001; it replaces a scheduler's ``base_lr``).
    beta1, beta2 : float
        Decay rates of the first and second moment estimates.
    epsilon : float
        Added to the corrected ``sqrt(v)``.
    schedule_decay : float
        How fast the momentum schedule warms up.
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.Nadam(learning_rate=0.1)
    >>> w = np.ones(2, dtype=np.float32)
    >>> opt.update(0, w, np.full(2, 0.5, dtype=np.float32), opt.create_state(0, w))
    >>> w
    array([0.8943548, 0.8943548], dtype=float32)
    >>> round(opt.m_schedule, 6)
    0.450073
    """

    kernel = "nadam"
    kernel_hyper = ("beta1", "beta2", "epsilon", "schedule_decay", "rescale_grad", "clip_gradient")
    state_names = ("mean", "var")

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        schedule_decay: float = 0.004,
        **kwargs: Unpack[OptimizerKwargsNoLR],
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.schedule_decay = schedule_decay
        self.m_schedule = 1.0

    def _hyper(self) -> Tuple[Any, ...]:
        return (
            self.beta1,
            self.beta2,
            self.epsilon,
            self.schedule_decay,
            self.rescale_grad,
            self.clip_gradient,
        )

    def _steps(self, indices: Sequence[Hashable]) -> Steps:
        """The preamble, index by index, advancing ``m_schedule`` once per index."""
        lrs, wds, ts, _ = self._sequential_preamble(indices)
        schedules = []
        for t in ts:
            momentum = self.beta1 * (1.0 - 0.5 * pow(0.96, t * self.schedule_decay))
            self.m_schedule = self.m_schedule * momentum
            schedules.append(self.m_schedule)
        return lrs, wds, ts, schedules
