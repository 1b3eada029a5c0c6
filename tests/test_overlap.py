"""Memory overlap is decided from the byte ranges arrays cover, whoever owns the memory:
views of one foreign buffer and ``as_strided`` views are caught like plain aliasing, in
single, multi-precision, row-sparse and aggregated calls of every length, and nothing is
written when a call is rejected."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from mxopt.optimizer import SGD, Adam
from mxopt.sparse import row_sparse_array


def _foreign(n, dtype=np.float32):
    """Two views of one bytearray, each with its own base object."""
    buf = bytearray(np.dtype(dtype).itemsize * (n + 1))
    a = np.frombuffer(buf, dtype=dtype, count=n)
    b = np.frombuffer(buf, dtype=dtype, count=n, offset=np.dtype(dtype).itemsize)
    return buf, a, b


def _untouched(call, arrays, match="shares memory"):
    before = [bytes(a) if isinstance(a, bytearray) else a.copy() for a in arrays]
    with pytest.raises(ValueError, match=match):
        call()
    for a, b in zip(arrays, before):
        if isinstance(a, bytearray):
            assert bytes(a) == b
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [lambda: SGD(momentum=0.9), lambda: Adam()])
def test_grad_as_strided_view_of_weight(make):
    opt = make()
    w = np.linspace(-1, 1, 12, dtype=np.float32)
    g = as_strided(w, shape=w.shape, strides=w.strides)
    _untouched(lambda: opt.update(0, w, g, opt.create_state(0, w)), [w], "grad")


def test_shifted_overlap_of_a_foreign_buffer():
    buf = bytearray(4 * 9)
    w = np.frombuffer(buf, np.float32, count=8, offset=4)
    w[...] = 1.0
    g = np.frombuffer(buf, np.float32, count=8)
    opt = SGD(learning_rate=0.1)
    _untouched(lambda: opt.update(0, w, g, None), [buf], "weight|grad")


def test_state_that_is_a_foreign_view_of_the_weight():
    buf = bytearray(4 * 8)
    w = np.frombuffer(buf, np.float32)
    state = np.frombuffer(buf, np.float32)
    opt = SGD(momentum=0.9)
    _untouched(lambda: opt.update(0, w, np.ones(8, np.float32), state), [buf], "state")


def test_multi_precision_master_overlapping_a_state():
    opt = SGD(momentum=0.9, multi_precision=True)
    w = np.ones(8, np.float16)
    buf = bytearray(4 * 8)
    master, mom = np.frombuffer(buf, np.float32), np.frombuffer(buf, np.float32)
    call = lambda: opt.update_multi_precision(0, w, np.ones(8, np.float16), (mom, master))  # noqa: E731
    _untouched(call, [w, buf], "master|states")


def test_row_sparse_values_overlapping_the_weight():
    buf = bytearray(4 * 12)
    w = np.frombuffer(buf, np.float32).reshape(4, 3)
    values = np.frombuffer(buf, np.float32, count=6).reshape(2, 3)
    grad = row_sparse_array((values, np.array([0, 2])), shape=(4, 3))
    grad.data = values  # the constructor copies; a caller may still swap in a view
    opt = SGD(learning_rate=0.1)
    _untouched(lambda: opt.update(0, w, grad, None), [buf], "values|weight")


@pytest.mark.parametrize("count", [2, 7, 600])
def test_aggregated_call_with_foreign_aliasing(count):
    opt = SGD(momentum=0.9)
    weights = [np.ones(5, np.float32) for _ in range(count)]
    grads = [np.ones(5, np.float32) for _ in range(count)]
    buf, a, b = _foreign(5)
    weights[-1], grads[0] = a, b  # the last weight overlaps the first gradient
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    call = lambda: opt.update(list(range(count)), weights, grads, states)  # noqa: E731
    _untouched(call, [*weights[:-1], *states, buf])


def test_aggregated_call_with_a_late_nan_learning_rate_writes_nothing():
    # The rule of every tensor is built before the first tensor is updated.
    opt = SGD(momentum=0.9)
    count = 600
    with pytest.raises(ValueError, match=r"lr_mult\[599\] must be finite"):
        opt.set_lr_mult({count - 1: float("nan")})
    opt.lr_mult[count - 1] = float("nan")  # behind the optimizer's back: the kernel refuses
    weights = [np.ones(3, np.float32) for _ in range(count)]
    grads = [np.ones(3, np.float32) for _ in range(count)]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    call = lambda: opt.update(list(range(count)), weights, grads, states)  # noqa: E731
    _untouched(call, [*weights, *states], "lr")


def test_read_only_views_may_share_memory():
    # Two gradients that are views of one buffer are fine: they are only read.
    buf = bytearray(4 * 6)
    g = np.frombuffer(buf, np.float32)
    g[...] = 1.0
    opt = SGD(learning_rate=0.5)
    weights = [np.zeros(6, np.float32), np.zeros(6, np.float32)]
    opt.update([0, 1], weights, [g, np.frombuffer(buf, np.float32)], [None, None])
    for w in weights:
        np.testing.assert_array_equal(w, np.full(6, -0.5, np.float32))
