"""MXNet 1.6 optimizer-state blobs (``Updater.get_states``, ``Trainer.save_states``,
``Module.save_optimizer_states``) load into mxopt without MXNet, continue training with
MXNet's numbers, and mxopt writes blobs MXNet 1.6 loads back.

The golden blobs and numbers come from ``tests/golden/mxnet_states/generate.py``, run
with MXNet 1.6; the round trip to MXNet runs when the oracle interpreter is available
(``MXOPT_ORACLE_PYTHON``, default ``/tmp/mx16/bin/python``)."""

import json
import os
import pickle
import pickletools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mxopt
from mxopt.lr_scheduler import FactorScheduler
from mxopt.optimizer import Optimizer, Updater
from mxopt.optimizer._mxnet_compat import ndarray_from_raw, ndarray_to_raw

GOLDEN = Path(__file__).resolve().parent / "golden" / "mxnet_states"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())
ORACLE = Path(os.environ.get("MXOPT_ORACLE_PYTHON", "/tmp/mx16/bin/python"))
SHAPES = [(3, 4), (5,)]


def grad(step, i):
    n = int(np.prod(SHAPES[i]))
    return ((np.arange(n) * 7 + step * 3 + i) % 11 - 5).reshape(SHAPES[i]).astype(
        np.float32
    ) / np.float32(10)


def make_optimizer(case):
    kwargs = dict(case["kwargs"])
    if case["scheduler"] is not None:
        kwargs["lr_scheduler"] = FactorScheduler(**case["scheduler"])
    return mxopt.optimizer.create(case["optimizer"], **kwargs)


def run(updater, weights, steps):
    weights = [np.array(w, dtype=np.float32) for w in weights]
    for step in steps:
        for i, w in enumerate(weights):
            updater(i, grad(step, i), w)
    return weights


@pytest.fixture(autouse=True)
def _no_mxnet(monkeypatch):
    # Nothing here may import MXNet, even where it happens to be installed.
    monkeypatch.setitem(sys.modules, "mxnet", None)


@pytest.mark.parametrize("safe", [False, True], ids=["pickle", "safe"])
@pytest.mark.parametrize("blob_name", sorted(EXPECTED))
def test_mxnet_blob_loads_and_continues_with_mxnets_numbers(blob_name, safe):
    case = EXPECTED[blob_name]
    updater = Updater(make_optimizer(case))
    before = updater.optimizer
    updater.set_states((GOLDEN / f"{blob_name}.bin").read_bytes(), safe=safe)
    if case["dump_optimizer"]:
        assert updater.optimizer is not before
        assert type(updater.optimizer) is type(before)
        assert updater.optimizer.num_update == 3
    else:
        assert updater.optimizer is before
    for state in updater.states.values():
        for array in state if isinstance(state, tuple) else [state]:
            assert type(array) is np.ndarray and array.dtype == np.float32
            assert array.flags.writeable and array.flags.c_contiguous
    after = run(updater, case["weights_after_3"], [4, 5])
    for got, want in zip(after, case["weights_after_5"]):
        np.testing.assert_array_equal(got, np.array(want, dtype=np.float32))


def test_blob_structure_is_what_mxnet_writes():
    ops = {
        op.name for op, _, _ in pickletools.genops((GOLDEN / "sgd_momentum_dump.bin").read_bytes())
    }
    assert {"STACK_GLOBAL", "REDUCE", "BUILD", "NEWOBJ"} <= ops
    blob = (GOLDEN / "adam_factor_dump.bin").read_bytes()
    assert b"mxnet.ndarray.ndarray" in blob and b"mxnet.lr_scheduler" in blob


def test_loaded_optimizer_and_scheduler_are_mxopt_classes():
    updater = Updater(mxopt.optimizer.SGD())
    updater.set_states((GOLDEN / "adam_factor_dump.bin").read_bytes(), safe=True)
    opt = updater.optimizer
    assert type(opt) is mxopt.optimizer.Adam
    assert type(opt.lr_scheduler) is FactorScheduler
    assert opt.param_dict == {}
    assert opt.lr_scheduler.count >= 2  # the schedule carried on


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool"]
)
def test_raw_ndarray_format_round_trips(dtype):
    array = (np.arange(6).reshape(2, 3) % 2).astype(dtype)
    shape, got_dtype, data = ndarray_from_raw(ndarray_to_raw(array))
    assert shape == (2, 3) and got_dtype == array.dtype
    assert data == array.tobytes()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda raw: raw[:-1], "needs"),
        (lambda raw: raw + b"\0\0\0\0", "needs"),
        (lambda raw: b"\0\0\0\0" + raw[4:], "magic"),
        (lambda raw: raw[:4] + b"\1\0\0\0" + raw[8:], "dense"),
        (lambda raw: raw[:36] + b"\x09\0\0\0" + raw[40:], "dtype flag"),
    ],
    ids=["short", "long", "magic", "sparse", "dtype"],
)
@pytest.mark.parametrize("safe", [False, True], ids=["pickle", "safe"])
def test_bad_ndarray_bytes_are_refused(mutate, message, safe):
    blob = (GOLDEN / "sgd_momentum.bin").read_bytes()
    raw = bytes(ndarray_to_raw(np.zeros((3, 4), np.float32)))
    # The SGD blob holds the momentum of the (3, 4) weight as raw bytes: swap them.
    start = blob.index(raw[:12])
    end = start + len(raw)
    bad_raw = mutate(blob[start:end])
    # Rewrite the SHORT_BINBYTES length byte that precedes the raw bytes.
    assert blob[start - 2 : start - 1] == b"C" and blob[start - 1] == len(raw)
    bad = blob[: start - 1] + bytes([len(bad_raw)]) + bad_raw + blob[end:]
    bad = _fix_frame(bad, len(bad_raw) - len(raw))
    updater = Updater(mxopt.optimizer.SGD(momentum=0.9))
    with pytest.raises(pickle.UnpicklingError, match=message):
        updater.set_states(bad, safe=safe)
    assert updater.states == {}


def _fix_frame(blob, delta):
    # Protocol 4: one FRAME opcode right after PROTO, holding an 8-byte length.
    assert blob[2:3] == b"\x95"
    length = int.from_bytes(blob[3:11], "little") + delta
    return blob[:3] + length.to_bytes(8, "little") + blob[11:]


def test_safe_loader_refuses_unmapped_mxnet_globals():
    blob = (GOLDEN / "sgd_momentum_dump.bin").read_bytes()
    bad = blob.replace(b"\x8c\x03SGD", b"\x8c\x03XYZ")
    for safe in (False, True):
        with pytest.raises(pickle.UnpicklingError, match="XYZ"):
            Updater(mxopt.optimizer.SGD()).set_states(bad, safe=safe)


def _continue_in_mxopt(blob_name, dump):
    """Load MXNet's blob, train steps 4-5, save mxopt's MXNet-compatible blob."""
    case = EXPECTED[blob_name]
    updater = Updater(make_optimizer(case))
    updater.set_states((GOLDEN / f"{blob_name}.bin").read_bytes(), safe=True)
    weights = run(updater, case["weights_after_3"], [4, 5])
    blob = updater.get_states(dump_optimizer=dump, mxnet_compatible=True)
    return updater, weights, blob


@pytest.mark.parametrize("blob_name", sorted(EXPECTED))
@pytest.mark.parametrize("dump", [False, True], ids=["states", "dump"])
@pytest.mark.parametrize("safe", [False, True], ids=["pickle", "safe"])
def test_mxnet_compatible_blob_reloads_in_mxopt(blob_name, dump, safe):
    updater, weights, blob = _continue_in_mxopt(blob_name, dump)
    assert b"numpy._core" not in blob and b"mxopt" not in blob
    case = EXPECTED[blob_name]
    # The reference: the same states (and optimizer) through mxopt's own format.
    reference = Updater(make_optimizer(case))
    reference.set_states(updater.get_states(dump_optimizer=dump))
    again = Updater(make_optimizer(case))
    again.set_states(blob, safe=safe)
    if dump:
        assert type(again.optimizer) is type(updater.optimizer)
        assert again.optimizer.num_update == updater.optimizer.num_update
        assert again.optimizer.aggregate_num == updater.optimizer.aggregate_num
    want = run(reference, weights, [6, 7])
    got = run(again, weights, [6, 7])
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.skipif(not ORACLE.exists(), reason="the MXNet 1.6 oracle is not installed")
def test_mxnet_loads_mxopt_blobs_and_continues_with_mxopts_numbers(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "mxnet")
    want = {}
    for blob_name in sorted(EXPECTED):
        for dump in (False, True):
            updater, weights, blob = _continue_in_mxopt(blob_name, dump)
            stem = f"{blob_name}-{'dump' if dump else 'states'}"
            (tmp_path / f"{stem}.bin").write_bytes(blob)
            case = blob_name[: -len("_dump")] if blob_name.endswith("_dump") else blob_name
            (tmp_path / f"{stem}.json").write_text(
                json.dumps(
                    {
                        "case": case,
                        "weights": [w.tolist() for w in weights],
                        "steps": [6, 7],
                    }
                )
            )
            if not dump:
                # MXNet gets a fresh optimizer: continue mxopt from a fresh one too.
                fresh = Updater(make_optimizer(EXPECTED[blob_name]))
                fresh.set_states(blob)
                updater = fresh
            want[stem] = run(updater, weights, [6, 7])
    run_oracle = subprocess.run(
        [str(ORACLE), str(GOLDEN / "generate.py"), "--check-roundtrip", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run_oracle.returncode == 0, run_oracle.stderr[-3000:]
    got = json.loads(run_oracle.stdout.strip().splitlines()[-1])
    assert set(got) == set(want)
    for stem, weights in want.items():
        for g, w in zip(got[stem], weights):
            np.testing.assert_array_equal(np.array(g, dtype=np.float32), w, err_msg=stem)


def test_every_registered_optimizer_maps_to_an_mxnet_class():
    from mxopt.optimizer._mxnet_compat import mxnet_classes, mxnet_name

    for klass in set(Optimizer.opt_registry.values()):
        module, name = mxnet_name(klass)
        assert mxnet_classes()[f"{module}.{name}"] is klass


def test_safe_loader_refuses_an_ndarray_never_restored():
    blob = b"\x80\x02}q\x00K\x00cmxnet.ndarray.ndarray\nNDArray\nN\x85Rs."
    with pytest.raises(pickle.UnpicklingError, match="never restored"):
        Updater(mxopt.optimizer.SGD()).set_states(blob, safe=True)


@pytest.mark.parametrize("safe", [False, True], ids=["pickle", "safe"])
def test_an_ndarray_without_data_is_refused(safe):
    blob = (
        b"\x80\x02}q\x00K\x00cmxnet.ndarray.ndarray\nNDArray\nN\x85R}X\x06\x00\x00\x00handleNsbs."
    )
    with pytest.raises(pickle.UnpicklingError, match="no data"):
        Updater(mxopt.optimizer.SGD()).set_states(blob, safe=safe)


def test_safe_loader_refuses_ndarray_with_a_handle_argument():
    blob = b"\x80\x02}q\x00K\x00cmxnet.ndarray.ndarray\nNDArray\nK\x01\x85Rs."
    with pytest.raises(pickle.UnpicklingError, match=r"NDArray\(None\)"):
        Updater(mxopt.optimizer.SGD()).set_states(blob, safe=True)
