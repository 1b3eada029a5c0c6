"""Hyper-parameters, multipliers, list arguments and state objects are checked before the
first write, with errors naming the argument (reliability issue: overflow, NaN momentum,
state structure, messages)."""

import numpy as np
import pytest

from mxopt.optimizer import NAG, SGD, Adam, create


def _arrays(dtype=np.float32):
    return np.linspace(-1, 1, 6, dtype=dtype), np.full(6, 0.5, dtype)


def _untouched(call, arrays, error, match):
    before = [a.copy() for a in arrays if a is not None]
    with pytest.raises(error, match=match):
        call()
    for a, b in zip([a for a in arrays if a is not None], before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["learning_rate", "wd", "rescale_grad", "clip_gradient"])
@pytest.mark.parametrize("value", [10**400, float("inf"), float("nan")])
def test_non_finite_base_arguments_are_refused_at_construction(name, value):
    with pytest.raises(ValueError, match=f"{name} must be finite"):
        SGD(**{name: value})


@pytest.mark.parametrize("name", ["learning_rate", "wd", "rescale_grad"])
def test_strings_are_refused_at_construction(name):
    with pytest.raises(TypeError, match=f"{name}: expected a number.*, got '0.1'"):
        Adam(**{name: "0.1"})


@pytest.mark.parametrize("opt_name", ["sgd", "nag", "adam"])
@pytest.mark.parametrize(
    ("attr", "shown"),
    [("lr", "lr"), ("momentum", "momentum"), ("rescale_grad", "rescale_grad"), ("wd", "wd")],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_beyond_float32_are_refused_by_kernels(opt_name, attr, shown, dtype):
    # MXNet's kernels parse hyper-parameters as float32: 1e39 is infinite there, even for
    # float64 weights.
    opt = create(opt_name, momentum=0.9) if opt_name != "adam" else create("adam")
    if attr == "momentum" and opt_name == "adam":
        attr, shown = "beta1", "beta1"
    setattr(opt, attr, 1e39)
    w, g = _arrays(dtype)
    state = opt.create_state(0, w)
    states = [s for s in (state if isinstance(state, tuple) else (state,))]
    _untouched(lambda: opt.update(0, w, g, state), [w, *states], ValueError, shown)


@pytest.mark.parametrize("make", [SGD, NAG])
def test_nan_momentum_raises_instead_of_meaning_no_momentum(make):
    opt = make(momentum=0.9)
    w, g = _arrays()
    state = opt.create_state(0, w)
    opt.momentum = float("nan")
    _untouched(lambda: opt.update(0, w, g, state), [w, state], ValueError, "momentum")


def test_negative_momentum_keeps_mxnet_meaning():
    # A negative momentum creates a state but the kernels run without momentum.
    w, g = _arrays()
    negative, plain = SGD(momentum=-0.5), SGD()
    w2 = w.copy()
    negative.update(0, w, g, negative.create_state(0, w))
    plain.update(0, w2, g, None)
    np.testing.assert_array_equal(w, w2)


def test_string_momentum_names_momentum():
    opt = SGD(momentum="0.9")
    w, g = _arrays()
    _untouched(lambda: opt.update(0, w, g, None), [w], TypeError, "momentum: expected a number")


@pytest.mark.parametrize("setter", ["set_lr_mult", "set_wd_mult"])
def test_multipliers_must_be_numbers(setter):
    opt = SGD()
    with pytest.raises(TypeError, match=r"_mult\[0\]: expected a number, got 'x'"):
        getattr(opt, setter)({0: "x"})
    with pytest.raises(ValueError, match=r"_mult\['fc_weight'\] must be finite"):
        getattr(opt, setter)({"fc_weight": float("inf")})
    with pytest.raises(TypeError, match="expected a dict"):
        getattr(opt, setter)([0.5])


@pytest.mark.parametrize("make", [lambda: SGD(momentum=0.9), Adam])
def test_list_length_mismatch_names_the_short_list(make):
    opt = make()
    weights = [np.ones(3, np.float32) for _ in range(3)]
    grads = [np.ones(3, np.float32) for _ in range(2)]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    call = lambda: opt.update([0, 1, 2], weights, grads, states)  # noqa: E731
    _untouched(call, weights, ValueError, "grad: with a list of 3 indices")


@pytest.mark.parametrize("make", [lambda: SGD(momentum=0.9), NAG, Adam])
@pytest.mark.parametrize("weight", [[1.0, 2.0], 3.0])
def test_non_array_weight_is_a_type_error_naming_weight(make, weight):
    opt = make()
    with pytest.raises(TypeError, match="weight"):
        opt.update_multi_precision(0, weight, np.ones(2, np.float32), None)


@pytest.mark.parametrize("make", [SGD, NAG, Adam])
@pytest.mark.parametrize("bad", ["one", "none", "three"])
def test_multi_precision_state_structure_is_checked(make, bad):
    kwargs = {"momentum": 0.9} if make is not Adam else {}
    opt = make(multi_precision=True, **kwargs)
    w = np.linspace(-1, 1, 6).astype(np.float16)
    g = np.full(6, 0.5, np.float16)
    good = opt.create_state_multi_precision(0, w)
    state = {"one": good[:1], "none": None, "three": (*good, np.zeros(6, np.float32))}[bad]
    arrays = [w, *[a for a in good if isinstance(a, np.ndarray)]]
    if make is NAG and bad == "none":
        # MXNet's NAG takes a non-tuple state as "no multi-precision": no momentum update.
        opt.update_multi_precision(0, w, g, state)
        return
    _untouched(lambda: opt.update_multi_precision(0, w, g, state), arrays, TypeError, "state")


def _sparse(rows=4, cols=3, present=(1, 3)):
    from mxopt.sparse import row_sparse_array

    data = np.ones((len(present), cols), np.float32)
    return row_sparse_array((data, np.array(present)), shape=(rows, cols))


@pytest.mark.parametrize(
    "make", [lambda: SGD(momentum=0.9), lambda: NAG(), lambda: Adam(), lambda: Adam(wd=0.1)]
)
@pytest.mark.parametrize("bad", ["read_only", "shape", "nan_lr", "aliased"])
def test_split_list_call_writes_nothing_when_a_late_tensor_is_bad(make, bad):
    # A list mixing row-sparse and dense gradients, or dtypes, runs as several native
    # calls; all of them are checked before the first one writes.
    opt = make()
    weights = [
        np.ones((4, 3), np.float32),
        np.ones((4, 3), np.float64),
        np.ones((4, 3), np.float32),
    ]
    grads = [_sparse(), np.ones((4, 3), np.float64), np.ones((4, 3), np.float32)]
    states = [opt.create_state(i, w) for i, w in enumerate(weights)]
    if bad == "read_only":
        weights[2].flags.writeable = False
    elif bad == "shape":
        grads[2] = np.ones((3, 4), np.float32)
    elif bad == "nan_lr":
        opt.lr_mult[2] = float("nan")
    else:
        grads[2] = weights[0]
    flat = [s for st in states for s in (st if isinstance(st, tuple) else (st,))]
    call = lambda: opt.update([0, 1, 2], weights, grads, states)  # noqa: E731
    match = {"read_only": "read-only", "shape": "shape", "nan_lr": "lr", "aliased": "memory"}[bad]
    _untouched(call, [*weights, *flat], (TypeError, ValueError), match)
