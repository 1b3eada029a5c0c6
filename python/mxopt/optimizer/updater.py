"""``Updater``: applies an optimizer to indexed weights and owns their states.

Behaviour follows MXNet 1.6.0 ``mxnet.optimizer.Updater`` (spec: optimizer-base.md §10),
including dtype-grouped aggregation and pickled state save/restore, plus an opt-in
restricted loader for state blobs from untrusted sources.
"""

from __future__ import annotations

import collections
import importlib
import io
import math
import numbers
import os
import pickle
import re
import reprlib
from codecs import encode as codecs_encode
from typing import Any, Callable, ClassVar, Dict, Hashable, List, Tuple, Union

import numpy as np

from .. import lr_scheduler
from . import _checkpoint, _mxnet_compat
from ._mxnet_compat import MXNetNDArray
from .base import Optimizer, check_weight

__all__ = ["Updater", "get_updater"]

# NumPy's pickle reconstructors, by (submodule of numpy._core / numpy.core, name).
_NUMPY_RECONSTRUCTORS = {
    ("multiarray", "_reconstruct"),
    ("multiarray", "scalar"),
    ("numeric", "_frombuffer"),
}
_NUMPY_TYPES = {"ndarray": np.ndarray, "dtype": np.dtype}
# Builtins that pickles of plain containers and numbers may name (protocol 2 names the
# module ``__builtin__``; ``_codecs.encode`` rebuilds bytes in protocol-2 pickles).
_SAFE_BUILTINS: Dict[Tuple[str, str], Any] = {
    ("_codecs", "encode"): codecs_encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _module in ("builtins", "__builtin__"):
    for _type in (set, frozenset, complex, bytearray, bytes):
        _SAFE_BUILTINS[(_module, _type.__name__)] = _type
_SCHEDULER_CLASSES = (
    lr_scheduler.LRScheduler,
    lr_scheduler.FactorScheduler,
    lr_scheduler.MultiFactorScheduler,
    lr_scheduler.PolyScheduler,
    lr_scheduler.CosineScheduler,
)
# The dtypes an optimizer state may hold: bool, integers, floats, complex, as NumPy
# pickles them ('f4', 'b1', 'c16', ...). Nothing structured, no objects, no strings.
_DTYPE_SPEC = re.compile(r"[biufc][0-9]{1,2}")
_DTYPE_STATE_ORDERS = ("<", ">", "|", "=")
_MAX_NDIM = 64  # NumPy's limit


class _BadStateBlob(pickle.UnpicklingError, TypeError):
    """A state blob of the wrong structure (an ``UnpicklingError`` and a ``TypeError``)."""


class _TruncatedBlob(pickle.UnpicklingError, EOFError):
    """An empty or truncated state blob (an ``UnpicklingError``; ``EOFError`` as before)."""


def _numpy_reconstructor(submodule: str, name: str) -> Callable[..., Any]:
    """Resolve a NumPy reconstructor from ``numpy._core`` (NumPy 2) or ``numpy.core``."""
    for package in ("numpy._core", "numpy.core"):
        try:
            module = importlib.import_module(f"{package}.{submodule}")
        except ImportError:
            continue
        reconstructor: Callable[..., Any] = getattr(module, name)
        return reconstructor
    raise pickle.UnpicklingError(f"NumPy has no {submodule}.{name} to rebuild arrays with")


def _refuse(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"refusing to load this state blob: {what}")


def _check_dtype(dtype: Any, what: str) -> np.dtype:
    """A plain numeric dtype (what the dtype constructor below can make)."""
    if (
        not isinstance(dtype, np.dtype)
        or dtype.kind not in "biufc"
        or dtype.hasobject
        or dtype.names is not None
        or dtype.subdtype is not None
    ):
        raise _refuse(f"{what} has an unsupported dtype {reprlib.repr(dtype)}")
    return dtype


def _check_shape(shape: Any, what: str) -> int:
    """A tuple of non-negative ints; returns the element count (a Python int)."""
    if (
        type(shape) is not tuple
        or len(shape) > _MAX_NDIM
        or any(type(dim) is not int or dim < 0 for dim in shape)
    ):
        raise _refuse(f"{what} has an invalid shape {reprlib.repr(shape)}")
    return math.prod(shape)


def _buffer_size(buf: Any) -> int:
    if isinstance(buf, (bytes, bytearray)):
        return len(buf)
    if isinstance(buf, memoryview):
        return buf.nbytes
    raise _refuse(f"array data must be bytes, got {type(buf).__name__}")


def _check_data(count: int, dtype: np.dtype, buf: Any, what: str) -> None:
    """The supplied bytes must be exactly what the array needs: no amplification."""
    needed = count * dtype.itemsize
    if _buffer_size(buf) != needed:
        raise _refuse(
            f"{what} needs {needed} bytes of data but the blob supplies {_buffer_size(buf)}"
        )


def _args_dtype(obj: Any, align: Any = False, copy: Any = True) -> None:
    if not (isinstance(obj, str) and _DTYPE_SPEC.fullmatch(obj)) or not (
        isinstance(align, bool) and isinstance(copy, bool)
    ):
        raise _refuse(f"numpy.dtype{reprlib.repr((obj, align, copy))} is not a plain numeric dtype")


def _args_reconstruct(subtype: Any, shape: Any, typecode: Any) -> None:
    # What ndarray.__reduce__ always passes: the real data comes with BUILD, checked there.
    if not (subtype is np.ndarray and shape == (0,) and typecode in (b"b", "b")):
        raise _refuse("numpy _reconstruct is only accepted as (ndarray, (0,), b'b')")


def _args_scalar(dtype: Any, data: Any = None) -> None:
    _check_dtype(dtype, "a NumPy scalar")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _refuse(f"a NumPy scalar of dtype {dtype} needs {dtype.itemsize} bytes of data")


def _args_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> None:
    _check_dtype(dtype, "an array")
    _check_data(_check_shape(shape, "an array"), dtype, buf, "an array")
    if order not in ("C", "F"):
        raise _refuse(f"array order must be 'C' or 'F', got {reprlib.repr(order)}")


def _args_bytearray(*args: Any) -> None:
    # bytearray(int) would allocate that many bytes from a few bytes of blob.
    ok = (
        args == ()
        or (len(args) == 1 and isinstance(args[0], bytes))
        or (len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin-1", "latin1"))
    )
    if not ok:
        raise _refuse("bytearray is only rebuilt from bytes or a latin-1 string")


def _args_bytes(*args: Any) -> None:
    if args != ():
        raise _refuse("bytes are only rebuilt empty (bytes(n) would allocate n bytes)")


def _args_encode(*args: Any) -> None:
    if not (len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1")):
        raise _refuse("_codecs.encode is only accepted as (str, 'latin1')")


def _args_collection(*args: Any) -> None:
    if not (args == () or (len(args) == 1 and type(args[0]) in (list, tuple))):
        raise _refuse("set and frozenset are only rebuilt from a list")


def _args_complex(*args: Any) -> None:
    if len(args) > 2 or any(type(arg) not in (int, float) for arg in args):
        raise _refuse("complex is only rebuilt from two floats")


def _args_ordered_dict(*args: Any) -> None:
    if args != ():
        raise _refuse("OrderedDict is only rebuilt empty, then filled item by item")


_RECONSTRUCT = _numpy_reconstructor("multiarray", "_reconstruct")
# Callable -> argument check, for REDUCE. Nothing else may be called with arguments.
_REDUCE_CHECKS: Dict[Any, Callable[..., None]] = {
    np.dtype: _args_dtype,
    _RECONSTRUCT: _args_reconstruct,
    _numpy_reconstructor("multiarray", "scalar"): _args_scalar,
    _numpy_reconstructor("numeric", "_frombuffer"): _args_frombuffer,
    bytearray: _args_bytearray,
    bytes: _args_bytes,
    codecs_encode: _args_encode,
    set: _args_collection,
    frozenset: _args_collection,
    complex: _args_complex,
    collections.OrderedDict: _args_ordered_dict,
}


def _args_mxnet_ndarray(*args: Any) -> None:
    if args != (None,):
        raise _refuse("an MXNet NDArray is only rebuilt as NDArray(None), then restored")


_REDUCE_CHECKS[MXNetNDArray] = _args_mxnet_ndarray


def _allowed_classes() -> Tuple[type, ...]:
    return (
        *Optimizer.opt_registry.values(),
        *_SCHEDULER_CLASSES,
        *_mxnet_compat.mxnet_classes().values(),
    )


# The pure-Python unpickler: unlike the C one, it lets every opcode be overridden.
_PyUnpickler: Any = vars(pickle)["_Unpickler"]


class _StateUnpickler(_PyUnpickler):  # type: ignore[misc]
    """Unpickler for untrusted optimizer-state blobs: no code runs, memory stays bounded.

    Globals: NumPy array, scalar and dtype reconstruction; a few container/number
    builtins and ``collections.OrderedDict``; optimizer classes registered in
    ``Optimizer.opt_registry``; the schedulers of ``mxopt.lr_scheduler``. Any other global
    raises ``pickle.UnpicklingError``.

    The pure-Python unpickler is used so that every opcode that calls something can be
    checked (the C one only lets ``find_class`` be overridden, and its memo is an array
    that one ``LONG_BINPUT`` can grow to gigabytes):

    * REDUCE calls only the callables of ``_REDUCE_CHECKS``, with the argument shapes
      that pickles of NumPy arrays, scalars, dtypes and containers use (no ``bytearray(n)``,
      no ``bytes(n)``, dtypes only plain numeric ones, ...);
    * NEWOBJ creates only ``complex`` numbers and empty optimizer/scheduler instances;
    * BUILD restores only those instances (from a dict), dtypes (plain byte-order state)
      and arrays fresh from ``_reconstruct`` -- whose shape, dtype and data are checked so
      that the data supplied is exactly what the shape needs;
    * APPEND(S), SETITEM(S) and ADDITEMS only fill lists, dicts and sets; INST, OBJ and
      extension codes are refused.

    Allocation is therefore bounded by the blob: array and byte data by their size, and
    Python containers by a constant factor of the opcodes that create them.
    """

    dispatch: ClassVar[Dict[int, Any]] = dict(_PyUnpickler.dispatch)

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self._unbuilt: Dict[int, np.ndarray] = {}
        self._unbuilt_mxnet: Dict[int, MXNetNDArray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy._core.multiarray", "numpy.core.multiarray"):
            submodule = "multiarray"
        elif module in ("numpy._core.numeric", "numpy.core.numeric"):
            submodule = "numeric"
        else:
            submodule = ""
        if (submodule, name) in _NUMPY_RECONSTRUCTORS:
            return _numpy_reconstructor(submodule, name)
        if module == "numpy" and name in _NUMPY_TYPES:
            return _NUMPY_TYPES[name]
        if (module, name) in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[(module, name)]
        for klass in _allowed_classes():
            if klass.__module__ == module and klass.__qualname__ == name:
                return klass
        if module.startswith("mxnet."):
            mapped = _mxnet_compat.resolve_mxnet_global(module, name)
            if mapped is not None:
                return mapped
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: it is not a NumPy array type, a "
            "registered optimizer or an mxopt scheduler"
        )

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        # By identity: dtypes compare equal to Python types (dtype('c16') == complex).
        check = next((c for f, c in _REDUCE_CHECKS.items() if f is func), None)
        if check is None or type(args) is not tuple:
            raise _refuse(f"it calls {reprlib.repr(func)}, which only a trusted blob may call")
        check(*args)
        value = func(*args)
        if func is _RECONSTRUCT:
            self._unbuilt[id(value)] = value
        elif func is MXNetNDArray:
            self._unbuilt_mxnet[id(value)] = value
        stack[-1] = value

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, {}))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, kwargs))

    @staticmethod
    def _new(cls: Any, args: Any, kwargs: Any) -> Any:
        cls_any: Any = cls
        if type(args) is not tuple or kwargs:
            raise _refuse(f"unexpected arguments to create {reprlib.repr(cls)}")
        if cls is complex:
            _args_complex(*args)
            return complex(*args)
        if any(cls is klass for klass in _allowed_classes()) and args == ():
            return cls_any.__new__(cls_any)
        raise _refuse(
            f"it creates {reprlib.repr(cls)}{reprlib.repr(args)}, which only a trusted blob "
            "may create"
        )

    def load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if type(inst) is MXNetNDArray:
            if self._unbuilt_mxnet.pop(id(inst), None) is not inst:
                raise _refuse("it restores an MXNet NDArray twice")
            inst.__setstate__(state)  # checks the raw bytes: exact size, dense, known dtype
        elif isinstance(inst, np.ndarray):
            if self._unbuilt.pop(id(inst), None) is not inst:
                raise _refuse("it restores an array twice or one not made by _reconstruct")
            self._check_array_state(state)
            inst.__setstate__(state)
        elif isinstance(inst, np.dtype):
            if not (
                type(state) is tuple
                and len(state) == 8
                and state[0] == 3
                and state[1] in _DTYPE_STATE_ORDERS
                and state[2:] == (None, None, None, -1, -1, 0)
            ):
                raise _refuse(f"unsupported dtype state {reprlib.repr(state)}")
            dtype_any: Any = inst
            dtype_any.__setstate__(state)
        elif type(inst) in _allowed_classes():
            if type(state) is not dict or not all(type(key) is str for key in state):
                raise _refuse(f"the state of a {type(inst).__name__} must be a dict")
            setstate = getattr(inst, "__setstate__", None)
            if setstate is not None:
                setstate(state)
            else:
                inst.__dict__.update(state)
        else:
            raise _refuse(f"it restores the state of a {type(inst).__name__}")

    @staticmethod
    def _check_array_state(state: Any) -> None:
        if type(state) is not tuple or len(state) != 5 or state[0] != 1:
            raise _refuse("an array state must be (1, shape, dtype, is_fortran, data)")
        _, shape, dtype, is_fortran, data = state
        count = _check_shape(shape, "an array")
        _check_dtype(dtype, "an array")
        if not isinstance(is_fortran, bool):
            raise _refuse("an array state's is_fortran must be a bool")
        if not isinstance(data, (bytes, bytearray)):
            raise _refuse(f"array data must be bytes, got {type(data).__name__}")
        _check_data(count, dtype, data, f"an array of shape {shape} and dtype {dtype}")

    def load_append(self) -> None:
        if type(self.stack[-2]) is not list:
            raise _refuse("APPEND on something that is not a list")
        super().load_append()

    def load_appends(self) -> None:
        if not (self.metastack and type(self.metastack[-1][-1]) is list):
            raise _refuse("APPENDS on something that is not a list")
        super().load_appends()

    def load_setitem(self) -> None:
        if not isinstance(self.stack[-3], dict):
            raise _refuse("SETITEM on something that is not a dict")
        super().load_setitem()

    def load_setitems(self) -> None:
        if not (self.metastack and isinstance(self.metastack[-1][-1], dict)):
            raise _refuse("SETITEMS on something that is not a dict")
        super().load_setitems()

    def load_additems(self) -> None:
        if not (self.metastack and type(self.metastack[-1][-1]) is set):
            raise _refuse("ADDITEMS on something that is not a set")
        super().load_additems()

    def _refuse_opcode(self) -> None:
        raise _refuse("it uses an opcode (INST, OBJ, EXT, persistent id) that states never use")

    def load(self) -> Any:
        try:
            loaded = super().load()
            if self._unbuilt_mxnet:
                raise _refuse("an MXNet NDArray is never restored from its raw bytes")
            return _mxnet_compat.plain_arrays(loaded)
        except EOFError:
            raise _TruncatedBlob("the state blob is empty or truncated") from None
        except (pickle.UnpicklingError, MemoryError, RecursionError):
            raise
        except Exception as exc:  # malformed opcodes, stack underflow, bad arguments...
            raise pickle.UnpicklingError(
                f"malformed state blob: {type(exc).__name__}: {exc}"
            ) from exc


for _opcode, _method in (
    (pickle.REDUCE, _StateUnpickler.load_reduce),
    (pickle.NEWOBJ, _StateUnpickler.load_newobj),
    (pickle.NEWOBJ_EX, _StateUnpickler.load_newobj_ex),
    (pickle.BUILD, _StateUnpickler.load_build),
    (pickle.APPEND, _StateUnpickler.load_append),
    (pickle.APPENDS, _StateUnpickler.load_appends),
    (pickle.SETITEM, _StateUnpickler.load_setitem),
    (pickle.SETITEMS, _StateUnpickler.load_setitems),
    (pickle.ADDITEMS, _StateUnpickler.load_additems),
    (pickle.INST, _StateUnpickler._refuse_opcode),
    (pickle.OBJ, _StateUnpickler._refuse_opcode),
    (pickle.EXT1, _StateUnpickler._refuse_opcode),
    (pickle.EXT2, _StateUnpickler._refuse_opcode),
    (pickle.EXT4, _StateUnpickler._refuse_opcode),
    (pickle.PERSID, _StateUnpickler._refuse_opcode),
    (pickle.BINPERSID, _StateUnpickler._refuse_opcode),
):
    _StateUnpickler.dispatch[_opcode[0]] = _method


def _check_loaded(loaded: Any) -> Tuple[Dict[Hashable, Any], Any]:
    """Split what a blob held into ``(states, optimizer or None)``, or raise."""
    if isinstance(loaded, tuple) and len(loaded) == 2:
        states, optimizer = loaded
        if not isinstance(states, dict):
            raise _BadStateBlob(
                f"a (states, optimizer) blob needs a dict of states, got {type(states).__name__}"
            )
        if not isinstance(optimizer, Optimizer):
            raise _BadStateBlob(
                "a (states, optimizer) blob needs an Optimizer instance, got "
                f"{type(optimizer).__name__}"
            )
        return states, optimizer
    if not isinstance(loaded, dict):
        raise _BadStateBlob(
            "a state blob holds a dict of states or a (states, optimizer) pair, got "
            f"{type(loaded).__name__}"
            + (f" of length {len(loaded)}" if isinstance(loaded, (tuple, list)) else "")
        )
    return loaded, None


class Updater:
    """Apply ``optimizer`` to weights identified by index, creating their states on demand.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to apply.

    Attributes
    ----------
    optimizer : Optimizer
        The optimizer (``set_states`` may replace it).
    states : dict
        Index -> state from ``optimizer.create_state_multi_precision``.
    states_synced : dict
        Index -> whether the state was checked since it was created or loaded.
    aggregate_updates : bool
        ``optimizer.aggregate_num > 0`` at construction; not refreshed afterwards.

    Examples
    --------
    >>> class HalfStep(Optimizer):
    ...     def update(self, index, weight, grad, state):
    ...         weight -= 0.5 * grad
    >>> updater = Updater(HalfStep())
    >>> weight = np.ones(2)
    >>> updater(0, np.ones(2), weight)
    >>> weight
    array([0.5, 0.5])
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.states: Dict[Hashable, Any] = {}
        self.states_synced: Dict[Hashable, bool] = {}
        self.aggregate_updates = optimizer.aggregate_num > 0
        # The dtype of each weight whose state was created or loaded here: a checkpoint
        # records it for parameters without state arrays.
        self._weight_dtypes: Dict[Hashable, np.dtype] = {}
        # ... and its shape (the size of LBSGD's accumulator when no state array has it).
        self._weight_shapes: Dict[Hashable, Tuple[int, ...]] = {}

    def __call__(self, index: Any, grad: Any, weight: Any) -> None:
        """Update ``weight`` in place from ``grad`` (note the order: grad before weight).

        Parameters
        ----------
        index : int, str, bytes, or list/tuple of them
            Key(s) of the weight(s). ``bytes`` keys are decoded to ``str``; in a list the
            decoded key is written back into the caller's list, as MXNet does.
        grad : array or RowSparseNDArray, or a list/tuple of them
            Gradient(s), aligned with ``index``.
        weight : numpy.ndarray or a list/tuple of them
            Weight(s), aligned with ``index``.

        Notes
        -----
        If the call raises, the states it created for weights whose update did not
        complete are dropped (the next call creates them afresh).

        With ``aggregate_updates``, the triples are grouped by weight dtype (groups in
        order of first appearance; not for optimizers whose ``aggregates_by_dtype`` is
        false, which take mixed dtypes) and each group is passed in chunks of
        ``optimizer.aggregate_num`` as tuples of indices, weights and grads plus a list of
        states. Otherwise every weight gets its own ``update_multi_precision`` call.
        """
        if isinstance(index, (list, tuple)):
            indices, grads, weights = index, grad, weight
        else:
            indices, grads, weights = [index], [grad], [weight]
        if not len(indices) == len(grads) == len(weights):
            raise ValueError(
                f"index, grad and weight must have equal lengths, got {len(indices)}, "
                f"{len(grads)} and {len(weights)}"
            )
        for i, weight_i in enumerate(weights):
            check_weight(weight_i, "weight" if weights is not weight else f"weight[{i}]")
        if weights:
            # NumPy arrays live in host memory: one device, id 0.
            self.optimizer._set_current_context(0)
        if isinstance(indices, tuple):
            # A tuple cannot receive decoded keys, so they are decoded into a private copy.
            indices = list(indices)
        # States created by this call whose update has not completed: if the call raises,
        # they are dropped, so that a failed first update (say, with a weight of the wrong
        # dtype) leaves no state behind that would break every later update of the index.
        pending: Dict[Hashable, bool] = {}
        try:
            for i, (idx, weight_i) in enumerate(zip(indices, weights)):
                if isinstance(idx, bytes):
                    idx = idx.decode("utf-8")
                    indices[i] = idx
                if idx not in self.states:
                    state = self.optimizer.create_state_multi_precision(idx, weight_i)
                    self.states[idx] = state
                    self.states_synced[idx] = True
                    self._weight_dtypes[idx] = weight_i.dtype
                    self._weight_shapes[idx] = weight_i.shape
                    pending[idx] = True
                elif not self.states_synced[idx]:
                    state = self.sync_state_context(self.states[idx], None)
                    self.states[idx] = _shaped_like(state, weight_i)
                    self.states_synced[idx] = True

            if self.aggregate_updates:
                self._update_aggregated(indices, weights, grads, pending)
            else:
                for idx, weight_i, grad_i in zip(indices, weights, grads):
                    self.optimizer.update_multi_precision(idx, weight_i, grad_i, self.states[idx])
                    pending.pop(idx, None)
        except BaseException:
            for idx in pending:
                self.states.pop(idx, None)
                self.states_synced.pop(idx, None)
            raise

    def _update_aggregated(
        self, indices: List[Any], weights: Any, grads: Any, pending: Dict[Hashable, bool]
    ) -> None:
        """Pass same-dtype weights to the optimizer in chunks of ``aggregate_num``."""
        groups: Dict[Any, List[Tuple[Any, Any, Any]]] = {}
        by_dtype = self.optimizer.aggregates_by_dtype
        for triple in zip(indices, weights, grads):
            groups.setdefault(triple[1].dtype if by_dtype else None, []).append(triple)
        for group in groups.values():
            group_indices, group_weights, group_grads = zip(*group)
            start = 0
            while start < len(group):
                # Re-read per chunk, as MXNet does; a non-positive size would never advance.
                chunk = self.optimizer.aggregate_num
                if not isinstance(chunk, numbers.Integral):
                    raise TypeError(
                        f"optimizer.aggregate_num must be an int, got {type(chunk).__name__}"
                    )
                if chunk < 1:
                    raise ValueError(
                        f"optimizer.aggregate_num must be at least 1 while the updater "
                        f"aggregates, got {chunk}"
                    )
                stop = start + chunk
                chunk_indices = group_indices[start:stop]
                self.optimizer.update_multi_precision(
                    chunk_indices,
                    group_weights[start:stop],
                    group_grads[start:stop],
                    [self.states[idx] for idx in chunk_indices],
                )
                for idx in chunk_indices:
                    pending.pop(idx, None)
                start = stop

    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        """Write a checkpoint that runs no code when loaded, and that the Rust crate reads too.

        One safetensors file (format: README "Checkpoints") holds every state, keyed by
        parameter name (a ``str`` index itself; an ``int`` index its ``param_idx2name``
        entry, else its decimal form), float32 master copies, update counts, the
        optimizer's hyper-parameters and settings, and the scheduler's position. It is
        written through a temporary file renamed when complete.

        Raises
        ------
        ValueError
            For what the format cannot hold: an optimizer or scheduler class it does not
            know (a custom subclass), a state of another structure than the optimizer
            creates, negative update counts, two keys with the same name; or a file that
            cannot be written.

        Notes
        -----
        ``param_dict``, ``sym`` and ``param_idx2name`` are not stored (the owner attaches
        them, as with pickles). LBSGD's gradient accumulation is stored, also part-way
        through a batch. The position of :mod:`mxopt.random`'s generator (SGLD's noise)
        is stored too; ``load(path, restore_random=True)`` restores it.
        """
        _checkpoint.save(self, path)

    def load(self, path: Union[str, os.PathLike[str]], restore_random: bool = False) -> None:
        """Load a checkpoint written by :meth:`save` or by the Rust crate's
        ``Optimizer::save``: states, counts, the optimizer's settings and its scheduler.

        The file must hold this updater's optimizer (``ccsgd`` and ``sgd`` are one); its
        hyper-parameters, learning rate, weight decay, multipliers, ``multi_precision`` and
        schedule replace the optimizer's (a new scheduler object is built). States keyed
        by a name that ``save`` derived from an ``int`` index come back under that index.
        States saved by Rust are flat; each takes its weight's shape at its first update.

        With ``restore_random=True``, :mod:`mxopt.random`'s global generator goes back to
        its position at the time of saving (a Rust file: the optimizer's generator), so
        that SGLD continues with the noise of an uninterrupted run. It is off by default
        because the generator is shared by everything random in mxopt.

        Raises
        ------
        ValueError
            For a file that cannot be read, is damaged or tampered with (the container is
            checked natively: header, offsets, dtypes, sizes), holds another optimizer, or
            has settings or states this optimizer refuses. Nothing is changed then.
        """
        _checkpoint.load(self, path, restore_random)

    def sync_state_context(self, state: Any, context: Any) -> Any:
        """Return ``state`` with its arrays placed on ``context``.

        Tuples and lists are rebuilt item by item; arrays and everything else are returned
        unchanged, because NumPy arrays already live in host memory (``context`` is kept for
        MXNet's signature and not used).
        """
        if isinstance(state, tuple):
            return tuple(self.sync_state_context(item, context) for item in state)
        if isinstance(state, list):
            return [self.sync_state_context(item, context) for item in state]
        return state

    def get_states(self, dump_optimizer: bool = False, mxnet_compatible: bool = False) -> bytes:
        """Pickle the states dict, or ``(states, optimizer)`` with ``dump_optimizer=True``.

        The optimizer is pickled without its ``param_dict``.

        With ``mxnet_compatible=True`` the blob is one MXNet 1.6 loads
        (``Updater.set_states``, ``Trainer.load_states``, ``Module.load_optimizer_states``)
        with NumPy 1.x or 2.x: state arrays are written as MXNet NDArrays (CPU), the
        optimizer and its scheduler as MXNet's classes, NumPy objects under NumPy 1.x's
        module names (``numpy.core``). mxopt reads such a blob back too. Raises
        ``pickle.PicklingError`` for an optimizer or scheduler MXNet 1.6 does not have
        and ``TypeError`` for a state dtype MXNet has no NDArray for.
        """
        obj = (self.states, self.optimizer) if dump_optimizer else self.states
        if mxnet_compatible:
            return _mxnet_compat.dumps_mxnet(obj)
        return pickle.dumps(obj)

    def set_states(self, states: bytes, safe: bool = False) -> None:
        """Load states saved by :meth:`get_states`; a pickled optimizer replaces ``optimizer``.

        Parameters
        ----------
        states : bytes
            A blob from :meth:`get_states`.
        safe : bool, default False
            ``False`` uses ``pickle.loads``, exactly like MXNet. **That path can execute
            arbitrary code embedded in the bytes**: use it only for blobs you created or
            trust. ``True`` uses a restricted unpickler that resolves only NumPy array,
            scalar and dtype reconstruction (plain numeric dtypes), container builtins,
            ``collections.OrderedDict``, optimizer classes in ``Optimizer.opt_registry``
            and the ``mxopt.lr_scheduler`` classes; it executes no other code from the
            bytes and raises ``pickle.UnpicklingError`` naming any other global (e.g. a
            custom scheduler class or ``os.system``). It also checks the arguments of
            everything it calls, so the memory a blob makes it allocate stays proportional
            to the blob's size (array data must be supplied in full; no ``bytearray(n)``).

        Raises
        ------
        pickle.UnpicklingError
            For an empty or truncated blob (also an ``EOFError``), anything the safe
            loader refuses or cannot parse, and a blob that holds neither a dict of states
            nor a ``(dict, Optimizer)`` pair (also a ``TypeError``).
        TypeError
            If ``states`` is not bytes.

        Nothing is changed when it raises.

        Both loaders also read blobs written by MXNet 1.6 (``Updater.get_states``,
        ``Trainer.save_states``, ``Module.save_optimizer_states``) without MXNet:
        ``mxnet.optimizer.*`` and ``mxnet.lr_scheduler.*`` classes load as mxopt's, and
        NDArrays (dense, any dtype MXNet has) as writeable ``numpy.ndarray`` states. The
        safe loader checks their raw bytes like any array data (exact size, no
        amplification). An optimizer MXNet updates one index at a time gets mxopt's
        ``aggregate_num``; LARS and LAMB get ``exact_norms`` (and LAMB
        ``update_master_copy``) at their defaults.

        Notes
        -----
        ``aggregate_updates`` is not recomputed for a loaded optimizer, and every loaded
        state is marked as not yet synced.
        """
        if not isinstance(states, (bytes, bytearray, memoryview)):
            raise TypeError(f"states: expected the bytes of a blob, got {type(states).__name__}")
        if safe:
            loaded = _StateUnpickler(io.BytesIO(states)).load()
        else:
            try:
                loaded = _mxnet_compat.loads_trusted(states)
            except EOFError:
                raise _TruncatedBlob("the state blob is empty or truncated") from None
        # Nothing is replaced until the blob is known to have the right structure.
        new_states, optimizer = _check_loaded(loaded)
        if optimizer is not None:
            self.optimizer = optimizer
        self.states = new_states
        self.states_synced = dict.fromkeys(self.states, False)
        self._weight_dtypes = {}
        self._weight_shapes = {}


def _shaped_like(state: Any, weight: Any) -> Any:
    """``state`` with each flat array of the weight's size viewed in the weight's shape
    (the Rust side saves states flat)."""
    if isinstance(state, tuple):
        return tuple(_shaped_like(item, weight) for item in state)
    if (
        isinstance(state, np.ndarray)
        and isinstance(weight, np.ndarray)
        and state.ndim == 1
        and weight.ndim != 1
        and state.size == weight.size
    ):
        return state.reshape(weight.shape)
    return state


def get_updater(optimizer: Optimizer) -> Updater:
    """Return an :class:`Updater` for ``optimizer``."""
    return Updater(optimizer)
