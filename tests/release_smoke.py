"""Smoke test of an installed mxopt (a release wheel in a clean venv): every registered
optimizer takes one step through an Updater whose states round-trip, float16 weights train
through a float32 master copy, an initializer fills, a scheduler decays, and the package
prints where it was imported from.

Usage: ``python release_smoke.py EXPECTED_VERSION``; prints one ``smoke ok`` line or fails
with the first broken check.
"""

import os
import pickle
import sys
import warnings

import numpy as np

import mxopt
from mxopt import initializer, lr_scheduler, optimizer


def one_step_each() -> None:
    """One Updater step per registered optimizer; its states survive get/set_states."""
    for name in sorted(optimizer.Optimizer.opt_registry):
        weight = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3)
        before = weight.copy()
        grad = np.full_like(weight, 0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LBSGD and friends announce their settings
            updater = optimizer.get_updater(optimizer.create(name, learning_rate=0.1))
            updater(0, grad, weight)
        assert np.isfinite(weight).all(), name
        assert not np.array_equal(weight, before), f"{name}: the weight did not change"

        blob = updater.get_states(dump_optimizer=True)
        for safe in (False, True):
            restored = optimizer.get_updater(optimizer.create(name))
            restored.set_states(blob, safe=safe)
            assert type(restored.optimizer) is type(updater.optimizer), name
            assert pickle.dumps(restored.states) == pickle.dumps(updater.states), name


def multi_precision_step() -> None:
    """float16 weights through a float32 master copy, in one native pass."""
    weight = np.ones(1000, dtype=np.float16)
    opt = optimizer.Adam(learning_rate=0.01, multi_precision=True)
    state = opt.create_state_multi_precision(0, weight)
    opt.update_multi_precision(0, weight, np.ones_like(weight), state)
    assert weight.dtype == np.float16
    assert np.all(weight < 1.0)


def initializer_and_scheduler() -> None:
    """Xavier fills a weight within its bound; FactorScheduler halves every 2 updates."""
    weight = np.zeros((64, 32), dtype=np.float32)
    mxopt.random.seed(0)
    initializer.Xavier()(initializer.InitDesc("fc_weight"), weight)
    bound = np.sqrt(3.0 / ((64 + 32) / 2.0))
    assert 0 < np.abs(weight).max() <= bound
    schedule = lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    assert [schedule(n) for n in (1, 3, 5)] == [1.0, 0.5, 0.25]


def main(expected_version: str) -> None:
    assert mxopt.__version__ == expected_version, (mxopt.__version__, expected_version)
    one_step_each()
    multi_precision_step()
    initializer_and_scheduler()
    where = os.path.dirname(os.path.dirname(os.path.abspath(mxopt.__file__)))
    print(f"smoke ok: mxopt {mxopt.__version__} from {where}")
    print(f"numpy {np.__version__}, python {sys.version}")


if __name__ == "__main__":
    main(sys.argv[1])
