"""Fill speed of mxopt's random initializers vs NumPy's generator, in the same run.

    python benches/bench_init.py [--n 67108864] [--repeat 5]

Times filling one float32 array in place: mxopt (``mxopt.random.uniform/normal``, i.e. the
Rust ``_core.fill_*`` used by Uniform / Normal / Xavier) against NumPy's
``Generator.random(out=...)`` and ``Generator.standard_normal(out=...)`` (PCG64, one
thread), plus ``np.copyto`` as a memory-bandwidth reference. Reports the best of
``--repeat`` runs in GB/s of output written. Set RAYON_NUM_THREADS to pin mxopt's threads.
"""

import argparse
import os
import time

import numpy as np

import mxopt
from mxopt import random as mxr


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    out = np.empty(args.n, dtype=np.float32)
    src = np.ones(args.n, dtype=np.float32)
    rng = np.random.default_rng(0)
    mxr.seed(0)
    cases = [
        ("copy (np.copyto, bandwidth ref)", lambda: np.copyto(out, src)),
        ("uniform  numpy Generator.random", lambda: rng.random(dtype=np.float32, out=out)),
        ("uniform  mxopt", lambda: mxr.uniform(-0.07, 0.07, out)),
        (
            "normal   numpy Generator.standard_normal",
            lambda: rng.standard_normal(dtype=np.float32, out=out),
        ),
        ("normal   mxopt", lambda: mxr.normal(0.0, 0.01, out)),
    ]
    nbytes = out.nbytes
    threads = os.environ.get("RAYON_NUM_THREADS", f"default ({os.cpu_count()} CPUs)")
    print(
        f"mxopt {mxopt.__version__}, numpy {np.__version__}, n={args.n} float32 "
        f"({nbytes / 2**20:.0f} MiB), rayon threads: {threads}"
    )
    print(f"{'fill':44s} {'best s':>8s} {'GB/s':>7s}")
    for name, fn in cases:
        fn()  # warm up (page faults, thread pool)
        t = best(fn, args.repeat)
        print(f"{name:44s} {t:8.4f} {nbytes / t / 1e9:7.2f}")


if __name__ == "__main__":
    main()
