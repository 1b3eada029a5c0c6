"""Untrusted optimizer-state blobs: ``Updater.set_states`` refuses what it cannot check.

The safe loader must run no code, keep the memory a blob can make it allocate proportional
to the blob, refuse blobs of the wrong structure without changing the updater, and still
load every blob ``get_states`` writes.
"""

import collections
import pickle
import time
import tracemalloc

import numpy as np
import pytest

from mxopt.lr_scheduler import (
    CosineScheduler,
    FactorScheduler,
    MultiFactorScheduler,
    PolyScheduler,
)
from mxopt.optimizer import SGD, Test, Updater
from mxopt.optimizer.updater import _numpy_reconstructor

_RECONSTRUCT = _numpy_reconstructor("multiarray", "_reconstruct")
_EMPTY = (np.ndarray, (0,), b"b")  # what ndarray.__reduce__ passes to _reconstruct
_SCALAR = _numpy_reconstructor("multiarray", "scalar")
_FROMBUFFER = _numpy_reconstructor("numeric", "_frombuffer")
MiB = 1 << 20


class _Reduce:
    """Pickles as ``func(*args)`` (then ``BUILD state``): forges blobs from allowed names."""

    def __init__(self, func, args, state=None):
        self.reduced = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.reduced


def _blob(payload, protocol=4):
    return pickle.dumps({0: payload}, protocol=protocol)


def _refused_cheaply(blob, match=None, limit_bytes=4 * MiB):
    """The safe loader refuses ``blob`` quickly, allocating little, changing nothing."""
    updater = Updater(Test())
    states, optimizer = updater.states, updater.optimizer
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(pickle.UnpicklingError, match=match):
            updater.set_states(blob, safe=True)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0
    assert peak < limit_bytes, peak
    assert updater.states is states and updater.optimizer is optimizer


# ------------------------------------------------------------------- size amplification


def test_bytearray_of_an_int_is_refused_without_allocating():
    # {0: bytearray(1 << 30)}: 45 bytes that made the old loader allocate 1 GiB.
    small = _blob(_Reduce(bytearray, (1 << 30,)), protocol=2)
    assert len(small) <= 48
    _refused_cheaply(small, match="bytearray")
    _refused_cheaply(_blob(_Reduce(bytearray, (1 << 40,))), match="bytearray")
    _refused_cheaply(_blob(_Reduce(bytes, (1 << 30,))), match="bytes")


@pytest.mark.parametrize(
    "payload",
    [
        # ndarray.__setstate__ with a shape far larger than the data supplied
        _Reduce(
            _RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (1 << 40,), np.dtype("f4"), False, b"")
        ),
        _Reduce(
            _RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (1 << 20,), np.dtype("f8"), False, b"x")
        ),
        _Reduce(
            _RECONSTRUCT,
            (np.ndarray, (0,), b"b"),
            (1, (1 << 32, 1 << 32), np.dtype("f4"), False, b""),
        ),
        _Reduce(_RECONSTRUCT, _EMPTY, (1, (-1,), np.dtype("f4"), False, b"")),
        # object arrays are rebuilt from a list: the shape alone allocates
        _Reduce(_RECONSTRUCT, _EMPTY, (1, (1 << 28,), np.dtype("O"), False, [])),
        # _reconstruct itself with a huge shape
        _Reduce(_RECONSTRUCT, (np.ndarray, (1 << 40,), b"b")),
        _Reduce(_RECONSTRUCT, (np.ndarray, (1 << 28,), b"b")),
        # protocol-5 _frombuffer with a shape larger than its buffer
        _Reduce(_FROMBUFFER, (bytearray(8), np.dtype("f4"), (1 << 40,), "C")),
        _Reduce(_FROMBUFFER, (bytearray(8), np.dtype("f4"), (2, -1), "C")),
        # dtype tricks: huge void / string items, subarrays, objects
        np.dtype("V1000000"),
        np.dtype(("f4", (1 << 20,))),
        np.dtype("O"),
        np.dtype([("a", "f4"), ("b", "O")]),
        _Reduce(_SCALAR, (np.dtype("V100000"), b"")),
        _Reduce(_SCALAR, (np.dtype("O"), [1, 2])),
        _Reduce(_SCALAR, (np.dtype("f8"), b"\0")),
        # ndarray created directly (NEWOBJ / REDUCE of the class)
        b"\x80\x02}K\x00cnumpy\nndarray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85\x85\x81s.",
        b"\x80\x02}K\x00cnumpy\ndtype\nX\x02\x00\x00\x00f4\x85\x81s.",
        _Reduce(np.ndarray, ((1 << 28,),)),
        # other constructors with amplifying or code-running arguments
        _Reduce(set, (b"abc",)),
        _Reduce(complex, ("1" * 5000,)),
        _Reduce(collections.OrderedDict, ([(1, 2)],)),
        b"\x80\x02}K\x00ccollections\nOrderedDict\n)\x81s.",
        _Reduce(pickle.loads, (b"N.",)),
    ],
    ids=lambda p: repr(getattr(p, "reduced", p))[:60],
)
def test_forged_numpy_and_builtin_constructions_are_refused(payload):
    _refused_cheaply(payload if isinstance(payload, bytes) else _blob(payload))


def test_codecs_encode_only_latin1():
    import codecs

    _refused_cheaply(_blob(_Reduce(codecs.encode, ("ab" * 100, "base64"))), match="latin1")


def test_shared_arrays_keep_their_identity():
    arr = np.zeros(4)
    ok = Updater(Test())
    ok.set_states(pickle.dumps({0: arr, 1: (arr, arr)}, protocol=2), safe=True)
    assert ok.states[0] is ok.states[1][0] is ok.states[1][1]


def test_reconstructed_array_cannot_be_rebuilt_twice():
    import pickletools

    blob = pickle.dumps(np.zeros(2), protocol=2)
    ops = list(pickletools.genops(blob))
    assert [op.name for op, _, _ in ops[-2:]] == ["BUILD", "STOP"]
    # The memo slot of the state tuple: the last BINPUT before BUILD.
    slot = [arg for op, arg, _ in ops if op.name == "BINPUT"][-1]
    twice = blob[:-1] + b"h" + bytes([slot]) + b"b."
    _refused_cheaply(twice, match="twice")


def test_c_unpickler_memo_growth_is_not_reachable():
    # LONG_BINPUT 0x0fffffff: the C unpickler grows its memo array to 2 GiB for this.
    blob = b"\x80\x02}r\xff\xff\xff\x0f."
    updater = Updater(Test())
    tracemalloc.start()
    try:
        updater.set_states(blob, safe=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert updater.states == {} and peak < MiB


@pytest.mark.parametrize(
    "blob",
    [
        b"\x80\x02c__builtin__\nlist\n)R.",  # list(): not on the list of callables
        b"\x80\x02]K\x01\x85R.",  # calling a list
        b"\x80\x02(cmxopt.lr_scheduler\nFactorScheduler\nK\x01o.",  # OBJ: runs __init__
        b"\x80\x02cmxopt.lr_scheduler\nFactorScheduler\nK\x01\x85R.",  # REDUCE the class
        b"\x80\x02\x82\x01.",  # EXT1
        b"\x80\x02K\x01Q.",  # BINPERSID
        b"\x80\x02K\x01K\x02a.",  # APPEND on an int
        b"\x80\x02\x8f(K\x01ea.",  # APPENDS on a set
        b"\x80\x02]K\x01K\x02s.",  # SETITEM on a list
        b"\x80\x04]\x94(K\x01\x90.",  # ADDITEMS on a list
        b"\x80\x02c__builtin__\nset\n)R}b.",  # BUILD on a set
        b"\xff",  # unknown opcode
        b"\x80\x02a.",  # stack underflow
        b"\x80\x09.",  # unsupported protocol
    ],
)
def test_malformed_and_forbidden_opcodes_are_unpickling_errors(blob):
    _refused_cheaply(blob)


# ------------------------------------------------------------------- structure, atomicity


@pytest.mark.parametrize("safe", [False, True])
@pytest.mark.parametrize(
    "loaded",
    [(1, 2), [1, 2, 3], ("ab", "cd"), 5, None, "states", ({}, "opt"), ([], Test()), ({}, 1, 2)],
    ids=repr,
)
def test_wrong_structure_changes_nothing(loaded, safe):
    updater = Updater(Test())
    updater(0, np.ones(2, np.float32), np.ones(2, np.float32))
    states, synced, optimizer = updater.states, dict(updater.states_synced), updater.optimizer
    with pytest.raises(pickle.UnpicklingError) as info:
        updater.set_states(pickle.dumps(loaded), safe=safe)
    assert isinstance(info.value, TypeError)
    assert "dict of states" in str(info.value) or "Optimizer" in str(info.value)
    assert updater.states is states and updater.optimizer is optimizer
    assert updater.states_synced == synced


@pytest.mark.parametrize("safe", [False, True])
def test_empty_and_truncated_blobs_are_unpickling_errors(safe):
    updater = Updater(SGD(momentum=0.9, lr_scheduler=FactorScheduler(step=2)))
    updater(0, np.ones(3, np.float32), np.ones(3, np.float32))
    blob = updater.get_states(dump_optimizer=True)
    target = Updater(Test())
    states, optimizer = target.states, target.optimizer
    with pytest.raises(pickle.UnpicklingError, match="empty"):
        target.set_states(b"", safe=safe)
    for cut in range(0, len(blob), 7 if safe else 1):
        with pytest.raises(pickle.UnpicklingError):
            target.set_states(blob[:cut], safe=safe)
        assert target.states is states and target.optimizer is optimizer
    target.set_states(blob, safe=safe)
    assert type(target.optimizer) is SGD


def test_non_bytes_argument_is_a_type_error():
    with pytest.raises(TypeError, match="states"):
        Updater(Test()).set_states({0: None}, safe=True)


# ---------------------------------------------------------------------- legitimate blobs


def _states_equal(a, b):
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_states_equal, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_states_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and (a == b or (a != a and b != b))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_legitimate_state_values_round_trip(protocol):
    states = {
        0: np.arange(6, dtype=np.float16).reshape(2, 3),
        1: (np.ones(3, np.float32), np.zeros((2, 2), np.float64)),
        2: None,
        "w": (np.asfortranarray(np.arange(6.0).reshape(2, 3)), None),
        b"k".decode(): np.arange(10, dtype=np.float32)[::3],  # non-contiguous
        4: [np.array(2.5), np.zeros((0, 3), np.float32), np.array([np.nan, -0.0])],
        5: (np.arange(4, dtype=">f4"), np.array([True, False]), np.arange(3, dtype=np.int64)),
        6: (np.complex128(1 + 2j), np.float32(1.5), np.int64(7), np.bool_(True)),
        7: (1 + 2j, b"", b"raw", bytearray(b"x"), bytearray(), {1, 2}, frozenset({3}), 1.5),
        8: collections.OrderedDict([("a", np.ones(1)), ("b", None)]),
        9: (np.ones(2, np.float32), (np.zeros(2, np.float32), np.zeros(2, np.float32))),
    }
    blob = pickle.dumps(states, protocol=protocol)
    updater = Updater(Test())
    updater.set_states(blob, safe=True)
    # The same objects as pickle.loads (which even drops the '>f4' byte order below
    # protocol 5, as NumPy's _reconstruct path does), equal in value to the originals.
    assert _states_equal(pickle.loads(blob), updater.states)
    assert np.array_equal(updater.states[5][0], states[5][0])
    assert updater.states["w"][0].flags.f_contiguous
    assert all(updater.states_synced[k] is False for k in states)


@pytest.mark.parametrize(
    "scheduler",
    [
        None,
        FactorScheduler(step=2, factor=0.5, base_lr=0.1),
        MultiFactorScheduler(step=[1, 3], factor=0.5),
        PolyScheduler(max_update=10, pwr=2, warmup_steps=2),
        CosineScheduler(max_update=10, final_lr=0.001, warmup_steps=1, warmup_mode="constant"),
    ],
    ids=lambda s: type(s).__name__,
)
@pytest.mark.parametrize("dump_optimizer", [False, True])
def test_get_states_blobs_load_safely(scheduler, dump_optimizer):
    idx2name = collections.OrderedDict([(0, "fc_weight"), (1, "fc_bias"), (2, "h_weight")])
    opt = SGD(
        momentum=0.9,
        multi_precision=True,
        lr_scheduler=scheduler,
        param_idx2name=idx2name,
        wd=0.01,
    )
    updater = Updater(opt)
    weights = [np.ones(3, np.float16), np.ones(2, np.float32), np.ones((2, 2), np.float64)]
    for step in range(3):
        for i, w in enumerate(weights):
            updater(i, np.full(w.shape, 0.1 * (step + 1), w.dtype), w)
    blob = updater.get_states(dump_optimizer=dump_optimizer)

    safe = Updater(SGD(momentum=0.9, multi_precision=True))
    unsafe = Updater(SGD(momentum=0.9, multi_precision=True))
    safe.set_states(blob, safe=True)
    unsafe.set_states(blob)
    assert _states_equal(unsafe.states, safe.states)
    assert _states_equal(updater.states, safe.states)
    if dump_optimizer:
        assert type(safe.optimizer) is SGD and safe.optimizer is not opt
        assert type(safe.optimizer.lr_scheduler) is type(scheduler)
        if scheduler is not None:
            assert vars(safe.optimizer.lr_scheduler) == vars(scheduler)
        assert safe.optimizer.idx2name == idx2name
        assert _states_equal(
            dict(safe.optimizer._index_update_count), dict(opt._index_update_count)
        )
    # Both continue identically.
    copies = [[w.copy() for w in weights] for _ in range(2)]
    for target, ws in zip((safe, unsafe), copies):
        for i, w in enumerate(ws):
            target(i, np.full(w.shape, 0.5, w.dtype), w)
    for a, b in zip(*copies):
        np.testing.assert_array_equal(a, b)


def test_optimizer_with_ordered_dict_idx2name_loads_safely():
    opt = SGD(param_idx2name=collections.OrderedDict([(0, "a_weight"), (1, "b_bias")]))
    target = Updater(Test())
    target.set_states(Updater(opt).get_states(dump_optimizer=True), safe=True)
    assert target.optimizer.idx2name == {0: "a_weight", 1: "b_bias"}
    assert isinstance(target.optimizer.idx2name, collections.OrderedDict)


def test_large_legitimate_array_loads_with_memory_proportional_to_blob():
    states = {0: np.ones(1 << 20, np.float32)}  # 4 MiB
    for protocol in (2, 4, 5):
        blob = pickle.dumps(states, protocol=protocol)
        updater = Updater(Test())
        tracemalloc.start()
        try:
            updater.set_states(blob, safe=True)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert np.array_equal(updater.states[0], states[0])
        assert peak < 4 * len(blob), (protocol, peak, len(blob))
