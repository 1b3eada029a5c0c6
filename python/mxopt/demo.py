"""Train a softmax classifier with an mxopt optimizer: ``python -m mxopt.demo``.

Every registered optimizer trains it (``--optimizer NAME``), with the per-optimizer
defaults of ``OPTIMIZER_DEFAULTS``; ``--plot FILE`` draws the curves (needs matplotlib:
``pip install 'mxopt[plot]'``).

The recipe of MXNet's optimization guide without MXNet: one fully connected layer (20
features -> 10 classes) on synthetic data (a Gaussian cloud around a random centre per
class, fixed seed), weights from ``Uniform(scale=1.0)``, trained with
``create(name, learning_rate=0.1, lr_scheduler=FactorScheduler(step=100, factor=0.9))``
through ``get_updater``. Gradients are summed over the batch and the optimizer averages them
with ``rescale_grad=1/batch_size``, as MXNet users do. Forward and backward are NumPy.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import initializer, lr_scheduler, optimizer
from . import random as mxrandom

FEATURES, CLASSES, SAMPLES = 20, 10, 4096

#: Constructor keywords per optimizer where the common ones (``learning_rate=0.1``,
#: ``rescale_grad=1/batch_size``) do not make the loss fall steadily.
OPTIMIZER_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "lamb": {"learning_rate": 0.01},
    "lars": {"learning_rate": 0.1, "eta": 0.1},
    "sgld": {"learning_rate": 1e-5},
    "signum": {"learning_rate": 0.01},
}
#: Optimizers that need 2-d weights: the bias is updated as a (classes, 1) view.
TWO_D_ONLY = frozenset({"groupadagrad"})
#: ``rescale_grad`` is ``GRAD_SCALE.get(name, 1) / batch_size``. MXNet's ``Test``
#: optimizer adds ``rescale_grad * grad`` (a negative scale descends); SGLD samples a
#: posterior, whose gradient is the whole data set's (mean gradient x samples).
GRAD_SCALE: Dict[str, float] = {"test": -1.0, "sgld": float(SAMPLES)}
#: Seconds between progress lines (on stderr) within an epoch.
PROGRESS_EVERY = 2.0


def registered_optimizers() -> List[str]:
    """The names ``--optimizer`` accepts."""
    return sorted(optimizer.Optimizer.opt_registry)


def _optimizer_name(value: str) -> str:
    name = value.lower()
    if name not in optimizer.Optimizer.opt_registry:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer {value!r}; registered: {', '.join(registered_optimizers())}"
        )
    return name


def make_data(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Features scattered (unit Gaussian noise) around a random centre per class; labels."""
    y = rng.integers(0, CLASSES, SAMPLES)
    centres = rng.standard_normal((CLASSES, FEATURES))
    x = centres[y] + rng.standard_normal((SAMPLES, FEATURES))
    return x.astype(np.float32), y


def forward_backward(
    weight: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray
) -> Tuple[float, int, np.ndarray, np.ndarray]:
    """Summed cross-entropy loss, correct count, and the summed gradients of weight and bias."""
    logits = x @ weight.T + bias
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = -np.log(prob[rows, y] + 1e-12).sum()
    correct = int((prob.argmax(axis=1) == y).sum())
    prob[rows, y] -= 1.0  # d(loss)/d(logits)
    return float(loss), correct, prob.T @ x, prob.sum(axis=0)


def build_parser() -> argparse.ArgumentParser:
    """The demo's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m mxopt.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--optimizer",
        default="sgd",
        type=_optimizer_name,
        metavar="NAME",
        help="registered optimizer name, case-insensitive (default: sgd); one of: "
        + ", ".join(registered_optimizers()),
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="initial learning rate (default: 0.1, or the optimizer's demo default)",
    )
    parser.add_argument(
        "--momentum",
        type=float,
        default=None,
        help="momentum, passed to the optimizer only when given",
    )
    parser.add_argument(
        "--epochs", type=int, default=10, help="passes over the 4096 samples (default: 10)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the data, initial weights and noise"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help=f"samples per update, 1 to {SAMPLES} (default: 128)",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        default=None,
        help="draw loss, accuracy and learning-rate curves into FILE (.png, .svg, .pdf); "
        "needs matplotlib (pip install 'mxopt[plot]')",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines within long epochs")
    return parser


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= SAMPLES:
        parser.error(f"--batch-size must be between 1 and {SAMPLES}")
    if args.epochs < 0:
        parser.error("--epochs must not be negative")
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error(
            "--plot needs matplotlib, which is not installed: "
            "pip install 'mxopt[plot]' (or pip install matplotlib)"
        )
    return args


def optimizer_kwargs(name: str, batch_size: int, **overrides: Any) -> Dict[str, Any]:
    """The constructor keywords the demo uses for ``name``."""
    kwargs: Dict[str, Any] = {
        "learning_rate": 0.1,
        "rescale_grad": GRAD_SCALE.get(name, 1.0) / batch_size,
    }
    kwargs.update(OPTIMIZER_DEFAULTS.get(name, {}))
    kwargs.update({key: value for key, value in overrides.items() if value is not None})
    return kwargs


def plot(path: str, history: List[Tuple[int, float, float, float]], title: str) -> None:
    """Loss and accuracy (left) and learning rate (right) per epoch, saved to ``path``."""
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")

    epochs = [row[0] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row[1] for row in history], "o-", label="loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss (mean cross-entropy)")
    acc_axis = left.twinx()
    acc_axis.plot(epochs, [row[2] for row in history], "s--", color="tab:green", label="accuracy")
    acc_axis.set_ylabel("accuracy")
    acc_axis.set_ylim(0, 1)
    handles = left.get_lines() + acc_axis.get_lines()
    left.legend(handles, [line.get_label() for line in handles], loc="center right")
    right.plot(epochs, [row[3] for row in history], "o-", color="tab:orange")
    right.set_xlabel("epoch")
    right.set_ylabel("learning rate")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    x, y = make_data(rng)
    # As in MXNet: the initializer dispatches on the name, so `fc_weight` gets
    # Uniform(-1, 1) draws and `fc_bias` zeros.
    mxrandom.seed(args.seed)
    init = initializer.Uniform(scale=1.0)
    weight = np.empty((CLASSES, FEATURES), dtype=np.float32)
    bias = np.empty(CLASSES, dtype=np.float32)
    init(initializer.InitDesc("fc_weight"), weight)
    init(initializer.InitDesc("fc_bias"), bias)
    params = [weight, bias]

    kwargs = optimizer_kwargs(
        args.optimizer, args.batch_size, learning_rate=args.learning_rate, momentum=args.momentum
    )
    base_lr = kwargs["learning_rate"]
    kwargs["lr_scheduler"] = lr_scheduler.FactorScheduler(step=100, factor=0.9, base_lr=base_lr)
    opt = optimizer.create(args.optimizer, **kwargs)
    updater = optimizer.get_updater(opt)
    # What the optimizer sees: the bias as a (classes, 1) view for 2-d-only optimizers.
    targets = [weight, bias[:, None] if args.optimizer in TWO_D_ONLY else bias]
    history: List[Tuple[int, float, float, float]] = []

    def report(epoch: int, loss: float, correct: int, lr: float, speed: str) -> None:
        print(
            f"epoch {epoch:3d}  loss {loss / SAMPLES:.4f}  accuracy {correct / SAMPLES:.4f}"
            f"  lr {lr:.6f}  {speed}",
            flush=True,
        )
        history.append((epoch, loss / SAMPLES, correct / SAMPLES, lr))

    loss, correct, _, _ = forward_backward(weight, bias, x, y)
    report(0, loss, correct, opt.learning_rate, "(before training)")
    batches = SAMPLES // args.batch_size  # an incomplete last batch is discarded
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(SAMPLES)
        spent, calls = 0.0, 0
        epoch_start = last_progress = time.perf_counter()
        for b in range(batches):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            _, _, grad_w, grad_b = forward_backward(weight, bias, x[idx], y[idx])
            grads = (grad_w, grad_b.reshape(targets[1].shape))
            start = time.perf_counter()
            for index, (grad, param) in enumerate(zip(grads, targets)):
                updater(index, grad, param)
            now = time.perf_counter()
            spent += now - start
            calls += len(params)
            if not args.quiet and now - last_progress >= PROGRESS_EVERY:
                last_progress = now
                print(
                    f"  epoch {epoch}: batch {b + 1}/{batches}, {now - epoch_start:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        loss, correct, _, _ = forward_backward(weight, bias, x, y)
        updated = batches * (weight.size + bias.size)
        speed = f"{calls / spent:,.0f} updates/s  {updated / spent / 1e6:.2f} Mparam/s"
        report(epoch, loss, correct, opt.learning_rate, speed)
    if args.plot is not None:
        plot(args.plot, history, f"mxopt demo: {args.optimizer}, batch {args.batch_size}")
        print(f"curves written to {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
