"""Reading and writing MXNet 1.6 optimizer-state blobs without MXNet.

``mxnet.optimizer.Updater.get_states`` (what ``Trainer.save_states`` and
``Module.save_optimizer_states`` write) pickles a dict of states -- NDArrays, tuples of
them, ``None`` -- optionally paired with the optimizer. An NDArray pickles as
``NDArray(None)`` restored (BUILD) from ``{'handle': bytearray(raw)}``, where ``raw`` is
MXNet's own binary format (``MXNDArraySaveRawBytes``)::

    uint32 magic (0xF993FAC9; 0xF993FACA under numpy-shape semantics)
    int32  storage type (0: dense; sparse storage is not supported here)
    uint32 ndim, then ndim x int64 dims (little-endian)
    int32  device type, int32 device id
    int32  dtype flag (mshadow: 0 f32, 1 f64, 2 f16, 3 u8, 4 i32, 5 i8, 6 i64, 7 bool)
    the elements, C order, little-endian

On loading, MXNet's optimizer and scheduler classes map onto mxopt's and NDArrays become
NumPy arrays; on writing (``mxnet_compatible=True``) the reverse.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from .. import lr_scheduler
from .base import Optimizer, _aggregation_size_from_env

__all__ = [
    "MXNetNDArray",
    "dumps_mxnet",
    "mxnet_name",
    "ndarray_from_raw",
    "ndarray_to_raw",
    "plain_arrays",
]

_MAGIC_V2 = 0xF993FAC9
_MAGIC_V3 = 0xF993FACA
_DTYPE_FLAGS: Dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
}
_FLAG_OF_KIND: Dict[Tuple[str, int], int] = {
    (dtype.kind, dtype.itemsize): flag for flag, dtype in _DTYPE_FLAGS.items()
}
_MAX_NDIM = 32  # MXNet's own limit is lower still


def _refuse(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"refusing to load this MXNet NDArray: {what}")


def ndarray_from_raw(raw: Any) -> Tuple[Tuple[int, ...], np.dtype, bytes]:
    """Parse MXNet's raw NDArray bytes into ``(shape, dtype, data)``; the data must be
    exactly what the shape and dtype need (no amplification), dense, on any device."""
    if not isinstance(raw, (bytes, bytearray)):
        raise _refuse(f"its handle must be bytes, got {type(raw).__name__}")
    view = memoryview(raw)
    try:
        magic, stype, ndim = struct.unpack_from("<Iii", view, 0)
    except struct.error:
        raise _refuse("its raw bytes are truncated") from None
    if magic not in (_MAGIC_V2, _MAGIC_V3):
        raise _refuse(f"unsupported format (magic {magic:#x}); save it with MXNet 1.x")
    if stype != 0:
        raise _refuse(f"storage type {stype} is not dense")
    if not 0 <= ndim <= _MAX_NDIM or (ndim == 0 and magic == _MAGIC_V2):
        raise _refuse(f"it has no known shape (ndim {ndim})")
    offset = 12
    try:
        shape = struct.unpack_from(f"<{ndim}q", view, offset)
        offset += 8 * ndim
        _dev_type, _dev_id, flag = struct.unpack_from("<iii", view, offset)
    except struct.error:
        raise _refuse("its raw bytes are truncated") from None
    offset += 12
    if any(dim < 0 for dim in shape):
        raise _refuse(f"invalid shape {shape}")
    dtype = _DTYPE_FLAGS.get(flag)
    if dtype is None:
        raise _refuse(f"unsupported dtype flag {flag}")
    count = 1
    for dim in shape:
        count *= dim
    needed = count * dtype.itemsize
    if len(view) - offset != needed:
        raise _refuse(
            f"shape {shape} of {dtype} needs {needed} bytes of data, the blob has "
            f"{len(view) - offset}"
        )
    return tuple(shape), dtype, bytes(view[offset:])


def ndarray_to_raw(array: np.ndarray) -> bytearray:
    """MXNet's raw bytes of a dense CPU NDArray holding ``array``."""
    flag = _FLAG_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if flag is None:
        raise TypeError(f"MXNet has no NDArray dtype for {array.dtype}")
    if array.ndim == 0:
        raise ValueError("MXNet 1.6 (legacy shapes) cannot hold a 0-d NDArray state")
    head = struct.pack(f"<Iii{array.ndim}qiii", _MAGIC_V2, 0, array.ndim, *array.shape, 1, 0, flag)
    data = np.ascontiguousarray(array, dtype=_DTYPE_FLAGS[flag]).tobytes()
    return bytearray(head + data)


class MXNetNDArray(np.ndarray):
    """What ``mxnet.ndarray.ndarray.NDArray`` unpickles to: an array rebuilt from MXNet's
    raw bytes; :func:`plain_arrays` turns it into a plain ``numpy.ndarray`` view."""

    def __new__(cls, handle: Any = None) -> MXNetNDArray:
        if handle is not None:
            raise _refuse("NDArray(handle) is only rebuilt as NDArray(None)")
        made: MXNetNDArray = np.ndarray.__new__(cls, (0,), np.float32)
        return made

    def __setstate__(self, state: Any) -> None:
        if type(state) is not dict or set(state) != {"handle"}:
            raise _refuse("its state must be {'handle': bytes}")
        if state["handle"] is None:
            raise _refuse("it holds no data (an empty NDArray)")
        shape, dtype, data = ndarray_from_raw(state["handle"])
        setstate: Any = np.ndarray.__setstate__
        setstate(self, (1, shape, dtype, False, data))


def _builtin_classes() -> Dict[str, type]:
    from . import (  # the concrete classes, whatever the registry now holds
        DCASGD,
        FTML,
        LAMB,
        LARS,
        LBSGD,
        NAG,
        SGD,
        SGLD,
        AdaDelta,
        AdaGrad,
        Adam,
        Adamax,
        Ftrl,
        GroupAdaGrad,
        Nadam,
        RMSProp,
        Signum,
        Test,
        ccSGD,
    )

    classes: Dict[str, type] = {}
    for klass in (
        SGD, ccSGD, Signum, FTML, LARS, LAMB, LBSGD, DCASGD, NAG, SGLD, Adam, AdaGrad,
        RMSProp, AdaDelta, Ftrl, Adamax, Nadam, Test,
    ):  # fmt: skip
        classes[f"mxnet.optimizer.optimizer.{klass.__name__}"] = klass
    classes["mxnet.optimizer.contrib.GroupAdaGrad"] = GroupAdaGrad
    schedulers: Tuple[type, ...] = (
        lr_scheduler.LRScheduler,
        lr_scheduler.FactorScheduler,
        lr_scheduler.MultiFactorScheduler,
        lr_scheduler.PolyScheduler,
        lr_scheduler.CosineScheduler,
    )
    for scheduler in schedulers:
        classes[f"mxnet.lr_scheduler.{scheduler.__name__}"] = scheduler
    return classes


_CLASSES: Optional[Dict[str, type]] = None


def mxnet_classes() -> Dict[str, type]:
    """``'mxnet.<module>.<Class>'`` -> the mxopt class it loads as."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _builtin_classes()
    return _CLASSES


_NDARRAY_NAMES = {("mxnet.ndarray.ndarray", "NDArray"), ("mxnet.ndarray", "NDArray")}


def resolve_mxnet_global(module: str, name: str) -> Optional[Any]:
    """The mxopt stand-in for an MXNet global, or ``None`` if it is not one we map."""
    if (module, name) in _NDARRAY_NAMES:
        return MXNetNDArray
    if module == "mxnet.optimizer":
        module = "mxnet.optimizer.optimizer"
    return mxnet_classes().get(f"{module}.{name}")


def mxnet_name(klass: type) -> Optional[Tuple[str, str]]:
    """``(module, name)`` MXNet pickles ``klass`` (an mxopt built-in class) under."""
    for full, known in mxnet_classes().items():
        if known is klass:
            module, _, name = full.rpartition(".")
            return module, name
    return None


#: Constructor options of mxopt optimizers that MXNet 1.6's do not have.
_MXOPT_ONLY_OPTIONS = ("exact_norms", "update_master_copy")
#: Optimizers MXNet 1.6 updates one index at a time (``aggregate_num`` 0) and mxopt
#: aggregates (``aggregate_num`` from ``MXNET_OPTIMIZER_AGGREGATION_SIZE``).
_AGGREGATED_BY_MXOPT_ONLY = frozenset(
    (
        "AdaDelta", "AdaGrad", "Adam", "Adamax", "DCASGD", "FTML", "Ftrl", "GroupAdaGrad",
        "LAMB", "Nadam", "NAG", "RMSProp", "SGLD", "Signum",
    )
)  # fmt: skip


def fill_constructor_defaults(obj: Any) -> None:
    """Adapt an optimizer loaded from an MXNet blob: the mxopt-only attributes it lacks
    (LARS and LAMB's ``exact_norms``, ...) get their constructor defaults, and optimizers
    MXNet does not aggregate get mxopt's ``aggregate_num``."""
    import inspect

    if not isinstance(obj, Optimizer) or "allow_np_array" not in obj.__dict__:
        return  # not from an MXNet blob
    if type(obj).__name__ in _AGGREGATED_BY_MXOPT_ONLY and obj.__dict__.get("aggregate_num") == 0:
        obj.__dict__["aggregate_num"] = _aggregation_size_from_env()
    for klass in type(obj).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.name in _MXOPT_ONLY_OPTIONS and param.name not in obj.__dict__:
                obj.__dict__[param.name] = param.default


def plain_arrays(obj: Any, seen: Optional[Dict[int, Any]] = None) -> Any:
    """``obj`` with every :class:`MXNetNDArray` in dicts, lists and tuples replaced by a
    plain ``numpy.ndarray`` view of it (dicts and lists in place, tuples rebuilt)."""
    if seen is None:
        seen = {}
    key = id(obj)
    if key in seen:
        return seen[key]
    if isinstance(obj, MXNetNDArray):
        result: Any = obj.view(np.ndarray)
        seen[key] = result
        return result
    if type(obj) is tuple:
        seen[key] = obj
        rebuilt = tuple(plain_arrays(item, seen) for item in obj)
        result = obj if all(a is b for a, b in zip(rebuilt, obj)) else rebuilt
        seen[key] = result
        return result
    seen[key] = obj
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            obj[i] = plain_arrays(item, seen)
    elif isinstance(obj, dict):
        for k, item in obj.items():
            obj[k] = plain_arrays(item, seen)
    elif isinstance(obj, (Optimizer, lr_scheduler.LRScheduler)):
        fill_constructor_defaults(obj)
        plain_arrays(obj.__dict__, seen)
    return obj


class CompatUnpickler(pickle.Unpickler):
    """The trusting loader (``pickle``'s), with MXNet's classes mapped onto mxopt's."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "mxnet" or module.startswith("mxnet."):
            found = resolve_mxnet_global(module, name)
            if found is None:
                raise pickle.UnpicklingError(
                    f"this blob needs MXNet's {module}.{name}, which mxopt does not map"
                )
            return found
        return super().find_class(module, name)


def loads_trusted(blob: Any) -> Any:
    """``pickle.loads`` that also reads MXNet's blobs (executes what the blob says)."""
    return plain_arrays(CompatUnpickler(io.BytesIO(blob)).load())


# ---------------------------------------------------------------------------- writing

_PyPickler: Any = vars(pickle)["_Pickler"]

#: Attributes mxopt optimizers have and MXNet 1.6's do not (dropped when writing).
_MXOPT_ONLY = ("exact_norms", "update_master_copy", "_kernel_cache", "param_dict")


class _GlobalName:
    """A global written by name, without importing it (MXNet is not installed here)."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _ClassName(_GlobalName):
    """A class created with NEWOBJ (``cls.__new__(cls)``), then restored with BUILD."""


class _MXNetPickler(_PyPickler):  # type: ignore[misc]
    """Pickles states and optimizer under MXNet 1.6's names and NumPy 1.x's module names:
    arrays become MXNet NDArrays, mxopt optimizers and schedulers MXNet's classes (with
    MXNet's ``allow_np_array`` attribute, without mxopt-only ones)."""

    dispatch: ClassVar[Dict[Any, Any]] = dict(_PyPickler.dispatch)

    def save_global(self, obj: Any, name: Optional[str] = None) -> None:
        if isinstance(obj, _GlobalName):
            module, qualname = obj.module, obj.name
        else:
            module = getattr(obj, "__module__", None) or "builtins"
            qualname = name or obj.__qualname__
            if module == "numpy._core" or module.startswith("numpy._core."):
                module = "numpy.core" + module[len("numpy._core") :]  # NumPy 1.x's name
        if self.proto >= 4:
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + module.encode() + b"\n" + qualname.encode() + b"\n")
        self.memoize(obj)

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            raw = ndarray_to_raw(np.asarray(obj))
            return (_GlobalName("mxnet.ndarray.ndarray", "NDArray"), (None,), {"handle": raw})
        if isinstance(obj, (Optimizer, lr_scheduler.LRScheduler)):
            names = mxnet_name(type(obj))
            if names is None:
                raise pickle.PicklingError(
                    f"{type(obj).__name__} has no MXNet 1.6 counterpart to be saved as"
                )
            state = dict(obj.__getstate__() if isinstance(obj, Optimizer) else obj.__dict__)
            if isinstance(obj, Optimizer):
                for key in _MXOPT_ONLY:
                    state.pop(key, None)
                state.setdefault("allow_np_array", False)
                if type(obj).__name__ in _AGGREGATED_BY_MXOPT_ONLY:
                    state["aggregate_num"] = 0  # MXNet would pass lists it cannot update
            return (_ClassName(*names), (), state)
        return NotImplemented

    def save_reduce(
        self,
        func: Any,
        args: Any,
        state: Any = None,
        listitems: Any = None,
        dictitems: Any = None,
        state_setter: Any = None,
        *,
        obj: Any = None,
    ) -> None:
        if not isinstance(func, _GlobalName):
            super().save_reduce(func, args, state, listitems, dictitems, state_setter, obj=obj)
            return
        self.save(func)
        self.save(args)
        self.write(pickle.NEWOBJ if isinstance(func, _ClassName) else pickle.REDUCE)
        if obj is not None:
            self.memoize(obj)
        if state is not None:
            self.save(state)
            self.write(pickle.BUILD)


_MXNetPickler.dispatch[_GlobalName] = _MXNetPickler.save_global
_MXNetPickler.dispatch[_ClassName] = _MXNetPickler.save_global


def dumps_mxnet(obj: Any, protocol: int = 4) -> bytes:
    """Pickle ``obj`` (states, or ``(states, optimizer)``) so that MXNet 1.6 with NumPy 1.x
    loads it: arrays as NDArrays, optimizers and schedulers as MXNet's classes."""
    buffer = io.BytesIO()
    _MXNetPickler(buffer, protocol).dump(obj)
    return buffer.getvalue()
