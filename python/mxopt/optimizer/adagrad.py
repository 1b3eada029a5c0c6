"""AdaGrad, MXNet 1.6 semantics. Spec: optimizers.md §12."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

from ._kernel import AdaptiveKernelOptimizer
from .base import register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargs

__all__ = ["AdaGrad"]


@register
class AdaGrad(AdaptiveKernelOptimizer):
    """AdaGrad (Duchi et al.): per-coordinate steps shrinking with the gradient history.

    Dense gradients, per element, with ``ĝ = clip(rescale_grad·g)``::

        h = h + ĝ²
        w = w + (ĝ/sqrt(h + eps) + wd·w)·(-lr)

    (MXNet's Python operation chain: the clip applies whenever ``clip_gradient`` is not
    ``None``). Row-sparse gradients run MXNet's sparse kernel on their rows only:
    ``w = w - ĝ/sqrt(h + eps)·lr`` with the kernel's clip (only for a positive bound). That
    kernel has no weight decay, so a row-sparse gradient with ``wd != 0`` raises
    ``ValueError``, as in MXNet. The history is float32: float16 weights need
    ``multi_precision=True``, and float64 weights are refused.

    Parameters
    ----------
    eps : float
        Added to the history under the square root at every step (the history itself
        starts at zero).
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.AdaGrad(learning_rate=0.1)
    >>> w = np.ones(2, dtype=np.float32)
    >>> opt.update(0, w, np.full(2, 0.5, dtype=np.float32), opt.create_state(0, w))
    >>> w  # 0.1·0.5/sqrt(0.25 + 1e-7) is just under 0.1
    array([0.90000004, 0.90000004], dtype=float32)
    """

    kernel = "adagrad"
    kernel_hyper = ("epsilon", "rescale_grad", "clip_gradient")
    state_names = ("history",)
    state_tuple = False
    float32_states = True

    def __init__(self, eps: float = 1e-7, **kwargs: Unpack[OptimizerKwargs]) -> None:
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def _hyper(self) -> Tuple[Any, ...]:
        return (self.float_stable_eps, self.rescale_grad, self.clip_gradient)

    def _rows_kernel(self) -> Optional[Tuple[str, bool]]:
        return ("adagrad_rows", True)

    def _check_rows_step(self, lr: float, wd: float) -> None:
        if wd != 0:
            raise ValueError(
                f"wd: AdaGrad's row-sparse kernel has no weight decay (MXNet refuses it), "
                f"got wd={wd}; use wd=0 (or wd_mult 0 for this parameter) or a dense gradient"
            )
