"""``Updater``: applies an optimizer to indexed weights and owns their states.

Behaviour follows MXNet 1.6.0 ``mxnet.optimizer.Updater`` (spec: optimizer-base.md §10),
including dtype-grouped aggregation and pickled state save/restore, plus an opt-in
restricted loader for state blobs from untrusted sources.
"""

from __future__ import annotations

import importlib
import io
import pickle
from codecs import encode as codecs_encode
from typing import Any, Callable, Dict, Hashable, List, Tuple

import numpy as np

from .. import lr_scheduler
from .base import Optimizer

__all__ = ["Updater", "get_updater"]

# NumPy's pickle reconstructors, by (submodule of numpy._core / numpy.core, name).
_NUMPY_RECONSTRUCTORS = {
    ("multiarray", "_reconstruct"),
    ("multiarray", "scalar"),
    ("numeric", "_frombuffer"),
}
_NUMPY_TYPES = {"ndarray": np.ndarray, "dtype": np.dtype}
# Builtins that pickles of plain containers and numbers may name (protocol 2 names the
# module ``__builtin__``; ``_codecs.encode`` rebuilds bytes in protocol-2 pickles).
_SAFE_BUILTINS = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("__builtin__", "complex"): complex,
    ("__builtin__", "bytearray"): bytearray,
    ("_codecs", "encode"): codecs_encode,
}
_SCHEDULER_CLASSES = (
    lr_scheduler.LRScheduler,
    lr_scheduler.FactorScheduler,
    lr_scheduler.MultiFactorScheduler,
    lr_scheduler.PolyScheduler,
    lr_scheduler.CosineScheduler,
)


def _numpy_reconstructor(submodule: str, name: str) -> Callable[..., Any]:
    """Resolve a NumPy reconstructor from ``numpy._core`` (NumPy 2) or ``numpy.core``."""
    for package in ("numpy._core", "numpy.core"):
        try:
            module = importlib.import_module(f"{package}.{submodule}")
        except ImportError:
            continue
        return getattr(module, name)
    raise pickle.UnpicklingError(f"NumPy has no {submodule}.{name} to rebuild arrays with")


class _StateUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals legitimate optimizer-state blobs name.

    Allowed: NumPy array, scalar and dtype reconstruction; a few container/number builtins;
    optimizer classes registered in ``Optimizer.opt_registry``; the schedulers of
    ``mxopt.lr_scheduler``. Any other global raises ``pickle.UnpicklingError``, so no
    function outside that list can be called while loading.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy._core.multiarray", "numpy.core.multiarray"):
            submodule = "multiarray"
        elif module in ("numpy._core.numeric", "numpy.core.numeric"):
            submodule = "numeric"
        else:
            submodule = ""
        if (submodule, name) in _NUMPY_RECONSTRUCTORS:
            return _numpy_reconstructor(submodule, name)
        if module == "numpy" and name in _NUMPY_TYPES:
            return _NUMPY_TYPES[name]
        if (module, name) in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[(module, name)]
        for klass in (*Optimizer.opt_registry.values(), *_SCHEDULER_CLASSES):
            if klass.__module__ == module and klass.__qualname__ == name:
                return klass
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: it is not a NumPy array type, a "
            "registered optimizer or an mxopt scheduler"
        )


class Updater:
    """Apply ``optimizer`` to weights identified by index, creating their states on demand.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to apply.

    Attributes
    ----------
    optimizer : Optimizer
        The optimizer (``set_states`` may replace it).
    states : dict
        Index -> state from ``optimizer.create_state_multi_precision``.
    states_synced : dict
        Index -> whether the state was checked since it was created or loaded.
    aggregate_updates : bool
        ``optimizer.aggregate_num > 0`` at construction; not refreshed afterwards.

    Examples
    --------
    >>> class HalfStep(Optimizer):
    ...     def update(self, index, weight, grad, state):
    ...         weight -= 0.5 * grad
    >>> updater = Updater(HalfStep())
    >>> weight = np.ones(2)
    >>> updater(0, np.ones(2), weight)
    >>> weight
    array([0.5, 0.5])
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.states: Dict[Hashable, Any] = {}
        self.states_synced: Dict[Hashable, bool] = {}
        self.aggregate_updates = optimizer.aggregate_num > 0

    def __call__(self, index: Any, grad: Any, weight: Any) -> None:
        """Update ``weight`` in place from ``grad`` (note the order: grad before weight).

        Parameters
        ----------
        index : int, str, bytes, or list/tuple of them
            Key(s) of the weight(s). ``bytes`` keys are decoded to ``str``; in a list the
            decoded key is written back into the caller's list, as MXNet does.
        grad : array or RowSparseNDArray, or a list/tuple of them
            Gradient(s), aligned with ``index``.
        weight : numpy.ndarray or a list/tuple of them
            Weight(s), aligned with ``index``.

        Notes
        -----
        With ``aggregate_updates``, the triples are grouped by weight dtype (groups in
        order of first appearance; not for optimizers whose ``aggregates_by_dtype`` is
        false, which take mixed dtypes) and each group is passed in chunks of
        ``optimizer.aggregate_num`` as tuples of indices, weights and grads plus a list of
        states. Otherwise every weight gets its own ``update_multi_precision`` call.
        """
        if isinstance(index, (list, tuple)):
            indices, grads, weights = index, grad, weight
        else:
            indices, grads, weights = [index], [grad], [weight]
        if not len(indices) == len(grads) == len(weights):
            raise ValueError(
                f"index, grad and weight must have equal lengths, got {len(indices)}, "
                f"{len(grads)} and {len(weights)}"
            )
        if weights:
            # NumPy arrays live in host memory: one device, id 0.
            self.optimizer._set_current_context(0)
        if isinstance(indices, tuple):
            # A tuple cannot receive decoded keys, so they are decoded into a private copy.
            indices = list(indices)
        for i, (idx, weight_i) in enumerate(zip(indices, weights)):
            if isinstance(idx, bytes):
                idx = idx.decode("utf-8")
                indices[i] = idx
            if idx not in self.states:
                self.states[idx] = self.optimizer.create_state_multi_precision(idx, weight_i)
                self.states_synced[idx] = True
            elif not self.states_synced[idx]:
                self.states[idx] = self.sync_state_context(self.states[idx], None)
                self.states_synced[idx] = True

        if self.aggregate_updates:
            self._update_aggregated(indices, weights, grads)
        else:
            for idx, weight_i, grad_i in zip(indices, weights, grads):
                self.optimizer.update_multi_precision(idx, weight_i, grad_i, self.states[idx])

    def _update_aggregated(self, indices: List[Any], weights: Any, grads: Any) -> None:
        """Pass same-dtype weights to the optimizer in chunks of ``aggregate_num``."""
        groups: Dict[Any, List[Tuple[Any, Any, Any]]] = {}
        by_dtype = self.optimizer.aggregates_by_dtype
        for triple in zip(indices, weights, grads):
            groups.setdefault(triple[1].dtype if by_dtype else None, []).append(triple)
        for group in groups.values():
            group_indices, group_weights, group_grads = zip(*group)
            start = 0
            while start < len(group):
                # Re-read per chunk, as MXNet does; a non-positive size would never advance.
                chunk = self.optimizer.aggregate_num
                if chunk < 1:
                    raise ValueError(
                        f"optimizer.aggregate_num must be at least 1 while the updater "
                        f"aggregates, got {chunk}"
                    )
                stop = start + chunk
                chunk_indices = group_indices[start:stop]
                self.optimizer.update_multi_precision(
                    chunk_indices,
                    group_weights[start:stop],
                    group_grads[start:stop],
                    [self.states[idx] for idx in chunk_indices],
                )
                start = stop

    def sync_state_context(self, state: Any, context: Any) -> Any:
        """Return ``state`` with its arrays placed on ``context``.

        Tuples and lists are rebuilt item by item; arrays and everything else are returned
        unchanged, because NumPy arrays already live in host memory (``context`` is kept for
        MXNet's signature and not used).
        """
        if isinstance(state, tuple):
            return tuple(self.sync_state_context(item, context) for item in state)
        if isinstance(state, list):
            return [self.sync_state_context(item, context) for item in state]
        return state

    def get_states(self, dump_optimizer: bool = False) -> bytes:
        """Pickle the states dict, or ``(states, optimizer)`` with ``dump_optimizer=True``.

        The optimizer is pickled without its ``param_dict``.
        """
        return pickle.dumps((self.states, self.optimizer) if dump_optimizer else self.states)

    def set_states(self, states: bytes, safe: bool = False) -> None:
        """Load states saved by :meth:`get_states`; a pickled optimizer replaces ``optimizer``.

        Parameters
        ----------
        states : bytes
            A blob from :meth:`get_states`.
        safe : bool, default False
            ``False`` uses ``pickle.loads``, exactly like MXNet. **That path can execute
            arbitrary code embedded in the bytes**: use it only for blobs you created or
            trust. ``True`` uses a restricted unpickler that resolves only NumPy array,
            scalar and dtype reconstruction, container builtins, optimizer classes in
            ``Optimizer.opt_registry`` and the ``mxopt.lr_scheduler`` classes; it executes
            no other code from the bytes and raises ``pickle.UnpicklingError`` naming any
            other global (e.g. a custom scheduler class or ``os.system``).

        Notes
        -----
        ``aggregate_updates`` is not recomputed for a loaded optimizer, and every loaded
        state is marked as not yet synced.
        """
        loaded = _StateUnpickler(io.BytesIO(states)).load() if safe else pickle.loads(states)
        if isinstance(loaded, tuple) and len(loaded) == 2:
            self.states, self.optimizer = loaded
        else:
            self.states = loaded
        self.states_synced = dict.fromkeys(self.states, False)


def get_updater(optimizer: Optimizer) -> Updater:
    """Return an :class:`Updater` for ``optimizer``."""
    return Updater(optimizer)
