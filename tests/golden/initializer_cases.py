"""Deterministic initializer cases shared by the MXNet 1.6 golden generator and the tests.

Each case is ``fn(I, A) -> dict[str, array]`` where ``I`` is the initializer module
(``mxnet.initializer`` or ``mxopt.initializer``) and ``A`` an array adaptor with
``full(shape, value, dtype)`` and ``np(arr)`` (to a NumPy array). A case may raise instead;
the golden file records the exception's class name. This file imports neither library.
"""

import numpy as np

DTYPES = ("float16", "float32", "float64")


def tag(name):
    """A name-dependent number, so every FusedRNN piece gets distinct values."""
    return sum((k + 1) * ord(ch) for k, ch in enumerate(name)) % 997


def make_tagged(I):
    """A global initializer that writes name-dependent ramps into weights, -tag into biases."""

    class Tagged(I.Initializer):
        def _init_weight(self, name, arr):
            ramp = tag(name) + np.arange(arr.size, dtype=np.float64).reshape(arr.shape) / 1000
            arr[:] = ramp.astype(np.float32)

        def _init_bias(self, name, arr):
            arr[:] = -tag(name)

    return Tagged()


def _apply(I, A, init, name, shape, dtype="float32", legacy=False, attrs=None, fill=-9.0):
    arr = A.full(shape, fill, dtype)
    desc = name if legacy else I.InitDesc(name, attrs=attrs)
    init(desc, arr)
    return A.np(arr)


def _all_dtypes(I, A, make, name, shape, **kw):
    return {dt: _apply(I, A, make(), name, shape, dt, **kw) for dt in DTYPES}


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def zero(I, A):
    return _all_dtypes(I, A, I.Zero, "fc_weight", (2, 3))


@case
def one(I, A):
    return _all_dtypes(I, A, I.One, "fc_weight", (2, 3))


@case
def constant_scalar(I, A):
    return _all_dtypes(I, A, lambda: I.Constant(0.3), "fc_weight", (2, 3))


@case
def constant_array(I, A):
    value = np.array([[1.5], [-2.25]], dtype=np.float32)
    return {"a": _apply(I, A, I.Constant(value), "fc_weight", (2, 3))}


@case
def bilinear(I, A):
    out = {}
    for shape in [(1, 1, 4, 4), (2, 3, 3, 5), (1, 1, 5, 3), (1, 2, 6, 6), (1, 1, 1, 1),
                  (2, 1, 7, 2)]:
        for dt in DTYPES:
            key = "x".join(map(str, shape)) + "_" + dt
            out[key] = _apply(I, A, I.Bilinear(), "up_weight", shape, dt)
    return out


@case
def bilinear_legacy_upsampling(I, A):
    return {"a": _apply(I, A, I.Uniform(), "upsampling0_weight", (1, 2, 4, 6), legacy=True)}


@case
def lstmbias(I, A):
    out = {}
    for n, fb in [(8, 1.0), (12, 2.5), (10, 1.0), (3, 1.0)]:
        out[f"{n}_{fb}"] = _apply(I, A, I.LSTMBias(forget_bias=fb), "lstm_weight", (n,))
    out["attr"] = _apply(I, A, I.Zero(), "lstm_i2h_bias", (16,),
                         attrs={"__init__": I.LSTMBias(forget_bias=3.0).dumps()})
    return out


# Name routing with a global One(): what each name becomes (or which error it raises).
DISPATCH_NAMES = [
    "fc_weight", "fc_bias", "bn_gamma", "bn_beta", "act_min", "act_max", "myweight",
    "fc_weight_quantize_bias", "fc_bias_quantize", "bn_moving_mean", "bn_moving_var",
    "bn_moving_inv_var", "bn_moving_avg", "bn_running_mean", "stn_loc_weight", "stn_loc_bias",
    "stn_loc_other", "conv_data", "gamma_beta", "weight_bias",
]


def _dispatch(legacy):
    def fn(I, A):
        out = {}
        for name in DISPATCH_NAMES:
            shape = (6,) if name.startswith("stn_loc") else (2, 3)
            try:
                out[name] = _apply(I, A, I.Constant(7.0), name, shape, legacy=legacy)
            except Exception as e:
                out[name] = type(e).__name__
        return out

    fn.__name__ = "dispatch_legacy" if legacy else "dispatch_desc"
    return fn


case(_dispatch(False))
case(_dispatch(True))


@case
def dispatch_init_attr(I, A):
    return {
        "one_on_bias": _apply(I, A, I.Zero(), "fc_bias", (3,), attrs={"__init__": "one"}),
        "json_on_gamma": _apply(I, A, I.Zero(), "bn_gamma", (3,),
                                attrs={"__init__": '["constant", {"value": 2.5}]'}),
        "on_odd_name": _apply(I, A, I.Zero(), "whatever", (2,), attrs={"__init__": "ones"}),
        "empty_attr": _apply(I, A, I.One(), "fc_bias", (2,), attrs={"__init__": ""}),
    }


@case
def global_lstmbias(I, A):
    return {
        "weight": _apply(I, A, I.LSTMBias(2.0), "l_weight", (8, 2)),
        "bias": _apply(I, A, I.LSTMBias(2.0), "l_bias", (8,)),
    }


@case
def base_weight_not_overridden(I, A):
    return {"a": _apply(I, A, I.Initializer(), "fc_weight", (2,))}


def _fused(I, A, init, size, num_hidden, num_layers, mode, bidirectional, global_init,
           forget_bias=1.0):
    arr = A.full((size,), -9.0, "float32")
    fused = I.FusedRNN(init, num_hidden, num_layers, mode, bidirectional, forget_bias)
    desc = I.InitDesc("rnn_parameters", global_init=global_init)
    fused(desc, arr)
    return A.np(arr)


def fused_size(ni, h, nl, m, b):
    return (ni + h + 2) * h * m * b + (nl - 1) * m * h * (h + b * h + 2) * b


@case
def fusedrnn(I, A):
    tagged = make_tagged(I)
    out = {}
    for mode, m in [("lstm", 4), ("gru", 3), ("rnn_tanh", 1), ("rnn_relu", 1)]:
        for nl, b in [(1, 1), (2, 1), (2, 2)]:
            size = fused_size(3, 2, nl, m, b)
            key = f"{mode}_{nl}_{b}"
            out[key + "_global"] = _fused(I, A, None, size, 2, nl, mode, b == 2, tagged, 1.5)
    size = fused_size(3, 2, 1, 4, 1)
    out["lstm_init_one"] = _fused(I, A, I.One(), size, 2, 1, "lstm", False, tagged)
    out["lstm_global_constant"] = _fused(I, A, None, size, 2, 1, "lstm", False, I.Constant(7.0))
    return out


@case
def fusedrnn_bad_size(I, A):
    return {"a": _fused(I, A, I.One(), 50, 2, 1, "lstm", False, None)}


@case
def load_dict(I, A):
    params = {"arg:fc_weight": np.arange(6, dtype=np.float32).reshape(2, 3),
              "aux:bn_moving_mean": np.array([0.5, 1.5], dtype=np.float32),
              "plain": np.array([3.0], dtype=np.float64)}
    params = {k: A.from_np(v) for k, v in params.items()}
    load = I.Load(params, default_init=I.Constant(-1.0))
    out = {}
    for name, shape in [("fc_weight", (2, 3)), ("bn_moving_mean", (2,)), ("plain", (1,)),
                        ("other_weight", (2, 2))]:
        arr = A.full(shape, -9.0, "float32")
        load(I.InitDesc(name), arr)
        out[name] = A.np(arr)
    arr = A.full((2,), -9.0, "float16")
    load(I.InitDesc("bn_moving_mean"), arr)
    out["cast_f16"] = A.np(arr)
    return out


@case
def load_shape_mismatch(I, A):
    load = I.Load({"w": A.from_np(np.zeros((2, 3), np.float32))})
    return {"a": _apply(I, A, load, "w", (3, 2))}


@case
def load_missing_without_default(I, A):
    load = I.Load({"w": A.from_np(np.zeros((2, 3), np.float32))})
    return {"a": _apply(I, A, load, "v", (3, 2))}


@case
def mixed(I, A):
    mix = I.Mixed(["weight", ".*bias", "bn_", ".*"],
                  [I.Constant(1.0), I.Constant(2.0), I.Constant(3.0), I.Constant(4.0)])
    out = {}
    for name in ["fc_weight", "weight_x", "fc_bias", "bn_gamma", "x_bn_gamma", "anything"]:
        out[name] = _apply(I, A, mix, name, (2,))
    return out


@case
def mixed_no_match(I, A):
    return {"a": _apply(I, A, I.Mixed(["weight"], [I.One()]), "fc_weight", (2,))}


DUMPS = {
    "zero": lambda I: I.Zero(),
    "one": lambda I: I.One(),
    "constant": lambda I: I.Constant(0.5),
    "constant_array": lambda I: I.Constant(np.array([[1.0, 2.0]], dtype=np.float32)),
    "uniform": lambda I: I.Uniform(0.07),
    "uniform_default": lambda I: I.Uniform(),
    "normal": lambda I: I.Normal(sigma=0.01),
    "orthogonal": lambda I: I.Orthogonal(),
    "orthogonal_normal": lambda I: I.Orthogonal(scale=2, rand_type="normal"),
    "xavier": lambda I: I.Xavier(),
    "xavier_kw": lambda I: I.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2.34),
    "msraprelu": lambda I: I.MSRAPrelu(),
    "msraprelu_kw": lambda I: I.MSRAPrelu("out", 0.1),
    "bilinear": lambda I: I.Bilinear(),
    "lstmbias": lambda I: I.LSTMBias(),
    "fusedrnn_none": lambda I: I.FusedRNN(None, 4, 1, "lstm"),
    "fusedrnn_xavier": lambda I: I.FusedRNN(I.Xavier(), 4, 2, "gru", True, 0.5),
}

CREATE = {
    "zeros": lambda I: I.create("zeros"),
    "Xavier_kw": lambda I: I.create("Xavier", rnd_type="gaussian", magnitude=2),
    "json_list": lambda I: I.create('["normal", {"sigma": 0.5}]'),
    "json_obj": lambda I: I.create('{"initializer": "uniform", "scale": 0.2}'),
    "dict": lambda I: I.create({"initializer": "one"}),
    "kw": lambda I: I.create(initializer="constant", value=3),
    "positional": lambda I: I.create("uniform", 0.3),
    "roundtrip_msra": lambda I: I.create(I.MSRAPrelu("in", 0.5).dumps()),
    "roundtrip_fused_none": lambda I: I.create(I.FusedRNN(None, 4, 1, "lstm").dumps()),
    "unknown": lambda I: I.create("nope"),
    "instance_extra": lambda I: I.create(I.One(), 3),
    "not_string": lambda I: I.create(3),
    "no_name": lambda I: I.create(),
    "json_list_extra": lambda I: I.create('["one", {}]', 1),
}

ERRORS = {
    "xavier_1d": lambda I, A: I.Xavier()(I.InitDesc("w_weight"), A.full((4,), 0, "float32")),
    "xavier_bad_factor": lambda I, A: I.Xavier(factor_type="x")(
        I.InitDesc("w_weight"), A.full((4, 4), 0, "float32")),
    "xavier_bad_rnd": lambda I, A: I.Xavier(rnd_type="x")(
        I.InitDesc("w_weight"), A.full((4, 4), 0, "float32")),
    "msra_1d": lambda I, A: I.MSRAPrelu()(I.InitDesc("w_weight"), A.full((4,), 0, "float32")),
    "orthogonal_bad_rand": lambda I, A: I.Orthogonal(rand_type="x")(
        I.InitDesc("w_weight"), A.full((4, 4), 0, "float32")),
    "bilinear_2d": lambda I, A: I.Bilinear()(I.InitDesc("w_weight"), A.full((4, 4), 0,
                                                                             "float32")),
    "legacy_name_not_str": lambda I, A: I.One()._legacy_init(3, A.full((3,), 0, "float32")),
    "legacy_arr_not_array": lambda I, A: I.One()._legacy_init("a_weight", [0.0, 0.0]),
    "legacy_stn_loc_bias_bad": lambda I, A: I.One()(
        "stn_loc_bias", A.full((3,), 0, "float32")),
    "hash": lambda I, A: hash(I.One()),
    "register_non_initializer": lambda I, A: I.register(int),
    "mixed_length_mismatch": lambda I, A: I.Mixed(["a"], []),
}
