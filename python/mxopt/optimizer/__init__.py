"""MXNet 1.6's ``mxnet.optimizer``: the optimizer base class, the registry, the optimizers
and the :class:`Updater` that drives them."""

from .adam import Adam
from .base import NDabs, Optimizer, create, register
from .lamb import LAMB
from .lars import LARS
from .lbsgd import LBSGD
from .nag import NAG
from .sgd import SGD, ccSGD
from .test import Test
from .updater import Updater, get_updater

__all__ = [
    "LAMB",
    "LARS",
    "LBSGD",
    "NAG",
    "SGD",
    "Adam",
    "NDabs",
    "Optimizer",
    "Test",
    "Updater",
    "ccSGD",
    "create",
    "get_updater",
    "register",
]
