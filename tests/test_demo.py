"""The demo (``python -m mxopt.demo``) trains: loss falls and accuracy rises, quickly."""

import re
import time

import pytest

from mxopt.demo import main

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
