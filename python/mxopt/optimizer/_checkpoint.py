"""Optimizer checkpoints shared with the Rust crate: :meth:`Updater.save` / :meth:`Updater.load`.

The file is the Rust crate's format (``mxopt::optimizer::checkpoint``; README
"Checkpoints"): a safetensors file, written and checked by ``_core.checkpoint_write`` /
``_core.checkpoint_read``, with one entry per parameter name (update count, dtype, the
optimizer's state arrays in kernel order and, under multi-precision, the float32 master
copy) and JSON metadata for the algorithm, the optimizer-wide settings (with the
scheduler's position) and the counters. This module maps MXNet's state layouts and
attribute names onto that common layout and back; the Python-only settings (``lazy_update``
aside, which the Rust side has) travel under the ``python`` metadata key, ignored by Rust.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from typing import TYPE_CHECKING, Any, Dict, Hashable, List, Optional, Tuple

import numpy as np

from .. import _core, lr_scheduler, random
from ..sparse import RowSparseNDArray
from ._kernel import MomentumKernelOptimizer, is_row_sparse
from .base import Optimizer
from .lars import LARS
from .lbsgd import LBSGD
from .test import Test

if TYPE_CHECKING:
    from .updater import Updater

__all__ = ["load", "save"]

# Registry name -> (the algorithm's name in the file, its hyper-parameters as
# (JSON key, attribute) pairs). The JSON keys are the fields of the Rust structs.
_COMMON = (("rescale_grad", "rescale_grad"), ("clip_gradient", "clip_gradient"))
_MOMENTUM = (("momentum", "momentum"), *_COMMON)
_BETAS = (("beta1", "beta1"), ("beta2", "beta2"))
_ALGORITHMS: Dict[str, Tuple[str, Tuple[Tuple[str, str], ...]]] = {
    "sgd": ("sgd", _MOMENTUM),
    "ccsgd": ("sgd", _MOMENTUM),
    "nag": ("nag", _MOMENTUM),
    "adam": ("adam", (*_BETAS, ("epsilon", "epsilon"), *_COMMON)),
    "adagrad": ("adagrad", (("epsilon", "float_stable_eps"), *_COMMON)),
    "rmsprop": (
        "rmsprop",
        (
            ("gamma1", "gamma1"),
            ("gamma2", "gamma2"),
            ("epsilon", "epsilon"),
            *_COMMON,
            ("clip_weights", "clip_weights"),
            ("centered", "centered"),
        ),
    ),
    "adamax": ("adamax", (*_BETAS, *_COMMON)),
    "nadam": (
        "nadam",
        (*_BETAS, ("epsilon", "epsilon"), ("schedule_decay", "schedule_decay"), *_COMMON),
    ),
    "adadelta": ("adadelta", (("rho", "rho"), ("epsilon", "epsilon"), *_COMMON)),
    "ftml": ("ftml", (*_BETAS, ("epsilon", "epsilon"), *_COMMON)),
    "ftrl": ("ftrl", (("lamda1", "lamda1"), ("beta", "beta"), *_COMMON)),
    "signum": ("signum", (("momentum", "momentum"), ("wd_lh", "wd_lh"), *_COMMON)),
    "lars": (
        "lars",
        (
            ("eta", "eta"),
            ("eps", "eps"),
            *_MOMENTUM,
            ("momentum_correction", "momentum_correction"),
            ("exact_norms", "exact_norms"),
        ),
    ),
    "lamb": (
        "lamb",
        (
            *_BETAS,
            ("epsilon", "epsilon"),
            *_COMMON,
            ("bias_correction", "bias_correction"),
            ("lower_bound", "lower_bound"),
            ("upper_bound", "upper_bound"),
            ("exact_norms", "exact_norms"),
            ("update_master_copy", "update_master_copy"),
        ),
    ),
    # LBSGD's begin_epoch is kept as init_updates = begin_epoch·updates_per_epoch: see
    # _lbsgd_to_json / _lbsgd_from_json.
    "lbsgd": (
        "lbsgd",
        (
            *_MOMENTUM,
            ("warmup_strategy", "warmup_strategy"),
            ("warmup_epochs", "warmup_epochs"),
            ("batch_scale", "batch_scale"),
            ("updates_per_epoch", "updates_per_epoch"),
        ),
    ),
    "dcasgd": ("dcasgd", (("lamda", "lamda"), *_COMMON)),
    "sgld": ("sgld", (*_COMMON, ("add_noise", "add_noise"))),
    "test": ("test", (("rescale_grad", "rescale_grad"),)),
    "groupadagrad": ("groupadagrad", (("epsilon", "float_stable_eps"), *_COMMON)),
}
# Hyper-parameters that may be null (an Option in Rust).
_OPTIONAL = {"clip_gradient", "clip_weights", "lower_bound", "upper_bound"}
# LBSGD's warm-up strategies by their names in the file (Rust's `WarmupStrategy`); MXNet
# treats any other string as "constant".
_WARMUPS = ("linear", "power2", "sqrt", "lars", "constant")
# Optimizers whose state is one value per row (Python: shape (rows, 1)).
_PER_ROW = ("groupadagrad",)
# Attributes the common metadata carries, or that must not come from a file.
_HANDLED = {
    "lr",
    "wd",
    "multi_precision",
    "begin_num_update",
    "num_update",
    "lr_scheduler",
    "lr_mult",
    "wd_mult",
    "lazy_update",
    "m_schedule",
    "last_lr",
    "cur_lr",
    "init_updates",
    "idx2name",
    "sym_info",
    "param_dict",
}
_DTYPES = ("float16", "float32", "float64")


def _registry_name(opt: Optimizer) -> str:
    name = type(opt).__name__.lower()
    if Optimizer.opt_registry.get(name) is not type(opt) or name not in _ALGORITHMS:
        raise ValueError(
            f"optimizer: {type(opt).__name__} cannot be stored in a checkpoint; supported: "
            + ", ".join(sorted(_ALGORITHMS))
        )
    return name


def _strict_json(text: str, what: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"checkpoint: {what} holds {constant}, which is not a finite number")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as e:
        raise ValueError(f"checkpoint: {what} is not valid JSON: {e}") from None


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, sort_keys=True)


# ------------------------------------------------------------------ schedulers


def _exact_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return int(value)


def _scheduler_to_json(s: Optional[lr_scheduler.LRScheduler]) -> Any:
    if s is None:
        return None
    what = "lr_scheduler"
    warmup = {
        "steps": _exact_int(s.warmup_steps, f"{what}.warmup_steps"),
        "begin_lr": float(s.warmup_begin_lr),
        "mode": s.warmup_mode,
    }
    kind: Dict[str, Any]
    if type(s) is lr_scheduler.FactorScheduler:
        kind = {
            "type": "factor",
            "step": _exact_int(s.step, f"{what}.step"),
            "factor": float(s.factor),
            "stop_factor_lr": float(s.stop_factor_lr),
            "count": _exact_int(s.count, f"{what}.count"),
        }
    elif type(s) is lr_scheduler.MultiFactorScheduler:
        kind = {
            "type": "multi_factor",
            "steps": [_exact_int(m, f"{what}.step") for m in s.step],
            "factor": float(s.factor),
            "cur_step_ind": _exact_int(s.cur_step_ind, f"{what}.cur_step_ind"),
            "count": _exact_int(s.count, f"{what}.count"),
        }
    elif type(s) in (lr_scheduler.PolyScheduler, lr_scheduler.CosineScheduler):
        decayed: Any = s
        decay = {
            "base_lr_orig": float(decayed.base_lr_orig),
            "final_lr": float(decayed.final_lr),
            "max_update": _exact_int(decayed.max_update, f"{what}.max_update"),
            "max_steps": _exact_int(decayed.max_steps, f"{what}.max_steps"),
        }
        if type(s) is lr_scheduler.PolyScheduler:
            kind = {"type": "poly", "decay": decay, "pwr": float(decayed.power)}
        else:
            kind = {"type": "cosine", "decay": decay}
    else:
        raise ValueError(
            f"lr_scheduler: a {type(s).__name__} cannot be stored in a checkpoint (only "
            "mxopt's Factor, MultiFactor, Poly and Cosine schedulers can)"
        )
    return {
        "base_lr": float(s.base_lr),
        "warmup_final_lr": float(s.warmup_final_lr),
        "warmup": warmup,
        "kind": kind,
    }


def _field(obj: Any, key: str, what: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"checkpoint: {what} has no {key!r}")
    return obj[key]


def _real(obj: Any, key: str, what: str) -> float:
    value = _field(obj, key, what)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"checkpoint: {what}.{key} must be a finite number, got {value!r}")
    return float(value)


def _count(obj: Any, key: str, what: str) -> int:
    value = _field(obj, key, what)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"checkpoint: {what}.{key} must be a non-negative integer, got {value!r}")
    return value


def _scheduler_from_json(data: Any) -> Optional[lr_scheduler.LRScheduler]:
    """The scheduler a checkpoint describes, built by its constructor (which checks the
    settings), then moved to the saved position."""
    if data is None:
        return None
    what = "lr_scheduler"
    warmup = _field(data, "warmup", what)
    kind = _field(data, "kind", what)
    mode = _field(warmup, "mode", f"{what}.warmup")
    common: Dict[str, Any] = {
        "base_lr": _real(data, "warmup_final_lr", what),
        "warmup_steps": _count(warmup, "steps", f"{what}.warmup"),
        "warmup_begin_lr": _real(warmup, "begin_lr", f"{what}.warmup"),
        "warmup_mode": mode,
    }
    kind_name = _field(kind, "type", f"{what}.kind")
    k = f"{what}.kind"
    s: lr_scheduler.LRScheduler
    try:
        if kind_name == "factor":
            factor = lr_scheduler.FactorScheduler(
                step=_count(kind, "step", k),
                factor=_real(kind, "factor", k),
                stop_factor_lr=_real(kind, "stop_factor_lr", k),
                **common,
            )
            factor.count = _count(kind, "count", k)
            s = factor
        elif kind_name == "multi_factor":
            steps = _field(kind, "steps", k)
            if not isinstance(steps, list):
                raise ValueError(f"checkpoint: {k}.steps must be a list")
            multi = lr_scheduler.MultiFactorScheduler(
                step=[_exact_int(m, f"{k}.steps") for m in steps],
                factor=_real(kind, "factor", k),
                **common,
            )
            position = _count(kind, "cur_step_ind", k)
            if position > len(steps):
                raise ValueError(f"checkpoint: {k}.cur_step_ind is past the milestones")
            multi.cur_step_ind = position
            multi.count = _count(kind, "count", k)
            s = multi
        elif kind_name in ("poly", "cosine"):
            decay = _field(kind, "decay", k)
            d = f"{k}.decay"
            args = {
                "max_update": _count(decay, "max_update", d),
                "final_lr": _real(decay, "final_lr", d),
                **common,
                "base_lr": _real(decay, "base_lr_orig", d),
            }
            if kind_name == "poly":
                s = lr_scheduler.PolyScheduler(pwr=_real(kind, "pwr", k), **args)
            else:
                s = lr_scheduler.CosineScheduler(**args)
            decayed: Any = s
            if decayed.max_steps != _count(decay, "max_steps", d):
                raise ValueError(f"checkpoint: {d}.max_steps must be max_update - warmup steps")
        else:
            raise ValueError(f"checkpoint: {k}.type {kind_name!r} is not a known scheduler")
    except (TypeError, AssertionError) as e:
        raise ValueError(f"checkpoint: invalid lr_scheduler: {e}") from None
    s.warmup_final_lr = common["base_lr"]
    s.base_lr = _real(data, "base_lr", what)
    if not all(math.isfinite(v) for v in (s.base_lr, s.warmup_final_lr)):
        raise ValueError("checkpoint: lr_scheduler rates must be finite")
    return s


# ---------------------------------------------------------------------- states


def _template(opt: Optimizer) -> Any:
    """The structure ``create_state`` gives a float32 weight: ``None``, an array, or a
    tuple of arrays and ``None``s (kernel order)."""
    return opt.create_state(0, np.zeros((1, 1), dtype=np.float32))


def _slots(template: Any) -> int:
    if template is None:
        return 0
    if isinstance(template, np.ndarray):
        return 1
    return sum(1 for item in template if item is not None)


def _matches(state: Any, template: Any) -> bool:
    if template is None or isinstance(template, np.ndarray):
        return type(state) is type(template)
    return (
        isinstance(state, tuple)
        and len(state) == len(template)
        and all((s is None) == (t is None) for s, t in zip(state, template))
        and all(isinstance(s, np.ndarray) for s in state if s is not None)
    )


def _arrays(state: Any) -> List[np.ndarray]:
    if state is None:
        return []
    if isinstance(state, np.ndarray):
        return [state]
    return [a for a in state if a is not None]


def _fill(template: Any, arrays: List[np.ndarray]) -> Any:
    if template is None:
        return None
    if isinstance(template, np.ndarray):
        return arrays[0]
    it = iter(arrays)
    return tuple(None if t is None else next(it) for t in template)


def _master_first(opt: Optimizer) -> bool:
    """MXNet's multi-precision layout: ``(master, state)``, except SGD, NAG and LARS
    (``(momentum, master)``)."""
    return not (isinstance(opt, MomentumKernelOptimizer) and not isinstance(opt, LBSGD))


def _split(opt: Optimizer, state: Any, template: Any, key: Any) -> Tuple[Any, List[np.ndarray]]:
    """``(master or None, state arrays)`` of one Updater state."""
    if _matches(state, template):
        return None, _arrays(state)
    if isinstance(state, tuple) and len(state) == 2:
        master, inner = state if _master_first(opt) else (state[1], state[0])
        if (
            isinstance(master, np.ndarray)
            and master.dtype == np.float32
            and _matches(inner, template)
        ):
            return master, _arrays(inner)
    raise ValueError(
        f"states[{key!r}]: not a state {type(opt).__name__}.create_state_multi_precision "
        "creates; it cannot be saved"
    )


def _join(opt: Optimizer, master: Any, arrays: List[np.ndarray], template: Any) -> Any:
    inner = _fill(template, arrays)
    if master is None:
        return inner
    return (master, inner) if _master_first(opt) else (inner, master)


def _dtype(master: Any, arrays: List[np.ndarray], known: Any) -> str:
    """The parameter dtype the file records: float16 beside a master copy, else the
    states' (the file keeps states in the parameter's dtype); for a parameter without
    states, the weight's as the Updater saw it (float32 if it never did)."""
    if master is not None:
        return "float16"
    if arrays:
        return str(arrays[0].dtype)
    return str(np.dtype(known)) if known is not None else "float32"


# ------------------------------------------------------------------------ names


def _name_of(opt: Optimizer, key: Hashable) -> str:
    """A key's parameter name in the file: a str key itself, an int index its
    ``param_idx2name`` entry or else its decimal form."""
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return opt.idx2name.get(key, str(key))
    raise ValueError(f"the key {key!r} is neither a parameter name nor an integer index")


def _names(
    opt: Optimizer, keys: List[Hashable], mult_keys: List[Hashable]
) -> Tuple[Dict[Hashable, str], Dict[str, int]]:
    """Each key's name in the file, and the int indices to restore by name. Parameter
    keys (states, counts) must map to distinct names; a multiplier may have both an index
    and a name key for one parameter (MXNet looks the index up first)."""
    names: Dict[Hashable, str] = {}
    indices: Dict[str, int] = {}
    owner: Dict[str, Hashable] = {}
    for key in keys:
        name = names[key] = _name_of(opt, key)
        if owner.setdefault(name, key) != key:
            raise ValueError(
                f"states: the keys {owner[name]!r} and {key!r} both map to the parameter "
                f"name {name!r}"
            )
        if isinstance(key, int):
            indices[name] = key
    for key in mult_keys:
        name = names[key] = _name_of(opt, key)
        if isinstance(key, int) and name not in owner:
            indices.setdefault(name, key)
    return names, indices


# ------------------------------------------------------------------------ save


def save(updater: Updater, path: Any) -> None:
    """Write ``updater``'s optimizer and states to ``path`` (see :meth:`Updater.save`)."""
    opt = updater.optimizer
    registry = _registry_name(opt)
    file_name, fields = _ALGORITHMS[registry]
    counts = opt._all_index_update_counts.get(0, {})
    cumgrads: Dict[Hashable, Any] = opt.cumgrads if isinstance(opt, LBSGD) else {}
    for key in cumgrads:
        if key not in updater.states:
            raise ValueError(
                f"LBSGD accumulates gradients of {key!r}, which has no state in this Updater"
            )
    keys = list(dict.fromkeys([*updater.states, *counts]))
    names, indices = _names(opt, keys, [*opt.lr_mult, *opt.wd_mult])
    template = _template(opt)
    known = getattr(updater, "_weight_dtypes", {})
    params: Dict[str, Any] = {}
    accumulation: Dict[str, Any] = {}
    for key, state in updater.states.items():
        master, arrays = _split(opt, state, template, key)
        count = counts.get(key, opt.begin_num_update)
        if not isinstance(count, int) or count < 0:
            raise ValueError(
                f"update count of {key!r}: {count!r} cannot be stored (a checkpoint keeps "
                "counts from 0 up)"
            )
        dtype = _dtype(master, arrays, known.get(key))
        if isinstance(opt, Test) and master is None and key in known:
            # Test mirrors any weight in float32; the file keeps states in the weight's
            # dtype, as Rust's Test does (the mirror is never read: rounding is harmless).
            dtype = str(np.dtype(known[key]))
            arrays = [a.astype(dtype) for a in arrays]
        if isinstance(opt, LBSGD):
            shape = getattr(updater, "_weight_shapes", {}).get(key)
            entry, buffer = _accumulation_to_file(
                opt, key, cumgrads.get(key), master, arrays, dtype, shape
            )
            accumulation[names[key]] = entry
            arrays = arrays if buffer is None else [*arrays, buffer]
        arrays = [np.asarray(a, order="C") for a in arrays]
        if master is not None:
            master = np.asarray(master, order="C")
        params[names[key]] = (count, dtype, master, arrays)
    algorithm: Dict[str, Any] = {"name": file_name}
    for json_key, attr in fields:
        value = getattr(opt, attr)
        algorithm[json_key] = value.item() if isinstance(value, np.generic) else value
    if isinstance(opt, LBSGD):
        _lbsgd_to_json(opt, algorithm)
    lr = opt.lr if opt.lr is not None else 0.01
    config = {
        "learning_rate": opt.lr,
        "wd": opt.wd,
        "multi_precision": bool(opt.multi_precision),
        "begin_num_update": _exact_int(opt.begin_num_update, "begin_num_update"),
        "lr_scheduler": _scheduler_to_json(opt.lr_scheduler),
        "lr_mult": {names[k]: float(v) for k, v in _by_priority(opt.lr_mult)},
        "wd_mult": {names[k]: float(v) for k, v in _by_priority(opt.wd_mult)},
        # Python's defaults by suffix are explicit wd_mult entries already.
        "decay_by_suffix": False,
        "lazy_update": bool(getattr(opt, "lazy_update", True)),
    }
    rates = {k: getattr(opt, k) if isinstance(opt, LARS) else None for k in ("last_lr", "cur_lr")}
    seed, streams = random._position()
    progress = {
        "lr": lr,
        "num_update": _exact_int(opt.num_update, "num_update"),
        "m_schedule": float(getattr(opt, "m_schedule", 1.0)),
        **{k: None if v is None else float(v) for k, v in rates.items()},
        # mxopt.random's generator, which SGLD draws its noise from.
        "generator": {"seed": seed, "count": streams},
    }
    handled = _HANDLED | {attr for _, attr in fields}
    extras = {
        k: v
        for k, v in vars(opt).items()
        if k not in handled and not k.startswith("_") and _is_scalar(v)
    }
    python = {
        "class": registry,
        "attributes": extras,
        "indices": indices,
        "counts_without_state": {names[k]: c for k, c in counts.items() if k not in updater.states},
        # States whose index was never counted (the file records begin_num_update).
        "uncounted": sorted(names[k] for k in updater.states if k not in counts),
    }
    metadata = {
        "algorithm": _dumps(algorithm),
        "config": _dumps(config),
        "state": _dumps(progress),
        "accumulation": _dumps(accumulation),
        "python": _dumps(python),
    }
    _core.checkpoint_write(os.fspath(path), metadata, params)


def _lbsgd_to_json(opt: LBSGD, algorithm: Dict[str, Any]) -> None:
    """LBSGD's fields as Rust's ``Lbsgd`` has them: whole numbers, a known warm-up
    strategy name, and ``begin_epoch`` rather than ``init_updates``."""
    for key in ("warmup_epochs", "batch_scale", "updates_per_epoch"):
        algorithm[key] = _exact_int(algorithm[key], key)
    if algorithm["warmup_strategy"] not in _WARMUPS:
        algorithm["warmup_strategy"] = "constant"  # MXNet's meaning of any other string
    per_epoch = algorithm["updates_per_epoch"]
    init = _exact_int(opt.init_updates, "init_updates")
    begin_epoch = init // per_epoch if per_epoch else 0
    if begin_epoch * per_epoch != init:
        raise ValueError(
            f"init_updates = {init} is not begin_epoch·updates_per_epoch for a whole epoch"
        )
    algorithm["begin_epoch"] = begin_epoch


def _accumulation_to_file(
    opt: LBSGD,
    key: Hashable,
    entry: Any,
    master: Any,
    arrays: List[np.ndarray],
    known_dtype: str,
    shape: Optional[Tuple[int, ...]],
) -> Tuple[Dict[str, Any], Optional[np.ndarray]]:
    """LBSGD's accumulation of ``key`` as the file keeps it: the JSON entry (count and
    what the accumulator holds) and, with ``batch_scale > 1``, the accumulator as a
    dense array (its rows only are meaningful when it holds row-sparse gradients)."""
    count = _exact_int(entry["num_cums"] if entry else 0, f"LBSGD's num_cums of {key!r}")
    cum = entry["cum_grad"] if entry else 0
    held: Dict[str, Any]
    if isinstance(cum, int):
        held = {"count": count, "held": "zero"}
    elif is_row_sparse(cum):
        held = {"count": count, "held": "rows", "rows": int(cum.shape[0])}
        held["indices"] = cum.indices.tolist()
    else:
        held = {"count": count, "held": "dense"}
    if opt.batch_scale == 1:
        return held, None
    if not isinstance(cum, int):
        return held, cum.todense() if is_row_sparse(cum) else np.asarray(cum)
    # A reset accumulator: zeros of the weight's size (the file needs its length).
    dtype = np.float32 if master is not None else known_dtype
    if master is not None or arrays:
        return held, np.zeros((master if master is not None else arrays[0]).shape, dtype)
    if shape is None:
        raise ValueError(
            f"LBSGD: the weight of {key!r} was never seen by this Updater, so the size of "
            "its accumulator is unknown"
        )
    return held, np.zeros(shape, dtype)


def _by_priority(mults: Dict[Hashable, float]) -> List[Tuple[Hashable, float]]:
    """Multipliers with name keys first, so that an index key (which MXNet looks up
    before the name) wins when both map to the same parameter."""
    return sorted(mults.items(), key=lambda item: not isinstance(item[0], str))


def _is_scalar(value: Any) -> bool:
    return value is None or type(value) in (bool, int, float, str)


# ------------------------------------------------------------------------ load


def load(updater: Updater, path: Any, restore_random: bool = False) -> None:
    """Replace ``updater``'s states and its optimizer's settings with a checkpoint's (see
    :meth:`Updater.load`); nothing changes when it raises."""
    opt = updater.optimizer
    registry = _registry_name(opt)
    file_name, fields = _ALGORITHMS[registry]
    metadata, params = _core.checkpoint_read(os.fspath(path))
    entries = {}
    for entry in ("algorithm", "config", "state", "accumulation"):
        if entry not in metadata:
            raise ValueError(f"checkpoint: metadata has no {entry!r} entry")
        entries[entry] = _strict_json(metadata[entry], entry)
    algorithm, config, progress = entries["algorithm"], entries["config"], entries["state"]
    accumulation = entries["accumulation"]
    if not isinstance(accumulation, dict):
        raise ValueError("checkpoint: the accumulation entry must be a JSON object")
    python = _strict_json(metadata["python"], "python") if "python" in metadata else {}
    if not isinstance(python, dict):
        raise ValueError("checkpoint: the python entry must be a JSON object")
    got = _field(algorithm, "name", "algorithm")
    if got != file_name:
        raise ValueError(
            f"checkpoint: the file holds a {got!r} optimizer; this updater's optimizer is "
            f"{type(opt).__name__} ({file_name!r})"
        )
    # Settings go to a shallow twin first (copy.copy would drop param_dict, which the
    # optimizer's pickling leaves out), and replace the optimizer's once all are checked.
    trial = object.__new__(type(opt))
    trial.__dict__.update(opt.__dict__)
    for json_key, attr in fields:
        setattr(trial, attr, _hyper_value(algorithm, json_key, getattr(opt, attr)))
    if isinstance(trial, LBSGD):
        _lbsgd_from_json(trial, algorithm)
    lr = config.get("learning_rate") if isinstance(config, dict) else None
    trial.lr_scheduler = _scheduler_from_json(_field(config, "lr_scheduler", "config"))
    trial.lr = (
        _real(progress, "lr", "state")
        if trial.lr_scheduler is None
        else (None if lr is None else _real(config, "learning_rate", "config"))
    )
    trial.wd = _real(config, "wd", "config")
    trial.multi_precision = _bool(config, "multi_precision", "config")
    trial.begin_num_update = _count(config, "begin_num_update", "config")
    trial.num_update = _count(progress, "num_update", "state")
    rates = {k: _optional_real(progress, k, "state") for k in ("last_lr", "cur_lr")}
    if isinstance(trial, LARS):
        trial.last_lr, trial.cur_lr = rates["last_lr"], rates["cur_lr"]
    generator = _field(progress, "generator", "state")
    seed, streams = (_count(generator, k, "state.generator") for k in ("seed", "count"))
    if seed >= 2**64 or streams >= 2**64:
        raise ValueError("checkpoint: state.generator's seed and count must fit in 64 bits")
    # Attributes only some optimizers have (SGD's and Adam's lazy_update, Nadam's schedule).
    if hasattr(opt, "lazy_update"):
        trial.__dict__["lazy_update"] = _bool(config, "lazy_update", "config")
    if hasattr(opt, "m_schedule"):
        trial.__dict__["m_schedule"] = _real(progress, "m_schedule", "state")
    indices = python.get("indices", {})
    if not isinstance(indices, dict) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in indices.values()
    ):
        raise ValueError("checkpoint: python.indices must map names to integer indices")

    # A name goes back to the index it was saved from, or else to the index the
    # optimizer's param_idx2name gives it (files from Rust key by name only).
    by_name = {n: i for i, n in opt.idx2name.items()}

    def key_of(name: str) -> Hashable:
        index: Hashable = indices.get(name, by_name.get(name, name))
        return index

    mults = {}
    for which in ("lr_mult", "wd_mult"):
        table = _field(config, which, "config")
        if not isinstance(table, dict):
            raise ValueError(f"checkpoint: config.{which} must be a JSON object")
        mults[which] = {key_of(n): _real(table, n, f"config.{which}") for n in table}
    if _bool(config, "decay_by_suffix", "config"):
        # The Rust rule for every name: parameters of the file not ending in _weight or
        # _gamma (LARS: not ending in _weight) get no weight decay unless a multiplier
        # says otherwise.
        decayed = ("_weight",) if isinstance(trial, LARS) else ("_weight", "_gamma")
        for name in params:
            if not name.endswith(decayed):
                mults["wd_mult"].setdefault(key_of(name), 0.0)
    trial.lr_mult, trial.wd_mult = mults["lr_mult"], mults["wd_mult"]
    attributes = python.get("attributes", {}) if python.get("class") == registry else {}
    for attr, value in attributes.items() if isinstance(attributes, dict) else ():
        current = getattr(opt, attr, _MISSING)
        if current is _MISSING or attr in _HANDLED or attr.startswith("_") or not _is_scalar(value):
            raise ValueError(
                f"checkpoint: python.attributes.{attr} is not a setting of {type(opt).__name__}"
            )
        if not _same_kind(current, value):
            raise ValueError(
                f"checkpoint: python.attributes.{attr} = {value!r} does not fit the "
                f"current {current!r}"
            )
        setattr(trial, attr, value)
    counts: Dict[Hashable, int] = {}
    extra_counts = python.get("counts_without_state", {})
    for name in extra_counts if isinstance(extra_counts, dict) else ():
        counts[key_of(name)] = _count(extra_counts, name, "python.counts_without_state")
    uncounted = python.get("uncounted", [])
    if not isinstance(uncounted, list):
        raise ValueError("checkpoint: python.uncounted must be a list of names")
    template = _template(trial)
    states: Dict[Hashable, Any] = {}
    dtypes: Dict[Hashable, Any] = {}
    shapes: Dict[Hashable, Tuple[int, ...]] = {}
    # LBSGD keeps its accumulator (batch_scale > 1) as the last state array of the file.
    accumulates = isinstance(trial, LBSGD) and trial.batch_scale > 1
    cumgrads: Dict[Hashable, Dict[str, Any]] = {}
    unknown = [n for n in accumulation if n not in params]
    if unknown or (accumulation and not isinstance(trial, LBSGD)):
        raise ValueError(
            f"checkpoint: accumulation entries for {sorted(accumulation)!r}; only LBSGD "
            "accumulates, and only for parameters of the file"
        )
    for name, (count, dtype, master, arrays) in params.items():
        key: Hashable = key_of(name)
        slots = _slots(template) + accumulates
        if len(arrays) != slots:
            raise ValueError(
                f"checkpoint: parameter {name!r} has {len(arrays)} state arrays; "
                f"{type(opt).__name__} with these settings keeps {slots}"
            )
        if (master is not None) != (trial.multi_precision and dtype == "float16"):
            raise ValueError(
                f"checkpoint: parameter {name!r} ({dtype}) "
                + (
                    "has a master copy without"
                    if master is not None
                    else "lacks the master copy of"
                )
                + " multi_precision"
            )
        arrays = list(arrays)
        if isinstance(trial, LBSGD):
            buffer = arrays.pop() if accumulates else None
            cum = _accumulation_from_file(trial, name, accumulation.get(name), buffer)
            if cum is not None:
                cumgrads[key] = cum
            if buffer is not None:
                shapes[key] = buffer.shape
        if registry in _PER_ROW:
            # One value per row: a row count of the master copy, when there is one.
            if master is not None and any(
                (a.size == 0) != (master.size == 0) or (a.size and master.size % a.size)
                for a in arrays
            ):
                raise ValueError(
                    f"checkpoint: parameter {name!r} has per-row states whose length is not "
                    "a row count of its master copy"
                )
            arrays = [a.reshape(-1, 1) for a in arrays]
        if isinstance(trial, Test):
            arrays = [a.astype(np.float32) for a in arrays]
        states[key] = _join(trial, master, arrays, template)
        if name not in uncounted:
            counts[key] = count
        dtypes[key] = np.dtype(dtype)
    if isinstance(trial, LBSGD):
        trial.cumgrads = cumgrads
    trial._all_index_update_counts = {0: counts}
    trial._index_update_count = counts
    check = getattr(trial, "_hyper", None)
    if check is not None:
        try:
            check()
        except (TypeError, ValueError, NotImplementedError) as e:
            if not isinstance(e, NotImplementedError):
                raise ValueError(f"checkpoint: invalid hyper-parameters: {e}") from None
    # Everything is checked: commit.
    opt.__dict__.clear()
    opt.__dict__.update(trial.__dict__)
    updater.states = states
    updater.states_synced = dict.fromkeys(states, False)
    updater._weight_dtypes = dtypes
    updater._weight_shapes = shapes
    if restore_random:
        random._restore(seed, streams)


_MISSING = object()


def _optional_real(obj: Any, key: str, what: str) -> Optional[float]:
    return None if _field(obj, key, what) is None else _real(obj, key, what)


def _lbsgd_from_json(trial: LBSGD, algorithm: Any) -> None:
    """LBSGD's whole-number fields, its warm-up strategy and ``init_updates``."""
    for key in ("warmup_epochs", "batch_scale", "updates_per_epoch"):
        setattr(trial, key, _count(algorithm, key, "algorithm"))
    begin_epoch = _count(algorithm, "begin_epoch", "algorithm")
    if trial.batch_scale < 1:
        raise ValueError("checkpoint: algorithm.batch_scale must be at least 1")
    if trial.warmup_strategy not in _WARMUPS:
        raise ValueError(
            f"checkpoint: algorithm.warmup_strategy must be one of {_WARMUPS}, got "
            f"{trial.warmup_strategy!r}"
        )
    limit = 2**63
    if max(trial.warmup_epochs, begin_epoch) * trial.updates_per_epoch >= limit:
        raise ValueError("checkpoint: the epoch counts times updates_per_epoch exceed 63 bits")
    trial.init_updates = begin_epoch * trial.updates_per_epoch


def _accumulation_from_file(
    trial: LBSGD, name: str, entry: Any, buffer: Optional[np.ndarray]
) -> Optional[Dict[str, Any]]:
    """The ``cumgrads`` entry of a parameter (``None`` before its first gradient), checked
    as the Rust reader checks it."""
    what = f"accumulation[{name!r}]"
    if entry is None:
        entry = {"count": 0, "held": "zero"}
    count = _count(entry, "count", what)
    held = _field(entry, "held", what)
    if count >= 2**63:
        raise ValueError(f"checkpoint: {what}.count {count} is too large")
    if count and count <= trial.init_updates:
        raise ValueError(
            f"checkpoint: {what}.count {count} is not past the starting epoch's "
            f"{trial.init_updates} updates"
        )
    if (count % trial.batch_scale != 0) != (held != "zero"):
        raise ValueError(
            f"checkpoint: {what}: the accumulator must hold gradients exactly when the count "
            f"({count}) is not a multiple of batch_scale ({trial.batch_scale})"
        )
    cum: Any = 0
    if held == "dense" and buffer is not None:
        cum = buffer
    elif held == "rows" and buffer is not None:
        rows = _count(entry, "rows", what)
        indices = _field(entry, "indices", what)
        size = int(buffer.size)
        if rows == 0 or size % rows:
            raise ValueError(
                f"checkpoint: {what}: {rows} rows do not divide the accumulator's {size} values"
            )
        if not isinstance(indices, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in indices
        ):
            raise ValueError(f"checkpoint: {what}.indices must be a list of row numbers")
        dense = buffer.reshape(rows, -1)
        try:
            cum = RowSparseNDArray(dense[indices], np.array(indices, np.int64), dense.shape)
        except (ValueError, IndexError) as e:
            raise ValueError(f"checkpoint: {what}: held rows: {e}") from None
    elif held != "zero":
        raise ValueError(f"checkpoint: {what}.held must be 'zero', 'dense' or 'rows', got {held!r}")
    return {"cum_grad": cum, "num_cums": count} if count else None


def _same_kind(current: Any, value: Any) -> bool:
    """Whether a Python-only attribute from a file may replace ``current``: the same type,
    any finite number for a number, or ``None`` on either side (LARS's ``last_lr``)."""
    if current is None or value is None:
        return True
    if isinstance(current, bool) or isinstance(value, bool) or isinstance(current, str):
        return type(current) is type(value)
    return isinstance(value, (int, float)) and math.isfinite(value)


def _bool(obj: Any, key: str, what: str) -> bool:
    value = _field(obj, key, what)
    if not isinstance(value, bool):
        raise ValueError(f"checkpoint: {what}.{key} must be true or false, got {value!r}")
    return value


def _hyper_value(algorithm: Any, key: str, current: Any) -> Any:
    """A hyper-parameter from the file, of the kind the attribute holds now."""
    value = _field(algorithm, key, "algorithm")
    if value is None and key in _OPTIONAL:
        return None
    if isinstance(current, bool) or isinstance(value, bool):
        if isinstance(current, bool) and isinstance(value, bool):
            return value
    elif isinstance(current, str) or isinstance(value, str):
        if isinstance(current, str) and isinstance(value, str):
            return value
    elif isinstance(value, (int, float)) and math.isfinite(value):
        return value
    raise ValueError(f"checkpoint: algorithm.{key} = {value!r} is not a valid value")
