"""mxopt.gpu against the CPU package: every optimizer with a GPU path, float32 and float16
multi-precision, several steps over a list of odd-sized tensors (one call), states
downloaded and compared, checkpoints between the two updaters, and refused calls.

Runs on any Vulkan adapter (CI: Mesa's software driver, lavapipe, so sizes stay small).
Skipped, with the reason, when the extension was built without the ``wgpu`` feature or
no adapter exists."""

import importlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import mxopt
from mxopt import gpu, optimizer, random
from mxopt.lr_scheduler import FactorScheduler

if not gpu.AVAILABLE:
    pytest.skip(
        "mxopt._core was built without the 'wgpu' feature (maturin develop --features python,wgpu)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def dev():
    try:
        return gpu.Device()
    except RuntimeError as e:
        pytest.skip(f"no GPU adapter: {e}")


#: Odd sizes around the workgroup (256) and a 2-d one, updated as one list.
SHAPES = [(1,), (3,), (255,), (257,), (1025,), (7, 5)]
STEPS = 3

#: GPU and CPU agree within this many float32 ulps (the driver may fuse a·b + c and
#: round / and sqrt within 3 ulp; LARS/LAMB norms are summed in another order) ...
ULPS = 8
#: ... or within this absolute distance, for results that cancel (8 ulps of 1.0).
ABS = 8 * float(np.finfo(np.float32).eps)


def ulps(a, b):
    """Distance in float32 ulps, elementwise (NaNs equal each other)."""
    ia = a.astype(np.float32).view(np.int32).astype(np.int64)
    ib = b.astype(np.float32).view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, np.int64(-(2**31)) - ia, ia)
    ib = np.where(ib < 0, np.int64(-(2**31)) - ib, ib)
    both_nan = np.isnan(a) & np.isnan(b)
    return np.where(both_nan, 0, np.abs(ia - ib))


def assert_close(what, got, expected):
    assert got.shape == expected.shape and got.dtype == expected.dtype, what
    if got.dtype == np.float16:
        # One float16 rounding of two float32 values a few ulps apart.
        d = np.abs(got.view(np.int16).astype(np.int32) - expected.view(np.int16).astype(np.int32))
        bad = d > 1
    else:
        bad = (ulps(got, expected) > ULPS) & ~(np.abs(got - expected) <= ABS)
    assert not bad.any(), (
        f"{what}: {bad.sum()} elements differ, e.g. gpu {got[bad][:3]} cpu {expected[bad][:3]}"
    )


def leaves(state):
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [leaf for item in state for leaf in leaves(item)]
    return [state]


def scheduled(**kw):
    """Common optimizer keywords: a scheduler, weight decay with per-name multipliers."""
    names = {i: f"layer{i}_weight" if i % 2 == 0 else f"layer{i}_bias" for i in range(8)}
    return dict(
        learning_rate=0.05,
        lr_scheduler=FactorScheduler(step=2, factor=0.5, base_lr=0.05),
        wd=0.01,
        param_idx2name=names,
        **kw,
    )


CASES = {
    "sgd": lambda **k: optimizer.SGD(momentum=0.9, **scheduled(**k)),
    "sgd_plain_clipped": lambda **k: optimizer.SGD(clip_gradient=0.3, rescale_grad=2.0, **k),
    "ccsgd": lambda **k: optimizer.ccSGD(momentum=0.5, **k),
    "nag": lambda **k: optimizer.NAG(momentum=0.9, **scheduled(**k)),
    "nag_plain": lambda **k: optimizer.NAG(**k),
    "adam": lambda **k: optimizer.Adam(**scheduled(**k)),
    "adam_clipped": lambda **k: optimizer.Adam(clip_gradient=0.2, rescale_grad=1.5, **k),
    "adamax": lambda **k: optimizer.Adamax(**scheduled(**k)),
    "nadam": lambda **k: optimizer.Nadam(**scheduled(**k)),
    "adagrad": lambda **k: optimizer.AdaGrad(**scheduled(**k)),
    "adadelta": lambda **k: optimizer.AdaDelta(clip_gradient=0.5, **k),
    "rmsprop": lambda **k: optimizer.RMSProp(**scheduled(**k)),
    "rmsprop_centered": lambda **k: optimizer.RMSProp(centered=True, clip_weights=0.9, **k),
    "ftml": lambda **k: optimizer.FTML(**scheduled(**k)),
    "ftrl": lambda **k: optimizer.Ftrl(**scheduled(**k)),
    "signum": lambda **k: optimizer.Signum(wd_lh=0.01, **scheduled(**k)),
    "signsgd": lambda **k: optimizer.Signum(momentum=0.0, **k),
    "dcasgd": lambda **k: optimizer.DCASGD(**scheduled(**k)),
    "sgld": lambda **k: _no_noise(optimizer.SGLD(**scheduled(**k))),
    "lars": lambda **k: optimizer.LARS(momentum=0.9, eta=0.01, **scheduled(**k)),
    "lars_plain": lambda **k: optimizer.LARS(eta=0.01, **k),
    "lamb": lambda **k: optimizer.LAMB(lower_bound=0.1, upper_bound=20.0, **scheduled(**k)),
    "lamb_master": lambda **k: optimizer.LAMB(update_master_copy=True, **k),
    "group_adagrad": lambda **k: optimizer.contrib.GroupAdaGrad(
        learning_rate=0.05, clip_gradient=0.7, **k
    ),
    # Ignores lr, wd and the scheduler: only rescale_grad acts.
    "test": lambda **k: optimizer.Test(rescale_grad=0.5, **scheduled(**k)),
}

#: Row-wise optimizers take 2-d weights.
ROW_WISE = {"group_adagrad"}
SHAPES_2D = [(1, 1), (3, 7), (257, 2), (5, 33)]


def _no_noise(opt):
    opt.add_noise = False
    return opt


def data(shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, s).astype(dtype) for s in shapes]


def run_both(dev, make, dtype, shapes=SHAPES, steps=STEPS):
    """The same calls on the CPU Updater and the GPU one; returns both updaters and
    both weight lists."""
    mp = dtype == np.float16
    cpu_up = optimizer.Updater(make(multi_precision=mp))
    gpu_up = gpu.Updater(make(multi_precision=mp))
    host = data(shapes, dtype, 0)
    weights = [dev.array(w) for w in host]
    grads = [dev.zeros(w.shape, dtype) for w in host]
    indices = list(range(len(shapes)))
    for t in range(steps):
        g = data(shapes, dtype, 100 + t)
        cpu_up(indices, g, host)
        for device_grad, h in zip(grads, g):
            device_grad.copy_from(h)
        gpu_up(indices, grads, weights)
    return cpu_up, gpu_up, host, weights


@pytest.mark.parametrize(
    "name, dtype",
    [
        pytest.param(name, dtype, id=f"{name}-{label}")
        for name in sorted(CASES)
        for dtype, label in ((np.float32, "f32"), (np.float16, "f16_mp"))
    ],
)
def test_gpu_matches_cpu(dev, name, dtype):
    shapes = SHAPES_2D if name in ROW_WISE else SHAPES
    cpu_up, gpu_up, host, weights = run_both(dev, CASES[name], dtype, shapes)
    for i, (h, w) in enumerate(zip(host, weights)):
        assert_close(f"{name} weight {i}", w.asnumpy(), h)
    # States (and master copies) downloaded in the CPU optimizer's layout.
    downloaded = pickle.loads(gpu_up.get_states())
    assert downloaded.keys() == cpu_up.states.keys()
    for i, cpu_state in cpu_up.states.items():
        got, expected = leaves(downloaded[i]), leaves(cpu_state)
        assert len(got) == len(expected), f"{name} state {i}"
        for k, (a, b) in enumerate(zip(got, expected)):
            assert_close(f"{name} state {i}.{k}", a, b)
    assert gpu_up.optimizer.num_update == cpu_up.optimizer.num_update


@pytest.mark.parametrize("name", ["lars", "sgd", "nadam"])
def test_chunks_of_aggregate_num_keep_cpu_numbers(dev, name):
    """The preamble runs per chunk of ``aggregate_num`` as in the CPU Updater (LARS's
    momentum correction then differs between chunks: several native calls)."""

    def make(**k):
        opt = CASES[name](**k)
        opt.aggregate_num = 4
        return opt

    _, _, host, weights = run_both(dev, make, np.float32, steps=4)
    for i, (h, w) in enumerate(zip(host, weights)):
        assert_close(f"{name} weight {i}", w.asnumpy(), h)


def test_checkpoint_moves_between_cpu_and_gpu(dev):
    """GPU states saved, loaded by a CPU updater (and back): training continues with the
    same numbers on either side."""
    make = CASES["adam"]
    cpu_up, gpu_up, _, weights = run_both(dev, make, np.float32, steps=2)
    blob = gpu_up.get_states(dump_optimizer=True)
    resumed_cpu = optimizer.Updater(make())
    resumed_cpu.set_states(blob, safe=True)
    resumed_gpu = gpu.Updater(make())
    resumed_gpu.set_states(cpu_up.get_states(dump_optimizer=True))
    g = data(SHAPES, np.float32, 7)
    indices = list(range(len(SHAPES)))
    cpu_host = [w.asnumpy() for w in weights]
    resumed_cpu(indices, g, cpu_host)
    grads = [dev.array(x) for x in g]
    # A refused call keeps the loaded states for the next one.
    resumed_gpu.optimizer.beta1 = float("nan")
    with pytest.raises(ValueError):
        resumed_gpu(indices, grads, weights)
    resumed_gpu.optimizer.beta1 = 0.9
    resumed_gpu(indices, grads, weights)
    for i, (h, w) in enumerate(zip(cpu_host, weights)):
        assert_close(f"resumed weight {i}", w.asnumpy(), h)


def test_sublists_and_regrouping_keep_numbers(dev):
    """A list updated whole, then in other groupings (arrays move on the device): every
    call still has the numbers of the CPU updater."""
    make = CASES["sgd"]
    cpu_up = optimizer.Updater(make())
    gpu_up = gpu.Updater(make())
    host = data(SHAPES, np.float32, 1)
    weights = [dev.array(w) for w in host]
    groupings = [[0, 1, 2, 3, 4, 5], [4, 1], [0, 2, 3, 5], [5, 4, 3, 2, 1, 0]]
    for t, group in enumerate(groupings):
        g = data([SHAPES[i] for i in group], np.float32, 50 + t)
        cpu_up(group, g, [host[i] for i in group])
        gpu_up(group, [dev.array(x) for x in g], [weights[i] for i in group])
    for i, (h, w) in enumerate(zip(host, weights)):
        assert_close(f"weight {i}", w.asnumpy(), h)


def test_kept_parameter_sets_follow_the_arrays(dev):
    """A list keeps its parameter set (with its first weight) between calls: repeated
    lists reuse it, while a list with the same first weight but other members, members
    moved by another list, or a replaced gradient array must not (CPU numbers each time)."""
    make = CASES["adam"]
    cpu_up = optimizer.Updater(make())
    gpu_up = gpu.Updater(make())
    host = data(SHAPES, np.float32, 2)
    weights = [dev.array(w) for w in host]
    grads = [dev.zeros(s, np.float32) for s in SHAPES]
    everything = list(range(len(SHAPES)))
    groupings = [everything, everything, [0, 1, 2], everything, [4, 1], everything]
    groupings += [everything, "new grad 3", everything, everything]
    for t, group in enumerate(groupings):
        if group == "new grad 3":
            grads[3] = dev.zeros(SHAPES[3], np.float32)
            continue
        g = data([SHAPES[i] for i in group], np.float32, 60 + t)
        cpu_up(group, g, [host[i] for i in group])
        for i, x in zip(group, g):
            grads[i].copy_from(x)
        gpu_up(group, [grads[i] for i in group], [weights[i] for i in group])
        for i in group:
            assert_close(f"call {t} weight {i}", weights[i].asnumpy(), host[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (3,), (5, 7), (1025,)])
def test_array_round_trip(dev, shape, dtype):
    a = np.random.default_rng(3).uniform(-2, 2, shape).astype(dtype)
    d = dev.array(a)
    assert d.shape == shape and d.dtype == dtype and d.size == a.size and d.ndim == a.ndim
    assert d.device is dev
    np.testing.assert_array_equal(d.asnumpy(), a)
    b = np.asarray(a * 3, dtype=dtype)
    d.copy_from(b)
    np.testing.assert_array_equal(d.asnumpy(), b)
    z = dev.zeros(shape, dtype)
    np.testing.assert_array_equal(z.asnumpy(), np.zeros(shape, dtype))


def test_device_info(dev):
    assert isinstance(dev.name, str) and dev.name
    assert dev.backend == "Vulkan"
    assert "Device(" in repr(dev)
    dev.synchronize()


def test_array_bad_input(dev):
    d = dev.array(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="float32 or float16"):
        dev.array(np.zeros(4))
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        dev.array([1.0, 2.0])
    with pytest.raises(ValueError, match="C-contiguous"):
        dev.array(np.zeros((4, 4), np.float32)[:, 1])
    with pytest.raises(TypeError, match="expected dtype float32"):
        d.copy_from(np.zeros(4, np.float16))
    with pytest.raises(ValueError, match="shape"):
        d.copy_from(np.zeros(5, np.float32))
    with pytest.raises(TypeError, match="float32 or float16, got float64"):
        dev.zeros((3,), np.float64)
    with pytest.raises(ValueError, match="exceed"):
        dev.zeros((1 << 40,))


def _updater_and_arrays(dev, make=None, dtype=np.float32):
    up = gpu.Updater((make or CASES["adam"])())
    weights = [dev.array(w) for w in data([(4,), (5,)], dtype, 0)]
    grads = [dev.array(g) for g in data([(4,), (5,)], dtype, 1)]
    return up, weights, grads


def _unchanged(up, weights, before):
    assert not up.states and not up.masters
    assert up.optimizer.num_update == 0 and not up.optimizer._index_update_count
    for w, b in zip(weights, before):
        np.testing.assert_array_equal(w.asnumpy(), b)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (lambda w, g: ([0, 1], [g[0], g[1]], [w[0].asnumpy(), w[1]]), TypeError, r"weight\[0\]"),
        (lambda w, g: ([0, 1], [g[0], w[1]], w), ValueError, r"grad\[1\]: is the same array"),
        (lambda w, g: ([0, 1], [g[1], g[0]], w), ValueError, r"grad\[0\]: expected the weight"),
        (lambda w, g: ([0, 0], g, w), ValueError, "appears twice"),
        (lambda w, g: ([0, 1], g[:1], w), ValueError, "equal lengths"),
        (lambda w, g: ([0], g[0], [w[0]]), TypeError, "grad: expected a list of GpuArray"),
    ],
    ids=["numpy_weight", "alias", "shape", "duplicate_index", "lengths", "not_a_list"],
)
def test_refused_calls_change_nothing(dev, bad, error, match):
    up, weights, grads = _updater_and_arrays(dev)
    before = [w.asnumpy() for w in weights]
    index, grad, weight = bad(weights, grads)
    with pytest.raises(error, match=match):
        up(index, grad, weight)
    _unchanged(up, weights, before)


def test_arrays_of_another_device_are_refused(dev):
    other = gpu.Device()
    up, weights, grads = _updater_and_arrays(dev)
    up([0, 1], grads, weights)
    foreign = other.array(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="another device"):
        up(0, foreign, weights[0])
    with pytest.raises(ValueError, match=r"weights\[0\]: the array lives on another device"):
        mxopt._core.gpu_step(
            dev, mxopt._core.Kernel("sgd"), [foreign], [grads[0]], [], [0.1], [0.0], [1]
        )


def test_float16_needs_multi_precision(dev):
    up, weights, grads = _updater_and_arrays(dev, dtype=np.float16)
    with pytest.raises(TypeError, match="multi_precision=True"):
        up([0, 1], grads, weights)
    assert not up.states


def test_bad_hyper_parameters_are_refused_before_counting(dev):
    up, weights, grads = _updater_and_arrays(dev)
    before = [w.asnumpy() for w in weights]
    up.optimizer.beta1 = float("nan")
    with pytest.raises(ValueError):
        up([0, 1], grads, weights)
    _unchanged(up, weights, before)


class _HostOnly(optimizer.Optimizer):
    """A custom optimizer: it has no GPU path."""

    def update(self, index, weight, grad, state):
        weight -= grad


def test_optimizers_without_a_gpu_path():
    opt = _HostOnly()
    assert not gpu.supported(opt)
    with pytest.raises(TypeError, match="_HostOnly has no GPU path"):
        gpu.Updater(opt)
    for opt in (optimizer.SGLD(), _no_noise(optimizer.SGLD()), optimizer.Test(), optimizer.LBSGD()):
        assert gpu.supported(opt)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_row_wise_optimizers_need_2d_weights(dev, dtype):
    up = gpu.Updater(CASES["group_adagrad"](multi_precision=True))
    flat = dev.array(np.ones(6, dtype))
    with pytest.raises(ValueError, match="2-d weight"):
        up(0, dev.array(np.ones(6, dtype)), flat)
    assert not up.states and not up.masters and up.optimizer.num_update == 0
    np.testing.assert_array_equal(flat.asnumpy(), np.ones(6, dtype))
    # Float16 still needs the master copies of multi_precision.
    up = gpu.Updater(CASES["group_adagrad"]())
    half = dev.array(np.ones((2, 3), np.float16))
    with pytest.raises(TypeError, match="multi_precision=True"):
        up(0, dev.array(np.ones((2, 3), np.float16)), half)
    assert not up.states


def test_native_checks(dev):
    """The native entry points name the argument they refuse."""
    core = mxopt._core
    w = [dev.array(np.ones(3, np.float32))]
    g = [dev.array(np.ones(3, np.float32))]
    s = [dev.zeros((3,)), dev.zeros((3,))]
    adam = core.Kernel("adam")
    with pytest.raises(ValueError, match="2 state array"):
        core.gpu_step(dev, adam, w, g, s[:1], [0.1], [0.0], [1])
    with pytest.raises(ValueError, match=r"states\[1\]: is the same array as states\[0\]"):
        core.gpu_step(dev, adam, w, g, [s[0], s[0]], [0.1], [0.0], [1])
    with pytest.raises(TypeError, match=r"masters\[0\]: expected dtype float32"):
        h = [dev.array(np.ones(3, np.float16))]
        core.gpu_step(dev, adam, h, [dev.array(np.ones(3, np.float16))], s, [0.1], [0.0], [1], h)
    with pytest.raises(TypeError, match=r"weights\[0\]: this call takes float32"):
        core.gpu_step(dev, adam, h, g, s, [0.1], [0.0], [1])
    with pytest.raises(ValueError, match="lrs: expected one value per weight"):
        core.gpu_step(dev, adam, w, g, s, [], [0.0], [1])
    with pytest.raises(ValueError, match="row-sparse"):
        core.gpu_step(dev, core.Kernel("adam_lazy"), w, g, s, [0.1], [0.0], [1])
    with pytest.raises(ValueError, match="lr"):
        core.gpu_step(dev, adam, w, g, s, [float("inf")], [0.0], [1])
    with pytest.raises(ValueError, match=r"LAMB keeps \(mean, var\): 2 state array"):
        core.gpu_lamb(dev, w, g, s[:1], [0.1], [0.0], [1])
    with pytest.raises(TypeError, match="unexpected hyper-parameter"):
        core.gpu_lars(dev, w, g, [], [0.1], [0.0], [1], [True], nonsense=1.0)
    np.testing.assert_array_equal(w[0].asnumpy(), np.ones(3, np.float32))


def test_without_an_adapter_device_names_what_is_missing():
    """No Vulkan driver (the loader finds none): a RuntimeError naming the fix."""
    env = dict(
        os.environ, VK_DRIVER_FILES="/nonexistent.json", VK_ICD_FILENAMES="/nonexistent.json"
    )
    code = "from mxopt import gpu\ntry:\n    gpu.Device()\nexcept RuntimeError as e:\n    print(e)"
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "no Vulkan adapter found" in run.stdout
    assert "mesa-vulkan-drivers" in run.stdout


def test_without_the_feature_device_says_how_to_build(monkeypatch):
    monkeypatch.setattr(mxopt._core, "HAS_WGPU", False)
    try:
        stub = importlib.reload(gpu)
        assert not stub.AVAILABLE
        with pytest.raises(RuntimeError, match="features python,wgpu"):
            stub.Device()
    finally:
        monkeypatch.undo()
        importlib.reload(gpu)


# ---------------------------------------------------------------- SGLD's device noise

NOISE_LR = 0.01


def sgld(add_noise=True, **k):
    opt = optimizer.SGLD(learning_rate=NOISE_LR, wd=0.01, rescale_grad=0.5, **k)
    opt.add_noise = add_noise
    return opt


def noisy_gpu_run(dev, seed, host, steps=2):
    """GPU SGLD with noise after ``mxopt.random.seed(seed)``: each step's weights (and
    master copies) downloaded, and the generator's position at the end."""
    random.seed(seed)
    up = gpu.Updater(sgld(multi_precision=True))
    weights = [dev.array(h) for h in host]
    indices = list(range(len(host)))
    snapshots = []
    for t in range(steps):
        grads = [dev.array(g.astype(h.dtype)) for g, h in zip(data(SHAPES, np.float32, t), host)]
        up(indices, grads, weights)
        masters = [up.masters[i].asnumpy() for i in sorted(up.masters)]
        snapshots.append([w.asnumpy() for w in weights] + masters)
    return snapshots, random._position()


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_sgld_noise_follows_the_seed(dev, dtype):
    """The same seed replays a GPU run bit for bit; another seed gives other noise; the
    generator ends where the CPU Updater's does (one stream per weight per step)."""
    host = data(SHAPES, dtype, 0)
    first, position = noisy_gpu_run(dev, 3, host)
    again, _ = noisy_gpu_run(dev, 3, host)
    other, _ = noisy_gpu_run(dev, 4, host)
    for step, (a, b, c) in enumerate(zip(first, again, other)):
        for k, (x, y, z) in enumerate(zip(a, b, c)):
            assert x.tobytes() == y.tobytes(), f"step {step} array {k}: same seed differs"
            if x.size >= 30:
                assert not np.array_equal(x, z), f"step {step} array {k}: seed ignored"
    random.seed(3)
    cpu_up = optimizer.Updater(sgld(multi_precision=True))
    for t in range(2):
        cpu_up(list(range(len(SHAPES))), data(SHAPES, dtype, t), [h.copy() for h in host])
    assert position == random._position() == (3, 2 * len(SHAPES))


def device_noise(dev, seed, stream, shape):
    """The device's noise of the keystream ``(seed, stream)``: SGLD on zeros."""
    w = dev.zeros(shape)
    scale = float(np.sqrt(NOISE_LR))
    mxopt._core.gpu_step_noisy(
        dev,
        mxopt._core.Kernel("sgld"),
        [w],
        [dev.zeros(shape)],
        [],
        [NOISE_LR],
        [0.0],
        [1],
        [scale],
        [seed],
        [stream],
    )
    return w.asnumpy()


def test_sgld_noise_streams_follow_the_cpu_order(dev):
    """Each weight of a mixed-precision list, chunked by ``aggregate_num``, takes the
    stream the CPU Updater gives it: from zero weights and gradients, the CPU's weight is
    its stream's host noise and the GPU's that stream's device noise."""
    layout = [((5,), np.float32), ((7,), np.float16), ((300,), np.float32)]
    layout += [((3,), np.float16), ((4, 4), np.float32)]
    ups = []
    for updater in (optimizer.Updater, gpu.Updater):
        opt = sgld(multi_precision=True)
        opt.wd = 0.0
        opt.aggregate_num = 2
        ups.append(updater(opt))
    cpu_up, gpu_up = ups
    indices = list(range(len(layout)))
    cpu_w = [np.zeros(s, d) for s, d in layout]
    gpu_w = [dev.zeros(s, d) for s, d in layout]
    random.seed(11)
    cpu_up(indices, [np.zeros(s, d) for s, d in layout], cpu_w)
    cpu_position = random._position()
    random.seed(11)
    gpu_up(indices, [dev.zeros(s, d) for s, d in layout], gpu_w)
    assert random._position() == cpu_position == (11, len(layout))
    scale = float(np.sqrt(NOISE_LR))
    streams = []
    for i, (shape, dtype) in enumerate(layout):
        cpu_noise = cpu_up.states[i][0] if dtype == np.float16 else cpu_w[i]
        host_noise = [np.empty(shape, np.float32) for _ in layout]
        for k, out in enumerate(host_noise):
            mxopt._core.fill_normal(out, 0.0, scale, 11, k)
        (stream,) = [k for k, n in enumerate(host_noise) if np.array_equal(n, cpu_noise)]
        streams.append(stream)
        expected = device_noise(dev, 11, stream, shape)
        got = gpu_up.masters[i].asnumpy() if dtype == np.float16 else gpu_w[i].asnumpy()
        assert got.tobytes() == expected.tobytes(), f"weight {i}: not stream {stream}"
        np.testing.assert_array_equal(gpu_w[i].asnumpy(), got.astype(dtype))
    assert sorted(streams) == indices


def moments_check(what, r, variance):
    """Mean 0, the given variance and a normal's mass within one standard deviation, each
    within 5 standard errors over the sample ``r``."""
    n = r.size
    mean, var = float(r.mean()), float(r.var())
    assert abs(mean) < 5 * np.sqrt(variance / n), f"{what}: mean {mean}"
    assert abs(var - variance) < 5 * variance * np.sqrt(2 / (n - 1)), f"{what}: var {var}"
    p = 0.6826894921370859  # P(|z| < 1)
    inside = float((np.abs(r) < np.sqrt(variance)).mean())
    assert abs(inside - p) < 5 * np.sqrt(p * (1 - p) / n), f"{what}: {inside} within 1 sd"


def uncorrelated(what, a, b):
    corr = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert abs(corr) < 5 / np.sqrt(a.size), f"{what}: correlation {corr}"


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_sgld_noise_statistics(dev, dtype):
    """GPU SGLD minus the CPU's deterministic half step (the same optimizer without
    noise, from the GPU's weights and master copies) is N(0, lr) noise, independent
    between the tensors of one list and between steps."""
    mp = dtype == np.float16
    shapes = [(100_000,), (400, 250)]
    gpu_up = gpu.Updater(sgld(multi_precision=mp))
    cpu_up = optimizer.Updater(sgld(add_noise=False, multi_precision=mp))
    host = data(shapes, dtype, 5)
    weights = [dev.array(h) for h in host]
    residuals = []
    random.seed(21)
    for t in range(2):
        g = data(shapes, dtype, 30 + t)
        if t:
            cpu_up.set_states(gpu_up.get_states())
        expected = [w.asnumpy() for w in weights]
        cpu_up([0, 1], g, expected)
        gpu_up([0, 1], [dev.array(x) for x in g], weights)
        if mp:
            got = [gpu_up.masters[i].asnumpy() for i in range(2)]
            expected = [cpu_up.states[i][0] for i in range(2)]
            for i in range(2):
                np.testing.assert_array_equal(weights[i].asnumpy(), got[i].astype(dtype))
        else:
            got = [w.asnumpy() for w in weights]
        r = [(a.astype(np.float64) - b).ravel() for a, b in zip(got, expected)]
        moments_check(f"step {t}", np.concatenate(r), NOISE_LR)
        uncorrelated(f"step {t}: tensors 0 and 1", r[0], r[1])
        residuals.append(np.concatenate(r))
    uncorrelated("steps 0 and 1", residuals[0], residuals[1])
    assert gpu_up.optimizer.num_update == cpu_up.optimizer.num_update == 2


def test_sgld_noise_refuses_a_negative_lr_before_drawing(dev):
    up, weights, grads = _updater_and_arrays(dev, lambda: optimizer.SGLD(learning_rate=-0.1))
    before = [w.asnumpy() for w in weights]
    random.seed(5)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        up([0, 1], grads, weights)
    assert random._position() == (5, 0)
    assert not up.states and not up.masters
    for w, b in zip(weights, before):
        np.testing.assert_array_equal(w.asnumpy(), b)


def test_new_native_checks(dev):
    """gpu_step_noisy, gpu_test and gpu_group_adagrad's master copies name what they
    refuse, before anything is written."""
    core = mxopt._core
    w = [dev.array(np.ones(3, np.float32))]
    g = [dev.array(np.ones(3, np.float32))]
    s = [dev.zeros((3,))]
    sgld_kernel = core.Kernel("sgld")
    noisy = dict(lrs=[0.1], wds=[0.0], ts=[1], scales=[0.3], seeds=[1], streams=[2])
    with pytest.raises(ValueError, match="kernel: only sgld"):
        core.gpu_step_noisy(dev, core.Kernel("sgd"), w, g, [], **noisy)
    with pytest.raises(ValueError, match="seeds"):
        core.gpu_step_noisy(dev, sgld_kernel, w, g, [], **{**noisy, "seeds": []})
    with pytest.raises(ValueError, match="noise scale"):
        core.gpu_step_noisy(dev, sgld_kernel, w, g, [], **{**noisy, "scales": [-1.0]})
    with pytest.raises(ValueError, match="0 state array"):
        core.gpu_step_noisy(dev, sgld_kernel, w, g, s, **noisy)
    with pytest.raises(ValueError, match="rescale_grad"):
        core.gpu_test(dev, w, g, s, float("nan"))
    with pytest.raises(ValueError, match="1 state array"):
        core.gpu_test(dev, w, g, [], 1.0)
    h = [dev.array(np.ones((3, 1), np.float16))]
    history = [dev.zeros((3, 1))]
    with pytest.raises(TypeError, match=r"weights\[0\]: this call takes float32"):
        core.gpu_group_adagrad(
            dev, h, [dev.array(np.ones((3, 1), np.float16))], history, [0.1], 1e-5, 1.0
        )
    with pytest.raises(ValueError, match=r"masters\[0\]: expected shape"):
        core.gpu_group_adagrad(
            dev,
            h,
            [dev.array(np.ones((3, 1), np.float16))],
            history,
            [0.1],
            1e-5,
            1.0,
            masters=[dev.zeros((3,))],
        )
    np.testing.assert_array_equal(w[0].asnumpy(), np.ones(3, np.float32))
    np.testing.assert_array_equal(h[0].asnumpy(), np.ones((3, 1), np.float16))


# ---------------------------------------------------------------------------- LBSGD

LBSGD_CASES = {
    "plain": lambda **k: optimizer.LBSGD(**scheduled(**k)),
    "momentum_linear": lambda **k: optimizer.LBSGD(
        momentum=0.9, batch_scale=3, warmup_epochs=1, updates_per_epoch=4, **scheduled(**k)
    ),
    "power2_clipped": lambda **k: optimizer.LBSGD(
        batch_scale=2,
        warmup_strategy="power2",
        warmup_epochs=2,
        updates_per_epoch=2,
        clip_gradient=0.3,
        rescale_grad=0.5,
        **k,
    ),
    "sqrt_begin_epoch": lambda **k: optimizer.LBSGD(
        momentum=0.5, batch_scale=2, warmup_strategy="sqrt", begin_epoch=1, **k
    ),
    "lars": lambda **k: optimizer.LBSGD(warmup_strategy="lars", **scheduled(**k)),
    "lars_accumulating": lambda **k: optimizer.LBSGD(
        momentum=0.9, batch_scale=2, warmup_strategy="lars", **k
    ),
    "constant": lambda **k: optimizer.LBSGD(batch_scale=4, warmup_strategy="none", **k),
}


def run_lbsgd(dev, make, dtype, reuse, steps=7, shapes=SHAPES):
    """LBSGD on both updaters, gradients either written into the same arrays every step
    (``reuse``: MXNet's reference to the first accumulated gradient then sees the
    overwrite, on both sides) or passed as new arrays."""
    mp = dtype == np.float16
    cpu_up = optimizer.Updater(make(multi_precision=mp))
    gpu_up = gpu.Updater(make(multi_precision=mp))
    host = data(shapes, dtype, 0)
    weights = [dev.array(w) for w in host]
    cpu_grads = [np.zeros(s, dtype) for s in shapes]
    gpu_grads = [dev.zeros(s, dtype) for s in shapes]
    indices = list(range(len(shapes)))
    for t in range(steps):
        g = data(shapes, dtype, 100 + t)
        if reuse:
            for c, d, x in zip(cpu_grads, gpu_grads, g):
                c[...] = x
                d.copy_from(x)
            cpu_up(indices, cpu_grads, host)
            gpu_up(indices, gpu_grads, weights)
        else:
            cpu_up(indices, g, host)
            gpu_up(indices, [dev.array(x) for x in g], weights)
        for i, (h, w) in enumerate(zip(host, weights)):
            assert_close(f"weight {i} after update {t + 1}", w.asnumpy(), h)
    return cpu_up, gpu_up, host, weights


@pytest.mark.parametrize("reuse", [True, False], ids=["same_grad_arrays", "new_grad_arrays"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16_mp"])
@pytest.mark.parametrize("name", sorted(LBSGD_CASES))
def test_lbsgd_matches_cpu(dev, name, dtype, reuse):
    cpu_up, gpu_up, _, _ = run_lbsgd(dev, LBSGD_CASES[name], dtype, reuse)
    cpu_opt, gpu_opt = cpu_up.optimizer, gpu_up.optimizer
    assert gpu_opt.num_update == cpu_opt.num_update
    assert gpu_opt._index_update_count == cpu_opt._index_update_count
    downloaded = pickle.loads(gpu_up.get_states(dump_optimizer=True))[1].cumgrads
    assert downloaded.keys() == cpu_opt.cumgrads.keys()
    for i, c in cpu_opt.cumgrads.items():
        assert downloaded[i]["num_cums"] == c["num_cums"]
        if isinstance(c["cum_grad"], int):
            assert downloaded[i]["cum_grad"] == 0
        else:
            assert_close(f"sum {i}", downloaded[i]["cum_grad"], c["cum_grad"])


def test_lbsgd_first_gradient_is_kept_by_reference(dev):
    """MXNet keeps the first gradient of an accumulation by reference: overwriting the
    array before the next call doubles the new gradient in the sum, on the CPU and the
    device alike (float32 weights; multi-precision works on a float32 copy)."""
    make = LBSGD_CASES["momentum_linear"]
    _, gpu_up, _, _ = run_lbsgd(dev, make, np.float32, reuse=True, steps=2)
    _, fresh_up, _, _ = run_lbsgd(dev, make, np.float32, reuse=False, steps=2)
    shared = pickle.loads(gpu_up.get_states(dump_optimizer=True))[1].cumgrads[3]["cum_grad"]
    fresh = pickle.loads(fresh_up.get_states(dump_optimizer=True))[1].cumgrads[3]["cum_grad"]
    g2 = data(SHAPES, np.float32, 101)[3]
    np.testing.assert_array_equal(shared, g2 + g2)
    assert not np.array_equal(fresh, shared)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16_mp"])
def test_lbsgd_checkpoints_mid_accumulation(dev, dtype):
    """Saved part-way through a batch of 3 (the sums travel in the pickled optimizer):
    the CPU resumes the GPU's run and the GPU the CPU's, with the same numbers."""
    make = LBSGD_CASES["momentum_linear"]
    mp = dtype == np.float16
    cpu_up, gpu_up, host, weights = run_lbsgd(dev, make, dtype, reuse=False, steps=4)
    from_gpu = optimizer.Updater(make(multi_precision=mp))
    from_gpu.set_states(gpu_up.get_states(dump_optimizer=True), safe=True)
    from_cpu = gpu.Updater(make(multi_precision=mp))
    from_cpu.set_states(cpu_up.get_states(dump_optimizer=True))
    cpu_host = [w.asnumpy() for w in weights]
    gpu_weights = [dev.array(h) for h in host]
    indices = list(range(len(SHAPES)))
    for t in range(4, 7):
        g = data(SHAPES, dtype, 100 + t)
        from_gpu(indices, g, cpu_host)
        from_cpu(indices, [dev.array(x) for x in g], gpu_weights)
        for i, (h, w) in enumerate(zip(cpu_host, gpu_weights)):
            assert_close(f"resumed weight {i} after update {t + 1}", w.asnumpy(), h)


@pytest.mark.parametrize(
    "setting, value, match",
    [
        ("batch_scale", 0, "batch_scale must be positive"),
        ("batch_scale", 2.5, "whole number"),
        ("batch_scale", 2**70, r"below 2\*\*63"),
        ("momentum", float("nan"), "momentum"),
        ("rescale_grad", float("inf"), "rescale_grad"),
    ],
)
def test_lbsgd_bad_settings_change_nothing(dev, setting, value, match):
    up, weights, grads = _updater_and_arrays(dev, LBSGD_CASES["momentum_linear"])
    before = [w.asnumpy() for w in weights]
    setattr(up.optimizer, setting, value)
    with pytest.raises(ValueError, match=match):
        up([0, 1], grads, weights)
    _unchanged(up, weights, before)
    assert not up.optimizer.cumgrads


def test_lbsgd_native_checks(dev):
    w = [dev.array(np.ones(3, np.float32))]
    g = [dev.array(np.ones(3, np.float32))]
    kw = dict(momentum=0.9, rescale_grad=1.0, batch_scale=2, lars_warmup=False)
    args = (dev, w, g)
    one_state = [dev.zeros((3,))]
    with pytest.raises(ValueError, match="2 state array"):
        mxopt._core.gpu_lbsgd(*args, one_state, [0.1], [0.0], [1], [True], [False], [1.0], **kw)
    states = [dev.zeros((3,)), dev.zeros((3,))]
    with pytest.raises(ValueError, match="finishes: expected one value per weight"):
        mxopt._core.gpu_lbsgd(*args, states, [0.1], [0.0], [1], [True], [], [1.0], **kw)
    with pytest.raises(ValueError):
        mxopt._core.gpu_lbsgd(*args, states, [1e38], [0.0], [1], [True], [True], [100.0], **kw)
    np.testing.assert_array_equal(w[0].asnumpy(), np.ones(3, np.float32))


def test_lbsgd_sum_of_another_shape_is_refused_before_counting(dev):
    opt = optimizer.LBSGD(batch_scale=3)
    opt.cumgrads = {0: {"cum_grad": np.ones(4, np.float32), "num_cums": 1}}
    up = gpu.Updater(opt)
    w, g = dev.array(np.ones(5, np.float32)), dev.array(np.ones(5, np.float32))
    with pytest.raises(ValueError, match="does not fit the gradients accumulated"):
        up(0, g, w)
    _unchanged(up, [w], [np.ones(5, np.float32)])


@pytest.mark.parametrize("name", [*sorted(set(CASES) - ROW_WISE), "lbsgd"])
def test_scalar_weights(dev, name):
    """0-d weights (their states stay 0-d on the way to the device) in a list with others."""
    shapes = [(), (3,)]
    if name == "lbsgd":
        make = LBSGD_CASES["momentum_linear"]
        _, gpu_up, host, weights = run_lbsgd(dev, make, np.float32, True, 4, shapes)
    else:
        _, gpu_up, host, weights = run_both(dev, CASES[name], np.float32, shapes, steps=4)
    for i, (h, w) in enumerate(zip(host, weights)):
        assert w.shape == h.shape
        assert_close(f"{name} weight {i}", w.asnumpy(), h)
    assert all(a.shape == () for a in leaves(pickle.loads(gpu_up.get_states())[0]))


def _cpu_blob(make, shape):
    cpu = optimizer.Updater(make())
    w, g = data([shape], np.float32, 0)[0], data([shape], np.float32, 1)[0]
    cpu(0, g, w)
    return cpu.get_states()


@pytest.mark.parametrize(
    "blob_of, match",
    [
        (lambda: _cpu_blob(CASES["adam"], (7,)), r"state of index 0: expected float32 .* \(4,\)"),
        (lambda: _cpu_blob(lambda: optimizer.SGD(momentum=0.9), (4,)), "Adam reads 2 state"),
    ],
    ids=["other_shape", "other_optimizer"],
)
def test_loaded_states_that_do_not_fit_are_refused_before_counting(dev, blob_of, match):
    up, weights, grads = _updater_and_arrays(dev)
    up.set_states(blob_of())
    before = [w.asnumpy() for w in weights]
    with pytest.raises(ValueError, match=match):
        up([0, 1], grads, weights)
    _unchanged(up, weights, before)


@pytest.mark.parametrize("make", [optimizer.SGD, optimizer.LARS], ids=["sgd", "lars"])
def test_momentum_turned_on_without_a_state_is_refused_before_counting(dev, make):
    up, weights, grads = _updater_and_arrays(dev, lambda: make(learning_rate=0.1, momentum=0.0))
    up([0, 1], grads, weights)
    before = [w.asnumpy() for w in weights]
    up.optimizer.momentum = 0.9
    with pytest.raises(ValueError, match="reads 1 state array"):
        up([0, 1], grads, weights)
    assert up.optimizer._index_update_count == {0: 1, 1: 1}
    for w, b in zip(weights, before):
        np.testing.assert_array_equal(w.asnumpy(), b)


def test_lbsgd_momentum_turned_on_follows_the_state_as_on_the_cpu(dev):
    make = LBSGD_CASES["momentum_linear"]
    gpu_opt, cpu_opt = make(), make()
    gpu_opt.momentum = cpu_opt.momentum = 0.0
    up, cpu = gpu.Updater(gpu_opt), optimizer.Updater(cpu_opt)
    hw, hg = data([(4,), (5,)], np.float32, 0), data([(4,), (5,)], np.float32, 1)
    weights, grads = [dev.array(w) for w in hw], [dev.array(g) for g in hg]
    for step in range(4):
        if step == 1:
            gpu_opt.momentum = cpu_opt.momentum = 0.9
        up([0, 1], grads, weights)
        cpu([0, 1], hg, hw)
    for w, expected in zip(weights, hw):
        assert_close("weight", w.asnumpy(), expected)


def test_zeros_takes_numpy_shapes_and_names_bad_ones(dev):
    assert dev.zeros(3).shape == (3,)
    assert dev.zeros((np.int64(2), 0)).asnumpy().shape == (2, 0)
    with pytest.raises(ValueError, match=r"shape: dimensions must be non-negative, got \[2, -1\]"):
        dev.zeros((2, -1))
    with pytest.raises(TypeError, match="shape: expected an int or a sequence of ints"):
        dev.zeros((3.0,))
    with pytest.raises(TypeError, match="dtype: "):
        dev.zeros((3,), "not-a-dtype")
    # 2**62 float32 elements: the byte count must not wrap around to a small buffer.
    with pytest.raises(ValueError, match=r"exceed the device's largest storage buffer"):
        dev.zeros((2**62,))


def test_lbsgd_state_of_a_mixed_precision_weight_on_a_float32_one_is_refused(dev):
    make = lambda: optimizer.LBSGD(momentum=0.9, batch_scale=2, multi_precision=True)  # noqa: E731
    cpu = optimizer.Updater(make())
    cpu(0, np.ones(4, np.float16), np.ones(4, np.float16))
    up, weights, grads = _updater_and_arrays(dev, make)
    up.set_states(cpu.get_states())  # index 0: (momentum, float32 master)
    before = [w.asnumpy() for w in weights]
    with pytest.raises(ValueError, match="LBSGD keeps a momentum array or no state, got 2"):
        up([0, 1], grads, weights)
    _unchanged(up, weights, before)


def test_native_calls_with_empty_lists_do_nothing(dev):
    core, none = mxopt._core, ([], [], [])
    core.gpu_step(dev, core.Kernel("adam"), *none, [], [], [])
    core.gpu_step_noisy(dev, core.Kernel("sgld"), *none, [], [], [], [], [], [])
    core.gpu_lars(dev, *none, [], [], [], [], momentum=0.9)
    core.gpu_lamb(dev, *none, [], [], [])
    core.gpu_group_adagrad(dev, *none, [], 1e-5, 1.0)
    core.gpu_test(dev, *none, 1.0)
    core.gpu_lbsgd(
        dev,
        *none,
        [],
        [],
        [],
        [],
        [],
        [],
        momentum=0.9,
        rescale_grad=1.0,
        batch_scale=2,
        lars_warmup=True,
    )
    # The empty list is still checked: a stray state without a weight is refused.
    with pytest.raises(ValueError, match="states"):
        core.gpu_step(dev, core.Kernel("sgd", momentum=0.9), [], [], [dev.zeros(3)], [], [], [])
    dev.synchronize()
