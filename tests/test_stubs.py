"""The hand-written ``mxopt/_core.pyi`` matches the compiled module (mypy's stubtest)."""

import subprocess
import sys

import pytest

from mxopt import _core

#: Stubbed names that a module built without the ``wgpu`` feature lacks.
GPU_NAMES = (
    "GpuArray",
    "GpuDevice",
    "gpu_group_adagrad",
    "gpu_lamb",
    "gpu_lars",
    "gpu_lbsgd",
    "gpu_step",
    "gpu_step_noisy",
    "gpu_test",
)


def test_core_stub_matches_the_native_module(tmp_path):
    pytest.importorskip("mypy.stubtest")
    allowlist = []
    if not _core.HAS_WGPU:
        path = tmp_path / "allowlist.txt"
        # ``__all__`` too: the stub's lists the GPU names.
        names = (*GPU_NAMES, "__all__")
        path.write_text("".join(f"mxopt._core.{name}\n" for name in names))
        allowlist = ["--allowlist", str(path)]
    run = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "mxopt._core", *allowlist],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_gpu_names_follow_the_build_flag():
    assert all(hasattr(_core, name) == _core.HAS_WGPU for name in GPU_NAMES)
