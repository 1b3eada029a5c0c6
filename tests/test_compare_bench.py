"""benches/compare.py (mxopt beside torch.optim and NumPy) at toy sizes: it checks mxopt
against its NumPy references, times every contender it can, and writes its table and plot."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benches" / "compare.py"


@pytest.fixture(scope="module")
def compare():
    if not SCRIPT.exists():
        pytest.skip("needs a source checkout (benches/compare.py)")
    spec = importlib.util.spec_from_file_location("compare_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name)


def run(compare, monkeypatch, tmp_path, *flags):
    # A small stand-in for the ResNet-50 list keeps the list path quick.
    monkeypatch.setattr(compare, "resnet50_sizes", lambda: [300, 7, 1000])
    table = tmp_path / "table.md"
    flags = ("--size", "5000", "--rounds", "2", "--no-torch", "--markdown", str(table), *flags)
    return compare.main(list(flags)), table.read_text()


def test_every_optimizer_precision_and_layout_is_timed(compare, monkeypatch, tmp_path, capsys):
    results, table = run(compare, monkeypatch, tmp_path)
    labels = [spec.label for spec in compare.SPECS]
    assert {"sgd momentum", "adam", "adagrad", "rmsprop"} <= set(labels)
    assert [(r.spec.label, r.precision, r.layout) for r in results] == [
        (label, precision, layout)
        for label in labels
        for precision in ("fp32", "mp16")
        for layout in ("tensor", "resnet50")
    ]
    for r in results:
        assert r.params == (5000 if r.layout == "tensor" else 1307)
        assert r.bandwidth > 0
        assert "mxopt" in r.seconds and r.gbs("mxopt") > 0
        assert ("numpy" in r.seconds) == (r.spec.numpy is not None)
        assert r.unavailable.get("torch fused") == "torch not loaded (not installed, or --no-torch)"
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0] == "| optimizer | precision | layout | mxopt | numpy |"
    assert len(rows) == 1 + len(results)
    assert "logical CPUs" in table and "a += b" in table


def test_bytes_per_parameter_count_each_array_once(compare):
    adam = next(s for s in compare.SPECS if s.label == "adam")
    assert compare.bytes_per_param(adam, "fp32") == 4 * (3 + 2 * 2)  # w, g, m, v; w, m, v
    # float16 w and g, float32 master read and written, float32 m and v read and written.
    assert compare.bytes_per_param(adam, "mp16") == 2 + 2 + 8 + 16


@pytest.mark.parametrize("rule", ["sgd_momentum", "nesterov", "adam", "adagrad", "rmsprop"])
def test_a_wrong_numpy_reference_is_caught(compare, monkeypatch, tmp_path, rule):
    spec = next(s for s in compare.SPECS if s.numpy == rule)
    original = getattr(compare.NumpyReference, rule)

    def off_by_a_little(self, w, g, *states_and_t):
        original(self, w, g, *states_and_t)
        w *= np.float32(1.001)

    monkeypatch.setattr(compare.NumpyReference, rule, off_by_a_little)
    with pytest.raises(SystemExit, match=f"{spec.label} fp32: mxopt and NumPy differ"):
        run(compare, monkeypatch, tmp_path, "--optimizers", spec.label)


def test_plot_is_drawn(compare, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "speed.png"
    run(compare, monkeypatch, tmp_path, "--optimizers", "adam,nag", "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--optimizers", "adamw"), "--optimizers: unknown ['adamw']"),
        (("--layouts", "vgg"), "--layouts: unknown ['vgg']"),
        (("--size", "0"), "must be positive"),
    ],
)
def test_bad_flags_are_usage_errors(compare, capsys, flags, message):
    with pytest.raises(SystemExit) as exc:
        compare.parse_args(list(flags))
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
