"""The shared base of optimizers whose update runs in a Rust kernel of ``mxopt._core``.

Subclasses say which kernel runs and with which hyper-parameters; this module owns the
MXNet preamble (count, then lr and wd), kernel caching, and the choice between the dense,
multi-precision, row-sparse and aggregated entry points of the native module.
"""

from __future__ import annotations

import math
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Dict,
    Hashable,
    List,
    Literal,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np

from .. import _core
from .base import (
    Optimizer,
    _aggregation_size_from_env,
    check_real,
    check_weight,
    warn_float16_without_multi_precision,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .base import OptimizerKwargs

__all__ = ["AdaptiveKernelOptimizer", "KernelOptimizer", "MomentumKernelOptimizer", "is_row_sparse"]

#: Per-tensor step scalars: learning rates, weight decays, update counts and (Nadam only)
#: momentum-schedule products, aligned with the indices of one call.
Steps = Tuple[List[float], List[float], List[int], Optional[List[float]]]


def is_row_sparse(grad: Any) -> bool:
    """Whether ``grad`` is a row-sparse array (``mxopt.sparse.RowSparseNDArray``)."""
    return type(grad) is not np.ndarray and getattr(grad, "stype", "default") == "row_sparse"


def as_lists(indices: Any, weights: Any, grads: Any, states: Any) -> Tuple[Any, Any, Any, Any]:
    """One index with its weight, grad and state as 1-element lists; lists checked for
    equal lengths (an error names the list that differs)."""
    if not isinstance(indices, (list, tuple)):
        return [indices], [weights], [grads], [states]
    for name, values in (("weight", weights), ("grad", grads), ("state", states)):
        if not isinstance(values, (list, tuple)) or len(values) != len(indices):
            got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
            raise ValueError(
                f"{name}: with a list of {len(indices)} indices, expected a list of "
                f"{len(indices)} {name}s, got {got}"
            )
    return indices, weights, grads, states


def single_sgd_kernel(momentum: Any, grad: Any, lazy_update: bool) -> str:
    """The single-tensor SGD kernel MXNet runs for one tensor of a call with a row-sparse
    gradient: chosen by the momentum state; without one, a non-lazy row-sparse update
    decays every row by a factor computed in float32 (``sgd_std``)."""
    if momentum is not None:
        return "sgd_mom"
    return "sgd_std" if is_row_sparse(grad) and not lazy_update else "sgd"


def kernel_clip(clip_gradient: Optional[float]) -> Optional[float]:
    """The bound MXNet hands to a kernel: only a truthy ``clip_gradient`` is passed."""
    return clip_gradient if clip_gradient else None


def _states_tuple(state: Any) -> Tuple[np.ndarray, ...]:
    return () if state is None else (state,)


class KernelOptimizer(Optimizer):
    """An :class:`Optimizer` whose element maths runs in ``mxopt._core``.

    Weights, gradients and states are NumPy arrays updated in place; every array is
    validated (dtype, shape, contiguity, writability, aliasing) before anything is written.
    """

    #: Names of the kernel hyper-parameters, in the order ``_kernel`` receives their values.
    kernel_hyper: ClassVar[Tuple[str, ...]] = ()

    def _hyper(self) -> Tuple[Any, ...]:
        """Current values of ``kernel_hyper``, checked; every kernel optimizer defines it."""
        raise NotImplementedError

    def _kernel(self, name: str, values: Tuple[Any, ...]) -> _core.Kernel:
        """The native kernel ``name`` with hyper-parameter ``values`` (named by
        ``kernel_hyper``), rebuilt only when a value changed: MXNet users mutate
        ``rescale_grad`` and friends between steps."""
        key = (name, values)
        cache: Optional[Dict[Tuple[str, Tuple[Any, ...]], _core.Kernel]]
        cache = self.__dict__.get("_kernel_cache")
        if cache is None:
            cache = {}
            self.__dict__["_kernel_cache"] = cache
        kernel = cache.get(key)
        if kernel is None:
            if len(cache) > 64:  # hyper-parameters changed many times: keep the cache small
                cache.clear()
            kernel = cache[key] = _core.Kernel(name, **dict(zip(self.kernel_hyper, values)))
        return kernel

    def _preamble(self, indices: Sequence[Hashable]) -> Steps:
        """MXNet's per-step preamble for a list updated as one aggregated call: count every
        index, then read lrs (one scheduler call), wds and counts."""
        self._update_count(indices)
        counts = self._index_update_count
        return (
            self._get_lrs(indices),
            self._get_wds(indices),
            list(map(counts.__getitem__, indices)),
            None,
        )

    def _sequential_preamble(self, indices: Sequence[Hashable]) -> Steps:
        """The preamble of one update call per index, in order (count, then lr and wd), as
        MXNet runs optimizers that it does not aggregate. Without a scheduler the learning
        rate does not depend on the count, so the list is counted at once."""
        if self.lr_scheduler is None or len(indices) == 1:
            return self._preamble(indices)
        lrs, wds, ts = [], [], []
        counts = self._index_update_count
        for index in indices:
            self._update_count(index)
            lrs.append(self._get_lr(index))
            wds.append(self._get_wd(index))
            ts.append(counts[index])
        return lrs, wds, ts, None

    def _run_dense(
        self,
        kernel: _core.Kernel,
        weights: Sequence[np.ndarray],
        grads: Sequence[np.ndarray],
        states: Sequence[np.ndarray],
        steps: Steps,
        masters: Optional[Sequence[np.ndarray]] = None,
    ) -> None:
        """Dense update of every weight in one native call (the single-tensor entry point
        when there is one weight: it has the smallest overhead). ``states`` is flat:
        ``kernel.num_states`` arrays per weight."""
        lrs, wds, ts, schedules = steps
        if len(weights) == 1:
            schedule = 1.0 if schedules is None else schedules[0]
            if masters is None:
                _core.step(kernel, weights[0], grads[0], states, lrs[0], wds[0], ts[0], schedule)
            else:
                _core.step_mixed(
                    kernel,
                    weights[0],
                    grads[0],
                    masters[0],
                    states,
                    lrs[0],
                    wds[0],
                    ts[0],
                    schedule,
                )
        else:
            _core.step_many(kernel, weights, grads, states, lrs, wds, ts, masters, schedules)

    @staticmethod
    def _run_rows(
        kernel: _core.Kernel,
        lazy: bool,
        weight: np.ndarray,
        grad: Any,
        states: Tuple[np.ndarray, ...],
        lr: float,
        wd: float,
        t: int,
        schedule: float = 1.0,
    ) -> None:
        """Update of a dense weight from a row-sparse gradient, lazily or on every row."""
        if grad.shape != weight.shape:
            raise ValueError(
                f"grad: expected shape {weight.shape} (the weight's), got {grad.shape}"
            )
        _core.step_rows(kernel, lazy, weight, grad.indices, grad.data, states, lr, wd, t, schedule)

    def __getstate__(self) -> Dict[str, Any]:
        state = super().__getstate__()
        state.pop("_kernel_cache", None)  # native kernels are rebuilt on demand
        return state


class MomentumKernelOptimizer(KernelOptimizer):
    """A kernel optimizer whose state is one momentum buffer (or none without momentum),
    with MXNet's native multi-precision layout ``(momentum, float32 master)`` — the reverse
    of the base class's ``(master, state)`` fallback. SGD, NAG and LARS are built on it."""

    #: Who MXNet's float16 warning names ("... option of the SGD optimizer").
    float16_advice: ClassVar[str] = "SGD optimizer"

    kernel_hyper = ("momentum", "rescale_grad", "clip_gradient")

    def __init__(self, momentum: float = 0.0, **kwargs: Unpack[OptimizerKwargs]) -> None:
        super().__init__(**kwargs)
        self.momentum = momentum

    def create_state(self, index: Hashable, weight: np.ndarray) -> Any:
        """Momentum buffer of the weight's dtype, or ``None`` without momentum."""
        return None if self.momentum == 0.0 else np.zeros_like(weight)

    def create_state_multi_precision(self, index: Hashable, weight: np.ndarray) -> Any:
        """``(momentum, master)`` for float16 weights with ``multi_precision``."""
        check_weight(weight)
        if self.multi_precision and weight.dtype == np.float16:
            master = weight.astype(np.float32)
            return (self.create_state(index, master), master)
        if weight.dtype == np.float16:
            warn_float16_without_multi_precision(self.float16_advice)
        return self.create_state(index, weight)

    def _hyper(self) -> Tuple[Any, ...]:
        """Kernel values of ``kernel_hyper``: MXNet passes momentum only when positive and
        clips only for a truthy ``clip_gradient``."""
        momentum = check_real("momentum", self.momentum)
        clip = kernel_clip(self.clip_gradient)
        return (momentum if momentum > 0 else 0.0, self.rescale_grad, clip)

    def _momentum_and_master(self, state: Any) -> Tuple[Any, np.ndarray]:
        """``(momentum or None, master)`` of a multi-precision state, checked."""
        if (
            isinstance(state, (tuple, list))
            and len(state) == 2
            and isinstance(state[1], np.ndarray)
        ):
            return state[0], state[1]
        raise TypeError(
            "state: expected (momentum or None, float32 master copy) as "
            f"{type(self).__name__}.create_state_multi_precision returns for float16 "
            f"weights, got {_describe(state)}"
        )


def check_momentum_states(moms: Sequence[Any]) -> None:
    """A momentum state is an array, or ``None`` without momentum (a state the kernel
    ignores must still be one ``create_state`` could have made)."""
    for i, mom in enumerate(moms):
        if not (mom is None or isinstance(mom, np.ndarray)):
            where = f" at position {i}" if len(moms) > 1 else ""
            raise TypeError(
                f"state: expected a momentum array or None, got {_describe(mom)}{where}"
            )


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


class AdaptiveKernelOptimizer(KernelOptimizer):
    """A kernel optimizer with a fixed tuple of state arrays and MXNet's generic
    multi-precision layout ``(float32 master, state)``, run natively in one pass.

    Subclasses name their kernel (``kernel``), its hyper-parameters (``kernel_hyper`` and
    ``_hyper``) and their states (``state_names``); everything else is shared:

    * ``update`` takes one index or lists of indices, weights, grads and states; a list
      runs as one native call per dtype, with exactly the numbers of one call per index
      (MXNet does not aggregate these optimizers: the preamble runs index by index);
    * row-sparse gradients use ``_rows_kernel`` when the optimizer has a sparse kernel,
      else they are densified (MXNet's fallback);
    * states are checked (structure here, dtype and shape natively) before any write.
    """

    #: The dense kernel's name in ``mxopt._core.Kernel``.
    kernel: ClassVar[str]
    #: Names of the state arrays, in ``create_state`` order.
    state_names: ClassVar[Tuple[str, ...]]
    #: ``create_state`` returns a tuple (else the single array itself, or a 1-tuple when
    #: ``state_tuple`` is true and there is one state: RMSProp).
    state_tuple: ClassVar[bool] = True
    #: Slots of ``state_names`` that are always ``None`` in the state tuple (DCASGD's
    #: unused momentum): kept for MXNet's state layout, never passed to the kernel.
    absent_states: ClassVar[Tuple[str, ...]] = ()
    #: States are float32 whatever the weight's dtype; MXNet 1.6 then accepts only
    #: float32 weights without multi-precision.
    float32_states: ClassVar[bool] = False
    #: The Updater passes lists in the caller's order (MXNet updates these optimizers one
    #: index at a time; grouping by dtype would reorder Nadam's schedule).
    aggregates_by_dtype: ClassVar[bool] = False

    def __init__(self, **kwargs: Unpack[OptimizerKwargs]) -> None:
        super().__init__(**kwargs)
        self.aggregate_num = _aggregation_size_from_env()

    def create_state(self, index: Hashable, weight: np.ndarray) -> Any:
        """Zero states of the weight's shape (float32 or the weight's dtype); ``None``
        for an optimizer without states."""
        dtype = np.float32 if self.float32_states else weight.dtype
        states = tuple(
            None if name in self.absent_states else np.zeros(weight.shape, dtype=dtype)
            for name in self.state_names
        )
        if self.state_tuple:
            return states
        return states[0] if states else None

    def _kernel_states(self, state: Any) -> Tuple[Any, ...]:
        """The state arrays of one weight, after checking the state object's structure."""
        if self.state_tuple:
            if isinstance(state, tuple) and len(state) == len(self.state_names):
                slots = zip(self.state_names, state)
                if all((a is None) == (n in self.absent_states) for n, a in slots):
                    return tuple(a for a in state if a is not None)
        elif isinstance(state, np.ndarray) or (len(self.state_names) == 0 and state is None):
            return (state,) if self.state_names else ()
        expected = (
            f"a tuple of {len(self.state_names)} arrays {self.state_names}"
            + (f" with None for {self.absent_states}" if self.absent_states else "")
            if self.state_tuple
            else f"one array ({self.state_names[0]})"
            if self.state_names
            else "None (no state)"
        )
        raise TypeError(
            f"state: expected {expected} as {type(self).__name__}.create_state returns, "
            f"got {_describe(state)}"
        )

    def _uniform_call(
        self, weights: Sequence[Any], grads: Sequence[Any], states: Sequence[Any], mp: bool
    ) -> Optional[List[Any]]:
        """The flat state list of a call whose weights are arrays of one dtype updated
        without a master copy, with dense gradients and states shaped as ``create_state``
        returns them; ``None`` for any other call, which then takes the checked, grouped
        path. This keeps a call over thousands of tiny tensors at a few Python operations
        per tensor (the native layer still checks every array)."""
        if not weights or type(weights[0]) is not np.ndarray:
            return None
        dtype = weights[0].dtype
        if (mp and dtype == np.float16) or (self.float32_states and dtype != np.float32):
            return None
        ndarray, count = np.ndarray, len(self.state_names)
        flat: List[Any] = []
        if self.state_tuple:
            absent = self.absent_states
            present = [k for k, name in enumerate(self.state_names) if name not in absent]
            empty = [k for k, name in enumerate(self.state_names) if name in absent]
            for w, g, s in zip(weights, grads, states):
                if (
                    type(w) is not ndarray
                    or w.dtype != dtype
                    or type(g) is not ndarray
                    or type(s) is not tuple
                    or len(s) != count
                ):
                    return None
                if len(present) == count:
                    flat.extend(s)
                elif all(s[k] is None for k in empty):
                    flat.extend([s[k] for k in present])
                else:
                    return None
            return flat
        if count > 1:
            return None
        for w, g, s in zip(weights, grads, states):
            if type(w) is not ndarray or w.dtype != dtype or type(g) is not ndarray:
                return None
            if count:
                if type(s) is not ndarray:
                    return None
                flat.append(s)
            elif s is not None:
                return None
        return flat

    def _split_master(self, state: Any) -> Tuple[np.ndarray, Any]:
        """``(master, inner state)`` of a multi-precision state."""
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], np.ndarray):
            return state[0], state[1]
        raise TypeError(
            "state: expected (float32 master copy, state) as create_state_multi_precision "
            f"returns for float16 weights, got {_describe(state)}"
        )

    def _rows_kernel(self) -> Optional[Tuple[str, bool]]:
        """``(kernel name, lazy)`` for row-sparse gradients, or ``None`` to densify them."""
        return None

    def _check_rows_step(self, lr: float, wd: float) -> None:
        """Raises for a learning rate or weight decay the row-sparse kernel refuses (before
        any array of the call is written); AdaGrad's refuses weight decay."""

    def _steps(self, indices: Sequence[Hashable]) -> Steps:
        """The per-tensor scalars of one call (overridden by Nadam for its schedule)."""
        return self._sequential_preamble(indices)

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
        indices, weights, grads, states = as_lists(indices, weights, grads, states)
        flat = self._uniform_call(weights, grads, states, multi_precision)
        if flat is not None:
            # The common case: one dtype, dense gradients, states as created: one call.
            kernel = self._kernel(self.kernel, self._hyper())
            self._run_dense(kernel, weights, grads, flat, self._steps(indices))
            return
        # Group by (dtype, through a master copy): each group is one native call.
        groups: Dict[Tuple[Any, bool], List[int]] = {}
        masters: List[Any] = []
        per_weight = []
        for i, (weight, state) in enumerate(zip(weights, states)):
            if not isinstance(weight, np.ndarray):
                where = f"weight[{i}]" if len(weights) > 1 else "weight"
                raise TypeError(f"{where}: expected a numpy.ndarray, got {_describe(weight)}")
            dtype = weight.dtype
            mixed = multi_precision and dtype == np.float16
            if mixed:
                master, state = self._split_master(state)
                masters.append(master)
            else:
                masters.append(None)
                if self.float32_states and dtype != np.float32:
                    raise TypeError(
                        f"weight: {type(self).__name__} keeps float32 states and so takes "
                        f"float32 weights, got {dtype} (use multi_precision=True for "
                        "float16)" + (f" at position {i}" if len(weights) > 1 else "")
                    )
            per_weight.append(self._kernel_states(state))
            groups.setdefault((dtype, mixed), []).append(i)
        # Hyper-parameters are checked (by building the kernel) before anything is counted.
        kernel = self._kernel(self.kernel, self._hyper())
        steps = self._steps(indices)
        rows = self._rows_kernel()
        sparse = [i for i, g in enumerate(grads) if rows is not None and is_row_sparse(g)]
        for i in sparse:
            self._check_rows_step(steps[0][i], steps[1][i])
        if len(groups) == 1 and not sparse:
            # The common case: one dtype, dense gradients, one native call.
            ((_, mixed),) = groups
            self._run_dense(
                kernel,
                weights,
                [_dense(g) for g in grads],
                _flat(per_weight),
                steps,
                masters if mixed else None,
            )
            return
        precheck(weights, grads, per_weight, masters, steps, self.float32_states)
        # Hyper-parameters are checked natively in each group's dtype (1e39 is finite in
        # float64, not in float32): a later group may still refuse; restore what ran.
        written = [*weights, *_flat(per_weight), *[m for m in masters if m is not None]]
        with restored_on_error(written):
            self._run_groups(kernel, weights, grads, per_weight, masters, steps, groups, sparse)

    def _run_groups(
        self,
        kernel: _core.Kernel,
        weights: Sequence[Any],
        grads: Sequence[Any],
        per_weight: Sequence[Tuple[Any, ...]],
        masters: Sequence[Any],
        steps: Steps,
        groups: Dict[Tuple[Any, bool], List[int]],
        sparse: Sequence[int],
    ) -> None:
        """The native calls of a split list: one per (dtype, precision) group, then one per
        row-sparse gradient."""
        rows = self._rows_kernel()
        skip = set(sparse)
        for (_, mixed), group in groups.items():
            group = [i for i in group if i not in skip]
            if group:
                self._run_dense(
                    kernel,
                    [weights[i] for i in group],
                    [_dense(grads[i]) for i in group],
                    _flat([per_weight[i] for i in group]),
                    _pick(steps, group),
                    [masters[i] for i in group] if mixed else None,
                )
        if not sparse:
            return
        assert rows is not None
        name, lazy = rows
        rows_kernel = self._kernel(name, self._hyper())
        for i in sparse:
            lr, wd, t = steps[0][i], steps[1][i], steps[2][i]
            schedule = 1.0 if steps[3] is None else steps[3][i]
            master = masters[i]
            if master is None:
                self._run_rows(
                    rows_kernel, lazy, weights[i], grads[i], per_weight[i], lr, wd, t, schedule
                )
            else:
                # MXNet's fallback runs the sparse kernel on the master copy, then copies
                # the whole master back into the float16 weight.
                grad32 = grads[i].astype(np.float32)
                self._run_rows(
                    rows_kernel, lazy, master, grad32, per_weight[i], lr, wd, t, schedule
                )
                weights[i][...] = master


def precheck(
    weights: Sequence[Any],
    grads: Sequence[Any],
    states: Sequence[Sequence[Any]],
    masters: Sequence[Any],
    steps: Steps,
    float32_states: bool = False,
) -> None:
    """Before a call that is split into several native calls (by dtype, precision or
    gradient storage), check what any of them would reject, so that a bad tensor late in
    the list leaves every array untouched. The native layer checks again; this only moves
    the errors before the first write."""
    spans: List[Tuple[int, int, bool, str]] = []

    def array(name: str, a: Any, written: bool, dtype: Any = None, shape: Any = None) -> None:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name}: expected a numpy.ndarray, got {_describe(a)}")
        if a.dtype not in _FLOATS or (dtype is not None and a.dtype != dtype):
            expected = np.dtype(dtype).name if dtype is not None else "float16/32/64"
            raise TypeError(f"{name}: expected dtype {expected}, got {a.dtype}")
        if shape is not None and a.shape != shape:
            raise ValueError(f"{name}: expected shape {shape} (the weight's), got {a.shape}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name}: expected a C-contiguous array")
        if written and not a.flags.writeable:
            raise ValueError(f"{name}: array is read-only; it must be writeable")
        start = a.__array_interface__["data"][0]
        spans.append((start, start + a.nbytes, written, name))

    for i, (weight, grad, master) in enumerate(zip(weights, grads, masters)):
        array(f"weight[{i}]", weight, True)
        if is_row_sparse(grad):
            if grad.shape != weight.shape:
                raise ValueError(f"grad[{i}]: expected shape {weight.shape}, got {grad.shape}")
            array(f"grad[{i}].data", grad.data, False, weight.dtype)
            indices = grad.indices
            if not isinstance(indices, np.ndarray):
                raise TypeError(
                    f"grad[{i}].indices: expected a numpy.ndarray, got {_describe(indices)}"
                )
            rows = weight.shape[0] if weight.ndim else 0
            if indices.size and (
                indices.min() < 0 or indices.max() >= rows or np.any(np.diff(indices) <= 0)
            ):
                raise ValueError(
                    f"grad[{i}].indices: expected strictly increasing rows in [0, {rows})"
                )
        else:
            array(f"grad[{i}]", grad, False, weight.dtype, weight.shape)
        if master is not None:
            array(f"master[{i}]", master, True, np.float32, weight.shape)
        # States have the weight's shape, and its dtype (float32 beside a master copy, or
        # for optimizers that keep float32 states).
        state_dtype = np.float32 if master is not None or float32_states else weight.dtype
        for k, state in enumerate(states[i]):
            if state is not None:
                array(f"state[{i}][{k}]", state, True, state_dtype, weight.shape)
    for name, values in (("lr", steps[0]), ("wd", steps[1])):
        for i, value in enumerate(values):
            if not math.isfinite(value):
                raise ValueError(f"{name} of weight[{i}] must be finite, got {value}")
    spans.sort()
    reach: Optional[Tuple[int, int, bool, str]] = None
    for span in spans:
        if reach is not None and span[0] < reach[1] and (span[2] or reach[2]):
            raise ValueError(f"{span[3]}: shares memory with {reach[3]}")
        if reach is None or span[1] > reach[1]:
            reach = span


_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _dense(grad: Any) -> Any:
    return grad.todense() if is_row_sparse(grad) else grad


def _flat(per_weight: Sequence[Tuple[Any, ...]]) -> List[Any]:
    return [array for states in per_weight for array in states]


def _pick(steps: Steps, positions: Sequence[int]) -> Steps:
    lrs, wds, ts, schedules = steps
    return (
        [lrs[i] for i in positions],
        [wds[i] for i in positions],
        [ts[i] for i in positions],
        None if schedules is None else [schedules[i] for i in positions],
    )


class restored_on_error:
    """Context manager for a call that runs as several native calls, each checking its own
    tensors before writing: when a later one refuses (``TypeError``/``ValueError``), the
    arrays the earlier ones wrote are restored, so the refused call leaves every array as
    it was. Copies are taken only when ``enabled`` (calls with more than one native call)."""

    def __init__(self, arrays: Sequence[Any], enabled: bool = True) -> None:
        self.saved = (
            [(a, a.copy()) for a in arrays if isinstance(a, np.ndarray) and a.flags.writeable]
            if enabled
            else []
        )

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, trace: Any) -> Literal[False]:
        if kind is not None and issubclass(kind, (TypeError, ValueError)):
            for array, before in self.saved:
                array[...] = before
        return False
