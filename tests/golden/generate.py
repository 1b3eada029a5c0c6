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
    if any(c["kind"] == "save_load" for c in case.calls) and not getattr(
        case, "save_load_restarts", False
    ):
        # The round trip must not change anything compared with an uninterrupted run (unless
        # the case sets ``save_load_restarts``: a load without the optimizer restarts counts).
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
# Case shapes
# --------------------------------------------------------------------------------------------

DENSE_SHAPES = [(5,), (3, 4), (65,)]
RSP_SHAPES = [(7, 3), (65,)]
AGG_SHAPES = [(5,), (3, 4), (65,), (7, 3)] * 2
DTYPE_TAGS = ((F32, "f32"), (F64, "f64"), (F16, "f16"))

BASE = {"learning_rate": 0.1, "wd": 0.01}
MOM = {"momentum": 0.9}
CLIP = {"rescale_grad": 0.5, "clip_gradient": 1.0}
MP = {"multi_precision": True}
# A learning rate whose repr MXNet's scalar operator parameters read one f32 ulp off (dmlc's
# parser adds the integer part and the rounded fraction); list parameters (the multi-tensor
# kernels' lrs/wds) round it correctly. Found by tests/fuzz/vs_mxnet.py.
LR_DIGITS = 1.957236684465528


def scheduler(cls, **kwargs):
    """The ``scheduler`` entry of a case: ``mx.lr_scheduler.<cls>(**kwargs)``."""
    return {"class": cls, "kwargs": kwargs}


def new_case(name, opt, kwargs, dtypes, shapes=DENSE_SHAPES, **ckw):
    """A Case with one weight per dtype, the shapes taken in order from ``shapes``."""
    c = Case(name, opt, kwargs, **ckw)
    for dt, shape in zip(dtypes, shapes):
        c.weight(dt, shape)
    return c


def dense_case(name, opt, kwargs, dtypes, *, steps=3, listed=False, kind="updater", **ckw):
    """``steps`` rounds of dense gradients: per round one scalar-index call per weight, or a
    single list-index call for all weights if ``listed``."""
    c = new_case(name, opt, kwargs, dtypes, **ckw)
    step = c.step_all if listed else c.step_each
    for _ in range(steps):
        step(kind=kind)
    return c


def direct_case(name, opt, kwargs, kind, dtypes, *, listed=False, doc, **ckw):
    """Like ``dense_case`` but calling ``opt.<kind>`` directly, with the matching create_state."""
    state_init = "create_state" if kind == "update" else "create_state_multi_precision"
    return dense_case(
        name,
        opt,
        kwargs,
        dtypes,
        listed=listed,
        kind=kind,
        mode="direct",
        state_init=state_init,
        doc=doc,
        **ckw,
    )


def rsp_case(name, opt, kwargs, dtype, shapes=RSP_SHAPES, **ckw):
    """Row-sparse gradients: some rows, nnz = 0, all rows, other rows (two weights; the row
    sets fit 7 and 65 rows)."""
    c = new_case(name, opt, kwargs, [dtype] * 2, shapes, **ckw)
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


def mixed_stype_case(name, opt, kwargs, **ckw):
    """List-index Updater calls whose middle gradient is row-sparse, the others dense."""
    c = new_case(name, opt, kwargs, [F32] * 3, [(5,), (7, 3), (65,)], **ckw)
    for rows in ([1, 4], [], list(range(7))):
        c.call([0, 1, 2], [0, 1, 2], [c.dense(0), c.rsp(1, rows), c.dense(2)])
    return c


def interleaved_case(opt, kwargs, order, **ckw):
    """Three f32 weights updated in the index ``order`` (scalar-index Updater calls)."""
    c = new_case("interleaved", opt, kwargs, [F32] * 3, **ckw)
    c.step_each(order)
    return c


def saveload_case(name, opt, kwargs, dtypes, before, after, *, dump_optimizer, **ckw):
    """Updates in the index order ``before``, an Updater save/load round trip, then ``after``."""
    c = new_case(name, opt, kwargs, dtypes, **ckw)
    c.step_each(before)
    c.save_load(dump_optimizer)
    c.step_each(after)
    return c


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------


def momentum_sweep(opt):
    """f32, f64 and f16 weights with and without momentum, and multi-precision f16."""
    cases = []
    for dt, tag in DTYPE_TAGS:
        cases += [
            dense_case(
                f"dense_{tag}_mom0", opt, BASE, [dt] * 3, doc=f"{tag} weights, no momentum, no clip"
            ),
            dense_case(
                f"dense_{tag}_mom09",
                opt,
                {**BASE, **MOM, **CLIP},
                [dt] * 3,
                doc=f"{tag} weights, momentum 0.9, rescale 0.5, clip 1.0",
            ),
        ]
    return [
        *cases,
        dense_case(
            "mp_f16_mom0",
            opt,
            {**BASE, **MP},
            [F16] * 3,
            doc="f16 weights, multi_precision, no momentum",
        ),
        dense_case(
            "mp_f16_mom09",
            opt,
            {**BASE, **MOM, **CLIP, **MP},
            [F16] * 3,
            doc="f16 weights, multi_precision, momentum 0.9, clip",
        ),
    ]


def sgd_rsp_cases(opt):
    """Row-sparse gradients, lazy and standard, with and without momentum (sgd and ccsgd)."""
    cases = []
    for lazy, tag in ((True, "lazy"), (False, "std")):
        rsp = {**BASE, "wd": 0.05, "lazy_update": lazy}
        cases += [
            rsp_case(f"rsp_{tag}_mom0", opt, rsp, F32, doc=f"row-sparse grads, {tag}, no momentum"),
            rsp_case(
                f"rsp_{tag}_mom09",
                opt,
                {**rsp, **MOM, **CLIP},
                F32,
                doc=f"row-sparse grads, {tag}, momentum 0.9, clip",
            ),
        ]
    return [
        *cases,
        rsp_case(
            "mp_rsp_mom09",
            opt,
            {**BASE, **MOM, **CLIP, **MP},
            F16,
            doc="multi-precision f16 with row-sparse grads (densified)",
        ),
    ]


def sgd_nag_shared_cases(opt):
    """Cases that sgd and nag run with the same settings."""
    return [
        dense_case(
            "dense_f16_odd",
            opt,
            {**BASE, **MOM, "rescale_grad": 0.37, "clip_gradient": 0.77},
            [F16] * 3,
            doc="f16 without MP, rescale/clip not representable in f16",
        ),
        dense_case(
            "mom_neg",
            opt,
            {**BASE, "momentum": -0.5},
            [F32] * 3,
            doc="negative momentum: state created but kernels run without momentum",
        ),
        dense_case(
            "clip_none_rs2",
            opt,
            {**BASE, **MOM, "rescale_grad": 2.0},
            [F32] * 3,
            doc="rescale 2, no clip",
        ),
        rsp_case(
            "mp_rsp_mom0",
            opt,
            {**BASE, "wd": 0.05, **MP},
            F16,
            doc="multi-precision f16, row-sparse grads, no momentum",
        ),
        interleaved_case(
            opt,
            {**BASE, **MOM, **CLIP},
            [0, 1, 0, 2, 1, 0, 2],
            scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.1),
            doc="indices 0,1,0,2,1,0,2 with a scheduler (num_update is a max over indices)",
        ),
        saveload_case(
            "saveload_dump_sched",
            opt,
            {**BASE, **MOM},
            [F32] * 3,
            [0, 1, 0, 2],
            [1, 0, 2, 0],
            dump_optimizer=True,
            scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.3),
            doc="get_states(dump_optimizer=True): counts and scheduler state travel too",
        ),
    ]


def ccsgd_cases():
    return [
        *momentum_sweep("ccsgd"),
        *sgd_rsp_cases("ccsgd"),
        dense_case(
            "agg2_mixed",
            "ccsgd",
            {**BASE, **MOM},
            [F32, F64, F32, F32, F64],
            listed=True,
            shapes=AGG_SHAPES,
            env={AGG_ENV: "2"},
            doc="aggregation size 2, mixed dtypes",
        ),
    ]


def sgd_cases():
    opt = "sgd"
    mom_clip = {**BASE, **MOM, **CLIP}
    agg_dtypes = [F32, F64, F32, F32, F64, F32, F16, F32]
    return [
        *momentum_sweep(opt),
        *sgd_rsp_cases(opt),
        *sgd_nag_shared_cases(opt),
        *sgd_call_sequence_cases(opt),
        # clipping, momentum and dtype corners
        dense_case(
            "mp_flag_f32",
            opt,
            {**BASE, **MOM, **MP},
            [F32, F64, F32],
            doc="multi_precision=True on f32/f64 weights behaves as without",
        ),
        dense_case(
            "clip_zero",
            opt,
            {**BASE, **MOM, "rescale_grad": 2.0, "clip_gradient": 0.0},
            [F32] * 3,
            doc="clip_gradient=0 means no clip for kernel optimizers",
        ),
        dense_case(
            "clip_neg",
            opt,
            {**BASE, "rescale_grad": 2.0, "clip_gradient": -1.0},
            [F32] * 3,
            doc="negative clip_gradient disables kernel clipping",
        ),
        dense_case(
            "clip_small_f64",
            opt,
            {**BASE, **MOM, "rescale_grad": 1.5, "clip_gradient": 0.3},
            [F64] * 3,
            doc="small clip on f64",
        ),
        rsp_case(
            "rsp_lazy_f64_mom09", opt, {**mom_clip, "wd": 0.05}, F64, doc="row-sparse lazy, f64"
        ),
        rsp_case(
            "rsp_std_f16_mom09",
            opt,
            {**mom_clip, "wd": 0.05, "lazy_update": False},
            F16,
            doc="row-sparse std, f16 without multi-precision",
        ),
        rsp_case(
            "rsp_lazy_f16_mom0",
            opt,
            {**BASE, "wd": 0.05, "rescale_grad": 0.37, "clip_gradient": 0.77},
            F16,
            doc="row-sparse lazy, f16 without MP, no momentum, odd rescale/clip",
        ),
        rsp_case(
            "rsp_std_f16_mom0",
            opt,
            {**BASE, "wd": 0.05, "lazy_update": False},
            F16,
            doc="row-sparse std, f16 without MP, no momentum (decay factor in f16)",
        ),
        rsp_case(
            "rsp_std_f64_mom0",
            opt,
            {**BASE, "wd": 0.17733637300995914, "lazy_update": False},
            F64,
            doc="row-sparse std, f64, no momentum: the decay factor 1 - lr*wd is computed in f32",
        ),
        rsp_case(
            "mp_rsp_std_mom09",
            opt,
            {**BASE, **MOM, "wd": 0.05, "lazy_update": False, **MP},
            F16,
            doc="multi-precision f16, row-sparse grads, lazy_update=False",
        ),
        # aggregation: list-index Updater calls, dtype grouping and chunking
        *(
            dense_case(
                f"agg_{tag}_mom09",
                opt,
                mom_clip,
                agg_dtypes,
                listed=True,
                shapes=AGG_SHAPES,
                env=env,
                doc=f"list-index Updater calls, mixed dtypes, aggregation env {env or 'unset'}",
            )
            for env, tag in (({}, "default"), ({AGG_ENV: "2"}, "size2"), ({AGG_ENV: "0"}, "size0"))
        ),
        dense_case(
            "agg_default_mom0",
            opt,
            BASE,
            agg_dtypes,
            listed=True,
            shapes=AGG_SHAPES,
            doc="aggregated, no momentum, mixed dtypes",
        ),
        dense_case(
            "agg_mp_size2",
            opt,
            {**mom_clip, **MP},
            [F16, F32, F16, F16, F64, F16, F16],
            listed=True,
            shapes=AGG_SHAPES,
            env={AGG_ENV: "2"},
            doc="aggregated multi-precision f16 mixed with f32/f64",
        ),
        dense_case(
            "agg_mp_mom0",
            opt,
            {**BASE, **MP},
            [F16] * 5,
            listed=True,
            shapes=AGG_SHAPES,
            doc="aggregated multi-precision f16, no momentum",
        ),
        mixed_stype_case(
            "agg_mixed_stype",
            opt,
            {**BASE, "wd": 0.05},
            doc="one list call mixing dense and row-sparse grads: per-weight single kernels",
        ),
        mixed_stype_case(
            "agg_mixed_stype_mom09",
            opt,
            {**mom_clip, "wd": 0.05},
            doc="dense + row-sparse in one list call, momentum",
        ),
        dense_case(
            "mult_no_names",
            opt,
            {**BASE, "wd": 0.1},
            [F32] * 3,
            lr_mult={1: 0.1},
            wd_mult={0: 0.0, 2: 5.0},
            doc="index-keyed multipliers without param_idx2name (every index gets wd)",
        ),
        # schedulers and begin_num_update
        dense_case(
            "sched_factor",
            opt,
            {"wd": 0.01, **MOM},
            [F32] * 2,
            steps=5,
            scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.2),
            doc="FactorScheduler drives lr (learning_rate not given)",
        ),
        dense_case(
            "sched_factor_begin",
            opt,
            {"wd": 0.01, "begin_num_update": 5},
            [F32, F64],
            steps=4,
            scheduler=scheduler(
                "FactorScheduler", step=3, factor=0.7, base_lr=0.3, stop_factor_lr=0.12
            ),
            doc="begin_num_update=5 with FactorScheduler and stop_factor_lr",
        ),
        dense_case(
            "sched_multifactor",
            opt,
            {"wd": 0.01, **MOM},
            [F32] * 2,
            steps=5,
            scheduler=scheduler("MultiFactorScheduler", step=[2, 4], factor=0.3, base_lr=0.2),
            doc="MultiFactorScheduler",
        ),
        dense_case(
            "sched_warmup",
            opt,
            {"wd": 0.01},
            [F32],
            steps=5,
            scheduler=scheduler(
                "FactorScheduler",
                step=2,
                factor=0.5,
                base_lr=0.2,
                warmup_steps=3,
                warmup_begin_lr=0.05,
            ),
            doc="FactorScheduler with linear warmup",
        ),
        dense_case(
            "sched_lr_override",
            opt,
            {"learning_rate": 0.05, "wd": 0.01},
            [F32],
            steps=4,
            scheduler=scheduler("FactorScheduler", step=1, factor=0.9, base_lr=1.0),
            doc="learning_rate overrides the scheduler's base_lr",
        ),
        saveload_case(
            "saveload_mom09",
            opt,
            {**mom_clip, **MP},
            [F32, F64, F16],
            [0, 1, 2] * 3,
            [0, 1, 2] * 2,
            dump_optimizer=False,
            doc="get_states after 3 steps, fresh optimizer+updater, set_states, 2 more steps",
        ),
        # direct Optimizer calls (no Updater)
        direct_case(
            "direct_update_mom09",
            opt,
            mom_clip,
            "update",
            [F32, F64, F32],
            doc="opt.update(index, weight, grad, state)",
        ),
        direct_case(
            "direct_mp",
            opt,
            {**mom_clip, **MP},
            "update_multi_precision",
            [F16, F32, F16],
            doc="create_state_multi_precision + update_multi_precision, f16 and f32",
        ),
        direct_case(
            "direct_list",
            opt,
            {**BASE, **MOM},
            "update",
            [F32] * 3,
            listed=True,
            doc="opt.update with lists of indices/weights/grads/states",
        ),
        direct_case(
            "direct_list_mp",
            opt,
            {**BASE, **MOM, **MP},
            "update_multi_precision",
            [F16] * 3,
            listed=True,
            doc="update_multi_precision with lists of f16 weights",
        ),
        direct_case(
            "direct_f16_no_mp",
            opt,
            {**BASE, **MOM},
            "update_multi_precision",
            [F16] * 3,
            doc="update_multi_precision on f16 with multi_precision=False",
        ),
        *lr_digits_cases(opt),
    ]


def lr_digits_cases(opt):
    """``LR_DIGITS``: correctly rounded in the multi-tensor kernels' lists, one ulp off as the
    scalar ``lr`` of sgd_update / sgd_mom_update (row-sparse gradients, mixed lists)."""
    digits = {"learning_rate": LR_DIGITS, "wd": 0.01}
    return [
        dense_case(
            "lr_digits_mom09",
            opt,
            {**digits, **MOM, **CLIP},
            [F32, F64, F16],
            doc="dense: lrs list, rounded correctly",
        ),
        rsp_case("rsp_lr_digits_mom0", opt, digits, F64, doc="sgd_update: scalar lr"),
        rsp_case(
            "rsp_lr_digits_mom09", opt, {**digits, **MOM}, F32, doc="sgd_mom_update: scalar lr"
        ),
        mixed_stype_case(
            "agg_mixed_stype_lr_digits",
            opt,
            {**digits, **MOM},
            doc="a list with a row-sparse grad: sgd_mom_update (scalar lr) for every tensor",
        ),
    ]


def sgd_call_sequence_cases(opt):
    """sgd cases with hand-written call sequences."""
    agg_uneven = new_case(
        "agg_uneven_sched",
        opt,
        {**BASE, **MOM},
        [F32, F64, F32, F32],
        AGG_SHAPES,
        env={AGG_ENV: "2"},
        scheduler=scheduler("FactorScheduler", step=2, factor=0.5, base_lr=0.2),
        doc="list calls of varying composition; per-chunk counting drives the scheduler",
    )
    for ks in ([0, 1, 2], [2, 0], [1], [0, 1, 2, 3], [3, 2, 0], [1, 3]):
        agg_uneven.step_all(ks)

    mult_names = new_case(
        "mult_names",
        opt,
        {**BASE, **MOM, **CLIP, "wd": 0.1},
        [F32, F32, F64, F32, F32],
        AGG_SHAPES,
        param_idx2name={0: "fc1_weight", 1: "fc1_bias", 2: "bn1_gamma", 3: "bn1_beta", 4: "extra"},
        lr_mult={0: 2.0, "fc1_bias": 0.5, "extra": 3.0},
        wd_mult={"bn1_beta": 2.0, 4: 0.25},
        doc="param_idx2name suffix rules + lr/wd multipliers by index and by name",
    )
    mult_names.step_all()
    mult_names.step_each()
    mult_names.step_all()

    str_index = new_case(
        "str_index",
        opt,
        {**BASE, **MOM},
        [F32] * 2,
        [(3, 4), (5,)],
        lr_mult={"fc_bias": 2.0},
        wd_mult={"fc_weight": 0.5},
        doc="string indices through the Updater",
    )
    for _ in range(2):
        str_index.call("fc_weight", [0], [str_index.dense(0)])
        str_index.call("fc_bias", [1], [str_index.dense(1)])
    str_index.call(["fc_weight", "fc_bias"], [0, 1], [str_index.dense(0), str_index.dense(1)])

    saveload_rsp = rsp_case(
        "saveload_rsp_lazy",
        opt,
        {**BASE, **MOM, "wd": 0.05},
        F32,
        doc="row-sparse lazy with momentum across a save/load",
    )
    saveload_rsp.calls.insert(4, {"kind": "save_load", "dump_optimizer": False})

    direct_rsp = new_case(
        "direct_rsp_lazy",
        opt,
        {**BASE, **MOM},
        [F32],
        [(7, 3)],
        mode="direct",
        state_init="create_state",
        doc="opt.update with a row-sparse grad (lazy)",
    )
    for rows in ([2, 3], [], [0, 6]):
        direct_rsp.call(0, [0], [direct_rsp.rsp(0, rows)], kind="update")
    return [agg_uneven, mult_names, str_index, saveload_rsp, direct_rsp]


def nag_cases():
    opt = "nag"
    return [
        *momentum_sweep(opt),
        *sgd_nag_shared_cases(opt),
        dense_case(
            "mp_flag_f32",
            opt,
            {**BASE, **MOM, **MP},
            [F32, F64],
            doc="multi_precision=True on f32/f64",
        ),
        dense_case(
            "clip_zero",
            opt,
            {**BASE, **MOM, "clip_gradient": 0.0},
            [F32] * 3,
            doc="clip_gradient=0 means no clip",
        ),
        rsp_case(
            "rsp_mom0",
            opt,
            {**BASE, "wd": 0.05},
            F32,
            doc="row-sparse grads, no momentum: sgd_update with its default lazy mode",
        ),
        rsp_case(
            "rsp_mom09",
            opt,
            {**BASE, **MOM, **CLIP, "wd": 0.05},
            F32,
            doc="row-sparse grads with momentum: densified",
        ),
        rsp_case(
            "mp_rsp_mom09",
            opt,
            {**BASE, **MOM, "wd": 0.05, **MP},
            F16,
            doc="multi-precision with row-sparse grads",
        ),
        dense_case(
            "mult_names",
            opt,
            {**BASE, **MOM, **CLIP, "wd": 0.1},
            [F32, F32, F64, F32],
            shapes=AGG_SHAPES,
            param_idx2name={0: "fc1_weight", 1: "fc1_bias", 2: "bn1_gamma", 3: "other"},
            lr_mult={0: 2.0, "fc1_bias": 0.5},
            wd_mult={"other": 3.0},
            doc="param_idx2name + multipliers",
        ),
        dense_case(
            "updater_list",
            opt,
            {**BASE, **MOM},
            [F32, F64, F32],
            listed=True,
            doc="list-index Updater call (no aggregation)",
        ),
        dense_case(
            "sched_factor_begin",
            opt,
            {"wd": 0.01, **MOM, "begin_num_update": 5},
            [F32, F64],
            steps=4,
            scheduler=scheduler("FactorScheduler", step=3, factor=0.7, base_lr=0.3),
            doc="begin_num_update with FactorScheduler",
        ),
        dense_case(
            "sched_multifactor",
            opt,
            {"wd": 0.01, **MOM},
            [F32],
            steps=5,
            scheduler=scheduler("MultiFactorScheduler", step=[1, 3], factor=0.5, base_lr=0.2),
            doc="MultiFactorScheduler",
        ),
        saveload_case(
            "saveload_mom09",
            opt,
            {**BASE, **MOM, **MP},
            [F32, F64, F16],
            [0, 1, 2] * 3,
            [0, 1, 2] * 2,
            dump_optimizer=False,
            doc="save/load with f32, f64, MP f16 states",
        ),
        direct_case(
            "direct_update",
            opt,
            {**BASE, **MOM, **CLIP},
            "update",
            [F32, F64],
            doc="opt.update direct",
        ),
        direct_case(
            "direct_mp",
            opt,
            {**BASE, **MOM, **MP},
            "update_multi_precision",
            [F16, F32, F16],
            doc="update_multi_precision direct, f16 + f32",
        ),
        direct_case(
            "direct_mp_mom0",
            opt,
            {**BASE, **MP},
            "update_multi_precision",
            [F16] * 3,
            doc="update_multi_precision direct, no momentum",
        ),
    ]


def test_cases():
    opt = "test"
    half = {"rescale_grad": 0.5}
    return [
        *(
            dense_case(f"dense_{tag}", opt, {}, [dt] * 3, doc=f"{tag}, rescale 1")
            for dt, tag in DTYPE_TAGS
        ),
        dense_case(
            "rescale_f32",
            opt,
            {"rescale_grad": 0.37, "learning_rate": 5.0, "wd": 0.3, "clip_gradient": 0.1},
            [F32] * 3,
            doc="rescale 0.37; lr, wd and clip are ignored",
        ),
        dense_case("rescale_f16", opt, {"rescale_grad": 0.37}, [F16] * 3, doc="f16, rescale"),
        dense_case(
            "mp_f16",
            opt,
            {**half, **MP},
            [F16] * 3,
            doc="generic multi-precision fallback: (w32, inner) state",
        ),
        rsp_case("rsp_f32", opt, half, F32, doc="row-sparse grads"),
        dense_case(
            "sched_ignored",
            opt,
            {"rescale_grad": 2.0},
            [F32],
            scheduler=scheduler("FactorScheduler", step=1, factor=0.5, base_lr=1.0),
            doc="scheduler never consulted",
        ),
        dense_case(
            "updater_list", opt, half, [F32, F64, F16], listed=True, doc="list-index Updater calls"
        ),
        interleaved_case(opt, half, [0, 1, 0, 2, 1], doc="indices 0,1,0,2,1"),
        saveload_case(
            "saveload",
            opt,
            {**half, **MP},
            [F32, F16],
            [0, 1] * 2,
            [0, 1] * 2,
            dump_optimizer=True,
            doc="save/load round trip",
        ),
        direct_case("direct_update", opt, half, "update", [F32, F64], doc="opt.update direct"),
        direct_case(
            "direct_mp",
            opt,
            {**half, **MP},
            "update_multi_precision",
            [F16] * 2,
            doc="update_multi_precision direct on f16",
        ),
    ]


FILES = {"sgd": sgd_cases, "ccsgd": ccsgd_cases, "nag": nag_cases, "test": test_cases}


def build(stem, files=None):
    arrays = {}
    names = set()
    for case in (files or FILES)[stem]():
        assert case.name not in names, case.name
        names.add(case.name)
        for key, value in record(case).items():
            arrays[f"{case.name}/{key}"] = value
    return arrays


def main(argv=None, files=None):
    """CLI; ``files`` maps file stems to case functions (default: this module's ``FILES``)."""
    files = files or FILES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=HERE, help="output directory (default: this folder)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate in memory and compare with the files on disk",
    )
    parser.add_argument("only", nargs="*", help="subset of files: " + ", ".join(files))
    args = parser.parse_args(argv)
    assert mx.__version__ == "1.6.0", f"needs MXNet 1.6.0, found {mx.__version__}"
    warnings.simplefilter("ignore")
    status = 0
    for stem in args.only or files:
        path = os.path.join(args.out, f"{stem}.npz")
        data = write_npz(None, build(stem, files))
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
