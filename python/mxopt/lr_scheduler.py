"""Learning-rate schedules with MXNet 1.6.0 semantics (spec: lr_scheduler.md).

A scheduler is a callable ``scheduler(num_update) -> float``. All schedulers are stateful:
Factor and MultiFactor scale ``base_lr`` as milestones pass, Poly and Cosine overwrite it on
every call inside their range, and calling with a smaller ``num_update`` undoes nothing.
All arithmetic is Python float.
"""

from __future__ import annotations

import logging
import math
import numbers
from math import cos, pi
from operator import add, gt, le, lt, mul, pow, sub, truediv
from typing import Any, Callable, List, Optional

import numpy as np

__all__ = [
    "CosineScheduler",
    "FactorScheduler",
    "LRScheduler",
    "MultiFactorScheduler",
    "PolyScheduler",
]

_WARMUP_MODES = ("linear", "constant")
# Beyond this, float sums of integers may round, so the closed form for Factor's counter
# would stop matching MXNet's repeated ``count += step``.
_EXACT_FLOAT_INT = 2**53
# A Factor decay loop over float counters longer than this is shortened once the rate is
# stable.
_LONG_FLOAT_LOOP = 2**20


class _CheckError(AssertionError, ValueError):
    """A failed argument check where MXNet used ``assert``.

    Raised explicitly, so it survives ``python -O``; still caught by ``except
    AssertionError`` (as MXNet's users wrote) and by ``except ValueError``.
    """


def _check(condition: bool, message: str) -> None:
    """MXNet's ``assert condition, message`` as a check that ``python -O`` keeps."""
    if not condition:
        raise _CheckError(message)


def _check_real(name: str, value: Any, finite: bool = True) -> None:
    """Reject non-numbers (``TypeError``) and NaN or, when ``finite``, infinities."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}")


def _check_num_update(num_update: Any) -> None:
    """Reject a ``num_update`` that is no number (NumPy scalars and arrays of numbers pass,
    as in MXNet) with a ``TypeError`` naming it, instead of a failed comparison."""
    dtype = getattr(num_update, "dtype", None)
    if not (
        isinstance(num_update, numbers.Real) or getattr(dtype, "kind", "") in ("b", "i", "u", "f")
    ):
        raise TypeError(f"num_update must be a number, got {type(num_update).__name__}")


def _numpy1(op: Callable[[Any, Any], Any], left: Any, right: Any) -> Any:
    """``op(left, right)`` (arithmetic or comparison) promoted as under NumPy 1, which
    MXNet 1.6 ran on.

    There a NumPy scalar combined with a Python number computed in 64 bits
    (``float32(0.1) * 0.5`` is a float64, ``float16(0.1) < 0.1`` is true); NumPy 2 keeps
    the NumPy scalar's type. Making the Python number a float64 (int64) NumPy scalar
    first gives NumPy 1's result under either version; two Python numbers are left alone.
    """
    if isinstance(left, np.generic) or isinstance(right, np.generic):
        left, right = _as_numpy_64(left), _as_numpy_64(right)
    return op(left, right)


def _as_numpy_64(value: Any) -> Any:
    """A Python float or int as the 64-bit NumPy scalar NumPy 1 took it for."""
    if type(value) is float:
        return np.float64(value)
    if type(value) is int and -(2**63) <= value < 2**63:
        return np.int64(value)
    return value


def _as_python_number(num_update: Any) -> Any:
    """A NumPy scalar (or 0-d array) ``num_update`` as the Python number it holds.

    MXNet 1.6 ran on NumPy 1, where arithmetic between a NumPy scalar and a Python number
    is done in 64 bits (``pi * float32(n)`` is a float64); NumPy 2 keeps float32. The
    Python number gives NumPy 1's result under either.
    """
    if isinstance(num_update, np.generic) or (
        isinstance(num_update, np.ndarray) and num_update.ndim == 0
    ):
        return num_update.item()
    return num_update


def _as_exact_int(value: Any) -> Optional[int]:
    """``value`` as an int when it is an integer (or an integral float) below 2**53."""
    if isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer()):
        result = int(value)
    else:
        return None
    return result if abs(result) < _EXACT_FLOAT_INT else None


class LRScheduler:
    """Base class of learning-rate schedulers, with optional warmup.

    Parameters
    ----------
    base_lr : float, default 0.01
        Learning rate after warmup. Warmup always ramps towards this constructor value
        (kept as ``warmup_final_lr``), even if ``base_lr`` is changed later.
    warmup_steps : int, default 0
        Number of updates that use the warmup learning rate.
    warmup_begin_lr : float, default 0
        Learning rate at update 0 of the warmup; must not exceed ``base_lr``.
    warmup_mode : {'linear', 'constant'}, default 'linear'
        ``'linear'`` ramps from ``warmup_begin_lr`` to ``base_lr``; ``'constant'`` holds
        ``warmup_begin_lr``.

    Notes
    -----
    Subclasses override ``__call__`` and return ``get_warmup_lr(n)`` while
    ``n < warmup_steps``.

    Examples
    --------
    >>> LRScheduler(base_lr=1.0, warmup_steps=4).get_warmup_lr(1)
    0.25
    """

    def __init__(
        self,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ) -> None:
        self.base_lr = base_lr
        _check(isinstance(warmup_steps, int), "warmup_steps must be an int.")
        _check_real("base_lr", base_lr)
        _check_real("warmup_begin_lr", warmup_begin_lr)
        self.warmup_steps = warmup_steps
        self.warmup_final_lr = base_lr
        self.warmup_begin_lr = warmup_begin_lr
        if _numpy1(gt, self.warmup_begin_lr, self.warmup_final_lr):
            raise ValueError(
                f"base_lr ({base_lr}) must not be lower than warmup_begin_lr ({warmup_begin_lr})"
            )
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be 0 or positive, got {warmup_steps}")
        if warmup_mode not in _WARMUP_MODES:
            raise ValueError(f"warmup_mode must be 'linear' or 'constant', got {warmup_mode!r}")
        self.warmup_mode = warmup_mode

    def _in_warmup(self, num_update: Any) -> bool:
        """Whether ``num_update`` gets the warmup rate (after checking it is a number).

        Without warmup a negative ``num_update`` is in it only in ``'constant'`` mode (it
        gets ``warmup_begin_lr``, as in MXNet); in ``'linear'`` mode MXNet divided by the
        zero ``warmup_steps``, and it gets the rate of the schedule's start instead.
        """
        _check_num_update(num_update)
        if self.warmup_steps == 0 and self.warmup_mode == "linear":
            return False
        return bool(num_update < self.warmup_steps)

    def get_warmup_lr(self, num_update: int) -> float:
        """Learning rate at warmup step ``num_update`` (which must be below ``warmup_steps``)."""
        _check_num_update(num_update)
        _check(num_update < self.warmup_steps, "num_update is past the warmup.")
        if self.warmup_mode == "linear":
            span = _numpy1(sub, self.warmup_final_lr, self.warmup_begin_lr)
            done = _numpy1(mul, span, float(num_update))
            lr: float = _numpy1(
                add, self.warmup_begin_lr, _numpy1(truediv, done, float(self.warmup_steps))
            )
            return lr
        if self.warmup_mode == "constant":
            return self.warmup_begin_lr
        raise ValueError(f"unknown warmup_mode {self.warmup_mode!r}")

    def __call__(self, num_update: int) -> float:
        """Learning rate after ``num_update`` updates; subclasses implement it."""
        raise NotImplementedError("LRScheduler subclasses must implement __call__")


class FactorScheduler(LRScheduler):
    """Multiply the learning rate by ``factor`` every ``step`` updates.

    The decay counter starts at update 0 regardless of warmup: the k-th decay happens at the
    first call with ``num_update > k * step``. The rate never drops below
    ``stop_factor_lr``.

    The number of decays due is computed directly (for integral ``step``); the
    multiplications then run one by one, exactly as MXNet's loop, but stop as soon as the
    rate no longer changes (floor reached, underflow, ``factor == 1``), so a call with a
    huge ``num_update`` returns at once. NaN or infinite arguments raise ``ValueError``.

    Parameters
    ----------
    step : int
        Updates between two decays; at least 1.
    factor : float, default 1
        Decay factor; at most 1.
    stop_factor_lr : float, default 1e-8
        Lower bound of the learning rate.
    base_lr, warmup_steps, warmup_begin_lr, warmup_mode
        As in :class:`LRScheduler`.

    Examples
    --------
    >>> sched = FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    >>> [sched(n) for n in range(7)]
    [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(
        self,
        step: int,
        factor: float = 1,
        stop_factor_lr: float = 1e-8,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        _check_real("step", step)
        _check_real("factor", factor)
        _check_real("stop_factor_lr", stop_factor_lr)
        if step < 1:
            raise ValueError(f"step must be at least 1, got {step}")
        if _numpy1(gt, factor, 1.0):
            raise ValueError(f"factor must be at most 1 so the rate decreases, got {factor}")
        self.step = step
        self.factor = factor
        self.stop_factor_lr = stop_factor_lr
        self.count: float = 0  # an int unless step is a float

    def __call__(self, num_update: int) -> float:
        """Learning rate after ``num_update`` updates, applying any decays now due."""
        num_update = _as_python_number(num_update)
        if self._in_warmup(num_update):
            return self.get_warmup_lr(num_update)
        if isinstance(num_update, float) and math.isinf(num_update):
            # MXNet's loop would never end.
            raise ValueError(f"num_update must be finite, got {num_update}")
        decays = self._decays_due(num_update)
        if decays is None:
            # Non-integral steps or counters: MXNet's loop, float sums and all.
            while num_update > _numpy1(add, self.count, self.step):
                self.count = _numpy1(add, self.count, self.step)
                before = self.base_lr
                self._decay(num_update)
                if self.base_lr == before or before != before:
                    self._skip_stable_decays(num_update)
            return self.base_lr
        if decays:
            step, count = _as_exact_int(self.step), _as_exact_int(self.count)
            assert step is not None and count is not None  # checked by _decays_due
            new_count = count + decays * step
            # The type MXNet's ``count += step`` ends with (int, float or a NumPy scalar).
            self.count = type(_numpy1(add, self.count, self.step))(new_count)
            self._apply_decays(decays, num_update)
        return self.base_lr

    def _decays_due(self, num_update: Any) -> Optional[int]:
        """How many times MXNet's ``while num_update > count + step`` loop would run.

        None when the counter, the step or ``num_update`` is not an exact integer (the
        loop then runs as in MXNet).
        """
        step, count = _as_exact_int(self.step), _as_exact_int(self.count)
        if step is None or count is None or step < 1:
            return None
        if isinstance(num_update, numbers.Integral):
            # count + i*step < num_update  <=>  count + i*step <= num_update - 1
            bound = int(num_update) - 1
        elif isinstance(num_update, float) and math.isfinite(num_update):
            bound = math.ceil(num_update) - 1
        else:
            return None
        # The number of i >= 1 with count + i*step <= bound.
        return max(0, (bound - count) // step)

    def _skip_stable_decays(self, num_update: Any) -> None:
        """Advance the float counter past all but the last iterations of a decay loop that
        can no longer change the rate, when more than ``_LONG_FLOAT_LOOP`` remain (MXNet
        would spin for hours; the counter may then differ from MXNet's sums in the last
        bits). A zero's sign still alternates under a negative factor."""
        skip = math.floor((num_update - self.count) / self.step) - 2
        if skip <= _LONG_FLOAT_LOOP:
            return
        self.count += skip * self.step
        if self.base_lr == 0 and skip % 2 == 1 and math.copysign(1.0, self.factor) < 0:
            self.base_lr = _numpy1(mul, self.base_lr, self.factor)

    def _decay(self, num_update: Any) -> None:
        """One iteration of MXNet's decay loop: multiply, clamp, log."""
        self.base_lr = _numpy1(mul, self.base_lr, self.factor)
        if _numpy1(lt, self.base_lr, self.stop_factor_lr):
            self.base_lr = self.stop_factor_lr
            logging.info(
                "Update[%d]: now learning rate arrived at %0.5e, will not change in the future",
                num_update,
                self.base_lr,
            )
        else:
            logging.info("Update[%d]: Change learning rate to %0.5e", num_update, self.base_lr)

    def _apply_decays(self, decays: int, num_update: Any) -> None:
        """``decays`` iterations of :meth:`_decay`, bit for bit, without spinning.

        The same multiplications run one by one until the rate stops changing (the floor,
        an underflow to zero, factor 1, NaN); the remaining iterations would reproduce it,
        so they are skipped. Only a zero's sign can still alternate (a negative factor
        times ±0), and that is a matter of the parity of the iterations left.
        """
        logs = True
        factor, floor = self.factor, self.stop_factor_lr
        for done in range(1, decays + 1):
            before = self.base_lr
            if logs:
                self._decay(num_update)
                # Once INFO is off (checked after logging.info has set up logging, as
                # MXNet's call would), the same arithmetic runs without the logging calls.
                logs = logging.getLogger().isEnabledFor(logging.INFO)
            else:
                after = _numpy1(mul, before, factor)
                self.base_lr = floor if _numpy1(lt, after, floor) else after
            after = self.base_lr
            if after != after and before != before:  # NaN stays NaN
                return
            if after == before:
                left = decays - done
                if after == 0 and left % 2 == 1 and math.copysign(1.0, self.factor) < 0:
                    # One more multiplication by the negative factor flips the zero's sign;
                    # ±0 never falls below a floor that let a zero through.
                    self.base_lr = _numpy1(mul, after, self.factor)
                return


class MultiFactorScheduler(LRScheduler):
    """Multiply the learning rate by ``factor`` once ``num_update`` passes each milestone.

    The rate is ``base_lr * factor**k`` where ``k`` counts the milestones ``s`` with
    ``num_update > s`` (strictly).

    Parameters
    ----------
    step : list of int
        Strictly increasing milestones, each at least 1. Must be a ``list``.
    factor : float, default 1
        Decay factor; at most 1.
    base_lr, warmup_steps, warmup_begin_lr, warmup_mode
        As in :class:`LRScheduler`.

    Examples
    --------
    >>> sched = MultiFactorScheduler(step=[2, 5], factor=0.5, base_lr=1.0)
    >>> [sched(n) for n in range(8)]
    [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(
        self,
        step: List[int],
        factor: float = 1,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        _check(isinstance(step, list) and len(step) >= 1, "step must be a non-empty list.")
        for i, milestone in enumerate(step):
            _check_real(f"step[{i}]", milestone)
            if i > 0 and _numpy1(le, step[i], step[i - 1]):
                raise ValueError(f"step must be strictly increasing, got {step}")
            if milestone < 1:
                raise ValueError(f"every step must be at least 1, got {milestone}")
        _check_real("factor", factor)
        if _numpy1(gt, factor, 1.0):
            raise ValueError(f"factor must be at most 1 so the rate decreases, got {factor}")
        self.step = step
        self.cur_step_ind = 0
        self.factor = factor
        self.count = 0

    def __call__(self, num_update: int) -> float:
        """Learning rate after ``num_update`` updates, applying any milestones now passed."""
        num_update = _as_python_number(num_update)
        if self._in_warmup(num_update):
            return self.get_warmup_lr(num_update)
        while self.cur_step_ind < len(self.step) and _numpy1(
            gt, num_update, self.step[self.cur_step_ind]
        ):
            self.count = self.step[self.cur_step_ind]
            self.cur_step_ind += 1
            self.base_lr = _numpy1(mul, self.base_lr, self.factor)
            logging.info("Update[%d]: Change learning rate to %0.5e", num_update, self.base_lr)
        return self.base_lr


class _DecayToFinalScheduler(LRScheduler):
    """Shared machinery of the schedulers that decay from ``base_lr`` to ``final_lr`` over
    ``max_update`` updates; each subclass defines ``_decayed(done)``, the rate after
    ``done`` post-warmup updates."""

    def __init__(
        self,
        max_update: int,
        base_lr: float,
        final_lr: float,
        warmup_steps: int,
        warmup_begin_lr: float,
        warmup_mode: str,
    ) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        _check(isinstance(max_update, int), "max_update must be an int.")
        if max_update < 1:
            raise ValueError(f"max_update must be at least 1, got {max_update}")
        if max_update < self.warmup_steps:
            # MXNet accepted it and never decayed (every update past the warmup is past
            # max_update): surely a mistake, so it is refused.
            raise ValueError(
                f"max_update ({max_update}) must not be lower than warmup_steps "
                f"({self.warmup_steps}): the decay would never run"
            )
        _check_real("final_lr", final_lr)
        # The decay always starts from the constructor value, even if an optimizer later
        # overwrites base_lr.
        self.base_lr_orig = self.base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        # May be 0 (warmup_steps == max_update): the rate then jumps to final_lr at
        # max_update, where MXNet divided by zero.
        self.max_steps = max_update - self.warmup_steps

    def __call__(self, num_update: int) -> float:
        """Learning rate after ``num_update`` updates; past ``max_update`` the last value."""
        num_update = _as_python_number(num_update)
        if self._in_warmup(num_update):
            return self.get_warmup_lr(num_update)
        if num_update <= self.max_update:
            if self.max_steps == 0:
                self.base_lr = self.final_lr
            else:
                # Only a negative count without warmup (linear mode) is below 0: the start.
                self.base_lr = self._decayed(max(num_update - self.warmup_steps, 0))
        return self.base_lr

    def _decayed(self, done: int) -> float:
        """The rate after ``done`` post-warmup updates; subclasses define it."""
        raise NotImplementedError


class PolyScheduler(_DecayToFinalScheduler):
    """Polynomial decay from ``base_lr`` to ``final_lr`` over ``max_update`` updates.

    After warmup, ``base_lr = final_lr + (base_lr_orig - final_lr) *
    (1 - (n - warmup_steps) / max_steps) ** pwr`` for ``n <= max_update``; later calls return
    the last value computed. With ``warmup_steps == max_update`` the rate is ``final_lr``
    from ``max_update`` on (MXNet raised ``ZeroDivisionError`` there).

    Parameters
    ----------
    max_update : int
        Update at which the decay reaches ``final_lr``; at least 1.
    base_lr : float, default 0.01
        Starting learning rate.
    pwr : float, default 2
        Power of the decay.
    final_lr : float, default 0
        Learning rate at ``max_update``.
    warmup_steps, warmup_begin_lr, warmup_mode
        As in :class:`LRScheduler`.

    Examples
    --------
    >>> sched = PolyScheduler(max_update=4, base_lr=1.0, pwr=1)
    >>> [sched(n) for n in range(6)]
    [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """

    def __init__(
        self,
        max_update: int,
        base_lr: float = 0.01,
        pwr: float = 2,
        final_lr: float = 0,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        _check_real("pwr", pwr)
        self.power = pwr

    def _decayed(self, done: int) -> float:
        remaining = 1 - float(done) / float(self.max_steps)
        span = _numpy1(sub, self.base_lr_orig, self.final_lr)
        lr: float = _numpy1(
            add, self.final_lr, _numpy1(mul, span, _numpy1(pow, remaining, self.power))
        )
        return lr


class CosineScheduler(_DecayToFinalScheduler):
    """Half-cosine decay from ``base_lr`` to ``final_lr`` over ``max_update`` updates.

    After warmup, ``base_lr = final_lr + (base_lr_orig - final_lr) *
    (1 + cos(pi * (n - warmup_steps) / max_steps)) / 2`` for ``n <= max_update``; later
    calls return the last value computed.

    Parameters
    ----------
    max_update : int
        Update at which the decay reaches ``final_lr``; at least 1.
    base_lr : float, default 0.01
        Starting learning rate.
    final_lr : float, default 0
        Learning rate at ``max_update``.
    warmup_steps, warmup_begin_lr, warmup_mode
        As in :class:`LRScheduler`.

    Examples
    --------
    >>> sched = CosineScheduler(max_update=2, base_lr=1.0)
    >>> [round(sched(n), 12) for n in range(4)]
    [1.0, 0.5, 0.0, 0.0]
    """

    def __init__(
        self,
        max_update: int,
        base_lr: float = 0.01,
        final_lr: float = 0,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode)

    def _decayed(self, done: int) -> float:
        angle = pi * done / self.max_steps
        span = _numpy1(sub, self.base_lr_orig, self.final_lr)
        lr: float = _numpy1(
            add, self.final_lr, _numpy1(truediv, _numpy1(mul, span, 1 + cos(angle)), 2)
        )
        return lr
