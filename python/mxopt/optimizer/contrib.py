"""MXNet 1.6's ``mxnet.optimizer.contrib``: GroupAdaGrad. Spec: optimizers.md §19."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Hashable, List, Sequence, Tuple

import numpy as np

from .. import _core
from ._kernel import (
    KernelOptimizer,
    _describe,
    is_row_sparse,
    kernel_clip,
    restored_on_error,
)
from .base import _aggregation_size_from_env, register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargs

__all__ = ["GroupAdaGrad"]


@register
class GroupAdaGrad(KernelOptimizer):
    """AdaGrad with one accumulator per row of a 2-D weight (embedding tables).

    Per row ``r``, with ``ĝ = clip(rescale_grad·g)``::

        h[r] = h[r] + mean_j(ĝ[r, j]²)
        w[r, j] = w[r, j] - lr·ĝ[r, j] / sqrt(h[r] + eps)

    Dense gradients follow MXNet's Python code: NDArray clip (a ``clip_gradient`` of 0 or
    below still clips) and a Kahan-compensated row mean. Row-sparse gradients follow its
    ``group_adagrad_update`` kernel: only the listed rows change, the clip acts only for a
    positive ``clip_gradient``, and the row mean is a plain sum divided by the row length.
    The state is a float32 array of shape ``(rows, 1)``, so weights must be 2-D and float32
    (float16 with ``multi_precision=True``). Weight decay is not supported: an update whose
    resolved ``wd`` is not 0 raises ``ValueError`` before anything is written.

    Parameters
    ----------
    eps : float
        Added to the accumulator under the square root.
    **kwargs
        The :class:`Optimizer` arguments.

    Examples
    --------
    >>> import numpy as np, mxopt
    >>> opt = mxopt.optimizer.contrib.GroupAdaGrad(learning_rate=0.1, eps=0.0)
    >>> w = np.ones((2, 2), dtype=np.float32)
    >>> h = opt.create_state(0, w)
    >>> opt.update(0, w, np.array([[3, 4], [0, 0]], dtype=np.float32), h)
    >>> h.ravel(), w[0]
    (array([12.5,  0. ], dtype=float32), array([0.9151472 , 0.88686293], dtype=float32))
    """

    aggregates_by_dtype = False

    def __init__(self, eps: float = 1e-5, **kwargs: Unpack[OptimizerKwargs]) -> None:
        super().__init__(**kwargs)
        self.float_stable_eps = eps
        self.aggregate_num = _aggregation_size_from_env()

    def create_state(self, index: Hashable, weight: np.ndarray) -> np.ndarray:
        """The per-row accumulator: float32 zeros of shape ``(rows, 1)``."""
        _check_2d(weight)
        return np.zeros((weight.shape[0], 1), dtype=np.float32)

    def update(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update one weight (or lists of them), in place."""
        self._update_impl(index, weight, grad, state, multi_precision=False)

    def update_multi_precision(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update through the float32 master copy each float16 weight (with
        ``multi_precision``); other weights as :meth:`update` does."""
        self._update_impl(index, weight, grad, state, multi_precision=self.multi_precision)

    def _update_impl(
        self, indices: Any, weights: Any, grads: Any, states: Any, multi_precision: bool
    ) -> None:
        if not isinstance(indices, (list, tuple)):
            indices, weights, grads, states = [indices], [weights], [grads], [states]
        # Every structure is checked before the first write (the arrays' layout natively).
        targets: List[Tuple[np.ndarray, np.ndarray, bool]] = []
        for i, (weight, grad, state) in enumerate(zip(weights, grads, states)):
            at = f" at position {i}" if len(weights) > 1 else ""
            _check_2d(weight, at)
            mixed = multi_precision and weight.dtype == np.float16
            if mixed:
                if not (isinstance(state, tuple) and len(state) == 2):
                    raise TypeError(
                        "state: expected (float32 master copy, history) as "
                        f"create_state_multi_precision returns, got {_describe(state)}{at}"
                    )
                master, history = state
            elif weight.dtype != np.float32:
                raise TypeError(
                    "weight: GroupAdaGrad keeps a float32 history and so takes float32 "
                    f"weights, got {weight.dtype} (use multi_precision=True for float16){at}"
                )
            else:
                master, history = weight, state
            if not isinstance(history, np.ndarray) or history.shape != (weight.shape[0], 1):
                raise TypeError(
                    f"state: expected the float32 history of shape ({weight.shape[0]}, 1) as "
                    f"create_state returns, got {_describe(history)}{at}"
                )
            if getattr(grad, "shape", None) != weight.shape:
                raise ValueError(
                    f"grad: expected shape {weight.shape} (the weight's), got "
                    f"{getattr(grad, 'shape', type(grad).__name__)}{at}"
                )
            targets.append((master, history, mixed))
        lrs = self._learning_rates(indices)
        for i, ((_, _, mixed), weight) in enumerate(zip(targets, weights)):
            # The float16 weight receives the master after the kernel: check it first.
            where = f"weight[{i}]" if len(weights) > 1 else "weight"
            if mixed and not (weight.flags.writeable and weight.flags.c_contiguous):
                raise ValueError(f"{where}: expected a writeable, C-contiguous array")
            values = grads[i].data if is_row_sparse(grads[i]) else grads[i]
            if mixed and weight.size and np.may_share_memory(weight, values):
                raise ValueError(f"{where}: shares memory with its gradient")
        written = [a for target, history, _ in targets for a in (target, history)] + list(weights)
        with restored_on_error(written, len(weights) > 1):
            for (target, history, mixed), weight, grad, lr in zip(targets, weights, grads, lrs):
                if mixed:
                    grad = grad.astype(np.float32)
                self._step(target, grad, history, lr)
                if mixed:
                    weight[...] = target

    def _learning_rates(self, indices: Sequence[Hashable]) -> List[float]:
        """The preamble, index by index; raises for a resolved weight decay that is not 0
        (shared with the GPU path)."""
        lrs, wds, _, _ = self._sequential_preamble(indices)
        for index, wd in zip(indices, wds):
            if wd != 0:
                raise ValueError(
                    f"GroupAdaGrad does not support weight decay, got wd={wd!r} for index "
                    f"{index!r} (set wd=0, or wd_mult 0 for it)"
                )
        return lrs

    def _step(self, weight: np.ndarray, grad: Any, history: np.ndarray, lr: float) -> None:
        eps, rs = self.float_stable_eps, self.rescale_grad
        if is_row_sparse(grad):
            clip = kernel_clip(self.clip_gradient)
            _core.step_group_adagrad(weight, grad.data, history, lr, eps, rs, clip, grad.indices)
        else:
            _core.step_group_adagrad(weight, grad, history, lr, eps, rs, self.clip_gradient)


def _check_2d(weight: Any, at: str = "") -> None:
    if not isinstance(weight, np.ndarray):
        raise TypeError(f"weight: expected a numpy.ndarray, got {_describe(weight)}{at}")
    if weight.ndim != 2:
        raise ValueError(
            f"weight: GroupAdaGrad needs a 2-d weight (rows, columns), got {_describe(weight)}{at}"
        )
