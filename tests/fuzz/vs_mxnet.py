"""Randomized differential test of mxopt's optimizers against MXNet 1.6.0.

Each seed draws one case in the golden format (``tests/golden/README.md``): a registered
optimizer with random hyper-parameters (edge values included: clip absent/0/tiny/negative,
negative ``rescale_grad``, ``wd`` 0, momentum 0, multi-precision float16, lazy or standard
row-sparse gradients with ``nnz = 0``, ``param_idx2name`` and lr/wd multipliers, a scheduler,
``begin_num_update``, ``MXNET_OPTIMIZER_AGGREGATION_SIZE``), 1-5 weights and a random sequence
of Updater calls (scalar and list indices, save/load round trips) or direct ``update`` /
``update_multi_precision`` calls, with gradients that may hold zeros, huge or tiny values.
The oracle interpreter runs this same file with ``--generate``: it draws the cases with
``generate.py``'s ``Case`` and records them with its ``record`` (SGLD's normal draw replaced by
zeros, as in ``generate_layerwise.py``). This interpreter replays each recorded case with
``test_golden.replay``, which requires exact equality, and prints every mismatch with the seed
that replays it (with this version of the file: the draws change when it does). Cases MXNet
refuses (it raises) are counted by message, not replayed.

Usage, from the repository root, with mxopt importable::

    python tests/fuzz/vs_mxnet.py --cases 2000                  # seeds 0..1999
    python tests/fuzz/vs_mxnet.py --seed 1234 --cases 1 -v      # replay one case, print it
    python tests/fuzz/vs_mxnet.py --optimizer adam --optimizer sgd --cases 300

``--oracle`` names the MXNet 1.6.0 interpreter (default ``/tmp/mx16/bin/python``). The exit
status is 1 if any case mismatched or mxopt raised where MXNet did not (a ``ValueError``
for a non-finite hyper-parameter, which mxopt raises on purpose, is counted apart).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import warnings

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
TESTS = HERE.parent
ABSENT = object()  # a keyword argument that is not passed at all

F16, F32, F64 = "float16", "float32", "float64"
ALL_DTYPES = (F32, F64, F16)
# Optimizers whose states are float32 whatever the weight: f64/f16 only through MP (spec 0.7).
F32_ONLY = ("lamb", "adagrad", "groupadagrad", "adadelta", "rmsprop", "ftrl")
WITH_MOMENTUM = ("sgd", "ccsgd", "nag", "lars", "lbsgd", "signum")
WITH_LAZY_UPDATE = ("sgd", "ccsgd", "lars", "adam")
# Only the aggregating optimizers accept lists in a direct opt.update call.
DIRECT_LISTS = ("sgd", "ccsgd", "lars")
BETAS = {"beta1": (0.9, 0.5, 0.0, 0.99), "beta2": (0.999, 0.9, 0.5)}
EPSILONS = (1e-8, 1e-6, 1e-3, 0.0, 0.5)

# Optimizer-specific keyword arguments: each is passed with probability 1/2, value drawn
# uniformly from its tuple.
HYPER = {
    "sgd": {},
    "ccsgd": {},
    "nag": {},
    "test": {},
    "sgld": {},
    "signum": {"wd_lh": (0.0, 0.05, 0.5)},
    "lars": {
        "eta": (0.001, 0.05, 1.0),
        "eps": (0.0, 1e-3, 1.0),
        "momentum_correction": (True, False),
    },
    "lamb": {
        **BETAS,
        "epsilon": EPSILONS,
        "lower_bound": (None, 0.0, 1e-3, 0.5, 3.0),
        "upper_bound": (None, 0.0, 0.5, 5.0),
        "bias_correction": (True, False),
    },
    "lbsgd": {
        "warmup_strategy": ("linear", "power2", "sqrt", "lars"),
        "warmup_epochs": (1, 2, 5),
        "batch_scale": (1, 2, 3),
        "updates_per_epoch": (1, 2, 3, 32),
        "begin_epoch": (0, 1, 3),
        "num_epochs": (2, 60),
    },
    "dcasgd": {"lamda": (0.04, 0.0, 0.5, 2.0)},
    "adam": {**BETAS, "epsilon": EPSILONS},
    "adamax": dict(BETAS),
    "nadam": {**BETAS, "epsilon": EPSILONS, "schedule_decay": (0.004, 0.0, 0.1)},
    "ftml": {**BETAS, "epsilon": EPSILONS},
    "adagrad": {"eps": (1e-7, 0.0, 1e-3, 1.0)},
    "groupadagrad": {"eps": (1e-5, 0.0, 1e-3, 1.0)},
    "adadelta": {"rho": (0.9, 0.5, 0.0, 0.99), "epsilon": (1e-5, 1e-8, 0.0, 0.1)},
    "rmsprop": {
        "gamma1": (0.9, 0.5, 0.0, 0.99),
        "gamma2": (0.9, 0.5, 0.0),
        "epsilon": EPSILONS,
        "centered": (True, False),
        "clip_weights": (None, 0.0, 0.5, 2.0, -1.0),
    },
    "ftrl": {"lamda1": (0.01, 0.0, 0.5, 5.0), "beta": (1, 0.0, 0.5, 3.0)},
}
OPTIMIZERS = tuple(sorted(HYPER))

LENGTHS = (1, 2, 3, 5, 7, 8, 9, 16, 17, 63, 64, 65, 129)
LONG_LENGTHS = (1025, 4097, 65537)  # past the native code's parallel split
NAME_SUFFIXES = ("_weight", "_bias", "_gamma", "_beta", "_w", "_running_mean")


def pick(rng, values):
    return values[rng.randint(len(values))]


def maybe(rng, p):
    return rng.uniform() < p


# --------------------------------------------------------------------------------------------
# Drawing a case (oracle side: uses generate.py's Case, which imports MXNet)
# --------------------------------------------------------------------------------------------


def draw_kwargs(rng, name):
    # Values with many digits, above 1 too: MXNet's parser rounds them its own way.
    kwargs = {
        "learning_rate": pick(rng, (ABSENT, ABSENT, 0.1, 0.01, 1.0, 0.37, 0.0, rng.uniform(0, 3))),
        "wd": pick(rng, (ABSENT, 0.0, 0.0, 0.01, 0.1, rng.uniform(0, 0.5))),
        "rescale_grad": pick(rng, (ABSENT, 0.5, 0.37, 2.0, 1 / 64, -0.5, rng.uniform(0, 3))),
        "clip_gradient": pick(
            rng, (ABSENT, None, 1.0, 0.5, 1e-3, 1e-8, 0.0, -1.0, 10.0, rng.uniform(0, 3))
        ),
        "multi_precision": pick(rng, (ABSENT, False, True, True)),
        "begin_num_update": pick(rng, (ABSENT, ABSENT, 0, 1, 5, 17)),
    }
    if name in WITH_MOMENTUM:
        kwargs["momentum"] = pick(rng, (ABSENT, 0.0, 0.9, 0.9, 0.5, -0.5, rng.uniform(0, 1)))
    if name in WITH_LAZY_UPDATE:
        kwargs["lazy_update"] = pick(rng, (ABSENT, True, False))
    if name == "groupadagrad" or (name == "adagrad" and maybe(rng, 0.5)):
        kwargs["wd"] = ABSENT  # groupadagrad: MXNet asserts wd == 0; adagrad: its sparse kernel
    for key, values in HYPER[name].items():
        if maybe(rng, 0.5):
            kwargs[key] = pick(rng, values)
            if type(kwargs[key]) is float and maybe(rng, 0.25):  # a value with many digits
                kwargs[key] *= rng.uniform(0.9, 1.0)
    return {k: v for k, v in kwargs.items() if v is not ABSENT}


def draw_scheduler(rng):
    base = {"base_lr": pick(rng, (0.1, 0.5, 0.01))}
    if maybe(rng, 0.3):
        base["warmup_steps"] = int(rng.randint(1, 4))
        base["warmup_begin_lr"] = pick(rng, (0.0, 0.001))
        base["warmup_mode"] = pick(rng, ("linear", "constant"))
    kind = pick(
        rng, ("FactorScheduler", "MultiFactorScheduler", "PolyScheduler", "CosineScheduler")
    )
    if kind == "FactorScheduler":
        extra = {"step": int(rng.randint(1, 5)), "factor": pick(rng, (0.5, 0.9, 1.0))}
        if maybe(rng, 0.3):
            extra["stop_factor_lr"] = pick(rng, (0.05, 1e-8))
    elif kind == "MultiFactorScheduler":
        steps = sorted({int(s) for s in rng.randint(1, 12, size=rng.randint(1, 4))})
        extra = {"step": steps, "factor": pick(rng, (0.5, 0.1))}
    else:
        extra = {"max_update": int(rng.randint(5, 30)), "final_lr": pick(rng, (0.0, 0.001))}
        if kind == "PolyScheduler":
            extra["pwr"] = pick(rng, (1, 2, 0.5))
    if "warmup_steps" in base and "max_update" in extra:
        base["warmup_steps"] = min(base["warmup_steps"], extra["max_update"] - 1)
    return {"class": kind, "kwargs": {**base, **extra}}


def draw_weight(rng, name, dtype):
    if name == "groupadagrad" or maybe(rng, 0.4):
        shape = (int(rng.randint(1, 10)), int(rng.randint(1, 8)))
    elif maybe(rng, 0.05):
        shape = (int(pick(rng, LONG_LENGTHS)),)
    else:
        shape = (int(pick(rng, LENGTHS)),)
    kind = pick(rng, ("normal", "normal", "normal", "zeros", "large", "small"))
    w = rng.standard_normal(shape)
    w = {"normal": w, "zeros": 0 * w, "large": 100 * w, "small": 1e-4 * w}[kind]
    return w.astype(dtype)


def draw_values(rng, shape, dtype):
    """Gradient values: every element non-zero as in the golden cases, or with zeros, all
    zeros, huge (overflowing float16) or tiny (float16 subnormal) magnitudes."""
    mag = rng.uniform(0.05, 3.0, size=shape)
    sign = np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0)
    kind = pick(rng, ("plain", "plain", "plain", "zeros", "all_zero", "huge", "tiny"))
    if kind == "zeros":
        mag = np.where(rng.uniform(size=shape) < 0.3, 0.0, mag)
    elif kind == "all_zero":
        mag = 0 * mag
    elif kind == "huge":
        mag = mag * pick(rng, (1e3, 1e5, 1e30))
    elif kind == "tiny":
        mag = mag * 1e-7
    return (mag * sign).astype(dtype)


def draw_grad(rng, w):
    if not maybe(rng, 0.3):
        return draw_values(rng, w.shape, w.dtype)
    n = w.shape[0]
    how = pick(rng, ("some", "some", "none", "all"))
    if how == "none":
        rows = np.zeros(0, dtype=np.int64)
    elif how == "all":
        rows = np.arange(n, dtype=np.int64)
    else:
        rows = np.flatnonzero(rng.uniform(size=n) < 0.5).astype(np.int64)
    return (draw_values(rng, (len(rows), *w.shape[1:]), w.dtype), rows, w.shape)


def draw_case(seed, names):
    """The case of ``seed``; ``names`` restricts the optimizers drawn from."""
    from generate import AGG_ENV, Case
    from generate_layerwise import without_noise

    rng = np.random.RandomState(seed)
    name = pick(rng, names)
    kwargs = draw_kwargs(rng, name)
    mp = kwargs.get("multi_precision", False)
    if name in F32_ONLY:
        dtypes = (F32, F16, F16) if mp else (F32,)
    else:
        dtypes = (F32, F16, F16, F64) if mp else ALL_DTYPES
    count = int(rng.randint(1, 6))
    index_kind = pick(rng, ("position", "position", "shifted", "str"))
    if index_kind == "position":
        indices = list(range(count))
    elif index_kind == "shifted":
        indices = [int(i) for i in rng.permutation(20)[:count]]
    else:
        indices = [f"p{k}" for k in range(count)]

    ckw = {}
    if maybe(rng, 0.3):
        ckw["env"] = {AGG_ENV: pick(rng, ("0", "1", "2", "4", "60"))}
    if maybe(rng, 0.25):
        ckw["scheduler"] = draw_scheduler(rng)
    keys = list(indices)
    if index_kind != "str" and maybe(rng, 0.3):
        names_of = {i: f"l{i}{pick(rng, NAME_SUFFIXES)}" for i in indices}
        ckw["param_idx2name"] = names_of
        keys += list(names_of.values())
    for mult in ("lr_mult", "wd_mult"):
        if maybe(rng, 0.25):
            chosen = rng.permutation(len(keys))[: rng.randint(1, len(keys) + 1)]
            ckw[mult] = {keys[j]: pick(rng, (0.0, 0.5, 2.0, 3.0)) for j in chosen}
    direct = maybe(rng, 0.15)
    if direct:
        kind = pick(rng, ("update", "update_multi_precision"))
        ckw["mode"] = "direct"
        ckw["state_init"] = "create_state" if kind == "update" else "create_state_multi_precision"
    else:
        kind = "updater"

    case = Case(f"seed{seed}", name, kwargs, doc=f"vs_mxnet.py seed {seed}", **ckw)
    case.rng = rng
    case.save_load_restarts = True  # compared as recorded, round trip included
    case.w0 = [draw_weight(rng, name, pick(rng, dtypes)) for _ in range(count)]
    lists_ok = not direct or name in DIRECT_LISTS
    for _ in range(int(rng.randint(1, 7))):
        form = pick(rng, ("each", "list", "save_load") if not direct else ("each", "list"))
        if form == "save_load":
            case.save_load(dump_optimizer=bool(maybe(rng, 0.5)))
            continue
        ks = [int(k) for k in rng.permutation(count)[: rng.randint(1, count + 1)]]
        grads = [draw_grad(rng, case.w0[k]) for k in ks]
        if form == "list" and lists_ok:
            case.call([indices[k] for k in ks], ks, grads, kind)
        else:
            for k, g in zip(ks, grads):
                case.call(indices[k], [k], [g], kind)
    return without_noise(case) if name == "sgld" else case


def generate(first, count, out, names):
    """Oracle side: record seeds ``first .. first+count-1`` into ``out/<seed>.npz`` (or
    ``<seed>.err`` holding MXNet's error), one file per case so a crash loses one case."""
    sys.path.insert(0, str(TESTS / "golden"))
    import generate as golden
    import generate_layerwise
    import mxnet.optimizer.contrib  # noqa: F401  (registers groupadagrad)

    warnings.simplefilter("ignore")
    optimizer_module = sys.modules["mxnet.optimizer.optimizer"]
    optimizer_module.normal = generate_layerwise._zero_noise  # used by SGLD only
    for seed in range(first, first + count):
        case = draw_case(seed, names)
        try:
            arrays = golden.record(case)
        except Exception as e:  # MXNet refused the case: its message, first line
            message = re.sub(r"^\[[\d:]+\] ", "", str(e).strip())  # MXNet's timestamp
            text = f"{case.optimizer}: {type(e).__name__}: {message}".splitlines()[0]
            (out / f"{seed}.err").write_text(text[:300])
            continue
        golden.write_npz(out / f"{seed}.npz", {f"{case.name}/{k}": v for k, v in arrays.items()})


# --------------------------------------------------------------------------------------------
# Driver (mxopt side)
# --------------------------------------------------------------------------------------------


def run_oracle(oracle, first, end, out, names):
    """Generate seeds [first, end); returns the seeds MXNet crashed on (no file written)."""
    crashed = []
    while first < end:
        cmd = [oracle, __file__, "--generate", str(first), str(end - first), str(out)]
        cmd += [a for n in names for a in ("--optimizer", n)]
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        missing = [
            s
            for s in range(first, end)
            if not (out / f"{s}.npz").exists() and not (out / f"{s}.err").exists()
        ]
        if not missing:
            break
        if done.returncode == 0:
            sys.exit(f"oracle wrote nothing for seed {missing[0]}:\n{done.stderr[-2000:]}")
        crashed.append(missing[0])
        print(f"ORACLE CRASH seed={missing[0]} rc={done.returncode}", flush=True)
        first = missing[0] + 1
    return crashed


def replay_file(path, seed, verbose):
    """Replay one recorded case; returns (outcome, message, optimizer calls)."""
    import pytest
    import test_golden

    with np.load(path) as z:
        everything = {k: z[k] for k in z.files}
    name = f"seed{seed}"
    arrays = {k[len(name) + 1 :]: v for k, v in everything.items()}
    meta = json.loads(str(arrays["meta"]))
    calls = sum(1 for c in meta["calls"] if c["kind"] != "save_load")
    if verbose:  # the settings on one line, then one line per call
        skip = ("calls", "states", "doc", "format", "mxnet_version", "name")
        print(json.dumps({k: v for k, v in meta.items() if k not in skip}))
        for i, call in enumerate(meta["calls"]):
            print(f"  call {i}: {json.dumps(call)}")
    try:
        # the replay prints MXNet's "lr overwritten" notice, as MXNet does
        with (
            pytest.MonkeyPatch.context() as monkeypatch,
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            test_golden.replay(test_golden.modules(), monkeypatch, arrays, f"seed={seed}")
    except AssertionError as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        return "mismatch", f"{meta['optimizer']}: {' | '.join(lines[:2])}", calls
    except Exception as e:
        # mxopt refuses NaN/infinite hyper-parameters where MXNet computes on (README:
        # "Where mxopt differs"), also when a diverged weight makes a derived lr NaN.
        refused = isinstance(e, ValueError) and "must be finite" in str(e)
        outcome = "nonfinite_refused" if refused else "mxopt_raised"
        return outcome, f"{meta['optimizer']}: {type(e).__name__}: {e}", calls
    return "ok", "", calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--cases", type=int, default=200, help="number of seeds")
    parser.add_argument("--optimizer", action="append", choices=OPTIMIZERS, help="repeatable")
    parser.add_argument("--oracle", default="/tmp/mx16/bin/python", help="MXNet 1.6.0 python")
    parser.add_argument("--batch", type=int, default=100, help="cases per oracle run")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each case's meta")
    parser.add_argument(
        "--generate", nargs=3, metavar=("FIRST", "COUNT", "DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    names = tuple(args.optimizer or OPTIMIZERS)
    if args.generate:
        first, count, out = args.generate
        generate(int(first), int(count), pathlib.Path(out), names)
        return 0

    sys.path.insert(0, str(TESTS))
    outcomes = collections.Counter()
    refused = collections.Counter()
    per_optimizer = collections.Counter()
    calls = 0
    for first in range(args.seed, args.seed + args.cases, args.batch):
        end = min(first + args.batch, args.seed + args.cases)
        with tempfile.TemporaryDirectory(prefix="vs_mxnet") as tmp:
            out = pathlib.Path(tmp)
            outcomes["oracle_crash"] += len(run_oracle(args.oracle, first, end, out, names))
            for seed in range(first, end):
                err = out / f"{seed}.err"
                if err.exists():
                    outcomes["mxnet_raised"] += 1
                    refused[err.read_text()] += 1
                    continue
                path = out / f"{seed}.npz"
                if not path.exists():
                    continue
                outcome, message, n = replay_file(path, seed, args.verbose)
                outcomes[outcome] += 1
                calls += n
                failed = outcome in ("mismatch", "mxopt_raised")
                per_optimizer[message.split(":")[0] if message else "ok"] += failed
                if outcome != "ok":
                    print(f"{outcome.upper()} seed={seed} {message}", flush=True)
        print(f"seeds {args.seed}..{end - 1}: {dict(outcomes)}, {calls} calls", flush=True)
    if refused:
        print("MXNet refused:")
        for text, n in refused.most_common():
            print(f"  {n:5d}  {text}")
    failing = {k: v for k, v in per_optimizer.items() if v}
    if failing:
        print("failing cases per optimizer:", failing)
    return int(outcomes["mismatch"] + outcomes["mxopt_raised"] > 0)


if __name__ == "__main__":
    sys.exit(main())
