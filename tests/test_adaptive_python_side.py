"""Adamax, Nadam, AdaGrad and AdaDelta: the behaviour MXNet 1.6 gives these Python-side
optimizers beyond one tensor's maths (Nadam's shared schedule, AdaGrad's sparse kernel,
AdaDelta's missing learning rate, Adamax's NaN), and bad input: a clear exception naming
the culprit, with every array left exactly as it was."""

import pickle

import numpy as np
import pytest

from mxopt.lr_scheduler import FactorScheduler
from mxopt.optimizer import AdaDelta, AdaGrad, Adamax, Nadam, create
from mxopt.sparse import row_sparse_array

NAMES = ["adamax", "nadam", "adagrad", "adadelta"]


def _data(shape=(4, 3), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    return w, g


def _snapshot(*items):
    """Copies of every array in ``items`` (nested tuples and lists included)."""
    arrays = []
    for item in items:
        if isinstance(item, np.ndarray):
            arrays.append(item)
        elif isinstance(item, (tuple, list)):
            arrays.extend(a for a in _snapshot(*item)[0])
    return arrays, [a.copy() for a in arrays]


def _expect_untouched(call, items, error, match):
    arrays, before = _snapshot(*items)
    with pytest.raises(error, match=match):
        call()
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- Nadam


def _momentum(t, beta1=0.9, schedule_decay=0.004):
    return beta1 * (1.0 - 0.5 * 0.96 ** (t * schedule_decay))


def test_nadam_schedule_is_shared_by_every_index():
    opt = Nadam(learning_rate=0.1)
    w0, g0 = _data(seed=0)
    w1, g1 = _data(seed=1)
    opt.update(0, w0, g0, opt.create_state(0, w0))
    alone = Nadam(learning_rate=0.1)
    w1_alone = w1.copy()
    opt.update(1, w1, g1, opt.create_state(1, w1))
    alone.update(1, w1_alone, g1, alone.create_state(1, w1_alone))
    # Index 1's first step sees the schedule after index 0's factor too.
    assert opt.m_schedule == _momentum(1) * _momentum(1)
    assert alone.m_schedule == _momentum(1)
    assert not np.array_equal(w1, w1_alone)


def test_nadam_list_call_advances_the_schedule_in_list_order():
    data = [_data(seed=s) for s in range(3)]
    order = [2, 0, 1]
    listed, single = Nadam(learning_rate=0.1), Nadam(learning_rate=0.1)
    weights = [data[i][0].copy() for i in order]
    states = [listed.create_state(i, w) for i, w in zip(order, weights)]
    one_weights = [data[i][0].copy() for i in order]
    one_states = [single.create_state(i, w) for i, w in zip(order, one_weights)]
    # Index 0 has already been updated once: its factor is μ(2), the others' μ(1).
    for opt, w in ((listed, weights[1]), (single, one_weights[1])):
        opt.update(0, w, data[0][1], opt.create_state(0, w.copy()))
    listed.update(order, weights, [data[i][1] for i in order], states)
    for i, w, s in zip(order, one_weights, one_states):
        single.update(i, w, data[i][1], s)
    assert listed.m_schedule == single.m_schedule
    assert listed.m_schedule == _momentum(1) * _momentum(1) * _momentum(2) * _momentum(1)
    for got, expected in zip(weights, one_weights):
        np.testing.assert_array_equal(got, expected)


def test_nadam_schedule_is_pickled_with_the_optimizer():
    opt = Nadam(learning_rate=0.1)
    w, g = _data()
    state = opt.create_state(0, w)
    for _ in range(3):
        opt.update(0, w, g, state)
    copy = pickle.loads(pickle.dumps(opt))
    assert copy.m_schedule == opt.m_schedule
    w2, state2 = w.copy(), tuple(s.copy() for s in state)
    opt.update(0, w, g, state)
    copy.update(0, w2, g, state2)
    np.testing.assert_array_equal(w, w2)


# --------------------------------------------------------------------------- AdaGrad


def _sparse(g, rows):
    return row_sparse_array((g[rows], rows), shape=g.shape)


def test_adagrad_sparse_gradient_with_weight_decay_is_refused_before_any_write():
    opt = AdaGrad(learning_rate=0.1, wd=0.01)
    w0, g0 = _data(seed=0)
    w1, g1 = _data(seed=1)
    states = [opt.create_state(0, w0), opt.create_state(1, w1)]
    grads = [g0, _sparse(g1, [1, 3])]
    call = lambda: opt.update([0, 1], [w0, w1], grads, states)  # noqa: E731
    _expect_untouched(call, [w0, w1, states, g1, grads[1].data], ValueError, "wd")


def test_adagrad_sparse_gradient_updates_only_its_rows_without_weight_decay():
    opt = AdaGrad(learning_rate=0.1, wd=0.01)
    opt.set_wd_mult({0: 0.0})
    w, g = _data((6, 3))
    before, state = w.copy(), opt.create_state(0, w)
    opt.update(0, w, _sparse(g, [1, 4]), state)
    changed = np.any(w != before, axis=1)
    assert changed.tolist() == [r in (1, 4) for r in range(6)]
    assert np.all(state[[0, 2, 3, 5]] == 0)


def test_adagrad_sparse_kernel_clips_only_for_a_positive_bound():
    # The sparse kernel ignores clip_gradient=0 (MXNet does not pass it); the dense
    # Python-side path zeroes the gradient.
    w, g = _data((3, 2))
    runs = {}
    for sparse in (True, False):
        opt = AdaGrad(learning_rate=0.1, clip_gradient=0.0)
        weight, state = w.copy(), opt.create_state(0, w)
        opt.update(0, weight, _sparse(g, [0, 1, 2]) if sparse else g, state)
        runs[sparse] = weight
    assert np.all(runs[True] != w)
    np.testing.assert_array_equal(runs[False], w)


def test_adagrad_negative_clip_scrambles_the_dense_gradient():
    # pyclip with c = -1: every x > -1 becomes -1, every x < 1 (the rest) becomes 1.
    g = np.array([0.5, -0.5, 3.0, -3.0], np.float32)
    scrambled = np.array([-1.0, -1.0, -1.0, 1.0], np.float32)
    w = np.ones(4, np.float32)
    results = []
    for grad, clip in ((g, -1.0), (scrambled, None)):
        opt = AdaGrad(learning_rate=0.1, clip_gradient=clip)
        weight = w.copy()
        opt.update(0, weight, grad, opt.create_state(0, weight))
        results.append(weight)
    np.testing.assert_array_equal(results[0], results[1])


# -------------------------------------------------------------------------- AdaDelta


class _CountingScheduler(FactorScheduler):
    def __init__(self):
        super().__init__(step=1, factor=0.5, base_lr=3.0)
        self.calls = 0

    def __call__(self, num_update):
        self.calls += 1
        return super().__call__(num_update)


def test_adadelta_ignores_learning_rate_and_never_calls_the_scheduler():
    w, g = _data()
    plain = AdaDelta(wd=0.01)
    scheduler = _CountingScheduler()
    busy = AdaDelta(wd=0.01, learning_rate=3.0, lr_scheduler=scheduler)
    busy.set_lr_mult({0: 7.0})
    weights = [w.copy(), w.copy()]
    states = [plain.create_state(0, w), busy.create_state(0, w)]
    for _ in range(3):
        plain.update(0, weights[0], g, states[0])
        busy.update(0, weights[1], g, states[1])
    np.testing.assert_array_equal(weights[0], weights[1])
    assert scheduler.calls == 0
    assert busy._index_update_count[0] == 3


def test_adadelta_leaves_the_callers_gradient_alone():
    # MXNet rescales the gradient in place; mxopt does not.
    opt = AdaDelta(rescale_grad=0.5)
    w, g = _data()
    g_before = g.copy()
    opt.update(0, w, g, opt.create_state(0, w))
    np.testing.assert_array_equal(g, g_before)


# ---------------------------------------------------------------------------- Adamax


def test_adamax_zero_gradient_at_the_first_step_is_nan():
    opt = Adamax()
    w = np.ones(3, np.float32)
    g = np.array([0.5, 0.0, -0.25], np.float32)
    opt.update(0, w, g, opt.create_state(0, w))
    assert np.isnan(w).tolist() == [False, True, False]


def test_adamax_zero_clip_makes_every_coordinate_nan():
    opt = Adamax(clip_gradient=0.0)
    w, g = _data()
    opt.update(0, w, g, opt.create_state(0, w))
    assert np.all(np.isnan(w))


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("cls", [AdaGrad, AdaDelta])
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float32_state_optimizers_refuse_other_weight_dtypes(cls, dtype):
    opt = cls()
    w, g = _data(dtype=dtype)
    state = opt.create_state(0, w)
    call = lambda: opt.update(0, w, g, state)  # noqa: E731
    _expect_untouched(call, [w, g, state], TypeError, "weight")


@pytest.mark.parametrize("cls", [AdaGrad, AdaDelta])
def test_float32_state_optimizers_refuse_other_dtypes_inside_a_list(cls):
    opt = cls()
    w32, g32 = _data()
    w64, g64 = _data(dtype=np.float64)
    states = [opt.create_state(0, w32), opt.create_state(1, w64)]
    call = lambda: opt.update([0, 1], [w32, w64], [g32, g64], states)  # noqa: E731
    _expect_untouched(call, [w32, w64, states], TypeError, "weight")


HYPER = [
    ("adamax", "beta1"),
    ("adamax", "beta2"),
    ("nadam", "beta1"),
    ("nadam", "beta2"),
    ("nadam", "epsilon"),
    ("adagrad", "eps"),
    ("adadelta", "rho"),
    ("adadelta", "epsilon"),
] + [(name, common) for name in NAMES for common in ("rescale_grad", "clip_gradient", "wd")]
BAD = [float("nan"), float("inf"), -float("inf"), 1e39]


@pytest.mark.parametrize(("name", "key"), HYPER)
@pytest.mark.parametrize("value", BAD)
def test_non_finite_hyper_parameters_are_named(name, key, value):
    opt = create(name)
    w, g = _data()
    state = opt.create_state(0, w)
    setattr(opt, "float_stable_eps" if key == "eps" else key, value)
    # AdaGrad's kernel calls its eps ``epsilon``.
    match = "epsilon" if key == "eps" else key
    call = lambda: opt.update(0, w, g, state)  # noqa: E731
    _expect_untouched(call, [w, g, state], ValueError, match)


@pytest.mark.parametrize("name", ["adamax", "nadam", "adagrad"])
@pytest.mark.parametrize("value", BAD)
def test_non_finite_learning_rates_are_named(name, value):
    opt = create(name)
    opt.lr = value  # the constructor refuses NaN and infinity itself; 1e39 is finite in f64
    w, g = _data()
    state = opt.create_state(0, w)
    _expect_untouched(lambda: opt.update(0, w, g, state), [w, g, state], ValueError, "lr")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nadam_bad_schedule_decay_is_named_and_leaves_the_schedule_alone(value):
    opt = Nadam(schedule_decay=value)
    w, g = _data()
    state = opt.create_state(0, w)
    call = lambda: opt.update(0, w, g, state)  # noqa: E731
    _expect_untouched(call, [w, g, state], ValueError, "schedule_decay")
    assert opt.m_schedule == 1.0


def _wrong_states(name, w):
    """State objects of the wrong structure for optimizer ``name`` on weight ``w``."""
    one = np.zeros_like(w, dtype=np.float32)
    if name == "adagrad":
        return [(one,), (one, one.copy()), None, [one]]
    return [one, (one,), (one, one.copy(), one.copy()), None, [one, one.copy()]]


@pytest.mark.parametrize("name", NAMES)
def test_wrong_state_structures_are_refused(name):
    opt = create(name)
    w, g = _data()
    for state in _wrong_states(name, w):
        call = lambda state=state: opt.update(0, w, g, state)  # noqa: E731
        _expect_untouched(call, [w, g, state], TypeError, "state")


@pytest.mark.parametrize("name", NAMES)
def test_wrong_state_shapes_and_dtypes_are_refused(name):
    opt = create(name)
    w, g = _data()
    good = opt.create_state(0, w)
    arrays = good if isinstance(good, tuple) else (good,)
    for bad in (np.zeros(5, np.float32), np.zeros(w.shape, np.float64)):
        state = (bad, *arrays[1:]) if isinstance(good, tuple) else bad
        error = ValueError if bad.dtype == np.float32 else TypeError
        call = lambda state=state: opt.update(0, w, g, state)  # noqa: E731
        _expect_untouched(call, [w, g, state], error, "state")


@pytest.mark.parametrize("name", NAMES)
def test_multi_precision_state_must_hold_the_master_copy(name):
    opt = create(name, multi_precision=True)
    w, g = _data(dtype=np.float16)
    inner = opt.create_state(0, w.astype(np.float32))
    call = lambda: opt.update_multi_precision(0, w, g, inner)  # noqa: E731
    # (A 2-tuple state passes as (master, inner) and then fails the inner check.)
    _expect_untouched(call, [w, g, inner], TypeError, "state")


@pytest.mark.parametrize("name", NAMES)
def test_gradient_of_the_wrong_shape_is_refused(name):
    opt = create(name)
    w, _ = _data()
    g = np.ones((3, 4), np.float32)
    state = opt.create_state(0, w)
    _expect_untouched(lambda: opt.update(0, w, g, state), [w, g, state], ValueError, "grad")
