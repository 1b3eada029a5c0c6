"""Train a softmax classifier with an mxopt optimizer: ``python -m mxopt.demo``.

The recipe of MXNet's optimization guide without MXNet: one fully connected layer (20
features -> 10 classes) on synthetic data (a Gaussian cloud around a random centre per
class, fixed seed), weights from ``Uniform(scale=1.0)``, trained with
``create(name, learning_rate=0.1, lr_scheduler=FactorScheduler(step=100, factor=0.9))``
through ``get_updater``. Gradients are summed over the batch and the optimizer averages them
with ``rescale_grad=1/batch_size``, as MXNet users do. Forward and backward are NumPy.
"""

from __future__ import annotations

import argparse
import time
from typing import List, Optional, Tuple

import numpy as np

from . import initializer, lr_scheduler, optimizer
from . import random as mxrandom

FEATURES, CLASSES, SAMPLES = 20, 10, 4096


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


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mxopt.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--optimizer", default="sgd", help="any registered name (default: sgd)")
    parser.add_argument("--momentum", type=float, default=None, help="passed on when given")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= SAMPLES:
        parser.error(f"--batch-size must be between 1 and {SAMPLES}")
    if args.epochs < 0:
        parser.error("--epochs must not be negative")
    return args


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

    extra = {} if args.momentum is None else {"momentum": args.momentum}
    opt = optimizer.create(
        args.optimizer,
        learning_rate=0.1,
        lr_scheduler=lr_scheduler.FactorScheduler(step=100, factor=0.9, base_lr=0.1),
        rescale_grad=1.0 / args.batch_size,
        **extra,
    )
    updater = optimizer.get_updater(opt)

    def report(epoch: int, loss: float, correct: int, lr: float, speed: str) -> None:
        print(
            f"epoch {epoch:3d}  loss {loss / SAMPLES:.4f}  accuracy {correct / SAMPLES:.4f}"
            f"  lr {lr:.6f}  {speed}",
            flush=True,
        )

    loss, correct, _, _ = forward_backward(weight, bias, x, y)
    report(0, loss, correct, opt.learning_rate, "(before training)")
    batches = SAMPLES // args.batch_size  # an incomplete last batch is discarded
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(SAMPLES)
        spent, calls = 0.0, 0
        for b in range(batches):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            _, _, grad_w, grad_b = forward_backward(weight, bias, x[idx], y[idx])
            start = time.perf_counter()
            for index, (grad, param) in enumerate(zip((grad_w, grad_b), params)):
                updater(index, grad, param)
            spent += time.perf_counter() - start
            calls += len(params)
        loss, correct, _, _ = forward_backward(weight, bias, x, y)
        updated = batches * (weight.size + bias.size)
        speed = f"{calls / spent:,.0f} updates/s  {updated / spent / 1e6:.2f} Mparam/s"
        report(epoch, loss, correct, opt.learning_rate, speed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
