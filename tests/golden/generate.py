"""Record golden optimizer trajectories from MXNet 1.6.0.

Run with the MXNet 1.6.0 oracle interpreter (see README.md next to this file)::

    /tmp/mx16/bin/python tests/golden/generate.py            # writes tests/golden/*.npz
    /tmp/mx16/bin/python tests/golden/generate.py --check    # regenerate in memory, diff

Every case is a small, fully described scenario: an optimizer name and its constructor
arguments, an optional learning-rate scheduler, optional lr/wd multipliers, the environment,
a list of initial weights and a sequence of calls (``Updater`` calls, direct ``update`` /
``update_multi_precision`` calls, or an Updater save/load round trip).  MXNet runs the scenario
and the weights after every call plus the final optimizer states are stored.  The file layout
is described in README.md; ``tests/test_golden.py`` replays each case through mxopt.

The output is byte-for-byte deterministic: gradients and weights come from a RandomState seeded
by the CRC-32 of the case name, and the zip members carry a fixed timestamp.
"""

import argparse
import io
import json
import os
import sys
import warnings
import zipfile
import zlib

import numpy as np

os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

import mxnet as mx  # the oracle; only importable in the MXNet 1.6 venv

AGG_ENV = "MXNET_OPTIMIZER_AGGREGATION_SIZE"
HERE = os.path.dirname(os.path.abspath(__file__))
FORMAT_VERSION = 1

F16, F32, F64 = "float16", "float32", "float64"


# --------------------------------------------------------------------------------------------
# Case description
# --------------------------------------------------------------------------------------------


class Case:
    """One scenario.  Arrays live in Python attributes; ``meta()`` is the JSON description."""

    def __init__(
        self,
        name,
        optimizer,
        kwargs=None,
        *,
        doc="",
        env=None,
        scheduler=None,
        param_idx2name=None,
        lr_mult=None,
        wd_mult=None,
        mode="updater",
        state_init=None,
    ):
        self.name = name
        self.optimizer = optimizer
        self.kwargs = dict(kwargs or {})
        self.doc = doc
        self.env = dict(env or {})
        self.scheduler = scheduler
        self.param_idx2name = param_idx2name
        self.lr_mult = lr_mult
        self.wd_mult = wd_mult
        self.mode = mode
        if mode == "direct" and state_init is None:
            state_init = "create_state_multi_precision"
        self.state_init = state_init
        self.rng = np.random.RandomState(zlib.crc32(name.encode()) & 0x7FFFFFFF)
        self.w0 = []  # initial weights (numpy)
        self.calls = []  # dicts, JSON-able; grads kept in "_grads"

    # -- building ------------------------------------------------------------------------

    def weight(self, dtype, shape):
        """Add a weight with N(0, 1) entries; returns its position."""
        w = self.rng.standard_normal(shape).astype(dtype)
        self.w0.append(w)
        return len(self.w0) - 1

    def dense(self, k, scale=3.0):
        """A dense gradient for weight ``k``: every element non-zero, |g| in [0.05, scale]."""
        w = self.w0[k]
        mag = self.rng.uniform(0.05, scale, size=w.shape)
        sign = np.where(self.rng.uniform(size=w.shape) < 0.5, -1.0, 1.0)
        return (mag * sign).astype(w.dtype)

    def rsp(self, k, rows, scale=3.0):
        """A row-sparse gradient for weight ``k`` holding the given rows (sorted, unique)."""
        w = self.w0[k]
        rows = np.array(sorted(set(rows)), dtype=np.int64)
        shape = (len(rows), *w.shape[1:])
        mag = self.rng.uniform(0.05, scale, size=shape)
        sign = np.where(self.rng.uniform(size=shape) < 0.5, -1.0, 1.0)
        return ((mag * sign).astype(w.dtype), rows, w.shape)

    def call(self, index, ks, grads, kind="updater"):
        """Record one call.  ``index`` scalar => ``ks``/``grads`` have one element."""
        if not isinstance(index, list):
            assert len(ks) == 1 and len(grads) == 1
        else:
            assert len(index) == len(ks) == len(grads)
        self.calls.append({"kind": kind, "index": index, "weights": list(ks), "_grads": grads})

    def step_each(self, ks=None, grad=None, kind="updater"):
        """One scalar-index call per weight (index == weight position)."""
        ks = range(len(self.w0)) if ks is None else ks
        for k in ks:
            g = self.dense(k) if grad is None else grad(k)
            self.call(k, [k], [g], kind)

    def step_all(self, ks=None, grad=None, kind="updater"):
        """One list-index call covering all weights (index == weight position)."""
        ks = list(range(len(self.w0))) if ks is None else list(ks)
        grads = [self.dense(k) if grad is None else grad(k) for k in ks]
        self.call(list(ks), ks, grads, kind)

    def save_load(self, dump_optimizer=False):
        self.calls.append({"kind": "save_load", "dump_optimizer": dump_optimizer})

    # -- description ---------------------------------------------------------------------

    def meta(self, states_struct):
        calls = []
        for c in self.calls:
            c2 = {k: v for k, v in c.items() if k != "_grads"}
            if "_grads" in c:
                c2["grads"] = [
                    {"stype": "default"}
                    if isinstance(g, np.ndarray)
                    else {"stype": "row_sparse", "shape": list(g[2])}
                    for g in c["_grads"]
                ]
            calls.append(c2)

        def pairs(d):
            return None if d is None else [[k, v] for k, v in d.items()]

        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "doc": self.doc,
            "mxnet_version": mx.__version__,
            "optimizer": self.optimizer,
            "kwargs": self.kwargs,
            "param_idx2name": pairs(self.param_idx2name),
            "env": self.env,
            "scheduler": self.scheduler,
            "lr_mult": pairs(self.lr_mult),
            "wd_mult": pairs(self.wd_mult),
            "mode": self.mode,
            "state_init": self.state_init,
            "weights": [{"dtype": str(w.dtype), "shape": list(w.shape)} for w in self.w0],
            "calls": calls,
            "states": states_struct,
        }


# --------------------------------------------------------------------------------------------
# Running a case in MXNet
# --------------------------------------------------------------------------------------------


def _set_env(env):
    os.environ.pop(AGG_ENV, None)
    os.environ.update(env)


def _make_optimizer(case):
    _set_env(case.env)
    kwargs = dict(case.kwargs)
    if case.param_idx2name is not None:
        kwargs["param_idx2name"] = dict(case.param_idx2name)
    if case.scheduler is not None:
        cls = getattr(mx.lr_scheduler, case.scheduler["class"])
        kwargs["lr_scheduler"] = cls(**case.scheduler["kwargs"])
    opt = mx.optimizer.create(case.optimizer, **kwargs)
    if case.lr_mult is not None:
        opt.set_lr_mult(dict(case.lr_mult))
    if case.wd_mult is not None:
        opt.set_wd_mult(dict(case.wd_mult))
    return opt


def _to_mx(g):
    if isinstance(g, np.ndarray):
        return mx.nd.array(g, dtype=g.dtype)
    data, rows, shape = g
    return mx.nd.sparse.row_sparse_array((data, rows), shape=shape, dtype=data.dtype)


def _flatten_state(state, prefix, out):
    """Store arrays of a (nested) state under ``prefix[/j...]``; return the structure."""
    if state is None:
        return None
    if isinstance(state, mx.nd.NDArray):
        out[prefix] = state.asnumpy()
        return np.dtype(state.dtype).name
    if isinstance(state, (tuple, list)):
        kind = "tuple" if isinstance(state, tuple) else "list"
        return {kind: [_flatten_state(s, f"{prefix}/{j}", out) for j, s in enumerate(state)]}
    raise TypeError(f"unexpected state element {type(state)}")


def run_case(case, skip_save_load=False):
    """Run ``case`` in MXNet; returns (per-call weights, state structure, state arrays)."""
    opt = _make_optimizer(case)
    upd = mx.optimizer.get_updater(opt)
    ws = [mx.nd.array(w, dtype=w.dtype) for w in case.w0]
    direct_states = {}
    history = []
    for c in case.calls:
        kind = c["kind"]
        if kind == "save_load":
            if not skip_save_load:
                blob = upd.get_states(dump_optimizer=c["dump_optimizer"])
                opt = _make_optimizer(case)
                upd = mx.optimizer.get_updater(opt)
                upd.set_states(blob)
                opt = upd.optimizer
        else:
            index, ks = c["index"], c["weights"]
            grads = [_to_mx(g) for g in c["_grads"]]
            weights = [ws[k] for k in ks]
            if kind == "updater":
                if isinstance(index, list):
                    upd(list(index), grads, weights)
                else:
                    upd(index, grads[0], weights[0])
            else:
                idxs = index if isinstance(index, list) else [index]
                for i, k in zip(idxs, ks):
                    if k not in direct_states:
                        direct_states[k] = getattr(opt, case.state_init)(i, ws[k])
                states = [direct_states[k] for k in ks]
                fn = getattr(opt, kind)
                if isinstance(index, list):
                    fn(list(index), weights, grads, states)
                else:
                    fn(index, weights[0], grads[0], states[0])
        history.append([w.asnumpy() for w in ws])

    arrays = {}
    items = list(upd.states.items()) if case.mode == "updater" else sorted(direct_states.items())
    struct = []
    for s, (key, st) in enumerate(items):
        struct.append({"key": key, "state": _flatten_state(st, f"state/{s}", arrays)})
    return history, struct, arrays


def _same(a, b):
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(a, b, equal_nan=True)
        and np.array_equal(np.signbit(a), np.signbit(b))
    )


def record(case):
    """Run the case and return ``{key: array}`` for the npz (keys without the case prefix)."""
    history, struct, arrays = run_case(case)
    if any(c["kind"] == "save_load" for c in case.calls):
        # The round trip must not change anything compared with an uninterrupted run.
        h2, s2, a2 = run_case(case, skip_save_load=True)
        assert all(_same(x, y) for r1, r2 in zip(history, h2) for x, y in zip(r1, r2)), case.name
        assert struct == s2 and all(_same(arrays[k], a2[k]) for k in arrays), case.name
    out = {"meta": np.array(json.dumps(case.meta(struct), sort_keys=True))}
    for k, w in enumerate(case.w0):
        out[f"w0/{k}"] = w
    for i, c in enumerate(case.calls):
        for j, g in enumerate(c.get("_grads", ())):
            if isinstance(g, np.ndarray):
                out[f"call{i}/g{j}"] = g
            else:
                out[f"call{i}/g{j}/data"] = g[0]
                out[f"call{i}/g{j}/indices"] = g[1]
        before = history[i - 1] if i else case.w0
        touched = set(c.get("weights", ()))
        for k, w in enumerate(history[i]):
            if k in touched:
                out[f"call{i}/w{k}"] = w
            else:  # weights a call does not name must stay as they were
                assert _same(w, before[k]), (case.name, i, k)
    out.update(arrays)
    return out


def write_npz(path, arrays):
    """Write an .npz readable by ``np.load`` with fixed zip timestamps (reproducible bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arrays[key]), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    data = buf.getvalue()
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

DENSE_SHAPES = [(5,), (3, 4), (65,)]
RSP_SHAPES = [(7, 3), (65,)]


def dense_case(name, opt, kwargs, dtypes, *, steps=3, doc="", shapes=DENSE_SHAPES, **ckw):
    """Weights of the given dtypes (cycled over DENSE_SHAPES), scalar-index Updater calls."""
    c = Case(name, opt, kwargs, doc=doc, **ckw)
    for j, dt in enumerate(dtypes):
        c.weight(dt, shapes[j % len(shapes)])
    for _ in range(steps):
        c.step_each()
    return c


def rsp_case(name, opt, kwargs, dtype, *, doc="", **ckw):
    """Row-sparse gradients: some rows, nnz = 0, all rows, other rows (two weights)."""
    c = Case(name, opt, kwargs, doc=doc, **ckw)
    for shape in RSP_SHAPES:
        c.weight(dtype, shape)
    row_sets = [
        [[1, 4], [0, 5, 17, 63, 64]],
        [[], []],
        [list(range(7)), list(range(65))],
        [[0, 6], [3, 32, 33]],
    ]
    for rows in row_sets:
        for k in range(2):
            c.call(k, [k], [c.rsp(k, rows[k])])
    return c


def sgd_family_cases(opt):
    """Cases shared by ``sgd`` and ``ccsgd`` (ccsgd gets a subset)."""
    base = {"learning_rate": 0.1, "wd": 0.01}
    mom = {"momentum": 0.9}
    clip = {"rescale_grad": 0.5, "clip_gradient": 1.0}
    cases = []
    add = cases.append

    for dt, tag in ((F32, "f32"), (F64, "f64"), (F16, "f16")):
        add(
            dense_case(
                f"dense_{tag}_mom0", opt, base, [dt] * 3, doc=f"{tag} weights, no momentum, no clip"
            )
        )
        add(
            dense_case(
                f"dense_{tag}_mom09",
                opt,
                {**base, **mom, **clip},
                [dt] * 3,
                doc=f"{tag} weights, momentum 0.9, rescale 0.5, clip 1.0",
            )
        )
    add(
        dense_case(
            "mp_f16_mom0",
            opt,
            {**base, "multi_precision": True},
            [F16] * 3,
            doc="f16 weights, multi_precision, no momentum",
        )
    )
    add(
        dense_case(
            "mp_f16_mom09",
            opt,
            {**base, **mom, **clip, "multi_precision": True},
            [F16] * 3,
            doc="f16 weights, multi_precision, momentum 0.9, clip",
        )
    )

    # row-sparse gradients (lazy / std, with and without momentum)
    for lazy in (True, False):
        tag = "lazy" if lazy else "std"
        add(
            rsp_case(
                f"rsp_{tag}_mom0",
                opt,
                {**base, "wd": 0.05, "lazy_update": lazy},
                F32,
                doc=f"row-sparse grads, {tag}, no momentum",
            )
        )
        add(
            rsp_case(
                f"rsp_{tag}_mom09",
                opt,
                {**base, **mom, **clip, "wd": 0.05, "lazy_update": lazy},
                F32,
                doc=f"row-sparse grads, {tag}, momentum 0.9, clip",
            )
        )
    add(
        rsp_case(
            "mp_rsp_mom09",
            opt,
            {**base, **mom, **clip, "multi_precision": True},
            F16,
            doc="multi-precision f16 with row-sparse grads (densified)",
        )
    )
    if opt == "ccsgd":
        c = Case(
            "agg2_mixed",
            opt,
            {**base, **mom},
            env={AGG_ENV: "2"},
            doc="aggregation size 2, mixed dtypes",
        )
        for dt, sh in zip([F32, F64, F32, F32, F64], [(5,), (3, 4), (65,), (7, 3), (5,)]):
            c.weight(dt, sh)
        for _ in range(3):
            c.step_all()
        add(c)
        return cases

    add(
        dense_case(
            "dense_f16_odd",
            opt,
            {**base, **mom, "rescale_grad": 0.37, "clip_gradient": 0.77},
            [F16] * 3,
            doc="f16 without MP, rescale/clip not representable in f16",
        )
    )
    add(
        dense_case(
            "mp_flag_f32",
            opt,
            {**base, **mom, "multi_precision": True},
            [F32, F64, F32],
            doc="multi_precision=True on f32/f64 weights behaves as without",
        )
    )
    add(
        dense_case(
            "mom_neg",
            opt,
            {**base, "momentum": -0.5},
            [F32] * 3,
            doc="negative momentum: state created but kernels run without momentum",
        )
    )
    add(
        dense_case(
            "clip_none_rs2",
            opt,
            {**base, **mom, "rescale_grad": 2.0},
            [F32] * 3,
            doc="rescale 2, no clip",
        )
    )
    add(
        dense_case(
            "clip_zero",
            opt,
            {**base, **mom, "rescale_grad": 2.0, "clip_gradient": 0.0},
            [F32] * 3,
            doc="clip_gradient=0 means no clip for kernel optimizers",
        )
    )
    add(
        dense_case(
            "clip_neg",
            opt,
            {**base, "rescale_grad": 2.0, "clip_gradient": -1.0},
            [F32] * 3,
            doc="negative clip_gradient disables kernel clipping",
        )
    )
    add(
        dense_case(
            "clip_small_f64",
            opt,
            {**base, **mom, "rescale_grad": 1.5, "clip_gradient": 0.3},
            [F64] * 3,
            doc="small clip on f64",
        )
    )
    add(
        rsp_case(
            "rsp_lazy_f64_mom09",
            opt,
            {**base, **mom, **clip, "wd": 0.05},
            F64,
            doc="row-sparse lazy, f64",
        )
    )
    add(
        rsp_case(
            "rsp_std_f16_mom09",
            opt,
            {**base, **mom, **clip, "wd": 0.05, "lazy_update": False},
            F16,
            doc="row-sparse std, f16 without multi-precision",
        )
    )
    add(
        rsp_case(
            "rsp_lazy_f16_mom0",
            opt,
            {**base, "wd": 0.05, "rescale_grad": 0.37, "clip_gradient": 0.77},
            F16,
            doc="row-sparse lazy, f16 without MP, no momentum, odd rescale/clip",
        )
    )
    add(
        rsp_case(
            "rsp_std_f16_mom0",
            opt,
            {**base, "wd": 0.05, "lazy_update": False},
            F16,
            doc="row-sparse std, f16 without MP, no momentum (decay factor in f16)",
        )
    )
    add(
        rsp_case(
            "mp_rsp_mom0",
            opt,
            {**base, "wd": 0.05, "multi_precision": True},
            F16,
            doc="multi-precision f16, row-sparse grads, no momentum",
        )
    )
    add(
        rsp_case(
            "mp_rsp_std_mom09",
            opt,
            {**base, **mom, "wd": 0.05, "lazy_update": False, "multi_precision": True},
            F16,
            doc="multi-precision f16, row-sparse grads, lazy_update=False",
        )
    )

    # aggregation: list-index Updater calls, dtype grouping and chunking
    agg_dtypes = [F32, F64, F32, F32, F64, F32, F16, F32]
    agg_shapes = [(5,), (3, 4), (65,), (7, 3), (5,), (3, 4), (65,), (7, 3)]
    for env, tag in (({}, "default"), ({AGG_ENV: "2"}, "size2"), ({AGG_ENV: "0"}, "size0")):
        c = Case(
            f"agg_{tag}_mom09",
            opt,
            {**base, **mom, **clip},
            env=env,
            doc=f"list-index Updater calls, mixed dtypes, aggregation env {env or 'unset'}",
        )
        for dt, sh in zip(agg_dtypes, agg_shapes):
            c.weight(dt, sh)
        for _ in range(3):
            c.step_all()
        add(c)
    c = Case("agg_default_mom0", opt, base, doc="aggregated, no momentum, mixed dtypes")
    for dt, sh in zip(agg_dtypes, agg_shapes):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_all()
    add(c)
    c = Case(
        "agg_mp_size2",
        opt,
        {**base, **mom, **clip, "multi_precision": True},
        env={AGG_ENV: "2"},
        doc="aggregated multi-precision f16 mixed with f32/f64",
    )
    for dt, sh in zip([F16, F32, F16, F16, F64, F16, F16], agg_shapes):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_all()
    add(c)
    c = Case(
        "agg_mp_mom0",
        opt,
        {**base, "multi_precision": True},
        doc="aggregated multi-precision f16, no momentum",
    )
    for sh in agg_shapes[:5]:
        c.weight(F16, sh)
    for _ in range(3):
        c.step_all()
    add(c)
    c = Case(
        "agg_uneven_sched",
        opt,
        {**base, **mom},
        env={AGG_ENV: "2"},
        scheduler={
            "class": "FactorScheduler",
            "kwargs": {"step": 2, "factor": 0.5, "base_lr": 0.2},
        },
        doc="list calls of varying composition; per-chunk counting drives the scheduler",
    )
    for dt, sh in zip([F32, F64, F32, F32], agg_shapes):
        c.weight(dt, sh)
    for ks in ([0, 1, 2], [2, 0], [1], [0, 1, 2, 3], [3, 2, 0], [1, 3]):
        c.step_all(ks)
    add(c)
    c = Case(
        "agg_mixed_stype",
        opt,
        {**base, "wd": 0.05},
        doc="one list call mixing dense and row-sparse grads: per-weight single kernels",
    )
    c.weight(F32, (5,))
    c.weight(F32, (7, 3))
    c.weight(F32, (65,))
    for rows in ([1, 4], [], list(range(7))):
        c.call([0, 1, 2], [0, 1, 2], [c.dense(0), c.rsp(1, rows), c.dense(2)])
    add(c)
    c = Case(
        "agg_mixed_stype_mom09",
        opt,
        {**base, **mom, **clip, "wd": 0.05},
        doc="dense + row-sparse in one list call, momentum",
    )
    c.weight(F32, (5,))
    c.weight(F32, (7, 3))
    c.weight(F32, (65,))
    for rows in ([1, 4], [], list(range(7))):
        c.call([0, 1, 2], [0, 1, 2], [c.dense(0), c.rsp(1, rows), c.dense(2)])
    add(c)

    # multipliers and naming rules
    names = {0: "fc1_weight", 1: "fc1_bias", 2: "bn1_gamma", 3: "bn1_beta", 4: "extra"}
    c = Case(
        "mult_names",
        opt,
        {**base, **mom, **clip, "wd": 0.1},
        param_idx2name=names,
        lr_mult={0: 2.0, "fc1_bias": 0.5, "extra": 3.0},
        wd_mult={"bn1_beta": 2.0, 4: 0.25},
        doc="param_idx2name suffix rules + lr/wd multipliers by index and by name",
    )
    for dt, sh in zip([F32, F32, F64, F32, F32], agg_shapes):
        c.weight(dt, sh)
    c.step_all()
    c.step_each()
    c.step_all()
    add(c)
    c = Case(
        "mult_no_names",
        opt,
        {**base, "wd": 0.1},
        lr_mult={1: 0.1},
        wd_mult={0: 0.0, 2: 5.0},
        doc="index-keyed multipliers without param_idx2name (every index gets wd)",
    )
    for sh in DENSE_SHAPES:
        c.weight(F32, sh)
    for _ in range(3):
        c.step_each()
    add(c)
    c = Case(
        "str_index",
        opt,
        {**base, **mom},
        lr_mult={"fc_bias": 2.0},
        wd_mult={"fc_weight": 0.5},
        doc="string indices through the Updater",
    )
    c.weight(F32, (3, 4))
    c.weight(F32, (5,))
    for _ in range(2):
        c.call("fc_weight", [0], [c.dense(0)])
        c.call("fc_bias", [1], [c.dense(1)])
    c.call(["fc_weight", "fc_bias"], [0, 1], [c.dense(0), c.dense(1)])
    add(c)

    # schedulers and begin_num_update
    add(
        dense_case(
            "sched_factor",
            opt,
            {"wd": 0.01, **mom},
            [F32, F32],
            steps=5,
            scheduler={
                "class": "FactorScheduler",
                "kwargs": {"step": 2, "factor": 0.5, "base_lr": 0.2},
            },
            doc="FactorScheduler drives lr (learning_rate not given)",
        )
    )
    add(
        dense_case(
            "sched_factor_begin",
            opt,
            {"wd": 0.01, "begin_num_update": 5},
            [F32, F64],
            steps=4,
            scheduler={
                "class": "FactorScheduler",
                "kwargs": {"step": 3, "factor": 0.7, "base_lr": 0.3, "stop_factor_lr": 0.12},
            },
            doc="begin_num_update=5 with FactorScheduler and stop_factor_lr",
        )
    )
    add(
        dense_case(
            "sched_multifactor",
            opt,
            {"wd": 0.01, **mom},
            [F32, F32],
            steps=5,
            scheduler={
                "class": "MultiFactorScheduler",
                "kwargs": {"step": [2, 4], "factor": 0.3, "base_lr": 0.2},
            },
            doc="MultiFactorScheduler",
        )
    )
    add(
        dense_case(
            "sched_warmup",
            opt,
            {"wd": 0.01},
            [F32],
            steps=5,
            scheduler={
                "class": "FactorScheduler",
                "kwargs": {
                    "step": 2,
                    "factor": 0.5,
                    "base_lr": 0.2,
                    "warmup_steps": 3,
                    "warmup_begin_lr": 0.05,
                },
            },
            doc="FactorScheduler with linear warmup",
        )
    )
    add(
        dense_case(
            "sched_lr_override",
            opt,
            {"learning_rate": 0.05, "wd": 0.01},
            [F32],
            steps=4,
            scheduler={
                "class": "FactorScheduler",
                "kwargs": {"step": 1, "factor": 0.9, "base_lr": 1.0},
            },
            doc="learning_rate overrides the scheduler's base_lr",
        )
    )

    # interleaved indices
    c = Case(
        "interleaved",
        opt,
        {**base, **mom, **clip},
        scheduler={
            "class": "FactorScheduler",
            "kwargs": {"step": 2, "factor": 0.5, "base_lr": 0.1},
        },
        doc="indices 0,1,0,2,1,0,2 with a scheduler (num_update is a max over indices)",
    )
    for sh in DENSE_SHAPES:
        c.weight(F32, sh)
    c.step_each([0, 1, 0, 2, 1, 0, 2])
    add(c)

    # save / load round trips
    c = Case(
        "saveload_mom09",
        opt,
        {**base, **mom, **clip, "multi_precision": True},
        doc="get_states after 3 steps, fresh optimizer+updater, set_states, 2 more steps",
    )
    for dt, sh in zip([F32, F64, F16], DENSE_SHAPES):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_each()
    c.save_load(dump_optimizer=False)
    for _ in range(2):
        c.step_each()
    add(c)
    c = Case(
        "saveload_dump_sched",
        opt,
        {**base, **mom},
        scheduler={
            "class": "FactorScheduler",
            "kwargs": {"step": 2, "factor": 0.5, "base_lr": 0.3},
        },
        doc="get_states(dump_optimizer=True): counts and scheduler state travel too",
    )
    for sh in DENSE_SHAPES:
        c.weight(F32, sh)
    c.step_each([0, 1, 0, 2])
    c.save_load(dump_optimizer=True)
    c.step_each([1, 0, 2, 0])
    add(c)
    c = rsp_case(
        "saveload_rsp_lazy",
        opt,
        {**base, **mom, "wd": 0.05},
        F32,
        doc="row-sparse lazy with momentum across a save/load",
    )
    c.calls.insert(4, {"kind": "save_load", "dump_optimizer": False})
    add(c)

    # direct Optimizer calls (no Updater)
    c = Case(
        "direct_update_mom09",
        opt,
        {**base, **mom, **clip},
        mode="direct",
        state_init="create_state",
        doc="opt.update(index, weight, grad, state)",
    )
    for dt, sh in zip([F32, F64, F32], DENSE_SHAPES):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_each(kind="update")
    add(c)
    c = Case(
        "direct_mp",
        opt,
        {**base, **mom, **clip, "multi_precision": True},
        mode="direct",
        doc="create_state_multi_precision + update_multi_precision, f16 and f32",
    )
    for dt, sh in zip([F16, F32, F16], DENSE_SHAPES):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_each(kind="update_multi_precision")
    add(c)
    c = Case(
        "direct_list",
        opt,
        {**base, **mom},
        mode="direct",
        state_init="create_state",
        doc="opt.update with lists of indices/weights/grads/states",
    )
    for sh in DENSE_SHAPES:
        c.weight(F32, sh)
    for _ in range(3):
        c.step_all(kind="update")
    add(c)
    c = Case(
        "direct_list_mp",
        opt,
        {**base, **mom, "multi_precision": True},
        mode="direct",
        doc="update_multi_precision with lists of f16 weights",
    )
    for sh in DENSE_SHAPES:
        c.weight(F16, sh)
    for _ in range(3):
        c.step_all(kind="update_multi_precision")
    add(c)
    c = Case(
        "direct_rsp_lazy",
        opt,
        {**base, **mom},
        mode="direct",
        state_init="create_state",
        doc="opt.update with a row-sparse grad (lazy)",
    )
    c.weight(F32, (7, 3))
    for rows in ([2, 3], [], [0, 6]):
        c.call(0, [0], [c.rsp(0, rows)], kind="update")
    add(c)
    c = Case(
        "direct_f16_no_mp",
        opt,
        {**base, **mom},
        mode="direct",
        doc="update_multi_precision on f16 with multi_precision=False",
    )
    for sh in DENSE_SHAPES:
        c.weight(F16, sh)
    for _ in range(3):
        c.step_each(kind="update_multi_precision")
    add(c)
    return cases


def nag_cases():
    opt = "nag"
    base = {"learning_rate": 0.1, "wd": 0.01}
    mom = {"momentum": 0.9}
    clip = {"rescale_grad": 0.5, "clip_gradient": 1.0}
    cases = []
    add = cases.append
    for dt, tag in ((F32, "f32"), (F64, "f64"), (F16, "f16")):
        add(
            dense_case(
                f"dense_{tag}_mom0",
                opt,
                base,
                [dt] * 3,
                doc=f"{tag}, no momentum (sgd_update expression)",
            )
        )
        add(
            dense_case(
                f"dense_{tag}_mom09",
                opt,
                {**base, **mom, **clip},
                [dt] * 3,
                doc=f"{tag}, momentum 0.9, clip",
            )
        )
    add(
        dense_case(
            "mp_f16_mom0",
            opt,
            {**base, "multi_precision": True},
            [F16] * 3,
            doc="multi-precision, no momentum",
        )
    )
    add(
        dense_case(
            "mp_f16_mom09",
            opt,
            {**base, **mom, **clip, "multi_precision": True},
            [F16] * 3,
            doc="multi-precision, momentum 0.9",
        )
    )
    add(
        dense_case(
            "dense_f16_odd",
            opt,
            {**base, **mom, "rescale_grad": 0.37, "clip_gradient": 0.77},
            [F16] * 3,
            doc="f16 without MP, rescale/clip not representable in f16",
        )
    )
    add(
        dense_case(
            "mp_flag_f32",
            opt,
            {**base, **mom, "multi_precision": True},
            [F32, F64],
            doc="multi_precision=True on f32/f64",
        )
    )
    add(
        dense_case(
            "mom_neg",
            opt,
            {**base, "momentum": -0.5},
            [F32] * 3,
            doc="negative momentum: nag kernel with momentum 0",
        )
    )
    add(
        dense_case(
            "clip_none_rs2",
            opt,
            {**base, **mom, "rescale_grad": 2.0},
            [F32] * 3,
            doc="rescale 2, no clip",
        )
    )
    add(
        dense_case(
            "clip_zero",
            opt,
            {**base, **mom, "clip_gradient": 0.0},
            [F32] * 3,
            doc="clip_gradient=0 means no clip",
        )
    )
    add(
        rsp_case(
            "rsp_mom0",
            opt,
            {**base, "wd": 0.05},
            F32,
            doc="row-sparse grads, no momentum: sgd_update with its default lazy mode",
        )
    )
    add(
        rsp_case(
            "rsp_mom09",
            opt,
            {**base, **mom, **clip, "wd": 0.05},
            F32,
            doc="row-sparse grads with momentum: densified",
        )
    )
    add(
        rsp_case(
            "mp_rsp_mom09",
            opt,
            {**base, **mom, "wd": 0.05, "multi_precision": True},
            F16,
            doc="multi-precision with row-sparse grads",
        )
    )
    add(
        rsp_case(
            "mp_rsp_mom0",
            opt,
            {**base, "wd": 0.05, "multi_precision": True},
            F16,
            doc="multi-precision, no momentum, row-sparse grads",
        )
    )
    names = {0: "fc1_weight", 1: "fc1_bias", 2: "bn1_gamma", 3: "other"}
    c = Case(
        "mult_names",
        opt,
        {**base, **mom, **clip, "wd": 0.1},
        param_idx2name=names,
        lr_mult={0: 2.0, "fc1_bias": 0.5},
        wd_mult={"other": 3.0},
        doc="param_idx2name + multipliers",
    )
    for dt, sh in zip([F32, F32, F64, F32], [(5,), (3, 4), (65,), (7, 3)]):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_each()
    add(c)
    c = Case("updater_list", opt, {**base, **mom}, doc="list-index Updater call (no aggregation)")
    for dt, sh in zip([F32, F64, F32], DENSE_SHAPES):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_all()
    add(c)
    add(
        dense_case(
            "sched_factor_begin",
            opt,
            {"wd": 0.01, **mom, "begin_num_update": 5},
            [F32, F64],
            steps=4,
            scheduler={
                "class": "FactorScheduler",
                "kwargs": {"step": 3, "factor": 0.7, "base_lr": 0.3},
            },
            doc="begin_num_update with FactorScheduler",
        )
    )
    add(
        dense_case(
            "sched_multifactor",
            opt,
            {"wd": 0.01, **mom},
            [F32],
            steps=5,
            scheduler={
                "class": "MultiFactorScheduler",
                "kwargs": {"step": [1, 3], "factor": 0.5, "base_lr": 0.2},
            },
            doc="MultiFactorScheduler",
        )
    )
    c = Case(
        "interleaved",
        opt,
        {**base, **mom, **clip},
        scheduler={
            "class": "FactorScheduler",
            "kwargs": {"step": 2, "factor": 0.5, "base_lr": 0.1},
        },
        doc="indices 0,1,0,2,1,0,2",
    )
    for sh in DENSE_SHAPES:
        c.weight(F32, sh)
    c.step_each([0, 1, 0, 2, 1, 0, 2])
    add(c)
    c = Case(
        "saveload_mom09",
        opt,
        {**base, **mom, "multi_precision": True},
        doc="save/load with f32, f64, MP f16 states",
    )
    for dt, sh in zip([F32, F64, F16], DENSE_SHAPES):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_each()
    c.save_load(dump_optimizer=False)
    for _ in range(2):
        c.step_each()
    add(c)
    c = Case(
        "saveload_dump_sched",
        opt,
        {**base, **mom},
        scheduler={
            "class": "FactorScheduler",
            "kwargs": {"step": 2, "factor": 0.5, "base_lr": 0.3},
        },
        doc="save/load with dump_optimizer=True",
    )
    for sh in DENSE_SHAPES:
        c.weight(F32, sh)
    c.step_each([0, 1, 0, 2])
    c.save_load(dump_optimizer=True)
    c.step_each([1, 0, 2, 0])
    add(c)
    c = Case(
        "direct_update",
        opt,
        {**base, **mom, **clip},
        mode="direct",
        state_init="create_state",
        doc="opt.update direct",
    )
    for dt, sh in zip([F32, F64], DENSE_SHAPES):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_each(kind="update")
    add(c)
    c = Case(
        "direct_mp",
        opt,
        {**base, **mom, "multi_precision": True},
        mode="direct",
        doc="update_multi_precision direct, f16 + f32",
    )
    for dt, sh in zip([F16, F32, F16], DENSE_SHAPES):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_each(kind="update_multi_precision")
    add(c)
    c = Case(
        "direct_mp_mom0",
        opt,
        {**base, "multi_precision": True},
        mode="direct",
        doc="update_multi_precision direct, no momentum",
    )
    for sh in DENSE_SHAPES:
        c.weight(F16, sh)
    for _ in range(3):
        c.step_each(kind="update_multi_precision")
    add(c)
    return cases


def test_cases():
    opt = "test"
    cases = []
    add = cases.append
    for dt, tag in ((F32, "f32"), (F64, "f64"), (F16, "f16")):
        add(dense_case(f"dense_{tag}", opt, {}, [dt] * 3, doc=f"{tag}, rescale 1"))
    add(
        dense_case(
            "rescale_f32",
            opt,
            {"rescale_grad": 0.37, "learning_rate": 5.0, "wd": 0.3, "clip_gradient": 0.1},
            [F32] * 3,
            doc="rescale 0.37; lr, wd and clip are ignored",
        )
    )
    add(dense_case("rescale_f16", opt, {"rescale_grad": 0.37}, [F16] * 3, doc="f16, rescale"))
    add(
        dense_case(
            "mp_f16",
            opt,
            {"rescale_grad": 0.5, "multi_precision": True},
            [F16] * 3,
            doc="generic multi-precision fallback: (w32, inner) state",
        )
    )
    add(rsp_case("rsp_f32", opt, {"rescale_grad": 0.5}, F32, doc="row-sparse grads"))
    add(
        dense_case(
            "sched_ignored",
            opt,
            {"rescale_grad": 2.0},
            [F32],
            steps=3,
            scheduler={
                "class": "FactorScheduler",
                "kwargs": {"step": 1, "factor": 0.5, "base_lr": 1.0},
            },
            doc="scheduler never consulted",
        )
    )
    c = Case("updater_list", opt, {"rescale_grad": 0.5}, doc="list-index Updater calls")
    for dt, sh in zip([F32, F64, F16], DENSE_SHAPES):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_all()
    add(c)
    c = Case("interleaved", opt, {"rescale_grad": 0.5}, doc="indices 0,1,0,2,1")
    for sh in DENSE_SHAPES:
        c.weight(F32, sh)
    c.step_each([0, 1, 0, 2, 1])
    add(c)
    c = Case(
        "saveload", opt, {"rescale_grad": 0.5, "multi_precision": True}, doc="save/load round trip"
    )
    for dt, sh in zip([F32, F16], DENSE_SHAPES):
        c.weight(dt, sh)
    for _ in range(2):
        c.step_each()
    c.save_load(dump_optimizer=True)
    for _ in range(2):
        c.step_each()
    add(c)
    c = Case(
        "direct_update",
        opt,
        {"rescale_grad": 0.5},
        mode="direct",
        state_init="create_state",
        doc="opt.update direct",
    )
    for dt, sh in zip([F32, F64], DENSE_SHAPES):
        c.weight(dt, sh)
    for _ in range(3):
        c.step_each(kind="update")
    add(c)
    c = Case(
        "direct_mp",
        opt,
        {"rescale_grad": 0.5, "multi_precision": True},
        mode="direct",
        doc="update_multi_precision direct on f16",
    )
    for sh in DENSE_SHAPES[:2]:
        c.weight(F16, sh)
    for _ in range(3):
        c.step_each(kind="update_multi_precision")
    add(c)
    return cases


FILES = {
    "sgd": lambda: sgd_family_cases("sgd"),
    "ccsgd": lambda: sgd_family_cases("ccsgd"),
    "nag": nag_cases,
    "test": test_cases,
}


def build(stem):
    arrays = {}
    names = set()
    for case in FILES[stem]():
        assert case.name not in names, case.name
        names.add(case.name)
        for key, value in record(case).items():
            arrays[f"{case.name}/{key}"] = value
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=HERE, help="output directory (default: this folder)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate in memory and compare with the files on disk",
    )
    parser.add_argument("only", nargs="*", help="subset of files: " + ", ".join(FILES))
    args = parser.parse_args(argv)
    assert mx.__version__ == "1.6.0", f"needs MXNet 1.6.0, found {mx.__version__}"
    warnings.simplefilter("ignore")
    status = 0
    for stem in args.only or FILES:
        path = os.path.join(args.out, f"{stem}.npz")
        data = write_npz(None, build(stem))
        if args.check:
            with open(path, "rb") as f:
                same = f.read() == data
            print(f"{path}: {'identical' if same else 'DIFFERS'}")
            status |= not same
        else:
            with open(path, "wb") as f:
                f.write(data)
            n = sum(1 for _ in zipfile.ZipFile(io.BytesIO(data)).namelist())
            print(f"wrote {path}: {len(data)} bytes, {n} arrays")
    return status


if __name__ == "__main__":
    sys.exit(main())
