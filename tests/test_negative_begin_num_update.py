"""A negative ``begin_num_update`` (MXNet accepts it) counts up from there: the update count
is signed end to end (``_core`` takes any int64 ``t``)."""

import numpy as np
import pytest

from mxopt.optimizer import NAG, SGD, Adam, create


def _data():
    rng = np.random.default_rng(5)
    return rng.standard_normal(9).astype(np.float32), rng.standard_normal(9).astype(np.float32)


@pytest.mark.parametrize("make", [SGD, NAG])
def test_sgd_and_nag_train_like_mxnet_from_a_negative_count(make):
    w0, g = _data()
    shifted, plain = make(momentum=0.9, begin_num_update=-5), make(momentum=0.9)
    w, w_plain = w0.copy(), w0.copy()
    state, state_plain = shifted.create_state(0, w), plain.create_state(0, w_plain)
    for step in range(8):
        shifted.update(0, w, g, state)
        plain.update(0, w_plain, g, state_plain)
        # MXNet's counts: begin_num_update + 1, + 2, ... (-4, -3, ..., 3).
        assert shifted._index_update_count[0] == -4 + step
        assert shifted.num_update == -4 + step
        np.testing.assert_array_equal(w, w_plain)


def test_aggregated_call_with_negative_counts():
    w0, g = _data()
    opt = SGD(momentum=0.9, begin_num_update=-5)
    weights = [w0.copy(), w0[:4].copy()]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    opt.update([0, 1], weights, [g, g[:4]], states)
    assert opt._index_update_count == {0: -4, 1: -4}


@pytest.mark.parametrize("name", ["adam", "lamb", "nadam", "ftml", "adamax"])
def test_kernels_accept_a_negative_count(name):
    # t is a signed 64-bit count all the way down: no OverflowError.
    opt = create(name, begin_num_update=-5)
    w, g = _data()
    state = opt.create_state(0, w)
    try:
        opt.update(0, w, g, state)
    except ValueError as error:  # a non-finite bias correction, as in MXNet
        assert "lr" in str(error)


def test_adam_refuses_non_positive_counts_naming_lr_then_trains():
    # MXNet's Adam computes lr * sqrt(1 - beta2**t) / (1 - beta1**t) in Python: for t < 0 the
    # square root of a negative number raises ValueError (math domain error), for t == 0 it
    # divides by zero. mxopt's corrected lr is non-finite there, and the kernel raises
    # ValueError naming lr before writing anything. The count still advances (MXNet counts
    # before computing the rate), so the sixth call runs at t = 1.
    w0, g = _data()
    opt = Adam(begin_num_update=-5)
    w = w0.copy()
    state = opt.create_state(0, w)
    for t in range(-4, 1):
        with pytest.raises(ValueError, match="lr"):
            opt.update(0, w, g, state)
        assert opt._index_update_count[0] == t
        np.testing.assert_array_equal(w, w0)
        for s in state:
            assert not s.any()
    opt.update(0, w, g, state)
    fresh, w_fresh = Adam(), w0.copy()
    fresh.update(0, w_fresh, g, fresh.create_state(0, w_fresh))
    np.testing.assert_array_equal(w, w_fresh)
