"""Write MXNet 1.6 optimizer-state blobs and the numbers MXNet computes after loading them.

Run with the MXNet 1.6 oracle (mxnet + numpy<1.24)::

    /tmp/mx16/bin/python tests/golden/mxnet_states/generate.py

For each case it trains three steps, writes ``Updater.get_states()`` with and without
``dump_optimizer`` to ``<case>.bin`` / ``<case>_dump.bin``, then, for each blob, loads it
into a fresh updater (a freshly constructed optimizer for the blob without one) and
records the weights after two more steps in ``expected.json``.

``--check-roundtrip DIR`` instead loads the blobs mxopt wrote there (see
``tests/test_mxnet_checkpoints.py``) and prints the weights after two more steps as JSON.
"""

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHAPES = [(3, 4), (5,)]
CASES = {
    "sgd_momentum": ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01}, None),
    "adam_factor": (
        "adam",
        {"learning_rate": 0.01, "wd": 0.001, "rescale_grad": 0.5},
        {"step": 2, "factor": 0.5, "base_lr": 0.01},
    ),
    "rmsprop_centered": (
        "rmsprop",
        {
            "learning_rate": 0.01,
            "centered": True,
            "gamma1": 0.9,
            "gamma2": 0.8,
            "clip_gradient": 0.3,
        },
        None,
    ),
}


def initial_weights():
    return [
        (np.arange(int(np.prod(s))) % 7 - 3).reshape(s).astype(np.float32) / np.float32(4)
        for s in SHAPES
    ]


def grad(step, i):
    n = int(np.prod(SHAPES[i]))
    return ((np.arange(n) * 7 + step * 3 + i) % 11 - 5).reshape(SHAPES[i]).astype(
        np.float32
    ) / np.float32(10)


def make_optimizer(mx, name, kwargs, sched):
    kwargs = dict(kwargs)
    if sched is not None:
        kwargs["lr_scheduler"] = mx.lr_scheduler.FactorScheduler(**sched)
    return mx.optimizer.create(name, **kwargs)


def run(mx, updater, weights, steps):
    nd_w = [mx.nd.array(w, dtype=np.float32) for w in weights]
    for step in steps:
        for i, w in enumerate(nd_w):
            updater(i, mx.nd.array(grad(step, i), dtype=np.float32), w)
    return [w.asnumpy() for w in nd_w]


def generate(mx):
    expected = {}
    for case, (name, kwargs, sched) in CASES.items():
        updater = mx.optimizer.get_updater(make_optimizer(mx, name, kwargs, sched))
        after3 = run(mx, updater, initial_weights(), [1, 2, 3])
        blobs = {case: updater.get_states(False), f"{case}_dump": updater.get_states(True)}
        for blob_name, blob in blobs.items():
            (HERE / f"{blob_name}.bin").write_bytes(blob)
            fresh = mx.optimizer.get_updater(make_optimizer(mx, name, kwargs, sched))
            fresh.set_states(blob)
            after5 = run(mx, fresh, after3, [4, 5])
            expected[blob_name] = {
                "optimizer": name,
                "kwargs": kwargs,
                "scheduler": sched,
                "dump_optimizer": blob_name.endswith("_dump"),
                "weights_after_3": [w.tolist() for w in after3],
                "weights_after_5": [w.tolist() for w in after5],
            }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def check_roundtrip(mx, directory):
    """Load mxopt's blobs (``<case>.bin`` + ``<case>.json`` with weights and case) and
    continue two steps; print the weights."""
    out = {}
    for meta_path in sorted(Path(directory).glob("*.json")):
        meta = json.loads(meta_path.read_text())
        name, kwargs, sched = CASES[meta["case"]]
        fresh = mx.optimizer.get_updater(make_optimizer(mx, name, kwargs, sched))
        fresh.set_states(meta_path.with_suffix(".bin").read_bytes())
        weights = [np.array(w, dtype=np.float32) for w in meta["weights"]]
        out[meta_path.stem] = [w.tolist() for w in run(mx, fresh, weights, meta["steps"])]
    print(json.dumps(out))


if __name__ == "__main__":
    import mxnet

    if len(sys.argv) == 3 and sys.argv[1] == "--check-roundtrip":
        check_roundtrip(mxnet, sys.argv[2])
    else:
        generate(mxnet)
