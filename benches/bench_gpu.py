"""When the GPU path pays: one Adam step over a list of tensors, three ways, in one run.

* ``cpu``: :class:`mxopt.optimizer.Updater` on NumPy arrays;
* ``gpu resident``: :class:`mxopt.gpu.Updater` on device arrays that stay on the device
  (gradients written there by a GPU backward pass; here they are uploaded once);
* ``gpu + copies``: the same, but every step uploads the gradients and downloads the
  weights, as a NumPy training loop would.

Each line: median wall time per step (``synchronize`` included for the GPU) and the
effective bandwidth of the update (Adam moves 28 bytes per float32 parameter: read w, g,
m, v; write w, m, v).

On a software Vulkan driver (Mesa's lavapipe) the numbers are a sanity check of the
overheads only: they say nothing about a GPU's speed.

Usage: ``python benches/bench_gpu.py [--tensors 161] [--size 25000000] [--steps 5]``
(default: a ResNet-50-shaped count of tensors, 2.5M parameters).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, List

import numpy as np

import mxopt
from mxopt import gpu

BYTES_PER_PARAM = 28


def median_time(step: Callable[[], None], repeats: int) -> float:
    step()  # warm-up: states, pipelines, layout on the device
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=161)
    parser.add_argument("--size", type=int, default=2_500_000, help="parameters in all")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    # Sizes spread over three orders of magnitude, as in a convolutional network.
    shares = rng.uniform(0.001, 1.0, args.tensors) ** 3
    lens = np.maximum(1, (shares / shares.sum() * args.size).astype(int))
    host_w: List[np.ndarray] = [rng.uniform(-1, 1, n).astype(np.float32) for n in lens]
    host_g: List[np.ndarray] = [rng.uniform(-1, 1, n).astype(np.float32) for n in lens]
    indices = list(range(args.tensors))
    params = int(lens.sum())

    dev = gpu.Device()
    print(f"device: {dev.name} ({dev.device_type}); {args.tensors} tensors, {params} params")

    cpu = mxopt.optimizer.Updater(mxopt.optimizer.Adam())
    cpu_w = [w.copy() for w in host_w]

    resident = gpu.Updater(mxopt.optimizer.Adam())
    dev_w = [dev.array(w) for w in host_w]
    dev_g = [dev.array(g) for g in host_g]

    copying = gpu.Updater(mxopt.optimizer.Adam())
    copy_w = [dev.array(w) for w in host_w]
    copy_g = [dev.array(g) for g in host_g]
    out_w = [w.copy() for w in host_w]

    def resident_step() -> None:
        resident(indices, dev_g, dev_w)
        dev.synchronize()

    def copying_step() -> None:
        for d, g in zip(copy_g, host_g):
            d.copy_from(g)
        copying(indices, copy_g, copy_w)
        for i, d in enumerate(copy_w):
            out_w[i] = d.asnumpy()

    for name, step in (
        ("cpu", lambda: cpu(indices, host_g, cpu_w)),
        ("gpu resident", resident_step),
        ("gpu + copies", copying_step),
    ):
        seconds = median_time(step, args.steps)
        rate = params * BYTES_PER_PARAM / seconds / 1e9
        print(f"{name:>14}: {seconds * 1e3:9.2f} ms/step  {rate:8.2f} GB/s")


if __name__ == "__main__":
    main()
