"""mxopt: MXNet 1.6's optimizers, initializers and learning-rate schedules over NumPy arrays."""

from . import initializer, random
from ._core import __version__

init = initializer

__all__ = ["__version__", "init", "initializer", "random"]
