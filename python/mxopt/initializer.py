"""Weight initializers with MXNet 1.6.0's API and behaviour, over NumPy arrays.

Every initializer writes into an existing array in place; values are cast to the array's
dtype on assignment. Random fills (``Uniform``, ``Normal``, ``Xavier``, ``MSRAPrelu``,
``Orthogonal``) draw from mxopt's single generator (:mod:`mxopt.random`): seed it with
``mxopt.random.seed(n)`` for reproducible arrays. Deterministic initializers (``Zero``,
``One``, ``Constant``, ``Bilinear``, ``LSTMBias``, ``Load``, ``Mixed``) reproduce MXNet
number for number. Spec: ``initializer.md``.

Parameters are routed by name. Wrap the name in an :class:`InitDesc` to use the current
dispatch (by suffix: ``weight``, ``bias``, ``gamma``, ``beta``, ``min``, ``max``, quantized
weights and biases, or a per-variable ``__init__`` attribute); a plain string takes MXNet's
deprecated legacy table (which also knows ``moving_mean``, ``upsampling*``, ``stn_loc*``).

>>> import numpy as np
>>> import mxopt
>>> from mxopt import initializer as init
>>> mxopt.random.seed(0)
>>> w = np.empty((4, 3), dtype=np.float32)
>>> init.Xavier(magnitude=2.0)(init.InitDesc("fc1_weight"), w)
>>> b = np.ones(4, dtype=np.float32)
>>> init.Xavier()(init.InitDesc("fc1_bias"), b)
>>> b.tolist()
[0.0, 0.0, 0.0, 0.0]
>>> init.create('["constant", {"value": 0.5}]').dumps()
'["constant", {"value": 0.5}]'

Extend it as in MXNet: subclass :class:`Initializer`, override ``_init_weight`` (and
optionally ``_init_bias`` etc.), decorate with :func:`register`, then refer to it by its
lowercased class name in :func:`create` or in an ``__init__`` attribute.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import re
import struct
import warnings
import zipfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from . import random as _random
from .lr_scheduler import _check, _CheckError

__all__ = [
    "Bilinear",
    "Constant",
    "FusedRNN",
    "InitDesc",
    "Initializer",
    "LSTMBias",
    "Load",
    "MSRAPrelu",
    "Mixed",
    "Normal",
    "One",
    "Orthogonal",
    "Uniform",
    "Xavier",
    "Zero",
    "alias",
    "create",
    "register",
]


class _ShapeIndexError(ValueError, IndexError):
    """Array of too few dimensions where MXNet failed with an ``IndexError``.

    A ``ValueError`` with a clear message; still caught by ``except IndexError``.
    """


class _UnknownRandType(ValueError, UnboundLocalError):
    """Unknown ``Orthogonal.rand_type``; MXNet hit an unbound local (a ``NameError``).

    A ``ValueError`` with a clear message; still caught by ``except NameError``.
    """


class _MissingName(TypeError, KeyError):
    """:func:`create` without an initializer name; MXNet failed with a ``KeyError``.

    A ``TypeError`` with a clear message; still caught by ``except KeyError``.
    """


def _check_number(owner: str, name: str, value: Any) -> None:
    """``TypeError`` naming the argument unless ``value`` is a real number (its range is
    checked where it is used)."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__}")


def _fill(arr: np.ndarray, value: Any, what: str) -> None:
    """MXNet's ``arr[:] = number``: its fill operator gets ``str(number)`` (so a NumPy
    scalar counts as its shortest repr: ``float16(65504)`` as 65500), parses a double,
    writes +0 for a zero of either sign and fails on a bool (a ``TypeError`` naming
    ``what`` here, before anything is written)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        raise TypeError(f"{what} must be a real number, got {type(value).__name__}")
    number = float(str(value))
    arr[...] = _operator_scalar(0.0 if number == 0 else number, arr.dtype)


def _operator_scalar(number: float, dtype: np.dtype) -> Any:
    """A double operator parameter as MXNet casts it to ``dtype``: through float32 for
    float16 (``1 + 2**-11 + 2**-40`` becomes 1, not the nearest float16 above)."""
    return np.float32(number) if dtype == np.float16 else number


def _check_array(arr: Any) -> None:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"arr: expected a numpy.ndarray, got {type(arr).__name__}")


class InitDesc(str):
    """A parameter name with the attributes that steer its initialization.

    The object *is* the name (a ``str`` subclass, equal to and hashing like the plain
    string), with two extra attributes.

    Parameters
    ----------
    name : str
        Parameter name, e.g. ``"fc1_weight"``.
    attrs : dict, optional
        Variable attributes; ``attrs["__init__"]`` (a registry name or a ``dumps()`` string)
        overrides name-based dispatch. A falsy value becomes a fresh ``{}``.
    global_init : Initializer, optional
        The model-wide initializer; :meth:`Initializer.__call__` sets it when unset.
    """

    attrs: Dict[str, Any]
    global_init: Optional[Initializer]

    def __new__(
        cls,
        name: str,
        attrs: Optional[Dict[str, Any]] = None,
        global_init: Optional[Initializer] = None,
    ) -> InitDesc:
        if attrs and not isinstance(attrs, dict):
            raise TypeError(f"attrs: expected a dict of attributes, got {type(attrs).__name__}")
        desc = super().__new__(cls, name)
        desc.attrs = attrs or {}
        desc.global_init = global_init
        return desc


def _rms(x: np.ndarray) -> str:
    """Default verbose statistic: ``‖x‖₂ / sqrt(x.size)`` in the array's float type."""
    x = np.asarray(x)
    value = np.linalg.norm(x.astype(np.float64).ravel()) / np.sqrt(x.size)
    kind = x.dtype.type if x.dtype.kind == "f" else np.float32
    return str(kind(value))


class Initializer:
    """Base class of the initializers.

    Subclasses pass their constructor arguments to ``super().__init__(**kwargs)`` so that
    :meth:`dumps` can describe them, and override the ``_init_*`` hooks; at least
    ``_init_weight`` (the base one raises ``NotImplementedError``).

    Instances compare equal when they have the same type and the same constructor
    arguments; they are not hashable (as in MXNet).
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._verbose = False
        self._print_func: Optional[Callable[[np.ndarray], str]] = None

    def set_verbosity(
        self, verbose: bool = False, print_func: Optional[Callable[[np.ndarray], str]] = None
    ) -> Initializer:
        """Log every initialized array at INFO level; returns ``self``.

        ``print_func(arr)`` gives the statistic that is logged; by default the RMS value
        ``‖arr‖₂ / sqrt(arr.size)``.
        """
        self._verbose = verbose
        self._print_func = _rms if print_func is None else print_func
        return self

    def _verbose_print(self, desc: str, init: str, arr: np.ndarray) -> None:
        if self._verbose and self._print_func:
            logging.info("Initialized %s as %s: %s", desc, init, self._print_func(arr))

    def dumps(self) -> str:
        """JSON ``[lowercased class name, constructor kwargs]``, readable by :func:`create`."""
        return json.dumps([type(self).__name__.lower(), self._kwargs])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Initializer):
            return NotImplemented
        return type(self) is type(other) and self._kwargs == other._kwargs

    def __call__(self, desc: str, arr: np.ndarray) -> None:
        """Initialize ``arr`` in place for the parameter ``desc``.

        With an :class:`InitDesc`: an ``__init__`` attribute wins (its initializer's
        ``_init_weight`` is applied whatever the name); otherwise the first matching name
        suffix among ``weight``, ``bias``, ``gamma``, ``beta``, ``min``, ``max``,
        ``weight_quantize``, ``bias_quantize`` picks the hook, and any other name raises
        ``ValueError``. A plain string takes the deprecated legacy table instead.
        """
        if not isinstance(desc, InitDesc):
            self._legacy_init(desc, arr)
            return
        _check_array(arr)
        if desc.global_init is None:
            desc.global_init = self
        init = desc.attrs.get("__init__", "")
        if init:
            create(init)._init_weight(desc, arr)
            self._verbose_print(desc, init, arr)
            return
        for suffix, hook in (
            ("weight", self._init_weight),
            ("bias", self._init_bias),
            ("gamma", self._init_gamma),
            ("beta", self._init_beta),
            ("min", self._init_zero),
            ("max", self._init_one),
            ("weight_quantize", self._init_quantized_weight),
            ("bias_quantize", self._init_quantized_bias),
        ):
            if desc.endswith(suffix):
                hook(desc, arr)
                self._verbose_print(desc, suffix, arr)
                return
        self._init_default(desc, arr)

    def _legacy_init(self, name: str, arr: np.ndarray) -> None:
        """MXNet's pre-``InitDesc`` dispatch on a plain string name (deprecated)."""
        warnings.warn(
            "Initializing by a plain string name is deprecated; pass an InitDesc instead",
            DeprecationWarning,
            stacklevel=3,
        )
        if not isinstance(name, str):
            raise TypeError(f"name: the parameter name must be a str, got {type(name).__name__}")
        _check_array(arr)
        if name.startswith("upsampling"):
            self._init_bilinear(name, arr)
        elif name.startswith("stn_loc") and name.endswith("weight"):
            self._init_zero(name, arr)
        elif name.startswith("stn_loc") and name.endswith("bias"):
            self._init_loc_bias(name, arr)
        elif name.endswith("bias"):
            self._init_bias(name, arr)
        elif name.endswith("gamma"):
            self._init_gamma(name, arr)
        elif name.endswith("beta"):
            self._init_beta(name, arr)
        elif name.endswith("weight"):
            self._init_weight(name, arr)
        elif name.endswith(("moving_mean", "moving_inv_var", "moving_avg", "min")):
            self._init_zero(name, arr)
        elif name.endswith(("moving_var", "max")):
            self._init_one(name, arr)
        else:
            self._init_default(name, arr)

    # --- hooks -------------------------------------------------------------------------

    def _init_bilinear(self, _: str, arr: np.ndarray) -> None:
        arr[...] = _bilinear_kernel(arr.shape)

    def _init_loc_bias(self, _: str, arr: np.ndarray) -> None:
        # Identity affine transform for a spatial transformer's localisation net.
        if arr.ndim == 0:
            raise _ShapeIndexError(f"stn_loc bias needs 6 elements, got shape {arr.shape}")
        # A real check: under ``python -O`` an assert would let (k, 6) arrays broadcast.
        if arr.shape[0] != 6:
            raise _CheckError(f"stn_loc bias needs 6 elements, got shape {arr.shape}")
        arr[...] = np.array([1.0, 0, 0, 0, 1.0, 0])

    def _init_zero(self, _: str, arr: np.ndarray) -> None:
        arr[...] = 0.0

    def _init_one(self, _: str, arr: np.ndarray) -> None:
        arr[...] = 1.0

    def _init_bias(self, _: str, arr: np.ndarray) -> None:
        arr[...] = 0.0

    def _init_quantized_bias(self, _: str, arr: np.ndarray) -> None:
        arr[...] = 0.0

    def _init_quantized_weight(self, _: str, arr: np.ndarray) -> None:
        # As MXNet: one int8 draw from [-127, 127), repeated over the whole array.
        arr[...] = np.int8(_random.randint(-127, 127))

    def _init_gamma(self, _: str, arr: np.ndarray) -> None:
        arr[...] = 1.0

    def _init_beta(self, _: str, arr: np.ndarray) -> None:
        arr[...] = 0.0

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        """Initialize a weight; every concrete initializer overrides this."""
        raise NotImplementedError(
            f"{type(self).__name__} must override _init_weight (called for {name})"
        )

    def _init_default(self, name: str, _: np.ndarray) -> None:
        raise ValueError(
            f"no initialization rule for {name}: names are only recognised by the endings "
            "weight, bias, gamma (set to 1) and beta (set to 0); give this variable its own "
            "initializer through its __init__ attribute"
        )


# --- registry -----------------------------------------------------------------------------

_REGISTRY: Dict[str, type] = {}


def _register(klass: type, name: Optional[str] = None) -> type:
    assert isinstance(klass, type) and issubclass(klass, Initializer), (
        f"only subclasses of Initializer can be registered, got {klass!r}"
    )
    key = (name or klass.__name__).lower()
    if key in _REGISTRY:
        warnings.warn(
            f"new initializer {klass.__module__}.{klass.__name__} is overriding existing "
            f"initializer {_REGISTRY[key].__module__}.{_REGISTRY[key].__name__} as {key!r}",
            UserWarning,
            stacklevel=3,
        )
    _REGISTRY[key] = klass
    return klass


def register(klass: type) -> type:
    """Class decorator: make an :class:`Initializer` subclass creatable by its lowercased name.

    Re-registering a name warns (``UserWarning``) and replaces the old class.

    >>> @register
    ... class Twos(Initializer):
    ...     def _init_weight(self, _, arr):
    ...         arr[...] = 2.0
    >>> isinstance(create("twos"), Twos)
    True
    """
    return _register(klass)


def alias(*names: str) -> Callable[[type], type]:
    """Class decorator registering the class under extra names (lowercased)."""

    def reg(klass: type) -> type:
        for name in names:
            _register(klass, name)
        return klass

    return reg


def create(*args: Any, **kwargs: Any) -> Initializer:
    """Build an initializer from a name, a ``dumps()`` JSON string, a dict or an instance.

    ``create("xavier", magnitude=2)``, ``create('["normal", {"sigma": 0.5}]')``,
    ``create('{"initializer": "uniform", "scale": 0.2}')``, ``create({"initializer":
    "one"})``, ``create(initializer="constant", value=3)``; an instance is returned as is
    (no extra arguments allowed). Unknown names, non-string specs and malformed JSON
    specs raise ``ValueError`` (also an ``AssertionError``, as MXNet's asserts); a missing
    ``initializer`` keyword raises ``TypeError`` (also a ``KeyError``, as MXNet).
    """
    if args:
        name, args = args[0], args[1:]
    elif "initializer" in kwargs:
        name = kwargs.pop("initializer")
    else:
        raise _MissingName(
            "create needs the initializer: a name, a dumps() string, a dict or an "
            "instance, first or as initializer=..."
        )
    if isinstance(name, Initializer):
        _check(
            not args and not kwargs,
            "an Initializer instance was given: no further arguments are accepted",
        )
        return name
    if isinstance(name, dict):
        return create(**name)
    _check(isinstance(name, str), f"initializer must be a str, got {type(name).__name__}")
    if name.startswith(("[", "{")):
        _check(not args and not kwargs, "a JSON spec takes no further arguments")
        spec = json.loads(name)
        if name.startswith("["):
            _check(
                isinstance(spec, list) and len(spec) == 2 and isinstance(spec[1], dict),
                f"a JSON list spec must be [name, {{arguments}}], got {name!r}",
            )
            return create(spec[0], **spec[1])
        return create(**spec)
    key = name.lower()
    _check(key in _REGISTRY, f"{key} is not a registered initializer; see register()")
    made: Initializer = _REGISTRY[key](*args, **kwargs)
    return made


# --- Load and Mixed -----------------------------------------------------------------------

_MX_LIST_MAGIC = 0x112
_MX_ND_MAGICS = (0xF993FAC9, 0xF993FACA)  # NDArray V2 and V3 (NumPy-shape) records
_MX_DTYPES = {
    0: np.float32,
    1: np.float64,
    2: np.float16,
    3: np.uint8,
    4: np.int32,
    5: np.int8,
    6: np.int64,
    7: np.bool_,
}


# MXNet's TShape holds at most this many dimensions in practice; NumPy allows 64.
_MX_MAX_NDIM = 32


def _read_mx_params(path: str) -> Dict[str, np.ndarray]:
    """Read MXNet's binary NDArray-list format (``mx.nd.save`` / ``.params``) with NumPy.

    Supports dense arrays of the V2/V3 record format (MXNet >= 0.9) of the dtypes in
    ``_MX_DTYPES``; anything else raises ``ValueError``. Every count, length and shape is
    checked against the bytes that remain before it is used, so a damaged or crafted file
    raises one ``ValueError`` naming the file and the problem, quickly and without
    allocating more than the file's size; trailing bytes after the names are an error.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0

    def fail(what: str) -> ValueError:
        return ValueError(f"{path}: not a valid MXNet parameter file: {what} (at byte {pos})")

    def take(fmt: str, what: str) -> Tuple[Any, ...]:
        nonlocal pos
        size = struct.calcsize(fmt)
        if size > len(data) - pos:
            raise fail(f"truncated while reading {what}")
        vals = struct.unpack_from(fmt, data, pos)
        pos += size
        return vals

    if len(data) < 8 or struct.unpack_from("<Q", data)[0] != _MX_LIST_MAGIC:
        raise ValueError(f"{path}: neither a .npz archive nor an MXNet NDArray file")
    _magic, _reserved, count = take("<QQQ", "the header")
    # The smallest record (magic, storage type, ndim) takes 12 bytes.
    if count > (len(data) - pos) // 12:
        raise fail(f"the header announces {count} arrays, more than the file can hold")
    arrays: List[np.ndarray] = []
    for i in range(count):
        (rec_magic,) = take("<I", f"the header of array {i}")
        if rec_magic not in _MX_ND_MAGICS:
            raise fail(f"unsupported NDArray record format {rec_magic:#x} (array {i})")
        (stype,) = take("<i", f"the storage type of array {i}")
        if stype != 0:
            raise fail(f"only dense arrays are supported (array {i} has storage type {stype})")
        (ndim,) = take("<i", f"the number of dimensions of array {i}")
        if ndim == -1 or (ndim == 0 and rec_magic == _MX_ND_MAGICS[0]):
            # An empty (V2) or shape-less (V3) NDArray: the record stops here.
            arrays.append(np.zeros((0,), dtype=np.float32))
            continue
        if not 0 <= ndim <= _MX_MAX_NDIM:
            raise fail(f"array {i} has {ndim} dimensions")
        shape = take(f"<{ndim}q", f"the shape of array {i}")
        if any(dim < 0 for dim in shape):
            raise fail(f"array {i} has a negative dimension in its shape {shape}")
        _dev_type, _dev_id, type_flag = take("<iii", f"the context and dtype of array {i}")
        if type_flag not in _MX_DTYPES:
            raise fail(f"unsupported MXNet dtype flag {type_flag} (array {i})")
        dtype = np.dtype(_MX_DTYPES[type_flag]).newbyteorder("<")
        nbytes = dtype.itemsize
        for dim in shape:  # Python ints: no overflow
            nbytes *= dim
        if nbytes > len(data) - pos:
            raise fail(
                f"array {i} of shape {shape} needs {nbytes} bytes but only {len(data) - pos} remain"
            )
        n = nbytes // dtype.itemsize
        raw = np.frombuffer(data, dtype, n, pos)
        arrays.append(raw.reshape(shape).astype(dtype.newbyteorder("=")))
        pos += nbytes
    (nnames,) = take("<Q", "the number of names")
    if nnames != count:
        raise fail(
            f"a parameter file needs a name for every array ({count} arrays, {nnames} names)"
        )
    names = []
    for i in range(nnames):
        (length,) = take("<Q", f"the length of name {i}")
        if length > len(data) - pos:
            raise fail(f"name {i} is {length} bytes long but only {len(data) - pos} remain")
        try:
            names.append(data[pos : pos + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise fail(f"name {i} is not UTF-8 ({exc.reason})") from None
        pos += length
    if pos != len(data):
        raise fail(f"{len(data) - pos} unexpected bytes after the last name")
    return dict(zip(names, arrays))


def _load_param_file(path: str) -> Dict[str, np.ndarray]:
    if zipfile.is_zipfile(path):
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    return _read_mx_params(path)


class Load:
    """Initialize parameters from saved arrays, falling back to ``default_init``.

    Parameters
    ----------
    param : str, os.PathLike or dict
        A mapping name -> array, or a file: a NumPy ``.npz`` archive (e.g. written with
        ``np.savez(path, **{"arg:fc1_weight": w})``) or an MXNet ``mx.nd.save`` / ``.params``
        file, read without MXNet (dense arrays; MXNet >= 0.9 record format). Names starting
        with ``arg:`` or ``aux:`` are stored without that prefix.
    default_init : callable, optional
        Called as ``default_init(name, arr)`` (the same name object) for names not loaded.
    verbose : bool
        Log each parameter's source at INFO level.

    Calling it with a loaded name asserts the shapes match and copies (casting) the
    values; an unknown name without ``default_init`` raises ``AssertionError``.
    ``Load`` is not an :class:`Initializer` subclass and is not registered.
    """

    def __init__(
        self, param: Any, default_init: Optional[Callable[..., None]] = None, verbose: bool = False
    ) -> None:
        if isinstance(param, (str, os.PathLike)):
            param = _load_param_file(os.fspath(param))
        _check(isinstance(param, dict), f"param must be a dict or a file, got {type(param)}")
        self.param: Dict[str, np.ndarray] = {}
        for name, arr in param.items():
            if not isinstance(name, str):
                raise TypeError(f"param: names must be str, got {type(name).__name__} {name!r}")
            key = name[4:] if name.startswith(("arg:", "aux:")) else name
            self.param[key] = np.asarray(arr)
        self.default_init = default_init
        self.verbose = verbose

    def __call__(self, name: str, arr: np.ndarray) -> None:
        _check_array(arr)
        if name in self.param:
            src = self.param[name]
            if arr.shape != src.shape:
                # A real check (an assert would vanish under ``python -O`` and let NumPy
                # broadcast into the target); still an AssertionError, as in MXNet.
                raise _CheckError(
                    f"cannot load parameter {name}: target shape {arr.shape} but the loaded "
                    f"array has shape {src.shape}"
                )
            arr[...] = src
            if self.verbose:
                logging.info("Initialized %s by loading", name)
        else:
            if self.default_init is None:
                raise _CheckError(
                    f"cannot initialize {name}: it is not among the loaded parameters and no "
                    "default_init was given"
                )
            self.default_init(name, arr)
            if self.verbose:
                logging.info("Initialized %s by default", name)


def _compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"patterns: {pattern!r} is not a regular expression ({error})") from None


class Mixed:
    """Pick the initializer by the first regular expression that matches the name.

    Patterns are tried in order with ``re.match`` (anchored at the start of the name, not a
    full match): ``Mixed(["bias", ".*"], [Zero(), Uniform(0.1)])``. A name no pattern
    matches raises ``ValueError``; end with a ``".*"`` catch-all to avoid that.
    ``Mixed`` is not an :class:`Initializer` subclass and is not registered.
    """

    def __init__(self, patterns: Sequence[str], initializers: Sequence[Callable[..., None]]):
        _check(
            len(patterns) == len(initializers),
            f"got {len(patterns)} patterns but {len(initializers)} initializers",
        )
        self.map = list(zip([_compile_pattern(p) for p in patterns], initializers))

    def __call__(self, name: str, arr: np.ndarray) -> None:
        for prog, init in self.map:
            if prog.match(name):
                init(name, arr)
                return
        # MXNet's message here was never %-formatted (it shows a literal "%s"); we name it.
        raise ValueError(
            f"Parameter {name} matches none of the patterns; add a final '.*' pattern with "
            "a default initializer"
        )


# --- concrete initializers ----------------------------------------------------------------


@register
@alias("zeros")
class Zero(Initializer):
    """Fill with 0 (registered as ``zero`` and ``zeros``)."""

    def __init__(self) -> None:
        super().__init__()

    def _init_weight(self, _: str, arr: np.ndarray) -> None:
        arr[...] = 0


@register
@alias("ones")
class One(Initializer):
    """Fill with 1 (registered as ``one`` and ``ones``)."""

    def __init__(self) -> None:
        super().__init__()

    def _init_weight(self, _: str, arr: np.ndarray) -> None:
        arr[...] = 1


@register
class Constant(Initializer):
    """Fill with ``value``: a scalar, or an array broadcastable to the target.

    ``dumps()`` turns an array value into a nested list and keeps that list in
    ``_kwargs`` (as MXNet does). Lists and tuples are dumped as they are (MXNet raised
    ``AttributeError`` for them).
    """

    def __init__(self, value: Any) -> None:
        super().__init__(value=value)
        self.value = value

    def _init_weight(self, _: str, arr: np.ndarray) -> None:
        if isinstance(self.value, (numbers.Number, np.generic)):
            _fill(arr, self.value, "Constant: value")
        else:
            arr[...] = self.value

    def dumps(self) -> str:
        val = self._kwargs["value"]
        if not np.isscalar(val) and hasattr(val, "tolist"):
            self._kwargs["value"] = val.tolist()
        return json.dumps([type(self).__name__.lower(), self._kwargs])


@register
class Uniform(Initializer):
    """I.i.d. draws from U[-scale, scale) (default ``scale=0.07``)."""

    def __init__(self, scale: float = 0.07) -> None:
        _check_number("Uniform", "scale", scale)
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, _: str, arr: np.ndarray) -> None:
        _random.uniform(-self.scale, self.scale, arr)


@register
class Normal(Initializer):
    """I.i.d. draws from N(0, sigma²); ``sigma`` is the standard deviation (default 0.01)."""

    def __init__(self, sigma: float = 0.01) -> None:
        _check_number("Normal", "sigma", sigma)
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, _: str, arr: np.ndarray) -> None:
        _random.normal(0, self.sigma, arr)


@register
class Orthogonal(Initializer):
    """A scaled (semi-)orthogonal matrix (Saxe et al., 2013).

    The array is viewed as ``(shape[0], prod(shape[1:]))``; a float32 matrix of that shape
    of U(-1, 1) (``rand_type="uniform"``) or N(0, 1) (``"normal"``) draws from
    :mod:`mxopt.random` is replaced by ``scale`` times an orthonormal factor of the same
    shape: rows orthonormal when ``shape[0] <= prod(shape[1:])``, else columns. MXNet takes
    that factor from NumPy's (LAPACK's) SVD, whose signs and basis depend on the LAPACK
    build; mxopt computes it in Rust, the same for every platform and thread count and in
    both languages (``mxopt::init::Initializer::Orthogonal``): the ``Q`` of the Householder
    QR decomposition of the matrix (of its transpose when ``shape[0] < prod(shape[1:])``)
    with ``R``'s diagonal made non-negative, in float64, rounded once to the array's dtype.
    It spans the same subspace as MXNet's factor and, for normal draws, is distributed
    uniformly over the orthonormal matrices. Needs at least 2 dimensions; another
    ``rand_type`` raises ``ValueError`` at call time.
    """

    def __init__(self, scale: float = 1.414, rand_type: str = "uniform") -> None:
        _check_number("Orthogonal", "scale", scale)
        super().__init__(scale=scale, rand_type=rand_type)
        self.scale = scale
        self.rand_type = rand_type

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        if self.rand_type not in ("uniform", "normal"):
            raise _UnknownRandType(
                f"Orthogonal: rand_type must be 'uniform' or 'normal', got {self.rand_type!r}"
            )
        if arr.ndim < 2:
            raise ValueError(
                f"Orthogonal initializer needs an array of at least 2 dimensions; {name} "
                f"has shape {arr.shape}"
            )
        scale = float(self.scale)
        if not np.isfinite(scale):
            raise ValueError(f"Orthogonal: scale must be finite, got {self.scale!r}")
        seed, stream = _random.next_stream()
        normal = self.rand_type == "normal"
        direct = (
            arr.dtype in (np.float16, np.float32, np.float64)
            and arr.flags.c_contiguous
            and arr.flags.writeable
            and arr.dtype.isnative
        )
        if direct:
            _core.fill_orthogonal(arr, scale, normal, seed, stream)
        else:
            # Other dtypes or layouts: computed in float64, then cast on assignment.
            tmp = np.empty(arr.shape, dtype=np.float64)
            _core.fill_orthogonal(tmp, scale, normal, seed, stream)
            arr[...] = tmp


@register
class Xavier(Initializer):
    """Glorot & Bengio (2010) scaling: draws with scale ``sqrt(magnitude / factor)``.

    With ``hw = prod(shape[2:])`` (1 for 2-D), ``fan_in = shape[1]·hw`` and
    ``fan_out = shape[0]·hw``, ``factor`` is their mean (``factor_type="avg"``),
    ``fan_in`` (``"in"``) or ``fan_out`` (``"out"``). ``rnd_type="uniform"`` draws from
    U[-s, s), ``"gaussian"`` from N(0, s²). Arrays of fewer than 2 dimensions and unknown
    types raise ``ValueError`` when called.
    """

    def __init__(
        self, rnd_type: str = "uniform", factor_type: str = "avg", magnitude: float = 3
    ) -> None:
        _check_number(type(self).__name__, "magnitude", magnitude)
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(magnitude)

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        shape = arr.shape
        if len(shape) < 2:
            raise ValueError(
                f"Xavier initializer needs an array of at least 2 dimensions; {name} has "
                f"shape {shape}"
            )
        hw_scale = float(np.prod(shape[2:])) if len(shape) > 2 else 1.0
        fan_in, fan_out = shape[1] * hw_scale, shape[0] * hw_scale
        if self.factor_type == "avg":
            factor = (fan_in + fan_out) / 2.0
        elif self.factor_type == "in":
            factor = fan_in
        elif self.factor_type == "out":
            factor = fan_out
        else:
            raise ValueError(
                f"Xavier: factor_type must be 'avg', 'in' or 'out', got {self.factor_type!r}"
            )
        if self.rnd_type not in ("uniform", "gaussian"):
            raise ValueError(
                f"Xavier: rnd_type must be 'uniform' or 'gaussian', got {self.rnd_type!r}"
            )
        if not (isinstance(self.magnitude, numbers.Real) and 0 <= self.magnitude < math.inf):
            raise ValueError(
                f"Xavier: magnitude must be a finite non-negative number, got {self.magnitude!r}"
            )
        if arr.size == 0:
            return  # nothing to draw (and a zero fan: MXNet divides by zero)
        scale = math.sqrt(self.magnitude / factor)
        if self.rnd_type == "uniform":
            _random.uniform(-scale, scale, arr)
        else:
            _random.normal(0, scale, arr)


@register
class MSRAPrelu(Xavier):
    """He et al. (2015) initialization for PReLU nets: Gaussian Xavier with
    ``magnitude = 2 / (1 + slope²)``. ``dumps()`` records ``factor_type`` and ``slope``."""

    def __init__(self, factor_type: str = "avg", slope: float = 0.25) -> None:
        _check_number("MSRAPrelu", "slope", slope)
        super().__init__("gaussian", factor_type, 2.0 / (1 + slope**2))
        self._kwargs = {"factor_type": factor_type, "slope": slope}


def _bilinear_kernel(shape: Tuple[int, ...]) -> np.ndarray:
    if len(shape) < 4:
        raise _ShapeIndexError(
            f"Bilinear initializer needs a 4-D (N, C, H, W) array, got shape {shape}"
        )
    # Both axes use the width's factor and centre, as MXNet does.
    f = np.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    i = np.arange(int(np.prod(shape)))
    x = i % shape[3]
    y = (i // shape[3]) % shape[2]
    kernel: np.ndarray = (1 - np.abs(x / f - c)) * (1 - np.abs(y / f - c))
    return kernel.astype(np.float32).reshape(shape)


@register
class Bilinear(Initializer):
    """Bilinear-interpolation kernel for deconvolution (upsampling) weights.

    Every ``(n, c)`` slice of the 4-D array gets the same ``H x W`` kernel
    ``(1 - |x/f - c|)·(1 - |y/f - c|)`` with ``f = ceil(W / 2)`` and
    ``c = (2f - 1 - f mod 2) / (2f)`` (both from the width).
    """

    def __init__(self) -> None:
        super().__init__()

    def _init_weight(self, _: str, arr: np.ndarray) -> None:
        arr[...] = _bilinear_kernel(arr.shape)


@register
class LSTMBias(Initializer):
    """LSTM bias: 0 everywhere except the forget gate's ``forget_bias``.

    The array holds the four gates' biases in the order i, f, c, o, ``H = shape[0] / 4``
    each; rows ``[H, 2H)`` get ``forget_bias``. Use it through a variable's ``__init__``
    attribute: as a global initializer it only sees ``*weight`` names.
    """

    def __init__(self, forget_bias: float = 1.0) -> None:
        _check_number("LSTMBias", "forget_bias", forget_bias)
        super().__init__(forget_bias=forget_bias)
        self.forget_bias = forget_bias

    def _init_weight(self, name: str, arr: np.ndarray) -> None:
        # Check the shape before writing anything (MXNet zeroed a 0-d array, then failed).
        if arr.ndim < 1:
            raise _ShapeIndexError(
                f"LSTMBias needs an array of at least 1 dimension; {name} has shape {arr.shape}"
            )
        num_hidden = int(arr.shape[0] / 4)
        bias = np.zeros(arr.shape, dtype=arr.dtype)
        # MXNet's slice assignment passes float(forget_bias) to its operator.
        bias[num_hidden : 2 * num_hidden] = _operator_scalar(float(self.forget_bias), arr.dtype)
        arr[...] = bias


_RNN_GATES = {
    "rnn_relu": [""],
    "rnn_tanh": [""],
    "lstm": ["_i", "_f", "_c", "_o"],
    "gru": ["_r", "_z", "_o"],
}


def _fused_rnn_layout(
    size: int, num_hidden: int, num_layers: int, mode: str, bidirectional: bool
) -> List[Tuple[str, Tuple[int, ...]]]:
    """Names and shapes of the pieces of a fused RNN parameter vector, in storage order."""
    if mode not in _RNN_GATES:
        raise ValueError(f"FusedRNN: mode must be one of {sorted(_RNN_GATES)}, got {mode!r}")
    gates = _RNN_GATES[mode]
    m, h, b, nl = len(gates), num_hidden, 2 if bidirectional else 1, num_layers
    dirs = ["l", "r"][:b]
    ni = size // b // h // m - (nl - 1) * (h + b * h + 2) - h - 2
    pieces: List[Tuple[str, Tuple[int, ...]]] = []
    for layer in range(nl):
        for d in dirs:
            fan_in = ni if layer == 0 else b * h
            pieces += [(f"{d}{layer}_i2h{g}_weight", (h, fan_in)) for g in gates]
            pieces += [(f"{d}{layer}_h2h{g}_weight", (h, h)) for g in gates]
    for layer in range(nl):
        for d in dirs:
            pieces += [(f"{d}{layer}_i2h{g}_bias", (h,)) for g in gates]
            pieces += [(f"{d}{layer}_h2h{g}_bias", (h,)) for g in gates]
    total = sum(int(np.prod(s)) for _, s in pieces)
    if not (ni > 0 and total == size):  # an assert in MXNet; kept under ``python -O``
        raise _CheckError(
            f"FusedRNN: a parameter vector of {size} elements does not fit mode={mode!r}, "
            f"num_hidden={num_hidden}, num_layers={num_layers}, bidirectional={bidirectional}"
        )
    return pieces


@register
class FusedRNN(Initializer):
    """Initialize the flat parameter vector of a fused (cuDNN-style) RNN piece by piece.

    mxopt has no RNN cells, so the layout is described here instead. With ``h =
    num_hidden``, gates ``G`` (``lstm``: i, f, c, o; ``gru``: r, z, o; ``rnn_relu`` /
    ``rnn_tanh``: one unnamed gate), directions ``l`` (and ``r`` when bidirectional,
    ``b = 2``) and the input size ``ni`` recovered from the vector's size, the vector holds,
    in order:

    1. for each layer, each direction: each gate's ``{d}{layer}_i2h{g}_weight``, shape
       ``(h, ni)`` on layer 0 and ``(h, b·h)`` above; then each gate's
       ``{d}{layer}_h2h{g}_weight``, ``(h, h)``;
    2. for each layer, each direction: each gate's ``…_i2h{g}_bias`` then each gate's
       ``…_h2h{g}_bias``, ``(h,)``.

    Each piece gets an :class:`InitDesc` of its name (sharing the caller's
    ``global_init``). LSTM forget-gate biases (both i2h and h2h, so the effective forget
    bias is ``2·forget_bias``) are set to ``forget_bias``; the other pieces go to ``init``
    or, when ``init`` is None, through the global initializer's suffix dispatch (weights
    by its ``_init_weight``, biases to 0). Calling without ``init`` therefore needs an
    ``InitDesc`` with ``global_init`` (always the case through ``Initializer.__call__``).

    ``init`` may be an :class:`Initializer`, None, or a registry name / ``dumps()``
    string. (MXNet 1.6 failed with ``KeyError`` on strings, so its ``dumps()`` of a
    FusedRNN with an ``init`` could not be re-created; mxopt accepts them.)
    """

    def __init__(
        self,
        init: Any,
        num_hidden: int,
        num_layers: int,
        mode: str,
        bidirectional: bool = False,
        forget_bias: float = 1.0,
    ) -> None:
        if isinstance(init, str):
            init = create(init)
        if init is not None and not isinstance(init, Initializer):
            raise TypeError(
                "FusedRNN: init must be an Initializer, a registry name or dumps() string, or "
                f"None, got {type(init).__name__}"
            )
        for name, value in (("num_hidden", num_hidden), ("num_layers", num_layers)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise TypeError(f"FusedRNN: {name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"FusedRNN: {name} must be at least 1, got {value}")
        _check_number("FusedRNN", "forget_bias", forget_bias)
        super().__init__(
            init=init.dumps() if init is not None else None,
            num_hidden=num_hidden,
            num_layers=num_layers,
            mode=mode,
            bidirectional=bidirectional,
            forget_bias=forget_bias,
        )
        self._init = init
        self._num_hidden = num_hidden
        self._num_layers = num_layers
        self._mode = mode
        self._bidirectional = bidirectional
        self._forget_bias = forget_bias

    def _init_weight(self, desc: str, arr: np.ndarray) -> None:
        pieces = _fused_rnn_layout(
            arr.size, self._num_hidden, self._num_layers, self._mode, self._bidirectional
        )
        global_init = getattr(desc, "global_init", None)
        init = self._init if self._init is not None else global_init
        if init is None:
            raise ValueError(
                f"FusedRNN without init initializes {desc} through the global initializer: "
                "call it with an InitDesc whose global_init is set"
            )
        flat = np.array(arr, copy=True).reshape(-1)
        offset = 0
        for name, shape in pieces:
            n = int(np.prod(shape))
            piece = flat[offset : offset + n].reshape(shape).copy()
            sub = InitDesc(name, global_init=global_init)
            if self._mode == "lstm" and name.endswith("_f_bias"):
                _fill(piece, self._forget_bias, "FusedRNN: forget_bias")
            else:
                init(sub, piece)
            flat[offset : offset + n] = piece.reshape(-1)
            offset += n
        arr[...] = flat.reshape(arr.shape)
