"""Record golden trajectories from MXNet 1.6.0 for lars, lamb, lbsgd, signum, dcasgd and sgld.

Run with the MXNet 1.6.0 oracle interpreter (see README.md next to this file)::

    /tmp/mx16/bin/python tests/golden/generate_layerwise.py            # all files
    /tmp/mx16/bin/python tests/golden/generate_layerwise.py lars norms.json
    /tmp/mx16/bin/python tests/golden/generate_layerwise.py --check    # regenerate, diff

The case machinery (``Case``, ``record``, the npz writer, the CLI) is the one of
``generate.py``; this file only describes the cases.  It also writes ``norms.json``: MXNet's
``nd.norm()`` and ``multi_sum_sq`` results, as exact bit patterns, for deterministic arrays
that a test rebuilds from the formula stored in the file (no array data is stored).

SGLD adds ``N(0, sqrt(lr))`` noise from MXNet's global RNG, which cannot be reproduced bit for
bit.  While this generator runs, the ``normal`` sampler of ``mxnet.optimizer.optimizer`` (used
by SGLD only) is replaced by zeros of the requested shape/dtype, and every sgld case carries
``"noise": false`` in its meta: the replay sets ``opt.add_noise = False``.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from generate import (
    AGG_ENV,
    BASE,
    CLIP,
    DENSE_SHAPES,
    DTYPE_TAGS,
    F16,
    F32,
    F64,
    HERE,
    LR_DIGITS,
    MOM,
    MP,
    dense_case,
    direct_case,
    interleaved_case,
    mx,
    new_case,
    rsp_case,
    saveload_case,
    scheduler,
)
from generate import main as generate_main

# Five weights covering chunk edges: (5,), (3, 4), (65,), (7, 3) and one longer (129,).
LW_SHAPES = [(5,), (3, 4), (65,), (7, 3), (129,)]


def sweep_shapes(dtype):
    """The dtype sweeps use all of LW_SHAPES except for f64 (size): there the first three."""
    return DENSE_SHAPES if dtype == F64 else LW_SHAPES


LIST_SHAPES = [(5,), (3, 4), (65,), (7, 3), (5,), (2, 3), (9,)]
LIST_DTYPES = [F32, F64, F16, F32, F32, F16, F64]
SIZE2 = {AGG_ENV: "2"}
RS_ODD = {"rescale_grad": 0.37}


def _restarts(case):
    """A save/load without the optimizer restarts counts: do not compare with the plain run."""
    case.save_load_restarts = True
    return case


def _saveload_pair(opt, kwargs, dtypes, *, restarts_without_dump, sched=None):
    """save/load without and with ``dump_optimizer``."""
    common = {"scheduler": sched} if sched else {}
    plain = saveload_case(
        "saveload",
        opt,
        kwargs,
        dtypes,
        [0, 1, 2] * 2,
        [0, 1, 2] * 2,
        dump_optimizer=False,
        doc="get_states() without the optimizer, fresh optimizer + updater, set_states",
        **common,
    )
    if restarts_without_dump:
        _restarts(plain)
    dumped = saveload_case(
        "saveload_dump",
        opt,
        kwargs,
        dtypes,
        [0, 1, 2] * 2,
        [0, 1, 2] * 2,
        dump_optimizer=True,
        doc="get_states(dump_optimizer=True) round trip",
        **common,
    )
    return [plain, dumped]


def _named_list_case(name, opt, kwargs, names, *, listed=True, steps=3, **ckw):
    """One weight per ``names`` entry (shapes LIST_SHAPES); list or scalar Updater calls."""
    c = new_case(
        name,
        opt,
        kwargs,
        [F32] * len(names),
        LIST_SHAPES,
        param_idx2name=dict(enumerate(names)),
        **ckw,
    )
    for _ in range(steps):
        (c.step_all if listed else c.step_each)()
    return c


LARS_NAMES = ["fc1_weight", "fc1_bias", "bn1_gamma", "bn1_beta", "conv_w", "xgamma", "fc2_weight"]


# --------------------------------------------------------------------------------------------
# LARS
# --------------------------------------------------------------------------------------------


def lars_cases():
    opt = "lars"
    eta = {"eta": 0.05, "eps": 1e-3}
    mom_clip = {**BASE, **MOM, **CLIP, **eta}
    sched = scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.2)
    cases = []
    for dt, tag in DTYPE_TAGS:
        cases += [
            dense_case(
                f"dense_{tag}_mom0",
                opt,
                BASE,
                [dt] * 3,
                doc=f"{tag}, default eta/eps, no momentum, scalar-index Updater calls",
            ),
            dense_case(
                f"dense_{tag}_mom09",
                opt,
                mom_clip,
                [dt] * 5,
                shapes=sweep_shapes(dt),
                doc=f"{tag}, eta 0.05, eps 1e-3, momentum 0.9, rescale 0.5, clip 1",
            ),
        ]
    cases += [
        dense_case(
            "mp_f16_mom0",
            opt,
            {**BASE, **eta, **MP},
            [F16] * 3,
            doc="native multi-precision f16, no momentum (norms from the f16 weights)",
        ),
        dense_case(
            "mp_f16_mom09",
            opt,
            {**mom_clip, **MP},
            [F16] * 5,
            shapes=LW_SHAPES,
            doc="native multi-precision f16, momentum, clip",
        ),
        dense_case(
            "mp_flag_f32",
            opt,
            {**mom_clip, **MP},
            [F32, F64],
            doc="multi_precision=True on f32/f64 weights",
        ),
        dense_case(
            "rs_neg_dense",
            opt,
            {**BASE, **MOM, **eta, "rescale_grad": -0.5},
            [F32] * 3,
            doc="negative rescale_grad, dense path: sqrt(gss)*rs < 0 in the LARS ratio",
        ),
        rsp_case(
            "rs_neg_rsp",
            opt,
            {**BASE, **MOM, **eta, "rescale_grad": -0.5},
            F32,
            doc="negative rescale_grad, sparse path: norm(rs*g) > 0",
        ),
        dense_case(
            "eta_eps",
            opt,
            {**BASE, "eta": 0.3, "eps": 0.5, "rescale_grad": 2.0},
            [F32, F64, F16],
            doc="large eta and eps, rescale 2",
        ),
        dense_case(
            "clip_neg",
            opt,
            {**BASE, **MOM, **eta, "clip_gradient": -1.0},
            [F32] * 3,
            doc="negative clip_gradient: passed to the kernel, no clipping",
        ),
    ]
    for lazy, tag in ((True, "lazy"), (False, "std")):
        rsp = {**BASE, **eta, "wd": 0.05, "lazy_update": lazy}
        cases += [
            rsp_case(f"rsp_{tag}_mom0", opt, rsp, F32, doc=f"row-sparse, {tag}, no momentum"),
            rsp_case(
                f"rsp_{tag}_mom09",
                opt,
                {**rsp, **MOM, **CLIP},
                F32,
                doc=f"row-sparse, {tag}, momentum 0.9, clip",
            ),
        ]
    cases += [
        rsp_case(
            "rsp_std_f64_mom0",
            opt,
            {**BASE, "wd": 0.17733637300995914, "lazy_update": False, "eta": 1.0},
            F64,
            doc="sparse path, std, no momentum: sgd_update's decay factor computed in f32",
        ),
        rsp_case(
            "rsp_lr_digits",
            opt,
            {**BASE, **MOM, "learning_rate": LR_DIGITS, "eta": 1.0},
            F64,
            doc="sparse path: _get_lars' Python float lr through MXNet's scalar parser",
        ),
        dense_case(
            "lr_digits",
            opt,
            {**BASE, **MOM, "learning_rate": LR_DIGITS, "eta": 1.0},
            [F32, F64],
            param_idx2name={0: "fc_weight", 1: "fc_bias"},
            doc="dense path: lrs as a float32 NDArray (a direct cast), bias not LARS-scaled",
        ),
        rsp_case(
            "rsp_lazy_f64_mom09",
            opt,
            {**mom_clip, "wd": 0.05},
            F64,
            doc="row-sparse lazy f64 with momentum",
        ),
        rsp_case(
            "rsp_std_f16_mom09",
            opt,
            {**mom_clip, "wd": 0.05, "lazy_update": False},
            F16,
            doc="row-sparse std f16 without MP",
        ),
        rsp_case(
            "mp_rsp_mom09",
            opt,
            {**mom_clip, "wd": 0.05, **MP},
            F16,
            doc="multi-precision f16 with row-sparse grads (sparse LARS path, mp_sgd kernels)",
        ),
        rsp_case(
            "rsp_names",
            opt,
            {**mom_clip, "wd": 0.05},
            F32,
            param_idx2name={0: "emb_weight", 1: "out_bias"},
            doc="row-sparse path with a LARS-scaled _weight and an excluded bias",
        ),
        # list calls: LARS aggregates (multi_sum_sq / multi_lars over the whole list)
        *(
            dense_case(
                f"agg_{tag}_mom09",
                opt,
                mom_clip,
                LIST_DTYPES,
                listed=True,
                shapes=LIST_SHAPES,
                env=env,
                doc=f"list Updater calls, mixed dtypes, aggregation env {env or 'unset'}",
            )
            for env, tag in (({}, "default"), (SIZE2, "size2"))
        ),
        dense_case(
            "agg_default_mom0",
            opt,
            {**BASE, **eta},
            [F32] * 7,
            listed=True,
            shapes=LIST_SHAPES,
            doc="list calls, f32, no momentum",
        ),
        dense_case(
            "agg_mp_size2",
            opt,
            {**mom_clip, **MP},
            [F16, F32, F16, F16, F64, F16, F16],
            listed=True,
            shapes=LIST_SHAPES,
            env=SIZE2,
            doc="list calls, multi-precision f16 mixed with f32/f64, chunks of 2",
        ),
        _named_list_case(
            "names_list",
            opt,
            {**mom_clip, "wd": 0.1},
            LARS_NAMES,
            doc="param_idx2name: exclusion by suffix gamma/beta/bias (reordering), wd only for "
            "_weight names; list calls",
        ),
        _named_list_case(
            "names_list_size2",
            opt,
            {**mom_clip, "wd": 0.1},
            LARS_NAMES,
            env=SIZE2,
            doc="as names_list in chunks of 2 (chunks follow the LARS-first order)",
        ),
        _named_list_case(
            "names_scalar",
            opt,
            {**mom_clip, "wd": 0.1},
            LARS_NAMES,
            listed=False,
            doc="param_idx2name with scalar-index Updater calls",
        ),
        _named_list_case(
            "names_mult",
            opt,
            {**mom_clip, "wd": 0.1},
            LARS_NAMES,
            lr_mult={0: 2.0, "fc1_bias": 0.5},
            wd_mult={"fc2_weight": 3.0, "bn1_gamma": 2.0, 4: 0.5},
            doc="lr/wd multipliers on top of the LARS wd rule",
        ),
        dense_case(
            "mult_no_names",
            opt,
            {**BASE, **eta, "wd": 0.1},
            [F32] * 3,
            lr_mult={1: 0.1},
            wd_mult={0: 0.0, 2: 5.0},
            doc="index-keyed multipliers without param_idx2name",
        ),
        dense_case(
            "sched_momcorr",
            opt,
            {"wd": 0.01, **MOM, **eta},
            [F32] * 2,
            steps=5,
            scheduler=sched,
            doc="FactorScheduler: momentum * cur_lr / last_lr (momentum_correction=True)",
        ),
        dense_case(
            "sched_momcorr_list",
            opt,
            {"wd": 0.01, **MOM, **eta},
            [F32] * 3,
            steps=5,
            listed=True,
            scheduler=scheduler("MultiFactorScheduler", step=[2, 3], factor=0.3, base_lr=0.2),
            doc="MultiFactorScheduler with list calls and momentum correction",
        ),
        dense_case(
            "sched_nocorr",
            opt,
            {"wd": 0.01, **MOM, **eta, "momentum_correction": False},
            [F32] * 2,
            steps=5,
            scheduler=sched,
            doc="FactorScheduler, momentum_correction=False",
        ),
        rsp_case(
            "sched_rsp_momcorr",
            opt,
            {"wd": 0.05, **MOM, **eta, "lazy_update": False},
            F32,
            scheduler=scheduler("FactorScheduler", step=1, factor=0.8, base_lr=0.2),
            doc="row-sparse std path with a scheduler and momentum correction",
        ),
        interleaved_case(opt, mom_clip, [0, 1, 0, 2, 1, 0, 2], doc="indices 0,1,0,2,1,0,2"),
        *_saveload_pair(opt, {**mom_clip, **MP}, [F32, F64, F16], restarts_without_dump=False),
        saveload_case(
            "saveload_dump_sched",
            opt,
            {"wd": 0.01, **MOM, **eta},
            [F32, F64, F32],
            [0, 1, 2] * 2,
            [0, 1, 2] * 2,
            dump_optimizer=True,
            scheduler=scheduler("FactorScheduler", step=3, factor=0.5, base_lr=0.2),
            doc="dump_optimizer=True keeps cur_lr/last_lr and counts",
        ),
        direct_case("direct_update", opt, mom_clip, "update", [F32, F64, F32], doc="opt.update"),
        direct_case(
            "direct_mp",
            opt,
            {**mom_clip, **MP},
            "update_multi_precision",
            [F16, F32, F16],
            doc="update_multi_precision direct, f16 + f32",
        ),
        direct_case(
            "direct_list",
            opt,
            mom_clip,
            "update",
            [F32] * 3,
            listed=True,
            doc="opt.update with lists",
        ),
        direct_case(
            "direct_list_mp",
            opt,
            {**mom_clip, **MP},
            "update_multi_precision",
            [F16] * 3,
            listed=True,
            doc="update_multi_precision with lists of f16 weights",
        ),
    ]
    return cases


# --------------------------------------------------------------------------------------------
# LAMB
# --------------------------------------------------------------------------------------------


def lamb_cases():
    opt = "lamb"
    clip = {**BASE, **CLIP}
    return [
        dense_case(
            "dense_f32", opt, BASE, [F32] * 5, shapes=LW_SHAPES, doc="f32, default betas/eps"
        ),
        dense_case(
            "dense_f32_clip",
            opt,
            clip,
            [F32] * 3,
            doc="rescale 0.5, clip 1",
        ),
        dense_case(
            "dense_f32_lr_default",
            opt,
            {"wd": 0.01, "rescale_grad": 0.37},
            [F32] * 3,
            steps=4,
            doc="learning_rate default 0.001",
        ),
        dense_case(
            "betas_eps",
            opt,
            {**BASE, "beta1": 0.7, "beta2": 0.95, "epsilon": 1e-3, "wd": 0.05},
            [F32] * 3,
            steps=5,
            doc="beta1 0.7, beta2 0.95, epsilon 1e-3",
        ),
        dense_case(
            "no_bias_correction",
            opt,
            {**clip, "bias_correction": False},
            [F32] * 3,
            doc="bias_correction=False",
        ),
        dense_case(
            "bounds_bind",
            opt,
            {**BASE, "lower_bound": 3.0, "upper_bound": 5.0},
            [F32] * 5,
            shapes=LW_SHAPES,
            doc="lower_bound 3 binds for the small weights, upper_bound 5 for the large ones",
        ),
        dense_case(
            "bounds_zero",
            opt,
            {**BASE, "lower_bound": 0.0, "upper_bound": 0.0},
            [F32] * 3,
            doc="bounds of 0 are falsy: not passed",
        ),
        dense_case(
            "lower_only",
            opt,
            {**BASE, "lower_bound": 9.0, "bias_correction": False},
            [F32] * 3,
            doc="lower_bound only, larger than every norm",
        ),
        dense_case("mp_f16", opt, {**BASE, **MP}, [F16] * 5, shapes=LW_SHAPES, doc="native MP"),
        dense_case(
            "mp_f16_clip",
            opt,
            {**BASE, **MP, **RS_ODD, "clip_gradient": 0.5},
            [F16] * 3,
            steps=4,
            doc="native MP: f16(g*rs) rounding then clip; master copy never written back",
        ),
        dense_case(
            "mp_f16_bounds",
            opt,
            {**BASE, **MP, "lower_bound": 3.0, "upper_bound": 5.0, "bias_correction": False},
            [F16] * 3,
            doc="native MP with bounds, no bias correction",
        ),
        dense_case(
            "mp_flag_f32", opt, {**clip, **MP}, [F32] * 3, doc="multi_precision=True on f32"
        ),
        rsp_case("rsp_f32", opt, clip, F32, doc="row-sparse grads: dense fallback"),
        rsp_case("mp_rsp", opt, {**BASE, **MP}, F16, doc="row-sparse grads, native MP"),
        dense_case(
            "updater_list",
            opt,
            clip,
            [F32] * 7,
            listed=True,
            shapes=LIST_SHAPES,
            doc="list Updater calls (MXNet does not aggregate LAMB)",
        ),
        dense_case(
            "updater_list_mp_size2",
            opt,
            {**clip, **MP},
            [F16, F32, F16, F16, F32, F16, F16],
            listed=True,
            shapes=LIST_SHAPES,
            env=SIZE2,
            doc="list calls, MP f16 mixed with f32, aggregation env 2",
        ),
        dense_case(
            "mult_names",
            opt,
            {**clip, "wd": 0.1},
            [F32] * 4,
            shapes=LIST_SHAPES,
            param_idx2name={0: "fc1_weight", 1: "fc1_bias", 2: "bn1_gamma", 3: "other"},
            lr_mult={0: 2.0, "fc1_bias": 0.5},
            wd_mult={"other": 3.0},
            doc="param_idx2name + multipliers",
        ),
        dense_case(
            "sched_factor",
            opt,
            {"wd": 0.01},
            [F32] * 2,
            steps=5,
            scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.2),
            doc="FactorScheduler (learning_rate default overwrites base_lr)",
        ),
        dense_case(
            "sched_begin",
            opt,
            {"learning_rate": 0.1, "wd": 0.01, "begin_num_update": 4},
            [F32] * 2,
            steps=3,
            scheduler=scheduler("FactorScheduler", step=3, factor=0.7, base_lr=0.3),
            doc="begin_num_update=4: t starts at 5",
        ),
        interleaved_case(opt, clip, [0, 1, 0, 2, 1, 0, 2], doc="indices 0,1,0,2,1,0,2"),
        saveload_case(
            "saveload",
            opt,
            {**BASE, "bias_correction": False, **MP},
            [F32, F16, F32],
            [0, 1, 2] * 2,
            [0, 1, 2] * 2,
            dump_optimizer=False,
            doc="save/load without the optimizer (no bias correction: counts do not matter)",
        ),
        _restarts(
            saveload_case(
                "saveload_restart",
                opt,
                clip,
                [F32] * 2,
                [0, 1] * 2,
                [0, 1] * 2,
                dump_optimizer=False,
                doc="save/load without the optimizer: t restarts at 1 after the load",
            )
        ),
        saveload_case(
            "saveload_dump",
            opt,
            {**clip, **MP},
            [F32, F16, F32],
            [0, 1, 2] * 2,
            [0, 1, 2] * 2,
            dump_optimizer=True,
            doc="dump_optimizer=True round trip, MP",
        ),
        direct_case("direct_update", opt, clip, "update", [F32] * 2, doc="opt.update direct"),
        direct_case(
            "direct_mp",
            opt,
            {**clip, **MP},
            "update_multi_precision",
            [F16, F32],
            doc="create_state_multi_precision + update_multi_precision",
        ),
    ]


# --------------------------------------------------------------------------------------------
# LBSGD
# --------------------------------------------------------------------------------------------


def lbsgd_cases():
    opt = "lbsgd"
    warm = {"warmup_epochs": 2, "updates_per_epoch": 3}  # nwup = 6
    cases = []
    for dt, tag in DTYPE_TAGS:
        cases += [
            dense_case(
                f"dense_{tag}_mom0",
                opt,
                BASE,
                [dt] * 3,
                doc=f"{tag}, defaults (batch_scale 1: multiplier 1)",
            ),
            dense_case(
                f"dense_{tag}_mom09",
                opt,
                {**BASE, **MOM, **CLIP},
                [dt] * 3,
                doc=f"{tag}, momentum 0.9, rescale 0.5, clip 1",
            ),
        ]
    for strategy in ("linear", "power2", "sqrt", "lars"):
        cases.append(
            dense_case(
                f"warmup_{strategy}_bs2",
                opt,
                {**BASE, **MOM, **CLIP, **warm, "warmup_strategy": strategy, "batch_scale": 2},
                [F32, F64],
                steps=8,
                doc=f"{strategy} warmup, batch_scale 2 (no-op odd steps), warmup ends at 6",
            )
        )
    cases += [
        dense_case(
            "warmup_linear_bs3_begin",
            opt,
            {**BASE, **warm, "batch_scale": 3, "begin_epoch": 1},
            [F32, F16],
            steps=7,
            doc="batch_scale 3, begin_epoch 1 (counts start at 4), no momentum",
        ),
        dense_case(
            "warmup_power2_bs4",
            opt,
            {
                **BASE,
                **MOM,
                "warmup_epochs": 3,
                "updates_per_epoch": 4,
                "warmup_strategy": "power2",
                "batch_scale": 4,
            },
            [F32],
            steps=16,
            doc="power2, batch_scale 4, warmup 12 updates",
        ),
        dense_case(
            "warmup_sqrt_begin_done",
            opt,
            {**BASE, **warm, "warmup_strategy": "sqrt", "batch_scale": 2, "begin_epoch": 3},
            [F32],
            steps=4,
            doc="begin_epoch past the warmup: multiplier = batch_scale from the start",
        ),
        dense_case(
            "warmup_nwup1",
            opt,
            {**BASE, "warmup_epochs": 1, "updates_per_epoch": 1, "batch_scale": 2},
            [F32],
            steps=4,
            doc="nwup = 1",
        ),
        dense_case(
            "lars_bs1",
            opt,
            {**BASE, **MOM, "warmup_strategy": "lars", "wd": 0.05},
            [F32, F64, F16],
            doc="'lars' strategy, batch_scale 1: clamped sqrt(W2/(G2+wd*W2+1e-18))",
        ),
        dense_case(
            "lars_clamp",
            opt,
            {**BASE, "warmup_strategy": "lars", "rescale_grad": 1e-3},
            [F32] * 2,
            doc="'lars' ratio clamped (norms of the raw grads vs. weights)",
        ),
        dense_case(
            "mp_f16_mom0",
            opt,
            {**BASE, **MP},
            [F16] * 3,
            doc="multi_precision: Updater's base fallback, state (w32, None)",
        ),
        dense_case(
            "mp_f16_mom09",
            opt,
            {**BASE, **MOM, **CLIP, **MP},
            [F16] * 3,
            doc="multi_precision: base fallback, state (w32, mom32)",
        ),
        dense_case(
            "mp_f16_warmup_bs2",
            opt,
            {**BASE, **MOM, **MP, **warm, "batch_scale": 2},
            [F16, F32],
            steps=6,
            doc="MP with gradient accumulation",
        ),
        rsp_case("rsp_mom0", opt, {**BASE, "wd": 0.05}, F32, doc="row-sparse: sgd_update lazy"),
        rsp_case(
            "rsp_mom09",
            opt,
            {**BASE, **MOM, **CLIP, "wd": 0.05},
            F32,
            doc="row-sparse with momentum",
        ),
        rsp_case(
            "rsp_bs2",
            opt,
            {**BASE, **MOM, "wd": 0.05, "batch_scale": 2, **warm},
            F32,
            doc="row-sparse grads accumulated over 2 steps",
        ),
        rsp_case("mp_rsp", opt, {**BASE, **MOM, **MP}, F16, doc="row-sparse, MP fallback"),
        dense_case(
            "updater_list",
            opt,
            {**BASE, **MOM, **CLIP},
            LIST_DTYPES,
            listed=True,
            shapes=LIST_SHAPES,
            doc="list Updater calls, mixed dtypes (no aggregation in MXNet)",
        ),
        dense_case(
            "updater_list_size2_bs2",
            opt,
            {**BASE, **MOM, **warm, "batch_scale": 2},
            LIST_DTYPES,
            steps=4,
            listed=True,
            shapes=LIST_SHAPES,
            env=SIZE2,
            doc="list calls, aggregation env 2, batch_scale 2",
        ),
        dense_case(
            "mult_names",
            opt,
            {**BASE, **MOM, **CLIP, "wd": 0.1},
            [F32] * 4,
            shapes=LIST_SHAPES,
            param_idx2name={0: "fc1_weight", 1: "fc1_bias", 2: "bn1_gamma", 3: "other"},
            lr_mult={0: 2.0, "fc1_bias": 0.5},
            wd_mult={"other": 3.0},
            doc="param_idx2name + multipliers",
        ),
        dense_case(
            "sched_factor",
            opt,
            {"wd": 0.01, **MOM},
            [F32] * 2,
            steps=5,
            scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.2),
            doc="scheduler sees num_update before this step's count",
        ),
        dense_case(
            "sched_bs2",
            opt,
            {"wd": 0.01, **warm, "batch_scale": 2},
            [F32],
            steps=6,
            scheduler=scheduler("FactorScheduler", step=1, factor=0.8, base_lr=0.2),
            doc="scheduler + accumulation",
        ),
        interleaved_case(
            opt,
            {**BASE, **MOM, **warm, "batch_scale": 2},
            [0, 1, 0, 2, 1, 0, 2, 1, 2],
            doc="interleaved indices with batch_scale 2",
        ),
        *_saveload_pair(
            opt,
            {**BASE, **MOM, **MP, "warmup_strategy": "lars"},
            [F32, F64, F16],
            restarts_without_dump=False,
        ),
        _restarts(
            saveload_case(
                "saveload_restart",
                opt,
                {**BASE, **MOM, **warm, "batch_scale": 2},
                [F32] * 2,
                [0, 1] * 3,
                [0, 1] * 3,
                dump_optimizer=False,
                doc="save/load without the optimizer: accumulation and warmup restart",
            )
        ),
        saveload_case(
            "saveload_dump_bs2",
            opt,
            {**BASE, **MOM, **warm, "batch_scale": 2},
            [F32] * 2,
            [0, 1] * 3,
            [0, 1] * 3,
            dump_optimizer=True,
            doc="dump_optimizer=True keeps the accumulated gradients mid-batch",
        ),
        direct_case(
            "direct_update", opt, {**BASE, **MOM, **CLIP}, "update", [F32, F64], doc="opt.update"
        ),
        direct_case(
            "direct_mp",
            opt,
            {**BASE, **MOM, **MP},
            "update_multi_precision",
            [F16, F32],
            doc="update_multi_precision direct",
        ),
    ]
    return cases


# --------------------------------------------------------------------------------------------
# Signum
# --------------------------------------------------------------------------------------------


def signum_cases():
    opt = "signum"
    mom_clip = {**BASE, **MOM, **CLIP}
    cases = []
    for dt, tag in DTYPE_TAGS:
        cases += [
            dense_case(
                f"dense_{tag}_mom0",
                opt,
                {**BASE, "momentum": 0.0, "rescale_grad": -3.0, "clip_gradient": 0.1},
                [dt] * 5,
                shapes=sweep_shapes(dt),
                doc=f"{tag}, signsgd: rescale -3 and clip 0.1 given and ignored",
            ),
            dense_case(
                f"dense_{tag}_mom09",
                opt,
                {**mom_clip, "wd_lh": 0.05},
                [dt] * 5,
                shapes=sweep_shapes(dt),
                doc=f"{tag}, momentum 0.9, rescale 0.5, clip 1, wd_lh 0.05",
            ),
        ]
    cases += [
        dense_case(
            "mom09_noclip",
            opt,
            {**BASE, **MOM, **RS_ODD},
            [F32, F64, F16],
            doc="momentum, no clip: ((1-mu)*rs)*g",
        ),
        dense_case(
            "mom05_wd_lh",
            opt,
            {**BASE, "momentum": 0.5, "wd_lh": 0.2, "wd": 0.0},
            [F32] * 3,
            doc="wd_lh only",
        ),
        dense_case(
            "defaults",
            opt,
            {},
            [F32] * 3,
            doc="learning_rate 0.01, momentum 0.9 defaults",
        ),
        dense_case(
            "mp_f16_mom0",
            opt,
            {**BASE, "momentum": 0.0, **MP},
            [F16] * 3,
            doc="multi_precision fallback, signsgd",
        ),
        dense_case(
            "mp_f16_mom09",
            opt,
            {**mom_clip, "wd_lh": 0.05, **MP},
            [F16] * 3,
            doc="multi_precision fallback, momentum",
        ),
        rsp_case("rsp_mom0", opt, {**BASE, "momentum": 0.0}, F32, doc="row-sparse: dense fallback"),
        rsp_case("rsp_mom09", opt, mom_clip, F32, doc="row-sparse with momentum"),
        dense_case(
            "updater_list",
            opt,
            mom_clip,
            LIST_DTYPES,
            listed=True,
            shapes=LIST_SHAPES,
            doc="list Updater calls, mixed dtypes",
        ),
        dense_case(
            "updater_list_size2",
            opt,
            {**BASE, "momentum": 0.0},
            LIST_DTYPES,
            listed=True,
            shapes=LIST_SHAPES,
            env=SIZE2,
            doc="list calls, aggregation env 2, signsgd",
        ),
        dense_case(
            "mult_names",
            opt,
            {**mom_clip, "wd": 0.1},
            [F32] * 4,
            shapes=LIST_SHAPES,
            param_idx2name={0: "fc1_weight", 1: "fc1_bias", 2: "bn1_gamma", 3: "other"},
            lr_mult={0: 2.0, "fc1_bias": 0.5},
            wd_mult={"other": 3.0},
            doc="param_idx2name + multipliers",
        ),
        dense_case(
            "sched_factor",
            opt,
            {"wd": 0.01, **MOM},
            [F32] * 2,
            steps=5,
            scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.2),
            doc="FactorScheduler; Signum's learning_rate default overwrites base_lr",
        ),
        interleaved_case(opt, mom_clip, [0, 1, 0, 2, 1, 0, 2], doc="indices 0,1,0,2,1,0,2"),
        *_saveload_pair(opt, {**mom_clip, **MP}, [F32, F64, F16], restarts_without_dump=False),
        direct_case("direct_update", opt, mom_clip, "update", [F32, F64], doc="opt.update"),
        direct_case(
            "direct_mp",
            opt,
            {**mom_clip, **MP},
            "update_multi_precision",
            [F16, F32],
            doc="update_multi_precision direct",
        ),
    ]
    return cases


# --------------------------------------------------------------------------------------------
# Python-side optimizers: DCASGD and SGLD
# --------------------------------------------------------------------------------------------


def _python_side_cases(opt, extra):
    """Cases shared by dcasgd and sgld (``extra``: optimizer-specific kwargs)."""
    clip = {**BASE, **CLIP, **extra}
    cases = []
    for dt, tag in DTYPE_TAGS:
        cases += [
            dense_case(
                f"dense_{tag}",
                opt,
                {**BASE, **extra},
                [dt] * 5,
                shapes=sweep_shapes(dt),
                doc=f"{tag}, no clip",
            ),
            dense_case(f"dense_{tag}_clip", opt, clip, [dt] * 3, doc=f"{tag}, rescale 0.5, clip 1"),
        ]
    return [
        *cases,
        dense_case(
            "clip_zero",
            opt,
            {**BASE, **extra, "clip_gradient": 0.0},
            [F32, F64],
            doc="pyclip with c = 0: the gradient becomes zero",
        ),
        dense_case(
            "clip_neg",
            opt,
            {**BASE, **extra, "clip_gradient": -1.0, **RS_ODD},
            [F32, F64, F16],
            doc="pyclip with c = -1: x > -1 -> -1, else 1",
        ),
        dense_case(
            "clip_digits",
            opt,
            {**BASE, **extra, "clip_gradient": LR_DIGITS},
            [F32, F64],
            doc="the clip operator parses its bound as f32, with MXNet's parser",
        ),
        dense_case(
            "rs_odd_f16",
            opt,
            {**BASE, **extra, "rescale_grad": 0.37, "clip_gradient": 0.3},
            [F16] * 3,
            doc="f16, rescale and clip not representable in f16",
        ),
        dense_case("mp_f16", opt, {**clip, **MP}, [F16] * 3, doc="multi_precision fallback"),
        dense_case(
            "mp_flag_f32", opt, {**clip, **MP}, [F32, F64], doc="multi_precision=True on f32/f64"
        ),
        rsp_case("rsp_f32", opt, clip, F32, doc="row-sparse grads"),
        rsp_case("rsp_f64", opt, {**BASE, **extra}, F64, doc="row-sparse grads, f64, no clip"),
        rsp_case("mp_rsp", opt, {**clip, **MP}, F16, doc="row-sparse grads, MP fallback"),
        dense_case(
            "updater_list",
            opt,
            clip,
            LIST_DTYPES,
            listed=True,
            shapes=LIST_SHAPES,
            doc="list Updater calls, mixed dtypes",
        ),
        dense_case(
            "updater_list_size2_mp",
            opt,
            {**clip, **MP},
            [F16, F32, F16, F16, F64, F16, F16],
            listed=True,
            shapes=LIST_SHAPES,
            env=SIZE2,
            doc="list calls, aggregation env 2, MP f16 mixed with f32/f64",
        ),
        dense_case(
            "mult_names",
            opt,
            {**clip, "wd": 0.1},
            [F32] * 4,
            shapes=LIST_SHAPES,
            param_idx2name={0: "fc1_weight", 1: "fc1_bias", 2: "bn1_gamma", 3: "other"},
            lr_mult={0: 2.0, "fc1_bias": 0.5},
            wd_mult={"other": 3.0},
            doc="param_idx2name + multipliers",
        ),
        dense_case(
            "sched_factor",
            opt,
            {"wd": 0.01, **extra},
            [F32, F64],
            steps=5,
            scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.2),
            doc="FactorScheduler",
        ),
        interleaved_case(opt, clip, [0, 1, 0, 2, 1, 0, 2], doc="indices 0,1,0,2,1,0,2"),
        *_saveload_pair(opt, {**clip, **MP}, [F32, F64, F16], restarts_without_dump=False),
        direct_case("direct_update", opt, clip, "update", [F32, F64], doc="opt.update"),
        direct_case(
            "direct_mp",
            opt,
            {**clip, **MP},
            "update_multi_precision",
            [F16, F32],
            doc="update_multi_precision direct",
        ),
    ]


def dcasgd_cases():
    return [
        *_python_side_cases("dcasgd", {}),
        dense_case(
            "lamda",
            "dcasgd",
            {**BASE, **CLIP, "lamda": 0.5},
            [F32, F64, F16],
            steps=4,
            doc="lamda 0.5 (delay compensation term visible)",
        ),
        dense_case(
            "lamda0", "dcasgd", {**BASE, "lamda": 0.0}, [F32, F64], doc="lamda 0: plain SGD"
        ),
    ]


def sgld_cases():
    return [without_noise(case) for case in _python_side_cases("sgld", {})]


def without_noise(case):
    """Mark an sgld case as recorded with the normal draw replaced by zeros."""
    meta = case.meta
    case.meta = lambda struct: {**meta(struct), "noise": False}
    return case


def _zero_noise(loc=0, scale=1, shape=None, dtype=None, ctx=None, **_):
    """Stand-in for SGLD's normal draw: zeros of the requested shape and dtype."""
    return mx.nd.zeros(shape, dtype=dtype, ctx=ctx)


FILES = {
    "lars": lars_cases,
    "lamb": lamb_cases,
    "lbsgd": lbsgd_cases,
    "signum": signum_cases,
    "dcasgd": dcasgd_cases,
    "sgld": sgld_cases,
}


# --------------------------------------------------------------------------------------------
# norms.json
# --------------------------------------------------------------------------------------------

NORM_LENGTHS = [0, 1, 7, 8, 9, 63, 64, 65, 1023, 1024, 1025, 65537, 16_777_216]
NORM_SCALE = 4.0
NORM_FORMULA = (
    "x = ((np.arange(n, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32))"
    ".astype(np.float64) / 2**32 - 0.5; a = (x * scale).astype(dtype)"
)
BITS = {"float16": np.uint16, "float32": np.uint32, "float64": np.uint64}


def norm_input(n, dtype, scale=NORM_SCALE):
    x = ((np.arange(n, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)).astype(
        np.float64
    ) / 2**32 - 0.5
    return (x * scale).astype(dtype)


def _bits(value):
    value = np.asarray(value).reshape(())
    width = value.dtype.itemsize * 2
    return {
        "dtype": value.dtype.name,
        "bits": f"0x{int(value.view(BITS[value.dtype.name])):0{width}x}",
        "value": repr(float(value)),
    }


def norms_json():
    """MXNet's nd.norm() and multi_sum_sq for the arrays of NORM_FORMULA, as JSON bytes."""
    entries = []
    for dtype in (F32, F16, F64):
        for n in NORM_LENGTHS:
            if n == 16_777_216 and dtype == F64:
                continue
            a = mx.nd.array(norm_input(n, dtype), dtype=dtype)
            entry = {"dtype": dtype, "n": n}
            if n == 0:
                entry["norm"] = None  # MXNet: "Operator norm inferring shapes failed"
            elif n == 16_777_216 and dtype == F16:
                entry["norm"] = None  # not recorded (f16 norms are not used by any optimizer)
            else:
                entry["norm"] = _bits(mx.nd.norm(a).asnumpy())
            entry["multi_sum_sq"] = _bits(mx.nd.multi_sum_sq(a, num_arrays=1).asnumpy())
            entries.append(entry)
    # multi_sum_sq over several arrays in one call (one f32 result per array).
    group = [norm_input(n, F32) for n in (7, 64, 1025)]
    multi = mx.nd.multi_sum_sq(*[mx.nd.array(a) for a in group], num_arrays=len(group))
    doc = {
        "format": 1,
        "mxnet_version": mx.__version__,
        "doc": "MXNet 1.6.0 mx.nd.norm(a) (L2 norm, shape (1,), dtype of a) and "
        "mx.nd.multi_sum_sq(a, num_arrays=1) (float32) for deterministic inputs",
        "construction": NORM_FORMULA,
        "scale": NORM_SCALE,
        "null": "norm is null where MXNet fails (n = 0) or where it was not recorded",
        "entries": entries,
        "multi_sum_sq_group": {
            "dtype": F32,
            "n": [7, 64, 1025],
            "results": [_bits(v) for v in multi.asnumpy()],
        },
    }
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


EXTRA = {"norms.json": norms_json}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=HERE, help="output directory (default: this folder)")
    parser.add_argument("--check", action="store_true", help="regenerate in memory, compare")
    parser.add_argument("only", nargs="*", help="subset: " + ", ".join([*FILES, *EXTRA]))
    args = parser.parse_args(argv)
    only = args.only or [*FILES, *EXTRA]
    flags = ["--out", args.out] + (["--check"] if args.check else [])
    status = 0
    stems = [s for s in only if s not in EXTRA]
    if stems:
        optimizer_module = sys.modules["mxnet.optimizer.optimizer"]
        real_normal = optimizer_module.normal
        optimizer_module.normal = _zero_noise  # used by SGLD only
        try:
            status |= generate_main([*flags, *stems], files=FILES)
        finally:
            optimizer_module.normal = real_normal
    for name in (s for s in only if s in EXTRA):
        path = os.path.join(args.out, name)
        data = EXTRA[name]()
        if args.check:
            with open(path, "rb") as f:
                same = f.read() == data
            print(f"{path}: {'identical' if same else 'DIFFERS'}")
            status |= not same
        else:
            with open(path, "wb") as f:
                f.write(data)
            print(f"wrote {path}: {len(data)} bytes")
    return status


if __name__ == "__main__":
    sys.exit(main())
