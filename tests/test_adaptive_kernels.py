"""RMSProp, FTML and Ftrl: the behaviour golden trajectories do not pin down, and bad input
(every rejected call leaves every array as it was)."""

import numpy as np
import pytest

import mxopt
from mxopt.lr_scheduler import FactorScheduler
from mxopt.optimizer import FTML, Ftrl, Optimizer, RMSProp, create
from mxopt.sparse import row_sparse_array

pytestmark = pytest.mark.filterwarnings("ignore:.*multi_precision:UserWarning")

MAKERS = {
    "rmsprop": lambda **kw: RMSProp(learning_rate=0.1, wd=0.01, **kw),
    "rmsprop_centered": lambda **kw: RMSProp(learning_rate=0.1, wd=0.01, centered=True, **kw),
    "ftml": lambda **kw: FTML(learning_rate=0.1, wd=0.01, **kw),
    "ftrl": lambda **kw: Ftrl(learning_rate=0.1, wd=0.01, **kw),
}
FLOAT32_ONLY = ["rmsprop", "rmsprop_centered", "ftrl"]


def _data(shape=(4, 3), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(dtype)
    g = (rng.standard_normal(shape) + np.sign(rng.standard_normal(shape))).astype(dtype)
    return w, g


def _expect_untouched(call, arrays, error, match):
    before = [a.copy() for a in arrays]
    with pytest.raises(error, match=match):
        call()
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def _flat(state):
    if isinstance(state, np.ndarray):
        return [state]
    return [a for s in state for a in _flat(s)] if isinstance(state, tuple) else []


# ---------------------------------------------------------------------------------------------
# construction, registry and states
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"), [("rmsprop", RMSProp), ("RMSProp", RMSProp), ("ftml", FTML), ("Ftrl", Ftrl)]
)
def test_registry(name, cls):
    assert type(create(name)) is cls
    assert isinstance(create(name), Optimizer)
    assert getattr(mxopt.optimizer, cls.__name__) is cls


def test_defaults():
    r = RMSProp()
    assert (r.lr, r.gamma1, r.gamma2, r.epsilon, r.centered, r.clip_weights) == (
        0.001,
        0.9,
        0.9,
        1e-8,
        False,
        None,
    )
    f = FTML()
    assert (f.lr, f.beta1, f.beta2, f.epsilon) == (0.01, 0.6, 0.999, 1e-8)
    t = Ftrl()
    assert (t.lr, t.lamda1, t.beta) == (0.1, 0.01, 1)


def test_rmsprop_states_are_float32_tuples():
    w = np.zeros((2, 3), np.float32)
    (n,) = RMSProp().create_state(0, w)  # a 1-tuple, as in MXNet
    assert n.dtype == np.float32 and n.shape == w.shape
    states = RMSProp(centered=True).create_state(0, w.astype(np.float64))
    assert len(states) == 3
    assert all(s.dtype == np.float32 and not s.any() for s in states)


def test_ftml_states_follow_the_weight_dtype():
    for dtype in (np.float16, np.float32, np.float64):
        states = FTML().create_state(0, np.zeros(3, dtype))
        assert len(states) == 3 and all(s.dtype == dtype for s in states)


def test_ftrl_states_are_float32():
    z, n = Ftrl().create_state(0, np.zeros(3, np.float64))
    assert z.dtype == n.dtype == np.float32


def test_multi_precision_state_is_master_then_state():
    w = np.ones(3, np.float16)
    master, (n,) = RMSProp(multi_precision=True).create_state_multi_precision(0, w)
    assert master.dtype == np.float32 and n.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# learning rates
# ---------------------------------------------------------------------------------------------


def test_rmsprop_default_lr_overrides_the_scheduler_base_lr():
    sched = FactorScheduler(step=10, base_lr=0.5)
    opt = RMSProp(lr_scheduler=sched)
    assert sched.base_lr == 0.001 and opt.learning_rate == 0.001


def test_ftrl_learning_rate_is_not_forwarded():
    sched = FactorScheduler(step=10, base_lr=0.5)
    opt = Ftrl(learning_rate=0.3, lr_scheduler=sched)
    assert sched.base_lr == 0.5  # untouched: the base class got learning_rate=None
    assert opt.lr == 0.3
    assert opt.learning_rate == 0.5  # the scheduler wins
    assert Ftrl(learning_rate=None).lr is None


def test_ftrl_uses_its_learning_rate_without_scheduler():
    w, g = _data()
    a, b = w.copy(), w.copy()
    Ftrl(learning_rate=0.3).update(0, a, g, Ftrl().create_state(0, a))
    Ftrl(learning_rate=0.01).update(0, b, g, Ftrl().create_state(0, b))
    opt = Ftrl()
    opt.lr = 0.3
    c = w.copy()
    opt.update(0, c, g, opt.create_state(0, c))
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# RMSProp specifics
# ---------------------------------------------------------------------------------------------


def _one_step(opt, w, g, steps=1):
    w = w.copy()
    state = opt.create_state(0, w)
    for _ in range(steps):
        opt.update(0, w, g, state)
    return w, state


@pytest.mark.parametrize("centered", [False, True])
def test_clip_weights_bounds_the_new_weight(centered):
    w, g = _data()
    w = w * 3
    clipped, _ = _one_step(RMSProp(learning_rate=0.1, centered=centered, clip_weights=0.5), w, g)
    assert np.abs(clipped).max() == np.float32(0.5)
    free, _ = _one_step(RMSProp(learning_rate=0.1, centered=centered), w, g)
    np.testing.assert_array_equal(clipped, np.clip(free, -0.5, 0.5))


@pytest.mark.parametrize("value", [0, 0.0, -1.0])
def test_clip_weights_zero_or_negative_does_not_clip(value):
    w, g = _data()
    w = w * 3
    a, _ = _one_step(RMSProp(learning_rate=0.1, clip_weights=value), w, g)
    b, _ = _one_step(RMSProp(learning_rate=0.1), w, g)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() > 1


def test_gamma2_matters_only_when_centered():
    w, g = _data()
    a, _ = _one_step(RMSProp(learning_rate=0.1, gamma2=0.1), w, g, steps=3)
    b, _ = _one_step(RMSProp(learning_rate=0.1, gamma2=0.7), w, g, steps=3)
    np.testing.assert_array_equal(a, b)
    a, _ = _one_step(RMSProp(learning_rate=0.1, gamma2=0.1, centered=True), w, g, steps=3)
    b, _ = _one_step(RMSProp(learning_rate=0.1, gamma2=0.7, centered=True), w, g, steps=3)
    assert not np.array_equal(a, b)


def test_centered_is_read_at_every_call():
    w, g = _data()
    opt = RMSProp(learning_rate=0.1)
    state = opt.create_state(0, w)
    opt.centered = True  # the 1-tuple no longer fits
    _expect_untouched(lambda: opt.update(0, w, g, state), [w, *state], TypeError, "state")
    opt.update(0, w, g, opt.create_state(0, w))


def test_rmsprop_centered_states_evolve():
    w, g = _data()
    _, (n, mean, delta) = _one_step(RMSProp(learning_rate=0.1, centered=True), w, g, steps=2)
    assert np.all(n > 0) and np.all(mean != 0) and np.all(delta != 0)
    np.testing.assert_array_less(mean * mean, n + 1e-6)


# ---------------------------------------------------------------------------------------------
# FTML specifics
# ---------------------------------------------------------------------------------------------


def test_ftml_depends_on_the_per_index_count():
    w, g = _data()
    opt = FTML(learning_rate=0.1)
    a, b = w.copy(), w.copy()
    sa, sb = opt.create_state(0, a), opt.create_state(1, b)
    opt.update(0, a, g, sa)
    opt.update(0, a, g, sa)  # index 0 at t = 2
    opt.update(1, b, g, sb)  # index 1 at t = 1
    first, _ = _one_step(FTML(learning_rate=0.1), w, g)
    np.testing.assert_array_equal(b, first)
    # begin_num_update shifts t: the first step then differs.
    later, _ = _one_step(FTML(learning_rate=0.1, begin_num_update=5), w, g)
    assert not np.array_equal(later, first)


def test_ftml_epsilon_reaches_float64_weights_at_full_precision():
    w = np.array([0.5, -1.0], np.float64)
    g = np.array([0.25, 2.0], np.float64)
    got, _ = _one_step(FTML(learning_rate=0.1, epsilon=0.1), w, g)
    lr, b1, b2 = (np.float64(np.float32(x)) for x in (0.1, 0.6, 0.999))
    v = (1 - b2) * (g * g)
    d = (1 - b1) / lr * (np.sqrt(v / (1 - b2)) + 0.1)  # 0.1 itself, not float32(0.1)
    z = (1 - b1) * g - d * w
    np.testing.assert_array_equal(got, -z / d)


def test_ftml_float16_without_multi_precision_computes_in_float16():
    w, g = _data(dtype=np.float16)
    with pytest.warns(UserWarning, match="multi_precision"):
        state = FTML().create_state_multi_precision(0, w)
    before = w.copy()
    FTML().update(0, w, g, state)
    assert w.dtype == np.float16 and np.all(w != before)
    assert all(s.dtype == np.float16 for s in state)


def test_ftml_zero_lr_gives_non_finite_weights_without_raising():
    w, g = _data()
    got, _ = _one_step(FTML(learning_rate=0.0), w, g)
    assert not np.isfinite(got).any()


# ---------------------------------------------------------------------------------------------
# Ftrl specifics
# ---------------------------------------------------------------------------------------------


def test_ftrl_large_lamda1_zeroes_the_weights():
    w, g = _data()
    got, (z, _) = _one_step(Ftrl(learning_rate=0.5, lamda1=1e6), w, g)
    assert not got.any()
    # Signed zeros: negative where sign(z)·λ1 - z < 0.
    np.testing.assert_array_equal(np.signbit(got), z < 0)


@pytest.mark.parametrize("name", ["rmsprop", "rmsprop_centered", "ftml", "ftrl"])
def test_row_sparse_gradient_updates_every_row(name):
    # No sparse kernel for a dense weight: MXNet densifies, so absent rows still move
    # (weight decay, and the states' history).
    w, g = _data((6, 3))
    rows = [1, 4]
    sparse = row_sparse_array((g[rows], rows), shape=g.shape)
    dense = np.zeros_like(g)
    dense[rows] = g[rows]
    make = MAKERS[name]
    opt_a, opt_b = make(), make()
    a, b = w.copy(), w.copy()
    sa, sb = opt_a.create_state(0, a), opt_b.create_state(0, b)
    for _ in range(2):
        opt_a.update(0, a, sparse, sa)
        opt_b.update(0, b, dense, sb)
    np.testing.assert_array_equal(a, b)
    for x, y in zip(_flat(sa), _flat(sb)):
        np.testing.assert_array_equal(x, y)
    if name != "ftrl":  # Ftrl's weight depends on z and n only: zero rows may stay put
        assert np.all(np.any(a != w, axis=1))


@pytest.mark.parametrize("name", list(MAKERS))
def test_multi_precision_follows_the_float32_update(name):
    w16, g16 = _data(dtype=np.float16)
    opt = MAKERS[name](multi_precision=True)
    w = w16.copy()
    state = opt.create_state_multi_precision(0, w)
    for _ in range(3):
        opt.update_multi_precision(0, w, g16, state)
    w32, _ = _one_step(MAKERS[name](), w16.astype(np.float32), g16.astype(np.float32), steps=3)
    np.testing.assert_array_equal(state[0], w32)
    np.testing.assert_array_equal(w, w32.astype(np.float16))


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FLOAT32_ONLY)
# float16 with multi_precision is the supported path (the master copy is float32).
@pytest.mark.parametrize(
    ("dtype", "multi_precision"),
    [(np.float16, False), (np.float64, False), (np.float64, True)],
)
def test_float32_state_optimizers_reject_other_weights(name, dtype, multi_precision):
    opt = MAKERS[name](multi_precision=multi_precision)
    w, g = _data(dtype=dtype)
    state = opt.create_state_multi_precision(0, w)
    call = lambda: opt.update_multi_precision(0, w, g, state)  # noqa: E731
    _expect_untouched(call, [w, *_flat(state)], TypeError, "weight.*float32")


def test_float32_state_optimizers_reject_other_weights_in_lists():
    opt = RMSProp()
    w1, g1 = _data()
    w2, g2 = _data(dtype=np.float64)
    s1, s2 = opt.create_state(0, w1), opt.create_state(1, w2)
    call = lambda: opt.update([0, 1], [w1, w2], [g1, g2], [s1, s2])  # noqa: E731
    _expect_untouched(call, [w1, w2, *s1, *s2], TypeError, "weight.*position 1")


HYPER = {
    "rmsprop": ["gamma1", "epsilon", "clip_weights"],
    "rmsprop_centered": ["gamma1", "gamma2", "epsilon", "clip_weights"],
    "ftml": ["beta1", "beta2", "epsilon"],
    "ftrl": ["lamda1", "beta"],
}
COMMON = ["lr", "wd", "rescale_grad", "clip_gradient"]


@pytest.mark.parametrize(
    ("name", "param"), [(n, p) for n, params in HYPER.items() for p in [*params, *COMMON]]
)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e39])
def test_non_finite_hyper_parameters_are_rejected(name, param, value):
    if value == -float("inf") and param in ("clip_gradient", "clip_weights"):
        value = float("nan")  # a negative bound just disables the clip; NaN must not
    opt = MAKERS[name]()
    w, g = _data()
    state = opt.create_state(0, w)
    setattr(opt, param, value)
    expected = param
    call = lambda: opt.update(0, w, g, state)  # noqa: E731
    _expect_untouched(call, [w, *_flat(state)], ValueError, f"{expected} must be finite")


@pytest.mark.parametrize("name", ["rmsprop", "rmsprop_centered", "ftml", "ftrl"])
def test_non_finite_multipliers_are_rejected(name):
    opt = MAKERS[name]()
    with pytest.raises(ValueError, match=r"lr_mult\[0\] must be finite"):
        opt.set_lr_mult({0: float("nan")})
    opt.lr_mult[0] = float("nan")  # behind the optimizer's back: the kernel refuses it
    w, g = _data()
    state = opt.create_state(0, w)
    call = lambda: opt.update(0, w, g, state)  # noqa: E731
    _expect_untouched(call, [w, *_flat(state)], ValueError, "lr must be finite")


def _bad_states(name, w):
    f32 = np.zeros(w.shape, np.float32)
    n = {"rmsprop": 1, "rmsprop_centered": 3, "ftml": 3, "ftrl": 2}[name]
    return [
        (f32, TypeError, "state"),  # a bare array, not a tuple
        ((f32,) * (n + 1), TypeError, "state"),  # one array too many
        ((f32,) * (n - 1) if n > 1 else (), TypeError, "state"),  # one too few
        (None, TypeError, "state"),
        (tuple(np.zeros(5, np.float32) for _ in range(n)), ValueError, "state"),  # shape
        (tuple(np.zeros(w.shape, np.float64) for _ in range(n)), TypeError, "state"),  # dtype
    ]


@pytest.mark.parametrize("name", list(MAKERS))
def test_wrong_state_objects_are_rejected(name):
    opt = MAKERS[name]()
    w, g = _data()
    for state, error, match in _bad_states(name, w):
        _expect_untouched(lambda: opt.update(0, w, g, state), [w, *_flat(state)], error, match)  # noqa: B023


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_aliasing_the_weight_is_rejected(name):
    opt = MAKERS[name]()
    w, g = _data()
    state = list(opt.create_state(0, w))
    state[-1] = w
    _expect_untouched(lambda: opt.update(0, w, g, tuple(state)), [w], ValueError, "memory")


@pytest.mark.parametrize("name", list(MAKERS))
def test_gradient_of_wrong_shape_or_dtype_is_rejected(name):
    opt = MAKERS[name]()
    w, g = _data()
    state = opt.create_state(0, w)
    arrays = [w, *_flat(state)]
    _expect_untouched(lambda: opt.update(0, w, g.T.copy(), state), arrays, ValueError, "grad")
    g64 = g.astype(np.float64)
    _expect_untouched(lambda: opt.update(0, w, g64, state), arrays, TypeError, "grad")


@pytest.mark.parametrize("name", list(MAKERS))
def test_multi_precision_state_without_master_is_rejected(name):
    opt = MAKERS[name](multi_precision=True)
    w, g = _data(dtype=np.float16)
    state = opt.create_state(0, w.astype(np.float32))  # the inner state alone
    call = lambda: opt.update_multi_precision(0, w, g, state)  # noqa: E731
    _expect_untouched(call, [w, *_flat(state)], TypeError, "state")
