"""A short tour of the extension for scripts/memcheck.sh: every registered optimizer's
dense, multi-precision, row-sparse and aggregated updates, a few refused calls, the
initializers and the fast norms, on small arrays (memcheck is slow)."""

import warnings

import numpy as np

import mxopt
from mxopt import initializer
from mxopt.optimizer import Optimizer, create
from mxopt.sparse import row_sparse_array

warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
for name in sorted(Optimizer.opt_registry):
    for dtype, mp in ((np.float32, False), (np.float16, True), (np.float64, False)):
        opt = create(name, learning_rate=0.1, multi_precision=mp)
        shape = (7, 9)
        weights = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
        grads = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
        try:
            states = [opt.create_state_multi_precision(i, w) for i, w in enumerate(weights)]
            for _ in range(2):
                opt.update_multi_precision(0, weights[0], grads[0], states[0])
                opt.update_multi_precision([1, 2], weights[1:], grads[1:], states[1:])
            sparse = row_sparse_array((grads[0][[1, 4]], [1, 4]), shape=shape)
            opt.update_multi_precision(0, weights[0], sparse, states[0])
        except (TypeError, ValueError) as error:  # float32-only optimizers, GroupAdaGrad
            print(name, dtype.__name__, "refused:", str(error)[:60])
        try:  # refused before writing
            opt.update(0, weights[0], weights[0], states[0])
        except (TypeError, ValueError):
            pass
for init in (initializer.Uniform(), initializer.Normal(), initializer.Xavier()):
    init(initializer.InitDesc("fc_weight"), np.empty((65, 33), np.float32))
print(mxopt._core.norm([rng.standard_normal(1000).astype(np.float32)], exact=False))
print("smoke done")
