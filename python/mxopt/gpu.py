"""The GPU path: optimizer updates of arrays that live on a GPU (Vulkan, through wgpu).

Weights, gradients and optimizer states stay on the device; an :class:`Updater` step over
a list of weights is one compute dispatch (LARS and LAMB: one submission of a few passes),
with the numbers of mxopt's CPU optimizers within a few float32 ulps::

    import numpy as np
    import mxopt
    from mxopt import gpu

    dev = gpu.Device()                      # RuntimeError naming what is missing
    weights = [dev.array(np.ones((256, 128), np.float32)), dev.array(np.zeros(128, np.float32))]
    grads = [dev.zeros(w.shape) for w in weights]
    updater = gpu.Updater(mxopt.optimizer.Adam(learning_rate=0.01))
    for batch in range(3):
        for g in grads:                     # or written by a GPU backward pass
            g.copy_from(np.full(g.shape, 0.5, np.float32))
        updater([0, 1], grads, weights)     # one dispatch for both tensors
    w0 = weights[0].asnumpy()

The :class:`Updater` runs the optimizer's own Python logic (update counts, learning-rate
schedulers, ``lr_mult``/``wd_mult``, ``rescale_grad``, ``clip_gradient``, bias
corrections, multi-precision) and only the per-element maths on the device. Float16
weights need ``multi_precision=True`` (float32 master copies and states on the device).
SGLD draws its noise on the device from mxopt's seed (see :class:`Updater`): the same
seed replays a GPU run exactly, with other noise values than the CPU's.

Present in every build; without the ``wgpu`` cargo feature, :class:`Device` raises a
``RuntimeError`` saying how to build a wheel with it.
"""

from __future__ import annotations

import copy
import pickle
from typing import TYPE_CHECKING, Any, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from . import _core, random
from .optimizer import LAMB, LARS, LBSGD, NAG, SGD, SGLD, Optimizer, Test
from .optimizer import Updater as CpuUpdater
from .optimizer._kernel import (
    AdaptiveKernelOptimizer,
    MomentumKernelOptimizer,
    is_row_sparse,
    kernel_clip,
)
from .optimizer._layerwise import _F32_MAX, check_kernel_params
from .optimizer.contrib import GroupAdaGrad
from .optimizer.lbsgd import _shaped
from .optimizer.sgld import _noise_scale

__all__ = ["AVAILABLE", "Device", "GpuArray", "Updater", "supported"]

#: Whether this build of mxopt has the GPU path (the ``wgpu`` cargo feature).
AVAILABLE: bool = bool(getattr(_core, "HAS_WGPU", False))

_NOT_BUILT = (
    "mxopt was built without GPU support (the 'wgpu' cargo feature); rebuild it with "
    "`maturin develop --release --features python,wgpu`, or `pip install .` from a "
    "checkout whose pyproject.toml lists 'wgpu' in [tool.maturin] features (the default)"
)

if TYPE_CHECKING or AVAILABLE:
    from ._core import GpuArray
    from ._core import GpuDevice as Device
else:

    class Device:
        """Stand-in of a build without the GPU path: constructing it raises."""

        def __init__(self) -> None:
            raise RuntimeError(_NOT_BUILT)

    class GpuArray:
        """Stand-in of a build without the GPU path: no instance can exist."""

        def __init__(self) -> None:
            raise RuntimeError(_NOT_BUILT)


def supported(optimizer: Optimizer) -> bool:
    """Whether :class:`Updater` can run ``optimizer`` on the device."""
    return _plan_class(optimizer) is not None


#: Per-index scalars of one call: lrs, wds, counts, a per-index extra (Nadam's schedule,
#: LARS's ``scaled``) and the key of the native call the index joins.
_Scalars = Tuple[List[float], List[float], List[int], List[Any], List[Any]]


class _Plan:
    """How an optimizer runs on the device, through the optimizer's own Python logic
    for every scalar: hyper-parameter checks, the preamble of a chunk (counts, lrs, wds),
    and the native call of a group of indices sharing a key."""

    #: The state arrays per weight the kernel reads (set by :meth:`check`); ``None``:
    #: the state picks the kernel, or is ignored.
    reads: Optional[int] = None
    #: The shape of each state array: the weight's, or ``(rows, 1)`` of a 2-d weight.
    row_states = False

    def __init__(self, optimizer: Any, updater: Updater) -> None:
        self.opt = optimizer
        self.updater = updater

    def check(self, indices: List[Any], weights: List[Any]) -> None:
        """Refuses bad hyper-parameters (and weights the device path cannot take) before
        anything is counted, as on the CPU."""
        self.kernel = self.opt._kernel(self.opt.kernel, self.opt._hyper())
        self.reads = self.kernel.num_states

    def chunk(self, indices: List[Any], states: List[Any]) -> _Scalars:
        lrs, wds, ts, schedules = self.opt._steps(indices)
        extra = schedules if schedules is not None else [None] * len(indices)
        return lrs, wds, ts, extra, [None] * len(indices)

    def run(self, key: Any, args: Dict[str, Any], extra: List[Any]) -> None:
        schedules = None if extra[0] is None else extra
        _core.gpu_step(kernel=self.kernel, schedules=schedules, **args)


class _SgdPlan(_Plan):
    def check(self, indices: List[Any], weights: List[Any]) -> None:
        self.kernel, self.reads_momentum = self.opt._dense_kernel(self.opt._hyper())
        self.reads = 1 if self.reads_momentum else None

    def chunk(self, indices: List[Any], states: List[Any]) -> _Scalars:
        lrs, wds, ts, _ = self.opt._preamble(indices)
        return lrs, wds, ts, [None] * len(indices), [None] * len(indices)

    def run(self, key: Any, args: Dict[str, Any], extra: List[Any]) -> None:
        if not self.reads_momentum:
            args["states"] = []
        _core.gpu_step(kernel=self.kernel, **args)


class _NagPlan(_Plan):
    def check(self, indices: List[Any], weights: List[Any]) -> None:
        self.hyper = self.opt._hyper()

    def chunk(self, indices: List[Any], states: List[Any]) -> _Scalars:
        lrs, wds, ts, _ = self.opt._sequential_preamble(indices)
        # The kernel follows the state, as on the CPU: plain SGD without a momentum.
        keys = [self.opt._kernel_name(s) for s in states]
        return lrs, wds, ts, [None] * len(indices), keys

    def run(self, key: Any, args: Dict[str, Any], extra: List[Any]) -> None:
        _core.gpu_step(kernel=self.opt._kernel(key, self.hyper), **args)


class _LarsPlan(_Plan):
    def check(self, indices: List[Any], weights: List[Any]) -> None:
        self.opt._check_params()
        self.reads = 1 if self.opt.momentum > 0 else None

    def chunk(self, indices: List[Any], states: List[Any]) -> _Scalars:
        # The momentum (corrected by the scheduler's lr ratio) may change between chunks.
        lrs, wds, ts, momentum = self.opt._lars_preamble(indices)
        return lrs, wds, ts, self.opt._scaled(indices), [momentum] * len(indices)

    def run(self, key: Any, args: Dict[str, Any], extra: List[Any]) -> None:
        if not self.opt.momentum > 0:
            args["states"] = []  # the CPU path too ignores a state without momentum
        _core.gpu_lars(scaled=extra, **args, **self.opt._kernel_kwargs(key))


class _LambPlan(_Plan):
    def check(self, indices: List[Any], weights: List[Any]) -> None:
        self.opt._check_params()
        self.hyper = self.opt._kernel_kwargs()
        self.reads = 2

    def chunk(self, indices: List[Any], states: List[Any]) -> _Scalars:
        lrs, wds, ts, _ = self.opt._sequential_preamble(indices)
        return lrs, wds, ts, [None] * len(indices), [None] * len(indices)

    def run(self, key: Any, args: Dict[str, Any], extra: List[Any]) -> None:
        _core.gpu_lamb(write_master=self.opt.update_master_copy, **args, **self.hyper)


class _GroupAdaGradPlan(_Plan):
    reads = 1
    row_states = True

    def check(self, indices: List[Any], weights: List[Any]) -> None:
        # Float16 weights come with multi_precision (Updater._check): float32 masters.
        for i, w in enumerate(weights):
            at = f"[{i}]" if len(weights) > 1 else ""
            if w.ndim != 2:
                raise ValueError(
                    f"weight{at}: GroupAdaGrad needs a 2-d weight (rows, columns), got "
                    f"shape {w.shape}"
                )

    def chunk(self, indices: List[Any], states: List[Any]) -> _Scalars:
        lrs = self.opt._learning_rates(indices)
        none = [None] * len(indices)
        return lrs, [0.0] * len(indices), [1] * len(indices), none, none

    def run(self, key: Any, args: Dict[str, Any], extra: List[Any]) -> None:
        opt = self.opt
        _core.gpu_group_adagrad(
            args["device"],
            args["weights"],
            args["grads"],
            args["states"],
            args["lrs"],
            epsilon=opt.float_stable_eps,
            rescale_grad=opt.rescale_grad,
            clip_gradient=opt.clip_gradient,
            masters=args["masters"],
        )


class _NoisySgldPlan(_Plan):
    """SGLD with its Langevin noise drawn on the device (Threefry keyed by mxopt's
    generator): each weight of a chunk takes the next stream of :mod:`mxopt.random` in
    list order, as the CPU optimizer does, so the generator ends where the CPU's would."""

    def chunk(self, indices: List[Any], states: List[Any]) -> _Scalars:
        lrs, wds, ts, _ = self.opt._steps(indices)
        # A negative lr (no noise scale) is refused before a stream is taken.
        scales = [_noise_scale(lr) for lr in lrs]
        keys = [(scale, *random.next_stream()) for scale in scales]
        return lrs, wds, ts, keys, [None] * len(indices)

    def run(self, key: Any, args: Dict[str, Any], extra: List[Any]) -> None:
        scales, seeds, streams = (list(column) for column in zip(*extra))
        _core.gpu_step_noisy(
            kernel=self.kernel, scales=scales, seeds=seeds, streams=streams, **args
        )


class _TestOptimizerPlan(_Plan):
    """MXNet's ``Test`` optimizer: no count, no learning rate, only ``rescale_grad``."""

    reads = 1

    def check(self, indices: List[Any], weights: List[Any]) -> None:
        """Nothing to build on the host: ``gpu_test`` refuses a bad ``rescale_grad``."""

    def chunk(self, indices: List[Any], states: List[Any]) -> _Scalars:
        n = len(indices)
        return [0.0] * n, [0.0] * n, [0] * n, [None] * n, [None] * n

    def run(self, key: Any, args: Dict[str, Any], extra: List[Any]) -> None:
        _core.gpu_test(
            args["device"],
            args["weights"],
            args["grads"],
            args["states"],
            self.opt.rescale_grad,
            masters=args["masters"],
        )


class _LbsgdPlan(_Plan):
    """LBSGD: the optimizer's own counts, accumulation counts and warm-up multipliers;
    each weight's accumulator lives on the device next to its momentum. ``cumgrads``
    holds, as on the CPU, ``0`` after a reset, the caller's gradient after a first
    accumulation of a float32 weight (MXNet keeps it by reference: overwriting that
    array changes the sum), else the device accumulator."""

    def check(self, indices: List[Any], weights: List[Any]) -> None:
        opt = self.opt
        check_kernel_params(opt, "momentum", "rescale_grad", "clip_gradient", "batch_scale")
        if not opt.batch_scale > 0:
            raise ValueError(f"batch_scale must be positive, got {opt.batch_scale!r}")
        if not (opt.batch_scale == int(opt.batch_scale) and opt.batch_scale < 2**63):
            raise ValueError(
                f"batch_scale must be a whole number below 2**63 on the GPU, got "
                f"{opt.batch_scale!r}"
            )
        # A sum loaded from a CPU checkpoint must fit its weight (before anything counts).
        for index, weight in zip(indices, weights):
            kept = len(_leaves(self.updater.states[index]))
            if kept > 1:
                raise ValueError(
                    f"state of index {index!r}: LBSGD keeps a momentum array or no state, "
                    f"got {kept} arrays"
                )
            cgrad = opt.cumgrads.get(index)
            if cgrad and cgrad["num_cums"] > 0 and not isinstance(cgrad["cum_grad"], int):
                _shaped(cgrad["cum_grad"], weight)

    def chunk(self, indices: List[Any], states: List[Any]) -> _Scalars:
        opt = self.opt
        lrs, wds, ts, extra = [], [], [], []
        for index in indices:
            cgrad = opt.cumgrads.get(index)
            running = bool(cgrad) and cgrad["num_cums"] > 0
            # As the CPU: the rate is read before the update is counted.
            lrs.append(opt._get_lr(index))
            wds.append(opt._get_wd(index))
            opt._update_count(index)
            ts.append(opt._index_update_count[index])
            count = cgrad["num_cums"] + 1 if running else opt.init_updates + 1
            finishes = count % opt.batch_scale == 0
            lars = opt.warmup_strategy == "lars"
            multiplier = opt._get_lbmult(count) if finishes and not lars else 1.0
            held = cgrad["cum_grad"] if running else None
            extra.append((index, held, count, finishes, multiplier))
        # As on the CPU, the kernel follows the state: a weight whose state has no
        # momentum (created while momentum was 0) takes plain SGD steps.
        keys = [bool(_leaves(s)) and opt.momentum != 0.0 for s in states]
        return lrs, wds, ts, extra, keys

    def _accumulator(self, index: Hashable, weight: GpuArray, held: Any) -> Tuple[Any, bool]:
        """``index``'s device accumulator holding ``held`` (``None``: nothing yet; ``0``:
        reset; the caller's gradient, a host array of a CPU checkpoint, or the
        accumulator itself), and whether it is fresh."""
        accumulators = self.updater._accumulators
        acc = accumulators.get(index)
        if acc is None:
            assert self.updater.device is not None
            acc = accumulators[index] = self.updater.device.zeros(weight.shape)
        if held is None or isinstance(held, int):
            return acc, True
        if held is not acc:
            if isinstance(held, GpuArray):
                host = held.asnumpy().astype(np.float32)
            else:
                host = _shaped(held, weight)
                host = host.todense() if is_row_sparse(host) else np.asarray(host)
            acc.copy_from(np.asarray(host, dtype=np.float32, order="C"))
        return acc, False

    def run(self, key: Any, args: Dict[str, Any], extra: List[Any]) -> None:
        opt = self.opt
        accumulates = opt.batch_scale > 1
        per_weight = 1 if key else 0
        states: List[Any] = []
        fresh: List[bool] = []
        accumulators: List[Any] = []
        for i, (index, held, _, _, _) in enumerate(extra):
            states.extend(args["states"][i * per_weight : (i + 1) * per_weight])
            if accumulates:
                acc, is_fresh = self._accumulator(index, args["weights"][i], held)
                states.append(acc)
                accumulators.append(acc)
                fresh.append(is_fresh)
            else:
                fresh.append(True)
        args["states"] = states
        _core.gpu_lbsgd(
            fresh=fresh,
            finishes=[e[3] for e in extra],
            multipliers=[e[4] for e in extra],
            momentum=opt.momentum if key else 0.0,
            rescale_grad=opt.rescale_grad,
            batch_scale=int(opt.batch_scale),
            lars_warmup=opt.warmup_strategy == "lars",
            clip_gradient=kernel_clip(opt.clip_gradient),
            **args,
        )
        mixed = args["masters"] is not None
        for i, (index, held, count, finishes, _) in enumerate(extra):
            if finishes:
                cum: Any = 0
            elif held is None and not mixed:
                cum = args["grads"][i]  # MXNet keeps a first gradient by reference
            else:
                cum = accumulators[i]
            opt.cumgrads[index] = {"cum_grad": cum, "num_cums": count}


def _plan_class(optimizer: Optimizer) -> Optional[type]:
    if isinstance(optimizer, LBSGD):
        return _LbsgdPlan
    if isinstance(optimizer, LARS):
        return _LarsPlan
    if isinstance(optimizer, LAMB):
        return _LambPlan
    if isinstance(optimizer, SGD):
        return _SgdPlan
    if isinstance(optimizer, NAG):
        return _NagPlan
    if isinstance(optimizer, SGLD):
        return _NoisySgldPlan if optimizer.add_noise else _Plan
    if isinstance(optimizer, AdaptiveKernelOptimizer):
        return _Plan
    if isinstance(optimizer, GroupAdaGrad):
        return _GroupAdaGradPlan
    if isinstance(optimizer, Test):
        return _TestOptimizerPlan
    return None


def _unsupported(optimizer: Optimizer) -> TypeError:
    name = type(optimizer).__name__
    return TypeError(
        f"optimizer: {name} has no GPU path (use mxopt.optimizer.Updater on the host); "
        "supported: SGD, ccSGD, NAG, LARS, LAMB, LBSGD, Adam, Adamax, Nadam, AdaGrad, "
        "AdaDelta, RMSProp, FTML, Ftrl, Signum, DCASGD, GroupAdaGrad, SGLD and Test"
    )


def _leaves(state: Any) -> List[Any]:
    """The arrays of a state object in order (nested tuples/lists; ``None`` skipped): the
    kernels' state arrays, in ``create_state`` order."""
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [leaf for item in state for leaf in _leaves(item)]
    return [state]


def _map_leaves(state: Any, f: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_map_leaves(item, f) for item in state)
    return f(state)


def _master_first(optimizer: Optimizer) -> bool:
    """Where ``create_state_multi_precision`` puts the float32 master: ``(master, state)``
    generally (LBSGD too), ``(momentum, master)`` for the SGD family (MXNet's layouts)."""
    return isinstance(optimizer, LBSGD) or not isinstance(optimizer, MomentumKernelOptimizer)


class Updater:
    """Applies ``optimizer`` to weights on a GPU, keeping their states on the device.

    Like :class:`mxopt.optimizer.Updater` (same call, same numbers), with
    :class:`GpuArray` weights and gradients: ``updater(index, grad, weight)`` with one
    index or lists of them. A list is updated in one dispatch per precision; the first
    call of a list lays its arrays out together on the device (a device-side copy, once),
    so keep passing the same list in the same order.

    Parameters
    ----------
    optimizer : Optimizer
        SGD, ccSGD, NAG, LARS, LAMB, LBSGD, Adam, Adamax, Nadam, AdaGrad, AdaDelta,
        RMSProp, FTML, Ftrl, Signum, DCASGD, GroupAdaGrad, SGLD or Test (``TypeError``
        otherwise).

    Attributes
    ----------
    states : dict
        Index -> the optimizer's state as ``create_state`` makes it, with
        :class:`GpuArray` in place of NumPy arrays.
    masters : dict
        Index -> float32 master copy (float16 weights with ``multi_precision``).
    device : Device or None
        The device of the weights (set by the first call).

    Notes
    -----
    SGLD's noise is drawn on the device (Threefry): each update of each weight takes the
    next stream of :mod:`mxopt.random`, in the CPU optimizer's order, so
    ``mxopt.random.seed(n)`` replays a GPU run bit for bit and leaves the generator where
    the CPU would — but the noise values are not the CPU's (another normal generator);
    its distribution, ``N(0, sqrt(lr))``, is the same.

    Updates are asynchronous: a call returns once the work is submitted;
    :meth:`GpuArray.asnumpy` and :meth:`Device.synchronize` wait for it. States are
    created from the optimizer's ``create_state_multi_precision`` on a host copy of the
    weight (one download and upload per new index).
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if _plan_class(optimizer) is None:
            raise _unsupported(optimizer)
        self.optimizer = optimizer
        self.states: Dict[Hashable, Any] = {}
        self.masters: Dict[Hashable, GpuArray] = {}
        self.device: Optional[Device] = None
        #: States loaded by :meth:`set_states`, uploaded when their index is next seen.
        self._loaded: Dict[Hashable, Any] = {}
        #: LBSGD's accumulator of each index (float32, the weight's shape).
        self._accumulators: Dict[Hashable, GpuArray] = {}
        self.aggregate_updates = optimizer.aggregate_num > 0

    # ------------------------------------------------------------------ checks

    def _check(self, indices: Sequence[Any], grads: Sequence[Any], weights: Sequence[Any]) -> None:
        """Everything checkable before a count moves: types, device, dtypes, shapes,
        distinct indices and arrays."""
        if not len(indices) == len(grads) == len(weights):
            raise ValueError(
                f"index, grad and weight must have equal lengths, got {len(indices)}, "
                f"{len(grads)} and {len(weights)}"
            )
        seen_index: Dict[Hashable, int] = {}
        seen_array: Dict[int, str] = {}
        multi = len(weights) > 1
        for i, (idx, g, w) in enumerate(zip(indices, grads, weights)):
            at = f"[{i}]" if multi else ""
            for name, a in (("weight", w), ("grad", g)):
                if not isinstance(a, GpuArray):
                    raise TypeError(
                        f"{name}{at}: expected a mxopt.gpu.GpuArray, got {type(a).__name__}"
                    )
                if id(a) in seen_array:
                    raise ValueError(
                        f"{name}{at}: is the same array as {seen_array[id(a)]}; every "
                        "array of a call must be distinct"
                    )
                seen_array[id(a)] = f"{name}{at}"
            if w.dtype == np.float16 and not self.optimizer.multi_precision:
                raise TypeError(
                    f"weight{at}: float16 weights need multi_precision=True on the GPU (its "
                    "states and master copies are float32)"
                )
            if g.dtype != w.dtype or g.shape != w.shape:
                raise ValueError(
                    f"grad{at}: expected the weight's shape {w.shape} and dtype {w.dtype}, "
                    f"got {g.shape} {g.dtype}"
                )
            if idx in seen_index:
                raise ValueError(f"index: {idx!r} appears twice in one call")
            seen_index[idx] = i

    # ------------------------------------------------------------------ states

    def _upload(self, host: Any, where: str) -> Any:
        assert self.device is not None
        device = self.device

        def upload(leaf: Any) -> GpuArray:
            array = np.asarray(leaf, order="C")  # keeps 0-d arrays 0-d
            if array.dtype != np.float32:
                raise TypeError(f"{where}: GPU states are float32, got {array.dtype}")
            return device.array(array)

        return _map_leaves(host, upload)

    def _create_state(self, index: Hashable, weight: GpuArray) -> None:
        """The optimizer's own initial state (of a host copy of the weight), uploaded."""
        host = self.optimizer.create_state_multi_precision(index, weight.asnumpy())
        self._set_host_state(index, host, weight.dtype == np.float16)

    def _set_host_state(self, index: Hashable, host: Any, mixed: bool) -> None:
        where = f"state of {index!r}"
        if mixed:
            if not (isinstance(host, (tuple, list)) and len(host) == 2):
                raise TypeError(f"{where}: expected a (master, state) pair, got {host!r}")
            master, inner = host if _master_first(self.optimizer) else host[::-1]
            self.masters[index] = self._upload(master, where)
        else:
            inner = host
            self.masters.pop(index, None)
        self.states[index] = self._upload(inner, where)

    def _host_state(self, index: Hashable) -> Any:
        """The state in the CPU optimizer's layout, downloaded."""
        inner = _map_leaves(self.states[index], lambda a: a.asnumpy())
        master = self.masters.get(index)
        if master is None:
            return inner
        m = master.asnumpy()
        return (m, inner) if _master_first(self.optimizer) else (inner, m)

    def get_states(self, dump_optimizer: bool = False) -> bytes:
        """The states as :meth:`mxopt.optimizer.Updater.get_states` writes them (NumPy
        arrays in the CPU optimizer's layout): a CPU updater loads them, and so does
        :meth:`set_states`. Waits for submitted updates."""
        states = {index: self._host_state(index) for index in self.states}
        return pickle.dumps((states, self._host_optimizer()) if dump_optimizer else states)

    def _host_optimizer(self) -> Optimizer:
        """The optimizer as the CPU pickles it: LBSGD's accumulated sums downloaded."""
        cumgrads = getattr(self.optimizer, "cumgrads", None)
        if not cumgrads:
            return self.optimizer
        host = copy.copy(self.optimizer)
        host.cumgrads = {  # type: ignore[attr-defined]
            index: {
                **c,
                "cum_grad": c["cum_grad"].asnumpy()
                if isinstance(c["cum_grad"], GpuArray)
                else c["cum_grad"],
            }
            for index, c in cumgrads.items()
        }
        return host

    def set_states(self, states: bytes, safe: bool = False) -> None:
        """Loads a blob of :meth:`get_states` or of the CPU updater (``safe``: its
        restricted unpickler). The states are uploaded when their index is next updated;
        a pickled optimizer replaces ``optimizer`` (it must have a GPU path)."""
        cpu = CpuUpdater(self.optimizer)
        cpu.set_states(states, safe=safe)
        if _plan_class(cpu.optimizer) is None:
            raise _unsupported(cpu.optimizer)
        self.optimizer = cpu.optimizer
        self._loaded = dict(cpu.states)
        self.states.clear()
        self.masters.clear()
        self._accumulators.clear()

    # ------------------------------------------------------------------ update

    def __call__(self, index: Any, grad: Any, weight: Any) -> None:
        """Update ``weight`` on the device from ``grad`` (note the order: grad first).

        ``index``, ``grad`` and ``weight`` are one index and two :class:`GpuArray`, or
        equal-length lists of them. Refused calls (``TypeError``/``ValueError`` naming
        the argument) leave every array and count as they were; a state created by a
        refused call is dropped.
        """
        if isinstance(index, (list, tuple)):
            for name, value in (("grad", grad), ("weight", weight)):
                if not isinstance(value, (list, tuple)):
                    raise TypeError(
                        f"{name}: expected a list of GpuArray like index, got "
                        f"{type(value).__name__}"
                    )
            indices, grads, weights = list(index), list(grad), list(weight)
        else:
            indices, grads, weights = [index], [grad], [weight]
        indices = [i.decode("utf-8") if isinstance(i, bytes) else i for i in indices]
        self._check(indices, grads, weights)
        if not weights:
            return
        device = self._device_of(weights, grads)
        if self.device is None:
            self.device = device
        pending = []
        try:
            for idx, w in zip(indices, weights):
                if idx in self.states:
                    continue
                pending.append(idx)
                if idx in self._loaded:
                    self._set_host_state(idx, self._loaded[idx], w.dtype == np.float16)
                else:
                    self._create_state(idx, w)
            self._update(indices, grads, weights)
        except BaseException:
            # A loaded state stays loaded: the next call uploads it again.
            for idx in pending:
                self.states.pop(idx, None)
                self.masters.pop(idx, None)
            raise
        for idx in pending:
            self._loaded.pop(idx, None)

    def _device_of(self, weights: Sequence[GpuArray], grads: Sequence[GpuArray]) -> Device:
        """The updater's device (the first weight's at the first call); every array of
        the call must live on it."""
        device = self.device if self.device is not None else weights[0].device
        multi = len(weights) > 1
        for name, arrays in (("weight", weights), ("grad", grads)):
            for i, a in enumerate(arrays):
                if a.device is not device:
                    at = f"[{i}]" if multi else ""
                    raise ValueError(
                        f"{name}{at}: lives on another device than the updater's ({device!r})"
                    )
        return device

    def _check_states(self, plan: _Plan, indices: List[Any], weights: List[Any]) -> None:
        """Refuses, before anything is counted, states the kernel cannot take: a state
        loaded by :meth:`set_states` from another optimizer or weight, or one created
        before a hyper-parameter change (momentum 0 -> 0.9) that needs another layout."""
        for index, w in zip(indices, weights):
            leaves = _leaves(self.states[index])
            where = f"state of index {index!r}"
            if plan.reads is not None and len(leaves) != plan.reads:
                raise ValueError(
                    f"{where}: {type(self.optimizer).__name__} reads {plan.reads} state "
                    f"array(s) per weight with these settings, got {len(leaves)}"
                )
            shape = (w.shape[0], 1) if plan.row_states and w.ndim == 2 else w.shape
            master = self.masters.get(index)
            expected = [(a, shape) for a in leaves] + (
                [(master, w.shape)] if master is not None else []
            )
            for a, want in expected:
                if a.shape != want or a.dtype != np.float32:
                    raise ValueError(
                        f"{where}: expected float32 arrays of shape {want}, got {a.dtype} {a.shape}"
                    )

    def _order(self, weights: Sequence[GpuArray]) -> List[List[int]]:
        """Positions in the chunks the CPU Updater would hand the optimizer: grouped by
        dtype (optimizers that aggregate by dtype), then ``aggregate_num`` at a time."""
        positions = list(range(len(weights)))
        if self.optimizer.aggregates_by_dtype:
            groups: Dict[Any, List[int]] = {}
            for i in positions:
                groups.setdefault(weights[i].dtype, []).append(i)
            runs = list(groups.values())
        else:
            runs = [positions]
        size = self.optimizer.aggregate_num if self.aggregate_updates else 1
        if size < 1:
            raise ValueError(
                f"optimizer.aggregate_num must be at least 1 while the updater aggregates, "
                f"got {size}"
            )
        return [run[k : k + size] for run in runs for k in range(0, len(run), size)]

    def _update(self, indices: List[Any], grads: List[Any], weights: List[Any]) -> None:
        """The CPU Updater's preamble chunk by chunk, then one native call per (precision,
        key): normally one for the whole list."""
        plan_class = _plan_class(self.optimizer)
        assert plan_class is not None
        plan = plan_class(self.optimizer, self)
        plan.check(indices, weights)
        self._check_states(plan, indices, weights)
        n = len(weights)
        lrs: List[float] = [0.0] * n
        wds: List[float] = [0.0] * n
        ts: List[int] = [0] * n
        extra: List[Any] = [None] * n
        calls: Dict[Tuple[bool, Any], List[int]] = {}
        states = [self.states[i] for i in indices]
        for chunk in self._order(weights):
            scalars = plan.chunk([indices[i] for i in chunk], [states[i] for i in chunk])
            for k, i in enumerate(chunk):
                lrs[i], wds[i], ts[i], extra[i], key = (column[k] for column in scalars)
                calls.setdefault((weights[i].dtype == np.float16, key), []).append(i)
        # What the kernels refuse in any group is refused before the first group runs.
        for name, values in (("lr", lrs), ("wd", wds)):
            for i, value in enumerate(values):
                if not abs(value) <= _F32_MAX:
                    where = f"weight[{i}]" if n > 1 else "the weight"
                    raise ValueError(f"{name} of {where} must be finite in float32, got {value}")
        for (mixed, key), group in calls.items():
            args = {
                "device": self.device,
                "weights": [weights[i] for i in group],
                "grads": [grads[i] for i in group],
                "states": [a for i in group for a in _leaves(states[i])],
                "lrs": [lrs[i] for i in group],
                "wds": [wds[i] for i in group],
                "ts": [ts[i] for i in group],
                "masters": [self.masters[indices[i]] for i in group] if mixed else None,
            }
            plan.run(key, args, [extra[i] for i in group])
