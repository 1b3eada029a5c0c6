"""Draw the FactorScheduler curve of MXNet's learning-rate guide with mxopt's scheduler:
``base_lr=1``, halved every 250 updates, floored at ``stop_factor_lr=0.01``, plus the same
schedule with a 100-update linear warmup. Needs matplotlib (``pip install 'mxopt[plot]'``).

Usage: ``python docs/plot_factor_scheduler.py docs/factor_scheduler.png``
"""

import logging
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mxopt.lr_scheduler import FactorScheduler


def main(path: str) -> None:
    logging.disable(logging.INFO)  # the scheduler logs every change of rate
    updates = range(1, 1001)
    plain = FactorScheduler(step=250, factor=0.5, stop_factor_lr=1e-2, base_lr=1.0)
    warm = FactorScheduler(step=250, factor=0.5, stop_factor_lr=1e-2, base_lr=1.0, warmup_steps=100)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(updates, [plain(n) for n in updates], label="FactorScheduler(step=250, factor=0.5)")
    ax.plot(updates, [warm(n) for n in updates], "--", label="… with warmup_steps=100")
    ax.set_xlabel("num_update")
    ax.set_ylabel("learning rate")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "factor_scheduler.png")
