"""The one seed for everything random in mxopt.

MXNet keeps a single global generator seeded by ``mx.random.seed``; mxopt does the same.
:func:`seed` resets it; every random fill asks :func:`next_stream` for a fresh
``(seed, stream)`` pair, so successive fills differ, while re-seeding replays them exactly.
A fill's values depend only on that pair and the array's size, never on the number of
threads the Rust core uses (see ``mxopt._core.fill_uniform``).

Like MXNet, a fresh process starts from a fixed seed (:data:`DEFAULT_SEED`), so an unseeded
program is reproducible run to run. The streams are not MXNet's: the same seed gives
different numbers from ``mx.random`` (the distributions are the same).

>>> import numpy as np
>>> from mxopt import random
>>> random.seed(42)
>>> a = random.uniform(-1.0, 1.0, np.empty(4, dtype=np.float32))
>>> random.seed(42)
>>> b = random.uniform(-1.0, 1.0, np.empty(4, dtype=np.float32))
>>> bool((a == b).all())
True
"""

from __future__ import annotations

import math
import numbers
import sys
import threading
from typing import Any, Tuple

import numpy as np

from . import _core

__all__ = ["DEFAULT_SEED", "next_stream", "normal", "randint", "seed", "uniform"]

#: Seed in effect until :func:`seed` is first called.
DEFAULT_SEED = 0

_U64 = (1 << 64) - 1
_lock = threading.Lock()
_state = {"seed": DEFAULT_SEED, "count": 0}


def seed(seed_state: int, ctx: Any = "all") -> None:
    """Seed mxopt's generator and restart its stream counter.

    Parameters
    ----------
    seed_state : int
        Any Python or NumPy integer; it is reduced modulo 2**64.
    ctx : optional
        Accepted for signature compatibility with ``mx.random.seed``; mxopt has one
        generator, which every call seeds.

    Raises
    ------
    ValueError
        If ``seed_state`` is not an integer (as MXNet).
    """
    del ctx
    if not isinstance(seed_state, (int, np.integer)):
        raise ValueError(f"seed_state must be an int, got {type(seed_state).__name__}")
    with _lock:
        _state["seed"] = int(seed_state) & _U64
        _state["count"] = 0


def next_stream() -> Tuple[int, int]:
    """Reserve the next ``(seed, stream)`` pair of the global generator.

    Anything in mxopt that draws random numbers calls this once per draw (per array) and
    passes the pair to ``mxopt._core.fill_uniform`` / ``fill_normal``. Thread-safe.
    """
    with _lock:
        pair = (_state["seed"], _state["count"])
        _state["count"] += 1
    return pair


def _position() -> Tuple[int, int]:
    """The generator's ``(seed, streams taken)``, as optimizer checkpoints store it."""
    with _lock:
        return (_state["seed"], _state["count"])


def _restore(seed_value: int, streams: int) -> None:
    """Put the generator back at a position :func:`_position` returned."""
    with _lock:
        _state["seed"] = seed_value
        _state["count"] = streams


def _fill(kind: str, a: float, b: float, out: np.ndarray) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy.ndarray, got {type(out).__name__}")
    fill = _core.fill_uniform if kind == "uniform" else _core.fill_normal
    s, stream = next_stream()
    direct = (
        out.dtype in (np.float16, np.float32, np.float64)
        and out.flags.c_contiguous
        and out.flags.writeable
        and out.dtype.isnative
    )
    if direct:
        fill(out, a, b, s, stream)
    else:
        # Other dtypes or layouts: draw in float64, then cast on assignment as MXNet's
        # ``arr[:] = ...`` would.
        tmp = np.empty(out.shape, dtype=np.float64)
        fill(tmp, a, b, s, stream)
        out[...] = tmp
    return out


def uniform(low: float, high: float, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` in place with i.i.d. draws from U[low, high) and return it.

    Float16/32/64 C-contiguous arrays are filled directly by the Rust core (in parallel,
    without the GIL); other arrays receive float64 draws cast to their dtype.
    Raises ``ValueError`` for non-finite bounds or ``low > high``.
    """
    return _fill("uniform", float(low), float(high), out)


def normal(loc: float, scale: float, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` in place with i.i.d. draws from N(loc, scale**2) and return it.

    ``scale`` is the standard deviation. Same array rules as :func:`uniform`; raises
    ``ValueError`` for non-finite parameters or ``scale < 0``.
    """
    return _fill("normal", float(loc), float(scale), out)


def randint(low: int, high: int) -> int:
    """One integer drawn uniformly from ``[low, high)`` (``high`` excluded, as MXNet)."""
    for name, bound in (("low", low), ("high", high)):
        if not isinstance(bound, numbers.Real):
            raise TypeError(f"randint: {name} must be a number, got {type(bound).__name__}")
        if not isinstance(bound, numbers.Integral) and not math.isfinite(bound):
            raise ValueError(f"randint: {name} must be finite, got {bound}")
    if high <= low:
        raise ValueError(f"randint needs low < high, got low={low} and high={high}")
    if high - low > sys.float_info.max:
        raise ValueError("randint: high - low must be a float-sized range (below 2**1024)")
    u = uniform(0.0, 1.0, np.empty(1, dtype=np.float64))[0]
    return int(min(low + math.floor(u * (high - low)), high - 1))
