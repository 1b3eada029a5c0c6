"""mxopt: MXNet 1.6's optimizers, initializers and learning-rate schedules over NumPy arrays,
with the update kernels in Rust.

The submodules mirror MXNet's: :mod:`mxopt.optimizer`, :mod:`mxopt.lr_scheduler`,
:mod:`mxopt.initializer` (also as ``mxopt.init``), :mod:`mxopt.sparse` and
:mod:`mxopt.random` (``mxopt.random.seed(n)`` seeds everything random in mxopt).
"""

from . import initializer, lr_scheduler, optimizer, random, sparse
from ._core import __version__

init = initializer

__all__ = [
    "__version__",
    "init",
    "initializer",
    "lr_scheduler",
    "optimizer",
    "random",
    "sparse",
]
