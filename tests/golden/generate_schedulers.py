"""Record MXNet 1.6.0 learning-rate schedules as golden values for tests/test_lr_scheduler.py.

Run with the MXNet 1.6.0 interpreter from the repository root:

    /tmp/mx16/bin/python tests/golden/generate_schedulers.py

Each case names a scheduler class and its keyword arguments, optionally an optimizer
``learning_rate`` (applied through ``mx.optimizer.SGD``, which overwrites ``base_lr``), the
``num_update`` inputs in call order, MXNet's output for each (or the exception it raised),
and every scheduler attribute after the last call.
"""

import json
import pathlib

import mxnet as mx

CASES = [
    # FactorScheduler
    {
        "scheduler": "FactorScheduler",
        "kwargs": {"step": 3, "factor": 0.5, "base_lr": 1.0},
        "calls": list(range(12)),
    },
    {
        "scheduler": "FactorScheduler",
        "kwargs": {"step": 1, "factor": 0.1, "stop_factor_lr": 1e-3, "base_lr": 1.0},
        "calls": list(range(8)),
    },
    {
        "scheduler": "FactorScheduler",
        "kwargs": {"step": 2, "factor": 0.3, "base_lr": 0.7},
        "calls": list(range(0, 21, 2)),
    },
    {
        "scheduler": "FactorScheduler",
        "kwargs": {"step": 2, "factor": 0.9, "base_lr": 0.1},
        "calls": [5, 1, 10, 3, 10, 25, 7],
    },
    {
        "scheduler": "FactorScheduler",
        "kwargs": {"step": 2, "factor": 0.5, "base_lr": 0.01, "warmup_steps": 4},
        "optimizer_learning_rate": 1.0,
        "calls": list(range(8)),
    },
    {
        "scheduler": "FactorScheduler",
        "kwargs": {
            "step": 5,
            "factor": 0.5,
            "base_lr": 0.01,
            "warmup_steps": 3,
            "warmup_begin_lr": 0.002,
            "warmup_mode": "constant",
        },
        "calls": list(range(13)),
    },
    {
        "scheduler": "FactorScheduler",
        "kwargs": {"step": 4},
        "optimizer_learning_rate": 0.3,
        "calls": [1, 2, 3],
    },
    # MultiFactorScheduler
    {
        "scheduler": "MultiFactorScheduler",
        "kwargs": {"step": [2, 5], "factor": 0.1, "base_lr": 1.0},
        "calls": list(range(8)),
    },
    {
        "scheduler": "MultiFactorScheduler",
        "kwargs": {
            "step": [2, 5],
            "factor": 0.1,
            "base_lr": 1.0,
            "warmup_steps": 3,
            "warmup_begin_lr": 0.4,
        },
        "calls": list(range(8)),
    },
    {
        "scheduler": "MultiFactorScheduler",
        "kwargs": {"step": [3, 6, 9], "factor": 0.5},
        "calls": [10, 0, 4, 12],
    },
    {
        "scheduler": "MultiFactorScheduler",
        "kwargs": {"step": [1, 4], "factor": 0.7, "base_lr": 0.01, "warmup_steps": 2},
        "optimizer_learning_rate": 0.5,
        "calls": list(range(7)),
    },
    # PolyScheduler
    {
        "scheduler": "PolyScheduler",
        "kwargs": {"max_update": 4, "base_lr": 1.0, "pwr": 2, "final_lr": 0.1},
        "calls": list(range(7)),
    },
    {
        "scheduler": "PolyScheduler",
        "kwargs": {
            "max_update": 6,
            "base_lr": 1.0,
            "pwr": 1,
            "warmup_steps": 2,
            "warmup_begin_lr": 0.5,
            "warmup_mode": "constant",
        },
        "calls": list(range(9)),
    },
    {
        "scheduler": "PolyScheduler",
        "kwargs": {"max_update": 10, "base_lr": 0.01, "pwr": 1},
        "optimizer_learning_rate": 1.0,
        "calls": [0, 5, 10, 11],
    },
    {
        "scheduler": "PolyScheduler",
        "kwargs": {
            "max_update": 10,
            "base_lr": 0.1,
            "pwr": 0.5,
            "final_lr": 0.01,
            "warmup_steps": 3,
            "warmup_begin_lr": 0.001,
        },
        "calls": [0, 1, 2, 3, 7, 4, 10, 12, 2, 11],
    },
    {
        "scheduler": "PolyScheduler",
        "kwargs": {"max_update": 7, "base_lr": 0.3, "pwr": 3},
        "optimizer_learning_rate": 0.9,
        "calls": [20, 5, 9],
    },
    {
        "scheduler": "PolyScheduler",
        "kwargs": {"max_update": 3, "base_lr": 0.2, "warmup_steps": 3},
        "calls": [0, 2, 3, 4],
    },
    # CosineScheduler
    {
        "scheduler": "CosineScheduler",
        "kwargs": {"max_update": 4, "base_lr": 1.0},
        "calls": list(range(7)),
    },
    {
        "scheduler": "CosineScheduler",
        "kwargs": {"max_update": 20, "base_lr": 0.5, "final_lr": 0.05, "warmup_steps": 5},
        "calls": [0, 1, 2, 3, 4, 5, 10, 15, 20, 25, 12],
    },
    {
        "scheduler": "CosineScheduler",
        "kwargs": {"max_update": 9, "base_lr": 1.0, "warmup_steps": 2, "warmup_begin_lr": 0.25},
        "optimizer_learning_rate": 2.0,
        "calls": list(range(11)),
    },
    {
        "scheduler": "CosineScheduler",
        "kwargs": {"max_update": 2, "warmup_steps": 2},
        "calls": [0, 1, 2, 3],
    },
    # Constant-mode "warmup" without warmup_steps still catches a negative num_update.
    {
        "scheduler": "CosineScheduler",
        "kwargs": {
            "max_update": 3,
            "base_lr": 0.5,
            "final_lr": 0.05,
            "warmup_begin_lr": 0.125,
            "warmup_mode": "constant",
        },
        "calls": [-1, 0, 1, -0.5, 2, -3, 4],
    },
    {
        "scheduler": "FactorScheduler",
        "kwargs": {"step": 2, "factor": 0.5, "base_lr": 1.0, "warmup_mode": "constant"},
        "calls": [-2, 3, -1, 5, -0.5, 6],
    },
]


def run_case(case):
    scheduler = getattr(mx.lr_scheduler, case["scheduler"])(**case["kwargs"])
    if "optimizer_learning_rate" in case:
        mx.optimizer.SGD(learning_rate=case["optimizer_learning_rate"], lr_scheduler=scheduler)
    outputs = []
    for num_update in case["calls"]:
        try:
            outputs.append(scheduler(num_update))
        except ZeroDivisionError as error:
            outputs.append({"raises": type(error).__name__})
    return dict(case, outputs=outputs, attributes=dict(vars(scheduler)))


def main():
    path = pathlib.Path(__file__).with_name("schedulers.json")
    cases = [run_case(case) for case in CASES]
    path.write_text(json.dumps({"mxnet": mx.__version__, "cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    main()
