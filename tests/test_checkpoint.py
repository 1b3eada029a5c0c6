"""``Updater.save`` / ``Updater.load``: safetensors checkpoints shared with the Rust crate.

Every registered optimizer resumes bit-identically (dense, float16 multi-precision,
aggregated lists); damaged files are refused and leave the updater unchanged; and files
cross between Python and the Rust example ``checkpoint_resume`` both ways.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

import mxopt
from mxopt import _core, lr_scheduler
from mxopt.optimizer import Updater, create

ROOT = Path(__file__).resolve().parent.parent

# (registry name, constructor keywords): every optimizer the package registers.
CASES: List[Tuple[str, Dict[str, Any]]] = [
    ("sgd", {"momentum": 0.9, "learning_rate": 0.05}),
    ("sgd", {"learning_rate": 0.05}),
    ("ccsgd", {"momentum": 0.5}),
    ("nag", {"momentum": 0.9, "clip_gradient": 0.3}),
    ("adam", {"learning_rate": 0.01, "wd": 0.01}),
    ("adagrad", {}),
    ("rmsprop", {}),
    ("rmsprop", {"centered": True, "clip_weights": 2.0}),
    ("adamax", {}),
    ("nadam", {"learning_rate": 0.01}),
    ("adadelta", {}),
    ("ftml", {}),
    ("ftrl", {"lamda1": 0.02}),
    ("signum", {}),
    ("signum", {"momentum": 0.0}),
    ("lars", {"momentum": 0.9, "eta": 0.01}),
    ("lamb", {}),
    ("lbsgd", {"momentum": 0.9}),
    ("lbsgd", {"batch_scale": 2, "begin_epoch": 1, "updates_per_epoch": 3}),
    ("dcasgd", {}),
    ("sgld", {}),
    ("test", {}),
    ("groupadagrad", {}),
]
IDS = [f"{name}-{'-'.join(map(str, kw.values()))}" for name, kw in CASES]
NAMES = {0: "fc_weight", 1: "fc_bias"}
SHAPES = {0: (3, 4), 1: (2, 4)}


def grad(shape: Tuple[int, ...], step: int, dtype: Any) -> np.ndarray:
    """The gradient the Rust example computes too: ``((7i + 13 step) mod 11)/11 - 0.4``."""
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    g = ((7 * i + 13 * step) % 11).astype(np.float64) / 11.0 - 0.4
    return g.astype(dtype).reshape(shape)


def make(name: str, kwargs: Dict[str, Any], mp: bool = False, **extra: Any) -> Updater:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = create(name, param_idx2name=dict(NAMES), multi_precision=mp, **kwargs, **extra)
    return Updater(opt)


def run(updater: Updater, weights: Dict[Any, np.ndarray], steps: range, aggregated: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in steps:
            keys = sorted(weights, key=str)
            grads = [grad(weights[k].shape, step, weights[k].dtype) for k in keys]
            if aggregated:
                updater(list(keys), grads, [weights[k] for k in keys])
            else:
                for k, g in zip(keys, grads):
                    updater(k, g, weights[k])


def fresh_weights(dtype: Any) -> Dict[Any, np.ndarray]:
    return {
        k: (np.linspace(-1, 1, int(np.prod(s))).reshape(s) + 0.25).astype(dtype)
        for k, s in SHAPES.items()
    }


def states_equal(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(states_equal, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a is None and b is None


@pytest.mark.parametrize("mode", ["dense", "mp16", "aggregated"])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_resumes_bit_identically(
    tmp_path: Path, name: str, kwargs: Dict[str, Any], mode: str
) -> None:
    mp = mode == "mp16"
    dtype = np.float16 if mp else np.float32
    aggregated = mode == "aggregated"
    scheduler = lambda: lr_scheduler.FactorScheduler(step=2, factor=0.8, base_lr=0.02)  # noqa: E731
    mxopt.random.seed(11)
    straight = make(name, kwargs, mp, lr_scheduler=scheduler())
    w_straight = fresh_weights(dtype)
    run(straight, w_straight, range(6), aggregated)

    mxopt.random.seed(11)
    first = make(name, kwargs, mp, lr_scheduler=scheduler())
    weights = fresh_weights(dtype)
    run(first, weights, range(3), aggregated)
    path = tmp_path / "opt.safetensors"
    first.save(path)
    # The loading optimizer is built with defaults: the file restores the settings.
    resumed = make(name, {})
    resumed.load(path)
    assert type(resumed.optimizer) is type(first.optimizer)
    run(resumed, weights, range(3, 6), aggregated)
    for k in SHAPES:
        assert weights[k].tobytes() == w_straight[k].tobytes(), k
        assert states_equal(resumed.states[k], straight.states[k]), k
    assert resumed.optimizer.num_update == straight.optimizer.num_update
    assert resumed.optimizer._index_update_count == straight.optimizer._index_update_count
    assert accumulations(resumed) == accumulations(straight)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [case for case in CASES if case[0] != "groupadagrad"],  # 2-d weights only
    ids=[i for (name, _), i in zip(CASES, IDS) if name != "groupadagrad"],
)
def test_scalar_parameters_resume_with_scalar_states(
    tmp_path: Path, name: str, kwargs: Dict[str, Any]
) -> None:
    """0-d weights (a learned temperature, a scale) update, save and load as 0-d arrays:
    NumPy turns 0-d results into scalars and ``ascontiguousarray`` makes them 1-d."""
    mxopt.random.seed(5)
    straight = make(name, kwargs)
    w_straight = {0: np.array(0.75, np.float32), 1: np.array([0.5], np.float32)}
    run(straight, w_straight, range(4), aggregated=False)
    mxopt.random.seed(5)
    first = make(name, kwargs)
    weights = {0: np.array(0.75, np.float32), 1: np.array([0.5], np.float32)}
    run(first, weights, range(2), aggregated=False)
    first.save(tmp_path / "opt.safetensors")
    resumed = make(name, {})
    resumed.load(tmp_path / "opt.safetensors")
    loaded = resumed.states[0]
    leaves = [a for a in (loaded if isinstance(loaded, tuple) else (loaded,)) if a is not None]
    assert all(a.shape == () for a in leaves), [a.shape for a in leaves]
    run(resumed, weights, range(2, 4), aggregated=False)
    assert weights[0].shape == () and weights[0].tobytes() == w_straight[0].tobytes()
    assert states_equal(resumed.states[0], straight.states[0])


def test_file_layout_is_the_rust_one(tmp_path: Path) -> None:
    updater = make("adam", {"wd": 0.5}, mp=True)
    weights = fresh_weights(np.float16)
    weights["emb"] = np.ones(3, np.float32)
    run(updater, weights, range(2), False)
    updater.save(tmp_path / "a.safetensors")
    metadata, params = _core.checkpoint_read(tmp_path / "a.safetensors")
    assert sorted(params) == ["emb", "fc_bias", "fc_weight"]
    count, dtype, master, states = params["fc_weight"]
    assert (count, dtype, master.dtype, master.shape) == (2, "float16", np.float32, (3, 4))
    assert [s.shape for s in states] == [(3, 4), (3, 4)]
    assert params["emb"][1:3] == ("float32", None)
    algorithm = json.loads(metadata["algorithm"])
    assert algorithm == {
        "name": "adam",
        "beta1": 0.9,
        "beta2": 0.999,
        "epsilon": 1e-8,
        "rescale_grad": 1.0,
        "clip_gradient": None,
    }
    config = json.loads(metadata["config"])
    # param_idx2name's rule by suffix becomes explicit multipliers.
    assert config["wd_mult"] == {"fc_bias": 0.0}
    assert json.loads(metadata["python"])["indices"] == {"fc_weight": 0, "fc_bias": 1}


def test_string_keys_and_unnamed_indices(tmp_path: Path) -> None:
    updater = Updater(create("sgd", momentum=0.9, learning_rate=0.1))
    weights = {"a": np.ones(4, np.float64), 7: np.ones(2, np.float64)}
    updater.optimizer.set_lr_mult({7: 0.5})
    run(updater, weights, range(2), False)
    updater.save(tmp_path / "s.safetensors")
    resumed = Updater(create("sgd"))
    resumed.load(tmp_path / "s.safetensors")
    assert set(resumed.states) == {"a", 7}
    assert resumed.optimizer.lr_mult == {7: 0.5}
    straight = {k: v.copy() for k, v in weights.items()}
    run(updater, straight, range(2, 4), False)
    run(resumed, weights, range(2, 4), False)
    assert all(np.array_equal(weights[k], straight[k]) for k in weights)


def test_schedulers_resume(tmp_path: Path) -> None:
    schedulers = [
        lr_scheduler.MultiFactorScheduler(step=[2, 3, 5], factor=0.5, base_lr=0.1),
        lr_scheduler.PolyScheduler(max_update=8, base_lr=0.1, pwr=1.5, warmup_steps=2),
        lr_scheduler.CosineScheduler(max_update=7, base_lr=0.1, warmup_mode="constant"),
    ]
    for scheduler in schedulers:
        straight = Updater(create("adam", lr_scheduler=scheduler))
        w_straight = fresh_weights(np.float32)
        run(straight, w_straight, range(3), False)
        straight.save(tmp_path / "s.safetensors")
        resumed = Updater(create("adam"))
        resumed.load(tmp_path / "s.safetensors")
        assert type(resumed.optimizer.lr_scheduler) is type(scheduler)
        weights = {k: v.copy() for k, v in w_straight.items()}
        run(straight, w_straight, range(3, 9), False)
        run(resumed, weights, range(3, 9), False)
        assert all(np.array_equal(weights[k], w_straight[k]) for k in weights)


def snapshot(updater: Updater) -> Any:
    opt = updater.optimizer
    return (
        {k: v for k, v in vars(opt).items() if k != "_kernel_cache"}.__repr__(),
        repr(updater.states),
    )


def saved(tmp_path: Path) -> Tuple[Updater, Path]:
    updater = make("adam", {"learning_rate": 0.01})
    run(updater, fresh_weights(np.float32), range(2), False)
    path = tmp_path / "good.safetensors"
    updater.save(path)
    return updater, path


def test_damaged_files_are_refused_and_change_nothing(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    good = path.read_bytes()
    target = make("adam", {"learning_rate": 0.5})
    run(target, fresh_weights(np.float32), range(1), False)
    before = snapshot(target)
    bad = tmp_path / "bad.safetensors"
    header_len = int.from_bytes(good[:8], "little")
    damaged = [
        good[:5],
        good[: len(good) // 2],
        good[:-1],
        (2**63).to_bytes(8, "little") + good[8:],
        (header_len + 5).to_bytes(8, "little") + good[8:],
        good[:8] + b"!" * header_len + good[8 + header_len :],
        good + b"\0",
    ]
    for blob in damaged:
        bad.write_bytes(blob)
        with pytest.raises(ValueError, match="checkpoint"):
            target.load(bad)
        assert snapshot(target) == before
    with pytest.raises(ValueError, match="cannot read"):
        target.load(tmp_path / "missing.safetensors")
    assert snapshot(target) == before


def rewrite(path: Path, out: Path, edit: Any) -> None:
    metadata, params = _core.checkpoint_read(path)
    edit(metadata, params)
    _core.checkpoint_write(out, metadata, params)


def set_json(entry: str, path: Tuple[str, ...], value: Any) -> Any:
    """An edit of a rewritten file: one field of a JSON metadata entry."""

    def edit(metadata: Dict[str, str], params: Any) -> None:
        data = json.loads(metadata[entry])
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        metadata[entry] = json.dumps(data)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (set_json("algorithm", ("name",), "sgd"), "'sgd' optimizer"),
        (lambda m, p: m.pop("config"), "no 'config'"),
        (lambda m, p: m.update(state="[1, 2"), "not valid JSON"),
        (lambda m, p: m.update(state='{"lr": NaN}'), "finite"),
        (set_json("algorithm", ("beta1",), "x"), "beta1"),
        (set_json("algorithm", ("epsilon",), None), "epsilon"),
        (set_json("config", ("wd",), True), "wd"),
        (
            lambda m, p: m.update(
                config=m["config"].replace('"lr_mult": {}', '"lr_mult": {"fc_bias": 1e999}')
            ),
            "lr_mult",
        ),
        (set_json("state", ("num_update",), -3), "num_update"),
        (lambda m, p: p["fc_bias"][3].pop(), "keeps 2"),
        (set_json("config", ("lr_scheduler",), 3), "lr_scheduler"),
        (
            set_json("config", ("lr_scheduler",), {"base_lr": 0.1, "warmup": {}, "kind": {}}),
            "lr_scheduler",
        ),
        (
            lambda m, p: m.update(python='{"class": "adam", "attributes": {"system": 1}}'),
            "system",
        ),
        (lambda m, p: m.update(python='{"indices": {"fc_bias": "x"}}'), "indices"),
        (
            lambda m, p: m.update(python='{"class": "adam", "attributes": {"aggregate_num": "8"}}'),
            "aggregate_num",
        ),
    ],
)
def test_tampered_contents_are_refused(tmp_path: Path, edit: Any, message: str) -> None:
    _, path = saved(tmp_path)
    out = tmp_path / "edited.safetensors"
    rewrite(path, out, edit)
    target = make("adam", {})
    before = snapshot(target)
    with pytest.raises(ValueError, match=message):
        target.load(out)
    assert snapshot(target) == before


def test_container_checks_on_write(tmp_path: Path) -> None:
    ok = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="reserved"):
        _core.checkpoint_write(tmp_path / "x", {"format": "x"}, {})
    with pytest.raises(ValueError, match="dtype"):
        _core.checkpoint_write(tmp_path / "x", {}, {"w": (1, "float64", None, [ok])})
    with pytest.raises(TypeError, match="dtype"):
        _core.checkpoint_write(tmp_path / "x", {}, {"w": (1, "int8", None, [ok])})
    with pytest.raises(TypeError):
        _core.checkpoint_write(tmp_path / "x", {}, {"w": (1, "float32", None, [np.zeros(2, int)])})
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="cannot write"):
        _core.checkpoint_write(tmp_path / "no" / "dir", {}, {})


def test_what_cannot_be_saved(tmp_path: Path) -> None:
    class Custom(lr_scheduler.LRScheduler):
        def __call__(self, num_update: int) -> float:
            return 0.1

    updater = Updater(create("sgd", lr_scheduler=Custom()))
    with pytest.raises(ValueError, match="Custom"):
        updater.save(tmp_path / "c.safetensors")
    updater = Updater(create("sgd", momentum=0.9))
    updater.states[0] = "not a state"
    with pytest.raises(ValueError, match="states\\[0\\]"):
        updater.save(tmp_path / "c.safetensors")
    updater = Updater(create("sgd", momentum=0.9))
    updater.states[0] = np.zeros(2, np.float32)
    updater.states["0"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="both map"):
        updater.save(tmp_path / "c.safetensors")
    assert not (tmp_path / "c.safetensors").exists()


def test_load_keeps_the_live_param_dict(tmp_path: Path) -> None:
    class Param:
        lr_mult = 0.5
        wd_mult = 1.0

    _, path = saved(tmp_path)
    target = Updater(create("adam", param_dict={0: Param()}))
    target.load(path)
    assert isinstance(target.optimizer.param_dict[0], Param)
    assert target.optimizer._get_lrs([0]) == [0.5 * target.optimizer.lr]


def test_loading_another_optimizer_is_refused(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    target = make("sgd", {"momentum": 0.9})
    before = snapshot(target)
    with pytest.raises(ValueError, match="'adam' optimizer"):
        target.load(path)
    assert snapshot(target) == before


# ------------------------------------------------------------------ cross-language


@pytest.fixture(scope="module")
def rust_example() -> Path:
    """The ``checkpoint_resume`` example binary, built once."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed: the Rust side of the round trip cannot be built")
    build = subprocess.run(
        [cargo, "build", "--quiet", "--example", "checkpoint_resume", "--message-format=json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"cargo build --example checkpoint_resume failed:\n{build.stderr}")
    for line in build.stdout.splitlines():
        message = json.loads(line)
        if (
            message.get("reason") == "compiler-artifact"
            and message.get("executable")
            and message["target"]["name"] == "checkpoint_resume"
        ):
            return Path(message["executable"])
    pytest.fail("cargo did not report the checkpoint_resume executable")


# Every optimizer the Rust side has, with settings that exercise its state.
RUST_CASES: List[Tuple[str, Dict[str, Any]]] = [
    ("sgd", {"momentum": 0.9}),
    ("sgd", {}),
    ("ccsgd", {"momentum": 0.5}),
    ("nag", {"momentum": 0.9}),
    ("nag", {}),
    ("adam", {"wd": 0.01}),
    ("adagrad", {}),
    ("rmsprop", {}),
    ("rmsprop", {"centered": True}),
    ("adamax", {}),
    ("nadam", {}),
    ("adadelta", {}),
    ("ftml", {}),
    ("ftrl", {}),
    ("signum", {"momentum": 0.0}),
    ("signum", {}),
    ("lars", {"momentum": 0.9, "eta": 0.01}),
    ("lamb", {"wd": 0.01}),
    # Saved part-way through batches of 4 (counts 3 and 6), in the warm-up.
    (
        "lbsgd",
        {
            "momentum": 0.9,
            "batch_scale": 4,
            "warmup_epochs": 1,
            "updates_per_epoch": 5,
            "warmup_strategy": "sqrt",
        },
    ),
    ("lbsgd", {"batch_scale": 4, "warmup_strategy": "lars"}),
    ("dcasgd", {}),
    ("sgld", {}),
    ("groupadagrad", {}),
    ("test", {}),
]
RUST_IDS = [f"{name}-{'-'.join(map(str, kw.values()))}" for name, kw in RUST_CASES]
# Optimizers whose Python classes take float32 weights only (float16 with multi_precision).
FLOAT32_ONLY = ("lamb", "groupadagrad", "adagrad", "rmsprop", "adadelta", "ftrl")
# Optimizers with row-sparse kernels (and FTML, whose gradients are made dense).
SPARSE = ("sgd", "ccsgd", "nag", "adam", "adagrad", "lars", "lbsgd", "groupadagrad", "ftml")


def save_weights(path: Path, weights: Dict[Any, np.ndarray]) -> None:
    _core.checkpoint_write(
        path, {}, {NAMES[k]: (0, str(w.dtype), None, [w]) for k, w in weights.items()}
    )


def read_weights(path: Path) -> Dict[Any, np.ndarray]:
    _, params = _core.checkpoint_read(path)
    by_name = {v: k for k, v in NAMES.items()}
    return {by_name[name]: p[3][0] for name, p in params.items()}


def example_grad(shape: Tuple[int, ...], step: int, dtype: Any, sparse: bool) -> Any:
    """The Rust example's gradient: dense, or its rows ``r`` with ``r + step`` even."""
    dense = grad(shape, step, dtype)
    if not sparse:
        return dense
    rows = np.array([r for r in range(shape[0]) if (r + step) % 2 == 0], np.int64)
    return mxopt.sparse.RowSparseNDArray(dense[rows], rows, shape)


def run_example(rust_example: Path, *args: Any) -> None:
    done = subprocess.run(
        [str(rust_example), *map(str, args)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def accumulations(updater: Updater) -> Any:
    """LBSGD's accumulated gradients as comparable values."""
    cumgrads = getattr(updater.optimizer, "cumgrads", {})
    out = {}
    for key, entry in cumgrads.items():
        cum = entry["cum_grad"]
        if mxopt.sparse.RowSparseNDArray is type(cum):
            cum = ("rows", cum.indices.tolist(), cum.data.tobytes())
        elif isinstance(cum, np.ndarray):
            cum = cum.tobytes()
        out[key] = (entry["num_cums"], cum)
    return out


@pytest.mark.parametrize("mode", ["f32", "mp16", "rows", "f64", "f16"])
@pytest.mark.parametrize(("name", "kwargs"), RUST_CASES, ids=RUST_IDS)
def test_python_rust_python(
    rust_example: Path, tmp_path: Path, name: str, kwargs: Dict[str, Any], mode: str
) -> None:
    """Python trains 3 steps and saves; Rust loads, trains 3 more and saves; Python loads
    that and trains 2 more: every weight and state equals an uninterrupted Python run."""
    sparse = mode == "rows"
    if sparse and name not in SPARSE:
        pytest.skip("dense gradients only")
    if mode in ("f64", "f16") and name in FLOAT32_ONLY:
        pytest.skip("float32 states: float32 weights, or float16 with multi_precision")
    mp = mode == "mp16"
    dtype = {"f64": np.float64, "f16": np.float16, "mp16": np.float16}.get(mode, np.float32)
    scheduler = lambda: lr_scheduler.FactorScheduler(step=2, factor=0.8, base_lr=0.02)  # noqa: E731
    mxopt.random.seed(5)
    straight = make(name, kwargs, mp, lr_scheduler=scheduler())
    w_straight = fresh_weights(dtype)
    # The Rust example updates parameters in name order: fc_bias (1), then fc_weight (0).
    order = [1, 0]

    def train(updater: Updater, weights: Dict[Any, np.ndarray], steps: range) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for step in steps:
                for k in order:
                    updater(k, example_grad(weights[k].shape, step, dtype, sparse), weights[k])

    train(straight, w_straight, range(3))
    mxopt.random.seed(5)
    first = make(name, kwargs, mp, lr_scheduler=scheduler())
    weights = fresh_weights(dtype)
    train(first, weights, range(3))
    first.save(tmp_path / "py.safetensors")
    save_weights(tmp_path / "w_py.safetensors", weights)
    rows = ["rows"] if sparse else []
    out = [tmp_path / "rs.safetensors", tmp_path / "w_rs.safetensors"]
    run_example(
        rust_example, tmp_path / "py.safetensors", tmp_path / "w_py.safetensors", 3, 3, *out, *rows
    )
    # The generator is where the first run left it, as the Rust run started.
    train(straight, w_straight, range(3, 6))
    from_rust = read_weights(tmp_path / "w_rs.safetensors")
    for k in SHAPES:
        assert from_rust[k].tobytes() == w_straight[k].tobytes(), NAMES[k]
    train(straight, w_straight, range(6, 8))
    resumed = make(name, {})
    resumed.load(tmp_path / "rs.safetensors", restore_random=True)
    assert resumed.optimizer.num_update == straight.optimizer.num_update - 2 * (name != "test")
    train(resumed, from_rust, range(6, 8))
    for k in SHAPES:
        assert from_rust[k].tobytes() == w_straight[k].tobytes(), NAMES[k]
        assert states_equal(resumed.states[k], straight.states[k]), NAMES[k]
    assert accumulations(resumed) == accumulations(straight)


@pytest.mark.parametrize("name", sorted({name for name, _ in RUST_CASES}))
def test_rust_saves_python_resumes(rust_example: Path, tmp_path: Path, name: str) -> None:
    """Rust starts a fresh optimizer (its defaults, decay by name suffix), trains 3 steps
    and saves; Python loads the file and trains on: equal to a Python run throughout."""
    # GroupAdaGrad has no weight decay (the example leaves it out for it too).
    wd = 0.0 if name == "groupadagrad" else 0.01
    mxopt.random.seed(mxopt.random.DEFAULT_SEED)  # a new Rust optimizer's generator
    straight = make(
        name, {"wd": wd}, lr_scheduler=lr_scheduler.FactorScheduler(2, 0.8, base_lr=0.02)
    )
    w_straight = fresh_weights(np.float32)
    save_weights(tmp_path / "w0.safetensors", w_straight)
    out = [tmp_path / n for n in ("rs.safetensors", "w_rs.safetensors")]
    run_example(rust_example, f"new:{name}", tmp_path / "w0.safetensors", 0, 3, *out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def train(updater: Updater, weights: Dict[Any, np.ndarray], steps: range) -> None:
            for step in steps:
                for k in (1, 0):  # name order, as the example
                    updater(k, grad(weights[k].shape, step, np.float32), weights[k])

        train(straight, w_straight, range(3))
        from_rust = read_weights(tmp_path / "w_rs.safetensors")
        assert all(from_rust[k].tobytes() == w_straight[k].tobytes() for k in SHAPES)
        train(straight, w_straight, range(3, 6))
        resumed = make(name, {})
        # The generator goes back to where the Rust run left it (SGLD's noise).
        resumed.load(tmp_path / "rs.safetensors", restore_random=True)
        train(resumed, from_rust, range(3, 6))
    for k in SHAPES:
        assert from_rust[k].tobytes() == w_straight[k].tobytes(), NAMES[k]
        assert states_equal(resumed.states[k], straight.states[k]), NAMES[k]


def test_rust_refuses_unknown_optimizers(rust_example: Path, tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    out = tmp_path / "lbfgs.safetensors"
    rewrite(path, out, set_json("algorithm", ("name",), "lbfgs"))
    save_weights(tmp_path / "w.safetensors", fresh_weights(np.float32))
    done = subprocess.run(
        [str(rust_example), out, tmp_path / "w.safetensors", "1", "1", os.devnull, os.devnull],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "lbfgs" in done.stderr and "panicked" not in done.stderr


def test_rust_rule_by_suffix_becomes_multipliers(tmp_path: Path) -> None:
    """A Rust file says "no weight decay for names ending in neither _weight nor _gamma"
    (decay_by_suffix); Python turns it into wd_mult entries for the file's parameters."""
    _, path = saved(tmp_path)
    out = tmp_path / "rust_style.safetensors"

    def rust_style(metadata: Dict[str, str], params: Any) -> None:
        set_json("config", ("decay_by_suffix",), True)(metadata, params)
        set_json("config", ("wd_mult",), {})(metadata, params)
        del metadata["python"]

    rewrite(path, out, rust_style)
    target = make("adam", {})
    target.load(out)
    assert target.optimizer.wd_mult == {1: 0.0}
    # Without python metadata, names go back to indices through param_idx2name.
    assert set(target.states) == {0, 1}


def lbsgd_part_way(tmp_path: Path) -> Path:
    """LBSGD saved part-way through a batch of 3 row-sparse gradients (rows 0 and 2 of
    fc_weight held)."""
    updater = make("lbsgd", {"batch_scale": 3, "momentum": 0.5})
    weights = fresh_weights(np.float32)
    for step in range(2):
        for k, w in weights.items():
            rows = np.array([0, 2][: 1 + step] if k == 0 else [1], np.int64)
            g = mxopt.sparse.RowSparseNDArray(grad(w.shape, step, w.dtype)[rows], rows, w.shape)
            updater(k, g, w)
    path = tmp_path / "lbsgd.safetensors"
    updater.save(path)
    return path


def test_lbsgd_accumulation_in_the_file(tmp_path: Path) -> None:
    metadata, params = _core.checkpoint_read(lbsgd_part_way(tmp_path))
    assert json.loads(metadata["accumulation"]) == {
        "fc_weight": {"count": 2, "held": "rows", "rows": 3, "indices": [0, 2]},
        "fc_bias": {"count": 2, "held": "rows", "rows": 2, "indices": [1]},
    }
    momentum, accumulator = params["fc_weight"][3]
    assert momentum.shape == accumulator.shape == (3, 4)
    assert not accumulator[1].any()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"count": 2, "held": "zero"}, "exactly when"),
        ({"count": 3, "held": "rows", "rows": 3, "indices": [0]}, "exactly when"),
        ({"count": -2, "held": "zero"}, "count"),
        ({"count": 2**64, "held": "rows", "rows": 3, "indices": [0]}, "too large"),
        ({"count": 2, "held": "later"}, "held"),
        ({"count": 2}, "held"),
        ({"count": 2, "held": "rows", "rows": 5, "indices": [0]}, "do not divide"),
        ({"count": 2, "held": "rows", "rows": 0, "indices": []}, "do not divide"),
        ({"count": 2, "held": "rows", "rows": 3, "indices": [2, 0]}, "strictly increasing"),
        ({"count": 2, "held": "rows", "rows": 3, "indices": [3]}, "held rows"),
        ({"count": 2, "held": "rows", "rows": 3, "indices": [-1]}, "held rows"),
        ({"count": 2, "held": "rows", "rows": 3, "indices": "0"}, "indices"),
    ],
)
def test_tampered_accumulations_are_refused(
    tmp_path: Path, entry: Dict[str, Any], message: str
) -> None:
    out = tmp_path / "edited.safetensors"
    rewrite(lbsgd_part_way(tmp_path), out, set_json("accumulation", ("fc_weight",), entry))
    target = make("lbsgd", {})
    before = snapshot(target)
    with pytest.raises(ValueError, match=message):
        target.load(out)
    assert snapshot(target) == before


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (set_json("accumulation", ("emb",), {"count": 0, "held": "zero"}), "only LBSGD"),
        (set_json("state", ("generator",), {"seed": -1, "count": 0}), "seed"),
        (set_json("state", ("generator",), {"seed": 2**64, "count": 0}), "64 bits"),
        (set_json("state", ("generator",), {"seed": 1}), "count"),
        (set_json("state", ("last_lr",), "x"), "last_lr"),
        (lambda m, p: m.pop("accumulation"), "accumulation"),
    ],
)
def test_tampered_progress_is_refused(tmp_path: Path, edit: Any, message: str) -> None:
    _, path = saved(tmp_path)
    out = tmp_path / "edited.safetensors"
    rewrite(path, out, edit)
    target = make("adam", {})
    before = snapshot(target)
    with pytest.raises(ValueError, match=message):
        target.load(out)
    assert snapshot(target) == before


def test_per_row_states_of_another_length(tmp_path: Path) -> None:
    for mp in (False, True):
        updater = make("groupadagrad", {}, mp)
        weights = fresh_weights(np.float16 if mp else np.float32)
        run(updater, weights, range(1), False)
        path = tmp_path / "g.safetensors"
        updater.save(path)
        _, params = _core.checkpoint_read(path)
        assert params["fc_weight"][3][0].shape == (3, 1)

        def shorter(metadata: Dict[str, str], params: Any) -> None:
            params["fc_weight"][3][0] = np.zeros(5, np.float32)

        rewrite(path, tmp_path / "bad.safetensors", shorter)
        target = make("groupadagrad", {})
        if mp:
            with pytest.raises(ValueError, match="row count"):
                target.load(tmp_path / "bad.safetensors")
            continue
        target.load(tmp_path / "bad.safetensors")
        w = weights[0].copy()
        with pytest.raises(TypeError, match="state"):
            target(0, grad(w.shape, 1, w.dtype), w)
        assert np.array_equal(w, weights[0])


def test_restore_random_is_explicit(tmp_path: Path) -> None:
    mxopt.random.seed(3)
    updater = make("sgld", {})
    run(updater, fresh_weights(np.float32), range(2), False)
    path = tmp_path / "sgld.safetensors"
    updater.save(path)
    at_save = mxopt.random.next_stream()
    mxopt.random.seed(8)
    make("sgld", {}).load(path)
    assert mxopt.random.next_stream() == (8, 0)
    make("sgld", {}).load(path, restore_random=True)
    assert mxopt.random.next_stream() == at_save


def test_held_rows_of_another_row_count_fail_the_update_cleanly(tmp_path: Path) -> None:
    """6 held rows of 2 values load (the file does not know the weight), but a gradient
    of the weight's 3 rows does not fit them: refused before anything is counted."""
    out = tmp_path / "edited.safetensors"
    entry = {"count": 2, "held": "rows", "rows": 6, "indices": [0, 2]}
    rewrite(lbsgd_part_way(tmp_path), out, set_json("accumulation", ("fc_weight",), entry))
    target = make("lbsgd", {})
    target.load(out)
    w = fresh_weights(np.float32)[0]
    before = (w.copy(), dict(target.optimizer._index_update_count))
    rows = np.array([1], np.int64)
    g = mxopt.sparse.RowSparseNDArray(grad(w.shape, 2, w.dtype)[rows], rows, w.shape)
    with pytest.raises(ValueError, match="accumulated"):
        target(0, g, w)
    assert np.array_equal(w, before[0])
    assert target.optimizer._index_update_count == before[1]
