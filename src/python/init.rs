//! `_core.fill_uniform` / `_core.fill_normal`: seeded in-place fills of NumPy float arrays
//! (the random half of `mxopt.initializer`; maths in [`crate::init`]).

use super::arrays::{slice_mut, with_dtype, writable, Dtype};
use crate::init;
use numpy::PyUntypedArrayMethods;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

impl From<init::FillError> for PyErr {
    fn from(e: init::FillError) -> PyErr {
        pyo3::exceptions::PyValueError::new_err(e.to_string())
    }
}

/// fill_uniform(out, low, high, seed, stream)
/// --
///
/// Fill the float16/32/64 C-contiguous array `out` in place with i.i.d. draws from
/// U[low, high). The values depend only on (seed, stream) and out.size, never on the thread
/// count. Raises TypeError for a non-float array, ValueError for a read-only or non-contiguous
/// array, a non-finite bound or low > high (nothing is written then).
#[pyfunction]
fn fill_uniform(
    py: Python<'_>,
    out: &Bound<'_, PyAny>,
    low: f64,
    high: f64,
    seed: u64,
    stream: u64,
) -> PyResult<()> {
    with_dtype!(Dtype::of("out", out)?, T => {
        let mut array = writable::<T>("out", out)?;
        let data = slice_mut(&mut array);
        Ok(py.detach(|| init::fill_uniform(data, low, high, seed, stream))?)
    })
}

/// fill_normal(out, loc, scale, seed, stream)
/// --
///
/// Fill the float16/32/64 C-contiguous array `out` in place with i.i.d. draws from
/// N(loc, scale²) (scale is the standard deviation). The values depend only on (seed, stream)
/// and out.size, never on the thread count. Raises TypeError for a non-float array, ValueError
/// for a read-only or non-contiguous array, a non-finite parameter or scale < 0.
#[pyfunction]
fn fill_normal(
    py: Python<'_>,
    out: &Bound<'_, PyAny>,
    loc: f64,
    scale: f64,
    seed: u64,
    stream: u64,
) -> PyResult<()> {
    with_dtype!(Dtype::of("out", out)?, T => {
        let mut array = writable::<T>("out", out)?;
        let data = slice_mut(&mut array);
        Ok(py.detach(|| init::fill_normal(data, loc, scale, seed, stream))?)
    })
}

/// fill_orthogonal(out, scale, normal, seed, stream)
/// --
///
/// Fill the float16/32/64 C-contiguous array `out` (at least 2-d, seen as
/// (shape[0], prod(shape[1:]))) in place with `scale` times the orthonormal factor of a
/// float32 matrix of U(-1, 1) draws (N(0, 1) with `normal=True`) from (seed, stream): the Q
/// of its Householder QR (of its transpose when shape[0] < prod(shape[1:])) with R's
/// diagonal made non-negative, computed in float64. Raises TypeError for a non-float array,
/// ValueError for a read-only, non-contiguous or 1-d array, or a non-finite scale.
#[pyfunction]
fn fill_orthogonal(
    py: Python<'_>,
    out: &Bound<'_, PyAny>,
    scale: f64,
    normal: bool,
    seed: u64,
    stream: u64,
) -> PyResult<()> {
    let rand = if normal {
        init::OrthogonalRand::Normal
    } else {
        init::OrthogonalRand::Uniform
    };
    with_dtype!(Dtype::of("out", out)?, T => {
        let mut array = writable::<T>("out", out)?;
        let shape = array.shape().to_vec();
        let [nout, rest @ ..] = shape.as_slice() else {
            return Err(PyValueError::new_err("out: the Orthogonal initializer needs at least 2 dimensions, got a 0-d array"));
        };
        if rest.is_empty() {
            return Err(PyValueError::new_err(format!(
                "out: the Orthogonal initializer needs at least 2 dimensions, got shape {shape:?}"
            )));
        }
        let nin = rest.iter().product();
        let data = slice_mut(&mut array);
        Ok(py.detach(|| init::fill_orthogonal(data, *nout, nin, scale, rand, seed, stream))?)
    })
}

/// Adds the fill functions to `_core`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fill_uniform, m)?)?;
    m.add_function(wrap_pyfunction!(fill_normal, m)?)?;
    m.add_function(wrap_pyfunction!(fill_orthogonal, m)?)?;
    m.add("FILL_BLOCK_LEN", init::BLOCK_LEN)?;
    Ok(())
}
