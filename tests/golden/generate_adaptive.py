"""Record golden trajectories of the adaptive optimizers from MXNet 1.6.0.

Covers adam, adamax, nadam, adagrad, groupadagrad, adadelta, rmsprop, ftml and ftrl, one
``tests/golden/<name>.npz`` each.  Same CLI, case format and helpers as ``generate.py``::

    /tmp/mx16/bin/python tests/golden/generate_adaptive.py            # write all nine files
    /tmp/mx16/bin/python tests/golden/generate_adaptive.py adam       # only adam.npz
    /tmp/mx16/bin/python tests/golden/generate_adaptive.py --check    # compare bytes
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mxnet.optimizer.contrib  # noqa: F401  (registers groupadagrad)
from generate import (
    AGG_ENV,
    AGG_SHAPES,
    F16,
    F32,
    F64,
    LR_DIGITS,
    MP,
    dense_case,
    direct_case,
    interleaved_case,
    main,
    mixed_stype_case,
    new_case,
    rsp_case,
    saveload_case,
    scheduler,
)

CLIP = {"rescale_grad": 0.5, "clip_gradient": 1.0}
ORDER = [0, 1, 0, 2, 1, 0, 2]
LONG_SHAPES = [(7, 3), (129,), (5,)]
# GroupAdaGrad needs 2-D weights; (65, 2) keeps rsp_case's row sets valid.
SHAPES_2D = [(3, 4), (7, 3), (5, 13)]
LONG_2D = [(7, 3), (3, 43)]
AGG_2D = [(3, 4), (7, 3), (5, 13), (2, 65)] * 2
RSP_2D = [(7, 3), (65, 2)]

# Which weight dtypes MXNet accepts without multi_precision (spec §0.7).
ALL_DTYPES = [F32, F64, F16]
F32_ONLY = [F32]


class Opt:
    """Per-optimizer settings for the shared case list."""

    def __init__(
        self,
        name,
        base,
        hyper,
        *,
        dtypes,
        shapes=None,
        agg_shapes=AGG_SHAPES,
        rsp_shapes=None,
        uses_lr=True,
        own_lr=False,
        uses_t=False,
        pyclip=False,
        rsp_wd=True,
    ):
        self.name = name
        self.base = base  # learning_rate/wd used by most cases
        self.rsp_base = base if rsp_wd else {k: v for k, v in base.items() if k != "wd"}
        self.hyper = hyper  # non-default optimizer-specific hyper-parameters
        self.dtypes = dtypes
        self.shapes = shapes  # None -> generate.DENSE_SHAPES
        self.agg_shapes = agg_shapes
        self.rsp_shapes = rsp_shapes
        self.uses_lr = uses_lr
        self.own_lr = own_lr  # class passes its own learning_rate default to the base
        self.uses_t = uses_t  # the math depends on the per-index update count
        self.pyclip = pyclip  # Python-side optimizer: clip whenever clip_gradient is not None

    def ckw(self, shapes=None):
        s = shapes or self.shapes
        return {} if s is None else {"shapes": s}


def shared_cases(o):
    """Cases every adaptive optimizer runs (with its own base settings)."""
    opt, base = o.name, o.base
    tags = {F32: "f32", F64: "f64", F16: "f16"}
    cases = []
    for dt in o.dtypes:
        cases.append(
            dense_case(
                f"dense_{tags[dt]}",
                opt,
                {**base, **CLIP},
                [dt] * 3,
                doc=f"{tags[dt]} weights, rescale 0.5, clip 1.0",
                **o.ckw(),
            )
        )
    cases += [
        dense_case(
            "noclip_rs2",
            opt,
            {**base, "rescale_grad": 2.0},
            [F32] * 3,
            doc="rescale 2, no clip",
            **o.ckw(),
        ),
        dense_case(
            "long_shapes",
            opt,
            {**base, **CLIP},
            [F32] * 2,
            doc="shapes " + ", ".join(map(str, (LONG_2D if o.shapes else LONG_SHAPES)[:2])),
            **o.ckw(LONG_2D if o.shapes else LONG_SHAPES),
        ),
        dense_case(
            "hyper",
            opt,
            {**base, **CLIP, **o.hyper},
            [F32, F32],
            steps=4,
            doc="non-default hyper-parameters " + ", ".join(o.hyper),
            **o.ckw(),
        ),
        dense_case(
            "defaults",
            opt,
            {},
            [F32] * 2,
            doc="class defaults only",
            **o.ckw(),
        ),
        dense_case(
            "clip_zero",
            opt,
            {**base, "clip_gradient": 0.0},
            [F32] * 2,
            doc="clip_gradient=0: "
            + ("Python clip to [0, 0]" if o.pyclip else "falsy, not passed to the kernel"),
            **o.ckw(),
        ),
        dense_case(
            "clip_neg",
            opt,
            {**base, "rescale_grad": 0.5, "clip_gradient": -1.0},
            [F32] * 2,
            doc="clip_gradient=-1: "
            + ("Python clip with lo=1, hi=-1" if o.pyclip else "kernel clipping disabled"),
            **o.ckw(),
        ),
        dense_case(
            "mp_f16",
            opt,
            {**base, **CLIP, **MP},
            [F16] * 3,
            doc="f16 weights, multi_precision: generic (w32, inner) state",
            **o.ckw(),
        ),
        dense_case(
            "mp_f16_hyper",
            opt,
            {**base, "rescale_grad": 0.37, **o.hyper, **MP},
            [F16] * 2,
            steps=4,
            doc="multi_precision f16 with non-default hyper-parameters",
            **o.ckw(),
        ),
        dense_case(
            "mp_flag_f32",
            opt,
            {**base, **CLIP, **MP},
            [F32, F64] if F64 in o.dtypes else [F32],
            doc="multi_precision=True on non-f16 weights behaves as without",
            **o.ckw(),
        ),
        rsp_case(
            "mp_rsp",
            opt,
            {**o.rsp_base, **CLIP, **MP},
            F16,
            doc="multi_precision f16 with row-sparse grads (fp32 master)",
            **({} if o.rsp_shapes is None else {"shapes": o.rsp_shapes}),
        ),
    ]
    # list (aggregated-style) Updater calls: MXNet updates tensor by tensor
    if F64 in o.dtypes:
        agg_dtypes = [F32, F64, F16, F32, F64, F32]
        agg_mp_dtypes = [F16, F32, F16, F64, F16]
    else:
        agg_dtypes = [F32] * 6
        agg_mp_dtypes = [F16, F32, F16, F16, F32]
    agg_envs = (
        ({}, "default", 6, 3),
        ({AGG_ENV: "2"}, "size2", 4, 3),
        ({AGG_ENV: "0"}, "size0", 3, 2),
    )
    for env, tag, n, steps in agg_envs:
        cases.append(
            dense_case(
                f"agg_{tag}",
                opt,
                {**base, **CLIP},
                agg_dtypes[:n],
                steps=steps,
                listed=True,
                shapes=o.agg_shapes,
                env=env,
                doc=f"list-index Updater calls, aggregation env {env or 'unset'}",
            )
        )
    cases.append(
        dense_case(
            "agg_mp_size2",
            opt,
            {**base, **CLIP, **MP},
            agg_mp_dtypes,
            listed=True,
            shapes=o.agg_shapes,
            env={AGG_ENV: "2"},
            doc="list-index calls, multi-precision f16 mixed with other dtypes",
        )
    )
    # names and multipliers
    cases.append(
        dense_case(
            "mult_names",
            opt,
            {**base, **CLIP, "wd": 0.1} if "wd" in base else {**base, **CLIP},
            [F32] * 4,
            shapes=o.agg_shapes,
            param_idx2name={0: "fc1_weight", 1: "fc1_bias", 2: "bn1_gamma", 3: "extra"},
            lr_mult={0: 2.0, "fc1_bias": 0.5, "extra": 3.0},
            wd_mult={"bn1_gamma": 2.0, 3: 0.25},
            doc="param_idx2name suffix rules + lr/wd multipliers by index and by name",
        )
    )
    # schedulers and counting
    if o.uses_lr:
        lr_free = {k: v for k, v in base.items() if k != "learning_rate"}
        cases += [
            dense_case(
                "sched_factor",
                opt,
                lr_free,
                [F32],
                steps=5,
                scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.2),
                doc="FactorScheduler, learning_rate not given"
                + (" (the class default overwrites base_lr)" if o.own_lr else ""),
                **o.ckw(),
            ),
            dense_case(
                "sched_lr_override",
                opt,
                {**base, "learning_rate": 0.05},
                [F32],
                steps=4,
                scheduler=scheduler("FactorScheduler", step=1, factor=0.9, base_lr=1.0),
                doc="learning_rate given together with a scheduler",
                **o.ckw(),
            ),
            dense_case(
                "sched_multifactor",
                opt,
                {**base, "learning_rate": 0.3},
                [F32],
                steps=5,
                scheduler=scheduler("MultiFactorScheduler", step=[2, 4], factor=0.3, base_lr=0.3),
                doc="MultiFactorScheduler",
                **o.ckw(),
            ),
        ]
    if o.uses_lr or o.uses_t:
        cases.append(
            dense_case(
                "begin_num_update",
                opt,
                {**base, **CLIP, "begin_num_update": 5},
                [F32, F32],
                scheduler=scheduler("FactorScheduler", step=3, factor=0.7, base_lr=0.3)
                if o.uses_lr
                else None,
                doc="begin_num_update=5" + (" with FactorScheduler" if o.uses_lr else ""),
                **o.ckw(),
            )
        )
    cases += [
        interleaved_case(
            opt,
            {**base, **CLIP},
            ORDER,
            scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.3)
            if o.uses_lr
            else None,
            doc="indices 0,1,0,2,1,0,2" + (" with a FactorScheduler" if o.uses_lr else ""),
            **o.ckw(),
        ),
        # save/load
        saveload_case(
            "saveload_dump",
            opt,
            {**base, **CLIP, **MP},
            [F32, F16, F32],
            [0, 1, 0, 2],
            [1, 2, 0],
            dump_optimizer=True,
            scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.3)
            if o.uses_lr
            else None,
            doc="get_states(dump_optimizer=True): counts, scheduler"
            + (", m_schedule" if opt == "nadam" else "")
            + " and MP states travel",
            **o.ckw(),
        ),
    ]
    nodump = saveload_case(
        "saveload_nodump",
        opt,
        {**base, **CLIP, **MP},
        [F16, F32] if F64 not in o.dtypes else [F16, F64],
        [0, 1, 0, 1],
        [0, 1, 0],
        dump_optimizer=False,
        doc="get_states(dump_optimizer=False): only the states travel"
        + ("; the fresh optimizer restarts the update counts" if o.uses_t else ""),
        **o.ckw(),
    )
    nodump.save_load_restarts = o.uses_t
    cases.append(nodump)
    # direct Optimizer calls
    cases.append(
        direct_case(
            "direct_update",
            opt,
            {**base, **CLIP},
            "update",
            [F32, F64] if F64 in o.dtypes else [F32],
            doc="opt.update(index, weight, grad, state)",
            **o.ckw(),
        )
    )
    cases.append(
        direct_case(
            "direct_mp",
            opt,
            {**base, **CLIP, **MP},
            "update_multi_precision",
            [F16, F32, F16],
            doc="create_state_multi_precision + update_multi_precision, f16 and f32",
            **o.ckw(),
        )
    )
    if F16 in o.dtypes:
        cases.append(
            direct_case(
                "direct_mp_noflag",
                opt,
                {**base, **CLIP},
                "update_multi_precision",
                [F16] * 2,
                doc="update_multi_precision on f16 with multi_precision=False",
                **o.ckw(),
            )
        )
    return cases


def rsp_fallback_cases(o, kwargs):
    """Row-sparse grads through MXNet's dense fallback (f32, and f16 where accepted)."""
    cases = [
        rsp_case("rsp_f32", o.name, {**kwargs, **CLIP}, F32, doc="row-sparse grads, densified"),
    ]
    if F16 in o.dtypes:
        cases.append(
            rsp_case(
                "rsp_f16",
                o.name,
                {**kwargs, **CLIP, "wd": 0.5},
                F16,
                doc="row-sparse grads, f16 (wd 0.5 keeps the zero rows' state above f16 underflow)",
            )
        )
    return cases


# --------------------------------------------------------------------------------------------
# Per optimizer
# --------------------------------------------------------------------------------------------


def adam_cases():
    o = Opt(
        "adam",
        {"learning_rate": 0.05, "wd": 0.01},
        {"beta1": 0.8, "beta2": 0.99, "epsilon": 1e-3},
        dtypes=ALL_DTYPES,
        own_lr=True,
        uses_t=True,
    )
    cases = shared_cases(o)
    for lazy, tag in ((True, "lazy"), (False, "std")):
        rsp = {**o.base, "wd": 0.05, "lazy_update": lazy}
        cases += [
            rsp_case(f"rsp_{tag}", "adam", rsp, F32, doc=f"row-sparse, {tag}, no clip"),
            rsp_case(
                f"rsp_{tag}_clip",
                "adam",
                {**rsp, **CLIP},
                F32,
                doc=f"row-sparse, {tag}, rescale 0.5 clip 1.0",
            ),
            rsp_case(
                f"rsp_{tag}_f16",
                "adam",
                {**rsp, **CLIP, "wd": 0.5},
                F16,
                doc=f"row-sparse, {tag}, f16 without MP, wd 0.5 (no f16 underflow to 0/0)",
            ),
            mixed_stype_case(
                f"agg_mixed_stype_{tag}",
                "adam",
                {**rsp, **CLIP},
                doc=f"one list call mixing dense and row-sparse ({tag}) grads",
            ),
        ]
    cases += [
        dense_case(
            "lr_digits",
            "adam",
            {**o.base, "learning_rate": LR_DIGITS, **CLIP},
            ALL_DTYPES,
            doc="the corrected lr reaches the kernel through MXNet's scalar parser",
        ),
        rsp_case(
            "mp_rsp_std",
            "adam",
            {**o.base, **CLIP, "lazy_update": False, **MP},
            F16,
            doc="multi_precision f16, row-sparse grads, lazy_update=False",
        ),
    ]
    saveload_rsp = rsp_case(
        "saveload_rsp_lazy",
        "adam",
        {**o.base, "wd": 0.05},
        F32,
        doc="row-sparse lazy across a save/load with the optimizer dumped",
    )
    saveload_rsp.calls.insert(4, {"kind": "save_load", "dump_optimizer": True})
    cases.append(saveload_rsp)
    direct_rsp = new_case(
        "direct_rsp_lazy",
        "adam",
        {**o.base, **CLIP},
        [F32],
        [(7, 3)],
        mode="direct",
        state_init="create_state",
        doc="opt.update with a row-sparse grad (lazy)",
    )
    for rows in ([2, 3], [], [0, 6], [2]):
        direct_rsp.call(0, [0], [direct_rsp.rsp(0, rows)], kind="update")
    cases.append(direct_rsp)
    return cases


def adamax_cases():
    o = Opt(
        "adamax",
        {"learning_rate": 0.05, "wd": 0.01},
        {"beta1": 0.7, "beta2": 0.95},
        dtypes=ALL_DTYPES,
        own_lr=True,
        uses_t=True,
        pyclip=True,
    )
    cases = shared_cases(o) + rsp_fallback_cases(o, {**o.base})
    nan = new_case(
        "zero_grad_nan",
        "adamax",
        {"learning_rate": 0.05},
        [F32, F64],
        doc="exact-zero gradient coordinates at step 1 with wd=0: 0/0 = NaN (deliberate)",
    )
    for _ in range(3):
        for k in range(2):
            g = nan.dense(k)
            g[::2] = 0
            nan.call(k, [k], [g])
    cases.append(nan)
    return cases


def nadam_cases():
    o = Opt(
        "nadam",
        {"learning_rate": 0.05, "wd": 0.01},
        {"beta1": 0.8, "beta2": 0.99, "epsilon": 1e-3, "schedule_decay": 0.1},
        dtypes=ALL_DTYPES,
        own_lr=True,
        uses_t=True,
        pyclip=True,
    )
    cases = shared_cases(o) + rsp_fallback_cases(o, {**o.base})
    one = new_case(
        "single_index",
        "nadam",
        {**o.base, **CLIP, "schedule_decay": 0.05},
        [F32, F64],
        doc="each weight alone for 4 steps, then the other (shared m_schedule)",
    )
    one.step_each([0, 0, 0, 0, 1, 1, 0])
    cases.append(one)
    return cases


def ftml_cases():
    o = Opt(
        "ftml",
        {"learning_rate": 0.05, "wd": 0.01},
        {"beta1": 0.8, "beta2": 0.99, "epsilon": 1e-3},
        dtypes=ALL_DTYPES,
        uses_t=True,
    )
    return [
        *shared_cases(o),
        *rsp_fallback_cases(o, {**o.base}),
        dense_case(
            "lr_digits",
            "ftml",
            {**o.base, "learning_rate": LR_DIGITS},
            [F32, F64],
            doc="lr through MXNet's scalar (f32) parser",
        ),
        dense_case(
            "epsilon_digits",
            "ftml",
            {**o.base, "epsilon": 2.96648003206089},
            [F64, F32],
            doc="epsilon, a double parameter, through MXNet's parser (not correctly rounded)",
        ),
    ]


def rmsprop_cases():
    o = Opt(
        "rmsprop",
        {"learning_rate": 0.01, "wd": 0.01},
        {"gamma1": 0.8, "gamma2": 0.7, "epsilon": 1e-3, "centered": True},
        dtypes=F32_ONLY,
        own_lr=True,
    )
    cases = shared_cases(o) + rsp_fallback_cases(o, {**o.base})
    cases += [
        dense_case(
            "centered",
            "rmsprop",
            {**o.base, **CLIP, "centered": True},
            [F32] * 3,
            steps=4,
            doc="centered=True (rmspropalex_update), default gammas",
        ),
        dense_case(
            "clip_weights",
            "rmsprop",
            {"learning_rate": 0.3, "wd": 0.01, "clip_weights": 0.8},
            [F32] * 3,
            doc="clip_weights=0.8 clips the updated weights",
        ),
        dense_case(
            "centered_clip_weights",
            "rmsprop",
            {"learning_rate": 0.3, "wd": 0.01, **CLIP, "centered": True, "clip_weights": 0.8},
            [F32] * 3,
            doc="centered with clip_weights",
        ),
        dense_case(
            "clip_weights_zero",
            "rmsprop",
            {"learning_rate": 0.3, "clip_weights": 0.0},
            [F32] * 2,
            doc="clip_weights=0 is falsy: not passed, no weight clip",
        ),
        dense_case(
            "mp_centered",
            "rmsprop",
            {**o.base, **CLIP, "centered": True, **MP},
            [F16] * 3,
            doc="multi_precision f16, centered",
        ),
        rsp_case(
            "rsp_centered",
            "rmsprop",
            {**o.base, **CLIP, "centered": True},
            F32,
            doc="centered with row-sparse grads (densified)",
        ),
    ]
    return cases


def ftrl_cases():
    o = Opt(
        "ftrl",
        {"learning_rate": 0.2, "wd": 0.01},
        {"lamda1": 0.05, "beta": 0.5},
        dtypes=F32_ONLY,
    )
    cases = shared_cases(o) + rsp_fallback_cases(o, {**o.base})
    cases += [
        dense_case(
            "lr_default",
            "ftrl",
            {"wd": 0.01, "lamda1": 0.02},
            [F32] * 2,
            doc="learning_rate not given: Ftrl's own 0.1",
        ),
        dense_case(
            "sched_lr_ignored",
            "ftrl",
            {"learning_rate": 0.05, "wd": 0.01},
            [F32],
            steps=4,
            scheduler=scheduler("FactorScheduler", step=1, factor=0.9, base_lr=1.0),
            doc="learning_rate is not forwarded to the base: the scheduler's base_lr wins",
        ),
        dense_case(
            "lamda1_large",
            "ftrl",
            {"learning_rate": 0.5, "lamda1": 1.0, **CLIP},
            [F32] * 3,
            steps=4,
            doc="lamda1=1: many weights become (signed) zero",
        ),
    ]
    return cases


def adagrad_cases():
    o = Opt(
        "adagrad",
        {"learning_rate": 0.1, "wd": 0.01},
        {"eps": 1e-2},
        dtypes=F32_ONLY,
        pyclip=True,
        rsp_wd=False,
    )
    cases = shared_cases(o)
    sparse = {"learning_rate": 0.1, "wd": 0.0}
    cases += [
        rsp_case("rsp", "adagrad", sparse, F32, doc="sparse kernel (wd=0), no clip"),
        rsp_case(
            "rsp_clip", "adagrad", {**sparse, **CLIP}, F32, doc="sparse kernel, rescale and clip"
        ),
        rsp_case(
            "rsp_clip_neg_eps",
            "adagrad",
            {**sparse, "rescale_grad": 2.0, "clip_gradient": -1.0, "eps": 1e-2},
            F32,
            doc="sparse kernel, clip_gradient=-1 (kernel clip disabled), eps=1e-2",
        ),
        rsp_case(
            "rsp_names_wd",
            "adagrad",
            {"learning_rate": 0.1, "wd": 0.05, **CLIP},
            F32,
            param_idx2name={0: "fc_bias", 1: "emb_bias"},
            doc="global wd but *_bias names resolve wd to 0: sparse kernel",
        ),
        mixed_stype_case(
            "agg_mixed_stype",
            "adagrad",
            {**sparse, **CLIP},
            doc="one list call mixing dense (Python ops) and row-sparse (kernel) grads",
        ),
    ]
    saveload_rsp = rsp_case(
        "saveload_rsp", "adagrad", {**sparse, **CLIP}, F32, doc="sparse kernel across a save/load"
    )
    saveload_rsp.calls.insert(4, {"kind": "save_load", "dump_optimizer": False})
    cases.append(saveload_rsp)
    return cases


def groupadagrad_cases():
    o = Opt(
        "groupadagrad",
        {"learning_rate": 0.1},
        {"eps": 1e-2},
        dtypes=F32_ONLY,
        shapes=SHAPES_2D,
        agg_shapes=AGG_2D,
        rsp_shapes=RSP_2D,
        pyclip=True,
    )
    cases = shared_cases(o)
    base = o.base
    cases += [
        rsp_case("rsp", "groupadagrad", base, F32, RSP_2D, doc="sparse kernel, no clip"),
        rsp_case(
            "rsp_clip", "groupadagrad", {**base, **CLIP}, F32, RSP_2D, doc="sparse kernel, clip"
        ),
        rsp_case(
            "rsp_clip_neg_eps",
            "groupadagrad",
            {**base, "rescale_grad": 2.0, "clip_gradient": -1.0, "eps": 1e-2},
            F32,
            RSP_2D,
            doc="sparse kernel, clip_gradient=-1 (kernel clip disabled), eps=1e-2",
        ),
        dense_case(
            "names_wd",
            "groupadagrad",
            {**base, **CLIP, "wd": 0.05},
            [F32] * 3,
            shapes=SHAPES_2D,
            param_idx2name={0: "fc_bias", 1: "bn_beta", 2: "x_bias"},
            doc="global wd but *_bias/*_beta names resolve wd to 0",
        ),
        dense_case(
            "clip_digits",
            "groupadagrad",
            {**base, "clip_gradient": LR_DIGITS},
            [F32] * 3,
            shapes=SHAPES_2D,
            doc="dense pyclip: the clip operator parses its bound as f32 (MXNet's parser)",
        ),
    ]
    return cases


def adadelta_cases():
    o = Opt(
        "adadelta",
        {"wd": 0.01},
        {"rho": 0.7, "epsilon": 1e-3},
        dtypes=F32_ONLY,
        uses_lr=False,
        pyclip=True,
    )
    cases = shared_cases(o) + rsp_fallback_cases(o, {**o.base})
    cases.append(
        dense_case(
            "lr_ignored",
            "adadelta",
            {"learning_rate": 5.0, "wd": 0.01},
            [F32] * 2,
            scheduler=scheduler("FactorScheduler", step=1, factor=0.5, base_lr=5.0),
            lr_mult={0: 10.0},
            doc="learning_rate, scheduler and lr_mult have no effect",
        )
    )
    return cases


FILES = {
    "adam": adam_cases,
    "adamax": adamax_cases,
    "nadam": nadam_cases,
    "adagrad": adagrad_cases,
    "groupadagrad": groupadagrad_cases,
    "adadelta": adadelta_cases,
    "rmsprop": rmsprop_cases,
    "ftml": ftml_cases,
    "ftrl": ftrl_cases,
}

if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main(files=FILES))
