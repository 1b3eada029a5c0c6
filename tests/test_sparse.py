"""RowSparseNDArray and row_sparse_array: layout, defaults, validation."""

import warnings

import numpy as np
import pytest

import mxopt
from mxopt.optimizer import Optimizer, Updater, create
from mxopt.sparse import RowSparseNDArray, row_sparse_array


def test_attributes_and_todense():
    data = np.array([[1.0, 2.0], [3.0, 4.0]], np.float64)
    rsp = row_sparse_array((data, [1, 3]), shape=(5, 2))
    assert isinstance(rsp, RowSparseNDArray)
    assert rsp.stype == "row_sparse" and rsp.shape == (5, 2) and rsp.dtype == np.float64
    assert rsp.indices.dtype == np.int64 and rsp.indices.tolist() == [1, 3]
    assert rsp.data.flags.c_contiguous and rsp.indices.flags.c_contiguous
    dense = rsp.todense()
    assert dense.tolist() == [[0, 0], [1, 2], [0, 0], [3, 4], [0, 0]]
    assert dense.dtype == np.float64
    dense[1, 0] = 99.0
    assert rsp.data[0, 0] == 1.0  # todense returns a new array


def test_data_is_copied_and_made_contiguous():
    source = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(3, 2))
    rsp = row_sparse_array((source, np.array([0, 1, 2], np.int32)), shape=(4, 2))
    assert rsp.data.flags.c_contiguous and not np.shares_memory(rsp.data, source)
    assert rsp.indices.dtype == np.int64
    source[0, 0] = -1
    assert rsp.data[0, 0] == 0


def test_dtype_defaults_like_mxnet():
    assert row_sparse_array(([[1, 2]], [0]), shape=(2, 2)).dtype == np.float32
    assert row_sparse_array((np.ones((1, 2), np.float16), [0]), shape=(2, 2)).dtype == np.float16
    explicit = row_sparse_array((np.ones((1, 2), np.float16), [0]), shape=(2, 2), dtype=np.float64)
    assert explicit.dtype == np.float64 and explicit.data.dtype == np.float64


def test_shape_inferred_from_last_index():
    rsp = row_sparse_array((np.ones((2, 3)), [1, 3]))
    assert rsp.shape == (4, 3)
    with pytest.raises(ValueError, match="shape"):
        row_sparse_array((np.ones((0, 3)), []))


def test_empty_and_one_dimensional():
    empty = row_sparse_array((np.zeros((0, 2), np.float32), []), shape=(3, 2))
    assert empty.indices.dtype == np.int64 and empty.indices.shape == (0,)
    assert np.array_equal(empty.todense(), np.zeros((3, 2), np.float32))
    vector = row_sparse_array((np.array([5.0, 6.0]), [0, 4]), shape=(5,))
    assert vector.todense().tolist() == [5, 0, 0, 0, 6]


def test_higher_rank_rows():
    data = np.arange(8.0).reshape(2, 2, 2)
    rsp = row_sparse_array((data, [0, 2]), shape=(3, 2, 2))
    assert np.array_equal(rsp.todense()[2], data[1]) and not rsp.todense()[1].any()


def test_astype_converts_data_only():
    rsp = row_sparse_array((np.array([[1.5, 2.5]], np.float16), [1]), shape=(2, 2))
    converted = rsp.astype(np.float32)
    assert converted.dtype == np.float32 and converted.data.dtype == np.float32
    assert converted.indices.tolist() == [1] and converted.shape == (2, 2)
    assert rsp.dtype == np.float16


def test_repr_mentions_shape_dtype_and_rows():
    text = repr(row_sparse_array(([[1, 2]], [2]), shape=(5, 2)))
    assert text.startswith("<RowSparseNDArray") and "5x2" in text
    assert "float32" in text and "[2]" in text


@pytest.mark.parametrize(
    ("data", "indices", "shape", "error", "match"),
    [
        (np.ones((2, 2)), [0], (3, 2), ValueError, "data must have shape"),
        (np.ones((1, 3)), [0], (3, 2), ValueError, "data must have shape"),
        (np.ones(2), [0, 1], (3, 2), ValueError, "data must have shape"),
        (np.ones((1, 2)), [3], (3, 2), ValueError, r"indices must lie in \[0, 3\)"),
        (np.ones((1, 2)), [-1], (3, 2), ValueError, "indices must lie in"),
        (np.ones((2, 2)), [2, 1], (3, 2), ValueError, "strictly increasing"),
        (np.ones((2, 2)), [1, 1], (3, 2), ValueError, "without duplicates"),
        (np.ones((1, 2)), [0.0], (3, 2), TypeError, "indices must be integers"),
        (np.ones((1, 2)), [True], (3, 2), TypeError, "indices must be integers"),
        (np.ones((1, 2)), [[0]], (3, 2), ValueError, "indices must be 1-D"),
        (np.ones((1, 2)), [0], (), ValueError, "shape must have at least one"),
        (np.ones((1, 2)), [0], (3.0, 2), TypeError, "shape must contain only ints"),
        (np.ones((1, 2)), [0], (-3, 2), ValueError, "shape must not contain negative"),
        (np.ones((1, 2)), [0], object(), TypeError, "shape must be a tuple"),
    ],
)
def test_validation(data, indices, shape, error, match):
    with pytest.raises(error, match=match):
        RowSparseNDArray(data, indices, shape)


def test_row_sparse_array_needs_a_pair():
    with pytest.raises(TypeError, match="arg1"):
        row_sparse_array(np.ones((2, 2)), shape=(2, 2))
    with pytest.raises(TypeError, match="arg1"):
        row_sparse_array(5, shape=(2, 2))
    with pytest.raises(TypeError, match="arg1"):
        row_sparse_array((np.ones(2), [0], None), shape=(2, 2))


def test_integer_shape_is_accepted():
    assert row_sparse_array(([1.0], [0]), shape=4).shape == (4,)


@pytest.mark.parametrize("name", sorted(Optimizer.opt_registry))
@pytest.mark.parametrize("attribute", ["indices", "data"])
def test_row_sparse_grad_with_a_list_put_in_after_construction(name, attribute):
    # Attributes replaced by lists after the constructor validated them: the update either
    # reads them as the arrays they hold or raises a TypeError naming them with the weight
    # untouched (it raised AttributeError from deep inside).
    def update(tamper):
        grad = RowSparseNDArray(np.full((2, 3), 0.5, dtype=np.float32), [1, 3], (5, 3))
        if tamper:
            setattr(grad, attribute, getattr(grad, attribute).tolist())
        weight = np.ones((5, 3), dtype=np.float32)
        mxopt.random.seed(3)  # SGLD's noise
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Updater(create(name, learning_rate=0.1))(0, grad, weight)
        return weight

    expected = update(tamper=False)
    try:
        np.testing.assert_array_equal(update(tamper=True), expected)
    except TypeError as error:
        assert attribute in str(error) or (attribute == "data" and "values" in str(error))
