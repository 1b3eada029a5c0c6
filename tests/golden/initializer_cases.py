"""Deterministic initializer cases shared by the MXNet 1.6 golden generator and the tests.

Each case is ``fn(ini, A) -> dict[str, array]`` where ``ini`` is the initializer module
(``mxnet.initializer`` or ``mxopt.initializer``) and ``A`` an array adaptor with
``full(shape, value, dtype)`` and ``np(arr)`` (to a NumPy array). A case may raise instead;
the golden file records the exception's class name. This file imports neither library.
"""

import numpy as np

DTYPES = ("float16", "float32", "float64")


def tag(name):
    """A name-dependent number, so every FusedRNN piece gets distinct values."""
    return sum((k + 1) * ord(ch) for k, ch in enumerate(name)) % 997


def make_tagged(ini):
    """A global initializer that writes name-dependent ramps into weights, -tag into biases."""

    class Tagged(ini.Initializer):
        def _init_weight(self, name, arr):
            ramp = tag(name) + np.arange(arr.size, dtype=np.float64).reshape(arr.shape) / 1000
            arr[:] = ramp.astype(np.float32)

        def _init_bias(self, name, arr):
            arr[:] = -tag(name)

    return Tagged()


def _apply(ini, A, init, name, shape, dtype="float32", legacy=False, attrs=None, fill=-9.0):
    arr = A.full(shape, fill, dtype)
    desc = name if legacy else ini.InitDesc(name, attrs=attrs)
    init(desc, arr)
    return A.np(arr)


def _all_dtypes(ini, A, make, name, shape, **kw):
    return {dt: _apply(ini, A, make(), name, shape, dt, **kw) for dt in DTYPES}


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def zero(ini, A):
    return _all_dtypes(ini, A, ini.Zero, "fc_weight", (2, 3))


@case
def one(ini, A):
    return _all_dtypes(ini, A, ini.One, "fc_weight", (2, 3))


@case
def constant_scalar(ini, A):
    return _all_dtypes(ini, A, lambda: ini.Constant(0.3), "fc_weight", (2, 3))


@case
def constant_array(ini, A):
    value = np.array([[1.5], [-2.25]], dtype=np.float32)
    return {"a": _apply(ini, A, ini.Constant(value), "fc_weight", (2, 3))}


@case
def bilinear(ini, A):
    out = {}
    for shape in [
        (1, 1, 4, 4),
        (2, 3, 3, 5),
        (1, 1, 5, 3),
        (1, 2, 6, 6),
        (1, 1, 1, 1),
        (2, 1, 7, 2),
    ]:
        for dt in DTYPES:
            key = "x".join(map(str, shape)) + "_" + dt
            out[key] = _apply(ini, A, ini.Bilinear(), "up_weight", shape, dt)
    return out


@case
def bilinear_legacy_upsampling(ini, A):
    return {"a": _apply(ini, A, ini.Uniform(), "upsampling0_weight", (1, 2, 4, 6), legacy=True)}


@case
def lstmbias(ini, A):
    out = {}
    for n, fb in [(8, 1.0), (12, 2.5), (10, 1.0), (3, 1.0)]:
        out[f"{n}_{fb}"] = _apply(ini, A, ini.LSTMBias(forget_bias=fb), "lstm_weight", (n,))
    out["attr"] = _apply(
        ini,
        A,
        ini.Zero(),
        "lstm_i2h_bias",
        (16,),
        attrs={"__init__": ini.LSTMBias(forget_bias=3.0).dumps()},
    )
    return out


# Name routing with a global One(): what each name becomes (or which error it raises).
DISPATCH_NAMES = [
    "fc_weight",
    "fc_bias",
    "bn_gamma",
    "bn_beta",
    "act_min",
    "act_max",
    "myweight",
    "fc_weight_quantize_bias",
    "fc_bias_quantize",
    "bn_moving_mean",
    "bn_moving_var",
    "bn_moving_inv_var",
    "bn_moving_avg",
    "bn_running_mean",
    "stn_loc_weight",
    "stn_loc_bias",
    "stn_loc_other",
    "conv_data",
    "gamma_beta",
    "weight_bias",
]


def _dispatch(legacy):
    def fn(ini, A):
        out = {}
        for name in DISPATCH_NAMES:
            shape = (6,) if name.startswith("stn_loc") else (2, 3)
            try:
                out[name] = _apply(ini, A, ini.Constant(7.0), name, shape, legacy=legacy)
            except Exception as e:
                out[name] = type(e).__name__
        return out

    fn.__name__ = "dispatch_legacy" if legacy else "dispatch_desc"
    return fn


case(_dispatch(False))
case(_dispatch(True))


@case
def dispatch_init_attr(ini, A):
    return {
        "one_on_bias": _apply(ini, A, ini.Zero(), "fc_bias", (3,), attrs={"__init__": "one"}),
        "json_on_gamma": _apply(
            ini, A, ini.Zero(), "bn_gamma", (3,), attrs={"__init__": '["constant", {"value": 2.5}]'}
        ),
        "on_odd_name": _apply(ini, A, ini.Zero(), "whatever", (2,), attrs={"__init__": "ones"}),
        "empty_attr": _apply(ini, A, ini.One(), "fc_bias", (2,), attrs={"__init__": ""}),
    }


@case
def global_lstmbias(ini, A):
    return {
        "weight": _apply(ini, A, ini.LSTMBias(2.0), "l_weight", (8, 2)),
        "bias": _apply(ini, A, ini.LSTMBias(2.0), "l_bias", (8,)),
    }


@case
def base_weight_not_overridden(ini, A):
    return {"a": _apply(ini, A, ini.Initializer(), "fc_weight", (2,))}


def _fused(
    ini, A, init, size, num_hidden, num_layers, mode, bidirectional, global_init, forget_bias=1.0
):
    arr = A.full((size,), -9.0, "float32")
    fused = ini.FusedRNN(init, num_hidden, num_layers, mode, bidirectional, forget_bias)
    fused(ini.InitDesc("rnn_weight", global_init=global_init), arr)
    return A.np(arr)


def fused_size(ni, h, nl, m, b):
    return (ni + h + 2) * h * m * b + (nl - 1) * m * h * (h + b * h + 2) * b


@case
def fusedrnn(ini, A):
    tagged = make_tagged(ini)
    out = {}
    for mode, m in [("lstm", 4), ("gru", 3), ("rnn_tanh", 1), ("rnn_relu", 1)]:
        for nl, b in [(1, 1), (2, 1), (2, 2)]:
            size = fused_size(3, 2, nl, m, b)
            key = f"{mode}_{nl}_{b}"
            out[key + "_global"] = _fused(ini, A, None, size, 2, nl, mode, b == 2, tagged, 1.5)
    size = fused_size(3, 2, 1, 4, 1)
    out["lstm_init_one"] = _fused(ini, A, ini.One(), size, 2, 1, "lstm", False, tagged)
    out["lstm_global_constant"] = _fused(ini, A, None, size, 2, 1, "lstm", False, ini.Constant(7.0))
    # Through a variable's __init__ attribute, as a fused RNN's parameters get it in MXNet;
    # the global initializer is the one that is called.
    arr = A.full((fused_size(4, 3, 2, 3, 2),), -9.0, "float32")
    attrs = {"__init__": ini.FusedRNN(None, 3, 2, "gru", True).dumps()}
    tagged(ini.InitDesc("rnn_parameters", attrs=attrs), arr)
    out["gru_attr"] = A.np(arr)
    return out


@case
def fill_signed_zero(ini, A):
    """MXNet fills a whole array with +0 for a -0.0 value; a slice assignment keeps -0.0."""
    out = _all_dtypes(ini, A, lambda: ini.Constant(-0.0), "fc_weight", (2, 3))
    out["lstmbias"] = _apply(ini, A, ini.LSTMBias(forget_bias=-0.0), "lstm_weight", (8,))
    size = fused_size(3, 2, 1, 4, 1)
    out["fused"] = _fused(ini, A, ini.One(), size, 2, 1, "lstm", False, None, forget_bias=-0.0)
    return out


@case
def fill_operator_scalars(ini, A):
    """MXNet's fill parses str(value) as a double and casts it to float16 through float32;
    its slice assignment (LSTMBias) takes float(value)."""
    near_tie = 1 + 2**-11 + 2**-40  # float32 rounds it to a float16 tie
    return {
        "f16_repr_into_f32": _apply(ini, A, ini.Constant(np.float16(65504)), "w_weight", (2,)),
        "f32_repr_into_f64": _apply(
            ini, A, ini.Constant(np.float32(0.1)), "w_weight", (2,), "float64"
        ),
        "near_tie_f16": _apply(ini, A, ini.Constant(near_tie), "w_weight", (2,), "float16"),
        "lstmbias_f32_into_f64": _apply(
            ini, A, ini.LSTMBias(np.float32(0.1)), "l_weight", (4,), "float64"
        ),
        "lstmbias_near_tie_f16": _apply(
            ini, A, ini.LSTMBias(near_tie), "l_weight", (4,), "float16"
        ),
    }


@case
def fusedrnn_bad_size(ini, A):
    return {"a": _fused(ini, A, ini.One(), 50, 2, 1, "lstm", False, None)}


@case
def load_dict(ini, A):
    params = {
        "arg:fc_weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "aux:bn_moving_mean": np.array([0.5, 1.5], dtype=np.float32),
        "plain": np.array([3.0], dtype=np.float64),
    }
    params = {k: A.from_np(v) for k, v in params.items()}
    load = ini.Load(params, default_init=ini.Constant(-1.0))
    out = {}
    for name, shape in [
        ("fc_weight", (2, 3)),
        ("bn_moving_mean", (2,)),
        ("plain", (1,)),
        ("other_weight", (2, 2)),
    ]:
        arr = A.full(shape, -9.0, "float32")
        load(ini.InitDesc(name), arr)
        out[name] = A.np(arr)
    arr = A.full((2,), -9.0, "float16")
    load(ini.InitDesc("bn_moving_mean"), arr)
    out["cast_f16"] = A.np(arr)
    return out


@case
def load_shape_mismatch(ini, A):
    load = ini.Load({"w": A.from_np(np.zeros((2, 3), np.float32))})
    return {"a": _apply(ini, A, load, "w", (3, 2))}


@case
def load_missing_without_default(ini, A):
    load = ini.Load({"w": A.from_np(np.zeros((2, 3), np.float32))})
    return {"a": _apply(ini, A, load, "v", (3, 2))}


def setter(value):
    """A plain callable initializer (Mixed accepts any), so routing is visible."""

    def init(name, arr):
        arr[:] = value

    return init


@case
def mixed(ini, A):
    mix = ini.Mixed(
        ["weight", ".*bias", "bn_", ".*"], [setter(1.0), setter(2.0), setter(3.0), setter(4.0)]
    )
    out = {}
    for name in ["fc_weight", "weight_x", "fc_bias", "bn_gamma", "x_bn_gamma", "anything"]:
        out[name] = _apply(ini, A, mix, name, (2,))
    # Initializers inside Mixed still dispatch on the name: Constant on a bias gives 0.
    mix = ini.Mixed(["fc"], [ini.Constant(5.0)])
    out["constant_fc_weight"] = _apply(ini, A, mix, "fc_weight", (2,))
    out["constant_fc_bias"] = _apply(ini, A, mix, "fc_bias", (2,))
    return out


@case
def mixed_no_match(ini, A):
    return {"a": _apply(ini, A, ini.Mixed(["weight"], [ini.One()]), "fc_weight", (2,))}


DUMPS = {
    "zero": lambda ini: ini.Zero(),
    "one": lambda ini: ini.One(),
    "constant": lambda ini: ini.Constant(0.5),
    "constant_array": lambda ini: ini.Constant(np.array([[1.0, 2.0]], dtype=np.float32)),
    "uniform": lambda ini: ini.Uniform(0.07),
    "uniform_default": lambda ini: ini.Uniform(),
    "normal": lambda ini: ini.Normal(sigma=0.01),
    "orthogonal": lambda ini: ini.Orthogonal(),
    "orthogonal_normal": lambda ini: ini.Orthogonal(scale=2, rand_type="normal"),
    "xavier": lambda ini: ini.Xavier(),
    "xavier_kw": lambda ini: ini.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2.34),
    "msraprelu": lambda ini: ini.MSRAPrelu(),
    "msraprelu_kw": lambda ini: ini.MSRAPrelu("out", 0.1),
    "bilinear": lambda ini: ini.Bilinear(),
    "lstmbias": lambda ini: ini.LSTMBias(),
    "fusedrnn_none": lambda ini: ini.FusedRNN(None, 4, 1, "lstm"),
    "fusedrnn_xavier": lambda ini: ini.FusedRNN(ini.Xavier(), 4, 2, "gru", True, 0.5),
}

CREATE = {
    "zeros": lambda ini: ini.create("zeros"),
    "Xavier_kw": lambda ini: ini.create("Xavier", rnd_type="gaussian", magnitude=2),
    "json_list": lambda ini: ini.create('["normal", {"sigma": 0.5}]'),
    "json_obj": lambda ini: ini.create('{"initializer": "uniform", "scale": 0.2}'),
    "dict": lambda ini: ini.create({"initializer": "one"}),
    "kw": lambda ini: ini.create(initializer="constant", value=3),
    "positional": lambda ini: ini.create("uniform", 0.3),
    "roundtrip_msra": lambda ini: ini.create(ini.MSRAPrelu("in", 0.5).dumps()),
    "roundtrip_fused_none": lambda ini: ini.create(ini.FusedRNN(None, 4, 1, "lstm").dumps()),
    "unknown": lambda ini: ini.create("nope"),
    "instance_extra": lambda ini: ini.create(ini.One(), 3),
    "not_string": lambda ini: ini.create(3),
    "no_name": lambda ini: ini.create(),
    "json_list_extra": lambda ini: ini.create('["one", {}]', 1),
}

ERRORS = {
    "xavier_1d": lambda ini, A: ini.Xavier()(ini.InitDesc("w_weight"), A.full((4,), 0, "float32")),
    "xavier_bad_factor": lambda ini, A: ini.Xavier(factor_type="x")(
        ini.InitDesc("w_weight"), A.full((4, 4), 0, "float32")
    ),
    "xavier_bad_rnd": lambda ini, A: ini.Xavier(rnd_type="x")(
        ini.InitDesc("w_weight"), A.full((4, 4), 0, "float32")
    ),
    "msra_1d": lambda ini, A: ini.MSRAPrelu()(ini.InitDesc("w_weight"), A.full((4,), 0, "float32")),
    "orthogonal_bad_rand": lambda ini, A: ini.Orthogonal(rand_type="x")(
        ini.InitDesc("w_weight"), A.full((4, 4), 0, "float32")
    ),
    "bilinear_2d": lambda ini, A: ini.Bilinear()(
        ini.InitDesc("w_weight"), A.full((4, 4), 0, "float32")
    ),
    "legacy_name_not_str": lambda ini, A: ini.One()._legacy_init(3, A.full((3,), 0, "float32")),
    "legacy_arr_not_array": lambda ini, A: ini.One()._legacy_init("a_weight", [0.0, 0.0]),
    "legacy_stn_loc_bias_bad": lambda ini, A: ini.One()("stn_loc_bias", A.full((3,), 0, "float32")),
    "hash": lambda ini, A: hash(ini.One()),
    "register_non_initializer": lambda ini, A: ini.register(int),
    "mixed_length_mismatch": lambda ini, A: ini.Mixed(["a"], []),
}
