"""Random optimizer calls and the invariant every one of them must satisfy, shared by the
hypothesis suite (``tests/test_properties.py``) and the long fuzz run (``run_long.py``).

A scenario is an optimizer configuration (a row of ``tests/cases.py`` or any registered
optimizer name with its defaults), hyper-parameters (sometimes NaN, infinite, beyond
float32 or negative), a call form (single, multi-precision, row-sparse, aggregated list)
and arrays of random dtypes, lengths (chunk edges included) and layouts (strided,
read-only, views of one shared ``bytearray``, aliased, overlapping), with states that are
sometimes of the wrong kind. The invariant:

* the call raises ``TypeError`` or ``ValueError`` whose message names an argument, and
  every byte of every array (and of the shared buffer) is as before; or
* it succeeds, and the numbers equal the reference path: the same call on contiguous,
  owned copies of the same data (byte for byte), one call per index for a list, and for a
  float16 multi-precision call the float32 update of the master copy.

Inputs that must be refused (a written array that is read-only, strided or overlaps
another array) are checked to be refused. Anything else (another exception type, a Rust
panic) is a failure.

Values are drawn through a tiny ``Draw`` interface so that hypothesis (shrinking, CI) and a
plain NumPy generator (throughput, millions of calls) run the same properties.
"""

from __future__ import annotations

import copy
import re
import warnings
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

import mxopt.random
from mxopt.optimizer import Optimizer, create
from mxopt.sparse import RowSparseNDArray, row_sparse_array

try:  # run from tests/ (pytest) or tests/fuzz/ (the long run): cases.py is in tests/
    import cases
except ImportError:  # pragma: no cover
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import cases

DTYPES = (np.float16, np.float32, np.float64)
LENGTHS = (0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 511, 512, 513)
HYPER_VALUES = (0.0, -0.5, 2.0, 1e-30, 1e300, 1e39, -1e39, float("nan"), float("inf"), -np.inf)
ARGUMENT_WORDS = (
    "weight",
    "grad",
    "state",
    "master",
    "indices",
    "values",
    "data",
    "lr",
    "wd",
    "momentum",
    "rescale_grad",
    "clip_gradient",
)


class Draw:
    """Where a scenario's random choices come from."""

    def choice(self, seq: Sequence[Any]) -> Any:
        raise NotImplementedError

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def chance(self, percent: int) -> bool:
        return self.integer(0, 99) < percent


class HypothesisDraw(Draw):
    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def choice(self, seq: Sequence[Any]) -> Any:
        return self.data.draw(self.st.sampled_from(list(seq)))

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))


class RngDraw(Draw):
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.rng.integers(len(seq)))]

    def integer(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))


class Config:
    """An optimizer configuration: a ``cases.Case`` or a registered name."""

    def __init__(self, id: str, make: Callable[..., Optimizer], case: Any = None) -> None:
        self.id, self._make, self.case = id, make, case

    def make(self, **overrides: Any) -> Optimizer:
        return self._make(**overrides)


def configs() -> List[Config]:
    out = [Config(c.id, c.make, c) for c in cases.CASES]
    for name in sorted(Optimizer.opt_registry):
        out.append(Config("registry:" + name, lambda name=name, **kw: create(name, **kw)))
    return out


CONFIGS = configs()


class Arena:
    """One shared ``bytearray``; arrays placed in it are ``np.frombuffer`` views whose base
    is the bytearray (foreign memory, no NumPy owner)."""

    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)
        self.end = 0

    def place(self, values: np.ndarray, at: Optional[int] = None) -> np.ndarray:
        nbytes = values.nbytes
        if at is None:
            at = -(-self.end // 8) * 8
            self.end = at + nbytes
        view = np.frombuffer(self.buf, dtype=values.dtype, count=values.size, offset=at)
        view = view.reshape(values.shape)
        view[...] = values
        return view


def _values(draw: Draw, shape: tuple, dtype: Any) -> np.ndarray:
    rng = np.random.default_rng(draw.integer(0, 2**32 - 1))
    a = rng.standard_normal(shape) * draw.choice((1.0, 1e-3, 1e3))
    if a.size and draw.chance(10):
        flat = a.reshape(-1)
        flat[rng.integers(a.size)] = draw.choice((np.nan, np.inf, -np.inf, 7e4))
    with np.errstate(all="ignore"):
        return a.astype(dtype)


def _layout(draw: Draw, a: np.ndarray, arena: Arena, weird: int) -> np.ndarray:
    """``a`` itself, or its data in a strided / read-only / foreign array."""
    kind = draw.choice(("strided", "readonly", "foreign", "foreign")) if draw.chance(weird) else ""
    if kind == "strided" and a.ndim:
        big = np.empty((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)
        view = big[..., ::2]
        view[...] = a
        return view
    if kind == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    if kind == "foreign":
        return arena.place(a)
    return a


def _leaves(state: Any) -> List[np.ndarray]:
    if isinstance(state, np.ndarray):
        return [state]
    if isinstance(state, (tuple, list)):
        return [a for s in state for a in _leaves(s)]
    return []


def _map_leaves(state: Any, f: Callable[[np.ndarray], Any]) -> Any:
    if isinstance(state, np.ndarray):
        return f(state)
    if isinstance(state, (tuple, list)):
        return type(state)(_map_leaves(s, f) for s in state)
    return state


def _mutate_state(draw: Draw, state: Any, weight: np.ndarray, arena: Arena) -> tuple:
    """A state object, possibly wrong; returns ``(state, kind)``."""
    kind = draw.choice(
        ("none", "string", "arity_more", "arity_less", "dtype", "shape", "alias_weight", "layout")
    )
    leaves = _leaves(state)
    if kind == "none":
        return None, kind
    if kind == "string":
        return "state", kind
    if kind == "arity_more":
        extra = np.zeros(weight.shape, np.float32)
        return ((*state, extra) if isinstance(state, tuple) else (state, extra)), kind
    if kind == "arity_less":
        if isinstance(state, tuple) and state:
            return state[:-1], kind
        return (), kind
    if not leaves:
        return state, "ok"
    target = leaves[draw.integer(0, len(leaves) - 1)]

    def replace(f: Callable[[np.ndarray], Any]) -> Any:
        return _map_leaves(state, lambda a: f(a) if a is target else a)

    if kind == "dtype":
        other = draw.choice([d for d in DTYPES if np.dtype(d) != target.dtype])
        return replace(lambda a: a.astype(other)), kind
    if kind == "shape":
        size = target.size + draw.choice((-1, 1, 2))
        size = size if size >= 0 else 1
        return replace(lambda a: np.zeros(size, a.dtype)), kind
    if kind == "alias_weight":
        return replace(lambda a: weight if a.dtype == weight.dtype else a), kind
    return replace(lambda a: _layout(draw, a, arena, 100)), kind


def _overlap_with(draw: Draw, arena: Arena, weight: np.ndarray, values: np.ndarray) -> Any:
    """``values`` placed in the arena so that it overlaps ``weight`` (a foreign view)."""
    if weight.base is not arena.buf and not isinstance(weight.base, bytearray):
        return None
    start = weight.__array_interface__["data"][0]
    base = np.frombuffer(arena.buf, np.uint8).__array_interface__["data"][0]
    at = start - base + draw.integer(0, max(0, weight.nbytes - 1))
    if at + values.nbytes > len(arena.buf) or weight.size == 0 or values.size == 0:
        return None
    at -= at % values.itemsize
    return arena.place(values, at)


class Scenario:
    """One drawn call: the optimizer configuration and everything passed to ``update``."""

    def __init__(self, draw: Draw, config: Optional[Config] = None) -> None:
        self.config = config or draw.choice(CONFIGS)
        case = self.config.case
        self.form = draw.choice(("single", "single", "mp", "rows", "list", "list"))
        weird = draw.choice((0, 0, 10, 30))
        self.clean = weird == 0
        overrides: dict = {}
        if self.form == "mp":
            overrides["multi_precision"] = True
        if self.form == "rows" and case is not None:
            overrides.update(case.rows_overrides)
        if self.config.id == "registry:sgld" or (case is not None and case.name == "sgld"):
            self.seed = draw.integer(0, 1000)
        else:
            self.seed = None
        self.overrides = overrides
        self.hyper: dict = {}
        if draw.chance(weird):
            for name in ("lr", "wd", "rescale_grad", "clip_gradient", "momentum"):
                if draw.chance(40):
                    self.hyper[name] = draw.choice(HYPER_VALUES)
            self.clean = False
        self.opt = self.make_optimizer()
        self.arena = Arena(1 << 16)
        count = draw.integer(1, 4) if self.form == "list" else 1
        self.indices: List[int] = list(range(count))
        if count > 1 and draw.chance(20):
            self.indices = [draw.integer(0, 9) for _ in range(count)]  # repeated indices
        self.weights: List[Any] = []
        self.grads: List[Any] = []
        self.states: List[Any] = []
        self.must_fail = False
        self.state_ok = True
        for i in range(count):
            self._draw_tensor(draw, i, weird)
        if self.form == "list" and count > 1 and draw.chance(weird):
            # The same weight twice, or a gradient that is another tensor's weight.
            j, k = draw.integer(0, count - 1), draw.integer(0, count - 1)
            if j != k and self.weights[k].size:
                if draw.chance(50):
                    self.weights[j] = self.weights[k]
                elif (
                    isinstance(self.grads[j], np.ndarray)
                    and self.grads[j].dtype == self.weights[k].dtype
                ):
                    self.grads[j] = self.weights[k]
                self.clean = False
        self.must_fail = self.must_fail or self._overlaps()

    def make_optimizer(self) -> Optimizer:
        opt = self.config.make(**self.overrides)
        for name, value in self.hyper.items():
            if name != "momentum" or hasattr(opt, "momentum"):
                setattr(opt, name, value)
        return opt

    def _draw_tensor(self, draw: Draw, i: int, weird: int) -> None:
        dtype = np.float16 if self.form == "mp" else draw.choice(DTYPES)
        if self.form == "list" and i and draw.chance(70):
            dtype = self.weights[0].dtype
        if self.form == "rows" or draw.chance(20):
            shape: tuple = (draw.integer(0, 9), draw.choice((1, 3, 7, 8, 9, 64, 65)))
        else:
            shape = (draw.choice(LENGTHS),)
        w = _layout(draw, _values(draw, shape, dtype), self.arena, weird)
        gdtype = dtype
        if draw.chance(weird // 3):
            gdtype = draw.choice(DTYPES)
            self.clean = self.clean and gdtype == dtype
        gshape = shape
        if draw.chance(weird // 3):
            gshape = shape[::-1] if len(shape) == 2 else (shape[0] + 1,)
            self.clean = False
        if self.form == "rows" or (self.form == "list" and draw.chance(25) and len(shape) == 2):
            g: Any = self._row_sparse(draw, gshape, gdtype, weird)
        else:
            g = _values(draw, gshape, gdtype)
            overlap = _overlap_with(draw, self.arena, w, g) if draw.chance(weird) else None
            g = overlap if overlap is not None else _layout(draw, g, self.arena, weird)
        if draw.chance(weird // 4) and w.shape == g.shape and w.dtype == g.dtype:
            g = w  # the gradient is the weight itself
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            contiguous = w if w.flags.c_contiguous else np.ascontiguousarray(w)
            try:
                state = self.opt.create_state_multi_precision(self.indices[i], contiguous)
            except (TypeError, ValueError):  # GroupAdaGrad refuses 1-d weights here
                state = None
                self.clean = False
        if draw.chance(weird):
            state, kind = _mutate_state(draw, state, w, self.arena)
            self.state_ok = self.state_ok and kind in ("ok", "layout")
            self.clean = False
        elif state is not None and draw.chance(weird):
            self.clean = False
            state = _map_leaves(state, lambda a: _layout(draw, a, self.arena, 100))
        if w.size and (not w.flags.writeable or not w.flags.c_contiguous):
            self.must_fail = True
        momentum = self.hyper.get("momentum", getattr(self.opt, "momentum", None))
        # (With a momentum of 0 or below, MXNet's SGD/NAG/LARS never touch the state.)
        if self.state_ok and not (momentum is not None and not momentum > 0):
            for a in _leaves(state):
                if a.size and (not a.flags.writeable or not a.flags.c_contiguous):
                    self.must_fail = True
        if w is not contiguous or (w.base is not None):
            self.clean = False
        self.weights.append(w)
        self.grads.append(g)
        self.states.append(state)

    def _row_sparse(self, draw: Draw, shape: tuple, dtype: Any, weird: int) -> Any:
        rows = shape[0]
        if len(shape) < 2:
            shape = (rows, 1)
        present = sorted({draw.integer(0, max(rows - 1, 0)) for _ in range(draw.integer(0, 4))})
        if rows == 0:
            present = []
        data = _values(draw, (len(present), shape[1]), dtype)
        if draw.chance(weird):
            # Bad row indices, built behind RowSparseNDArray's own checks.
            bad = draw.choice(("unsorted", "duplicate", "negative", "out_of_range"))
            idx = list(present) or [0]
            if bad == "unsorted":
                idx = [*idx[::-1], idx[0]]
            elif bad == "duplicate":
                idx = [idx[0], *idx]
            elif bad == "negative":
                idx = [-1 - draw.integer(0, 3), *idx[1:]]
            else:
                idx = [*idx[:-1], rows + draw.integer(0, 3)]
            grad = RowSparseNDArray.__new__(RowSparseNDArray)
            grad.data = _values(draw, (len(idx), shape[1]), dtype)
            grad.indices = np.asarray(idx, np.int64)
            grad.shape = shape
            grad.dtype = np.dtype(dtype)
            grad.stype = "row_sparse"
            self.clean = False
            self.must_fail = True  # densifying or not, bad rows must be refused
            return grad
        return row_sparse_array((data, np.array(present, np.int64)), shape=shape)

    def _overlaps(self) -> bool:
        arrays: List[tuple] = []
        for w, g, s in zip(self.weights, self.grads, self.states):
            arrays.append((w, True))
            if isinstance(g, RowSparseNDArray):
                arrays.append((g.data, False))
            elif isinstance(g, np.ndarray):
                arrays.append((g, False))
            if self.state_ok:
                arrays += [(a, True) for a in _leaves(s)]
        for x in range(len(arrays)):
            for y in range(x + 1, len(arrays)):
                (a, wa), (b, wb) = arrays[x], arrays[y]
                if (wa or wb) and a.size and b.size and np.shares_memory(a, b):
                    return True
        return False

    # -- running ---------------------------------------------------------------------------

    def arrays(self) -> List[np.ndarray]:
        out: List[np.ndarray] = []
        for w, g, s in zip(self.weights, self.grads, self.states):
            out.append(w)
            out += [g.data, g.indices] if isinstance(g, RowSparseNDArray) else [g]
            out += _leaves(s)
        return out

    def snapshot(self) -> tuple:
        return bytes(self.arena.buf), [
            a.tobytes() if isinstance(a, np.ndarray) else None for a in self.arrays()
        ]

    def call(self, opt: Optimizer, indices: Any, weights: Any, grads: Any, states: Any) -> None:
        if self.seed is not None:
            mxopt.random.seed(self.seed)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if self.form == "list":
                opt.update_multi_precision(indices, weights, grads, states)
            elif self.form == "mp":
                opt.update_multi_precision(indices[0], weights[0], grads[0], states[0])
            else:
                opt.update(indices[0], weights[0], grads[0], states[0])


def _owned(x: Any) -> Any:
    """A contiguous, writable, owned copy of an array, gradient or state structure."""
    if isinstance(x, RowSparseNDArray):
        grad = copy.copy(x)
        grad.data, grad.indices = np.array(x.data), np.array(x.indices)
        return grad
    if isinstance(x, np.ndarray):
        return np.array(x, order="C", copy=True)
    return _map_leaves(x, lambda a: np.array(a, order="C", copy=True))


def _same(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    if got.tobytes() != expected.tobytes():
        raise AssertionError(f"{what}: differs from the reference path\n{got!r}\n{expected!r}")


def names_an_argument(message: str, opt: Optimizer) -> bool:
    words = set(ARGUMENT_WORDS) | {k for k in vars(opt) if not k.startswith("_")}
    words |= set(getattr(opt, "state_names", ())) | {"history"}  # a state's own name
    return any(re.search(rf"(^|[^a-z_]){re.escape(w)}", message) for w in words)


def check(scenario: Scenario) -> str:
    """Runs the scenario and asserts the invariant; returns ``"error"`` or ``"ok"``."""
    s = scenario
    before = s.snapshot()
    ref_inputs = [
        (_owned(w), _owned(g), _owned(st)) for w, g, st in zip(s.weights, s.grads, s.states)
    ]
    master_inputs = tuple(map(_owned, ref_inputs[0])) if s.form == "mp" else None
    try:
        s.call(s.opt, s.indices, s.weights, s.grads, s.states)
    except (TypeError, ValueError) as error:
        message = str(error)
        if not names_an_argument(message, s.opt):
            raise AssertionError(
                f"{s.config.id}: message names no argument: {message!r}"
            ) from error
        after = s.snapshot()
        if after[0] != before[0]:
            raise AssertionError(
                f"{s.config.id}: shared buffer written before {message!r}"
            ) from error
        for k, (a, b) in enumerate(zip(after[1], before[1])):
            if a != b:
                raise AssertionError(
                    f"{s.config.id}: array {k} written before {message!r}"
                ) from error
        return "error"
    if s.must_fail and s.config.id != "registry:test":
        # (MXNet's ``Test`` optimizer is plain NumPy arithmetic: aliasing is harmless.)
        raise AssertionError(f"{s.config.id}: accepted a read-only, strided or overlapping array")
    # The same call on contiguous owned copies, with a fresh optimizer, gives the same bytes.
    ref = s.make_optimizer()
    rw = [w for w, _, _ in ref_inputs]
    rg = [g for _, g, _ in ref_inputs]
    rs = [st for _, _, st in ref_inputs]
    sparse = [isinstance(g, RowSparseNDArray) for g in s.grads]
    if s.form == "list" and len(set(s.indices)) == len(s.indices) and len(set(sparse)) == 1:
        # (A list mixing row-sparse and dense gradients is not aggregated by MXNet's SGD,
        # LARS...: its dense tensors then take the single-tensor kernels.)
        # A list equals one call per index, in order.
        if s.seed is not None:
            mxopt.random.seed(s.seed)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            for i, w, g, st in zip(s.indices, rw, rg, rs):
                ref.update_multi_precision(i, w, g, st)
    else:
        s.call(ref, s.indices, rw, rg, rs)
    for k, (w, e) in enumerate(zip(s.weights, rw)):
        _same(w, e, f"{s.config.id} {s.form} weight[{k}]")
    if len(set(map(id, s.weights))) == len(s.weights):
        for k, (st, e) in enumerate(zip(s.states, rs)):
            for a, b in zip(_leaves(st), _leaves(e)):
                if not any(a is w for w in s.weights):
                    _same(a, b, f"{s.config.id} {s.form} state[{k}]")
    case = s.config.case
    if s.form == "mp" and case is not None and not case.layerwise and s.state_ok:
        _check_master(s, master_inputs)
    return "ok"


def _check_master(s: Scenario, inputs: tuple) -> None:
    """A float16 multi-precision update: the master follows the float32 update of the
    master with the widened gradient; the weight is the master rounded."""
    case = s.config.case
    state = s.states[0]
    if not isinstance(state, tuple) or len(state) != 2:
        return
    master = state[0] if case.master_first else state[1]
    _, g16, st0 = inputs
    inner = st0[1] if case.master_first else st0[0]
    w32 = np.array(st0[0] if case.master_first else st0[1])
    overrides = {k: v for k, v in s.overrides.items() if k != "multi_precision"}
    ref = case.make(**overrides)
    for name, value in s.hyper.items():
        if name != "momentum" or hasattr(ref, "momentum"):
            setattr(ref, name, value)
    if s.seed is not None:
        mxopt.random.seed(s.seed)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ref.update(s.indices[0], w32, g16.astype(np.float32), inner)
    _same(master, w32, f"{s.config.id} master")
    with np.errstate(all="ignore"):
        _same(s.weights[0], master.astype(np.float16), f"{s.config.id} weight = master")
