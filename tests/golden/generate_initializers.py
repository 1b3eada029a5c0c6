"""Write the initializer golden files from MXNet 1.6.0.

Run with the MXNet 1.6.0 oracle interpreter, from anywhere::

    /tmp/mx16/bin/python tests/golden/generate_initializers.py

Writes ``initializers.npz`` (arrays of the deterministic cases in ``initializer_cases.py``),
``initializers.json`` (error class names, ``dumps()`` strings, ``create`` results) and
``mx_saved.params`` (an ``mx.nd.save`` file for ``Load``), next to this script.
"""

import json
import os
import sys
import warnings

import mxnet as mx
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import initializer_cases as cases  # noqa: E402


class MxArrays:
    @staticmethod
    def full(shape, value, dtype):
        return mx.nd.full(shape, value, dtype=dtype)

    @staticmethod
    def np(arr):
        return arr.asnumpy()

    @staticmethod
    def from_np(a):
        return mx.nd.array(a, dtype=a.dtype)


def main():
    warnings.simplefilter("ignore")
    ini = mx.init
    arrays, meta = {}, {"cases": {}, "dumps": {}, "create": {}, "errors": {}}
    for name, fn in cases.CASES.items():
        try:
            result = fn(ini, MxArrays)
        except Exception as e:
            meta["cases"][name] = {"error": type(e).__name__}
            continue
        entry = {}
        for key, val in result.items():
            if isinstance(val, str):
                entry[key] = {"error": val}
            else:
                arrays[f"{name}/{key}"] = val
                entry[key] = {"dtype": str(val.dtype)}
        meta["cases"][name] = entry
    for name, fn in cases.DUMPS.items():
        meta["dumps"][name] = fn(ini).dumps()
    for name, fn in cases.CREATE.items():
        try:
            made = fn(ini)
            meta["create"][name] = {"type": type(made).__name__, "dumps": made.dumps()}
        except Exception as e:
            meta["create"][name] = {"error": type(e).__name__}
    for name, fn in cases.ERRORS.items():
        try:
            fn(ini, MxArrays)
            meta["errors"][name] = None
        except Exception as e:
            meta["errors"][name] = type(e).__name__
    meta["registry"] = sorted(mx.registry._REGISTRY[mx.init.Initializer])

    saved = {
        "arg:fc1_weight": mx.nd.array(np.arange(12).reshape(3, 4) / 7.0, dtype="float32"),
        "arg:fc1_bias": mx.nd.array([0.5, -1.0, 2.0], dtype="float64"),
        "aux:bn_moving_var": mx.nd.array([1.0, 2.0], dtype="float16"),
        "plain_int": mx.nd.array([[1, 2], [3, 4]], dtype="int32"),
    }
    mx.nd.save(os.path.join(HERE, "mx_saved.params"), saved)
    for key, val in saved.items():
        arrays[f"mx_saved/{key}"] = val.asnumpy()

    np.savez_compressed(os.path.join(HERE, "initializers.npz"), **arrays)
    with open(os.path.join(HERE, "initializers.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"{len(arrays)} arrays, mxnet {mx.__version__}")


if __name__ == "__main__":
    main()
