"""Row-sparse arrays: the stand-in for MXNet's ``row_sparse`` NDArray storage type.

A row-sparse array of shape ``(n, *rest)`` stores only the rows listed in ``indices``; every
other row is zero. Optimizers use it for gradients (and Ftrl for weights), see spec
optimizers.md "sparse modes".
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

__all__ = ["RowSparseNDArray", "row_sparse_array"]


def _as_shape(shape: Any) -> Tuple[int, ...]:
    """Validate ``shape`` and return it as a tuple of non-negative ints."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from None
    if not dims:
        raise ValueError("shape must have at least one dimension")
    for dim in dims:
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
            raise TypeError(f"shape must contain only ints, got {shape!r}")
        if dim < 0:
            raise ValueError(f"shape must not contain negative sizes, got {shape!r}")
    return tuple(int(dim) for dim in dims)


def _as_indices(indices: Any) -> np.ndarray:
    """Validate ``indices`` as a 1-D integer sequence and return a C-contiguous int64 copy."""
    raw = np.asarray(indices)
    # An empty Python list arrives as float64; it still means "no rows".
    if raw.size == 0:
        raw = raw.astype(np.int64)
    if raw.dtype == np.bool_ or not np.issubdtype(raw.dtype, np.integer):
        raise TypeError(f"indices must be integers, got dtype {raw.dtype}")
    if raw.ndim != 1:
        raise ValueError(f"indices must be 1-D, got shape {raw.shape}")
    if raw.dtype == np.uint64 and raw.size and raw.max() > np.iinfo(np.int64).max:
        raise ValueError("indices must fit in int64")
    return np.array(raw, dtype=np.int64, order="C")


class RowSparseNDArray:
    """An array whose rows are zero except those listed in ``indices``.

    Parameters
    ----------
    data : array_like
        The stored rows, shape ``(nnz,) + shape[1:]``.
    indices : array_like of int
        Row numbers of ``data``, strictly increasing, each in ``[0, shape[0])``.
    shape : tuple of int
        Dense shape.
    dtype : numpy dtype, optional
        Element type; defaults to ``data``'s dtype for a NumPy array, float32 otherwise.

    Attributes
    ----------
    data : numpy.ndarray
        C-contiguous copy of the stored rows.
    indices : numpy.ndarray
        C-contiguous int64 copy of the row numbers.
    shape : tuple of int
        Dense shape.
    dtype : numpy.dtype
        Element type.
    stype : str
        Always ``'row_sparse'``.

    Raises
    ------
    ValueError
        If ``data`` and ``indices`` disagree in length, ``data``'s trailing shape differs
        from ``shape[1:]``, or an index is out of range, repeated or out of order.
    TypeError
        If ``indices`` are not integers or ``shape`` is not a tuple of ints.

    Examples
    --------
    >>> g = RowSparseNDArray([[1.0, 2.0]], [2], shape=(3, 2))
    >>> g.todense()
    array([[0., 0.],
           [0., 0.],
           [1., 2.]], dtype=float32)
    """

    stype = "row_sparse"

    def __init__(
        self, data: Any, indices: Any, shape: Sequence[int], dtype: Optional[Any] = None
    ) -> None:
        if dtype is None:
            # MXNet's rule: keep a NumPy array's dtype, use float32 for anything else.
            dtype = data.dtype if isinstance(data, np.ndarray) else np.float32
        self.shape = _as_shape(shape)
        self.indices = _as_indices(indices)
        self.data = np.array(data, dtype=dtype, order="C")
        self.dtype = self.data.dtype

        expected = (self.indices.shape[0], *self.shape[1:])
        if self.data.shape != expected:
            raise ValueError(
                f"data must have shape (len(indices),) + shape[1:] = {expected}, "
                f"got {self.data.shape}"
            )
        self._check_indices()

    def _check_indices(self) -> np.ndarray:
        """``indices`` as int64, after raising ``TypeError`` / ``ValueError`` naming them
        unless they are strictly increasing rows of ``shape`` (checked again when
        densifying: ``indices`` may be replaced after construction, and NumPy would wrap a
        negative row silently)."""
        indices = _as_indices(self.indices)
        if indices.size:
            low, high = int(indices.min()), int(indices.max())
            if low < 0 or high >= self.shape[0]:
                raise ValueError(
                    f"indices must lie in [0, {self.shape[0]}), got values from {low} to {high}"
                )
            if np.any(np.diff(indices) <= 0):
                raise ValueError(
                    "indices must be strictly increasing (sorted, without duplicates), "
                    f"got {indices.tolist()}"
                )
        return indices

    def todense(self) -> np.ndarray:
        """Return a new dense array with the stored rows in place and zeros elsewhere."""
        indices = self._check_indices()
        dense = np.zeros(self.shape, dtype=self.dtype)
        dense[indices] = self.data
        return dense

    def astype(self, dtype: Any) -> RowSparseNDArray:
        """Return a copy whose ``data`` is converted to ``dtype`` (indices unchanged)."""
        return RowSparseNDArray(self.data, self.indices, self.shape, dtype=dtype)

    def __repr__(self) -> str:
        dims = "x".join(str(dim) for dim in self.shape)
        return f"<RowSparseNDArray {dims} {self.dtype} rows={self.indices.tolist()}>"


def row_sparse_array(
    arg1: Tuple[Any, Any],
    shape: Optional[Sequence[int]] = None,
    dtype: Optional[Any] = None,
) -> RowSparseNDArray:
    """Build a :class:`RowSparseNDArray` from a ``(data, indices)`` pair.

    Parameters
    ----------
    arg1 : tuple
        ``(data, indices)``: the stored rows and their strictly increasing row numbers.
    shape : tuple of int, optional
        Dense shape. If omitted it is ``(indices[-1] + 1,) + data.shape[1:]``, which needs
        at least one index.
    dtype : numpy dtype, optional
        Element type; defaults to ``data``'s dtype for a NumPy array, float32 otherwise.

    Examples
    --------
    >>> row_sparse_array(([[1, 2], [3, 4]], [0, 3]), shape=(5, 2)).indices
    array([0, 3])
    """
    if not isinstance(arg1, (tuple, list)) or len(arg1) != 2:
        raise TypeError(f"arg1 must be a (data, indices) pair, got {type(arg1).__name__}")
    data, indices = arg1
    if shape is None:
        index_array = _as_indices(indices)
        if index_array.size == 0:
            raise ValueError("shape is required when indices is empty")
        shape = (int(index_array[-1]) + 1, *np.shape(data)[1:])
    return RowSparseNDArray(data, indices, shape, dtype=dtype)
