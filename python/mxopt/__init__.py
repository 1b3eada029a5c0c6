"""mxopt: MXNet 1.6's optimizers, initializers and learning-rate schedules over NumPy arrays,
with the update kernels in Rust.

The submodules mirror MXNet's: :mod:`mxopt.optimizer`, :mod:`mxopt.lr_scheduler`,
:mod:`mxopt.sparse`.
"""

from . import lr_scheduler, optimizer, sparse
from ._core import __version__

__all__ = ["__version__", "lr_scheduler", "optimizer", "sparse"]
