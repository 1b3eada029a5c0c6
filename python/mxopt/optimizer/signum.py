"""Signum and signSGD, MXNet 1.6 semantics. Spec: optimizers.md §4."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Tuple

from ._kernel import AdaptiveKernelOptimizer, kernel_clip
from .base import register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargsNoLR

__all__ = ["Signum"]


@register
class Signum(AdaptiveKernelOptimizer):
    """Signum: a step of fixed size ``lr`` along the sign of a momentum (signSGD without
    momentum).

    With ``momentum > 0``, per element, with ``ĝ = clip(rescale_grad·g)``::

        m = momentum·m - (1 - momentum)·(wd·w + ĝ)
        w = (1 - lr·wd_lh)·w + lr·sign(m)

    The stored ``m`` is the negative of the usual momentum, as in MXNet. With
    ``momentum == 0`` (signSGD) ``w = (1 - lr·wd)·w - lr·sign(g)``: the sign of the raw
    gradient, so ``rescale_grad`` and ``clip_gradient`` have no effect, and ``wd_lh`` is
    rejected (MXNet's ``signsgd_update`` has no such parameter).

    Parameters
    ----------
    learning_rate : float
        Step size (default 0.01; it replaces a scheduler's ``base_lr``).
    momentum : float
        Decay of the momentum; 0 selects signSGD and a ``None`` state.
    wd_lh : float
        Decoupled weight decay applied before the signed step (momentum only).
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.Signum(learning_rate=0.1, momentum=0.0)
    >>> w = np.ones(2, dtype=np.float32)
    >>> opt.update(0, w, np.array([0.5, -2.0], dtype=np.float32), opt.create_state(0, w))
    >>> w
    array([0.9, 1.1], dtype=float32)
    """

    kernel_hyper = ("momentum", "wd_lh", "rescale_grad", "clip_gradient")
    state_tuple = False

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.9,
        wd_lh: float = 0.0,
        **kwargs: Unpack[OptimizerKwargsNoLR],
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = momentum
        self.wd_lh = wd_lh

    @property
    def kernel(self) -> str:  # type: ignore[override]
        """``signum`` with momentum, ``signsgd`` without."""
        return "signsgd" if self.momentum == 0.0 else "signum"

    @property
    def state_names(self) -> Tuple[str, ...]:  # type: ignore[override]
        """One (negated) momentum array, or none (a ``None`` state) without momentum."""
        return () if self.momentum == 0.0 else ("momentum",)

    def _hyper(self) -> Tuple[Any, ...]:
        if not math.isfinite(self.momentum):
            # MXNet would silently run a NaN momentum as 0 (it passes only momentum > 0).
            raise ValueError(f"Signum: momentum must be finite, got {self.momentum!r}")
        if self.momentum == 0.0 and self.wd_lh:
            raise ValueError(
                f"Signum: wd_lh={self.wd_lh!r} needs momentum > 0; signSGD (momentum=0) "
                "has no decoupled weight decay (MXNet's signsgd_update rejects wd_lh)"
            )
        # MXNet passes momentum only when positive (else the kernel's 0) and clips only
        # for a truthy clip_gradient.
        momentum = self.momentum if self.momentum > 0 else 0.0
        clip = kernel_clip(self.clip_gradient)
        return (momentum, self.wd_lh, self.rescale_grad, clip)
