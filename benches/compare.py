"""Time mxopt's optimizer steps beside torch.optim (foreach and fused) and NumPy, on the
same data, and write a markdown table and a plot.

For every optimizer, in float32 and in float16 with a float32 master copy ("mp16"), on one
large tensor (``--size`` parameters) and on a ResNet-50-shaped list (161 tensors, 25.56M
parameters), it times one step of:

* ``mxopt``: ``opt.update`` / ``update_multi_precision`` (one call for the whole list);
* ``numpy``: MXNet's formulas as in-place NumPy ufuncs with preallocated temporaries
  (SGD with momentum, NAG, Adam, AdaGrad, RMSProp); mp16 widens the gradient, steps the
  master copy and narrows it into the weight;
* ``torch foreach`` and ``torch fused``: ``torch.optim`` on CPU tensors that share the
  arrays' memory, when torch is installed and the optimizer has that implementation; mp16
  steps float32 master parameters between the same two copies.

torch.optim's formulas differ from MXNet's in details (where weight decay and ε go), not in
the arrays each step reads and writes. Every implementation is charged the same bytes per
parameter (each array read or written once: weight, gradient, states), so GB/s is that
traffic over the median step time, and "% bw" divides it by a NumPy ``a += b`` probe on
this machine (best of one thread and ``--threads`` threads). The implementations and the
probe run round-robin, one step each per round, in rotating order, so that machine noise
hits them alike. mxopt and NumPy are checked to agree after one step before timing.

Usage: ``python benches/compare.py [--markdown docs/compare.md] [--plot docs/compare.png]``
against an installed (release) wheel; ``--help`` lists the rest.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import LR, MOMENTUM, WD, InplaceAdd, NumpySteps, resnet50_sizes

F32 = np.float32
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # MXNet's Adam defaults
RMS_RHO, RMS_EPS, ADAGRAD_EPS = 0.9, 1e-8, 1e-7  # MXNet's RMSProp and AdaGrad defaults
IMPLEMENTATIONS = ("mxopt", "numpy", "torch foreach", "torch fused")
LAYOUTS = {"tensor": "one tensor", "resnet50": "ResNet-50 list"}
PRECISIONS = {"fp32": "float32", "mp16": "float16 + fp32 master"}
Arrays = List[np.ndarray]


# --------------------------------------------------------------- NumPy references


class NumpyReference(NumpySteps):
    """MXNet 1.6's dense update rules as in-place ufuncs on 1-D float32 arrays, all called
    ``rule(w, g, *states, t)``; ``wide`` holds a widened float16 gradient for mp16."""

    def __init__(self, largest: int) -> None:
        super().__init__(largest)
        self.wide = np.empty(largest, F32)

    def sgd_momentum(self, w: np.ndarray, g: np.ndarray, m: np.ndarray, t: int) -> None:
        self.momentum(w, g, m)

    def nesterov(self, w: np.ndarray, g: np.ndarray, m: np.ndarray, t: int) -> None:
        self.nag(w, g, m)

    def adam(self, w: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int) -> None:
        """``ĝ = g + wd*w; m = b1*m + (1-b1)*ĝ; v = b2*v + (1-b2)*ĝ²;
        w -= lr_t*m/(sqrt(v) + eps)``, the bias correction folded into ``lr_t``."""
        tmp, tmp2 = self.tmp[: w.size], self.tmp2[: w.size]
        lr_t = LR * np.sqrt(1.0 - BETA2**t) / (1.0 - BETA1**t)
        np.multiply(w, F32(WD), out=tmp)
        np.add(tmp, g, out=tmp)
        np.multiply(m, F32(BETA1), out=m)
        np.multiply(tmp, F32(1 - BETA1), out=tmp2)
        np.add(m, tmp2, out=m)
        np.multiply(tmp, tmp, out=tmp)
        np.multiply(v, F32(BETA2), out=v)
        np.multiply(tmp, F32(1 - BETA2), out=tmp)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        np.add(tmp, F32(EPS), out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, F32(lr_t), out=tmp)
        np.subtract(w, tmp, out=w)

    def adagrad(self, w: np.ndarray, g: np.ndarray, h: np.ndarray, t: int) -> None:
        """``h += g²; w -= lr*(g/sqrt(h + eps) + wd*w)``."""
        tmp, tmp2 = self.tmp[: w.size], self.tmp2[: w.size]
        np.multiply(g, g, out=tmp)
        np.add(h, tmp, out=h)
        np.add(h, F32(ADAGRAD_EPS), out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(g, tmp, out=tmp)
        np.multiply(w, F32(WD), out=tmp2)
        np.add(tmp, tmp2, out=tmp)
        np.multiply(tmp, F32(LR), out=tmp)
        np.subtract(w, tmp, out=w)

    def rmsprop(self, w: np.ndarray, g: np.ndarray, n: np.ndarray, t: int) -> None:
        """``ĝ = g + wd*w; n = (1-rho)*ĝ² + rho*n; w -= lr*ĝ/sqrt(n + eps)``."""
        tmp, tmp2 = self.tmp[: w.size], self.tmp2[: w.size]
        np.multiply(w, F32(WD), out=tmp)
        np.add(tmp, g, out=tmp)
        np.multiply(tmp, tmp, out=tmp2)
        np.multiply(tmp2, F32(1 - RMS_RHO), out=tmp2)
        np.multiply(n, F32(RMS_RHO), out=n)
        np.add(n, tmp2, out=n)
        np.add(n, F32(RMS_EPS), out=tmp2)
        np.sqrt(tmp2, out=tmp2)
        np.divide(tmp, tmp2, out=tmp)
        np.multiply(tmp, F32(LR), out=tmp)
        np.subtract(w, tmp, out=w)


# ------------------------------------------------------------------ the optimizers


@dataclass(frozen=True)
class Spec:
    """One optimizer as each library spells it."""

    label: str
    mxopt: Tuple[str, Dict[str, Any]]
    states: int  # float32 state arrays per weight
    numpy: Optional[str] = None  # NumpyReference method
    torch: Optional[Tuple[str, Dict[str, Any]]] = None


SPECS = [
    Spec(
        "sgd momentum",
        ("sgd", {"momentum": MOMENTUM}),
        1,
        "sgd_momentum",
        ("SGD", {"momentum": MOMENTUM}),
    ),
    Spec(
        "nag",
        ("nag", {"momentum": MOMENTUM}),
        1,
        "nesterov",
        ("SGD", {"momentum": MOMENTUM, "nesterov": True}),
    ),
    Spec("adam", ("adam", {}), 2, "adam", ("Adam", {})),
    Spec("adagrad", ("adagrad", {}), 1, "adagrad", ("Adagrad", {})),
    Spec("rmsprop", ("rmsprop", {}), 1, "rmsprop", ("RMSprop", {})),
    Spec("adamax", ("adamax", {}), 2, None, ("Adamax", {})),
    Spec("nadam", ("nadam", {}), 2, None, ("NAdam", {})),
    Spec("adadelta", ("adadelta", {}), 2, None, ("Adadelta", {})),
]


def bytes_per_param(spec: Spec, precision: str) -> int:
    """Traffic per parameter: read w, g and states, write w and states. mp16 moves
    float16 w and g plus the float32 master copy."""
    if precision == "fp32":
        return 4 * (3 + 2 * spec.states)
    return 2 + 2 + 8 + 8 * spec.states


# ------------------------------------------------------------------ the contenders


Step = Callable[[], object]


@dataclass
class Case:
    """Every implementation's one-step closure for one (optimizer, precision, layout)."""

    steps: Dict[str, Step] = field(default_factory=dict)
    unavailable: Dict[str, str] = field(default_factory=dict)


def mxopt_step(spec: Spec, precision: str, weights: Arrays, grads: Arrays) -> Step:
    from mxopt.optimizer import create

    name, kwargs = spec.mxopt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = create(name, learning_rate=LR, wd=WD, multi_precision=precision == "mp16", **kwargs)
    index = list(range(len(weights)))
    states = [opt.create_state_multi_precision(i, w) for i, w in zip(index, weights)]
    return lambda: opt.update_multi_precision(index, weights, grads, states)


def numpy_step(
    spec: Spec, precision: str, weights: Arrays, grads: Arrays, ref: NumpyReference
) -> Step:
    assert spec.numpy is not None
    rule = getattr(ref, spec.numpy)
    masters = [w.astype(F32) for w in weights] if precision == "mp16" else weights
    states = [[np.zeros_like(w) for _ in range(spec.states)] for w in masters]
    count = [0]

    def step() -> None:
        count[0] += 1
        for w, g, master, st in zip(weights, grads, masters, states):
            if precision == "mp16":
                wide = ref.wide[: g.size]
                np.copyto(wide, g)
                rule(master, wide, *st, count[0])
                np.copyto(w, master, casting="same_kind")
            else:
                rule(w, g, *st, count[0])

    return step


def torch_step(
    torch: Any, spec: Spec, precision: str, weights: Arrays, grads: Arrays, variant: str
) -> Step:
    """torch.optim on tensors sharing the arrays; LookupError when torch lacks the variant."""
    assert spec.torch is not None
    name, kwargs = spec.torch
    if precision == "fp32":
        params = [torch.nn.Parameter(torch.from_numpy(w)) for w in weights]
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g)
    else:
        params = [torch.nn.Parameter(torch.from_numpy(w.astype(F32))) for w in weights]
        for p in params:
            p.grad = torch.empty_like(p)
        halves = [torch.from_numpy(w) for w in weights]
        half_grads = [torch.from_numpy(g) for g in grads]
    try:
        opt = getattr(torch.optim, name)(
            params, lr=LR, weight_decay=WD, **kwargs, **{variant: True}
        )
    except TypeError as exc:  # the constructor has no such keyword
        raise LookupError(f"torch.optim.{name} has no {variant} implementation") from exc
    copy = getattr(torch, "_foreach_copy_", None)

    def copy_all(dst: List[Any], src: List[Any]) -> None:
        if copy is not None:
            copy(dst, src)
        else:
            for d, s in zip(dst, src):
                d.copy_(s)

    def step() -> None:
        if precision == "fp32":
            opt.step()
            return
        copy_all([p.grad for p in params], half_grads)
        opt.step()
        copy_all(halves, [p.detach() for p in params])

    try:
        step()
    except RuntimeError as exc:  # e.g. a fused kernel torch lacks for this device or dtype
        raise LookupError(f"torch.optim.{name}({variant}=True): {exc}") from exc
    return step


def build_case(
    spec: Spec,
    precision: str,
    sizes: Sequence[int],
    torch: Any,
    ref: NumpyReference,
    seed: int,
) -> Tuple[Case, Dict[str, Arrays]]:
    """Fresh copies of the same weights per implementation; one shared gradient list."""
    rng = np.random.default_rng(seed)
    dtype = np.float16 if precision == "mp16" else F32
    w0 = [rng.standard_normal(k, dtype=F32).astype(dtype) for k in sizes]
    grads = [(rng.standard_normal(k, dtype=F32) * F32(0.01)).astype(dtype) for k in sizes]
    case, weights = Case(), {}
    for impl in IMPLEMENTATIONS:
        ws = [w.copy() for w in w0]
        try:
            if impl == "mxopt":
                case.steps[impl] = mxopt_step(spec, precision, ws, grads)
            elif impl == "numpy":
                if spec.numpy is None:
                    raise LookupError("no NumPy reference")
                case.steps[impl] = numpy_step(spec, precision, ws, grads, ref)
            elif torch is None:
                raise LookupError("torch not loaded (not installed, or --no-torch)")
            elif spec.torch is None:
                raise LookupError("not in torch.optim")
            else:
                variant = impl.split()[1]
                case.steps[impl] = torch_step(torch, spec, precision, ws, grads, variant)
        except LookupError as exc:
            case.unavailable[impl] = str(exc).splitlines()[0]
            continue
        weights[impl] = ws
    return case, weights


def check_agreement(spec: Spec, precision: str, sizes: Sequence[int], ref: NumpyReference) -> None:
    """mxopt and the NumPy reference agree after two steps from the same state."""
    if spec.numpy is None:
        return
    case, weights = build_case(spec, precision, sizes, None, ref, seed=99)
    for _ in range(2):
        case.steps["mxopt"]()
        case.steps["numpy"]()
    for a, b in zip(weights["mxopt"], weights["numpy"]):
        a32, b32 = a.astype(F32), b.astype(F32)
        # Rounding of a different operation order, relative to the weights' scale (float16
        # weights round to 2**-11 of it).
        tol = 2e-3 if precision == "mp16" else 1e-5
        err = float(np.max(np.abs(a32 - b32)) / np.max(np.abs(b32)))
        if err > tol:
            raise SystemExit(f"{spec.label} {precision}: mxopt and NumPy differ ({err:.2e})")


# ------------------------------------------------------------------- measurement


@dataclass
class Result:
    spec: Spec
    precision: str
    layout: str
    params: int
    seconds: Dict[str, float]
    unavailable: Dict[str, str]
    bandwidth: float  # bytes/s of the probe, measured in the same rounds

    def gbs(self, impl: str) -> float:
        return bytes_per_param(self.spec, self.precision) * self.params / self.seconds[impl] / 1e9


def round_robin(steps: Dict[str, Step], rounds: int, warmup: int = 5) -> Dict[str, float]:
    """Median seconds per step of each entry, one step each per round, order rotating.
    The warm-up steps cover torch's first foreach steps, several times slower than later ones."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def measure(
    spec: Spec,
    precision: str,
    layout: str,
    sizes: Sequence[int],
    torch: Any,
    ref: NumpyReference,
    probes: Dict[str, InplaceAdd],
    rounds: int,
) -> Result:
    case, _ = build_case(spec, precision, sizes, torch, ref, seed=1)
    steps = {**case.steps, **probes}
    seconds = round_robin(steps, rounds)
    bandwidth = max(probes[name].nbytes / seconds.pop(name) for name in probes)
    return Result(spec, precision, layout, sum(sizes), seconds, case.unavailable, bandwidth)


# ------------------------------------------------------------------------ report


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


def markdown(results: Sequence[Result], header: Sequence[str]) -> str:
    impls = [i for i in IMPLEMENTATIONS if any(i in r.seconds for r in results)]
    lines = [*header, ""]
    lines.append("| optimizer | precision | layout | " + " | ".join(impls) + " |")
    lines.append("|---|---|---|" + "---:|" * len(impls))
    for r in results:
        cells = []
        for impl in impls:
            if impl in r.seconds:
                gbs = r.gbs(impl)
                cells.append(f"{gbs:.1f} GB/s ({100 * gbs * 1e9 / r.bandwidth:.0f}%)")
            else:
                cells.append("-")
        lines.append(f"| {r.spec.label} | {r.precision} | {r.layout} | " + " | ".join(cells) + " |")
    missing = sorted({(i, why) for r in results for i, why in r.unavailable.items()})
    if missing:
        lines += ["", "Not measured (-):"]
        lines += [f"* {impl}: {why}" for impl, why in missing]
    return "\n".join(lines) + "\n"


def plot(results: Sequence[Result], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    impls = [i for i in IMPLEMENTATIONS if any(i in r.seconds for r in results)]
    panels = [(p, lay) for p in PRECISIONS for lay in LAYOUTS]
    panels = [
        (p, lay) for p, lay in panels if any(r.precision == p and r.layout == lay for r in results)
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False)
    width = 0.8 / len(impls)
    for ax, (precision, layout) in zip(axes[:, 0], panels):
        rows = [r for r in results if r.precision == precision and r.layout == layout]
        for k, impl in enumerate(impls):
            xs = [i + (k - (len(impls) - 1) / 2) * width for i in range(len(rows))]
            ys = [100 * r.gbs(impl) * 1e9 / r.bandwidth if impl in r.seconds else 0 for r in rows]
            ax.bar(xs, ys, width, label=impl)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r.spec.label for r in rows])
        ax.set_ylabel("% of a += b bandwidth")
        ax.set_title(f"{PRECISIONS[precision]}, {LAYOUTS[layout]}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        ncol=len(impls),
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.97),
    )
    fig.suptitle(title, fontsize=10, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    labels = [s.label for s in SPECS]
    parser.add_argument("--size", type=int, default=1 << 24, help="one tensor's parameters")
    parser.add_argument("--rounds", type=int, default=15, help="timed steps per implementation")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="threads for mxopt and torch"
    )
    parser.add_argument(
        "--optimizers", default=",".join(labels), help=f"comma-separated subset of {labels}"
    )
    parser.add_argument("--precisions", default="fp32,mp16", help="fp32, mp16 or both")
    parser.add_argument("--layouts", default="tensor,resnet50", help="tensor, resnet50 or both")
    parser.add_argument("--no-torch", action="store_true", help="leave torch out even if installed")
    parser.add_argument("--markdown", help="write the table (markdown) to this file")
    parser.add_argument("--plot", help="draw % of bandwidth per optimizer into this PNG")
    args = parser.parse_args(argv)
    for flag, allowed in (
        ("optimizers", labels),
        ("precisions", list(PRECISIONS)),
        ("layouts", list(LAYOUTS)),
    ):
        chosen = getattr(args, flag).split(",")
        unknown = [c for c in chosen if c not in allowed]
        if unknown or not chosen:
            parser.error(f"--{flag}: unknown {unknown}; choose from {allowed}")
        setattr(args, flag, chosen)
    if args.size < 1 or args.rounds < 1 or args.threads < 1:
        parser.error("--size, --rounds and --threads must be positive")
    return args


def main(argv: Optional[Sequence[str]] = None) -> List[Result]:
    args = parse_args(argv)
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    # torch's OpenMP workers otherwise spin for a while after each step, on the cores the
    # next contender in the round needs (read when torch loads, so set before importing it).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import mxopt

    torch = None
    if not args.no_torch:
        try:
            import torch  # type: ignore[no-redef]

            torch.set_num_threads(args.threads)
        except ImportError:
            print("torch is not installed: mxopt and NumPy only")
    versions = f"mxopt {mxopt.__version__}, NumPy {np.__version__}"
    if torch is not None:
        versions += f", torch {torch.__version__}"
    header = [
        f"{machine()}; {args.threads} threads (RAYON_NUM_THREADS, torch.set_num_threads, "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}); "
        f"{versions}; Python {platform.python_version()}; "
        f"{datetime.date.today().isoformat()}.",
        f"One tensor: {args.size:,} parameters; ResNet-50 list: 161 tensors, "
        f"{sum(resnet50_sizes()):,} parameters. GB/s = bytes read and written per parameter "
        f"(weight, gradient, states) x parameters / median step time over {args.rounds} "
        "round-robin rounds; (%) = share of this machine's in-place `a += b` bandwidth, "
        "probed in the same rounds.",
    ]
    print("\n".join(header), flush=True)

    layouts = {"tensor": [args.size], "resnet50": resnet50_sizes()}
    largest = max(max(layouts[lay]) for lay in args.layouts)
    ref = NumpyReference(largest)
    probe_a = np.ones(max(args.size, 1 << 22), F32)
    probe_b = np.full_like(probe_a, 1e-9)
    probes = {f"probe x{t}": InplaceAdd(probe_a, probe_b, t) for t in {1, args.threads}}
    results = []
    try:
        for spec in (s for s in SPECS if s.label in args.optimizers):
            for precision in args.precisions:
                check_agreement(spec, precision, [4099, 5], ref)
                for layout in args.layouts:
                    r = measure(
                        spec, precision, layout, layouts[layout], torch, ref, probes, args.rounds
                    )
                    results.append(r)
                    shown = "  ".join(f"{i} {r.gbs(i):6.1f}" for i in r.seconds)
                    print(
                        f"{spec.label:<13}{precision:<6}{layout:<9}{shown}  GB/s"
                        f"  (probe {r.bandwidth / 1e9:.1f})",
                        flush=True,
                    )
    finally:
        for probe in probes.values():
            probe.close()
    table = markdown(results, header)
    print()
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.plot:
        plot(results, args.plot, f"one optimizer step: {machine()}, {datetime.date.today()}")
    return results


if __name__ == "__main__":
    main()
