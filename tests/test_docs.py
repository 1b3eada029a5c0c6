"""The examples in the public docstrings run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = [
    "mxopt.lr_scheduler",
    "mxopt.optimizer.adadelta",
    "mxopt.optimizer.adagrad",
    "mxopt.optimizer.adamax",
    "mxopt.optimizer.base",
    "mxopt.optimizer.nadam",
    "mxopt.optimizer.ftml",
    "mxopt.optimizer.ftrl",
    "mxopt.optimizer.rmsprop",
    "mxopt.optimizer.contrib",
    "mxopt.optimizer.dcasgd",
    "mxopt.optimizer.sgd",
    "mxopt.optimizer.sgld",
    "mxopt.optimizer.signum",
    "mxopt.optimizer.updater",
    "mxopt.sparse",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
