"""The hand-written ``mxopt/_core.pyi`` matches the compiled module (mypy's stubtest)."""

import subprocess
import sys

import pytest


def test_core_stub_matches_the_native_module():
    pytest.importorskip("mypy.stubtest")
    run = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "mxopt._core"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
