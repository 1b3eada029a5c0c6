"""Updater / get_updater: call order, states, aggregation, save/restore, safe loading."""

import os
import pickle

import numpy as np
import pytest

from mxopt.lr_scheduler import FactorScheduler, LRScheduler
from mxopt.optimizer.base import Optimizer, register
from mxopt.optimizer.updater import Updater, get_updater


class DecayingMomentum(Optimizer):
    """Pure-Python optimizer whose result depends on its state, counts and scheduler."""

    def create_state(self, index, weight):
        return (np.zeros_like(weight), np.zeros_like(weight))

    def update(self, index, weight, grad, state):
        self._update_count(index)
        lr, wd = self._get_lr(index), self._get_wd(index)
        mom, square = state
        t = self._index_update_count[index]
        square[...] = 0.99 * square + 0.01 * grad * grad
        mom[...] = 0.9 * mom + grad / (np.sqrt(square) + 1e-3) / t
        weight[...] = weight - lr * (mom + wd * weight)


class Recorder(Optimizer):
    """Records what the updater passes; optionally aggregates."""

    def __init__(self, aggregate_num=0, **kwargs):
        super().__init__(**kwargs)
        self.aggregate_num = aggregate_num
        self.calls = []
        self.created = []

    def create_state(self, index, weight):
        self.created.append(index)
        return np.full(weight.shape, len(self.created), weight.dtype)

    def update_multi_precision(self, index, weight, grad, state):
        self.calls.append((index, weight, grad, state))


class FixedMultipliers:
    lr_mult = wd_mult = 1.0


@pytest.fixture
def registered_optimizer():
    saved = dict(Optimizer.opt_registry)
    register(DecayingMomentum)
    yield DecayingMomentum
    Optimizer.opt_registry.clear()
    Optimizer.opt_registry.update(saved)


def _weights(dtypes):
    return [np.full(3, i, dtype) for i, dtype in enumerate(dtypes)]


# ------------------------------------------------------------------------------------ basics


def test_get_updater_and_initial_attributes():
    opt = Recorder()
    updater = get_updater(opt)
    assert isinstance(updater, Updater) and updater.optimizer is opt
    assert updater.states == {} and updater.states_synced == {}
    assert updater.aggregate_updates is False
    assert Updater(Recorder(aggregate_num=3)).aggregate_updates is True


def test_call_takes_grad_before_weight_and_creates_state_once():
    opt = Recorder()
    updater = Updater(opt)
    weight, grad = np.ones(2, np.float32), np.full(2, 5.0, np.float32)
    updater(7, grad, weight)
    updater(7, grad, weight)
    assert opt.created == [7]
    assert updater.states_synced == {7: True}
    for index, got_weight, got_grad, state in opt.calls:
        assert index == 7 and got_weight is weight and got_grad is grad
        assert state is updater.states[7]


def test_call_with_lists_updates_in_order():
    opt = Recorder()
    weights = _weights([np.float32, np.float64, np.float32])
    grads = [w * 2 for w in weights]
    Updater(opt)([3, 1, 2], grads, weights)
    assert [call[0] for call in opt.calls] == [3, 1, 2]
    assert all(call[1] is w and call[2] is g for call, w, g in zip(opt.calls, weights, grads))


def test_state_creation_goes_through_multi_precision_fallback():
    opt = DecayingMomentum(multi_precision=True)
    updater = Updater(opt)
    weight = np.ones(4, np.float16)
    updater(0, np.ones(4, np.float16), weight)
    master, (mom, square) = updater.states[0]
    assert master.dtype == mom.dtype == square.dtype == np.float32
    assert np.array_equal(weight, master.astype(np.float16))


def test_bytes_indices_are_decoded_and_written_back():
    opt = Recorder()
    updater = Updater(opt)
    indices = [b"fc_weight", "fc_bias"]
    updater(indices, [np.ones(1)] * 2, [np.ones(1), np.ones(1)])
    assert indices == ["fc_weight", "fc_bias"]
    assert list(updater.states) == ["fc_weight", "fc_bias"]
    updater(b"fc_weight", np.ones(1), np.ones(1))
    assert opt.calls[-1][0] == "fc_weight" and opt.created == ["fc_weight", "fc_bias"]


def test_bytes_indices_in_a_tuple_are_decoded_without_mutation():
    opt = Recorder()
    indices = (b"a", b"b")
    Updater(opt)(indices, [np.ones(1)] * 2, [np.ones(1)] * 2)
    assert indices == (b"a", b"b")
    assert [call[0] for call in opt.calls] == ["a", "b"]


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="equal lengths"):
        Updater(Recorder())([0, 1], [np.ones(1)], [np.ones(1), np.ones(1)])


def test_empty_call_does_not_touch_the_counters():
    opt = Recorder()
    opt._set_current_context(5)
    Updater(opt)([], [], [])
    assert opt._index_update_count is opt._all_index_update_counts[5]
    Updater(opt)(0, np.ones(1), np.ones(1))
    assert opt._index_update_count is opt._all_index_update_counts[0]


# ------------------------------------------------------------------------------- aggregation


def test_aggregation_groups_by_dtype_in_first_seen_order():
    opt = Recorder(aggregate_num=2)
    updater = Updater(opt)
    dtypes = [np.float32, np.float64, np.float32, np.float32, np.float64]
    weights = _weights(dtypes)
    grads = [w + 1 for w in weights]
    updater([0, 1, 2, 3, 4], grads, weights)
    assert [call[0] for call in opt.calls] == [(0, 2), (3,), (1, 4)]
    for indices, chunk_weights, chunk_grads, states in opt.calls:
        assert type(indices) is tuple and type(chunk_weights) is tuple
        assert type(chunk_grads) is tuple and type(states) is list
        assert all(
            w is weights[i] and g is grads[i]
            for i, w, g in zip(indices, chunk_weights, chunk_grads)
        )
        assert all(s is updater.states[i] for i, s in zip(indices, states))


def test_aggregation_wraps_a_scalar_index_in_one_tuples():
    opt = Recorder(aggregate_num=4)
    weight, grad = np.ones(2), np.zeros(2)
    Updater(opt)("w", grad, weight)
    ((indices, weights, grads, states),) = opt.calls
    assert indices == ("w",) and weights[0] is weight and grads[0] is grad and len(states) == 1


def test_aggregate_updates_is_frozen_but_chunk_size_is_reread():
    opt = Recorder(aggregate_num=0)
    plain = Updater(opt)
    opt.aggregate_num = 2
    plain([0, 1], [np.ones(1)] * 2, [np.ones(1)] * 2)
    assert [call[0] for call in opt.calls] == [0, 1]

    opt = Recorder(aggregate_num=1)
    updater = Updater(opt)
    updater([0, 1, 2], [np.ones(1)] * 3, [np.ones(1)] * 3)
    opt.aggregate_num = 3
    updater([0, 1, 2], [np.ones(1)] * 3, [np.ones(1)] * 3)
    assert [call[0] for call in opt.calls] == [(0,), (1,), (2,), (0, 1, 2)]


def test_aggregation_beyond_sixty_tensors_is_passed_whole():
    opt = Recorder(aggregate_num=100)
    count = 75
    Updater(opt)(list(range(count)), [np.ones(1)] * count, [np.ones(1) for _ in range(count)])
    assert len(opt.calls) == 1 and opt.calls[0][0] == tuple(range(count))


def test_aggregation_with_non_positive_chunk_raises_instead_of_hanging():
    opt = Recorder(aggregate_num=2)
    updater = Updater(opt)
    opt.aggregate_num = 0
    with pytest.raises(ValueError, match="aggregate_num"):
        updater(0, np.ones(1), np.ones(1))


# ------------------------------------------------------------------------------ state sync


def test_sync_state_context_is_recursive_and_keeps_arrays():
    updater = Updater(Recorder())
    array = np.ones(2)
    nested = (array, [array, None, (3.5,)], None)
    synced = updater.sync_state_context(nested, None)
    assert type(synced) is tuple and type(synced[1]) is list and type(synced[1][2]) is tuple
    assert synced[0] is array and synced[1][0] is array and synced[1][1] is None
    assert synced[1][2] == (3.5,) and synced[2] is None
    assert updater.sync_state_context(array, None) is array


def test_loaded_states_are_resynced_on_next_use():
    opt = Recorder()
    updater = Updater(opt)
    updater([0, 1], [np.ones(1)] * 2, [np.ones(1)] * 2)
    updater.set_states(updater.get_states())
    assert updater.states_synced == {0: False, 1: False}
    updater(1, np.ones(1), np.ones(1))
    assert updater.states_synced == {0: False, 1: True}
    assert opt.created == [0, 1]  # loaded states are reused, not recreated


# ------------------------------------------------------------------------- get / set states


def test_get_states_structure():
    opt = DecayingMomentum(param_dict={0: FixedMultipliers()})
    updater = Updater(opt)
    updater([0, "b"], [np.ones(2)] * 2, [np.ones(2), np.ones(2)])
    states = pickle.loads(updater.get_states())
    assert set(states) == {0, "b"} and isinstance(states[0], tuple) and len(states[0]) == 2
    states, loaded_opt = pickle.loads(updater.get_states(dump_optimizer=True))
    assert isinstance(loaded_opt, DecayingMomentum) and loaded_opt.param_dict == {}
    assert loaded_opt._index_update_count == {0: 1, "b": 1}


def test_set_states_with_optimizer_replaces_it_but_not_aggregate_updates():
    source = Updater(Recorder(aggregate_num=4))
    source(0, np.ones(1), np.ones(1))
    blob = source.get_states(dump_optimizer=True)
    target = Updater(Recorder(aggregate_num=0))
    target.set_states(blob)
    assert isinstance(target.optimizer, Recorder) and target.optimizer.aggregate_num == 4
    assert target.aggregate_updates is False


def _train(updater, weights, grads_per_step):
    for grads in grads_per_step:
        updater(list(range(len(weights))), grads, weights)


@pytest.mark.parametrize("safe", [False, True])
def test_round_trip_continues_bit_identically(registered_optimizer, safe):
    rng = np.random.default_rng(42)
    dtypes = [np.float32, np.float64, np.float16]
    steps = [[rng.standard_normal(5).astype(d) for d in dtypes] for _ in range(8)]

    def fresh_optimizer():
        sched = FactorScheduler(step=2, factor=0.7, base_lr=0.05)
        return registered_optimizer(
            lr_scheduler=sched, wd=0.01, multi_precision=True, param_idx2name={1: "x_bias"}
        )

    weights = [np.linspace(-1, 1, 5).astype(d) for d in dtypes]
    updater = get_updater(fresh_optimizer())
    _train(updater, weights, steps[:4])
    blob = updater.get_states(dump_optimizer=True)
    saved_weights = [w.copy() for w in weights]
    _train(updater, weights, steps[4:])

    resumed = get_updater(fresh_optimizer())
    resumed.set_states(blob, safe=safe)
    _train(resumed, saved_weights, steps[4:])

    for expected, got in zip(weights, saved_weights):
        assert expected.dtype == got.dtype and np.array_equal(expected, got)
    assert pickle.dumps(resumed.states) == pickle.dumps(updater.states)
    assert resumed.optimizer.num_update == updater.optimizer.num_update == 8
    assert resumed.optimizer.lr_scheduler.base_lr == updater.optimizer.lr_scheduler.base_lr


def test_states_only_round_trip_keeps_arrays(registered_optimizer):
    updater = Updater(registered_optimizer())
    updater([0, 1], [np.ones(3)] * 2, [np.ones(3), np.zeros(3)])
    fresh = Updater(registered_optimizer())
    fresh.set_states(updater.get_states(), safe=True)
    assert fresh.states.keys() == updater.states.keys()
    for key in updater.states:
        for a, b in zip(updater.states[key], fresh.states[key]):
            assert a.dtype == b.dtype and np.array_equal(a, b)


# ------------------------------------------------------------------------------ safe loader


class _RunsShell:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _CustomScheduler(LRScheduler):
    def __call__(self, num_update):
        return self.base_lr


def test_safe_loader_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    blob = pickle.dumps({0: _RunsShell(marker)})
    updater = Updater(Recorder())
    with pytest.raises(pickle.UnpicklingError, match="system"):
        updater.set_states(blob, safe=True)
    assert not marker.exists()
    assert updater.states == {}


@pytest.mark.parametrize(
    "payload",
    [eval, getattr, __import__, _CustomScheduler(), Recorder],
    ids=["eval", "getattr", "import", "unregistered-scheduler", "unregistered-optimizer"],
)
def test_safe_loader_refuses_other_globals(payload):
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        Updater(Recorder()).set_states(pickle.dumps({0: payload}), safe=True)


def test_unsafe_default_keeps_pickle_semantics():
    updater = Updater(Recorder())
    updater.set_states(pickle.dumps({0: _CustomScheduler(base_lr=0.3)}))
    assert isinstance(updater.states[0], _CustomScheduler)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_safe_loader_accepts_numpy_and_container_states(protocol):
    states = {
        0: np.arange(6, dtype=np.float16).reshape(2, 3),
        "b": (np.float32(1.5), [np.zeros(2, np.float64), None], {1, 2}, frozenset({3})),
        2: (b"raw", bytearray(b"x"), 1 + 2j, np.asfortranarray(np.ones((2, 2)))),
        3: np.dtype("int64"),
    }
    updater = Updater(Recorder())
    updater.set_states(pickle.dumps(states, protocol=protocol), safe=True)
    loaded = updater.states
    assert np.array_equal(loaded[0], states[0]) and loaded[0].dtype == np.float16
    assert loaded["b"][0] == np.float32(1.5) and type(loaded["b"][0]) is np.float32
    assert loaded["b"][2:] == ({1, 2}, frozenset({3}))
    assert loaded[2][:3] == (b"raw", bytearray(b"x"), 1 + 2j)
    assert np.array_equal(loaded[2][3], states[2][3]) and loaded[3] == np.dtype("int64")


def test_safe_loader_accepts_builtin_schedulers_and_registered_optimizers(registered_optimizer):
    opt = registered_optimizer(lr_scheduler=FactorScheduler(step=3, base_lr=0.2))
    updater = Updater(opt)
    updater(0, np.ones(2), np.ones(2))
    target = Updater(Recorder())
    target.set_states(updater.get_states(dump_optimizer=True), safe=True)
    assert type(target.optimizer) is registered_optimizer
    assert type(target.optimizer.lr_scheduler) is FactorScheduler


# pickle.dumps({0: (np.arange(3, dtype=np.float32), np.float64(2.5))}) made by NumPy 1.23, whose
# reconstructors live in numpy.core (NumPy 2 moved them to numpy._core).
NUMPY1_BLOBS = [
    "800495db000000000000007d944b008c156e756d70792e636f72652e6d756c74696172726179948c0c5f72"
    "65636f6e7374727563749493948c056e756d7079948c076e6461727261799493944b0085944301629487"
    "945294284b014b03859468048c0564747970659493948c02663494898887945294284b038c013c944e4e"
    "4e4affffffff4affffffff4b0074946289430c000000000000803f000000409474946268018c06736361"
    "6c6172949394680d8c02663894898887945294284b0368114e4e4e4affffffff4affffffff4b00749462"
    "4308000000000000044094869452948694732e",
    "800595dc000000000000007d944b008c126e756d70792e636f72652e6e756d65726963948c0b5f66726f"
    "6d62756666657294939428960c00000000000000000000000000803f00000040948c056e756d7079948c"
    "0564747970659493948c02663494898887945294284b038c013c944e4e4e4affffffff4affffffff4b00"
    "7494624b0385948c014394749452948c156e756d70792e636f72652e6d756c74696172726179948c0673"
    "63616c617294939468078c02663894898887945294284b03680b4e4e4e4affffffff4affffffff4b0074"
    "94624308000000000000044094869452948694732e",
]


@pytest.mark.parametrize("blob", NUMPY1_BLOBS, ids=["protocol4", "protocol5"])
def test_safe_loader_reads_numpy1_pickles(blob):
    updater = Updater(Recorder())
    updater.set_states(bytes.fromhex(blob), safe=True)
    array, scalar = updater.states[0]
    assert array.dtype == np.float32 and array.tolist() == [0.0, 1.0, 2.0]
    assert type(scalar) is np.float64 and scalar == 2.5


# --------------------------------------------------------- failed updates, Test optimizer


class DtypeStrict(Optimizer):
    """State of the weight's dtype; refuses integer weights after creating their state."""

    def create_state(self, index, weight):
        return np.zeros_like(weight)

    def update(self, index, weight, grad, state):
        if weight.dtype.kind != "f" or state.dtype != weight.dtype:
            raise TypeError(f"weight {weight.dtype} / state {state.dtype}")
        state[...] += grad
        weight[...] -= state


def test_failed_first_update_leaves_no_state_behind():
    updater = Updater(DtypeStrict())
    with pytest.raises(TypeError):
        updater(0, np.ones(2, np.int64), np.ones(2, np.int64))
    assert 0 not in updater.states and 0 not in updater.states_synced
    weight = np.ones(2)
    updater(0, np.ones(2), weight)  # a fresh float64 state, not the int64 one
    assert weight.tolist() == [0.0, 0.0] and updater.states[0].dtype == np.float64


def test_failed_list_update_keeps_completed_and_existing_states():
    updater = Updater(DtypeStrict())
    updater(5, np.ones(2), np.ones(2))
    existing = updater.states[5]
    with pytest.raises(TypeError):
        updater(
            [0, 5, 1],
            [np.ones(2), np.ones(2), np.ones(2, np.int8)],
            [np.ones(2), np.ones(2), np.ones(2, np.int8)],
        )
    assert 0 in updater.states  # its update completed
    assert updater.states[5] is existing  # not created by this call
    assert 1 not in updater.states


def test_failed_aggregated_update_drops_only_unfinished_chunks():
    class Chunky(DtypeStrict):
        aggregate_num = 2

        def update_multi_precision(self, index, weight, grad, state):
            for i, w, g, s in zip(index, weight, grad, state):
                self.update(i, w, g, s)

    opt = Chunky()
    opt.aggregate_num = 2
    updater = Updater(opt)
    assert updater.aggregate_updates
    weights = [np.ones(2), np.ones(2), np.ones(2), np.ones(2, np.int16)]
    with pytest.raises(TypeError):
        updater([0, 1, 2, 3], [w.copy() for w in weights], weights)
    # float64 chunk [0, 1] completed, [2] completed, the int16 group [3] failed
    assert sorted(updater.states) == [0, 1, 2]


def test_test_optimizer_validates_before_writing():
    from mxopt.optimizer import Test
    from mxopt.sparse import RowSparseNDArray

    opt = Test(rescale_grad=0.5)
    weight = np.ones((2, 3), np.float32)
    state = np.zeros((2, 3), np.float32)
    bad = [
        ((weight, np.ones((2, 3), np.int32), state), ValueError, "grad"),
        ((weight, np.ones((2, 3), np.float64), state), ValueError, "grad"),
        ((weight, np.ones(3, np.float32), state), ValueError, "grad"),  # broadcastable
        ((weight, [[1.0] * 3] * 2, state), TypeError, "grad"),
        ((weight, np.ones((2, 3), np.float32), np.zeros((2, 3))), ValueError, "state"),
        ((weight, np.ones((2, 3), np.float32), np.zeros(3, np.float32)), ValueError, "state"),
        ((weight, np.ones((2, 3), np.float32), None), TypeError, "state"),
        ((weight, RowSparseNDArray([[1.0] * 3], [0], (3, 3)), state), ValueError, "grad"),
        ((np.ones((2, 3), np.int32), np.ones((2, 3), np.int32), state), TypeError, "weight"),
        ((np.ones((3, 2), np.float32).T, np.ones((2, 3), np.float32), state), ValueError, "weight"),
        (([[1.0] * 3] * 2, np.ones((2, 3), np.float32), state), TypeError, "weight"),
    ]
    readonly = np.ones((2, 3), np.float32)
    readonly.flags.writeable = False
    bad.append(((readonly, np.ones((2, 3), np.float32), state), ValueError, "weight"))
    for args, exc, name in bad:
        before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
        with pytest.raises(exc, match=name or "grad"):
            opt.update(0, *args)
        for a, b in zip(args, before):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)
    opt.update(0, weight, RowSparseNDArray([[2.0] * 3], [1], (2, 3)), state)
    assert weight.tolist() == [[1.0] * 3, [2.0] * 3] and np.array_equal(state, weight)


def test_test_optimizer_through_updater_recovers_after_a_bad_call():
    from mxopt.optimizer import Test

    updater = Updater(Test())
    weight = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="grad"):
        updater(0, np.ones(3, np.float64), weight)
    assert weight.tolist() == [1.0] * 3 and 0 not in updater.states
    updater(0, np.ones(3, np.float32), weight)
    assert weight.tolist() == [2.0] * 3


@pytest.mark.parametrize("optimizer", [None, 5, "sgd"])
def test_updater_needs_an_optimizer(optimizer):
    with pytest.raises(TypeError, match="optimizer: expected an Optimizer"):
        Updater(optimizer)


@pytest.mark.parametrize(
    ("aggregate_num", "error"),
    [(2.5, TypeError), ("4", TypeError), (None, TypeError), (0, ValueError)],
)
def test_aggregate_num_of_the_wrong_kind_is_named(aggregate_num, error):
    from mxopt.optimizer import SGD

    optimizer = SGD(momentum=0.9)
    updater = Updater(optimizer)
    optimizer.aggregate_num = aggregate_num
    weights = [np.ones(3, np.float32) for _ in range(5)]
    with pytest.raises(error, match="aggregate_num"):
        updater(list(range(5)), [np.ones(3, np.float32)] * 5, weights)
    assert all((w == 1).all() for w in weights) and not updater.states


def test_more_than_sixty_tensors_in_one_aggregated_call_match_single_updates():
    from mxopt.optimizer import SGD

    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(4).astype(np.float32) for _ in range(75)]
    results = []
    for chunk in (100, 1):
        optimizer = SGD(momentum=0.9, learning_rate=0.1)
        optimizer.aggregate_num = chunk
        weights = [np.ones(4, np.float32) for _ in range(75)]
        Updater(optimizer)(list(range(75)), grads, weights)
        results.append(weights)
    for aggregated, single in zip(*results):
        np.testing.assert_array_equal(aggregated, single)
