"""Replay MXNet 1.6.0 golden trajectories (``tests/golden/*.npz``) through mxopt.

Each case in the golden files describes an optimizer, its settings and a sequence of calls;
the files also hold what MXNet 1.6.0 produced after every call.  Only mxopt's MXNet-shaped
public API is used here, and every value must match exactly (``-0.0 == 0.0``): the spec
documents these paths as bit-exact.  Layout and regeneration: ``tests/golden/README.md``.
"""

import functools
import importlib
import json
import pathlib

import numpy as np
import pytest

GOLDEN = pathlib.Path(__file__).parent / "golden"
AGG_ENV = "MXNET_OPTIMIZER_AGGREGATION_SIZE"
# Every optimizer archive in golden/ (initializers.npz belongs to test_initializer.py).
STEMS = sorted(p.stem for p in GOLDEN.glob("*.npz") if p.stem != "initializers")

# float16 weights without multi_precision warn (as MXNet does); several cases do that on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.*multi_precision:UserWarning")


@functools.cache
def _archive(stem):
    with np.load(GOLDEN / f"{stem}.npz") as z:
        return {key: z[key] for key in z.files}


def _case_params():
    params = []
    for stem in STEMS:
        names = sorted(k[: -len("/meta")] for k in _archive(stem) if k.endswith("/meta"))
        params.extend(pytest.param(stem, name, id=f"{stem}:{name}") for name in names)
    return params


def modules():
    """mxopt's modules, looked up lazily so a missing piece fails the tests, not collection."""

    class Modules:
        optimizer = importlib.import_module("mxopt.optimizer")
        lr_scheduler = importlib.import_module("mxopt.lr_scheduler")
        sparse = importlib.import_module("mxopt.sparse")

    return Modules


@pytest.fixture(scope="module")
def mx():
    return modules()


# ---------------------------------------------------------------------------------------------
# comparison helpers
# ---------------------------------------------------------------------------------------------


def _ordered(a):
    """Map float bit patterns to integers that are ordered like the floats (for ulp counts)."""
    bits = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
    i = a.view(bits).astype(np.int64)
    magnitude = i & np.int64((1 << (8 * a.dtype.itemsize - 1)) - 1)
    return np.where(i < 0, -magnitude, magnitude)


def _assert_same(got, expected, where):
    """Exact equality (-0.0 == 0.0, NaN == NaN) with a report of the first difference."""
    assert isinstance(got, np.ndarray), f"{where}: expected ndarray, got {type(got).__name__}"
    assert got.dtype == expected.dtype, f"{where}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{where}: shape {got.shape} != {expected.shape}"
    if np.array_equal(got, expected, equal_nan=True):
        return
    differ = ~((got == expected) | (np.isnan(got) & np.isnan(expected)))
    first = tuple(int(i) for i in np.argwhere(differ)[0])
    ulps = np.abs(_ordered(got) - _ordered(expected))[differ]
    detail = (
        f"{where}: {int(differ.sum())} of {got.size} elements differ; first at {first}: "
        f"got {float(got[first])!r}, expected {float(expected[first])!r} "
        f"({int(ulps[0])} ulp); max {int(ulps.max())} ulp"
    )
    np.testing.assert_array_equal(got, expected, err_msg=detail)


def _assert_state(got, struct, arrays, prefix, where):
    """Compare an mxopt state with the recorded structure (see README: final states)."""
    if struct is None:
        assert got is None, f"{where}: expected None, got {type(got).__name__}"
    elif isinstance(struct, str):
        _assert_same(got, arrays[prefix], where)
    else:
        ((kind, items),) = struct.items()
        want = tuple if kind == "tuple" else list
        assert type(got) is want, f"{where}: expected a {kind}, got {type(got).__name__}"
        assert len(got) == len(items), f"{where}: length {len(got)} != {len(items)}"
        for j, (g, s) in enumerate(zip(got, items)):
            _assert_state(g, s, arrays, f"{prefix}/{j}", f"{where}[{j}]")


# ---------------------------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------------------------


def _make_optimizer(mx, meta, monkeypatch):
    monkeypatch.delenv(AGG_ENV, raising=False)
    for key, value in meta["env"].items():
        monkeypatch.setenv(key, value)
    kwargs = dict(meta["kwargs"])
    if meta["param_idx2name"] is not None:
        kwargs["param_idx2name"] = {k: v for k, v in meta["param_idx2name"]}
    if meta["scheduler"] is not None:
        cls = getattr(mx.lr_scheduler, meta["scheduler"]["class"])
        kwargs["lr_scheduler"] = cls(**meta["scheduler"]["kwargs"])
    opt = mx.optimizer.create(meta["optimizer"], **kwargs)
    if meta.get("noise") is False:  # SGLD recorded with its normal draw replaced by zeros
        opt.add_noise = False
    if meta["lr_mult"] is not None:
        opt.set_lr_mult({k: v for k, v in meta["lr_mult"]})
    if meta["wd_mult"] is not None:
        opt.set_wd_mult({k: v for k, v in meta["wd_mult"]})
    return opt


def _grads(mx, arrays, i, call):
    """The call's gradients as mxopt objects, plus copies to check they are not modified."""
    grads, originals = [], []
    for j, spec in enumerate(call["grads"]):
        if spec["stype"] == "default":
            g = arrays[f"call{i}/g{j}"].copy()
            grads.append(g)
            originals.append((g, g.copy()))
        else:
            data = arrays[f"call{i}/g{j}/data"].copy()
            indices = arrays[f"call{i}/g{j}/indices"].copy()
            g = mx.sparse.row_sparse_array((data, indices), shape=tuple(spec["shape"]))
            assert g.stype == "row_sparse"
            grads.append(g)
            originals.append((data, data.copy()))
    return grads, originals


@pytest.mark.parametrize(("stem", "name"), _case_params())
def test_golden(mx, monkeypatch, stem, name):
    everything = _archive(stem)
    arrays = {k[len(name) + 1 :]: v for k, v in everything.items() if k.startswith(name + "/")}
    replay(mx, monkeypatch, arrays, f"{stem}:{name}")


def replay(mx, monkeypatch, arrays, label):
    """Run one recorded case (its arrays, keys without the ``<case>/`` prefix) through mxopt
    and assert every weight after every call and the final states; ``label`` names it in
    failures.  Also used by ``tests/fuzz/vs_mxnet.py``."""
    meta = json.loads(str(arrays["meta"]))
    opt = _make_optimizer(mx, meta, monkeypatch)
    updater = mx.optimizer.get_updater(opt)
    weights = [arrays[f"w0/{k}"].copy() for k in range(len(meta["weights"]))]
    direct_states = {}
    previous = [w.copy() for w in weights]

    for i, call in enumerate(meta["calls"]):
        where = f"{label} call {i} ({call['kind']}"
        if call["kind"] == "save_load":
            blob = updater.get_states(dump_optimizer=call["dump_optimizer"])
            fresh = mx.optimizer.get_updater(_make_optimizer(mx, meta, monkeypatch))
            fresh.set_states(blob)
            updater, opt = fresh, fresh.optimizer
            continue
        index, ks = call["index"], call["weights"]
        where += f", index {index})"
        grads, originals = _grads(mx, arrays, i, call)
        ws = [weights[k] for k in ks]
        if call["kind"] == "updater":
            if isinstance(index, list):
                updater(list(index), grads, ws)
            else:
                updater(index, grads[0], ws[0])
        else:
            for idx, k in zip(index if isinstance(index, list) else [index], ks):
                if k not in direct_states:
                    direct_states[k] = getattr(opt, meta["state_init"])(idx, weights[k])
            states = [direct_states[k] for k in ks]
            update = getattr(opt, call["kind"])
            if isinstance(index, list):
                update(list(index), ws, grads, states)
            else:
                update(index, ws[0], grads[0], states[0])

        for g, before in originals:
            _assert_same(g, before, f"{where}: gradient modified")
        for k, w in enumerate(weights):
            key = f"call{i}/w{k}"
            expected = arrays[key] if key in arrays else previous[k]
            _assert_same(w, expected, f"{where}: weight {k}")
        previous = [w.copy() for w in weights]

    if meta["mode"] == "updater":
        states = updater.states
        assert sorted(map(repr, states)) == sorted(repr(s["key"]) for s in meta["states"])
    else:
        states = direct_states
    for s, entry in enumerate(meta["states"]):
        _assert_state(
            states[entry["key"]],
            entry["state"],
            arrays,
            f"state/{s}",
            f"{label} final state of {entry['key']!r}",
        )
