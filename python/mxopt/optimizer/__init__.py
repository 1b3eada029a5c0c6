"""MXNet 1.6's ``mxnet.optimizer``: the optimizer base class, the registry, the optimizers
and the :class:`Updater` that drives them."""

from . import contrib
from .adam import Adam
from .base import NDabs, Optimizer, create, register
from .contrib import GroupAdaGrad
from .dcasgd import DCASGD
from .nag import NAG
from .sgd import SGD, ccSGD
from .sgld import SGLD
from .signum import Signum
from .test import Test
from .updater import Updater, get_updater

__all__ = [
    "DCASGD",
    "NAG",
    "SGD",
    "SGLD",
    "Adam",
    "GroupAdaGrad",
    "NDabs",
    "Optimizer",
    "Signum",
    "Test",
    "Updater",
    "ccSGD",
    "contrib",
    "create",
    "get_updater",
    "register",
]
