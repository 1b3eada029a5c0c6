"""mxopt.random: the global seed, stream reservation and the in-place fills of _core."""

import os
import subprocess
import sys

import numpy as np
import pytest

import mxopt
from mxopt import random as R


def test_thread_count_does_not_change_values():
    n = 3 * mxopt._core.FILL_BLOCK_LEN + 5
    code = (
        "import numpy as np, sys; from mxopt import random as R; R.seed(5); "
        f"a = np.empty({n}, np.float32); R.normal(0, 1, a); "
        "sys.stdout.write(a[::997].tobytes().hex())"
    )
    outs = []
    for threads in ("1", "3"):
        env = dict(os.environ, RAYON_NUM_THREADS=threads)
        res = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outs.append(res.stdout)
    R.seed(5)
    a = np.empty(n, np.float32)
    R.normal(0, 1, a)
    assert outs[0] == outs[1] == a[::997].tobytes().hex()


def test_seed_and_fill_validation():
    with pytest.raises(ValueError, match="seed_state"):
        R.seed(1.5)
    R.seed(np.int64(2**70 % 2**63))
    R.seed(-1)
    s, k = R.next_stream()
    assert s == 2**64 - 1 and R.next_stream() == (s, k + 1)
    with pytest.raises(ValueError, match="low"):
        R.uniform(1.0, 0.0, np.zeros(2))
    with pytest.raises(ValueError, match="scale"):
        R.normal(0.0, -1.0, np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        R.normal(float("nan"), 1.0, np.zeros(2))
    with pytest.raises(TypeError, match="out"):
        R.uniform(0, 1, [0.0, 0.0])
    assert R.randint(3, 4) == 3


def test_core_fill_validation():
    core = mxopt._core
    with pytest.raises(TypeError, match=r"out.*int32"):
        core.fill_uniform(np.zeros(3, dtype=np.int32), 0.0, 1.0, 0, 0)
    with pytest.raises(TypeError, match="out"):
        core.fill_normal([1.0], 0.0, 1.0, 0, 0)
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        core.fill_uniform(ro, 0.0, 1.0, 0, 0)
    with pytest.raises(ValueError, match="contiguous"):
        core.fill_uniform(np.zeros((4, 4))[:, ::2], 0.0, 1.0, 0, 0)
    keep = np.full(4, 7.0, dtype=np.float32)
    with pytest.raises(ValueError, match="low"):
        core.fill_uniform(keep, 2.0, 1.0, 0, 0)
    assert (keep == 7.0).all()


def test_streams_advance_and_reseed_replays():
    R.seed(123)
    assert R.next_stream() == (123, 0)
    a = R.uniform(0.0, 1.0, np.empty(1000, dtype=np.float16))
    assert R.next_stream() == (123, 2)
    b = R.uniform(0.0, 1.0, np.empty(1000, dtype=np.float16))
    assert not np.array_equal(a, b)
    R.seed(123)
    R.next_stream()
    np.testing.assert_array_equal(R.uniform(0.0, 1.0, np.empty(1000, dtype=np.float16)), a)
    assert a.astype(np.float64).min() >= 0.0 and a.astype(np.float64).max() < 1.0


def test_direct_core_fill_matches_module_fill():
    R.seed(9)
    s, k = R.next_stream()
    direct = np.empty(5000, dtype=np.float64)
    mxopt._core.fill_normal(direct, 1.0, 2.0, s, k + 1)
    via = R.normal(1.0, 2.0, np.empty(5000, dtype=np.float64))
    np.testing.assert_array_equal(direct, via)
    # A prefix: a shorter array gets the first values of a longer one.
    short = np.empty(100, dtype=np.float64)
    mxopt._core.fill_normal(short, 1.0, 2.0, s, k + 1)
    np.testing.assert_array_equal(short, direct[:100])


@pytest.mark.parametrize(
    ("low", "high", "error", "match"),
    [
        (0, float("inf"), ValueError, "high must be finite"),
        (float("nan"), 1, ValueError, "low must be finite"),
        ("a", 3, TypeError, "low must be a number"),
        (0, None, TypeError, "high must be a number"),
    ],
)
def test_randint_bad_bounds(low, high, error, match):
    # MXNet-style [low, high) bounds; infinity used to raise OverflowError.
    with pytest.raises(error, match=match):
        R.randint(low, high)


def test_randint_huge_int_bounds():
    assert 0 <= R.randint(0, 2**100) < 2**100
    with pytest.raises(ValueError, match="float-sized range"):
        R.randint(0, 10**400)
