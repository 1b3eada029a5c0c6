"""mxopt: MXNet 1.6's optimizers, initializers and learning-rate schedules over NumPy arrays."""

from ._core import __version__

__all__ = ["__version__"]
