"""The optimizer base class: registry, learning-rate and weight-decay resolution, update counting.

Behaviour follows MXNet 1.6.0 ``mxnet.optimizer.Optimizer`` (spec: optimizer-base.md §1-9).
Weights, gradients and states are NumPy arrays that optimizers update in place.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Hashable, Mapping, Sequence
from operator import mul, ne
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Optional, Tuple, Type, Union, cast

import numpy as np

from ..lr_scheduler import LRScheduler, _CheckError, _numpy1

if TYPE_CHECKING:
    # Type checkers only: typeshed always ships ``typing_extensions``, and the runtime
    # needs nothing beyond NumPy (annotations are strings here).
    from typing_extensions import TypedDict

    class _CommonKwargs(TypedDict, total=False):
        rescale_grad: float
        param_idx2name: Optional[Dict[Any, str]]
        wd: float
        clip_gradient: Optional[float]
        lr_scheduler: Optional[LRScheduler]
        sym: Any
        begin_num_update: int
        param_dict: Optional[Dict[Any, Any]]

    class OptimizerKwargsNoLR(_CommonKwargs, total=False):
        """The :class:`Optimizer` keywords, less ``learning_rate`` (a subclass names it)."""

        multi_precision: bool

    class OptimizerKwargs(OptimizerKwargsNoLR, total=False):
        """Every keyword of the :class:`Optimizer` constructor, for ``Unpack[...]``."""

        learning_rate: Optional[float]

    class OptimizerKwargsNoMP(_CommonKwargs, total=False):
        """The :class:`Optimizer` keywords, less ``multi_precision`` (a subclass names it)."""

        learning_rate: Optional[float]


__all__ = ["NDabs", "Optimizer", "create", "register"]

#: Element-wise absolute value; MXNet re-exports ``nd.abs`` under this name.
NDabs = np.abs

_AGGREGATION_ENV = "MXNET_OPTIMIZER_AGGREGATION_SIZE"
# Leaves room for the count to grow; the kernels take it as an int64.
_MAX_BEGIN_NUM_UPDATE = 2**62


def _aggregation_size_from_env() -> int:
    """Return the multi-tensor chunk size from ``MXNET_OPTIMIZER_AGGREGATION_SIZE`` (default 4).

    Optimizers that aggregate call this in their constructor, so the variable is read at
    construction time, as in MXNet. A non-integer value raises ``ValueError`` from ``int``.
    """
    return int(os.environ.get(_AGGREGATION_ENV, "4"))


def check_real(name: str, value: Any, optional: bool = False) -> Any:
    """Return ``value`` if it is a finite real number (or ``None`` when ``optional``); else
    raise ``TypeError`` / ``ValueError`` naming ``name``."""
    if value is None and optional:
        return value
    if not isinstance(value, numbers.Real):
        expected = "a number or None" if optional else "a number"
        raise TypeError(f"{name}: expected {expected}, got {value!r} ({type(value).__name__})")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        finite = False
    if not finite:
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _symbol_info(sym: Any) -> Tuple[Dict[str, Dict[str, Any]], List[str]]:
    """Return ``(attribute dict, argument names)`` for a symbol-like object or a plain dict."""
    if isinstance(sym, Mapping):
        for name, attrs in sym.items():
            if not isinstance(attrs, Mapping):
                raise TypeError(
                    f"sym[{name!r}]: expected a dict of attributes, got {type(attrs).__name__}"
                )
        return {name: dict(attrs) for name, attrs in sym.items()}, list(sym)
    if not (
        callable(getattr(sym, "attr_dict", None)) and callable(getattr(sym, "list_arguments", None))
    ):
        raise TypeError(
            "sym: expected a Symbol (with attr_dict() and list_arguments()) or a dict of "
            f"attribute dicts, got {type(sym).__name__}"
        )
    return sym.attr_dict(), sym.list_arguments()


def check_weight(weight: Any, name: str = "weight") -> None:
    """Raise ``TypeError`` naming ``name`` unless ``weight`` is a ``numpy.ndarray``."""
    if not isinstance(weight, np.ndarray):
        if isinstance(weight, (list, tuple)):
            got = f"a {type(weight).__name__} of {len(weight)}"
        else:
            got = type(weight).__name__
        raise TypeError(f"{name}: expected a numpy.ndarray, got {got}")


def warn_float16_without_multi_precision(which: str = "optimizer") -> None:
    """MXNet's advice when a float16 weight gets a state without ``multi_precision``, in
    MXNet's words (``which``: ``"SGD optimizer"`` for SGD, LARS and LBSGD, ...)."""
    warnings.warn(
        "Accumulating with float16 in optimizer can lead to "
        "poor accuracy or slow convergence. "
        f"Consider using multi_precision=True option of the {which}",
        UserWarning,
        stacklevel=3,
    )


class Optimizer:
    """Base class of all optimizers (MXNet 1.6.0 semantics).

    Parameters
    ----------
    rescale_grad : float, default 1.0
        Factor applied to every gradient before it is used (often ``1 / batch_size``).
    param_idx2name : dict, optional
        Maps an update index to a parameter name. When given, names ending in neither
        ``_weight`` nor ``_gamma`` get a weight-decay multiplier of 0.
    wd : float, default 0.0
        Weight-decay coefficient.
    clip_gradient : float, optional
        Clip gradients to ``[-clip_gradient, clip_gradient]`` after rescaling.
    learning_rate : float, optional
        Initial learning rate. Without a scheduler it defaults to 0.01; with a scheduler
        whose ``base_lr`` differs, it overwrites that ``base_lr`` (a notice is printed).
    lr_scheduler : LRScheduler, optional
        Learning-rate schedule, called with ``num_update``.
    sym : object or dict, optional
        Source of per-argument ``__lr_mult__`` / ``__wd_mult__`` attributes. Either an
        object with MXNet Symbol's ``attr_dict()`` and ``list_arguments()`` methods, or a
        plain dict mapping argument name to its attribute dict (the argument list is then
        the dict's keys, in order).
    begin_num_update : int, default 0
        Update count every index starts from.
    multi_precision : bool, default False
        Keep a float32 master copy of float16 weights and update that copy.
    param_dict : dict, optional
        Maps an index to an object with live ``lr_mult`` and ``wd_mult`` attributes (a Gluon
        ``Parameter`` in MXNet); it takes precedence over ``lr_mult`` / ``wd_mult``. Not
        copied and not pickled.

    Examples
    --------
    >>> opt = Optimizer(learning_rate=0.5, param_idx2name={0: "fc_weight", 1: "fc_bias"}, wd=0.1)
    >>> opt._get_lrs([0, 1]), opt._get_wds([0, 1])
    ([0.5, 0.5], [0.1, 0.0])
    """

    #: Lower-case class name -> optimizer class, shared by every optimizer.
    opt_registry: ClassVar[Dict[str, Type[Optimizer]]] = {}
    #: An aggregating :class:`Updater` groups a list by weight dtype before chunking it, as
    #: MXNet does for the optimizers it aggregates; ``False`` keeps the caller's order.
    aggregates_by_dtype: ClassVar[bool] = True

    # Instance attributes (declared for type checkers; set in ``__init__``).
    rescale_grad: float
    lr_scheduler: Optional[LRScheduler]
    lr: Optional[float]
    wd: float
    lr_mult: Dict[Hashable, float]
    wd_mult: Dict[Hashable, float]
    begin_num_update: int
    num_update: int
    _all_index_update_counts: Dict[int, Dict[Hashable, int]]
    _index_update_count: Dict[Hashable, int]
    clip_gradient: Optional[float]
    multi_precision: bool
    aggregate_num: int
    idx2name: Dict[Hashable, str]
    sym_info: Union[Tuple[Dict[str, Dict[str, Any]], List[str]], Tuple[()]]
    param_dict: Dict[Hashable, Any]

    def __init__(
        self,
        rescale_grad: float = 1.0,
        param_idx2name: Optional[Dict[Any, str]] = None,
        wd: float = 0.0,
        clip_gradient: Optional[float] = None,
        learning_rate: Optional[float] = None,
        lr_scheduler: Optional[LRScheduler] = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: Optional[Dict[Any, Any]] = None,
    ) -> None:
        check_real("rescale_grad", rescale_grad)
        check_real("wd", wd)
        check_real("clip_gradient", clip_gradient, optional=True)
        check_real("learning_rate", learning_rate, optional=True)
        if not isinstance(begin_num_update, numbers.Integral):
            raise TypeError(f"begin_num_update: expected an int, got {begin_num_update!r}")
        if abs(begin_num_update) >= _MAX_BEGIN_NUM_UPDATE:
            # The kernels count updates in int64.
            raise ValueError(f"begin_num_update must lie within ±2**62, got {begin_num_update}")
        if lr_scheduler is not None and not callable(lr_scheduler):
            raise TypeError(
                f"lr_scheduler: expected an LRScheduler, got {type(lr_scheduler).__name__}"
            )
        self.rescale_grad = rescale_grad
        self.lr_scheduler = lr_scheduler
        if lr_scheduler is None and learning_rate is None:
            learning_rate = 0.01
        self.lr = learning_rate
        if (
            lr_scheduler is not None
            and learning_rate is not None
            and _numpy1(ne, getattr(lr_scheduler, "base_lr", None), learning_rate)
        ):
            # MXNet prints this notice (a UserWarning object) rather than warning.
            print(
                UserWarning(
                    "learning rate from ``lr_scheduler`` has been "
                    "overwritten by ``learning_rate`` in optimizer."
                )
            )
            lr_scheduler.base_lr = learning_rate

        self.wd = wd
        self.lr_mult = {}
        self.wd_mult = {}
        self.begin_num_update = begin_num_update
        self.num_update = begin_num_update
        self._all_index_update_counts = {0: {}}
        self._index_update_count = self._all_index_update_counts[0]
        self.clip_gradient = clip_gradient
        self.multi_precision = multi_precision
        self.aggregate_num = 0

        if param_idx2name is None:
            param_idx2name = {}
        if not isinstance(param_idx2name, dict):  # an assert in MXNet; kept under -O
            raise _CheckError("param_idx2name must be a dict mapping parameter indices to names.")
        for index, name in param_idx2name.items():
            if not isinstance(name, str):
                raise TypeError(
                    f"param_idx2name[{index!r}]: expected a parameter name (str), got "
                    f"{type(name).__name__}"
                )
        self.idx2name = param_idx2name.copy()
        self.sym_info = _symbol_info(sym) if sym is not None else ()
        self.param_dict = param_dict if param_dict else {}

        # Virtual calls: subclasses (LARS) override the default multipliers here.
        self.set_lr_mult({})
        self.set_wd_mult({})

    # ------------------------------------------------------------------ registry

    @staticmethod
    def register(klass: Type[Optimizer]) -> Type[Optimizer]:
        """Register ``klass`` under its lower-case class name; usable as a decorator.

        Re-registering a name warns (``UserWarning``) and replaces the previous class.
        """
        assert isinstance(klass, type), "register expects a class."
        name = klass.__name__.lower()
        previous = Optimizer.opt_registry.get(name)
        if previous is not None:
            warnings.warn(
                f"optimizer {klass.__module__}.{klass.__name__} replaces the registered "
                f"optimizer {previous.__module__}.{previous.__name__}",
                UserWarning,
                stacklevel=2,
            )
        Optimizer.opt_registry[name] = klass
        return klass

    @staticmethod
    def create_optimizer(name: str, **kwargs: Any) -> Optimizer:
        """Instantiate the optimizer registered as ``name`` (case-insensitive) with ``kwargs``.

        Raises
        ------
        ValueError
            If no optimizer is registered under ``name``.
        """
        if not isinstance(name, str):
            raise TypeError(f"name: expected an optimizer name (str), got {type(name).__name__}")
        klass = Optimizer.opt_registry.get(name.lower())
        if klass is None:
            raise ValueError(f"no optimizer is registered under the name {name!r}")
        return klass(**kwargs)

    # ------------------------------------------------------------- learning rate

    @property
    def learning_rate(self) -> float:
        """Current learning rate: the scheduler's value at ``num_update``, else ``lr``.

        Reading it calls the scheduler, which may advance a stateful schedule.
        """
        if self.lr_scheduler is not None:
            return self.lr_scheduler(self.num_update)
        # Without a scheduler ``lr`` is always set (it defaults to 0.01).
        return cast(float, self.lr)

    def set_learning_rate(self, lr: float) -> None:
        """Set the learning rate; raises ``UserWarning`` when a scheduler is attached."""
        if self.lr_scheduler is not None:
            raise UserWarning(
                "set_learning_rate only works for an optimizer without an LRScheduler; "
                "this optimizer's learning rate comes from its lr_scheduler."
            )
        self.lr = check_real("lr", lr)

    def set_lr_scale(self, args_lrscale: Any) -> None:
        """Removed API kept for its error: always raises ``DeprecationWarning``."""
        raise DeprecationWarning

    # --------------------------------------------------------------- multipliers

    def _symbol_attribute(self, key: str) -> Dict[str, float]:
        """Collect ``float(attrs[key])`` for every symbol argument that carries ``key``."""
        found: Dict[str, float] = {}
        if self.sym_info:
            attrs, arg_names = self.sym_info
            for name in arg_names:
                if name in attrs and key in attrs[name]:
                    found[name] = float(attrs[name][key])
        return found

    def set_lr_mult(self, args_lr_mult: Dict[Hashable, float]) -> None:
        """Rebuild ``lr_mult``: symbol ``__lr_mult__`` attributes, then ``args_lr_mult``.

        Keys may be parameter names or update indices.
        """
        _check_multipliers("lr_mult", args_lr_mult)
        self.lr_mult = {}
        self.lr_mult.update(self._symbol_attribute("__lr_mult__"))
        self.lr_mult.update(args_lr_mult)

    def set_wd_mult(self, args_wd_mult: Dict[Hashable, float]) -> None:
        """Rebuild ``wd_mult``: name defaults, symbol ``__wd_mult__`` attributes, then args.

        Every name in ``param_idx2name`` ending in neither ``_weight`` nor ``_gamma`` starts
        with a multiplier of 0, so biases and normalisation offsets are not decayed.
        """
        _check_multipliers("wd_mult", args_wd_mult)
        self.wd_mult = {}
        for name in self.idx2name.values():
            if not (name.endswith("_weight") or name.endswith("_gamma")):
                self.wd_mult[name] = 0.0
        self.wd_mult.update(self._symbol_attribute("__wd_mult__"))
        self.wd_mult.update(args_wd_mult)

    def _apply_multipliers(
        self, base: float, indices: Sequence[Hashable], mults: Dict[Hashable, float], attr: str
    ) -> List[float]:
        """Scale ``base`` per index: ``param_dict`` beats an index key, which beats a name key."""
        if not (mults or self.param_dict or self.idx2name):
            return [base] * len(indices)  # nothing to scale: the common case, made cheap
        # NumPy scalars multiply as under NumPy 1 (MXNet's); plain floats skip that check.
        numpy_base = isinstance(base, np.generic)
        values: List[float] = []
        for index in indices:
            if index in self.param_dict:
                mult = getattr(self.param_dict[index], attr)
            elif index in mults:
                mult = mults[index]
            elif index in self.idx2name:
                mult = mults.get(self.idx2name[index], 1.0)
            else:
                values.append(base)
                continue
            if numpy_base or isinstance(mult, np.generic):
                values.append(_numpy1(mul, base, mult))
            else:
                values.append(base * mult)
        return values

    def _get_lrs(self, indices: Sequence[Hashable]) -> List[float]:
        """Learning rates for ``indices``; the scheduler is called once for the whole list."""
        if self.lr_scheduler is not None:
            base = self.lr_scheduler(self.num_update)
        else:
            base = cast(float, self.lr)  # always set without a scheduler
        return self._apply_multipliers(base, indices, self.lr_mult, "lr_mult")

    def _get_lr(self, index: Hashable) -> float:
        """Learning rate for one index."""
        return self._get_lrs([index])[0]

    def _get_wds(self, indices: Sequence[Hashable]) -> List[float]:
        """Weight decays for ``indices``."""
        return self._apply_multipliers(self.wd, indices, self.wd_mult, "wd_mult")

    def _get_wd(self, index: Hashable) -> float:
        """Weight decay for one index."""
        return self._get_wds([index])[0]

    # ------------------------------------------------------------ update counting

    def _set_current_context(self, device_id: int) -> None:
        """Make ``device_id``'s per-index counters the active ones (NumPy arrays use 0)."""
        self._index_update_count = self._all_index_update_counts.setdefault(device_id, {})

    def _update_count(self, index: Union[Hashable, Sequence[Hashable]]) -> None:
        """Count one update of ``index`` (or of each index in a list/tuple).

        A new index starts at ``begin_num_update``; ``num_update`` becomes the maximum count.
        """
        indices = index if isinstance(index, (list, tuple)) else [index]
        counts, begin, latest = self._index_update_count, self.begin_num_update, self.num_update
        for idx in indices:
            count = counts[idx] = counts.get(idx, begin) + 1
            if count > latest:
                latest = count
        self.num_update = latest

    # ------------------------------------------------------------ states, updates

    def create_state(self, index: Hashable, weight: np.ndarray) -> Any:
        """Create the auxiliary state of ``weight``; the base optimizer keeps none."""
        return None

    def create_state_multi_precision(self, index: Hashable, weight: np.ndarray) -> Any:
        """Create the state, wrapped as ``(float32 master copy, state)`` for float16 weights.

        The wrapping happens only with ``multi_precision=True``; a float16 weight without it
        triggers a ``UserWarning`` and gets the plain state.
        """
        check_weight(weight)
        if weight.dtype == np.float16:
            if self.multi_precision:
                master = weight.astype(np.float32)
                return (master, self.create_state(index, master))
            warn_float16_without_multi_precision()
        return self.create_state(index, weight)

    def update(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update ``weight`` in place from ``grad`` and ``state``; subclasses implement it."""
        raise NotImplementedError()

    def update_multi_precision(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """Update ``weight``, through its float32 master copy when multi-precision applies.

        For a float16 weight with ``multi_precision=True`` the state is ``(master, inner)``:
        ``update`` runs on the master with a float32 gradient, and the master is then
        rounded back into ``weight``. Every other case calls ``update`` directly.
        """
        if self.multi_precision:
            check_weight(weight)
        if self.multi_precision and weight.dtype == np.float16:
            master, inner = _checked_master(weight, grad, state)
            self.update(index, master, grad.astype(np.float32), inner)
            weight[...] = master.astype(weight.dtype)
        else:
            self.update(index, weight, grad, state)

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> Dict[str, Any]:
        # param_dict holds the owner's live parameters; the owner re-attaches it.
        state = self.__dict__.copy()
        state.pop("param_dict", None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__ = state
        self.param_dict = {}


def _check_multipliers(name: str, multipliers: Any) -> None:
    if not isinstance(multipliers, Mapping):
        raise TypeError(f"{name}: expected a dict of multipliers, got {type(multipliers).__name__}")
    for key, value in multipliers.items():
        check_real(f"{name}[{key!r}]", value)


register = Optimizer.register
create = Optimizer.create_optimizer


def _checked_master(weight: np.ndarray, grad: Any, state: Any) -> Tuple[np.ndarray, Any]:
    """``(master, inner state)`` of the generic multi-precision fallback, after checking
    everything that would make the final copy into ``weight`` fail, so that a bad call
    raises before the master copy is updated."""
    if not (isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], np.ndarray)):
        got = type(state).__name__ + (f" of {len(state)}" if isinstance(state, tuple) else "")
        raise TypeError(
            "state: expected (float32 master copy, state) as create_state_multi_precision "
            f"returns for float16 weights, got {got}"
        )
    master = state[0]
    if master.dtype != np.float32 or master.shape != weight.shape:
        raise TypeError(
            f"state: expected a float32 master copy of shape {weight.shape}, got a "
            f"{master.dtype} array of shape {master.shape}"
        )
    if not weight.flags.writeable:
        raise ValueError("weight: array is read-only; it must be writeable")
    if not weight.flags.c_contiguous:
        raise ValueError("weight: expected a C-contiguous array")
    dense = getattr(grad, "data", None) if getattr(grad, "stype", None) == "row_sparse" else grad
    if not isinstance(dense, np.ndarray):
        raise TypeError(f"grad: expected a numpy.ndarray, got {type(grad).__name__}")
    if dense.dtype != weight.dtype or tuple(getattr(grad, "shape", ())) != weight.shape:
        raise TypeError(
            f"grad: expected the weight's shape {weight.shape} and dtype float16, got "
            f"{tuple(grad.shape)} {dense.dtype}"
        )
    for name, other in (("master copy", master), ("grad", dense)):
        if weight.size and other.size and np.may_share_memory(weight, other):
            raise ValueError(f"weight: shares memory with the {name}")
    return master, state[1]
