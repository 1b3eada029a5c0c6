"""Behaviour specific to Signum, DCASGD, SGLD and GroupAdaGrad that the golden trajectories
and the shared property tests do not pin down, and their rejection of bad input (a clear
exception naming the culprit, every array left as it was)."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from mxopt import random
from mxopt.optimizer import DCASGD, SGLD, Signum, contrib, create
from mxopt.optimizer.contrib import GroupAdaGrad
from mxopt.sparse import row_sparse_array


def _data(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


def _expect_untouched(call, arrays, error, match):
    before = [a.copy() for a in arrays]
    with pytest.raises(error, match=match):
        call()
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------
# Signum
# --------------------------------------------------------------------------------------------


def test_signsgd_ignores_rescale_grad_and_clip_gradient():
    w0, g = _data(50)
    results = []
    for kwargs in ({}, {"rescale_grad": -3.0, "clip_gradient": 1e-3}):
        opt = Signum(learning_rate=0.1, momentum=0.0, wd=0.01, **kwargs)
        w = w0.copy()
        assert opt.create_state(0, w) is None
        opt.update(0, w, g, None)
        results.append(w)
    np.testing.assert_array_equal(results[0], results[1])
    d = np.float32
    np.testing.assert_array_equal(results[0], (d(1) - d(0.1) * d(0.01)) * w0 - d(0.1) * np.sign(g))


def test_signum_stores_the_negated_momentum():
    opt = Signum(learning_rate=0.1, momentum=0.9)
    w, g = np.zeros(4, np.float32), np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    state = opt.create_state(0, w)
    opt.update(0, w, g, state)
    np.testing.assert_array_equal(np.sign(state), -np.sign(g))
    np.testing.assert_array_equal(w, np.float32(0.1) * np.sign(state))


def test_signum_default_learning_rate():
    assert Signum().learning_rate == 0.01


def test_signsgd_rejects_wd_lh():
    opt = Signum(momentum=0.0, wd_lh=0.1)
    w, g = _data(5)
    _expect_untouched(lambda: opt.update(0, w, g, None), [w], ValueError, "wd_lh")


# --------------------------------------------------------------------------------------------
# DCASGD
# --------------------------------------------------------------------------------------------


def test_dcasgd_keeps_a_copy_of_the_previous_weight():
    opt = DCASGD(learning_rate=0.1, lamda=0.5)
    w, g = _data(20, np.float64)
    momentum, previous = state = opt.create_state(0, w)
    assert momentum is None and previous is not w
    np.testing.assert_array_equal(previous, w)
    for _ in range(3):
        before = w.copy()
        opt.update(0, w, g, state)
        np.testing.assert_array_equal(state[1], before)
    assert not np.shares_memory(state[1], w)


def test_dcasgd_rejects_momentum():
    with pytest.raises(ValueError, match="momentum"):
        DCASGD(momentum=0.9)
    opt = DCASGD()
    w, g = _data(5)
    state = opt.create_state(0, w)
    opt.momentum = 0.5
    _expect_untouched(lambda: opt.update(0, w, g, state), [w, state[1]], ValueError, "momentum")


@pytest.mark.parametrize(
    "state",
    [lambda w: (np.zeros_like(w), w.copy()), lambda w: (None,), lambda w: w.copy(), lambda w: None],
)
def test_dcasgd_wrong_state_structure(state):
    opt = DCASGD()
    w, g = _data(5)
    _expect_untouched(lambda: opt.update(0, w, g, state(w)), [w], TypeError, "state")


# --------------------------------------------------------------------------------------------
# SGLD
# --------------------------------------------------------------------------------------------


def _sgld_trajectory(seed, steps=3, n=1000, dtype=np.float32):
    random.seed(seed)
    opt = SGLD(learning_rate=0.01, wd=0.1)
    w, g = _data(n, dtype)
    out = []
    for _ in range(steps):
        opt.update(0, w, g, None)
        out.append(w.copy())
    return out


def test_sgld_seed_reproduces_the_trajectory():
    a, b, c = _sgld_trajectory(7), _sgld_trajectory(7), _sgld_trajectory(8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[-1], c[-1])
    assert not np.array_equal(a[0], a[1])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_sgld_noise_is_random_normal_with_the_same_stream(dtype):
    n, lr = 2 * 2**16 + 37, 0.04
    w0, g = _data(n, dtype)
    quiet = SGLD(learning_rate=lr, wd=0.1)
    quiet.add_noise = False
    deterministic = w0.copy()
    quiet.update(0, deterministic, g, None)

    random.seed(11)
    w = w0.copy()
    with pytest.warns(UserWarning) if dtype == np.float16 else _nothing():
        opt = SGLD(learning_rate=lr, wd=0.1)
        opt.update(0, w, g, opt.create_state_multi_precision(0, w))
    random.seed(11)
    noise = random.normal(0.0, math.sqrt(lr), np.empty(n, dtype))
    np.testing.assert_array_equal(w, deterministic + noise)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_sgld_noise_statistics():
    random.seed(5)
    n, lr = 400_000, 0.01
    w, g = np.zeros(n, np.float64), np.zeros(n, np.float64)
    SGLD(learning_rate=lr).update(0, w, g, None)
    sigma = math.sqrt(lr)
    assert abs(w.mean()) < 6 * sigma / math.sqrt(n)
    assert abs(w.std() - sigma) < 6 * sigma / math.sqrt(2 * n)


def test_sgld_list_draws_one_stream_per_weight_in_order():
    data = [_data(n, seed=n) for n in (3, 70_000, 0, 11)]
    random.seed(2)
    opt = SGLD(learning_rate=0.1)
    weights = [w.copy() for w, _ in data]
    opt.update(list(range(4)), weights, [g for _, g in data], [None] * 4)
    random.seed(2)
    single = SGLD(learning_rate=0.1)
    for i, (w, g) in enumerate(data):
        w = w.copy()
        single.update(i, w, g, None)
        np.testing.assert_array_equal(weights[i], w)


def test_sgld_multi_precision_runs_on_the_master():
    w16, g16 = _data(1000, np.float16)
    random.seed(4)
    opt = SGLD(learning_rate=0.1, multi_precision=True)
    state = opt.create_state_multi_precision(0, w16)
    w = w16.copy()
    opt.update_multi_precision(0, w, g16, state)
    random.seed(4)
    master = w16.astype(np.float32)
    SGLD(learning_rate=0.1).update(0, master, g16.astype(np.float32), None)
    np.testing.assert_array_equal(state[0], master)
    np.testing.assert_array_equal(w, master.astype(np.float16))


THREAD_SCRIPT = """
import sys
import numpy as np
from mxopt import random
from mxopt.optimizer import SGLD
random.seed(3)
w = np.linspace(-1, 1, 3 * 2**16 + 11, dtype=np.float32)
g = np.cos(w)
opt = SGLD(learning_rate=0.01)
for _ in range(2):
    opt.update([0, 1], [w, w[:5].copy()], [g, g[:5].copy()], [None, None])
sys.stdout.buffer.write(w.tobytes())
"""


def test_sgld_does_not_depend_on_thread_count():
    outputs = []
    for threads in ("1", "2", "3"):
        env = dict(os.environ, RAYON_NUM_THREADS=threads)
        run = subprocess.run(
            [sys.executable, "-c", THREAD_SCRIPT], env=env, capture_output=True, check=True
        )
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1] == outputs[2]


def test_sgld_negative_lr_is_rejected():
    opt = SGLD(learning_rate=-0.1)
    w, g = _data(5)
    _expect_untouched(lambda: opt.update(0, w, g, None), [w], ValueError, "lr")


def test_sgld_add_noise_is_a_class_attribute():
    assert SGLD.add_noise is True


# --------------------------------------------------------------------------------------------
# GroupAdaGrad
# --------------------------------------------------------------------------------------------


def test_groupadagrad_is_registered_in_contrib():
    assert contrib.GroupAdaGrad is GroupAdaGrad
    assert type(create("groupadagrad")) is GroupAdaGrad


@pytest.mark.parametrize("shape", [(6,), (2, 3, 4)])
def test_groupadagrad_needs_2d_weights(shape):
    opt = GroupAdaGrad()
    w, g = _data(shape)
    with pytest.raises(ValueError, match="2-d"):
        opt.create_state(0, w)
    history = np.zeros((shape[0], 1), np.float32)
    _expect_untouched(lambda: opt.update(0, w, g, history), [w, history], ValueError, "2-d")


def test_groupadagrad_rejects_weight_decay_before_writing():
    opt = GroupAdaGrad(wd=0.1)
    w, g = _data((4, 3))
    history = opt.create_state(0, w)
    _expect_untouched(lambda: opt.update(0, w, g, history), [w, history], ValueError, "wd")
    # A list: nothing is written even though other indices have no weight decay.
    opt = GroupAdaGrad(wd=0.1, param_idx2name={0: "a_bias", 1: "b_weight"})
    (w0, g0), (w1, g1) = _data((4, 3)), _data((2, 5), seed=1)
    h0, h1 = opt.create_state(0, w0), opt.create_state(1, w1)
    _expect_untouched(
        lambda: opt.update([0, 1], [w0, w1], [g0, g1], [h0, h1]),
        [w0, w1, h0, h1],
        ValueError,
        "weight decay",
    )


def test_groupadagrad_takes_float32_only():
    opt = GroupAdaGrad()
    w, g = _data((4, 3), np.float64)
    history = np.zeros((4, 1), np.float32)
    _expect_untouched(lambda: opt.update(0, w, g, history), [w], TypeError, "float32")


def test_groupadagrad_wrong_history_shape():
    opt = GroupAdaGrad()
    w, g = _data((4, 3))
    history = np.zeros(4, np.float32)
    _expect_untouched(lambda: opt.update(0, w, g, history), [w, history], TypeError, "history")


def _kahan_mean(values):
    total, residual = np.float32(0), np.float32(0)
    for v in values:
        y = v - residual
        t = total + y
        residual = (t - total) - y
        total = t
    return total / np.float32(len(values))


def test_groupadagrad_dense_history_is_a_kahan_mean():
    g = np.full((2, 4000), 1e-3, np.float32)
    g[:, 0] = 100.0
    w = np.zeros_like(g)
    opt = GroupAdaGrad(learning_rate=0.1)
    history = opt.create_state(0, w)
    opt.update(0, w, g, history)
    squares = g[0] * g[0]
    plain = np.float32(0)
    for v in squares:
        plain = plain + v
    assert history[0, 0] == _kahan_mean(squares)
    assert history[0, 0] != plain / np.float32(4000)


def test_groupadagrad_sparse_touches_listed_rows_only():
    w0, g = _data((6, 3))
    opt = GroupAdaGrad(learning_rate=0.1, clip_gradient=-1.0)  # kclip: a negative bound is off
    w, history = w0.copy(), opt.create_state(0, w0)
    opt.update(0, w, row_sparse_array((g[[1, 4]], [1, 4]), shape=(6, 3)), history)
    changed = np.any(w != w0, axis=1)
    assert changed.tolist() == [r in (1, 4) for r in range(6)]
    d = np.float32
    expected_h = (g[1] * g[1])[0] + (g[1] * g[1])[1] + (g[1] * g[1])[2]
    assert history[1, 0] == expected_h / d(3)
    assert history[0, 0] == 0


# --------------------------------------------------------------------------------------------
# Non-finite hyper-parameters
# --------------------------------------------------------------------------------------------

BAD = [float("nan"), float("inf"), 1e39]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda v: Signum(momentum=v), "momentum"),
        (lambda v: Signum(wd_lh=v), "wd_lh"),
        (lambda v: Signum(rescale_grad=v), "rescale_grad"),
        (lambda v: Signum(clip_gradient=v), "clip_gradient"),
        (lambda v: Signum(learning_rate=v), "lr"),
        (lambda v: Signum(momentum=0.0, rescale_grad=v), "rescale_grad"),
        (lambda v: DCASGD(lamda=v), "lamda"),
        (lambda v: DCASGD(rescale_grad=v), "rescale_grad"),
        (lambda v: DCASGD(clip_gradient=v), "clip_gradient"),
        (lambda v: DCASGD(wd=v), "wd"),
        (lambda v: SGLD(learning_rate=v), "lr"),
        (lambda v: SGLD(rescale_grad=v), "rescale_grad"),
        (lambda v: SGLD(clip_gradient=v), "clip_gradient"),
        (lambda v: GroupAdaGrad(eps=v), "epsilon"),
        (lambda v: GroupAdaGrad(rescale_grad=v), "rescale_grad"),
        (lambda v: GroupAdaGrad(learning_rate=v), "lr"),
    ],
)
def test_non_finite_hyper_parameters(make, name, value):
    try:
        opt = make(value)
    except ValueError as e:
        # Optimizer's own arguments (lr, wd, rescale_grad, clip_gradient) are refused at
        # construction when not finite; 1e39 (finite in f64) reaches the kernels.
        assert f"{'learning_rate' if name == 'lr' else name} must be finite" in str(e)
        return
    w, g = _data((4, 3))
    state = opt.create_state(0, w)
    arrays = [w] + [a for a in (state if isinstance(state, tuple) else (state,)) if a is not None]
    _expect_untouched(lambda: opt.update(0, w, g, state), arrays, ValueError, name)
