"""Every kind of bad input gets a clear exception naming the culprit, and leaves every array
exactly as it was (all checks run before the first write)."""

import numpy as np
import pytest

from mxopt import _core
from mxopt.optimizer import LARS, NAG, SGD, Test
from mxopt.sparse import RowSparseNDArray


def _weight(shape=(4, 3), dtype=np.float32):
    return np.arange(np.prod(shape), dtype=dtype).reshape(shape) / 7


def _grad(shape=(4, 3), dtype=np.float32):
    return np.ones(shape, dtype=dtype)


def _expect_untouched(call, arrays, error, match):
    before = [a.copy() for a in arrays]
    with pytest.raises(error, match=match):
        call()
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [lambda: SGD(momentum=0.9), lambda: NAG(momentum=0.9)])
class TestDense:
    def test_shape_mismatch(self, make):
        opt, w = make(), _weight()
        state = opt.create_state(0, w)
        g = _grad((3, 4))
        _expect_untouched(lambda: opt.update(0, w, g, state), [w, state], ValueError, "grad")

    def test_state_shape_mismatch(self, make):
        opt, w, g = make(), _weight(), _grad()
        state = np.zeros(5, np.float32)
        _expect_untouched(lambda: opt.update(0, w, g, state), [w, state], ValueError, "state")

    def test_dtype_mismatch(self, make):
        opt, w = make(), _weight()
        state = opt.create_state(0, w)
        g = _grad(dtype=np.float64)
        _expect_untouched(lambda: opt.update(0, w, g, state), [w, state], TypeError, "grad")

    def test_integer_weight(self, make):
        opt, w = make(), np.zeros((4, 3), np.int32)
        state = np.zeros((4, 3), np.int32)
        _expect_untouched(lambda: opt.update(0, w, _grad(), state), [w], TypeError, "weight")

    def test_not_an_array(self, make):
        opt, w = make(), _weight()
        state = opt.create_state(0, w)
        grad = [[1.0] * 3] * 4
        _expect_untouched(lambda: opt.update(0, w, grad, state), [w], TypeError, "grad")

    def test_non_contiguous(self, make):
        opt = make()
        base = _weight((4, 6))
        w = base[:, ::2]
        state = np.zeros((4, 3), np.float32)
        call = lambda: opt.update(0, w, _grad(), state)  # noqa: E731
        _expect_untouched(call, [base, state], ValueError, "weight: .*contiguous")

    def test_read_only(self, make):
        opt, w = make(), _weight()
        state = opt.create_state(0, w)
        w.flags.writeable = False
        call = lambda: opt.update(0, w, _grad(), state)  # noqa: E731
        _expect_untouched(call, [w, state], ValueError, "weight: .*read-only")

    def test_weight_aliases_grad(self, make):
        opt, w = make(), _weight()
        state = opt.create_state(0, w)
        _expect_untouched(lambda: opt.update(0, w, w, state), [w, state], ValueError, "memory")

    def test_state_aliases_weight(self, make):
        opt, w = make(), _weight()
        _expect_untouched(lambda: opt.update(0, w, _grad(), w), [w], ValueError, "memory")

    def test_wrong_state_object(self, make):
        opt, w = make(), _weight()
        call = lambda: opt.update(0, w, _grad(), "momentum")  # noqa: E731
        _expect_untouched(call, [w], TypeError, "state")

    @pytest.mark.parametrize("name", ["learning_rate", "wd", "rescale_grad", "clip_gradient"])
    def test_nan_hyper_parameter(self, make, name):
        opt, w = make(), _weight()
        state = opt.create_state(0, w)
        if name == "learning_rate":
            with pytest.raises(ValueError, match="lr must be finite"):
                opt.set_learning_rate(float("nan"))
            opt.lr = float("nan")  # set behind the optimizer's back: the kernel refuses it
            expected = "lr"
        else:
            setattr(opt, name, float("nan"))
            expected = name
        call = lambda: opt.update(0, w, _grad(), state)  # noqa: E731
        _expect_untouched(call, [w, state], ValueError, f"{expected} must be finite")

    def test_nan_momentum(self, make):
        opt, w = make(), _weight()
        state = opt.create_state(0, w)
        opt.momentum = float("inf")
        call = lambda: opt.update(0, w, _grad(), state)  # noqa: E731
        _expect_untouched(call, [w, state], ValueError, "momentum must be finite")


@pytest.mark.parametrize("make", [SGD, lambda: LARS(eta=0.01)], ids=["sgd", "lars"])
@pytest.mark.parametrize("state", ["momentum", (np.zeros(2), np.zeros(5), "x")])
def test_momentum_free_update_refuses_a_wrong_state_object(make, state):
    """Without momentum the kernel reads no state, but a state ``create_state`` could not
    have made (anything but an array or None) is still a caller's bug."""
    opt, w = make(), _weight()
    call = lambda: opt.update(0, w, _grad(), state)  # noqa: E731
    _expect_untouched(call, [w], TypeError, "state: expected a momentum array or None")
    assert not opt._index_update_count


def test_test_optimizer_refuses_a_nan_rescale_grad():
    opt, w = Test(), _weight()
    state = opt.create_state(0, w)
    opt.rescale_grad = float("nan")
    call = lambda: opt.update(0, w, _grad(), state)  # noqa: E731
    _expect_untouched(call, [w, state], ValueError, "rescale_grad must be finite")


def test_multi_precision_master_of_wrong_dtype():
    opt = SGD(momentum=0.9, multi_precision=True)
    w = _weight(dtype=np.float16)
    mom, master = opt.create_state_multi_precision(0, w)
    bad_master = master.astype(np.float64)
    call = lambda: opt.update_multi_precision(0, w, _grad(dtype=np.float16), (mom, bad_master))  # noqa: E731
    _expect_untouched(call, [w, mom, bad_master], TypeError, "master weight")


def test_aggregated_call_rejects_a_bad_tensor_before_writing_any():
    opt = SGD(momentum=0.9)
    weights = [_weight(), _weight((5,)), _weight()]
    grads = [_grad(), _grad((6,)), _grad()]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    call = lambda: opt.update([0, 1, 2], weights, grads, states)  # noqa: E731
    _expect_untouched(call, weights + states, ValueError, r"grads\[1\]")


def test_aggregated_call_rejects_the_same_weight_twice():
    opt = SGD()
    w = _weight()
    call = lambda: opt.update([0, 1], [w, w], [_grad(), _grad()], [None, None])  # noqa: E731
    _expect_untouched(call, [w], ValueError, "memory")


def _sparse(indices, rows=4, cols=3):
    # Built without RowSparseNDArray's own checks, to reach the kernel's.
    grad = RowSparseNDArray.__new__(RowSparseNDArray)
    grad.data = np.ones((len(indices), cols), np.float32)
    grad.indices = np.asarray(indices, np.int64)
    grad.shape = (rows, cols)
    grad.dtype = np.dtype(np.float32)
    grad.stype = "row_sparse"
    return grad


@pytest.mark.parametrize(
    ("indices", "match"),
    [
        ([1, 4], "out of range"),
        ([-1, 2], "out of range"),
        ([2, 2], "strictly increasing"),
        ([3, 1], "strictly increasing"),
    ],
)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_bad_row_indices(indices, match, momentum):
    opt, w = SGD(momentum=momentum), _weight()
    state = opt.create_state(0, w)
    arrays = [w] if state is None else [w, state]
    call = lambda: opt.update(0, w, _sparse(indices), state)  # noqa: E731
    _expect_untouched(call, arrays, ValueError, match)


def test_row_sparse_gradient_of_other_shape():
    opt, w = SGD(), _weight()
    _expect_untouched(lambda: opt.update(0, w, _sparse([1], 5, 3), None), [w], ValueError, "grad")


def test_kernel_rejects_unknown_names_and_hyper_parameters():
    with pytest.raises(ValueError, match="unknown kernel"):
        _core.Kernel("adamw")
    with pytest.raises(TypeError, match="unexpected hyper-parameter"):
        _core.Kernel("multi_sgd", beta1=0.9)
    with pytest.raises(TypeError, match=r"momentum: expected a number, got .fast."):
        _core.Kernel("multi_sgd", momentum="fast")
    with pytest.raises(ValueError, match="rescale_grad must be finite"):
        _core.Kernel("nag_mom", rescale_grad=float("nan"))


# Calls with more tensors than the native layer borrows at once (512) are validated in full
# before the first chunk is written.
MANY = 600


def _many(n=MANY):
    opt = SGD(learning_rate=0.1, momentum=0.9)
    weights = [np.full(4, i, np.float32) for i in range(n)]
    grads = [np.ones(4, np.float32) for _ in range(n)]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    return opt, weights, grads, states


def test_large_aggregated_call_rejects_a_late_read_only_weight_before_writing():
    opt, weights, grads, states = _many()
    weights[MANY - 10].flags.writeable = False
    call = lambda: opt.update(list(range(MANY)), weights, grads, states)  # noqa: E731
    _expect_untouched(call, weights + states, ValueError, rf"weights\[{MANY - 10}\].*read-only")


def test_large_aggregated_call_rejects_aliasing_across_chunks():
    opt, weights, grads, states = _many()
    grads[MANY - 1] = weights[3]
    call = lambda: opt.update(list(range(MANY)), weights, grads, states)  # noqa: E731
    _expect_untouched(call, weights + states, ValueError, "shares memory")


def test_large_aggregated_call_allows_a_shared_gradient():
    opt, weights, _, states = _many()
    shared = np.ones(4, np.float32)
    opt.update(list(range(MANY)), weights, [shared] * MANY, states)
    np.testing.assert_array_equal(weights[0], np.full(4, -0.1, np.float32))


def test_aggregated_kernel_call_checks_the_number_of_states():
    kernel = _core.Kernel("multi_sgd_mom", momentum=0.9)
    weights = [_weight(), _weight()]
    grads = [_grad(), _grad()]
    states = [np.zeros((4, 3), np.float32)]
    call = lambda: _core.step_many(kernel, weights, grads, states, [0.1] * 2, [0.0] * 2, [1] * 2)  # noqa: E731
    _expect_untouched(call, weights + states, ValueError, "1 state array.* per weight, 2 in all")
