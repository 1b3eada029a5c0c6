"""Static typing: ``mypy --strict`` on the package, typed constructor keywords, and the
``TypeError`` a non-array weight raises in every registered optimizer and the Updater."""

import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import mxopt
from mxopt.optimizer import Optimizer

PACKAGE = Path(mxopt.__file__).resolve().parent


def _mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("mypy")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def _ndarray_has_default_type_arguments() -> bool:
    """Whether NumPy's stubs give ``ndarray``'s shape parameter a default (2.3 and later;
    2.2.6 has none): without it ``--strict`` flags every bare ``np.ndarray`` (``type-arg``)."""
    stubs = Path(np.__file__).with_name("__init__.pyi")
    found = re.search(r"^_ShapeT_co = TypeVar\((.*)\)$", stubs.read_text(), re.MULTILINE)
    return bool(found and "default=" in found[1])


NUMPY_STUBS_WITH_DEFAULTS = _ndarray_has_default_type_arguments()


@pytest.mark.skipif(not NUMPY_STUBS_WITH_DEFAULTS, reason="needs NumPy >= 2.3's stubs")
def test_package_is_mypy_strict_clean(tmp_path):
    # By package name: the mxopt this interpreter imports (a source checkout or a wheel).
    run = _mypy("--cache-dir", str(tmp_path / "cache"), "-p", "mxopt", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    checked = re.search(r"no issues found in (\d+) source files", run.stdout)
    assert checked and int(checked[1]) >= len(list(PACKAGE.rglob("*.py"))), run.stdout


def test_misspelled_constructor_keyword_is_a_type_error(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent(
            """
            from mxopt.lr_scheduler import FactorScheduler
            from mxopt.optimizer import SGD, Adam, LBSGD

            ok = SGD(learning_rate=0.1, momentum=0.9, wd=1e-4, param_idx2name={0: "fc_weight"})
            ok2 = Adam(learning_rate=0.1, clip_gradient=None, multi_precision=True)
            ok3 = LBSGD(multi_precision=True, learning_rate=0.1)
            ok4 = SGD(lr_scheduler=FactorScheduler(step=10), rescale_grad=0.5)
            bad = SGD(learning_rte=0.1)
            bad2 = Adam(momentum=0.9)
            bad3 = SGD(wd="0.1")
            """
        )
    )
    run = _mypy("--cache-dir", str(tmp_path / "cache"), str(script), cwd=tmp_path)
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert any(':9: error: Unexpected keyword argument "learning_rte"' in e for e in errors), out
    assert any(':10: error: Unexpected keyword argument "momentum"' in e for e in errors), out
    assert any(":11: error:" in e and "wd" in e for e in errors), out
    assert len(errors) == 3, out


def _new(name, multi_precision):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Optimizer.opt_registry[name](multi_precision=multi_precision)


@pytest.mark.parametrize("name", sorted(Optimizer.opt_registry))
@pytest.mark.parametrize("bad", [[1.0, 2.0], 1.5], ids=["list", "float"])
@pytest.mark.parametrize("multi_precision", [False, True])
def test_a_non_array_weight_is_a_type_error_naming_it(name, bad, multi_precision):
    weight = np.ones((2, 3), np.float32)
    grad = np.ones((2, 3), np.float32)
    opt = _new(name, multi_precision)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = opt.create_state_multi_precision(0, weight)
        for method in (opt.update, opt.update_multi_precision):
            with pytest.raises(TypeError, match=r"^weights?\b.*numpy\.ndarray"):
                method(0, bad, grad, state)
        with pytest.raises(TypeError, match=r"^weights?\b.*numpy\.ndarray"):
            opt.create_state_multi_precision(1, bad)
        updater = mxopt.optimizer.get_updater(_new(name, multi_precision))
        with pytest.raises(TypeError, match=r"^weight: expected a numpy\.ndarray"):
            updater(0, grad, bad)
        assert not updater.states
        with pytest.raises(TypeError, match=r"^weight\[1\]: expected a numpy\.ndarray"):
            updater([0, 1], [grad, grad], [weight, bad])
