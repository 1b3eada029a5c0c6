"""The demo (``python -m mxopt.demo``) trains: loss falls and accuracy rises, quickly."""

import re
import time

import pytest

from mxopt.demo import main
from mxopt.optimizer import Optimizer

LINE = re.compile(r"^epoch\s+(\d+)\s+loss ([\d.]+)\s+accuracy ([\d.]+)\s+lr ([\d.]+)")


def run_demo(capsys, *flags):
    start = time.perf_counter()
    assert main(["--epochs", "3", *flags]) == 0
    elapsed = time.perf_counter() - start
    rows = [LINE.match(line) for line in capsys.readouterr().out.splitlines()]
    rows = [(int(m[1]), float(m[2]), float(m[3]), float(m[4])) for m in rows if m]
    return rows, elapsed


@pytest.mark.parametrize(
    "flags", [(), ("--optimizer", "nag", "--momentum", "0.9"), ("--batch-size", "100")]
)
def test_demo_learns(capsys, flags):
    rows, elapsed = run_demo(capsys, *flags)
    assert [row[0] for row in rows] == [0, 1, 2, 3]
    losses = [row[1] for row in rows]
    accuracies = [row[2] for row in rows]
    assert losses == sorted(losses, reverse=True)
    assert losses[-1] < losses[0] / 3
    assert accuracies[0] < 0.3
    assert accuracies[-1] > 0.8
    assert elapsed < 30


def test_demo_prints_scheduled_learning_rate(capsys):
    # 4096 samples / batch 128 = 32 updates per epoch: the first decay (x0.9) happens in epoch 4.
    rows, _ = run_demo(capsys, "--epochs", "4")
    assert [row[3] for row in rows] == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.09])


def test_demo_rejects_bad_batch_size(capsys):
    with pytest.raises(SystemExit):
        main(["--batch-size", "0"])


@pytest.mark.parametrize("name", sorted(Optimizer.opt_registry))
def test_every_registered_optimizer_trains_the_demo(capsys, name):
    rows, _ = run_demo(capsys, "--optimizer", name, "--quiet")
    losses = [row[1] for row in rows]
    assert len(losses) == 4
    assert losses == sorted(losses, reverse=True), (name, losses)
    assert losses[-1] < losses[0] / 2, (name, losses)


def test_unknown_optimizer_is_a_usage_error_listing_the_registered_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--optimizer", "adamw"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown optimizer 'adamw'" in err
    assert "sgd" in err and "rmsprop" in err and "groupadagrad" in err
    assert "Traceback" not in err


def test_optimizer_name_is_case_insensitive(capsys):
    assert main(["--optimizer", "Adam", "--epochs", "1", "--quiet"]) == 0
    assert "epoch   1" in capsys.readouterr().out


def test_every_flag_has_help():
    from mxopt.demo import build_parser

    for action in build_parser()._actions:
        assert action.help, action.option_strings


def test_plot_without_matplotlib_is_a_clear_usage_error(capsys, monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "matplotlib" else real(n, *a)
    )
    with pytest.raises(SystemExit) as exc:
        main(["--plot", str(tmp_path / "curves.png")])
    assert exc.value.code == 2
    assert "pip install 'mxopt[plot]'" in capsys.readouterr().err


def test_plot_draws_the_curves(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    run_demo(capsys, "--epochs", "2", "--plot", str(out))
    assert out.stat().st_size > 1000


def test_long_epochs_report_progress(capsys, monkeypatch):
    from mxopt import demo

    monkeypatch.setattr(demo, "PROGRESS_EVERY", 0.0)
    assert main(["--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "epoch 1: batch 1/32" in err
    assert main(["--epochs", "1", "--quiet"]) == 0
    assert "batch" not in capsys.readouterr().err
