"""Kernel properties that golden trajectories cannot pin down on small tensors, for every
optimizer in the ``cases`` table.

* Every length around the loop and chunk edges updates every element, in every dtype.
* The aggregated entry point equals one call per tensor; a row-sparse gradient that lists
  every row equals the dense update; the multi-precision path equals a float32 update of
  the master copy; results do not depend on the number of threads.
* The GIL is released while a kernel runs.
"""

import os
import subprocess
import sys
import threading
import time

import cases
import numpy as np
import pytest

from mxopt import _core
from mxopt.optimizer import SGD
from mxopt.sparse import row_sparse_array

MIN = _core.MIN_PARALLEL_LEN
# Around SIMD widths, the fp16 conversion block (512) and the parallel split.
LENGTHS = [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 511, 512, 513, 2 * MIN - 1, 2 * MIN, 2 * MIN + 3]
DTYPES = [np.float16, np.float32, np.float64]


def _data(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(dtype)
    # Gradients are at least 1 in magnitude, so every element visibly moves.
    g = ((1.0 + np.abs(rng.standard_normal(n))) * rng.choice([-1.0, 1.0], n)).astype(dtype)
    return w, g


def _run(opt, w, g, steps=2):
    state = opt.create_state_multi_precision(0, w)
    for _ in range(steps):
        opt.update_multi_precision(0, w, g, state)
    return state


def _with_dtypes(predicate, dtypes):
    """(case id, dtype) pairs of the cases that satisfy ``predicate``, for the dtypes each
    accepts without multi-precision (float32-state optimizers refuse the others; their
    TypeError is tested with their behaviour)."""
    return [(c.id, d) for c in cases.CASES if predicate(c) for d in dtypes if c.accepts(d)]


@pytest.mark.parametrize(
    ("case_id", "dtype"), _with_dtypes(lambda c: c.reference is not None, DTYPES[1:])
)
@pytest.mark.parametrize("n", LENGTHS)
def test_every_element_is_updated_at_chunk_edges(case_id, dtype, n):
    case = cases.BY_ID[case_id]
    w, g = _data(n, dtype)
    expected = case.reference(w, g, 2)
    _run(case.make(), w, g)
    np.testing.assert_array_equal(w, expected)


@pytest.mark.parametrize("case_id", cases.ids())
@pytest.mark.parametrize("n", LENGTHS)
def test_float16_and_multi_precision_at_chunk_edges(case_id, n):
    case = cases.BY_ID[case_id]
    w16, g16 = map(case.shaped, _data(n, np.float16))
    w = w16.copy()
    if case.accepts(np.float16):
        with pytest.warns(UserWarning, match="multi_precision"):
            _run(case.make(), w, g16)
        assert np.all(w != w16)
    else:
        refused = pytest.raises(TypeError, match="weight")
        with pytest.warns(UserWarning, match="multi_precision"), refused:
            _run(case.make(), w, g16)
        np.testing.assert_array_equal(w, w16)

    # With it, the master copy follows the float32 update of the widened gradient, and
    # the float16 weight is the master rounded to nearest.
    w = w16.copy()
    state = _run(case.make(multi_precision=True), w, g16)
    master = state[0] if case.master_first else state[1]
    np.testing.assert_array_equal(w, master.astype(np.float16))
    if case.layerwise:
        return
    w32 = w16.astype(np.float32)
    _run(case.make(), w32, g16.astype(np.float32))
    np.testing.assert_array_equal(master, w32)
    np.testing.assert_array_equal(w, master.astype(np.float16))


@pytest.mark.parametrize(("case_id", "dtype"), _with_dtypes(lambda c: c.aggregates, DTYPES))
def test_aggregated_call_equals_one_call_per_tensor(case_id, dtype):
    case = cases.BY_ID[case_id]
    sizes = [0, 1, 9, 65, 513, 2 * MIN + 3, 3]
    data = [tuple(map(case.shaped, _data(n, dtype, seed=n))) for n in sizes]
    indices = list(range(len(sizes)))

    def make():
        opt = case.make()
        opt.set_lr_mult({1: 2.0, 4: 0.5})
        weights = [w.copy() for w, _ in data]
        return opt, weights, [opt.create_state(i, w) for i, w in zip(indices, weights)]

    opt, weights, states = make()
    with np.errstate(over="ignore"):
        opt.update(indices, weights, [g for _, g in data], states)
    one_opt, one_weights, one_states = make()
    for i in indices:
        one_opt.update(i, one_weights[i], data[i][1], one_states[i])
    for got, expected in zip(weights, one_weights):
        np.testing.assert_array_equal(got, expected)


def _lazy_modes(case):
    return [True, False] if case.row_sparse else [None]


@pytest.mark.parametrize(
    ("case_id", "lazy", "dtype"),
    [
        (c.id, lazy, d)
        for c in cases.CASES
        for lazy in _lazy_modes(c)
        for d in DTYPES
        if c.accepts(d)
    ],
)
def test_row_sparse_with_every_row_equals_dense(case_id, lazy, dtype):
    case = cases.BY_ID[case_id]
    rows, cols = 2 * MIN // 7 + 5, 7  # enough rows for the parallel split
    w, g = _data(rows * cols, dtype)
    w, g = w.reshape(rows, cols), g.reshape(rows, cols)
    sparse_grad = row_sparse_array((g, np.arange(rows)), shape=(rows, cols))
    results = []
    for grad in (sparse_grad, g):
        overrides = dict(case.rows_overrides)
        if lazy is not None:
            overrides["lazy_update"] = lazy
        opt = case.make(**overrides)
        weight = w.copy()
        state = opt.create_state(0, weight)
        opt.update(0, weight, grad, state)
        results.append(weight)
    std_sgd = lazy is False and case.name in ("sgd", "ccsgd") and not case.kwargs.get("momentum")
    if case.layerwise and dtype == np.float64:
        # Norms and trust ratio in float32 on one path, float64 steps on the other.
        scale = np.finfo(np.float32).eps * np.abs(results[1]).max()
        np.testing.assert_allclose(results[0], results[1], rtol=0, atol=8 * scale)
    elif std_sgd and dtype == np.float64:
        # MXNet's standard row-sparse sgd_update decays by 1 - lr*wd computed in float32.
        scale = np.finfo(np.float32).eps * np.abs(results[1]).max()
        np.testing.assert_allclose(results[0], results[1], rtol=0, atol=scale)
    elif not case.rows_exact:
        # The sparse kernel associates differently from the dense one: equal up to the
        # last bit.
        ulp = np.finfo(dtype).eps * np.abs(results[1]).max()
        np.testing.assert_allclose(results[0], results[1], rtol=0, atol=2 * ulp)
    else:
        np.testing.assert_array_equal(results[0], results[1])


def test_row_sparse_lazy_touches_only_listed_rows_standard_touches_all():
    w, g = _data(40, np.float32)
    w, g = w.reshape(10, 4), g.reshape(10, 4)
    grad = row_sparse_array((g[[2, 7]], [2, 7]), shape=(10, 4))
    for lazy in (True, False):
        opt = SGD(learning_rate=0.1, momentum=0.9, wd=0.1, lazy_update=lazy)
        weight, state = w.copy(), np.zeros_like(w)
        opt.update(0, weight, grad, state)
        changed = np.any(weight != w, axis=1)
        assert changed.tolist() == [lazy is False or r in (2, 7) for r in range(10)]


THREAD_SCRIPT = """
import sys
import numpy as np
import cases
case = cases.BY_ID[sys.argv[1]]
rng = np.random.default_rng(1)
w = case.shaped(rng.standard_normal(3 * 2**15 + 11).astype(np.float32))
g = case.shaped(rng.standard_normal(w.size).astype(np.float32))
small_w, small_g = w[:5].copy(), g[:5].copy()
opt = case.make()
state, small_state = opt.create_state(0, w), opt.create_state(1, small_w)
for _ in range(3):
    if case.aggregates:
        opt.update([0, 1], [w, small_w], [g, small_g], [state, small_state])
    else:
        opt.update(0, w, g, state)
sys.stdout.buffer.write(w.tobytes())
"""


@pytest.mark.parametrize("case_id", cases.ids())
def test_results_do_not_depend_on_thread_count(case_id):
    outputs = []
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    for threads in ("1", "2", "3"):
        env = dict(os.environ, RAYON_NUM_THREADS=threads, PYTHONPATH=tests_dir)
        run = subprocess.run(
            [sys.executable, "-c", THREAD_SCRIPT, case_id], env=env, capture_output=True, check=True
        )
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1] == outputs[2]


def test_gil_is_released_while_a_kernel_runs():
    n = 8 * 2**20
    w, g = _data(n, np.float32)
    opt = SGD(learning_rate=0.1, momentum=0.9)
    state = opt.create_state(0, w)
    ticks = []
    running = threading.Event()
    window = []

    def update():
        running.set()
        for _ in range(5):
            start = time.perf_counter()
            opt.update(0, w, g, state)
            window.append((start, time.perf_counter()))

    worker = threading.Thread(target=update)
    worker.start()
    running.wait()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    # With the GIL held for a whole kernel call, this thread could not run Python code
    # inside any call's window.
    inside = sum(1 for t in ticks for start, end in window if start < t < end)
    assert inside > 0


def test_more_than_sixty_tensors_in_one_aggregated_call(monkeypatch):
    # MXNet 1.6 crashes beyond 60 tensors per multi-tensor call; mxopt has no such limit.
    monkeypatch.setenv("MXNET_OPTIMIZER_AGGREGATION_SIZE", "1000")
    from mxopt.optimizer import get_updater

    data = [_data(5 + i % 7, np.float32, seed=i) for i in range(100)]
    updater = get_updater(SGD(learning_rate=0.1, momentum=0.9, wd=0.01))
    assert updater.optimizer.aggregate_num == 1000
    weights = [w.copy() for w, _ in data]
    for _ in range(2):
        updater(list(range(100)), [g for _, g in data], weights)
    single = SGD(learning_rate=0.1, momentum=0.9, wd=0.01)
    for i, (w, g) in enumerate(data):
        w, state = w.copy(), single.create_state(i, w)
        for _ in range(2):
            single.update(i, w, g, state)
        np.testing.assert_array_equal(weights[i], w)


SIMD_SCRIPT = """
import sys
import warnings
import numpy as np
import cases
warnings.simplefilter("ignore")
case = cases.BY_ID[sys.argv[1]]
rng = np.random.default_rng(2)
out = []
for dtype in (np.float16, np.float32, np.float64):
    for mp in (False, True):
        if (mp and dtype != np.float16) or (not mp and not case.accepts(dtype)):
            continue
        w = case.shaped(rng.standard_normal(2**15 + 13).astype(dtype))
        g = case.shaped((rng.standard_normal(w.size) * 0.5).astype(dtype))
        opt = case.make(multi_precision=mp)
        state = opt.create_state_multi_precision(0, w)
        for _ in range(2):
            opt.update_multi_precision(0, w, g, state)
        out.append(w.tobytes())
sys.stdout.buffer.write(b"".join(out))
"""


@pytest.mark.parametrize("case_id", cases.ids())
def test_vector_builds_give_the_same_bytes(case_id):
    # The engine runs an AVX2 + F16C build of its loops where the CPU has them; the
    # baseline (SSE2) build must give the same numbers.
    outputs = []
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    for baseline in (False, True):
        env = dict(os.environ, PYTHONPATH=tests_dir)
        env.pop("MXOPT_BASELINE_SIMD", None)
        if baseline:
            env["MXOPT_BASELINE_SIMD"] = "1"
        run = subprocess.run(
            [sys.executable, "-c", SIMD_SCRIPT, case_id], env=env, capture_output=True, check=True
        )
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) > 0
