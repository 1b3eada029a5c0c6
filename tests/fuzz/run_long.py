"""The property suite's invariant over many random calls (no hypothesis: a NumPy generator
draws the scenarios, for throughput). ``python tests/fuzz/run_long.py --calls 1000000``.

Every scenario is one ``check`` of ``scenarios.py``: the call under test plus its reference
calls. Failures are printed with the seed that replays them (``--seed S --scenarios 1``)."""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenarios


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1_000_000, help="optimizer calls in all")
    parser.add_argument("--scenarios", type=int, default=0, help="stop after this many")
    parser.add_argument("--seed", type=int, default=0, help="first scenario seed")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long")
    args = parser.parse_args()
    calls, done, failures = 0, 0, 0
    outcomes: collections.Counter = collections.Counter()
    kinds: collections.Counter = collections.Counter()
    start = time.time()
    seed = args.seed
    while calls < args.calls:
        if args.scenarios and done >= args.scenarios:
            break
        if args.seconds and time.time() - start > args.seconds:
            break
        draw = scenarios.RngDraw(np.random.default_rng(seed))
        try:
            s = scenarios.Scenario(draw)
            outcome = scenarios.check(s)
        except Exception:
            failures += 1
            print(f"FAILED seed={seed}", flush=True)
            traceback.print_exc()
            outcome = "failed"
            s = None
        if s is not None:
            n = len(s.indices)
            # the call under test, then one reference call per index (or one list call)
            calls += 1 + (n if outcome == "ok" else 0)
            kinds[s.form] += 1
            kinds["clean" if s.clean else "weird"] += 1
        outcomes[outcome] += 1
        done += 1
        seed += 1
        if done % 20000 == 0:
            print(
                f"{done} scenarios, {calls} calls, {dict(outcomes)}, {time.time() - start:.0f} s",
                flush=True,
            )
    print(f"scenarios {done} (seeds {args.seed}..{seed - 1}), optimizer calls {calls}")
    print(f"outcomes {dict(outcomes)}; forms and inputs {dict(kinds)}")
    print(f"{time.time() - start:.0f} s, failures {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
