"""Log lines, printed notices and warnings use MXNet 1.6's words, through the same calls
(``logging.info`` on the root logger, ``print``, ``warnings.warn``), so that greps written
for MXNet logs keep working. The expected lines were checked against MXNet 1.6; with the
oracle installed (``MXOPT_ORACLE_PYTHON``, default ``/tmp/mx16/bin/python``) the same
script also runs under MXNet and the outputs must be identical."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ORACLE = Path(os.environ.get("MXOPT_ORACLE_PYTHON", "/tmp/mx16/bin/python"))

SCRIPT = textwrap.dedent(
    """
    import logging, sys, warnings
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s",
                        stream=sys.stdout)
    import numpy as np
    try:
        import mxnet as mx
        L, I, O = mx.lr_scheduler, mx.init, mx.optimizer
        arr = lambda dtype="float32": mx.nd.zeros((2,), dtype=dtype)
        params = {"w": mx.nd.ones((2,))}
    except ImportError:
        import mxopt.lr_scheduler as L, mxopt.initializer as I, mxopt.optimizer as O
        arr = lambda dtype="float32": np.zeros(2, dtype)
        params = {"w": np.ones(2, np.float32)}
    s = L.FactorScheduler(step=2, factor=0.1, stop_factor_lr=1e-3, base_lr=1.0)
    for n in range(1, 12):
        s(n)
    m = L.MultiFactorScheduler(step=[2, 4], factor=0.5, base_lr=1.0)
    for n in range(1, 7):
        m(n)
    load = I.Load(params, default_init=I.Zero(), verbose=True)
    load("w", arr())
    load("fc_bias", arr())
    O.SGD(learning_rate=0.5, lr_scheduler=L.FactorScheduler(step=2, base_lr=0.1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("sgd", "nag", "lars", "lbsgd", "adam"):
            opt = O.create(name, momentum=0.9) if name != "adam" else O.create(name)
            opt.create_state_multi_precision(0, arr("float16"))
    for w in caught:
        if "float16" in str(w.message):
            print("WARN", w.category.__name__, w.message)
    """
)

EXPECTED = """\
INFO:root:Update[3]: Change learning rate to 1.00000e-01
INFO:root:Update[5]: Change learning rate to 1.00000e-02
INFO:root:Update[7]: Change learning rate to 1.00000e-03
INFO:root:Update[9]: now learning rate arrived at 1.00000e-03, will not change in the future
INFO:root:Update[11]: now learning rate arrived at 1.00000e-03, will not change in the future
INFO:root:Update[3]: Change learning rate to 5.00000e-01
INFO:root:Update[5]: Change learning rate to 2.50000e-01
INFO:root:Initialized w by loading
INFO:root:Initialized fc_bias by default
learning rate from ``lr_scheduler`` has been overwritten by ``learning_rate`` in optimizer.
"""
ADVICE = (
    "WARN UserWarning Accumulating with float16 in optimizer can lead to poor accuracy or "
    "slow convergence. Consider using multi_precision=True option of the {}\n"
)


def _run(python, tmp_path, hide_mxnet):
    script = tmp_path / "logs.py"
    body = ("import sys; sys.modules['mxnet'] = None\n" if hide_mxnet else "") + SCRIPT
    script.write_text(body)
    run = subprocess.run(
        [str(python), str(script)], capture_output=True, text=True, check=False, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def _lines(out):
    # LBSGD also logs its configuration: MXNet and mxopt alike; not compared here.
    return [
        line
        for line in out.splitlines(True)
        if "Large-Batch" not in line and "Batch_scale" not in line
    ]


def test_messages_use_mxnets_words(tmp_path):
    out = "".join(_lines(_run(sys.executable, tmp_path, hide_mxnet=True)))
    advice = "".join(
        ADVICE.format(which)
        # LBSGD: the base class's warning, then its create_state's, as in MXNet.
        for which in (
            "SGD optimizer",
            "NAG optimizer",
            "SGD optimizer",
            "optimizer",
            "SGD optimizer",
            "optimizer",
        )
    )
    assert out == EXPECTED + advice


@pytest.mark.skipif(not ORACLE.exists(), reason="the MXNet 1.6 oracle is not installed")
def test_messages_match_the_oracle(tmp_path):
    mine = _run(sys.executable, tmp_path, hide_mxnet=True)
    theirs = _run(ORACLE, tmp_path, hide_mxnet=False)
    assert _lines(mine) == _lines(theirs)
