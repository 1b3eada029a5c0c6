"""Randomized differential test of mxopt's schedulers, optimizer-base scalars and
deterministic initializers against the MXNet 1.6.0 oracle (not part of the pytest run).

Run from the repository root with the development interpreter (mxopt importable; the
oracle interpreter is called as a subprocess)::

    PYTHONPATH=python /tmp/dev/bin/python tests/fuzz/vs_mxnet_schedules.py --cases 5000
    PYTHONPATH=python /tmp/dev/bin/python tests/fuzz/vs_mxnet_schedules.py --seed 1234 --cases 1 -v

Case ``i`` is drawn from seed ``--seed + i`` alone, so a mismatch printed with its seed
replays with ``--seed SEED --cases 1`` (``-v`` prints the case and both results). Each
case is a JSON description; both sides run it through ``run_case`` with their own library
(``--worker`` is the oracle side: it reads cases from a JSON file and writes the results).
Results encode floats by their exact bits (``float.hex``) and arrays by their bytes, and
record exceptions by class; mxopt's exception must be (a subclass of) MXNet's, unless
``documented_difference`` names the README entry that explains it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "golden"))
import initializer_cases  # noqa: E402

ORACLE = "/tmp/mx16/bin/python"

# ----------------------------------------------------------------------------- encoding


def encode(value):
    """A JSON form that keeps types and exact float bits."""
    if isinstance(value, BaseException):
        return ["raise", [k.__name__ for k in type(value).__mro__]]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float):
        return ["float", value.hex()]
    if isinstance(value, np.ndarray):
        return ["nd", str(value.dtype), list(value.shape), value.tobytes().hex()]
    if isinstance(value, np.generic):
        return ["np." + str(value.dtype), float(value).hex()]
    if isinstance(value, str):
        return ["str", str(value)]
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [encode(v) for v in value]]
    if isinstance(value, dict):
        items = sorted(((encode(k), encode(v)) for k, v in value.items()), key=repr)
        return ["dict", [list(item) for item in items]]
    return ["obj", type(value).__name__]


def attempt(fn, *args):
    """``fn(*args)``'s result, or the exception it raised, encoded."""
    try:
        return encode(fn(*args))
    except Exception as error:  # every exception is a result to compare
        return encode(error)


# ----------------------------------------------------------------------------- libraries


class FakeSym:
    """What MXNet's optimizer reads of a Symbol: ``attr_dict()`` and ``list_arguments()``."""

    def __init__(self, attrs, arguments):
        self.attrs, self.arguments = attrs, arguments

    def attr_dict(self):
        return self.attrs

    def list_arguments(self):
        return self.arguments


class Mults:
    """A ``param_dict`` value: MXNet reads only ``lr_mult`` and ``wd_mult``."""

    def __init__(self, lr_mult, wd_mult):
        self.lr_mult, self.wd_mult = lr_mult, wd_mult


class MxLib:
    def __init__(self):
        import mxnet as mx

        self.sched, self.Optimizer, self.create, self.ini, self.mx = (
            mx.lr_scheduler,
            mx.optimizer.Optimizer,
            mx.optimizer.create,
            mx.init,
            mx,
        )

    def full(self, shape, value, dtype):
        return self.mx.nd.full(shape, value, dtype=dtype)

    def np(self, arr):
        return arr.asnumpy()

    def from_np(self, a):
        return self.mx.nd.array(a, dtype=a.dtype)


class MxoptLib:
    def __init__(self):
        import mxopt.initializer
        import mxopt.lr_scheduler
        import mxopt.optimizer

        self.sched, self.Optimizer, self.create, self.ini = (
            mxopt.lr_scheduler,
            mxopt.optimizer.Optimizer,
            mxopt.optimizer.create,
            mxopt.initializer,
        )

    def full(self, shape, value, dtype):
        return np.full(shape, value, dtype=dtype)

    def np(self, arr):
        return arr.copy()

    def from_np(self, a):
        return a.copy()


# ----------------------------------------------------------------------------- drawing

NICE_LRS = [0.01, 0.1, 1.0, 0.3, 1 / 3, 2.0, 1e-3, 0.5, 7.0, 1e-300, 0.0]
FACTORS = [1.0, 0.5, 0.9, 0.1, 0.99, 1e-10, 1e-300, 0.0, 1 / 3, 0.7, -0.5, 1]


def maybe_numpy(rng, value):
    """Sometimes ``value`` as a NumPy scalar (encoded ``{"np": dtype, "v": value}``)."""
    if rng.random() < 0.08 and not isinstance(value, str):
        return {"np": rng.choice(["float32", "float64", "float16", "int64"]), "v": value}
    return value


def decode(obj):
    """The case's values, with the encoded NumPy scalars made."""
    if isinstance(obj, dict):
        if set(obj) == {"np", "v"}:
            return np.dtype(obj["np"]).type(obj["v"])
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def draw_lr(rng):
    if rng.random() < 0.5:
        return rng.choice(NICE_LRS)
    return rng.choice([rng.uniform(0, 1), 10 ** rng.uniform(-6, 1), rng.randint(1, 5)])


def draw_warmup(rng, kwargs, base_lr):
    style = rng.random()
    if style < 0.4:
        return
    kwargs["warmup_steps"] = rng.choice([0, 1, 1, 2, 3, 5, 8, 50, 1000])
    if rng.random() < 0.7:
        kwargs["warmup_begin_lr"] = rng.choice(
            [0, 0.0, base_lr * rng.random(), base_lr, base_lr / 3, base_lr * 1.5]
        )
    if rng.random() < 0.5:
        kwargs["warmup_mode"] = rng.choice(["linear", "constant"])


def draw_calls(rng, horizon):
    """A ``num_update`` sequence: increasing, repeated, jumping, backwards, floats."""
    n = rng.randint(1, 25)
    style = rng.choice(["range", "range1", "jumps", "random", "backwards", "repeat", "mixed"])
    if style == "range":
        calls = list(range(n))
    elif style == "range1":
        calls = list(range(1, n + 1))
    elif style == "jumps":
        calls, at = [], 0
        for _ in range(n):
            at += rng.choice([0, 1, 1, 2, horizon // 3 + 1, horizon])
            calls.append(at)
    elif style == "random":
        calls = [rng.randint(0, 2 * horizon + 2) for _ in range(n)]
    elif style == "backwards":
        calls = list(range(horizon + 2, max(-1, horizon + 2 - n), -1))
    elif style == "repeat":
        calls = [rng.randint(0, horizon + 2)] * rng.randint(2, 4) + list(range(n))
    else:
        calls = sorted(rng.randint(0, 2 * horizon + 2) for _ in range(n))
    if rng.random() < 0.1:
        calls = [c - rng.randint(1, 3) for c in calls]
    if rng.random() < 0.25:
        calls = [c + rng.choice([0.0, 0.5, 0.25, -0.5, 1e-9]) for c in calls]
    calls = [min(c, 200_000) for c in calls]
    if rng.random() < 0.1:
        # NumPy scalars, as a caller's own counter may be: [dtype name, value].
        dtype = rng.choice(["int64", "int32", "float64", "float32"])
        calls = [[dtype, c] for c in calls]
    return calls


def as_num_update(call):
    return np.dtype(call[0]).type(call[1]) if isinstance(call, list) else call


def draw_scheduler(rng):
    kind = rng.choice(
        ["FactorScheduler", "MultiFactorScheduler", "PolyScheduler", "CosineScheduler"]
    )
    kwargs = {}
    base_lr = draw_lr(rng)
    if rng.random() < 0.85:
        kwargs["base_lr"] = maybe_numpy(rng, base_lr)
    else:
        base_lr = 0.01
    draw_warmup(rng, kwargs, base_lr)
    warmup = kwargs.get("warmup_steps", 0)
    horizon = warmup + 10
    if kind == "FactorScheduler":
        kwargs["step"] = rng.choice([1, 1, 2, 3, 4, 7, 10, 100, 1.5, 2.5, 0.7 + 1])
        if rng.random() < 0.8:
            kwargs["factor"] = maybe_numpy(rng, rng.choice([*FACTORS, rng.uniform(0, 1)]))
        if rng.random() < 0.5:
            kwargs["stop_factor_lr"] = rng.choice([0, 0.0, 1e-3, 1e-8, base_lr / 10, -1.0])
        horizon = warmup + int(kwargs["step"] * rng.randint(1, 12))
        kwargs["step"] = maybe_numpy(rng, kwargs["step"])
        if "stop_factor_lr" in kwargs:
            kwargs["stop_factor_lr"] = maybe_numpy(rng, kwargs["stop_factor_lr"])
    elif kind == "MultiFactorScheduler":
        steps, at = [], 0
        for _ in range(rng.randint(1, 5)):
            at += rng.choice([1, 1, 2, 3, 5, 20, 0.5])
            steps.append(maybe_numpy(rng, at))
        kwargs["step"] = steps
        if rng.random() < 0.8:
            kwargs["factor"] = maybe_numpy(rng, rng.choice([*FACTORS, rng.uniform(0, 1)]))
        horizon = warmup + int(at) + 3
    else:
        max_update = rng.choice([1, 2, 3, 4, 5, 7, 10, 20, 100, 99_991])
        kwargs["max_update"] = max(max_update, warmup) if rng.random() < 0.97 else max_update
        if rng.random() < 0.1:
            kwargs["max_update"] = warmup or 1  # the zero span
        if rng.random() < 0.6:
            kwargs["final_lr"] = rng.choice([0, 0.0, base_lr / 10, base_lr * rng.random(), 1e-5])
        if kind == "PolyScheduler" and rng.random() < 0.7:
            kwargs["pwr"] = rng.choice([1, 2, 3, 0.5, 2.5, 0, 1.0, 0.1])
        horizon = kwargs["max_update"] + 3
    return {"class": kind, "kwargs": kwargs, "horizon": horizon}


def draw_scheduler_case(rng):
    case = {"kind": "scheduler", "scheduler": draw_scheduler(rng)}
    if rng.random() < 0.25:
        case["optimizer_learning_rate"] = rng.choice([None, maybe_numpy(rng, draw_lr(rng)), 1.0])
    case["calls"] = draw_calls(rng, case["scheduler"]["horizon"])
    return case


SUFFIXES = [
    "_weight",
    "_bias",
    "_gamma",
    "_beta",
    "_moving_mean",
    "_moving_var",
    "_running_mean",
    "weight",
    "_weight_bias",
    "_bias_weight",
    "",
    "_min",
    "_max",
]
PREFIXES = ["fc", "conv0", "bn", "lstm_i2h", "a", "fc1"]


def draw_name(rng):
    return rng.choice(PREFIXES) + rng.choice(SUFFIXES)


def draw_optimizer_case(rng):
    n_indices = rng.randint(1, 6)
    idx2name = {}
    if rng.random() < 0.7:
        for i in range(n_indices):
            if rng.random() < 0.8:
                idx2name[i] = draw_name(rng)
    kwargs = {"param_idx2name": idx2name} if idx2name or rng.random() < 0.5 else {}
    if rng.random() < 0.7:
        kwargs["wd"] = maybe_numpy(rng, rng.choice([0.0, 1e-4, 0.1, 1.0, rng.uniform(0, 1), 3]))
    if rng.random() < 0.6:
        kwargs["learning_rate"] = maybe_numpy(rng, draw_lr(rng))
    if rng.random() < 0.4:
        kwargs["begin_num_update"] = rng.choice([0, 1, 5, 10, 100, -3])
    case = {"kind": "optimizer", "kwargs": kwargs, "optimizer": rng.choice(OPTIMIZERS)}
    if rng.random() < 0.5:
        case["scheduler"] = draw_scheduler(rng)
    names = list(idx2name.values()) + [draw_name(rng) for _ in range(3)]
    if rng.random() < 0.4:
        attrs, arguments = {}, []
        for name in names:
            if rng.random() < 0.7:
                arguments.append(name)
            if rng.random() < 0.6:
                entry = {}
                for key in ("__lr_mult__", "__wd_mult__", "__init__"):
                    if rng.random() < 0.5:
                        entry[key] = rng.choice(["2", "0", "0.5", "1e-3", "3.25", "1", "-1", "x"])
                attrs[name] = entry
        case["sym"] = [attrs, arguments]
    if rng.random() < 0.2:
        case["param_dict"] = {
            str(i): [rng.choice([1.0, 2.0, 0.5, 0]), rng.choice([1.0, 0.0, 3.0])]
            for i in range(n_indices)
            if rng.random() < 0.5
        }
    keys = list(range(n_indices + 1)) + names + ["nobody"]

    def mults():
        return [
            [k, maybe_numpy(rng, rng.choice([0.0, 0.5, 2.0, 1, 10.0, 1 / 3]))]
            for k in rng.sample(keys, rng.randint(0, 4))
        ]

    ops = []
    for _ in range(rng.randint(1, 30)):
        op = rng.choice(
            [
                "lr",
                "set_lr",
                "lr_mult",
                "wd_mult",
                "lrs",
                "wds",
                "count",
                "count",
                "count",
                "ctx",
                "state",
            ]
        )
        if op == "set_lr":
            ops.append([op, maybe_numpy(rng, draw_lr(rng))])
        elif op in ("lr_mult", "wd_mult"):
            ops.append([op, mults()])
        elif op in ("lrs", "wds"):
            ops.append([op, rng.sample(keys, rng.randint(1, min(4, len(keys))))])
        elif op == "count":
            many = rng.random() < 0.3
            picked = rng.sample(range(n_indices + 1), rng.randint(1, n_indices + 1))
            ops.append([op, picked if many else picked[0], rng.random() < 0.2])
        elif op == "ctx":
            ops.append([op, rng.choice([0, 0, 1, 2])])
        else:
            ops.append([op])
    case["ops"] = ops
    return case


# None is the base class; the others differ in their default learning rate (which
# overwrites a scheduler's base_lr) or their weight-decay multipliers (LARS).
OPTIMIZERS = [None, None, None, "sgd", "adam", "rmsprop", "nadam", "lamb", "adamax", "signum"]
OPTIMIZERS += ["ftrl", "lars", "lbsgd", "nag", "adagrad", "adadelta", "ftml", "sgld", "dcasgd"]

DTYPES = ["float16", "float32", "float64"]
CONSTANTS = [
    0.3,
    1 + 2**-11 + 2**-40,
    "0.5",
    0.0,
    -0.0,
    1.0,
    7,
    -2.5,
    1 / 3,
    1e10,
    65504.0,
    70000.0,
    1e-8,
    0.1,
    True,
]


def draw_simple_init(rng):
    """A JSON spec of a deterministic initializer."""
    kind = rng.choice(["Zero", "One", "Constant", "Constant", "LSTMBias", "Bilinear"])
    if kind == "Constant":
        return [kind, {"value": maybe_numpy(rng, rng.choice(CONSTANTS))}]
    if kind == "LSTMBias" and rng.random() < 0.7:
        bias = rng.choice([1.0, 2.5, 0.0, -0.0, -1.0, 3, True, 0.1, 1 + 2**-11 + 2**-40])
        return [kind, {"forget_bias": maybe_numpy(rng, bias)}]
    return [kind, {}]


RANDOM_INITS = ["Uniform", "Normal", "Xavier", "MSRAPrelu", "Orthogonal"]


def draw_random_init(rng):
    """A JSON spec of a random initializer (only its dumps() and create() are compared)."""
    kind = rng.choice(RANDOM_INITS)
    options = {
        "Uniform": {"scale": [0.07, 1, 0.5]},
        "Normal": {"sigma": [0.01, 2, 0.5]},
        "Xavier": {
            "rnd_type": ["uniform", "gaussian"],
            "factor_type": ["avg", "in", "out"],
            "magnitude": [3, 2.34, 1],
        },
        "MSRAPrelu": {"factor_type": ["avg", "in", "out"], "slope": [0.25, 0.1, 0]},
        "Orthogonal": {"scale": [1.414, 2, 0.5], "rand_type": ["uniform", "normal"]},
    }[kind]
    return [kind, {k: rng.choice(v) for k, v in options.items() if rng.random() < 0.6}]


def draw_shape(rng, bilinear=False):
    if bilinear and rng.random() < 0.85:
        return [rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 7), rng.randint(1, 7)]
    return [rng.randint(1, 5) for _ in range(rng.randint(1, 3))]


def draw_init_case(rng):
    kinds = ["apply", "apply", "apply", "constant_array", "fused", "mixed", "load", "create"]
    kind = rng.choice([*kinds, "random_dumps"])
    case = {
        "kind": "init",
        "what": kind,
        "dtype": rng.choice(DTYPES),
        "fill": rng.choice([-9.0, 0.0, 5.5]),
    }
    case["name"] = draw_name(rng)
    case["legacy"] = rng.random() < 0.3
    if rng.random() < 0.25 and not case["legacy"]:
        spec = rng.choice(["zeros", "zero", "one", "ones", "", "constant", None])
        case["attr_init"] = spec if spec is not None else draw_simple_init(rng)
    if kind == "apply":
        case["init"] = draw_simple_init(rng)
        if rng.random() < 0.3:
            case["name"] = rng.choice(
                ["upsampling0_weight", "stn_loc_bias", "stn_loc_weight", "x_upsampling_weight"]
            )
        case["shape"] = draw_shape(
            rng, case["init"][0] == "Bilinear" or "upsampling" in case["name"]
        )
        if case["name"] == "stn_loc_bias" and rng.random() < 0.8:
            case["shape"] = [6]
    elif kind == "constant_array":
        shape = draw_shape(rng)
        value_shape = [d if rng.random() < 0.6 else 1 for d in shape]
        if rng.random() < 0.2:
            value_shape = value_shape[1:] or [1]
        case["shape"], case["value_shape"] = shape, value_shape
        case["value_dtype"] = rng.choice(["float32", "float64", "int32"])
    elif kind == "fused":
        mode = rng.choice(["lstm", "gru", "rnn_tanh", "rnn_relu"])
        gates = {"lstm": 4, "gru": 3}.get(mode, 1)
        layers, bidir = rng.randint(1, 3), rng.random() < 0.4
        hidden, inputs = rng.randint(1, 4), rng.randint(1, 4)
        size = initializer_cases.fused_size(inputs, hidden, layers, gates, 1 + bidir)
        if rng.random() < 0.1:
            size += rng.choice([-1, 1, 5])
        inner = draw_simple_init(rng) if rng.random() < 0.6 else None
        if inner is not None and inner[0] in ("Bilinear", "LSTMBias"):
            inner = ["One", {}]
        case["fused"] = [
            inner,
            hidden,
            layers,
            mode,
            bidir,
            maybe_numpy(rng, rng.choice([1.0, 0.0, -0.0, 2.5, True, 0.1])),
        ]
        case["global"] = ["Constant", {"value": rng.choice(CONSTANTS[:6])}]
        case["shape"] = [size]
        case["dtype"] = "float32"
    elif kind == "mixed":
        pats = rng.sample(
            ["weight", ".*bias", "bn_", ".*", "fc", "conv.*_weight", "a"], rng.randint(1, 4)
        )
        case["mixed"] = [pats, [draw_simple_init(rng) for _ in pats]]
        case["shape"] = draw_shape(rng)
        case["names"] = [draw_name(rng) for _ in range(4)]
    elif kind == "load":
        params = {}
        for _ in range(rng.randint(1, 4)):
            key = rng.choice(["arg:", "aux:", ""]) + draw_name(rng)
            params[key] = [draw_shape(rng), rng.choice(DTYPES), rng.randint(0, 1000)]
        case["params"] = params
        case["default"] = draw_simple_init(rng) if rng.random() < 0.5 else None
        case["names"] = [*[k.split(":")[-1] for k in params][:2], draw_name(rng)]
        case["shape"] = rng.choice([v[0] for v in params.values()] + [draw_shape(rng)])
    elif kind == "random_dumps":
        case["init"] = draw_random_init(rng)
    else:
        simple = draw_simple_init(rng) if rng.random() < 0.7 else draw_random_init(rng)
        simple = json.loads(json.dumps(decode(simple), default=float))  # JSON specs: no NumPy
        forms = [
            ["name", simple[0].lower(), [], simple[1]],
            ["json", json.dumps([simple[0].lower(), simple[1]])],
            ["dumps", simple],
            ["dict", dict(simple[1], initializer=simple[0].lower())],
            ["kwname", dict(simple[1], initializer=simple[0])],
            ["name", rng.choice(["zeros", "ones", "Zero", "ONE", "constant", "nope"]), [], {}],
            ["name", "constant", [rng.choice(CONSTANTS)], {}],
        ]
        case["create"] = rng.choice(forms)
        case["shape"] = draw_shape(rng, simple[0] == "Bilinear")
    return case


def draw_case(seed):
    rng = random.Random(seed)
    kind = rng.random()
    if kind < 0.45:
        return draw_scheduler_case(rng)
    if kind < 0.7:
        return draw_optimizer_case(rng)
    return draw_init_case(rng)


# ----------------------------------------------------------------------------- running


def make_scheduler(lib, spec):
    return getattr(lib.sched, spec["class"])(**decode(spec["kwargs"]))


def run_scheduler_case(lib, case):
    out = []
    try:
        scheduler = make_scheduler(lib, case["scheduler"])
        if "optimizer_learning_rate" in case:
            lib.Optimizer(
                learning_rate=decode(case["optimizer_learning_rate"]), lr_scheduler=scheduler
            )
    except Exception as error:
        return [["construct", encode(error)]]
    for num_update in case["calls"]:
        out.append([num_update, attempt(scheduler, as_num_update(num_update))])
    out.append(["attributes", encode(vars(scheduler))])
    return out


def run_optimizer_case(lib, case):
    kwargs = decode(case["kwargs"])
    if "param_idx2name" in kwargs:
        kwargs["param_idx2name"] = {int(k): v for k, v in kwargs["param_idx2name"].items()}
    if "sym" in case:
        kwargs["sym"] = FakeSym(*case["sym"])
    if "param_dict" in case:
        kwargs["param_dict"] = {int(k): Mults(*v) for k, v in case["param_dict"].items()}
    out = []
    try:
        if "scheduler" in case:
            kwargs["lr_scheduler"] = make_scheduler(lib, case["scheduler"])
        opt = (
            lib.Optimizer(**kwargs)
            if case["optimizer"] is None
            else lib.create(case["optimizer"], **kwargs)
        )
    except Exception as error:
        return [["construct", encode(error)]]

    def state():
        return {
            "lr": opt.lr,
            "wd": opt.wd,
            "num_update": opt.num_update,
            "counts": opt._all_index_update_counts,
            "lr_mult": opt.lr_mult,
            "wd_mult": opt.wd_mult,
            "scheduler": vars(opt.lr_scheduler) if opt.lr_scheduler is not None else None,
        }

    out.append(["init", encode(state())])
    for op in case["ops"]:
        name, args = op[0], decode(op[1:])
        if name == "lr":
            result = attempt(lambda: opt.learning_rate)
        elif name == "set_lr":
            result = attempt(opt.set_learning_rate, args[0])
        elif name in ("lr_mult", "wd_mult"):
            setter = opt.set_lr_mult if name == "lr_mult" else opt.set_wd_mult
            result = attempt(setter, dict((k, v) for k, v in args[0]))
        elif name == "lrs":
            result = attempt(opt._get_lrs, args[0])
        elif name == "wds":
            result = attempt(opt._get_wds, args[0])
        elif name == "count":
            index = tuple(args[0]) if isinstance(args[0], list) and args[1] else args[0]
            result = attempt(opt._update_count, index)
        elif name == "ctx":
            result = attempt(opt._set_current_context, args[0])
        else:
            result = encode(state())
        out.append([op, result])
    out.append(["final", encode(state())])
    return out


def make_init(lib, spec):
    if spec is None:
        return None
    kind, kwargs = spec
    return getattr(lib.ini, kind)(**decode(kwargs))


def apply_init(lib, case, init, name, shape=None, dtype=None):
    arr = lib.full(tuple(shape or case["shape"]), case["fill"], dtype or case["dtype"])
    if case["legacy"]:
        desc = name
    else:
        attrs = None
        if "attr_init" in case:
            spec = case["attr_init"]
            attrs = {"__init__": spec if isinstance(spec, str) else make_init(lib, spec).dumps()}
        desc = lib.ini.InitDesc(name, attrs=attrs, global_init=case.get("global_made"))
    init(desc, arr)
    return lib.np(arr)


def run_init_case(lib, case):
    what, out = case["what"], []
    if what == "apply":
        init = make_init(lib, case["init"])
        out.append(["dumps", attempt(init.dumps)])
        out.append(["arr", attempt(lambda: apply_init(lib, case, init, case["name"]))])
    elif what == "constant_array":
        value = (np.arange(int(np.prod(case["value_shape"]))) * 0.37 - 1).reshape(
            case["value_shape"]
        )
        init = lib.ini.Constant(value.astype(case["value_dtype"]))
        out.append(["arr", attempt(lambda: apply_init(lib, case, init, case["name"]))])
    elif what == "fused":
        inner, *rest = case["fused"]

        def run():
            fused = lib.ini.FusedRNN(make_init(lib, inner), *decode(rest))
            case["global_made"] = make_init(lib, case["global"])
            return apply_init(lib, dict(case, legacy=False), fused, "rnn_parameters")

        out.append(["arr", attempt(run)])
    elif what == "mixed":
        patterns, specs = case["mixed"]
        try:
            mixed = lib.ini.Mixed(patterns, [make_init(lib, s) for s in specs])
        except Exception as error:
            return [["construct", encode(error)]]
        for name in case["names"]:
            out.append([name, attempt(apply_init, lib, case, mixed, name)])
    elif what == "load":
        params = {}
        for key, (shape, dtype, tag) in case["params"].items():
            values = (np.arange(int(np.prod(shape))) + tag) / 7.0
            params[key] = lib.from_np(values.reshape(shape).astype(dtype))
        try:
            load = lib.ini.Load(params, default_init=make_init(lib, case["default"]))
        except Exception as error:
            return [["construct", encode(error)]]
        for name in case["names"]:
            out.append([name, attempt(apply_init, lib, case, load, name)])
    elif what == "random_dumps":
        init = make_init(lib, case["init"])
        out.append(["dumps", attempt(init.dumps)])
        out.append(["roundtrip", attempt(lambda: lib.ini.create(init.dumps()).dumps())])
    else:
        form = case["create"]

        def create():
            if form[0] == "name":
                return lib.ini.create(form[1], *form[2], **form[3])
            if form[0] == "json":
                return lib.ini.create(form[1])
            if form[0] == "dumps":
                return lib.ini.create(make_init(lib, form[1]).dumps())
            if form[0] == "dict":
                return lib.ini.create(dict(form[1]))
            return lib.ini.create(**form[1])

        try:
            init = create()
        except Exception as error:
            return [["create", encode(error)]]
        out.append(["type", type(init).__name__])
        out.append(["dumps", attempt(init.dumps)])
        if init.dumps()[2:].startswith(tuple(k.lower() for k in RANDOM_INITS)):
            return out  # random numbers are not compared
        out.append(["arr", attempt(lambda: apply_init(lib, case, init, case["name"]))])
    return out


RUNNERS = {"scheduler": run_scheduler_case, "optimizer": run_optimizer_case, "init": run_init_case}


def run_case(lib, case):
    """The case's results, then what it printed (the scheduler overwrite notice)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = RUNNERS[case["kind"]](lib, json.loads(json.dumps(case)))
    return [*results, ["stdout", printed.getvalue()]]


# ----------------------------------------------------------------------------- comparing


def same(mx_result, ours):
    """Equal results, where an mxopt exception may be a subclass of MXNet's."""
    if isinstance(mx_result, list) and mx_result[:1] == ["raise"]:
        if not (isinstance(ours, list) and ours[:1] == ["raise"]):
            return False
        if mx_result[1][0] == "MXNetError":  # no such class in mxopt: it names the argument
            return ours[1][0] in ("TypeError", "ValueError") or "TypeError" in ours[1]
        return mx_result[1][0] in ours[1]
    if isinstance(mx_result, list) and isinstance(ours, list) and len(mx_result) == len(ours):
        return all(same(a, b) for a, b in zip(mx_result, ours))
    return mx_result == ours


def first_difference(mx_result, ours, path=()):
    if same(mx_result, ours):
        return None
    if (
        isinstance(mx_result, list)
        and isinstance(ours, list)
        and len(mx_result) == len(ours)
        and mx_result[:1] != ["raise"]
    ):
        for i, (a, b) in enumerate(zip(mx_result, ours)):
            found = first_difference(a, b, (*path, i))
            if found:
                return found
    return path, mx_result, ours


def raised(result, name):
    return isinstance(result, list) and result[:1] == ["raise"] and name in result[1]


def decay_span(case):
    """``max_update - warmup_steps`` of the case's Poly/Cosine scheduler (inf for others)."""
    kwargs = case.get("scheduler", {}).get("kwargs", {})
    return kwargs.get("max_update", math.inf) - kwargs.get("warmup_steps", 0)


def documented_difference(case, mx_result, ours):
    """The README entry explaining a difference, or None when it is unexplained."""
    where, mx_value, _ = first_difference(mx_result, ours)
    if raised(mx_value, "ZeroDivisionError") and case["kind"] in ("scheduler", "optimizer"):
        return "schedulers never divide by zero"
    if case["kind"] == "scheduler" and where and where[0] < len(case["calls"]):
        # NumPy scalars divide by zero to NaN or infinity, where Python floats raised.
        n = as_num_update(case["calls"][where[0]])
        kwargs = case["scheduler"]["kwargs"]
        if decay_span(case) == 0 and n >= kwargs["max_update"]:
            return "schedulers never divide by zero (the span, NumPy)"
        linear = kwargs.get("warmup_mode", "linear") == "linear"
        if n < 0 and linear and not kwargs.get("warmup_steps"):
            return "schedulers never divide by zero (the warmup, NumPy)"
    if case["kind"] == "optimizer" and case["kwargs"].get("begin_num_update", 0) < 0:
        kwargs = case.get("scheduler", {}).get("kwargs", {})
        if kwargs.get("warmup_mode", "linear") == "linear" and not kwargs.get("warmup_steps"):
            return "schedulers never divide by zero (the warmup, maybe NumPy)"
    refused = ours[0][0] == "construct" and raised(ours[0][1], "ValueError")
    if refused and decay_span(case) < 0:
        return "warmup_steps > max_update is refused"
    return None


# ----------------------------------------------------------------------------- main


def worker(path_in, path_out):
    lib = MxLib()
    with open(path_in) as fh:
        cases = json.load(fh)
    results = [run_case(lib, case) for case in cases]
    with open(path_out, "w") as fh:
        json.dump(results, fh)


def run_oracle(cases):
    with tempfile.TemporaryDirectory() as tmp:
        path_in, path_out = os.path.join(tmp, "cases.json"), os.path.join(tmp, "results.json")
        with open(path_in, "w") as fh:
            json.dump(cases, fh)
        subprocess.run(
            [ORACLE, os.path.abspath(__file__), "--worker", path_in, path_out], check=True
        )
        with open(path_out) as fh:
            return json.load(fh)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the first case")
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=2000, help="cases per oracle process")
    parser.add_argument("-v", "--verbose", action="store_true", help="print cases and results")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    lib = MxoptLib()
    counts = {"cases": 0, "mismatches": 0, "documented": {}}
    kinds = {}
    for start in range(args.seed, args.seed + args.cases, args.batch):
        seeds = range(start, min(start + args.batch, args.seed + args.cases))
        cases = [draw_case(seed) for seed in seeds]
        oracle = run_oracle(cases)
        for seed, case, mx_result in zip(seeds, cases, oracle):
            ours = json.loads(json.dumps(run_case(lib, case)))
            counts["cases"] += 1
            kinds[case["kind"]] = kinds.get(case["kind"], 0) + 1
            if args.verbose:
                print(
                    json.dumps(case),
                    "\n  mxnet:",
                    json.dumps(mx_result),
                    "\n  mxopt:",
                    json.dumps(ours),
                )
            if same(mx_result, ours):
                continue
            reason = documented_difference(case, mx_result, ours)
            if reason:
                counts["documented"][reason] = counts["documented"].get(reason, 0) + 1
                continue
            counts["mismatches"] += 1
            where, mx_value, our_value = first_difference(mx_result, ours)
            print(f"MISMATCH seed={seed} kind={case['kind']} at {list(where)}")
            print("  case: ", json.dumps(case))
            print("  mxnet:", json.dumps(mx_value))
            print("  mxopt:", json.dumps(our_value))
    print(json.dumps(dict(counts, kinds=kinds)))
    return 1 if counts["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
