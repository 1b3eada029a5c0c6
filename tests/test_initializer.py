"""mxopt.initializer against MXNet 1.6.0 goldens, plus statistical and bad-input tests."""

import builtins
import json
import logging
import os
import sys
import warnings

import numpy as np
import pytest

from mxopt import initializer as ini
from mxopt import random as R

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
sys.path.insert(0, GOLDEN)
import initializer_cases as cases  # noqa: E402

with open(os.path.join(GOLDEN, "initializers.json")) as _fh:
    META = json.load(_fh)
with np.load(os.path.join(GOLDEN, "initializers.npz")) as _npz:
    ARRAYS = {k: _npz[k] for k in _npz.files}


class NpArrays:
    """The NumPy side of the case table's array adaptor."""

    @staticmethod
    def full(shape, value, dtype):
        return np.full(shape, value, dtype=dtype)

    @staticmethod
    def np(arr):
        return np.array(arr, copy=True)

    @staticmethod
    def from_np(a):
        return np.array(a, copy=True)


def _is(exc, name):
    return isinstance(exc, getattr(builtins, name))


@pytest.fixture(autouse=True)
def _quiet_legacy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# --- golden: deterministic initializers, dispatch, dumps, create, errors -------------------


def test_registry_names_match_mxnet():
    builtin = {k for k, v in ini._REGISTRY.items() if v.__name__ in ini.__all__}
    assert sorted(builtin) == META["registry"]


@pytest.mark.parametrize("name", sorted(cases.CASES))
def test_golden_case(name):
    want = META["cases"][name]
    if "error" in want:
        with pytest.raises(Exception) as info:
            cases.CASES[name](ini, NpArrays)
        assert _is(info.value, want["error"]), info.value
        return
    got = cases.CASES[name](ini, NpArrays)
    assert sorted(got) == sorted(want)
    for key, spec in want.items():
        if "error" in spec:
            assert got[key] == spec["error"], key
            continue
        ref = ARRAYS[f"{name}/{key}"]
        assert got[key].dtype == ref.dtype, key
        assert got[key].shape == ref.shape, key
        np.testing.assert_array_equal(got[key], ref, err_msg=key)
        assert got[key].tobytes() == ref.tobytes(), f"{key}: bits differ (the sign of a zero?)"


@pytest.mark.parametrize("name", sorted(cases.DUMPS))
def test_dumps_strings(name):
    assert cases.DUMPS[name](ini).dumps() == META["dumps"][name]


@pytest.mark.parametrize("name", sorted(cases.CREATE))
def test_create(name):
    want = META["create"][name]
    if "error" in want:
        with pytest.raises(Exception) as info:
            cases.CREATE[name](ini)
        assert _is(info.value, want["error"]), info.value
    else:
        made = cases.CREATE[name](ini)
        assert type(made).__name__ == want["type"]
        assert made.dumps() == want["dumps"]


@pytest.mark.parametrize("name", sorted(cases.ERRORS))
def test_errors_match_mxnet(name):
    want = META["errors"][name]
    with pytest.raises(Exception) as info:
        cases.ERRORS[name](ini, NpArrays)
    assert _is(info.value, want), info.value


def test_create_returns_the_same_instance():
    one = ini.One()
    assert ini.create(one) is one


# --- InitDesc, base class ------------------------------------------------------------------


def test_initdesc_is_its_name():
    d = ini.InitDesc("fc_weight")
    assert d == "fc_weight" and hash(d) == hash("fc_weight")
    assert {"fc_weight": 1}[d] == 1
    assert d.attrs == {} and d.global_init is None
    assert ini.InitDesc("x", attrs={}).attrs is not ini.InitDesc("y", attrs={}).attrs


def test_call_sets_global_init_once():
    d = ini.InitDesc("fc_weight")
    one = ini.One()
    one(d, np.zeros(2))
    assert d.global_init is one
    ini.Zero()(d, np.zeros(2))
    assert d.global_init is one


def test_equality_and_unhashable():
    assert ini.Uniform(0.1) == ini.Uniform(0.1)
    assert ini.Uniform(0.1) != ini.Uniform(0.2)
    assert ini.Xavier() != ini.MSRAPrelu()
    assert ini.One() != "one"
    with pytest.raises(TypeError):
        hash(ini.Normal())


def test_constant_dumps_converts_array_value_in_place():
    c = ini.Constant(np.array([1.0, 2.0]))
    assert c.dumps() == '["constant", {"value": [1.0, 2.0]}]'
    assert c._kwargs["value"] == [1.0, 2.0]
    # MXNet raised AttributeError on a list value; a list is already JSON.
    assert ini.Constant([1, 2]).dumps() == '["constant", {"value": [1, 2]}]'


def test_legacy_path_warns():
    with pytest.warns(DeprecationWarning):
        ini.One()("fc_weight", np.zeros(2))


def test_base_weight_hook_must_be_overridden():
    with pytest.raises(NotImplementedError, match="_init_weight"):
        ini.Initializer()(ini.InitDesc("fc_weight"), np.zeros(2))


def test_unknown_name_error_names_the_parameter():
    with pytest.raises(ValueError, match="conv_data"):
        ini.One()(ini.InitDesc("conv_data"), np.zeros(2))
    with pytest.raises(ValueError, match="bn_moving_mean"):
        ini.One()(ini.InitDesc("bn_moving_mean"), np.zeros(2))


def test_quantized_weight_is_one_repeated_int8():
    R.seed(3)
    seen = set()
    for _ in range(20):
        arr = np.zeros((4, 5), dtype=np.float32)
        ini.Uniform()(ini.InitDesc("fc_weight_quantize"), arr)
        assert np.unique(arr).size == 1
        v = float(arr.flat[0])
        assert v == int(v) and -127 <= v < 127
        seen.add(v)
    assert len(seen) > 10
    q = np.zeros(3, dtype=np.float32)
    q[:] = 5
    ini.One()(ini.InitDesc("fc_bias_quantize"), q)
    assert (q == 0).all()


def test_verbose_logging(caplog):
    caplog.set_level(logging.INFO)
    init = ini.Constant(0.3).set_verbosity(True)
    assert init._verbose
    init(ini.InitDesc("fc_weight"), np.zeros(3, dtype=np.float32))
    ini.Zero().set_verbosity(True)(ini.InitDesc("fc_bias", attrs={"__init__": "one"}), np.zeros(3))
    msgs = [r.getMessage() for r in caplog.records]
    assert "Initialized fc_weight as weight: 0.3" in msgs
    assert "Initialized fc_bias as one: 1.0" in msgs
    caplog.clear()
    ini.One().set_verbosity(True, print_func=lambda a: "custom")(
        ini.InitDesc("fc_weight"), np.zeros(3)
    )
    assert [r.getMessage() for r in caplog.records] == ["Initialized fc_weight as weight: custom"]
    caplog.clear()
    ini.One()(ini.InitDesc("fc_weight"), np.zeros(3))
    assert not caplog.records


# --- user extension ------------------------------------------------------------------------


def test_user_subclass_register_create():
    @ini.register
    class Arange(ini.Initializer):
        def __init__(self, start=0.0):
            super().__init__(start=start)
            self.start = start

        def _init_weight(self, _, arr):
            arr[...] = self.start + np.arange(arr.size).reshape(arr.shape)

        def _init_bias(self, _, arr):
            arr[...] = -1.0

    try:
        made = ini.create("ARANGE", start=2.0)
        assert isinstance(made, Arange)
        w = np.zeros((2, 2))
        made(ini.InitDesc("fc_weight"), w)
        assert w.tolist() == [[2.0, 3.0], [4.0, 5.0]]
        b = np.zeros(2)
        made(ini.InitDesc("fc_bias"), b)
        assert b.tolist() == [-1.0, -1.0]
        again = ini.create(made.dumps())
        assert again == made
        # Through a variable's __init__ attribute: _init_weight whatever the name.
        g = np.zeros(2)
        ini.Zero()(ini.InitDesc("bn_gamma", attrs={"__init__": made.dumps()}), g)
        assert g.tolist() == [2.0, 3.0]
        with pytest.warns(UserWarning, match="overriding"):
            ini.register(Arange)
    finally:
        ini._REGISTRY.pop("arange", None)


def test_alias_registers_extra_names():
    @ini.alias("twin_a", "Twin_B")
    class Twin(ini.Initializer):
        def _init_weight(self, _, arr):
            arr[...] = 2

    try:
        assert type(ini.create("twin_a")) is Twin and type(ini.create("twin_b")) is Twin
    finally:
        ini._REGISTRY.pop("twin_a", None)
        ini._REGISTRY.pop("twin_b", None)


# --- Load ----------------------------------------------------------------------------------


def test_load_from_npz_file(tmp_path):
    path = tmp_path / "p.npz"
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.savez(path, **{"arg:fc_weight": w, "aux:bn_moving_var": np.ones(2)})
    load = ini.Load(str(path), default_init=ini.Zero())
    got = np.full((2, 3), -1.0, dtype=np.float32)
    load(ini.InitDesc("fc_weight"), got)
    np.testing.assert_array_equal(got, w)
    mv = np.zeros(2, dtype=np.float16)
    ini.Load(path)("bn_moving_var", mv)  # os.PathLike works too
    assert mv.tolist() == [1.0, 1.0]
    other = np.ones(2)
    load(ini.InitDesc("other_bias"), other)
    assert other.tolist() == [0.0, 0.0]


def test_load_mxnet_params_file():
    load = ini.Load(os.path.join(GOLDEN, "mx_saved.params"))
    assert sorted(load.param) == ["bn_moving_var", "fc1_bias", "fc1_weight", "plain_int"]
    for key in ["arg:fc1_weight", "arg:fc1_bias", "aux:bn_moving_var", "plain_int"]:
        ref = ARRAYS[f"mx_saved/{key}"]
        got = load.param[key.split(":")[-1]]
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "junk.params"
    bad.write_bytes(b"not a parameter file at all")
    with pytest.raises(ValueError, match=r"junk\.params"):
        ini.Load(str(bad))


def test_load_errors_and_verbose(caplog):
    load = ini.Load({"w": np.zeros((2, 3))}, verbose=True)
    with pytest.raises(AssertionError, match=r"w.*\(3, 2\).*\(2, 3\)"):
        load("w", np.zeros((3, 2)))
    with pytest.raises(AssertionError, match="v"):
        load("v", np.zeros(2))
    with pytest.raises(AssertionError):
        ini.Load([np.zeros(2)])
    caplog.set_level(logging.INFO)
    load("w", np.ones((2, 3)))
    ini.Load({}, default_init=ini.One(), verbose=True)(ini.InitDesc("x_weight"), np.zeros(1))
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "w" in msgs and "x_weight" in msgs and "default" in msgs


# --- Mixed ---------------------------------------------------------------------------------


def test_mixed_error_names_the_parameter():
    # MXNet's message kept a literal "%s"; mxopt names the parameter.
    with pytest.raises(ValueError, match="fc_weight"):
        ini.Mixed(["weight"], [ini.One()])("fc_weight", np.zeros(1))


# --- FusedRNN beyond MXNet -------------------------------------------------------------------


def test_fusedrnn_accepts_string_init_and_round_trips():
    fused = ini.FusedRNN('["constant", {"value": 0.5}]', 2, 1, "gru")
    arr = np.zeros(cases.fused_size(3, 2, 1, 3, 1), dtype=np.float32)
    fused(ini.InitDesc("rnn_weight"), arr)
    # init() dispatches each piece by its name: weights get 0.5, biases 0.
    n_w = (3 + 2) * 2 * 3
    assert (arr[:n_w] == 0.5).all() and (arr[n_w:] == 0).all()
    again = ini.create(fused.dumps())
    assert again == fused
    by_name = ini.FusedRNN("one", 2, 1, "gru")
    assert by_name.dumps() == ini.FusedRNN(ini.One(), 2, 1, "gru").dumps()


def test_fusedrnn_bad_input():
    with pytest.raises(ValueError, match="mode"):
        ini.FusedRNN(None, 2, 1, "lstmx")(ini.InitDesc("w_weight"), np.zeros(64))
    with pytest.raises(ValueError, match="global_init"):
        ini.FusedRNN(None, 2, 1, "gru")._init_weight("w", np.zeros(cases.fused_size(3, 2, 1, 3, 1)))


# --- random initializers: statistics (fixed seeds, deterministic) ----------------------------


def _desc():
    return ini.InitDesc("fc_weight")


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_uniform_distribution(dtype):
    R.seed(11)
    arr = np.empty((400, 500), dtype=dtype)
    ini.Uniform(0.07)(_desc(), arr)
    x = arr.astype(np.float64)
    lo = float(np.array(-0.07, dtype=dtype))
    assert x.min() >= lo and x.max() < 0.07
    assert x.max() > 0.0699 and x.min() < -0.0699
    assert abs(x.mean()) < 0.0005
    assert abs(x.var() / (0.14**2 / 12) - 1) < 0.01


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_normal_distribution(dtype):
    R.seed(12)
    arr = np.empty((400, 500), dtype=dtype)
    ini.Normal(0.5)(_desc(), arr)
    x = arr.astype(np.float64)
    assert abs(x.mean()) < 0.005
    assert abs(x.std() / 0.5 - 1) < 0.01
    assert abs(np.mean(np.abs(x) < 0.5) - 0.6827) < 0.005
    assert np.abs(x).max() > 4 * 0.5 * 0.9  # the tails are there


def _xavier_scale(shape, factor_type, magnitude):
    hw = float(np.prod(shape[2:])) if len(shape) > 2 else 1.0
    fan_in, fan_out = shape[1] * hw, shape[0] * hw
    factor = {"avg": (fan_in + fan_out) / 2, "in": fan_in, "out": fan_out}[factor_type]
    return np.sqrt(magnitude / factor)


@pytest.mark.parametrize("rnd_type", ["uniform", "gaussian"])
@pytest.mark.parametrize("factor_type", ["avg", "in", "out"])
@pytest.mark.parametrize("magnitude", [3, 0.5])
def test_xavier_distribution(rnd_type, factor_type, magnitude):
    R.seed(13)
    shape = (64, 32, 5, 5)
    arr = np.empty(shape, dtype=np.float32)
    ini.Xavier(rnd_type, factor_type, magnitude)(_desc(), arr)
    s = _xavier_scale(shape, factor_type, magnitude)
    x = arr.astype(np.float64)
    assert abs(x.mean()) < 0.01 * s
    if rnd_type == "uniform":
        assert np.abs(x).max() <= s and np.abs(x).max() > 0.999 * s
        assert abs(x.std() / (s / np.sqrt(3)) - 1) < 0.01
    else:
        assert abs(x.std() / s - 1) < 0.01


def test_msraprelu_distribution():
    R.seed(14)
    shape = (128, 64, 3, 3)
    arr = np.empty(shape, dtype=np.float32)
    ini.MSRAPrelu("in", 0.5)(_desc(), arr)
    s = _xavier_scale(shape, "in", 2 / (1 + 0.25))
    assert abs(arr.std() / s - 1) < 0.01
    assert ini.MSRAPrelu().rnd_type == "gaussian"


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 2, 3), (64, 64), (16, 4, 2, 2)])
@pytest.mark.parametrize("rand_type", ["uniform", "normal"])
def test_orthogonal(shape, rand_type):
    R.seed(15)
    arr = np.empty(shape, dtype=np.float32)
    ini.Orthogonal(scale=1.5, rand_type=rand_type)(_desc(), arr)
    m = arr.reshape(shape[0], -1).astype(np.float64) / 1.5
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=2e-6)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (6, 2, 2, 1)])
@pytest.mark.parametrize("rand_type", ["uniform", "normal"])
def test_orthogonal_spans_the_subspace_of_mxnets_svd_factor(shape, rand_type):
    # MXNet's factor comes from NumPy's SVD of the same draws: another basis of the same
    # row (nout <= nin) or column space, so the orthogonal projectors agree.
    nout, nin = shape[0], int(np.prod(shape[1:]))
    R.seed(4)
    drawn = np.empty((nout, nin), dtype=np.float32)
    (R.uniform(-1.0, 1.0, drawn) if rand_type == "uniform" else R.normal(0.0, 1.0, drawn))
    u, _, v = np.linalg.svd(drawn.astype(np.float64), full_matrices=False)
    svd = u if u.shape == drawn.shape else v
    R.seed(4)
    arr = np.empty(shape, dtype=np.float64)
    ini.Orthogonal(scale=2.0, rand_type=rand_type)(_desc(), arr)
    q = arr.reshape(nout, nin) / 2.0
    if nout <= nin:
        np.testing.assert_allclose(q.T @ q, svd.T @ svd, atol=1e-10)
    else:
        np.testing.assert_allclose(q @ q.T, svd @ svd.T, atol=1e-10)


def test_orthogonal_is_haar_for_normal_draws():
    # A QR factor without the sign correction would always start with a negative entry.
    firsts = []
    for seed in range(300):
        R.seed(seed)
        arr = np.empty((4, 3), dtype=np.float64)
        ini.Orthogonal(scale=1.0, rand_type="normal")(_desc(), arr)
        firsts.append(arr[0, 0])
    firsts = np.array(firsts)
    assert 0.4 < (firsts > 0).mean() < 0.6
    assert abs((firsts**2).mean() - 1 / 4) < 0.04  # E[q11^2] = 1/m, m = 4


def test_orthogonal_dtypes_and_layouts_round_the_float64_values():
    def draw(arr):
        R.seed(8)
        ini.Orthogonal()(_desc(), arr)
        return arr

    wide = draw(np.empty((6, 4), dtype=np.float64))
    for dtype in (np.float16, np.float32):
        np.testing.assert_array_equal(draw(np.empty((6, 4), dtype=dtype)), wide.astype(dtype))
    view = draw(np.zeros((6, 8), dtype=np.float32)[:, ::2])
    np.testing.assert_array_equal(view, wide.astype(np.float32))
    ints = draw(np.empty((6, 4), dtype=np.int32))
    np.testing.assert_array_equal(ints, wide.astype(np.int32))
    with pytest.raises(ValueError, match="scale"):
        ini.Orthogonal(scale=float("nan"))(_desc(), np.zeros((2, 2)))


def test_same_seed_same_array_successive_draws_differ():
    def draw():
        a = np.empty((50, 40), dtype=np.float32)
        b = np.empty((50, 40), dtype=np.float32)
        ini.Xavier()(_desc(), a)
        ini.Xavier()(_desc(), b)
        return a, b

    R.seed(99)
    a1, b1 = draw()
    R.seed(99)
    a2, b2 = draw()
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(a1, b1)
    R.seed(100)
    a3, _ = draw()
    assert not np.array_equal(a1, a3)


def test_random_fill_of_non_contiguous_and_int_arrays():
    R.seed(1)
    base = np.zeros((10, 10), dtype=np.float32)
    view = base[:, ::2]
    ini.Uniform(1.0)(_desc(), view)
    assert (base[:, 1::2] == 0).all() and (np.abs(view) > 0).mean() > 0.9
    ints = np.zeros((100,), dtype=np.int32)
    ini.Uniform(10.0)(_desc(), ints)
    assert ints.min() >= -10 and ints.max() < 10 and ints.any()


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [ini.Xavier, ini.MSRAPrelu, ini.Orthogonal])
def test_random_needs_two_dims(make):
    with pytest.raises(ValueError, match=r"fc_weight.*shape"):
        make()(_desc(), np.zeros(4, dtype=np.float32))


def test_bilinear_needs_four_dims():
    for shape in [(4,), (4, 4), (2, 4, 4)]:
        with pytest.raises(ValueError, match="4-D"):
            ini.Bilinear()(_desc(), np.zeros(shape))


def test_orthogonal_bad_rand_type():
    with pytest.raises(ValueError, match="rand_type"):
        ini.Orthogonal(rand_type="gaussian")(_desc(), np.zeros((2, 2)))


def test_xavier_messages():
    with pytest.raises(ValueError, match="factor_type"):
        ini.Xavier(factor_type="fan")(_desc(), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="rnd_type"):
        ini.Xavier(rnd_type="normal")(_desc(), np.zeros((2, 2)))
    for magnitude in [-1.0, float("nan"), float("inf")]:
        arr = np.zeros((2, 2))
        with pytest.raises(ValueError, match="magnitude must be a finite non-negative"):
            ini.Xavier(magnitude=magnitude)(_desc(), arr)
        assert not arr.any()


@pytest.mark.parametrize("shape", [(2, 3, 0, 4), (0, 0), (5, 0)])
@pytest.mark.parametrize("factor_type", ["avg", "in", "out"])
def test_xavier_of_an_empty_array_draws_nothing(shape, factor_type):
    """A zero fan (MXNet divides by zero) only happens for an empty array: nothing to do,
    and the random stream does not move."""
    R.seed(4)
    ini.Xavier(factor_type=factor_type)(_desc(), np.zeros(shape, np.float32))
    ini.MSRAPrelu(factor_type=factor_type)(_desc(), np.zeros(shape, np.float32))
    after = np.zeros(3, np.float32)
    R.uniform(0, 1, after)
    R.seed(4)
    fresh = np.zeros(3, np.float32)
    R.uniform(0, 1, fresh)
    np.testing.assert_array_equal(after, fresh)


def test_create_unknown_name_message():
    with pytest.raises(AssertionError, match="nope"):
        ini.create("NoPe")


# --- reliability: write-then-fail, damaged .params files -----------------------------------


def test_lstmbias_checks_the_shape_before_writing():
    arr = np.array(7.0, dtype=np.float32)
    with pytest.raises(IndexError, match="LSTMBias"):
        ini.LSTMBias()(ini.InitDesc("x", attrs={"__init__": "lstmbias"}), arr)
    with pytest.raises(ValueError, match="LSTMBias"):
        ini.LSTMBias()._init_weight("x", arr)
    assert arr == 7.0
    ok = np.full(8, 5.0)
    ini.LSTMBias(forget_bias=2.5)._init_weight("x", ok)
    assert ok.tolist() == [0, 0, 2.5, 2.5, 0, 0, 0, 0]


def test_load_shape_mismatch_writes_nothing_even_broadcastable():
    load = ini.Load({"w": np.arange(3.0)})
    target = np.full((2, 3), -1.0)
    with pytest.raises(AssertionError, match="shape"):
        load("w", target)
    assert (target == -1.0).all()


def _mx_record(shape, dtype_flag=0, payload=None, magic=0xF993FAC9):
    import struct

    head = struct.pack("<Iii", magic, 0, len(shape)) + struct.pack(f"<{len(shape)}q", *shape)
    body = struct.pack("<iii", 1, 0, dtype_flag)
    if payload is None:
        size = 4
        for dim in shape:
            size *= max(dim, 0)
        payload = b"\0" * size
    return head + body + payload


def _mx_file(records, names, count=None, nnames=None, lengths=None):
    import struct

    out = struct.pack("<QQQ", 0x112, 0, len(records) if count is None else count)
    out += b"".join(records)
    out += struct.pack("<Q", len(names) if nnames is None else nnames)
    for i, name in enumerate(names):
        raw = name.encode()
        out += struct.pack("<Q", len(raw) if lengths is None else lengths[i]) + raw
    return out


def _load_bytes(tmp_path, blob):
    path = tmp_path / "bad.params"
    path.write_bytes(blob)
    return ini._read_mx_params(str(path))


def test_params_reader_round_trips_its_own_records(tmp_path):
    scalar = _mx_record((), payload=b"\0\0\x80?", magic=0xF993FACA)  # V3: 0-d
    empty = _mx_record((), payload=b"")[:12]  # V2 with ndim 0: an empty NDArray
    blob = _mx_file([_mx_record((2, 3)), scalar, empty], ["a", "b", "c"])
    got = _load_bytes(tmp_path, blob)
    assert got["a"].shape == (2, 3) and got["b"].shape == () and got["b"] == 1.0
    assert got["c"].shape == (0,)


def test_params_truncated_at_every_byte_is_a_value_error(tmp_path):
    import time

    with open(os.path.join(GOLDEN, "mx_saved.params"), "rb") as fh:
        full = fh.read()
    path = tmp_path / "cut.params"
    start = time.perf_counter()
    for cut in range(len(full)):
        path.write_bytes(full[:cut])
        with pytest.raises(ValueError, match=r"cut\.params"):
            ini._read_mx_params(str(path))
    path.write_bytes(full)
    assert sorted(ini._read_mx_params(str(path))) == [
        "arg:fc1_bias",
        "arg:fc1_weight",
        "aux:bn_moving_var",
        "plain_int",
    ]
    assert time.perf_counter() - start < 10


def test_params_trailing_garbage_is_a_value_error(tmp_path):
    with open(os.path.join(GOLDEN, "mx_saved.params"), "rb") as fh:
        full = fh.read()
    for extra in (b"\0", b"garbage", b"\0" * 8):
        with pytest.raises(ValueError, match="unexpected bytes"):
            _load_bytes(tmp_path, full + extra)


@pytest.mark.parametrize(
    "blob, message",
    [
        (_mx_file([_mx_record((-1, 4), payload=b"")], ["a"]), "negative dimension"),
        (_mx_file([_mx_record((2, -8), payload=b"")], ["a"]), "negative dimension"),
        (_mx_file([_mx_record((1 << 62, 4), payload=b"")], ["a"]), "needs"),
        (_mx_file([_mx_record((1 << 32, 1 << 32), payload=b"")], ["a"]), "needs"),
        (_mx_file([_mx_record((1 << 31,) * 8, payload=b"")], ["a"]), "needs"),
        (_mx_file([_mx_record((3,))], ["a"], count=1 << 62), "announces"),
        (_mx_file([_mx_record((3,))], ["a"], count=(1 << 64) - 1), "announces"),
        (_mx_file([_mx_record((3,))], ["a"], nnames=1 << 60), "name for every array"),
        (_mx_file([_mx_record((3,))], ["a"], lengths=[1 << 60]), "long"),
        (_mx_file([_mx_record((3,))], ["a"], lengths=[(1 << 64) - 1]), "long"),
        (_mx_file([_mx_record((3,))], ["a"], lengths=[2]), "long"),
        (_mx_file([_mx_record((3,), dtype_flag=99)], ["a"]), "dtype"),
        (_mx_file([_mx_record((1,) * 40)], ["a"]), "dimensions"),
        (_mx_file([b"\xc9\xfa\x93\xf9\0\0\0\0\xfe\xff\xff\xff"], ["a"]), "dimensions"),
        (_mx_file([_mx_record((3,), magic=0x1234)], ["a"]), "record format"),
        (_mx_file([_mx_record((3,))], ["a", "b"]), "name for every array"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_params_crafted_files_fail_fast(tmp_path, blob, message):
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        _load_bytes(tmp_path, blob)
    assert time.perf_counter() - start < 1


def test_params_name_that_is_not_utf8(tmp_path):
    import struct

    blob = _mx_file([_mx_record((3,))], [])[:-8]
    blob += struct.pack("<QQ", 1, 2) + b"\xff\xfe"
    with pytest.raises(ValueError, match="UTF-8"):
        _load_bytes(tmp_path, blob)


def test_write_then_fail_checks_survive_python_dash_O():
    import subprocess

    script = """
import warnings
import numpy as np
from mxopt import initializer as ini
warnings.simplefilter("ignore")
results = []
arr = np.full((2, 6), 7.0)
try:
    ini.Zero()("stn_loc_bias", arr)
except AssertionError:
    results.append((arr == 7.0).all())
target = np.full((2, 3), 7.0)
try:
    ini.Load({"w": np.arange(3.0)})("w", target)
except AssertionError:
    results.append((target == 7.0).all())
rnn = np.full(10, 7.0)
try:
    ini.FusedRNN(ini.One(), num_hidden=2, num_layers=1, mode="lstm")(ini.InitDesc("r_weight"), rnn)
except AssertionError:
    results.append((rnn == 7.0).all())
print(len(results), all(results))
"""
    result = subprocess.run(
        [sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "True"]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("nonexistent",), {}, "nonexistent is not a registered initializer"),
        ((5,), {}, "initializer must be a str, got int"),
        (('{"initializer": 5}',), {}, "initializer must be a str"),
        (('["constant"]',), {}, r"JSON list spec must be \[name, \{arguments\}\]"),
        (("[1, 2]",), {}, "JSON list spec"),
        ((ini.One(), 1), {}, "no further arguments"),
    ],
)
def test_create_errors_are_value_errors_that_survive_asserts(args, kwargs, match):
    # Still AssertionErrors (MXNet's asserts), now also ValueErrors, and kept under -O.
    with pytest.raises(ValueError, match=match) as info:
        ini.create(*args, **kwargs)
    assert isinstance(info.value, AssertionError)


@pytest.mark.parametrize("spec", [(), ({},), ('{"scale": 1}',)])
def test_create_without_a_name_is_a_type_error(spec):
    with pytest.raises(TypeError, match="create needs the initializer") as info:
        ini.create(*spec)
    assert isinstance(info.value, KeyError)  # what MXNet raised


def test_unknown_init_attribute_names_itself():
    arr = np.full(3, 7.0, dtype=np.float32)
    with pytest.raises(ValueError, match="nope is not a registered"):
        ini.Uniform()(ini.InitDesc("x", {"__init__": "nope"}), arr)
    assert (arr == 7).all()


@pytest.mark.parametrize("attrs", [["__init__"], "zero", 5])
def test_init_desc_attrs_must_be_a_dict(attrs):
    with pytest.raises(TypeError, match="attrs: expected a dict"):
        ini.InitDesc("fc_weight", attrs)


@pytest.mark.parametrize("falsy", [None, {}, "", []])
def test_init_desc_falsy_attrs_become_a_fresh_dict(falsy):
    assert ini.InitDesc("fc_weight", falsy).attrs == {}


@pytest.mark.parametrize(
    "init",
    [ini.Xavier(), ini.Orthogonal(), ini.Bilinear(), ini.LSTMBias(), ini.Uniform(), ini.Zero()],
    ids=lambda init: type(init).__name__,
)
@pytest.mark.parametrize("arr", [None, [1.0, 2.0]], ids=["None", "list"])
def test_non_array_targets_are_named(init, arr):
    with pytest.raises(TypeError, match=r"arr: expected a numpy\.ndarray"):
        init(ini.InitDesc("fc_weight"), arr)
    with pytest.raises(TypeError, match=r"arr: expected a numpy\.ndarray"):
        ini.Load({"fc_weight": np.ones(2)})("fc_weight", arr)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda v: ini.Uniform(v), "Uniform: scale"),
        (lambda v: ini.Normal(v), "Normal: sigma"),
        (lambda v: ini.Orthogonal(v), "Orthogonal: scale"),
        (lambda v: ini.Xavier(magnitude=v), "Xavier: magnitude"),
        (lambda v: ini.MSRAPrelu(slope=v), "MSRAPrelu: slope"),
        (lambda v: ini.LSTMBias(v), "LSTMBias: forget_bias"),
    ],
)
@pytest.mark.parametrize("value", ["a", None])
def test_numeric_arguments_are_type_checked(make, match, value):
    with pytest.raises(TypeError, match=match):
        make(value)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((5, 2, 1, "lstm"), TypeError, "init must be an Initializer"),
        (([1], 2, 1, "lstm"), TypeError, "init must be an Initializer"),
        ((None, 0, 1, "lstm"), ValueError, "num_hidden must be at least 1"),
        ((None, 2, 0, "lstm"), ValueError, "num_layers must be at least 1"),
        ((None, 2.0, 1, "lstm"), TypeError, "num_hidden must be an int"),
        ((None, 2, 1, "lstm", False, "a"), TypeError, "forget_bias"),
    ],
)
def test_fused_rnn_arguments(args, error, match):
    # MXNet: AttributeError / ZeroDivisionError on the first call.
    with pytest.raises(error, match=match):
        ini.FusedRNN(*args)


@pytest.mark.parametrize(
    "init, name",
    [
        (lambda: ini.Constant(True), "fc_weight"),
        (lambda: ini.Constant(np.bool_(False)), "fc_weight"),
        (lambda: ini.FusedRNN(ini.One(), 2, 1, "lstm", forget_bias=True), "rnn_weight"),
    ],
)
def test_bool_fill_value_is_refused_before_writing(init, name):
    # MXNet's fill operator cannot parse a bool (MXNetError); a slice fill takes float(bool).
    size = cases.fused_size(3, 2, 1, 4, 1)
    arr = np.full((size,), -9.0, np.float32)
    with pytest.raises(TypeError, match="must be a real number, got bool"):
        init()(ini.InitDesc(name), arr)
    assert (arr == -9.0).all()
    arr = np.zeros(8, np.float32)
    ini.LSTMBias(forget_bias=True)(ini.InitDesc("lstm_weight"), arr)
    assert arr.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]


def test_load_and_mixed_argument_errors():
    with pytest.raises(TypeError, match="param: names must be str"):
        ini.Load({1: np.ones(3)})
    with pytest.raises(ValueError, match="param must be a dict") as info:
        ini.Load([np.ones(3)])
    assert isinstance(info.value, AssertionError)
    with pytest.raises(ValueError, match="no default_init"):
        ini.Load({})("w", np.ones(2))
    with pytest.raises(ValueError, match="patterns: '\\(' is not a regular expression"):
        ini.Mixed(["("], [ini.One()])
    with pytest.raises(ValueError, match="1 patterns but 0 initializers"):
        ini.Mixed([".*"], [])
