"""Optimizer base class: constructor, registry, lr/wd rules, counting, MP fallback, pickling."""

import pickle
import warnings

import numpy as np
import pytest

from mxopt.lr_scheduler import FactorScheduler, MultiFactorScheduler
from mxopt.optimizer import base
from mxopt.optimizer.base import NDabs, Optimizer, _aggregation_size_from_env, create, register
from mxopt.sparse import row_sparse_array


class MomentumSGD(Optimizer):
    """Pure-Python optimizer used to exercise the base-class machinery."""

    def create_state(self, index, weight):
        return np.zeros_like(weight)

    def update(self, index, weight, grad, state):
        self._update_count(index)
        lr, wd = self._get_lr(index), self._get_wd(index)
        if hasattr(grad, "todense"):
            grad = grad.todense()
        state[...] = 0.9 * state + grad * self.rescale_grad
        weight[...] = weight - lr * (state + wd * weight)


class Multipliers:
    """Stand-in for a Gluon Parameter: live lr_mult / wd_mult attributes."""

    def __init__(self, lr_mult, wd_mult):
        self.lr_mult, self.wd_mult = lr_mult, wd_mult


class FakeSymbol:
    def __init__(self, attrs, args):
        self._attrs, self._args = attrs, args

    def attr_dict(self):
        return self._attrs

    def list_arguments(self):
        return self._args


class RecordingScheduler(FactorScheduler):
    def __init__(self, **kwargs):
        super().__init__(step=1000, **kwargs)
        self.calls = []

    def __call__(self, num_update):
        self.calls.append(num_update)
        return super().__call__(num_update)


@pytest.fixture
def clean_registry():
    saved = dict(Optimizer.opt_registry)
    yield Optimizer.opt_registry
    Optimizer.opt_registry.clear()
    Optimizer.opt_registry.update(saved)


# ------------------------------------------------------------------------------ constructor


def test_constructor_defaults():
    opt = Optimizer()
    assert opt.rescale_grad == 1.0
    assert opt.lr == 0.01 and opt.lr_scheduler is None and opt.learning_rate == 0.01
    assert opt.wd == 0.0 and opt.clip_gradient is None and opt.multi_precision is False
    assert opt.lr_mult == {} and opt.wd_mult == {}
    assert opt.begin_num_update == 0 and opt.num_update == 0
    assert opt._all_index_update_counts == {0: {}}
    assert opt._index_update_count is opt._all_index_update_counts[0]
    assert opt.aggregate_num == 0
    assert opt.idx2name == {} and opt.sym_info == () and opt.param_dict == {}


def test_constructor_positional_order():
    sched = FactorScheduler(step=5, base_lr=0.3)
    param_dict = {0: Multipliers(1.0, 1.0)}
    opt = Optimizer(2.0, {0: "a_weight"}, 0.1, 5.0, 0.3, sched, None, 7, True, param_dict)
    assert opt.rescale_grad == 2.0
    assert opt.idx2name == {0: "a_weight"}
    assert opt.wd == 0.1
    assert opt.clip_gradient == 5.0
    assert opt.lr == 0.3
    assert opt.lr_scheduler is sched
    assert opt.sym_info == ()
    assert opt.begin_num_update == 7 and opt.num_update == 7
    assert opt.multi_precision is True
    assert opt.param_dict is param_dict


def test_scheduler_without_learning_rate_keeps_lr_none(capsys):
    sched = FactorScheduler(step=2, base_lr=0.2)
    opt = Optimizer(lr_scheduler=sched)
    assert opt.lr is None
    assert sched.base_lr == 0.2
    assert opt.learning_rate == 0.2
    assert capsys.readouterr().out == ""


def test_learning_rate_overwrites_scheduler_and_prints(capsys):
    sched = FactorScheduler(step=2, base_lr=0.2, warmup_steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a print, not a warning
        opt = Optimizer(learning_rate=0.5, lr_scheduler=sched)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "learning_rate" in out and "lr_scheduler" in out
    assert sched.base_lr == 0.5 and opt.lr == 0.5
    assert sched.warmup_final_lr == 0.2  # nothing else in the scheduler changes


def test_equal_learning_rate_prints_nothing(capsys):
    sched = FactorScheduler(step=2, base_lr=0.5)
    Optimizer(learning_rate=0.5, lr_scheduler=sched)
    assert capsys.readouterr().out == ""


def test_param_idx2name_is_copied_and_must_be_dict():
    names = {0: "fc_weight"}
    opt = Optimizer(param_idx2name=names)
    names[1] = "fc_bias"
    assert opt.idx2name == {0: "fc_weight"}
    with pytest.raises(AssertionError):
        Optimizer(param_idx2name=[(0, "fc_weight")])


def test_param_dict_is_shared_but_empty_is_replaced():
    empty = {}
    assert Optimizer(param_dict=empty).param_dict is not empty
    full = {0: Multipliers(2.0, 3.0)}
    assert Optimizer(param_dict=full).param_dict is full


def test_sym_object_and_dict_forms():
    attrs = {"a": {"__lr_mult__": "2", "__wd_mult__": "0.5"}, "b": {"__lr_mult__": "3"}}
    from_object = Optimizer(sym=FakeSymbol(attrs, ["a", "b", "c"]))
    assert from_object.sym_info == (attrs, ["a", "b", "c"])
    assert from_object.lr_mult == {"a": 2.0, "b": 3.0}
    assert from_object.wd_mult == {"a": 0.5}
    from_dict = Optimizer(sym=attrs)
    assert from_dict.sym_info == (attrs, ["a", "b"])
    assert from_dict.lr_mult == from_object.lr_mult and from_dict.wd_mult == from_object.wd_mult


def test_constructor_calls_overridable_multiplier_setters():
    class OnlyWeightsDecay(Optimizer):
        def set_wd_mult(self, args_wd_mult):
            self.wd_mult = {n: 0.0 for n in self.idx2name.values() if not n.endswith("_weight")}
            self.wd_mult.update(args_wd_mult)

    opt = OnlyWeightsDecay(param_idx2name={0: "a_weight", 1: "a_gamma"}, wd=1.0)
    assert opt._get_wds([0, 1]) == [1.0, 0.0]


# ---------------------------------------------------------------------------------- registry


def test_register_and_create(clean_registry):
    @register
    class MyOpt(Optimizer):
        def __init__(self, alpha=1.0, **kwargs):
            super().__init__(**kwargs)
            self.alpha = alpha

    assert clean_registry["myopt"] is MyOpt
    assert Optimizer.register is register and base.create is Optimizer.create_optimizer
    opt = create("MyOpT", alpha=3.0, learning_rate=0.2)
    assert isinstance(opt, MyOpt) and opt.alpha == 3.0 and opt.lr == 0.2
    assert isinstance(Optimizer.create_optimizer("myopt"), MyOpt)
    with pytest.raises(TypeError):
        create("myopt", not_an_argument=1)


def test_register_override_warns_and_replaces(clean_registry):
    class Dup(Optimizer):
        pass

    first = Dup
    register(first)

    class Dup(Optimizer):
        pass

    with pytest.warns(UserWarning) as record:
        assert register(Dup) is Dup
    message = str(record[0].message)
    assert message.count(f"{__name__}.Dup") == 2
    assert clean_registry["dup"] is Dup


def test_register_rejects_non_class():
    with pytest.raises(AssertionError):
        register(MomentumSGD())


def test_create_unknown_name_raises_value_error():
    with pytest.raises(ValueError, match="NoSuchOpt"):
        create("NoSuchOpt")


def test_registry_is_shared_class_attribute():
    assert MomentumSGD.opt_registry is Optimizer.opt_registry


# ----------------------------------------------------------------------------- learning rate


def test_learning_rate_property_is_read_only_and_calls_scheduler():
    sched = RecordingScheduler(base_lr=0.1)
    opt = Optimizer(lr_scheduler=sched, begin_num_update=4)
    assert opt.learning_rate == 0.1
    assert sched.calls == [4]
    with pytest.raises(AttributeError):
        opt.learning_rate = 0.5


def test_learning_rate_property_advances_stateful_scheduler():
    sched = FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    opt = Optimizer(lr_scheduler=sched, begin_num_update=3)
    assert opt.learning_rate == 0.25
    assert sched.count == 2


def test_set_learning_rate():
    opt = Optimizer()
    opt.set_learning_rate(0.7)
    assert opt.lr == 0.7 and opt.learning_rate == 0.7
    with_scheduler = Optimizer(lr_scheduler=FactorScheduler(step=1))
    with pytest.raises(UserWarning, match="set_learning_rate"):
        with_scheduler.set_learning_rate(0.7)


def test_set_lr_scale_raises_deprecation_warning():
    with pytest.raises(DeprecationWarning):
        Optimizer().set_lr_scale({0: 2.0})


# ------------------------------------------------------------------------------ multipliers


def test_worked_example_from_spec():
    opt = Optimizer(
        wd=1,
        param_idx2name={0: "a_weight", 1: "b_bias", 2: "c_gamma", 3: "d"},
        param_dict={0: Multipliers(lr_mult=5, wd_mult=6)},
        learning_rate=1,
    )
    opt.set_lr_mult({1: 2.0, "c_gamma": 3.0, 0: 100.0})
    opt.set_wd_mult({"d": 7.0})
    assert opt._get_lrs([0, 1, 2, 3, 4, "c_gamma"]) == [5, 2, 3, 1, 1, 3]
    assert opt._get_wds([0, 1, 2, 3, 4, "b_bias"]) == [6, 0, 1, 7, 1, 0]
    assert opt._get_lr(0) == 5 and opt._get_wd(3) == 7


def test_wd_mult_defaults_need_idx2name():
    named = Optimizer(param_idx2name={0: "x_weight", 1: "x_gamma", 2: "x_bias", 3: "x_beta"})
    assert named.wd_mult == {"x_bias": 0.0, "x_beta": 0.0}
    assert Optimizer(wd=0.5)._get_wds([0, "x_bias"]) == [0.5, 0.5]


def test_multiplier_precedence_sym_then_args():
    attrs = {"w": {"__wd_mult__": "2", "__lr_mult__": "4"}, "b": {"__wd_mult__": "3"}}
    opt = Optimizer(param_idx2name={0: "w", 1: "b"}, sym=attrs)
    assert opt.wd_mult == {"w": 2.0, "b": 3.0}  # symbol attribute beats the suffix default
    opt.set_wd_mult({"b": 9.0})
    assert opt.wd_mult == {"w": 2.0, "b": 9.0}
    opt.set_lr_mult({})
    assert opt.lr_mult == {"w": 4.0}
    opt.set_lr_mult({0: 0.5})
    assert opt.lr_mult == {"w": 4.0, 0: 0.5}


def test_set_lr_mult_rebuilds_from_scratch():
    opt = Optimizer()
    opt.set_lr_mult({0: 2.0})
    opt.set_lr_mult({1: 3.0})
    assert opt.lr_mult == {1: 3.0}


def test_param_dict_values_are_read_live():
    param = Multipliers(lr_mult=2.0, wd_mult=1.0)
    opt = Optimizer(learning_rate=0.5, wd=0.25, param_dict={"p": param})
    assert opt._get_lrs(["p"]) == [1.0]
    param.lr_mult, param.wd_mult = 4.0, 2.0
    assert opt._get_lrs(["p"]) == [2.0] and opt._get_wds(["p"]) == [0.5]


def test_get_lrs_calls_scheduler_once_per_call():
    sched = RecordingScheduler(base_lr=0.1)
    opt = Optimizer(lr_scheduler=sched)
    assert opt._get_lrs([0, 1, 2]) == [0.1, 0.1, 0.1]
    assert sched.calls == [0]


# --------------------------------------------------------------------------------- counting


def test_update_count_per_index_and_max():
    opt = Optimizer(begin_num_update=10)
    opt._update_count(0)
    assert opt._index_update_count == {0: 11} and opt.num_update == 11
    opt._update_count([0, 1])
    opt._update_count((0,))
    assert opt._index_update_count == {0: 13, 1: 11} and opt.num_update == 13


def test_update_count_per_device():
    opt = Optimizer()
    opt._update_count(0)
    opt._set_current_context(1)
    assert opt._index_update_count == {}
    opt._update_count(0)
    opt._update_count(0)
    assert opt._all_index_update_counts == {0: {0: 1}, 1: {0: 2}}
    assert opt.num_update == 2
    opt._set_current_context(0)
    assert opt._index_update_count == {0: 1}


def test_scheduler_first_call_is_begin_num_update_plus_one():
    sched = RecordingScheduler(base_lr=0.1)
    opt = MomentumSGD(lr_scheduler=sched, begin_num_update=10)
    weight = np.ones(2, np.float32)
    state = opt.create_state(0, weight)
    opt.update(0, weight, np.ones(2, np.float32), state)
    opt.update(0, weight, np.ones(2, np.float32), state)
    assert sched.calls == [11, 12]


def test_multifactor_driven_by_counted_updates():
    opt = MomentumSGD(lr_scheduler=MultiFactorScheduler(step=[1], factor=0.5, base_lr=1.0))
    weight, grad = np.zeros(1), np.ones(1)
    state = opt.create_state(0, weight)
    opt.update(0, weight, grad, state)  # num_update 1: lr 1
    opt.update(0, weight, grad, state)  # num_update 2: lr 0.5
    assert weight[0] == -(1.0 * 1.0) - 0.5 * 1.9


# --------------------------------------------------------------------------- states, updates


def test_base_state_and_update_hooks():
    opt = Optimizer()
    weight = np.ones(3, np.float32)
    assert opt.create_state(0, weight) is None
    with pytest.raises(NotImplementedError):
        opt.update(0, weight, weight, None)
    with pytest.raises(NotImplementedError):
        opt.update_multi_precision(0, weight, weight, None)


def test_create_state_multi_precision_float16_master_copy():
    opt = MomentumSGD(multi_precision=True)
    weight = np.array([1.0, 2.5, -3.0], np.float16)
    master, inner = opt.create_state_multi_precision(0, weight)
    assert master.dtype == np.float32 and inner.dtype == np.float32
    assert np.array_equal(master, weight.astype(np.float32))
    assert not np.shares_memory(master, weight)


def test_create_state_float16_without_multi_precision_warns():
    opt = MomentumSGD()
    with pytest.warns(UserWarning, match="multi_precision"):
        state = opt.create_state_multi_precision(0, np.ones(2, np.float16))
    assert state.dtype == np.float16


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multi_precision_ignored_for_wider_dtypes(dtype):
    opt = MomentumSGD(multi_precision=True)
    weight = np.ones(2, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = opt.create_state_multi_precision(0, weight)
    assert isinstance(state, np.ndarray) and state.dtype == dtype
    opt.update_multi_precision(0, weight, np.ones(2, dtype), state)
    assert weight.dtype == dtype and weight[0] == dtype(1 - 0.01)


def test_update_multi_precision_fallback_updates_master_and_writes_back():
    seen = {}

    class Recording(MomentumSGD):
        def update(self, index, weight, grad, state):
            seen["dtypes"] = (weight.dtype, grad.dtype, state.dtype)
            super().update(index, weight, grad, state)

    opt = Recording(multi_precision=True, learning_rate=0.1)
    rng = np.random.default_rng(0)
    weight = rng.standard_normal(64).astype(np.float16)
    original = weight
    state = opt.create_state_multi_precision(0, weight)
    grad = rng.standard_normal(64).astype(np.float16)
    for _ in range(3):
        opt.update_multi_precision(0, weight, grad, state)
    assert seen["dtypes"] == (np.float32, np.float32, np.float32)
    assert weight is original and weight.dtype == np.float16
    assert np.array_equal(weight, state[0].astype(np.float16))


def test_update_multi_precision_matches_hand_emulation():
    opt = MomentumSGD(multi_precision=True, learning_rate=0.1, wd=0.01)
    rng = np.random.default_rng(1)
    start = rng.standard_normal(32).astype(np.float16)
    grads = [rng.standard_normal(32).astype(np.float16) for _ in range(4)]
    weight = start.copy()
    state = opt.create_state_multi_precision(3, weight)
    for grad in grads:
        opt.update_multi_precision(3, weight, grad, state)

    w32, mom = start.astype(np.float32), np.zeros(32, np.float32)
    for grad in grads:
        mom = 0.9 * mom + grad.astype(np.float32)
        w32 = w32 - 0.1 * (mom + 0.01 * w32)
    assert np.array_equal(state[0], w32) and np.array_equal(state[1], mom)
    assert np.array_equal(weight, w32.astype(np.float16))
    assert not np.array_equal(weight.astype(np.float32), w32)  # rounding really happened


def test_update_multi_precision_accepts_row_sparse_grad():
    opt = MomentumSGD(multi_precision=True, learning_rate=1.0)
    weight = np.zeros((3, 2), np.float16)
    state = opt.create_state_multi_precision(0, weight)
    grad = row_sparse_array((np.ones((1, 2), np.float16), [1]), shape=(3, 2))
    opt.update_multi_precision(0, weight, grad, state)
    assert weight.tolist() == [[0, 0], [-1, -1], [0, 0]]


# --------------------------------------------------------------------------------- pickling


def test_pickle_drops_param_dict_and_keeps_everything_else():
    sched = FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    opt = MomentumSGD(
        lr_scheduler=sched, param_idx2name={0: "w_bias"}, param_dict={0: Multipliers(1, 1)}
    )
    opt.set_lr_mult({0: 3.0})
    opt._update_count([0, 1, 1])
    sched(4)
    clone = pickle.loads(pickle.dumps(opt))
    assert clone.param_dict == {}
    assert "param_dict" not in opt.__getstate__()
    assert opt.param_dict  # the original keeps its own
    assert clone.lr_mult == {0: 3.0} and clone.wd_mult == {"w_bias": 0.0}
    assert clone._all_index_update_counts == {0: {0: 1, 1: 2}} and clone.num_update == 2
    assert clone.lr_scheduler.base_lr == 0.125 and clone.lr_scheduler.count == 3
    assert clone._index_update_count is clone._all_index_update_counts[0]


# ---------------------------------------------------------------------------------- helpers


def test_ndabs_is_absolute_value():
    assert NDabs is np.abs
    assert NDabs(np.array([-1.5, 2.0])).tolist() == [1.5, 2.0]


def test_aggregation_size_from_env(monkeypatch):
    monkeypatch.delenv("MXNET_OPTIMIZER_AGGREGATION_SIZE", raising=False)
    assert _aggregation_size_from_env() == 4
    monkeypatch.setenv("MXNET_OPTIMIZER_AGGREGATION_SIZE", "75")
    assert _aggregation_size_from_env() == 75
    monkeypatch.setenv("MXNET_OPTIMIZER_AGGREGATION_SIZE", "four")
    with pytest.raises(ValueError):
        _aggregation_size_from_env()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr_scheduler": 5}, TypeError, "lr_scheduler: expected an LRScheduler"),
        ({"lr_scheduler": 5, "learning_rate": 0.1}, TypeError, "lr_scheduler: expected"),
        ({"param_idx2name": {0: 5}}, TypeError, r"param_idx2name\[0\]: expected a parameter name"),
        ({"param_idx2name": {1: None}}, TypeError, r"param_idx2name\[1\]"),
        ({"sym": 5}, TypeError, "sym: expected a Symbol"),
        ({"sym": {"fc_weight": 1.0}}, TypeError, r"sym\['fc_weight'\]: expected a dict"),
        ({"begin_num_update": 2**70}, ValueError, "begin_num_update must lie within"),
        ({"begin_num_update": -(2**70)}, ValueError, "begin_num_update must lie within"),
    ],
)
def test_constructor_misuse_is_named(kwargs, error, match):
    # MXNet: AttributeError (or, for huge counts, an OverflowError at the first update).
    with pytest.raises(error, match=match):
        Optimizer(**kwargs)


def test_a_plain_callable_schedule_still_works():
    assert Optimizer(lr_scheduler=lambda n: 0.25).learning_rate == 0.25


def test_create_with_a_non_string_name():
    with pytest.raises(TypeError, match="expected an optimizer name"):
        create(5)


def test_numpy_multipliers_are_promoted_as_under_numpy_1():
    # Oracle values from MXNet 1.6.0 (NumPy 1): float32 * 0.5 is a float64 there.
    opt = Optimizer(
        learning_rate=np.float32(0.1), param_idx2name={0: "fc_weight"}, wd=np.float16(0.3)
    )
    opt.set_lr_mult({0: 0.5})
    opt.set_wd_mult({"fc_weight": 1 / 3})
    assert opt._get_lrs([0, 1]) == [0.05000000074505806, np.float32(0.1)]
    assert opt._get_wds([0]) == [0.10001627604166666]
