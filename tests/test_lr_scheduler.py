"""Learning-rate schedulers: MXNet 1.6.0 golden replays plus every documented rule and error."""

import json
import logging
import math
import pathlib

import numpy as np
import pytest

from mxopt import lr_scheduler
from mxopt.lr_scheduler import (
    CosineScheduler,
    FactorScheduler,
    LRScheduler,
    MultiFactorScheduler,
    PolyScheduler,
)
from mxopt.optimizer.base import Optimizer

GOLDEN_PATH = pathlib.Path(__file__).parent / "golden" / "schedulers.json"
GOLDEN = json.loads(GOLDEN_PATH.read_text())["cases"]
# Where MXNet divided by zero (a decay spanning no update), mxopt jumps to final_lr.
MXNET_DIVIDES_BY_ZERO = {"raises": "ZeroDivisionError"}


@pytest.mark.parametrize(
    "case", GOLDEN, ids=[f"{i}-{case['scheduler']}" for i, case in enumerate(GOLDEN)]
)
def test_golden_replay_is_exact(case):
    scheduler = getattr(lr_scheduler, case["scheduler"])(**case["kwargs"])
    if "optimizer_learning_rate" in case:
        Optimizer(learning_rate=case["optimizer_learning_rate"], lr_scheduler=scheduler)
    for num_update, expected in zip(case["calls"], case["outputs"]):
        if expected == MXNET_DIVIDES_BY_ZERO:
            assert scheduler(num_update) == case["kwargs"].get("final_lr", 0)
            return  # from here on mxopt's rate is final_lr, MXNet's still base_lr
        else:
            assert scheduler(num_update) == expected, num_update
    assert vars(scheduler) == case["attributes"]


def test_golden_file_covers_every_scheduler_and_feature():
    names = {case["scheduler"] for case in GOLDEN}
    assert names == {"FactorScheduler", "MultiFactorScheduler", "PolyScheduler", "CosineScheduler"}
    modes = {
        case["kwargs"].get("warmup_mode", "linear")
        for case in GOLDEN
        if "warmup_steps" in case["kwargs"]
    }
    assert modes == {"linear", "constant"}
    assert any("optimizer_learning_rate" in case for case in GOLDEN)
    assert any(isinstance(out, dict) for case in GOLDEN for out in case["outputs"])


# ----------------------------------------------------------------------------- base class


def test_base_attributes_and_warmup_final_lr_is_captured():
    sched = LRScheduler(base_lr=0.5, warmup_steps=4, warmup_begin_lr=0.1, warmup_mode="linear")
    assert (sched.base_lr, sched.warmup_steps, sched.warmup_final_lr) == (0.5, 4, 0.5)
    assert (sched.warmup_begin_lr, sched.warmup_mode) == (0.1, "linear")
    sched.base_lr = 9.0
    assert sched.get_warmup_lr(2) == 0.1 + (0.5 - 0.1) * 2.0 / 4.0


def test_base_defaults():
    sched = LRScheduler()
    assert vars(sched) == {
        "base_lr": 0.01,
        "warmup_steps": 0,
        "warmup_final_lr": 0.01,
        "warmup_begin_lr": 0,
        "warmup_mode": "linear",
    }


def test_base_call_is_abstract():
    with pytest.raises(NotImplementedError):
        LRScheduler()(1)


def test_get_warmup_lr_modes_and_assert():
    assert LRScheduler(base_lr=1.0, warmup_steps=4, warmup_begin_lr=0.2).get_warmup_lr(0) == 0.2
    constant = LRScheduler(base_lr=1.0, warmup_steps=4, warmup_begin_lr=0.2, warmup_mode="constant")
    assert [constant.get_warmup_lr(n) for n in range(4)] == [0.2] * 4
    with pytest.raises(AssertionError):
        constant.get_warmup_lr(4)
    constant.warmup_mode = "cubic"
    with pytest.raises(ValueError, match="cubic"):
        constant.get_warmup_lr(1)


def test_base_validation_errors():
    with pytest.raises(AssertionError):
        LRScheduler(warmup_steps=2.0)
    with pytest.raises(ValueError, match="warmup_begin_lr"):
        LRScheduler(base_lr=0.1, warmup_begin_lr=0.2)
    with pytest.raises(ValueError, match="warmup_steps"):
        LRScheduler(warmup_steps=-1)
    with pytest.raises(ValueError, match="warmup_mode"):
        LRScheduler(warmup_mode="cosine")
    assert LRScheduler(warmup_steps=True).warmup_steps is True  # bool is an int


def test_base_validation_order():
    # The int assert runs before any ValueError, then begin_lr before steps before mode.
    with pytest.raises(AssertionError):
        LRScheduler(base_lr=0.1, warmup_steps=-1.0, warmup_begin_lr=1.0, warmup_mode="x")
    with pytest.raises(ValueError, match="warmup_begin_lr"):
        LRScheduler(base_lr=0.1, warmup_steps=-1, warmup_begin_lr=1.0, warmup_mode="x")
    with pytest.raises(ValueError, match="warmup_steps"):
        LRScheduler(base_lr=0.1, warmup_steps=-1, warmup_mode="x")


def test_subclass_contract():
    class Halving(LRScheduler):
        def __call__(self, num_update):
            if num_update < self.warmup_steps:
                return self.get_warmup_lr(num_update)
            return self.base_lr / 2

    sched = Halving(base_lr=1.0, warmup_steps=2)
    assert [sched(n) for n in range(4)] == [0.0, 0.5, 0.5, 0.5]


# ------------------------------------------------------------------------------- Factor


def test_factor_documented_values():
    sched = FactorScheduler(step=3, factor=0.5, base_lr=1)
    assert [sched(n) for n in range(12)] == [
        1,
        1,
        1,
        1,
        0.5,
        0.5,
        0.5,
        0.25,
        0.25,
        0.25,
        0.125,
        0.125,
    ]
    assert (sched.step, sched.factor, sched.stop_factor_lr, sched.count) == (3, 0.5, 1e-8, 9)


def test_factor_stop_factor_lr_clamps_and_stays():
    sched = FactorScheduler(step=1, factor=0.1, stop_factor_lr=1e-3, base_lr=1.0)
    values = [sched(n) for n in range(10)]
    assert values[:2] == [1.0, 1.0]
    assert values[4] == 1.0 * 0.1 * 0.1 * 0.1  # just above the floor, so kept
    assert values[5:] == [1e-3] * 5


def test_factor_one_never_decays():
    sched = FactorScheduler(step=1, base_lr=0.3)
    assert [sched(n) for n in range(50)] == [0.3] * 50


def test_factor_counter_ignores_warmup():
    sched = FactorScheduler(step=2, factor=0.5, base_lr=1.0, warmup_steps=4)
    assert [sched(n) for n in range(6)] == [0.0, 0.25, 0.5, 0.75, 0.5, 0.25]


def test_factor_is_stateful_and_not_undone_by_smaller_n():
    sched = FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    assert sched(3) == 0.25
    assert sched(0) == 0.25
    assert sched.count == 2


def test_factor_errors_after_base_checks():
    with pytest.raises(ValueError, match="step"):
        FactorScheduler(step=0)
    with pytest.raises(ValueError, match="factor"):
        FactorScheduler(step=1, factor=1.5)
    with pytest.raises(ValueError, match="warmup_steps"):
        FactorScheduler(step=0, warmup_steps=-1)
    with pytest.raises(ValueError, match="step"):
        FactorScheduler(step=0, factor=2.0)


def test_factor_logs_changes(caplog):
    with caplog.at_level(logging.INFO):
        sched = FactorScheduler(step=1, factor=0.1, stop_factor_lr=0.05, base_lr=1.0)
        sched(3)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "Update[3]" in messages[0] and "1.00000e-01" in messages[0]
    assert "5.00000e-02" in messages[1] and "will not change in the future" in messages[1]


# -------------------------------------------------------------------------- MultiFactor


def test_multifactor_documented_values():
    sched = MultiFactorScheduler(step=[2, 5], factor=0.1, base_lr=1.0)
    assert [sched(n) for n in range(8)] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1]
    assert (sched.step, sched.cur_step_ind, sched.factor, sched.count) == ([2, 5], 2, 0.1, 5)


def test_multifactor_with_warmup_applies_passed_milestones_at_once():
    sched = MultiFactorScheduler(
        step=[2, 5], factor=0.1, base_lr=1.0, warmup_steps=3, warmup_begin_lr=0.4
    )
    expected = [0.4, 0.6, 0.8, 0.1, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1]
    assert [sched(n) for n in range(8)] == pytest.approx(expected, rel=0, abs=1e-16)


def test_multifactor_errors():
    with pytest.raises(AssertionError):
        MultiFactorScheduler(step=(1, 2))
    with pytest.raises(AssertionError):
        MultiFactorScheduler(step=[])
    with pytest.raises(ValueError, match="increasing"):
        MultiFactorScheduler(step=[3, 3])
    with pytest.raises(ValueError, match="at least 1"):
        MultiFactorScheduler(step=[0, 2])
    with pytest.raises(ValueError, match="factor"):
        MultiFactorScheduler(step=[1], factor=1.01)


def test_multifactor_validation_order():
    # The increasing check of element i runs before the >= 1 check of element i.
    with pytest.raises(ValueError, match="increasing"):
        MultiFactorScheduler(step=[2, -1])
    with pytest.raises(ValueError, match="at least 1"):
        MultiFactorScheduler(step=[0, 0], factor=5.0)


def test_multifactor_logs(caplog):
    with caplog.at_level(logging.INFO):
        MultiFactorScheduler(step=[1, 2], factor=0.5, base_lr=1.0)(5)
    assert [r.getMessage() for r in caplog.records] == [
        "Update[5]: Change learning rate to 5.00000e-01",
        "Update[5]: Change learning rate to 2.50000e-01",
    ]


# ------------------------------------------------------------------------- Poly / Cosine


def test_poly_documented_values_and_attributes():
    sched = PolyScheduler(max_update=4, base_lr=1.0, pwr=2, final_lr=0.1)
    assert [sched(n) for n in range(7)] == [1.0, 0.60625, 0.325, 0.15625, 0.1, 0.1, 0.1]
    assert (sched.power, sched.base_lr_orig, sched.max_update, sched.final_lr, sched.max_steps) == (
        2,
        1.0,
        4,
        0.1,
        4,
    )


def test_poly_constant_warmup_documented_values():
    sched = PolyScheduler(
        max_update=6,
        base_lr=1.0,
        pwr=1,
        warmup_steps=2,
        warmup_begin_lr=0.5,
        warmup_mode="constant",
    )
    assert [sched(n) for n in range(9)] == [0.5, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0]


def test_poly_first_call_past_max_update_returns_constructor_lr():
    assert PolyScheduler(max_update=3, base_lr=0.2)(10) == 0.2


def test_cosine_documented_values_and_attributes():
    sched = CosineScheduler(max_update=4, base_lr=1.0)
    values = [sched(n) for n in range(7)]
    assert values == [
        1.0,
        (1 + math.cos(math.pi / 4)) / 2,
        0.5,
        (1 + math.cos(3 * math.pi / 4)) / 2,
        0.0,
        0.0,
        0.0,
    ]
    assert (sched.base_lr_orig, sched.max_update, sched.final_lr, sched.max_steps) == (1.0, 4, 0, 4)
    assert not hasattr(sched, "power")


@pytest.mark.parametrize("klass", [PolyScheduler, CosineScheduler])
def test_decay_errors_and_zero_span(klass):
    with pytest.raises(AssertionError):
        klass(max_update=4.0)
    with pytest.raises(ValueError, match="max_update"):
        klass(max_update=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        klass(max_update=0, warmup_steps=-1)
    sched = klass(max_update=3, warmup_steps=3)
    assert sched.max_steps == 0
    # MXNet divided by zero here; the span-less decay ends at final_lr at once.
    assert sched(2) == pytest.approx(0.01 * 2 / 3)
    assert sched(3) == 0
    assert sched(7) == 0
    # A negative span (MXNet accepted it silently) is refused.
    with pytest.raises(ValueError, match=r"max_update \(2\) must not be lower than warmup_steps"):
        klass(max_update=2, base_lr=0.5, warmup_steps=5)


@pytest.mark.parametrize("klass", [PolyScheduler, CosineScheduler])
def test_decay_ignores_optimizer_override_after_warmup(klass, capsys):
    sched = klass(max_update=10, base_lr=0.01, **({"pwr": 1} if klass is PolyScheduler else {}))
    Optimizer(learning_rate=1.0, lr_scheduler=sched)
    assert "has been overwritten by ``learning_rate``" in capsys.readouterr().out
    assert sched.base_lr == 1.0
    assert sched(0) == 0.01
    assert sched(5) == 0.005


def test_warmup_targets_constructor_base_lr_after_override():
    sched = FactorScheduler(step=100, base_lr=0.5, warmup_steps=2)
    Optimizer(learning_rate=4.0, lr_scheduler=sched)
    assert [sched(0), sched(1), sched(2)] == [0.0, 0.25, 4.0]


# ------------------------------------------------------------------ reliability checks

NAN = float("nan")


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: FactorScheduler(step=2, factor=NAN), "factor"),
        (lambda: FactorScheduler(step=NAN), "step"),
        (lambda: FactorScheduler(step=2, stop_factor_lr=NAN), "stop_factor_lr"),
        (lambda: FactorScheduler(step=2, base_lr=NAN), "base_lr"),
        (lambda: FactorScheduler(step=2, factor=-math.inf), "factor"),
        (lambda: LRScheduler(base_lr=math.inf), "base_lr"),
        (lambda: LRScheduler(warmup_begin_lr=NAN), "warmup_begin_lr"),
        (lambda: MultiFactorScheduler(step=[1, NAN]), r"step\[1\]"),
        (lambda: MultiFactorScheduler(step=[NAN]), r"step\[0\]"),
        (lambda: MultiFactorScheduler(step=[1], factor=NAN), "factor"),
        (lambda: PolyScheduler(max_update=4, pwr=NAN), "pwr"),
        (lambda: PolyScheduler(max_update=4, base_lr=NAN), "base_lr"),
        (lambda: PolyScheduler(max_update=4, final_lr=NAN), "final_lr"),
        (lambda: CosineScheduler(max_update=4, final_lr=NAN), "final_lr"),
        (lambda: CosineScheduler(max_update=3, warmup_steps=4), "max_update"),
    ],
)
def test_nan_and_inconsistent_arguments_are_rejected(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_non_numbers_are_type_errors():
    with pytest.raises(TypeError, match="step\\[1\\]"):
        MultiFactorScheduler(step=[1, None])
    with pytest.raises(TypeError, match="pwr"):
        PolyScheduler(max_update=4, pwr="2")


def test_mxnet_asserts_are_assertion_and_value_errors():
    for make in (
        lambda: LRScheduler(warmup_steps=2.0),
        lambda: MultiFactorScheduler(step=(1, 2)),
        lambda: PolyScheduler(max_update=4.0),
        lambda: LRScheduler(base_lr=1.0, warmup_steps=2).get_warmup_lr(2),
    ):
        with pytest.raises(AssertionError) as info:
            make()
        assert isinstance(info.value, ValueError)


def test_checks_survive_python_dash_O():
    import subprocess
    import sys

    script = """
from mxopt.lr_scheduler import (LRScheduler, MultiFactorScheduler, PolyScheduler,
                                FactorScheduler)
from mxopt.optimizer.base import Optimizer
checks = [
    lambda: LRScheduler(warmup_steps=2.0),
    lambda: MultiFactorScheduler(step=(1, 2)),
    lambda: PolyScheduler(max_update=4.0),
    lambda: LRScheduler(base_lr=1.0, warmup_steps=2).get_warmup_lr(2),
    lambda: FactorScheduler(step=2, factor=float("nan")),
    lambda: Optimizer(param_idx2name=[1, 2]),
]
caught = 0
for check in checks:
    try:
        check()
    except AssertionError:
        caught += 1
    except ValueError:
        caught += 1
stripped = True
try:
    assert False
except AssertionError:
    stripped = False
print(stripped, caught, len(checks))
"""
    result = subprocess.run(
        [sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "6", "6"]


def _factor_loop(sched, num_update):
    """MXNet's FactorScheduler loop, verbatim (the reference for the closed form)."""
    while num_update > sched.count + sched.step:
        sched.count += sched.step
        sched.base_lr *= sched.factor
        if sched.base_lr < sched.stop_factor_lr:
            sched.base_lr = sched.stop_factor_lr
    return sched.base_lr


def _same_float(a, b):
    return (a != a and b != b) or (a == b and math.copysign(1.0, a) == math.copysign(1.0, b))


@pytest.mark.parametrize(
    "factor, stop",
    [
        (0.5, 1e-8),
        (0.9, 1e-8),
        (0.3, 0.0),
        (0.999, 1e-3),
        (1.0, 1e-8),
        (0.0, 1e-8),
        (0.0, 0.0),
        (-0.5, 0.0),
        (-0.5, -1.0),
        (-1.0, -2.0),
        (-0.0, 0.0),
        (0.7, -1e-3),
        (1e-200, 0.0),
    ],
)
def test_factor_closed_form_matches_the_loop_bit_for_bit(factor, stop):
    for step in (1, 2, 3, 7):
        for base in (1.0, 0.01, 3e-300):
            fast = FactorScheduler(step=step, factor=factor, stop_factor_lr=stop, base_lr=base)
            slow = FactorScheduler(step=step, factor=factor, stop_factor_lr=stop, base_lr=base)
            for n in (0, 1, 2, 3, 5, 8, 13, 40, 41, 97, 400, 1201, 1202, 5000):
                got, want = fast(n), _factor_loop(slow, n)
                assert _same_float(got, want), (step, base, n, got, want)
                assert fast.count == slow.count and type(fast.count) is type(slow.count)
            # One huge jump from a fresh scheduler lands on the same value too.
            fresh = FactorScheduler(step=step, factor=factor, stop_factor_lr=stop, base_lr=base)
            ref = FactorScheduler(step=step, factor=factor, stop_factor_lr=stop, base_lr=base)
            assert _same_float(fresh(4999), _factor_loop(ref, 4999))
            assert fresh.count == ref.count


def test_factor_closed_form_with_float_steps_and_float_updates():
    for step in (2.0, 3):
        for n in (7.5, 8.0, 9.0, 30.25):
            fast = FactorScheduler(step=step, factor=0.5, base_lr=1.0)
            slow = FactorScheduler(step=step, factor=0.5, base_lr=1.0)
            assert fast(n) == _factor_loop(slow, n)
            assert fast.count == slow.count and type(fast.count) is type(slow.count)
    # A non-integral step keeps MXNet's loop (float sums included).
    fast = FactorScheduler(step=1.3, factor=0.5, base_lr=1.0)
    slow = FactorScheduler(step=1.3, factor=0.5, base_lr=1.0)
    assert fast(10) == _factor_loop(slow, 10) and fast.count == slow.count


def test_factor_huge_num_update_is_immediate():
    import time

    start = time.perf_counter()
    sched = FactorScheduler(step=1)
    assert sched(10**9) == 0.01 and sched.count == 10**9 - 1
    decaying = FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    assert decaying(10**12) == 1e-8 and decaying.count == 10**12 - 1
    assert decaying(10**18) == 1e-8
    assert time.perf_counter() - start < 1.0


def test_factor_infinite_num_update_raises_instead_of_spinning():
    with pytest.raises(ValueError, match="finite"):
        FactorScheduler(step=1, factor=0.5)(math.inf)


@pytest.mark.parametrize(
    "make",
    [
        lambda: FactorScheduler(step=2, factor=0.5, base_lr=1.0),
        lambda: MultiFactorScheduler(step=[2, 4], factor=0.5, base_lr=1.0),
        lambda: PolyScheduler(max_update=10, base_lr=1.0),
        lambda: CosineScheduler(max_update=10, base_lr=1.0),
    ],
)
def test_negative_num_update_without_warmup_is_the_start(make):
    # MXNet took the warmup branch and divided by warmup_steps == 0.
    sched = make()
    assert sched(-5) == 1.0
    assert sched(-(10**30)) == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: FactorScheduler(step=2, warmup_steps=3),
        lambda: MultiFactorScheduler(step=[2, 4], warmup_steps=3),
        lambda: PolyScheduler(max_update=10, warmup_steps=3),
        lambda: CosineScheduler(max_update=10),
        lambda: LRScheduler(warmup_steps=3).get_warmup_lr,
    ],
)
@pytest.mark.parametrize("num_update", ["3", None, [7], 1 + 1j])
def test_non_numeric_num_update_is_named(make, num_update):
    with pytest.raises(TypeError, match="num_update must be a number"):
        make()(num_update)


def test_numpy_num_updates_still_work():
    sched = FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    assert sched(np.array(5)) == 0.25
    assert sched(np.float32(7.5)) == 0.125


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"step": "a"}, "step"),
        ({"step": None}, "step"),
        ({"step": 2, "factor": "x"}, "factor"),
        ({"step": 2, "factor": None}, "factor"),
    ],
)
def test_factor_type_errors_name_the_argument(kwargs, name):
    with pytest.raises(TypeError, match=rf"^{name} must be a real number"):
        FactorScheduler(**kwargs)


def test_multifactor_factor_type_error_names_it():
    with pytest.raises(TypeError, match=r"^factor must be a real number"):
        MultiFactorScheduler(step=[1], factor=None)


def test_factor_float_step_with_a_huge_num_update_returns():
    # MXNet's float loop would run ~7e11 times; once the rate is at its floor the
    # counter jumps ahead, and the last iterations still run one by one.
    sched = FactorScheduler(step=1.5, factor=0.9, base_lr=1.0, stop_factor_lr=0.5)
    assert sched(1e12) == 0.5
    assert 1e12 - 1.5 <= sched.count < 1e12
    negative = FactorScheduler(step=1.5, factor=-0.5, base_lr=1.0, stop_factor_lr=-1.0)
    negative(4e6)
    plain = FactorScheduler(step=1.5, factor=-0.5, base_lr=1.0, stop_factor_lr=-1.0)
    while plain.count + plain.step < 4e6:  # the exact loop, for the final sign
        plain.count += plain.step
        plain.base_lr = max(plain.base_lr * plain.factor, plain.stop_factor_lr)
    assert math.copysign(1.0, negative.base_lr) == math.copysign(1.0, plain.base_lr)


def test_numpy_num_update_is_computed_as_under_numpy_1():
    # MXNet 1.6 ran on NumPy 1, where pi * float32(n) is a float64; NumPy 2 would keep
    # float32 (oracle values from MXNet 1.6.0, tests/fuzz/vs_mxnet_schedules.py).
    cosine = CosineScheduler(max_update=100, final_lr=0.001)
    assert cosine(np.float32(45)).hex() == "0x1.9695183a9a59fp-8"
    assert cosine(np.int32(96)).hex() == "0x1.0f7224fbc82ccp-10"
    poly = PolyScheduler(max_update=100, pwr=0.5, base_lr=0.3, warmup_steps=3)
    assert poly(np.array(45.5, dtype=np.float32)).hex() == "0x1.cc8937bec0b97p-3"


def test_numpy_hyper_parameters_are_promoted_as_under_numpy_1():
    # NumPy 1 computed a NumPy scalar and a Python number in 64 bits, comparisons included
    # (oracle values from MXNet 1.6.0).
    poly = PolyScheduler(
        max_update=10, base_lr=np.float32(0.3), pwr=0.5, warmup_steps=2, warmup_begin_lr=0.1
    )
    assert [poly(1).hex(), poly(4).hex()] == ["0x1.99999a6666666p-3", "0x1.0a0b03017925dp-2"]
    factor = FactorScheduler(
        step=1, factor=0.9, base_lr=np.float32(0.1), stop_factor_lr=np.float16(0.07)
    )
    assert factor(3) == 0.08100000120699406
    assert factor(5) == np.float16(0.07)
    cosine = CosineScheduler(max_update=10, base_lr=np.float16(0.1), final_lr=0.01)
    assert cosine(3).hex() == "0x1.4d8a8b535a7d7p-4"
    # float16(0.1) is below 0.1 in 64 bits (NumPy 2 would round 0.1 to float16 first).
    with pytest.raises(ValueError, match="warmup_begin_lr"):
        FactorScheduler(step=2, base_lr=np.float16(0.1), warmup_begin_lr=0.1)
    sched = PolyScheduler(max_update=10, base_lr=np.float32(0))
    Optimizer(learning_rate=1e-300, lr_scheduler=sched)
    assert sched.base_lr == 1e-300
    multi = MultiFactorScheduler(step=[20, np.float32(21)], factor=0.5, base_lr=1.0)
    assert multi(21.000000001) == 0.25
    factor = FactorScheduler(step=np.int64(10), factor=0.5, base_lr=1.0)
    assert factor(25) == 0.25
    assert type(factor.count) is np.int64 and factor.count == 20
