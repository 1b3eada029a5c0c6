"""MXNet 1.6's ``mxnet.optimizer``: the optimizer base class, the registry, the optimizers
and the :class:`Updater` that drives them."""

from .adadelta import AdaDelta
from .adagrad import AdaGrad
from .adam import Adam
from .adamax import Adamax
from .base import NDabs, Optimizer, create, register
from .ftml import FTML
from .ftrl import Ftrl
from .nadam import Nadam
from .nag import NAG
from .rmsprop import RMSProp
from .sgd import SGD, ccSGD
from .test import Test
from .updater import Updater, get_updater

__all__ = [
    "FTML",
    "NAG",
    "SGD",
    "AdaDelta",
    "AdaGrad",
    "Adam",
    "Adamax",
    "Ftrl",
    "NDabs",
    "Nadam",
    "Optimizer",
    "RMSProp",
    "Test",
    "Updater",
    "ccSGD",
    "create",
    "get_updater",
    "register",
]
