"""Fixtures the Rust tests compare with.

``python tests/rust_fixtures.py`` rewrites

* ``tests/fixtures/initializers_mxopt.json``: values computed by the Python package
  (replayed by ``tests/initializer.rs`` with ``mxopt::init``);
* ``tests/fixtures/schedulers_mxopt.json``: the Python package's learning-rate schedules
  over ranges of update counts (replayed by ``tests/schedule.rs``);
* ``tests/fixtures/optimizer_golden.json``: the golden trajectories of
  ``tests/golden/*.npz`` (MXNet 1.6.0, which the Python package reproduces bit for bit)
  that the high-level Rust API supports (``OPTIMIZERS``) (replayed by ``tests/optimizer.rs``);
* ``tests/fixtures/optimizer_package.json``: trajectories of the Python package itself
  (``PACKAGE_CASES``: SGLD's seeded noise, LBSGD's mixed accumulation);
* ``tests/fixtures/optimizer_golden_more.json``: the same for ``MORE_OPTIMIZERS``, cases of
  at most ``MORE_CASE_BYTES`` only.

``tests/test_rust_fixtures.py`` checks that the committed files are still up to date.
"""

from __future__ import annotations

import functools
import json
import pathlib
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from mxopt import initializer, random

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "initializers_mxopt.json"
OPT_FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "optimizer_golden.json"
SCHED_FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "schedulers_mxopt.json"
# (class, kwargs, calls): each scheduler is called with every count of ``calls`` in order.
SCHEDULES: List[tuple] = [
    ("FactorScheduler", {"step": 7, "factor": 0.9, "base_lr": 0.3}, list(range(400))),
    (
        "FactorScheduler",
        {"step": 3, "factor": 0.5, "stop_factor_lr": 1e-4, "base_lr": 1.0, "warmup_steps": 10},
        list(range(120)),
    ),
    ("FactorScheduler", {"step": 5, "factor": 0.7}, [3, 50, 10, 51, 400, 1000, 999]),
    (
        "MultiFactorScheduler",
        {
            "step": [10, 25, 60],
            "factor": 0.3,
            "base_lr": 0.5,
            "warmup_steps": 5,
            "warmup_begin_lr": 0.1,
            "warmup_mode": "constant",
        },
        list(range(100)),
    ),
    (
        "PolyScheduler",
        {"max_update": 150, "base_lr": 0.2, "pwr": 1.7, "final_lr": 0.01},
        list(range(200)),
    ),
    (
        "PolyScheduler",
        {"max_update": 90, "base_lr": 0.1, "pwr": 3, "warmup_steps": 20, "warmup_begin_lr": 0.01},
        list(range(120)),
    ),
    ("CosineScheduler", {"max_update": 250, "base_lr": 0.4, "final_lr": 0.001}, list(range(300))),
    (
        "CosineScheduler",
        {"max_update": 77, "base_lr": 1.0, "warmup_steps": 13, "warmup_begin_lr": 0.5},
        list(range(100)),
    ),
]
GOLDEN = pathlib.Path(__file__).parent / "golden"
AGG_ENV = "MXNET_OPTIMIZER_AGGREGATION_SIZE"
# The optimizers of the high-level Rust API (``mxopt::optimizer``), by golden archive.
OPTIMIZERS = (
    "sgd",
    "ccsgd",
    "adam",
    "nag",
    "adagrad",
    "rmsprop",
    "adamax",
    "nadam",
    "adadelta",
    "ftml",
    "ftrl",
    "signum",
)
# The optimizers added later, in their own file, small cases only (a few KB each).
MORE_OPTIMIZERS = ("lars", "lamb", "lbsgd", "dcasgd", "sgld", "groupadagrad", "test")
MORE_FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "optimizer_golden_more.json"
MORE_CASE_BYTES = 6000

SEED = 20260
# (class name, kwargs, shape, dtype): run in this order after one seed.
CASES: List[tuple] = [
    ("Uniform", {}, [5, 7], "float32"),
    ("Uniform", {"scale": 0.5}, [300], "float64"),
    ("Normal", {}, [4, 6], "float32"),
    ("Normal", {"sigma": 2.0}, [3, 5], "float64"),
    ("Zero", {}, [3], "float32"),
    ("One", {}, [2, 2], "float16"),
    ("Constant", {"value": 0.1}, [4], "float16"),
    ("Constant", {"value": 0.1}, [4], "float32"),
    ("Uniform", {"scale": 0.3}, [9, 2], "float16"),
]
for rnd in ("uniform", "gaussian"):
    for factor in ("avg", "in", "out"):
        CASES.append(
            (
                "Xavier",
                {"rnd_type": rnd, "factor_type": factor, "magnitude": 2.34},
                [6, 4, 3],
                "float32",
            )
        )
CASES += [
    ("Xavier", {}, [8, 5], "float64"),
    ("Xavier", {}, [16, 3, 2, 2], "float16"),
    ("MSRAPrelu", {}, [7, 3, 2], "float32"),
    ("MSRAPrelu", {"factor_type": "in", "slope": 0.1}, [5, 4], "float64"),
    ("Orthogonal", {}, [4, 7], "float32"),
    ("Orthogonal", {"rand_type": "normal", "scale": 0.9}, [7, 4], "float64"),
    ("Orthogonal", {}, [5, 5], "float16"),
    ("Orthogonal", {"rand_type": "normal"}, [6, 2, 3, 1], "float32"),
    ("Orthogonal", {"scale": 1.0}, [3, 2, 2], "float64"),
]


def generate() -> Dict[str, Any]:
    random.seed(SEED)
    out = []
    for name, kwargs, shape, dtype in CASES:
        arr = np.zeros(shape, dtype=dtype)
        getattr(initializer, name)(**kwargs)._init_weight("x_weight", arr)
        values = [float(v) for v in arr.astype(np.float64).ravel()]
        out.append(
            {"init": name, "kwargs": kwargs, "shape": shape, "dtype": dtype, "values": values}
        )
    return {"generator": "tests/rust_fixtures.py", "seed": SEED, "cases": out}


def dumps(data: Dict[str, Any]) -> str:
    return json.dumps(data, indent=0) + "\n"


def schedules() -> Dict[str, Any]:
    from mxopt import lr_scheduler

    cases = []
    for cls, kwargs, calls in SCHEDULES:
        sched = getattr(lr_scheduler, cls)(**kwargs)
        outputs = [sched(n) for n in calls]
        cases.append({"scheduler": cls, "kwargs": kwargs, "calls": calls, "outputs": outputs})
    return {"generator": "tests/rust_fixtures.py", "cases": cases}


def _floats(a: np.ndarray) -> str:
    """The array's values as the hex string of their little-endian bytes (compact, exact)."""
    return a.astype(a.dtype.newbyteorder("<")).tobytes().hex()


def _entry(arrays: Dict[str, np.ndarray], name: str, key: str) -> np.ndarray:
    return arrays[f"{name}/{key}"]


def _names(meta: Dict[str, Any]) -> Tuple[Any, Dict[str, float], Dict[str, float]]:
    """Parameter names (MXNet's index, or its ``param_idx2name`` name) and the lr/wd
    multipliers keyed by name (MXNet looks an index up first, then its name)."""
    idx2name = {k: v for k, v in meta["param_idx2name"] or []}

    def name(index: Any) -> str:
        return idx2name.get(index, index if isinstance(index, str) else str(index))

    def mults(pairs: Any) -> Dict[str, float]:
        by_name = {name(k): v for k, v in pairs or [] if not isinstance(k, int)}
        by_name.update({name(k): v for k, v in pairs or [] if isinstance(k, int)})
        return by_name

    return name, mults(meta["lr_mult"]), mults(meta["wd_mult"])


def _supported(meta: Dict[str, Any]) -> bool:
    if meta["mode"] != "updater":
        return False
    if meta.get("state_init"):
        return False
    if set(meta["env"]) - {AGG_ENV}:
        return False
    if any(c["kind"] != "updater" for c in meta["calls"]):
        return False
    # The Rust API updates a list of one element type per call.
    dtypes = [w["dtype"] for w in meta["weights"]]
    return all(len({dtypes[k] for k in c["weights"]}) == 1 for c in meta["calls"])


def optimizer_cases(
    stems: Tuple[str, ...] = OPTIMIZERS, max_case_bytes: Optional[int] = None
) -> Dict[str, Any]:
    cases = []
    for stem in stems:
        with np.load(GOLDEN / f"{stem}.npz") as z:
            arrays = {k: z[k] for k in z.files}
        names = sorted(k[: -len("/meta")] for k in arrays if k.endswith("/meta"))
        for name in names:
            meta = json.loads(str(arrays[f"{name}/meta"]))
            if not _supported(meta):
                continue
            get = functools.partial(_entry, arrays, name)
            weights = [_floats(get(f"w0/{k}")) for k in range(len(meta["weights"]))]
            name_of, lr_mult, wd_mult = _names(meta)
            calls = []
            for i, call in enumerate(meta["calls"]):
                index = call["index"] if isinstance(call["index"], list) else [call["index"]]
                grads = []
                for j, spec in enumerate(call["grads"]):
                    if spec["stype"] == "default":
                        grads.append({"dense": _floats(get(f"call{i}/g{j}"))})
                    else:
                        indices = [int(x) for x in get(f"call{i}/g{j}/indices")]
                        grads.append(
                            {"indices": indices, "values": _floats(get(f"call{i}/g{j}/data"))}
                        )
                after = {}
                for k in range(len(meta["weights"])):
                    key = f"{name}/call{i}/w{k}"
                    if key in arrays:
                        after[str(k)] = _floats(arrays[key])
                names = [name_of(i) for i in index]
                calls.append(
                    {"names": names, "weights": call["weights"], "grads": grads, "after": after}
                )
            cases.append(
                {
                    "name": f"{stem}:{name}",
                    "optimizer": meta["optimizer"],
                    "kwargs": meta["kwargs"],
                    "scheduler": meta["scheduler"],
                    "decay_by_suffix": bool(meta["param_idx2name"]),
                    "lr_mult": lr_mult,
                    "wd_mult": wd_mult,
                    "dtypes": [w["dtype"] for w in meta["weights"]],
                    # SGLD's golden cases replaced MXNet's noise by zeros.
                    "noise": meta.get("noise", True),
                    "shapes": [w["shape"] for w in meta["weights"]],
                    "w0": weights,
                    "calls": calls,
                }
            )
            if max_case_bytes is not None and len(json.dumps(cases[-1])) > max_case_bytes:
                cases.pop()
    return {"generator": "tests/rust_fixtures.py", "cases": cases}


def more_optimizer_cases() -> Dict[str, Any]:
    return optimizer_cases(MORE_OPTIMIZERS, MORE_CASE_BYTES)


INIT_SIGMA = 0.5
PACKAGE_FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "optimizer_package.json"
# Trajectories of the Python package where the golden files have none: SGLD with its
# seeded noise, LBSGD accumulating dense and row-sparse gradients together, and lists of
# dense and row-sparse gradients for the layer-wise and Python-side optimizers.
# (name, optimizer, kwargs, dtypes, shapes, calls); a call is a list of
# (weight position, gradient kind: "dense" or a list of rows).
PACKAGE_CASES: List[tuple] = (
    [
        (
            f"sgld_noise_{tag}",
            "sgld",
            {"learning_rate": 0.05, "wd": 0.01, "rescale_grad": 0.5, **extra},
            [dtype, dtype, dtype],
            [[3, 2], [4], [2, 3]],
            [
                [(0, "dense")],
                [(1, "dense")],
                [(0, "dense"), (1, "dense"), (2, [1])],
                [(2, "dense")],
            ],
        )
        for tag, dtype, extra in [
            ("f32", "float32", {}),
            ("f64", "float64", {}),
            ("f16", "float16", {}),
            ("mp_f16", "float16", {"multi_precision": True}),
        ]
    ]
    + [
        (
            f"lbsgd_mixed_stypes_{tag}",
            "lbsgd",
            {"learning_rate": 0.1, "wd": 0.01, "batch_scale": 3, "momentum": 0.9, **extra},
            [dtype, dtype],
            [[5, 3], [4, 2]],
            [
                [(0, [0, 2])],
                [(0, [2, 4]), (1, "dense")],
                [(0, "dense"), (1, [3])],
                [(0, "dense"), (1, [0, 1])],
                [(0, [1])],
                [(0, [3]), (1, "dense")],
                [(0, "dense")],
            ],
        )
        for tag, dtype, extra in [
            ("f32", "float32", {}),
            ("lars_f64", "float64", {"warmup_strategy": "lars"}),
            ("mp_f16", "float16", {"multi_precision": True, "warmup_epochs": 1}),
        ]
    ]
    + [
        (
            f"{opt}_lists_{tag}",
            opt,
            {"learning_rate": 0.1, "wd": 0.0 if opt == "groupadagrad" else 0.01, **hyper, **extra},
            [dtype, dtype, dtype],
            [[3, 2], [4, 1], [2, 3]],
            [
                [(0, "dense"), (1, "dense"), (2, "dense")],
                [(0, "dense"), (1, "dense"), (2, "dense")],
                [(0, "dense"), (1, [1, 3]), (2, [0])],
                [(2, "dense")],
                [(1, "dense"), (0, [2])],
            ],
        )
        for opt, hyper in [
            ("lars", {"momentum": 0.9, "eta": 0.05, "eps": 1e-3}),
            ("lamb", {"clip_gradient": 1.0}),
            ("dcasgd", {"lamda": 0.5}),
            ("groupadagrad", {"rescale_grad": 0.5}),
            ("test", {"rescale_grad": 0.5}),
        ]
        for tag, dtype, extra in [
            ("f32", "float32", {}),
            ("f64", "float64", {}),
            ("mp_f16", "float16", {"multi_precision": True}),
        ]
        if not (opt in ("lamb", "groupadagrad") and tag == "f64")
    ]
)


def package_cases() -> Dict[str, Any]:
    """Runs ``PACKAGE_CASES`` through the Python package's Updater (after
    ``mxopt.random.seed(SEED)`` and a ``Normal(INIT_SIGMA)`` fill of every weight, which the
    Rust replay repeats with ``mxopt::init``)."""
    from mxopt import optimizer
    from mxopt.sparse import RowSparseNDArray

    cases = []
    for name, opt_name, kwargs, dtypes, shapes, calls in PACKAGE_CASES:
        random.seed(SEED)
        rng = np.random.RandomState(len(cases) + 1)
        weights = []
        for dtype, shape in zip(dtypes, shapes):
            w = np.zeros(shape, dtype=dtype)
            initializer.Normal(sigma=INIT_SIGMA)._init_weight("x_weight", w)
            weights.append(w)
        w0 = [_floats(w) for w in weights]
        updater = optimizer.get_updater(optimizer.create(opt_name, **kwargs))
        recorded = []
        for call in calls:
            grads, fixture_grads = [], []
            for k, kind in call:
                shape = tuple(shapes[k])
                if kind == "dense":
                    g = rng.uniform(-2, 2, shape).astype(dtypes[k])
                    grads.append(g)
                    fixture_grads.append({"dense": _floats(g)})
                else:
                    data = rng.uniform(-2, 2, (len(kind), *shape[1:])).astype(dtypes[k])
                    grads.append(RowSparseNDArray(data, np.array(kind, dtype=np.int64), shape))
                    fixture_grads.append({"indices": list(kind), "values": _floats(data)})
            ks = [k for k, _ in call]
            if len(call) == 1:
                updater(ks[0], grads[0], weights[ks[0]])
            else:
                updater(ks, grads, [weights[k] for k in ks])
            recorded.append(
                {
                    "names": [str(k) for k in ks],
                    "weights": ks,
                    "grads": fixture_grads,
                    "after": {str(k): _floats(weights[k]) for k in ks},
                }
            )
        cases.append(
            {
                "name": f"package:{name}",
                "optimizer": opt_name,
                "kwargs": kwargs,
                "scheduler": None,
                "decay_by_suffix": False,
                "lr_mult": {},
                "wd_mult": {},
                "dtypes": dtypes,
                "noise": True,
                "seed": SEED,
                "init_sigma": INIT_SIGMA,
                "shapes": shapes,
                "w0": w0,
                "calls": recorded,
            }
        )
    return {"generator": "tests/rust_fixtures.py", "cases": cases}


if __name__ == "__main__":
    FIXTURE.write_text(dumps(generate()))
    OPT_FIXTURE.write_text(json.dumps(optimizer_cases(), allow_nan=False) + "\n")
    MORE_FIXTURE.write_text(json.dumps(more_optimizer_cases(), allow_nan=False) + "\n")
    PACKAGE_FIXTURE.write_text(json.dumps(package_cases(), allow_nan=False) + "\n")
    SCHED_FIXTURE.write_text(json.dumps(schedules(), allow_nan=False) + "\n")
    print(f"wrote {FIXTURE}, {OPT_FIXTURE} and {SCHED_FIXTURE}")
