"""Time mxopt's optimizer steps against in-place NumPy and this machine's memory bandwidth.

One run, on the same data, measures:

* large steps (``--size`` parameters, 2**24 by default): SGD with momentum, plain SGD and
  NAG in float32, and multi-precision SGD with momentum (float16 weight and gradient,
  float32 master copy and momentum), each through ``opt.update`` and as the best in-place
  NumPy ufunc sequence (preallocated temporaries, no allocation per step);
* a memory-bandwidth probe: in-place ``np.add(a, b, out=a)`` over arrays far larger than
  the caches (12 bytes per element), on one thread and split over ``--threads`` Python
  threads (NumPy releases the GIL inside large ufuncs);
* the per-call overhead of ``opt.update`` on a 10-element weight, with its pieces
  (``_preamble``, ``_kernel``, the ``_core.step`` call);
* an aggregated step over 10,000 tiny tensors: one ``update_multi_precision`` call with
  lists, the same through ``Updater`` with ``MXNET_OPTIMIZER_AGGREGATION_SIZE=10000``, and
  the ``_core.step_many`` call alone.

Bytes moved per parameter (each array element read or written once): momentum SGD and NAG
20 (read w, g, m; write w, m), plain SGD 12, multi-precision momentum 20 (read g16, master,
m; write w16, master, m). Effective GB/s = bytes / median time; "% bw" divides it by the
best probe.

Usage: ``python benches/bench_step.py [--threads 2] [--size 16777216]``. It must run
against an installed (release) wheel; ``RAYON_NUM_THREADS`` is set from ``--threads``
before ``mxopt`` is imported.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import threading
import time
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

LR, WD, MOMENTUM = 0.01, 1e-4, 0.9
TINY, N_TINY = 10, 10_000


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_call(fn: Callable[[], object], calls: int, batches: int = 30) -> float:
    """Median over ``batches`` of the mean time of one call in a batch of ``calls``, in s."""
    for _ in range(calls):
        fn()
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


# ------------------------------------------------------------------ bandwidth probe


class InplaceAdd:
    """One pass of ``a += b`` per call, split over ``threads`` Python threads that live as
    long as the object (NumPy releases the GIL inside large ufuncs); ``close()`` ends them.
    ``nbytes`` is what one pass moves (read a and b, write a)."""

    def __init__(self, a: np.ndarray, b: np.ndarray, threads: int) -> None:
        self.nbytes = a.nbytes + b.nbytes + a.nbytes
        self.pool: List[threading.Thread] = []
        self.stop = False
        if threads == 1:
            self.one_pass: Callable[[], object] = lambda: np.add(a, b, out=a)
            return
        bounds = np.linspace(0, a.size, threads + 1).astype(int)
        parts = [(a[lo:hi], b[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
        self.start_gate = threading.Barrier(threads + 1)
        self.done_gate = threading.Barrier(threads + 1)
        self.pool = [threading.Thread(target=self._work, args=part, daemon=True) for part in parts]
        for t in self.pool:
            t.start()
        self.one_pass = self._release_workers

    def _work(self, x: np.ndarray, y: np.ndarray) -> None:
        while True:
            self.start_gate.wait()
            if self.stop:
                return
            np.add(x, y, out=x)
            self.done_gate.wait()

    def _release_workers(self) -> None:
        self.start_gate.wait()
        self.done_gate.wait()

    def __call__(self) -> None:
        self.one_pass()

    def close(self) -> None:
        if self.pool:
            self.stop = True
            self.start_gate.wait()
            for t in self.pool:
                t.join()
            self.pool = []


def probe_inplace_add(a: np.ndarray, b: np.ndarray, threads: int, repeat: int) -> float:
    """Bytes per second of ``a += b`` (12 B/elem for float32) split over ``threads``."""
    probe = InplaceAdd(a, b, threads)
    try:
        return probe.nbytes / median_time(probe, repeat)
    finally:
        probe.close()


# ------------------------------------------------------------- NumPy reference steps


class NumpySteps:
    """The updates as in-place NumPy ufuncs with preallocated temporaries (1-D arrays of
    up to ``n`` elements; each step uses views of the temporaries' first elements)."""

    def __init__(self, n: int) -> None:
        self.tmp = np.empty(n, dtype=np.float32)
        self.tmp2 = np.empty(n, dtype=np.float32)

    def momentum(self, w: np.ndarray, g: np.ndarray, m: np.ndarray) -> None:
        """``m = (mu*m - lr*wd*w) - lr*g; w += m``."""
        tmp = self.tmp[: w.size]
        np.multiply(m, np.float32(MOMENTUM), out=m)
        np.multiply(w, np.float32(LR * WD), out=tmp)
        np.subtract(m, tmp, out=m)
        np.multiply(g, np.float32(LR), out=tmp)
        np.subtract(m, tmp, out=m)
        np.add(w, m, out=w)

    def plain(self, w: np.ndarray, g: np.ndarray) -> None:
        """``w = (1 - lr*wd)*w - lr*g``."""
        tmp = self.tmp[: w.size]
        np.multiply(w, np.float32(1 - LR * WD), out=w)
        np.multiply(g, np.float32(LR), out=tmp)
        np.subtract(w, tmp, out=w)

    def nag(self, w: np.ndarray, g: np.ndarray, m: np.ndarray) -> None:
        """``m1 = mu*m; w' = (w - m1) + (m1 - lr*(g + wd*w))*(mu + 1);
        m' = m1 - lr*(g + wd*w')``."""
        tmp = self.tmp[: w.size]
        np.multiply(m, np.float32(MOMENTUM), out=m)
        np.multiply(w, np.float32(WD), out=tmp)
        np.add(tmp, g, out=tmp)
        np.multiply(tmp, np.float32(LR), out=tmp)
        np.subtract(m, tmp, out=tmp)
        np.multiply(tmp, np.float32(MOMENTUM + 1), out=tmp)
        np.subtract(w, m, out=w)
        np.add(w, tmp, out=w)
        np.multiply(w, np.float32(WD), out=tmp)
        np.add(tmp, g, out=tmp)
        np.multiply(tmp, np.float32(LR), out=tmp)
        np.subtract(m, tmp, out=m)

    def mixed_momentum(
        self, w16: np.ndarray, g16: np.ndarray, master: np.ndarray, m: np.ndarray
    ) -> None:
        """Widen the gradient, run ``momentum`` on the master, narrow it into ``w16``."""
        g32 = self.tmp2[: g16.size]
        np.copyto(g32, g16)
        self.momentum(master, g32, m)
        np.copyto(w16, master, casting="same_kind")


# ------------------------------------------------------------------------ the table


Row = Tuple[str, float, int, Optional[float]]  # name, seconds, bytes/param, numpy seconds


def print_table(rows: Sequence[Row], n: int, bandwidth: float) -> None:
    """One line per timed step: ms/step, GB/s, speed-up over NumPy, % of the probe."""
    head = f"{'step':<34}{'ms/step':>9}{'GB/s':>8}{'vs NumPy':>10}{'% bw':>7}"
    print(head)
    print("-" * len(head))
    for name, seconds, bpp, numpy_seconds in rows:
        gbs = bpp * n / seconds / 1e9
        ratio = f"{numpy_seconds / seconds:.2f}x" if numpy_seconds else "-"
        pct = 100 * bpp * n / seconds / bandwidth
        print(f"{name:<34}{seconds * 1e3:>9.2f}{gbs:>8.2f}{ratio:>10}{pct:>6.0f}%")


def large_steps(n: int, threads: int, repeat: int) -> Tuple[List[Row], float]:
    """Times the large steps and the probes; returns table rows and the best probe (B/s)."""
    from mxopt.optimizer import NAG, SGD

    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(n, dtype=np.float32)
    g0 = rng.standard_normal(n, dtype=np.float32) * np.float32(0.01)
    w, g, m = w0.copy(), g0.copy(), np.zeros(n, dtype=np.float32)
    ref = NumpySteps(n)

    # Probe on the step's own buffers (w += g touches 2 of its arrays, 128 MB at 2**24).
    probe_1 = probe_inplace_add(w, g, 1, repeat)
    probe_t = probe_inplace_add(w, g, threads, repeat) if threads > 1 else probe_1
    bandwidth = max(probe_1, probe_t)
    print(f"probe  a += b (float32, {3 * w.nbytes / 1e6:.0f} MB moved per pass)")
    print(f"  1 thread:  {probe_1 / 1e9:6.2f} GB/s")
    if threads > 1:
        print(f"  {threads} threads: {probe_t / 1e9:6.2f} GB/s")
    print(f"  bandwidth used for '% bw': {bandwidth / 1e9:.2f} GB/s\n")

    # Same answer check: one mxopt step against one NumPy step from the same state.
    sgd = SGD(learning_rate=LR, momentum=MOMENTUM, wd=WD)
    w[:], m[:] = w0, 0.0
    w_ref, m_ref = w0.copy(), np.zeros(n, dtype=np.float32)
    sgd.update(0, w, g, m)
    ref.momentum(w_ref, g, m_ref)
    err = float(np.max(np.abs(w - w_ref)))
    print(f"check: momentum SGD, mxopt vs NumPy after one step: max |dw| = {err:.2e}\n")

    rows: List[Row] = []
    t_np = median_time(lambda: ref.momentum(w, g, m), repeat)
    t_mx = median_time(lambda: sgd.update(0, w, g, m), repeat)
    rows += [("sgd momentum fp32  mxopt", t_mx, 20, t_np)]
    rows += [("sgd momentum fp32  numpy", t_np, 20, t_np)]

    plain = SGD(learning_rate=LR, wd=WD)
    w[:] = w0
    t_np = median_time(lambda: ref.plain(w, g), repeat)
    t_mx = median_time(lambda: plain.update(0, w, g, None), repeat)
    rows += [("sgd plain fp32     mxopt", t_mx, 12, t_np)]
    rows += [("sgd plain fp32     numpy", t_np, 12, t_np)]

    nag = NAG(learning_rate=LR, momentum=MOMENTUM, wd=WD)
    w[:], m[:] = w0, 0.0
    t_np = median_time(lambda: ref.nag(w, g, m), repeat)
    t_mx = median_time(lambda: nag.update(0, w, g, m), repeat)
    rows += [("nag fp32           mxopt", t_mx, 20, t_np)]
    rows += [("nag fp32           numpy", t_np, 20, t_np)]

    del m
    w16, g16 = w0.astype(np.float16), g0.astype(np.float16)
    master, m = w0.copy(), np.zeros(n, dtype=np.float32)
    mp = SGD(learning_rate=LR, momentum=MOMENTUM, wd=WD, multi_precision=True)
    state = (m, master)
    t_np = median_time(lambda: ref.mixed_momentum(w16, g16, master, m), repeat)
    t_mx = median_time(lambda: mp.update_multi_precision(0, w16, g16, state), repeat)
    rows += [("sgd momentum fp16 MP mxopt", t_mx, 20, t_np)]
    rows += [("sgd momentum fp16 MP numpy", t_np, 20, t_np)]
    return rows, bandwidth


def small_steps() -> None:
    """Per-call overhead on a 10-element weight, and aggregated steps over tiny tensors."""
    from mxopt import _core
    from mxopt.optimizer import SGD, Updater

    print(f"\nper-call overhead, SGD momentum, one {TINY}-element float32 weight")
    sgd = SGD(learning_rate=LR, momentum=MOMENTUM, wd=WD)
    w = np.ones(TINY, dtype=np.float32)
    g = np.full(TINY, 0.01, dtype=np.float32)
    m = np.zeros(TINY, dtype=np.float32)
    hyper = (MOMENTUM, 1.0, None)  # SGD.kernel_hyper: momentum, rescale_grad, clip_gradient
    kernel = sgd._kernel("multi_sgd_mom", hyper)
    states = [m]
    steps = ([LR], [WD], [1])
    pieces = [
        ("opt.update(0, w, g, m)", lambda: sgd.update(0, w, g, m)),
        ("  opt._preamble([0])", lambda: sgd._preamble([0])),
        ("  opt._kernel(name, hyper)", lambda: sgd._kernel("multi_sgd_mom", hyper)),
        ("  opt._run_dense(...)", lambda: sgd._run_dense(kernel, [w], [g], states, steps)),
        ("  _core.step(...)", lambda: _core.step(kernel, w, g, (m,), LR, WD, 1)),
        ("  (empty Python call)", lambda: None),
    ]
    for name, fn in pieces:
        print(f"  {name:<34}{per_call(fn, 2000) * 1e6:8.2f} us")

    print(f"\naggregated SGD momentum step over {N_TINY} float32 tensors of {TINY} elements")
    rng = np.random.default_rng(1)
    ws = [rng.standard_normal(TINY, dtype=np.float32) for _ in range(N_TINY)]
    gs = [rng.standard_normal(TINY, dtype=np.float32) for _ in range(N_TINY)]
    ms = [np.zeros(TINY, dtype=np.float32) for _ in range(N_TINY)]
    idx = list(range(N_TINY))
    lrs, wds, ts = [LR] * N_TINY, [WD] * N_TINY, [1] * N_TINY
    ss = ms  # flat: one momentum array per weight

    def show(name: str, seconds: float) -> None:
        print(f"  {name:<44}{seconds * 1e3:8.2f} ms {seconds / N_TINY * 1e6:7.3f} us/tensor")

    show(
        "opt.update_multi_precision(lists)",
        median_time(lambda: sgd.update_multi_precision(idx, ws, gs, ms), 15),
    )
    show("  opt._preamble(indices)", median_time(lambda: sgd._preamble(idx), 15))
    show(
        "  _core.step_many(...)",
        median_time(lambda: _core.step_many(kernel, ws, gs, ss, lrs, wds, ts), 15),
    )

    for size in (N_TINY, 4):
        os.environ["MXNET_OPTIMIZER_AGGREGATION_SIZE"] = str(size)
        updater = Updater(SGD(learning_rate=LR, momentum=MOMENTUM, wd=WD))
        updater(idx, gs, ws)  # creates the states
        show(
            f"Updater, aggregation size {size}",
            median_time(functools.partial(updater, idx, gs, ws), 15),
        )
    os.environ.pop("MXNET_OPTIMIZER_AGGREGATION_SIZE")


# ------------------------------------------------------------ every optimizer


#: (label, registry name, constructor arguments, state arrays per weight, extra bytes per
#: parameter beyond one pass over weight, gradient and states: the norm pass of LARS
#: (reads w, g) and LAMB's second pass (reads w, m, v; writes w) in float32 units).
OPTIMIZERS: List[Tuple[str, str, dict, int, int]] = [
    ("sgd", "sgd", {}, 0, 0),
    ("sgd momentum", "sgd", {"momentum": MOMENTUM}, 1, 0),
    ("nag", "nag", {"momentum": MOMENTUM}, 1, 0),
    ("adam", "adam", {}, 2, 0),
    ("adamax", "adamax", {}, 2, 0),
    ("nadam", "nadam", {}, 2, 0),
    ("adagrad", "adagrad", {}, 1, 0),
    ("adadelta", "adadelta", {}, 2, 0),
    ("rmsprop", "rmsprop", {}, 1, 0),
    ("rmsprop centered", "rmsprop", {"centered": True}, 3, 0),
    ("ftml", "ftml", {}, 3, 0),
    ("ftrl", "ftrl", {}, 2, 0),
    ("signum", "signum", {"momentum": MOMENTUM}, 1, 0),
    ("dcasgd", "dcasgd", {}, 1, 0),
    ("sgld (no noise)", "sgld", {}, 0, 0),
    ("sgld", "sgld", {}, 0, 0),
    ("lbsgd momentum", "lbsgd", {"momentum": MOMENTUM}, 1, 0),
    ("lars exact norms", "lars", {"momentum": MOMENTUM}, 1, 2),
    ("lars fast norms", "lars", {"momentum": MOMENTUM, "exact_norms": False}, 1, 2),
    ("lamb exact norms", "lamb", {}, 2, 4),
    ("lamb fast norms", "lamb", {"exact_norms": False}, 2, 4),
    ("groupadagrad", "groupadagrad", {}, 0, 0),
]


def _make(name: str, kwargs: dict, label: str, **extra: object) -> object:
    from mxopt.optimizer import create

    opt = create(
        name, learning_rate=LR, wd=0.0 if name == "groupadagrad" else WD, **kwargs, **extra
    )
    if "no noise" in label:
        opt.add_noise = False  # type: ignore[attr-defined]
    return opt


def _shape(name: str, n: int) -> Tuple[int, ...]:
    return (n // 256, 256) if name == "groupadagrad" else (n,)


def every_optimizer(n: int, bandwidth: float, repeat: int) -> None:
    """One line per optimizer: a 16M-parameter float32 step and float16 multi-precision
    step as GB/s and % of the probe, a ResNet-50-shaped list in one call, and the cost
    per tensor of one call over 10,000 tiny tensors."""
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal(n, dtype=np.float32)
    g0 = rng.standard_normal(n, dtype=np.float32) * np.float32(0.01)
    sizes = resnet50_sizes()
    total = sum(sizes)
    head = (
        f"{'optimizer':<19}{'fp32 ms':>8}{'GB/s':>7}{'% bw':>6}{'mp16 ms':>9}{'GB/s':>7}"
        f"{'% bw':>6}{'rn50 GB/s':>10}{'vs 1':>6}{'us/tiny':>8}"
    )
    print(
        f"\nevery optimizer: {n:,} parameters; ResNet-50 list of {len(sizes)} tensors, "
        f"{total:,} parameters; {N_TINY} tensors of {TINY}"
    )
    print(head)
    print("-" * len(head))
    for label, name, kwargs, states, extra in OPTIMIZERS:
        bytes32 = 4 * (3 + 2 * states + extra)
        bytes16 = 4 + 8 + 8 * states + 4 * extra
        shape = _shape(name, n)

        opt = _make(name, kwargs, label)
        w, g = w0.reshape(shape).copy(), g0.reshape(shape)
        state = opt.create_state(0, w)
        t32 = median_time(lambda: opt.update(0, w, g, state), repeat)

        mp = _make(name, kwargs, label, multi_precision=True)
        w16, g16 = w0.reshape(shape).astype(np.float16), g0.reshape(shape).astype(np.float16)
        mp_state = mp.create_state_multi_precision(0, w16)
        t16 = median_time(lambda: mp.update_multi_precision(0, w16, g16, mp_state), repeat)
        del w, state, w16, mp_state

        shapes = [_shape(name, k) if name != "groupadagrad" else (k, 1) for k in sizes]
        agg = _make(name, kwargs, label)
        ws = [rng.standard_normal(sh, dtype=np.float32) for sh in shapes]
        gs = [np.full(sh, 0.01, np.float32) for sh in shapes]
        idx = list(range(len(ws)))
        sts = [agg.create_state(i, x) for i, x in zip(idx, ws)]
        t_list = median_time(lambda: agg.update(idx, ws, gs, sts), max(3, repeat // 3))
        del ws, gs, sts

        tiny = _make(name, kwargs, label)
        tshape = (TINY, 1) if name == "groupadagrad" else (TINY,)
        tws = [rng.standard_normal(tshape, dtype=np.float32) for _ in range(N_TINY)]
        tgs = [np.full(tshape, 0.01, np.float32) for _ in range(N_TINY)]
        tidx = list(range(N_TINY))
        tst = [tiny.create_state(i, x) for i, x in zip(tidx, tws)]
        t_tiny = median_time(lambda: tiny.update(tidx, tws, tgs, tst), 7)

        gb32, gb16 = bytes32 * n / t32 / 1e9, bytes16 * n / t16 / 1e9
        gb_list = bytes32 * total / t_list / 1e9
        print(
            f"{label:<19}{t32 * 1e3:>8.2f}{gb32:>7.1f}{100 * gb32 * 1e9 / bandwidth:>5.0f}%"
            f"{t16 * 1e3:>9.2f}{gb16:>7.1f}{100 * gb16 * 1e9 / bandwidth:>5.0f}%"
            f"{gb_list:>10.1f}{gb_list / gb32:>6.2f}{t_tiny / N_TINY * 1e6:>8.2f}"
        )


def resnet50_sizes() -> List[int]:
    """Element counts of ResNet-50's 161 parameter tensors (as in benches/kernels.rs)."""
    sizes: List[int] = []

    def conv_bn(cin: int, cout: int, k: int) -> None:
        sizes.extend([cout * cin * k * k, cout, cout])

    conv_bn(3, 64, 7)
    cin = 64
    for blocks, width in ((3, 64), (4, 128), (6, 256), (3, 512)):
        for block in range(blocks):
            conv_bn(cin, width, 1)
            conv_bn(width, width, 3)
            conv_bn(width, 4 * width, 1)
            if block == 0:
                conv_bn(cin, 4 * width, 1)
            cin = 4 * width
    sizes.extend([1000 * 2048, 1000])
    assert (len(sizes), sum(sizes)) == (161, 25_557_032)
    return sizes


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse flags, set the thread count, run every measurement and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="RAYON_NUM_THREADS (default 2)")
    parser.add_argument("--size", type=int, default=1 << 24, help="parameters (default 2**24)")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per large step")
    parser.add_argument(
        "--only-table", action="store_true", help="skip the SGD-family details; every optimizer"
    )
    args = parser.parse_args(argv)
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    import mxopt

    print(f"mxopt {mxopt.__version__} from {os.path.dirname(mxopt.__file__)}")
    print(
        f"numpy {np.__version__}, python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, RAYON_NUM_THREADS={args.threads}, size={args.size:,}\n"
    )
    rows, bandwidth = large_steps(args.size, args.threads, args.repeat)
    if not args.only_table:
        print_table(rows, args.size, bandwidth)
        small_steps()
    every_optimizer(args.size, bandwidth, args.repeat)


if __name__ == "__main__":
    main()
