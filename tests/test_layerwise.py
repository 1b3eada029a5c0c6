"""Layer-wise optimizers (LARS, LAMB, LBSGD) and their reductions: behaviour the golden
trajectories do not pin down, and bad input."""

import json
import logging
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mxopt import _core
from mxopt.lr_scheduler import FactorScheduler
from mxopt.optimizer import LAMB, LARS, LBSGD, SGD, create
from mxopt.sparse import row_sparse_array

NORMS = json.loads((pathlib.Path(__file__).parent / "golden" / "norms.json").read_text())


def _rebuild(n, dtype):
    """The input of a norms.json entry, from its stored formula."""
    i = np.arange(n, dtype=np.uint64)
    x = ((i * np.uint64(2654435761)) % np.uint64(2**32)).astype(np.float64) / 2**32 - 0.5
    return (x * NORMS["scale"]).astype(dtype)


def _bits(value, dtype):
    return np.array([value], dtype=dtype).view(
        {2: "u2", 4: "u4", 8: "u8"}[np.dtype(dtype).itemsize]
    )[0]


# ------------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("entry", NORMS["entries"], ids=lambda e: f"{e['dtype']}-{e['n']}")
def test_exact_reductions_match_mxnet_bit_for_bit(entry):
    a = _rebuild(entry["n"], entry["dtype"])
    (ssq,) = _core.sum_sq([a])
    assert int(_bits(ssq, np.float32)) == int(entry["multi_sum_sq"]["bits"], 16)
    (norm,) = _core.norm([a])
    if entry["norm"] is None:  # MXNet fails on empty arrays; mxopt returns 0
        if entry["n"] == 0:
            assert norm == 0.0
        return
    expected = entry["norm"]
    assert int(_bits(norm, expected["dtype"])) == int(expected["bits"], 16)


def test_sum_sq_of_a_list_equals_one_call_per_array():
    group = NORMS["multi_sum_sq_group"]
    arrays = [_rebuild(n, group["dtype"]) for n in group["n"]]
    got = _core.sum_sq(arrays)
    assert [int(_bits(x, np.float32)) for x in got] == [
        int(r["bits"], 16) for r in group["results"]
    ]


def test_fast_reductions_are_accurate():
    # MXNet's sequential float32 recipes drift on long arrays; the blocked float64 sums
    # stay within float32 rounding of the true value.
    a = _rebuild(300_001, np.float32)
    truth = float(np.square(a.astype(np.float64)).sum())
    (exact,), (fast,) = _core.sum_sq([a]), _core.sum_sq([a], exact=False)
    assert fast == pytest.approx(truth, rel=1e-7)
    assert exact == pytest.approx(truth, rel=1e-3)
    (exact,), (fast,) = _core.norm([a]), _core.norm([a], exact=False)
    assert fast == pytest.approx(math.sqrt(truth), rel=1e-7)
    assert exact == pytest.approx(math.sqrt(truth), rel=1e-3)


FAST_SCRIPT = """
import sys
import numpy as np
from mxopt import _core
from mxopt.optimizer import LAMB, LARS
rng = np.random.default_rng(3)
n = 5 * 2**16 + 7
out = []
a = rng.standard_normal(n).astype(np.float32)
out += _core.sum_sq([a, a[:9]], exact=False) + _core.norm([a, a.astype(np.float64)], exact=False)
for cls in (LARS, LAMB):
    opt = cls(learning_rate=0.1, wd=0.01, exact_norms=False)
    w, g = a.copy(), rng.standard_normal(n).astype(np.float32)
    state = opt.create_state(0, w)
    for _ in range(2):
        opt.update(0, w, g, state)
    out.append(float(w.sum(dtype=np.float64)))
    sys.stdout.buffer.write(w.tobytes())
sys.stdout.write(repr(out))
"""


def test_fast_norms_do_not_depend_on_thread_count():
    outputs = []
    for threads in ("1", "2", "7"):
        env = dict(os.environ, RAYON_NUM_THREADS=threads)
        run = subprocess.run(
            [sys.executable, "-c", FAST_SCRIPT], env=env, capture_output=True, check=True
        )
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1] == outputs[2]


def test_row_sparse_norm_is_blas_dot_of_stored_values():
    v = np.array([3.0, 4.0, 0.0, 12.0, 1.0], dtype=np.float32)
    assert _core.norm([v], row_sparse=True) == [float(np.sqrt(np.float32(170.0)))]
    with pytest.raises(TypeError, match="float32"):
        _core.norm([v.astype(np.float64)], row_sparse=True)


# ------------------------------------------------------------------------------------ LARS


def _data(n, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(dtype)
    g = ((0.5 + np.abs(rng.standard_normal(n))) * rng.choice([-1.0, 1.0], n)).astype(dtype)
    return w, g


@pytest.mark.parametrize("name", ["fc_bias", "bn_gamma", "bn_beta", "xgamma", "bias"])
def test_lars_excluded_layers_take_the_plain_sgd_step(name):
    w, g = _data(33)
    lars = LARS(learning_rate=0.1, momentum=0.9, param_idx2name={0: name}, wd=0.01)
    sgd = SGD(learning_rate=0.1, momentum=0.9, param_idx2name={0: name}, wd=0.01)
    assert lars._get_wd(0) == 0.0  # only *_weight names keep weight decay (not *_gamma)
    sgd.set_wd_mult({name: 0.0})
    results = []
    for opt in (lars, sgd):
        weight, state = w.copy(), opt.create_state(0, w)
        opt.update(0, weight, g, state)
        results.append(weight)
    np.testing.assert_array_equal(results[0], results[1])


def test_lars_scales_weight_layers_by_the_trust_ratio():
    w, g = _data(33)
    opt = LARS(learning_rate=0.1, eta=0.5, eps=0.01, wd=0.01, param_idx2name={0: "fc_weight"})
    weight = w.copy()
    opt.update(0, weight, g, None)
    wn, gn = np.sqrt(np.float32((w * w).sum())), np.sqrt(np.float32((g * g).sum()))
    lr = 0.1 * 0.5 * wn / (gn + 0.01 * wn + 0.01)
    np.testing.assert_allclose(weight, w - lr * (0.01 * w + g), rtol=1e-5)


def test_lars_momentum_correction_follows_the_scheduler():
    opt = LARS(learning_rate=1.0, momentum=0.9, lr_scheduler=FactorScheduler(step=1, factor=0.5))
    w, g = _data(5)
    state = opt.create_state(0, w)
    opt.update(0, w, g, state)
    assert opt._momentum() == 0.9  # first call: last_lr = cur_lr
    opt.update(0, w, g, state)
    assert opt.cur_lr / opt.last_lr == 0.5
    assert opt._momentum() == pytest.approx(0.45)
    opt.momentum_correction = False
    assert opt._momentum() == 0.9


def test_lars_exact_and_fast_norms_agree_closely():
    w, g = _data(100_003)
    results = []
    for exact in (True, False):
        weight = w.copy()
        opt = LARS(learning_rate=0.1, eta=0.5, momentum=0.9, exact_norms=exact)
        opt.update(0, weight, g, opt.create_state(0, weight))
        results.append(weight)
    # MXNet's float32 recipe drifts by ~1e-5 over 1e5 elements; the step follows the norm.
    np.testing.assert_allclose(results[0], results[1], rtol=0, atol=1e-5)
    assert not np.array_equal(results[0], results[1])


# ------------------------------------------------------------------------------------ LAMB


def test_lamb_bounds_clamp_the_weight_norm():
    w, g = _data(50)
    norm_w = float(np.linalg.norm(w))
    outs = {}
    for lower, upper in [(None, None), (2 * norm_w, None), (None, norm_w / 2), (0, 0)]:
        weight = w.copy()
        opt = LAMB(learning_rate=0.1, lower_bound=lower, upper_bound=upper)
        opt.update(0, weight, g, opt.create_state(0, weight))
        outs[(lower, upper)] = w - weight
    base = outs[(None, None)]
    np.testing.assert_allclose(outs[(2 * norm_w, None)], 2 * base, rtol=1e-5)
    np.testing.assert_allclose(outs[(None, norm_w / 2)], base / 2, rtol=1e-5)
    np.testing.assert_array_equal(outs[(0, 0)], base)  # 0 = no bound, as in MXNet


def test_lamb_multi_precision_master_is_frozen_by_default_and_tracks_with_the_option():
    w, g = _data(40, np.float16)
    frozen = LAMB(learning_rate=0.05, multi_precision=True)
    weight = w.copy()
    state = frozen.create_state_multi_precision(0, weight)
    master0 = state[0].copy()
    for _ in range(3):
        frozen.update_multi_precision(0, weight, g, state)
    np.testing.assert_array_equal(state[0], master0)  # MXNet 1.6 never writes it

    tracking = LAMB(learning_rate=0.05, multi_precision=True, update_master_copy=True)
    weights, state = [], tracking.create_state_multi_precision(0, w.copy())
    weight = w.copy()
    for _ in range(3):
        tracking.update_multi_precision(0, weight, g, state)
        np.testing.assert_array_equal(weight, state[0].astype(np.float16))
        weights.append(weight.copy())
    # The corrected path keeps moving; the frozen one restarts from the initial master.
    assert (
        np.abs(weights[2].astype(np.float32) - w).sum()
        > 2 * np.abs(weights[0].astype(np.float32) - w).sum()
    )
    # Training a quadratic: the loss falls with the corrected master.
    target = np.zeros(40, np.float16)
    opt = LAMB(learning_rate=0.05, multi_precision=True, update_master_copy=True)
    weight = w.copy()
    state = opt.create_state_multi_precision(0, weight)
    losses = []
    for _ in range(20):
        opt.update_multi_precision(0, weight, weight - target, state)
        losses.append(float(np.square(weight.astype(np.float32)).sum()))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_lamb_rejects_non_float32_weights_without_multi_precision(dtype):
    w, g = _data(5, dtype)
    opt = LAMB()
    with pytest.raises(TypeError, match="weight"):
        opt.update(0, w, g, opt.create_state(0, w))


def test_lamb_list_equals_one_call_per_weight():
    data = [_data(n, seed=n) for n in (3, 70_000, 1, 129)]
    opt, one = LAMB(learning_rate=0.1, wd=0.01), LAMB(learning_rate=0.1, wd=0.01)
    weights = [w.copy() for w, _ in data]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    opt.update(list(range(4)), weights, [g for _, g in data], states)
    for i, (w, g) in enumerate(data):
        w = w.copy()
        one.update(i, w, g, one.create_state(i, w))
        np.testing.assert_array_equal(weights[i], w)


# ----------------------------------------------------------------------------------- LBSGD


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("linear", [1.0, 1.25, 1.5, 1.75, 2.0, 2.0]),
        ("power2", [1.0, 1 + 1 / 16, 1.25, 1 + 9 / 16, 2.0, 2.0]),
        ("sqrt", [1.0, 1.5, 1 + math.sqrt(0.5), 1 + math.sqrt(0.75), 2.0, 2.0]),
        ("lars", [1.0] * 4 + [2.0, 2.0]),
    ],
)
def test_lbsgd_warmup_multipliers(strategy, expected):
    opt = LBSGD(warmup_strategy=strategy, warmup_epochs=2, updates_per_epoch=2, batch_scale=2)
    assert [opt._get_lbmult(n) for n in range(6)] == pytest.approx(expected)


def test_lbsgd_logs_its_settings(caplog):
    with caplog.at_level(logging.INFO):
        LBSGD(batch_scale=2, warmup_epochs=3, warmup_strategy="sqrt", updates_per_epoch=7)
    assert caplog.messages == [
        "Running Large-Batch SGD Algorithm",
        "(Batch_scale=2.000000, warmup_epochs=3, warmup_strategy=sqrt, updates_per_epoch=7)",
    ]


def test_lbsgd_accumulates_and_updates_every_batch_scale_calls():
    w, g = _data(8)
    opt = LBSGD(learning_rate=0.1, batch_scale=2, warmup_epochs=0)
    weight = w.copy()
    opt.update(0, weight, g, None)
    np.testing.assert_array_equal(weight, w)  # accumulation step: lr 0
    opt.update(0, weight, g, None)
    expected = SGD(learning_rate=0.2)  # the full multiplier once warm-up is over
    reference = w.copy()
    expected.update(0, reference, g, None)
    np.testing.assert_allclose(weight, reference, rtol=1e-6)


def test_lbsgd_keeps_the_first_gradient_by_reference():
    # MXNet aliases the first accumulated gradient: a reused buffer changes the sum.
    w = np.ones(3, np.float32)
    opt = LBSGD(learning_rate=1.0, batch_scale=2, warmup_epochs=0)
    buffer = np.full(3, 1.0, np.float32)
    opt.update(0, w, buffer, None)
    buffer[...] = 10.0
    opt.update(0, w, buffer, None)
    np.testing.assert_allclose(w, 1.0 - 2.0 * 10.0)  # mean 10, not 5.5; multiplier 2


def test_lbsgd_multi_precision_through_the_updater_keeps_master_first():
    from mxopt.optimizer import get_updater

    w, g = _data(6, np.float16)
    updater = get_updater(LBSGD(learning_rate=0.1, momentum=0.9, multi_precision=True))
    updater(0, g, w)
    master, momentum = updater.states[0]
    assert master.dtype == np.float32 and momentum.dtype == np.float32
    np.testing.assert_array_equal(w, master.astype(np.float16))


# ------------------------------------------------------------------------------- bad input


def _snapshot(*arrays):
    return [a.copy() for a in arrays]


def _unchanged(before, *arrays):
    for b, a in zip(before, arrays):
        np.testing.assert_array_equal(a, b)


BAD = [float("nan"), float("inf"), 1e39]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("name", ["eta", "eps", "momentum", "rescale_grad", "clip_gradient"])
@pytest.mark.parametrize("sparse", [False, True])
def test_lars_rejects_bad_hyper_parameters(name, value, sparse):
    w, g = _data(12)
    w = w.reshape(4, 3)
    grad = (
        row_sparse_array((g.reshape(4, 3)[[1]], [1]), shape=(4, 3)) if sparse else g.reshape(4, 3)
    )
    opt = LARS(learning_rate=0.1, momentum=0.9)
    state = opt.create_state(0, w)
    setattr(opt, name, value)
    before = _snapshot(w, state)
    with pytest.raises(ValueError, match=name):
        opt.update(0, w, grad, state)
    _unchanged(before, w, state)


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize(
    "name",
    ["beta1", "beta2", "epsilon", "lower_bound", "upper_bound", "rescale_grad", "clip_gradient"],
)
def test_lamb_rejects_bad_hyper_parameters(name, value):
    w, g = _data(7)
    opt = LAMB()
    state = opt.create_state(0, w)
    setattr(opt, name, value)
    before = _snapshot(w, *state)
    with pytest.raises(ValueError, match=name):
        opt.update(0, w, g, state)
    _unchanged(before, w, *state)


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("name", ["momentum", "rescale_grad", "clip_gradient", "batch_scale"])
def test_lbsgd_rejects_bad_hyper_parameters(name, value):
    w, g = _data(7)
    opt = LBSGD(momentum=0.9)
    state = opt.create_state(0, w)
    setattr(opt, name, value)
    before = _snapshot(w, state)
    with pytest.raises(ValueError, match=name):
        opt.update(0, w, g, state)
    _unchanged(before, w, state)
    assert opt.cumgrads == {}


@pytest.mark.parametrize("value", BAD)
def test_bad_learning_rate_is_rejected_before_any_write(value):
    w, g = _data(7)
    for opt in (LARS(momentum=0.9), LAMB()):
        opt.lr = value
        weights = [w.copy(), w.copy()]
        states = [opt.create_state(i, x) for i, x in enumerate(weights)]
        flat = [s for st in states for s in (st if isinstance(st, tuple) else (st,))]
        before = _snapshot(*weights, *flat)
        with pytest.raises(ValueError, match="lr"):
            opt.update([0, 1], weights, [g, g], states)
        _unchanged(before, *weights, *flat)


def test_wrong_state_structures_are_rejected():
    w, g = _data(6)
    w16, g16 = w.astype(np.float16), g.astype(np.float16)
    cases = [
        (LARS(momentum=0.9), w, g, None),
        (LARS(momentum=0.9, multi_precision=True), w16, g16, np.zeros(6, np.float32)),
        (LAMB(), w, g, np.zeros(6, np.float32)),
        (LAMB(), w, g, (np.zeros(6, np.float32),)),
        (LAMB(multi_precision=True), w16, g16, (np.zeros(6, np.float32), np.zeros(6))),
        (LBSGD(momentum=0.9), w, g, (1, 2, 3)),
    ]
    for opt, weight, grad, state in cases:
        weight = weight.copy()
        before = weight.copy()
        with pytest.raises(TypeError, match="state"):
            opt.update_multi_precision(0, weight, grad, state)
        np.testing.assert_array_equal(weight, before)


def test_wrong_shapes_leave_every_array_unchanged():
    w, g = _data(6)
    for opt in (LARS(momentum=0.9), LAMB()):
        weights = [w.copy(), w.copy()]
        states = [opt.create_state(i, x) for i, x in enumerate(weights)]
        flat = [s for st in states for s in (st if isinstance(st, tuple) else (st,))]
        before = _snapshot(*weights, *flat)
        with pytest.raises(ValueError, match="grads"):
            opt.update([0, 1], weights, [g, g[:5]], states)
        _unchanged(before, *weights, *flat)


def test_registered_names():
    assert isinstance(create("lars"), LARS)
    assert isinstance(create("lamb"), LAMB)
    assert isinstance(create("lbsgd"), LBSGD)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "row_sparse"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf], ids=["inf", "-inf"])
def test_lars_rate_made_nan_by_an_infinite_weight_is_refused_before_writing(sparse, bad):
    opt = LARS(learning_rate=0.1, momentum=0.9, wd=0.01, eta=0.01)
    weights = [np.arange(1.0, 7.0, dtype=np.float32).reshape(3, 2) for _ in range(2)]
    weights[1][1, 0] = bad
    grads = [np.full((3, 2), 0.5, np.float32) for _ in range(2)]
    if sparse:
        grads = [row_sparse_array((g[:2], np.array([0, 2])), shape=(3, 2)) for g in grads]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    before = [a.copy() for a in weights + states]
    with pytest.raises(ValueError, match="trust ratio"):
        opt.update_multi_precision([0, 1], weights, grads, states)
    for a, b in zip(weights + states, before):
        np.testing.assert_array_equal(a, b)


def test_lbsgd_lars_warmup_rate_made_nan_by_an_infinite_weight_is_refused():
    opt = LBSGD(learning_rate=0.1, momentum=0.9, wd=0.01, warmup_strategy="lars")
    weight = np.array([np.inf, 1.0, 2.0], np.float32)
    state = opt.create_state(0, weight)
    with pytest.raises(ValueError, match="index 0: the learning rate scaled by the LARS trust"):
        opt.update(0, weight, np.ones(3, np.float32), state)
    np.testing.assert_array_equal(weight, [np.inf, 1.0, 2.0])
    # Nothing counted or accumulated: the refused call left the optimizer as it was.
    assert opt._index_update_count == {} and opt.num_update == 0 and opt.cumgrads == {}
