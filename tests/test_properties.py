"""Property-based checks (hypothesis) of the reliability promises, over every optimizer
configuration of ``cases.py`` and every registered optimizer name: random dtypes, lengths
(chunk edges included), strided / read-only / aliased / overlapping / foreign-buffer
arrays, NaN / infinite / huge / negative hyper-parameters, wrong state objects, in single,
multi-precision, row-sparse and aggregated calls. Each call either equals its reference
path (same call on contiguous copies, one call per index, float32 update of the master) or
raises ``TypeError``/``ValueError`` naming an argument with every byte untouched (see
``fuzz/scenarios.py``; ``fuzz/run_long.py`` runs the same properties for millions of calls).

``MXOPT_HYPOTHESIS_EXAMPLES`` sets the number of examples per test (default 40).
"""

import os
import sys

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz"))
import scenarios  # noqa: E402

from mxopt.optimizer import LARS, LBSGD, SGD, SGLD, Adam, create  # noqa: E402
from mxopt.sparse import RowSparseNDArray, row_sparse_array  # noqa: E402

EXAMPLES = int(os.environ.get("MXOPT_HYPOTHESIS_EXAMPLES", "40"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")) or "MXOPT_HYPOTHESIS_EXAMPLES" not in os.environ,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("config", scenarios.CONFIGS, ids=lambda c: c.id)
@SETTINGS
@given(data=st.data())
def test_every_call_equals_its_reference_or_raises_untouched(config, data):
    scenarios.check(scenarios.Scenario(scenarios.HypothesisDraw(data), config))


@SETTINGS
@given(data=st.data())
def test_any_configuration(data):
    scenarios.check(scenarios.Scenario(scenarios.HypothesisDraw(data)))


# Regression tests for what the properties found.


def _untouched(call, arrays, error=(TypeError, ValueError), match=None):
    before = [a.tobytes() for a in arrays]
    with pytest.raises(error, match=match):
        call()
    assert [a.tobytes() for a in arrays] == before


def test_negative_row_index_is_refused_when_the_gradient_is_densified():
    # NumPy would wrap row -2 silently; Signum (no sparse kernel) densifies the gradient.
    opt = create("signum")
    w = np.ones((5, 3), np.float32)
    grad = row_sparse_array((np.ones((1, 3), np.float32), [1]), shape=(5, 3))
    grad.indices = np.array([-2])  # behind the constructor's checks
    state = opt.create_state(0, w)
    _untouched(lambda: opt.update(0, w, grad, state), [w, state], ValueError, "indices")
    with pytest.raises(ValueError, match="indices"):
        grad.todense()


def test_stateless_adaptive_optimizer_names_the_state_it_expected():
    opt = SGLD()  # no state: the message used to fail with IndexError
    w = np.ones(4, np.float32)
    _untouched(lambda: opt.update([0], [w], [w.copy()], ["x"]), [w], TypeError, "state")


def test_generic_multi_precision_refuses_a_read_only_weight_before_the_master_moves():
    opt = LBSGD(multi_precision=True)
    w = np.ones(17, np.float16)
    state = opt.create_state_multi_precision(0, w)
    w.flags.writeable = False
    _untouched(
        lambda: opt.update_multi_precision(0, w, np.ones(17, np.float16), state),
        [w, state[0]],
        ValueError,
        "weight",
    )


@pytest.mark.parametrize("bad", ["grad_dtype", "state"])
def test_lbsgd_list_is_checked_before_the_first_tensor(bad):
    opt = LBSGD()
    weights = [np.ones(7, np.float16), np.ones(8, np.float16)]
    grads = [np.ones(7, np.float16), np.ones(8, np.float16)]
    states = [None, None]
    if bad == "grad_dtype":
        grads[1] = np.ones(8, np.float64)
    else:
        states[1] = "momentum"
    _untouched(lambda: opt.update([0, 1], weights, grads, states), weights, match="grad|state")


def test_sgld_list_of_mixed_dtypes_draws_noise_in_the_callers_order():
    import mxopt.random

    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(5).astype(d) for d in (np.float64, np.float32, np.float64)]
    grads = [np.ones(5, w.dtype) for w in weights]
    one = [w.copy() for w in weights]
    mxopt.random.seed(3)
    SGLD().update([0, 1, 2], weights, grads, [None] * 3)
    mxopt.random.seed(3)
    single = SGLD()
    for i in range(3):
        single.update(i, one[i], grads[i], None)
    for got, expected in zip(weights, one):
        assert got.tobytes() == expected.tobytes()


def test_sgld_multi_precision_refuses_a_strided_weight():
    opt = SGLD(multi_precision=True)
    base = np.ones(16, np.float16)
    w = base[::2]
    state = opt.create_state_multi_precision(0, np.ascontiguousarray(w))
    call = lambda: opt.update_multi_precision(0, w, np.ones(8, np.float16), state)  # noqa: E731
    _untouched(call, [base, state[0]], ValueError, "weight")


@pytest.mark.parametrize("make", [lambda: create("ftml"), lambda: SGD(momentum=0.9)])
def test_split_list_checks_state_dtype_and_shape_of_a_late_tensor(make):
    opt = make()
    weights = [np.ones(9, np.float32), np.ones(5, np.float64), np.ones(3, np.float64)]
    grads = [np.ones(9, np.float32), np.ones(5, np.float64), np.ones(3, np.float64)]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    if isinstance(states[1], tuple):
        states[1] = (states[1][0], states[1][1].astype(np.float32), states[1][2])
    else:
        states[1] = states[1].astype(np.float32)
    grads[2] = row_sparse_array((np.ones((1,), np.float64), [1]), shape=(3,))
    flat = [a for s in states for a in scenarios._leaves(s)]
    call = lambda: opt.update([0, 1, 2], weights, grads, states)  # noqa: E731
    _untouched(call, weights + flat, match="state")


def test_lars_mixed_list_with_a_late_non_finite_rate_writes_nothing():
    opt = LARS(learning_rate=0.1, momentum=0.9)
    weights = [np.ones(8, np.float32), np.ones((4, 3), np.float64)]
    weights[1][0, 0] = np.inf  # infinite weight norm: the scaled rate is NaN
    grads = [np.ones(8, np.float32), np.ones((4, 3), np.float64)]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    call = lambda: opt.update([0, 1], weights, grads, states)  # noqa: E731
    _untouched(call, weights + states, ValueError, "trust ratio")
    sparse = RowSparseNDArray(np.ones((1, 3)), [2], (4, 3))
    grads[1] = sparse
    _untouched(call, weights + states, ValueError, "trust ratio")


def test_adam_list_reference_holds_for_mixed_dtypes():
    opt, one = Adam(), Adam()
    weights = [np.ones(4, np.float32), np.ones(3, np.float64)]
    grads = [np.full(4, 0.5, np.float32), np.full(3, 0.5, np.float64)]
    copies = [w.copy() for w in weights]
    opt.update([0, 1], weights, grads, [opt.create_state(i, w) for i, w in enumerate(weights)])
    for i, w in enumerate(copies):
        one.update(i, w, grads[i], one.create_state(i, w))
    for got, expected in zip(weights, copies):
        assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("name", ["sgld", "groupadagrad"])
def test_master_copy_fallbacks_refuse_a_gradient_that_is_the_weight(name):
    opt = create(name, multi_precision=True)
    w = np.ones((4, 3), np.float16)
    state = opt.create_state_multi_precision(0, w)
    leaves = scenarios._leaves(state)
    _untouched(
        lambda: opt.update_multi_precision(0, w, w, state), [w, *leaves], ValueError, "weight"
    )
