"""LAMB, layer-wise adaptive moments for large batches, MXNet 1.6 semantics.
Spec: optimizers.md §8."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Dict, Hashable, List, Optional, Tuple

import numpy as np

from .. import _core
from ._kernel import KernelOptimizer, is_row_sparse, kernel_clip
from ._layerwise import check_kernel_params, describe
from .base import _aggregation_size_from_env, register

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargsNoLR

__all__ = ["LAMB"]


@register
class LAMB(KernelOptimizer):
    """LAMB (You et al.): Adam's direction, scaled per layer by ``‖w‖/‖u‖``.

    Per layer, with ``ĝ = clip(rescale_grad·g)`` and update count ``t``::

        m = beta1·m + (1 - beta1)·ĝ
        v = beta2·v + (1 - beta2)·ĝ²
        u = m̂/(sqrt(v̂) + epsilon) + wd·w     (m̂ = m/(1 - beta1^t), v̂ = v/(1 - beta2^t)
                                              with bias_correction, else m and v)
        r1 = clip(‖w‖, lower_bound, upper_bound),  r2 = ‖u‖
        w = w - lr·(r1/r2)·u                  (lr alone when r1 or r2 is 0)

    Bounds of ``None`` or ``0`` are not applied. States ``(mean, var)`` are float32, so
    float16 and float64 weights need ``multi_precision=True`` (float16; float64 is
    rejected). A list of weights runs as one native call (per dtype), with the numbers of
    one call per weight; ``u`` is never stored.

    Multi-precision: the state is ``(float32 master, (mean, var))``; the scaled gradient
    is rounded to float16 before clipping and the master copy feeds ``wd·w`` and ``r1``,
    as in MXNet 1.6. MXNet 1.6 then writes only the float16 weight and never updates the
    master copy, so every step starts again from the initial master (and ``r1`` never
    changes). That is reproduced by default; ``update_master_copy=True`` writes the new
    master copy back as well, so the master tracks the weight and training progresses.

    Parameters
    ----------
    learning_rate : float
        Step size (default 0.001).
    beta1, beta2 : float
        Decay rates of the moment estimates.
    epsilon : float
        Added to ``sqrt(v̂)``.
    lower_bound, upper_bound : float or None
        Bounds of ``r1``; ``None`` or ``0`` for none.
    bias_correction : bool
        Divide the moments by ``1 - beta^t``.
    exact_norms : bool
        ``True`` (default): ``‖w‖`` and ``‖u‖`` bit-exact with MXNet, one sequential pass
        per layer (layers in parallel). ``False``: blocked parallel float64 sums,
        identical at any thread count but not MXNet's last bit.
    update_master_copy : bool
        ``False`` (default) reproduces MXNet 1.6's multi-precision bug (the float32
        master is never written); ``True`` is the corrected update.
    **kwargs
        The :class:`Optimizer` arguments.
    """

    #: The Updater passes lists in the caller's order: the preamble runs index by index,
    #: as MXNet's one-call-per-weight does.
    aggregates_by_dtype: ClassVar[bool] = False

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-6,
        lower_bound: Optional[float] = None,
        upper_bound: Optional[float] = None,
        bias_correction: bool = True,
        exact_norms: bool = True,
        update_master_copy: bool = False,
        **kwargs: Unpack[OptimizerKwargsNoLR],
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.bias_correction = bias_correction
        self.exact_norms = exact_norms
        self.update_master_copy = update_master_copy
        # MXNet updates LAMB one weight at a time; mxopt's Updater hands it lists (one
        # native call, the same numbers).
        self.aggregate_num = _aggregation_size_from_env()

    def create_state(self, index: Hashable, weight: np.ndarray) -> Any:
        """``(mean, var)``, float32 zeros of the weight's shape."""
        return (
            np.zeros(weight.shape, dtype=np.float32),
            np.zeros(weight.shape, dtype=np.float32),
        )

    def update(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update one float32 weight (or lists of them), in place."""
        self._update_impl(index, weight, grad, state, multi_precision=False)

    def update_multi_precision(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update float16 weights through their master copies (with ``multi_precision``);
        other weights as :meth:`update` does."""
        self._update_impl(index, weight, grad, state, multi_precision=self.multi_precision)

    def _check_params(self) -> None:
        """Refuses hyper-parameters the kernels cannot take, before anything is counted."""
        check_kernel_params(
            self,
            "beta1",
            "beta2",
            "epsilon",
            "lower_bound",
            "upper_bound",
            "rescale_grad",
            "clip_gradient",
        )

    def _kernel_kwargs(self) -> Dict[str, Any]:
        """The kernels' hyper-parameters (shared with the GPU path)."""
        return {
            "beta1": self.beta1,
            "beta2": self.beta2,
            "epsilon": self.epsilon,
            "rescale_grad": self.rescale_grad,
            "clip_gradient": kernel_clip(self.clip_gradient),
            "bias_correction": bool(self.bias_correction),
            # MXNet passes a bound only when it is truthy.
            "lower_bound": self.lower_bound if self.lower_bound else None,
            "upper_bound": self.upper_bound if self.upper_bound else None,
        }

    @staticmethod
    def _moments(state: Any, where: str) -> Tuple[np.ndarray, np.ndarray]:
        if (
            isinstance(state, tuple)
            and len(state) == 2
            and all(isinstance(s, np.ndarray) for s in state)
        ):
            return state
        raise TypeError(
            f"state: expected a tuple (mean, var) of arrays, got {describe(state)}{where}"
        )

    def _update_impl(
        self, indices: Any, weights: Any, grads: Any, states: Any, multi_precision: bool
    ) -> None:
        if not isinstance(indices, (list, tuple)):
            indices, weights, grads, states = [indices], [weights], [grads], [states]
        self._check_params()
        groups: Dict[Tuple[Any, bool], List[int]] = {}
        masters: List[Any] = []
        moments: List[Tuple[np.ndarray, np.ndarray]] = []
        for i, (weight, state) in enumerate(zip(weights, states)):
            where = f" at position {i}" if len(weights) > 1 else ""
            dtype = getattr(weight, "dtype", None)
            mixed = multi_precision and dtype == np.float16
            if mixed:
                if not (
                    isinstance(state, tuple)
                    and len(state) == 2
                    and isinstance(state[0], np.ndarray)
                ):
                    raise TypeError(
                        "state: expected (float32 master, (mean, var)) for a float16 weight "
                        f"with multi_precision, got {describe(state)}{where}"
                    )
                masters.append(state[0])
                state = state[1]
            else:
                if dtype is not None and dtype != np.float32:
                    raise TypeError(
                        f"weight: LAMB keeps float32 states and so takes float32 weights, got "
                        f"{dtype} (use multi_precision=True for float16){where}"
                    )
                masters.append(None)
            moments.append(self._moments(state, where))
            groups.setdefault((dtype, mixed), []).append(i)
        lrs, wds, ts, _ = self._sequential_preamble(indices)
        hyper = self._kernel_kwargs()
        for (_, mixed), group in groups.items():
            _core.lamb_many(
                [weights[i] for i in group],
                # No sparse kernel: MXNet densifies row-sparse gradients.
                [grads[i].todense() if is_row_sparse(grads[i]) else grads[i] for i in group],
                [array for i in group for array in moments[i]],
                [lrs[i] for i in group],
                [wds[i] for i in group],
                [ts[i] for i in group],
                [masters[i] for i in group] if mixed else None,
                exact_norms=self.exact_norms,
                write_master=self.update_master_copy,
                **hyper,
            )
