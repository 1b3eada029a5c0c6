//! `_core.fill_uniform` / `_core.fill_normal`: seeded in-place fills of NumPy float arrays
//! (the random half of `mxopt.initializer`; maths in [`crate::init`]).

use half::f16;
use numpy::{
    PyArrayDyn, PyArrayMethods, PyReadwriteArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::init::{self, FillError};

/// A validated, writable, C-contiguous float array.
enum Target<'py> {
    F16(PyReadwriteArrayDyn<'py, f16>),
    F32(PyReadwriteArrayDyn<'py, f32>),
    F64(PyReadwriteArrayDyn<'py, f64>),
}

/// Checks `obj` (the parameter called `name`) and borrows it for writing.
fn target<'py>(name: &str, obj: &Bound<'py, PyAny>) -> PyResult<Target<'py>> {
    let Ok(arr) = obj.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(format!(
            "{name}: expected a numpy.ndarray of float16, float32 or float64, got {}",
            obj.get_type().name()?
        )));
    };
    let borrow = |e: numpy::BorrowError| PyValueError::new_err(format!("{name}: {e}"));
    let t = if let Ok(a) = obj.cast::<PyArrayDyn<f32>>() {
        Target::F32(a.try_readwrite().map_err(borrow)?)
    } else if let Ok(a) = obj.cast::<PyArrayDyn<f64>>() {
        Target::F64(a.try_readwrite().map_err(borrow)?)
    } else if let Ok(a) = obj.cast::<PyArrayDyn<f16>>() {
        Target::F16(a.try_readwrite().map_err(borrow)?)
    } else {
        return Err(PyTypeError::new_err(format!(
            "{name}: expected dtype float16, float32 or float64, got {}",
            arr.dtype().str()?
        )));
    };
    if !arr.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{name}: array must be C-contiguous"
        )));
    }
    Ok(t)
}

fn fill_error(e: FillError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Runs `$fill(slice, ...)` on the array's data with the GIL released, whatever its dtype.
macro_rules! fill_in_place {
    ($py:expr, $target:expr, $fill:path, $($arg:expr),*) => {{
        let result = match $target {
            Target::F16(mut a) => {
                let s = a.as_slice_mut().map_err(not_contiguous)?;
                $py.detach(|| $fill(s, $($arg),*))
            }
            Target::F32(mut a) => {
                let s = a.as_slice_mut().map_err(not_contiguous)?;
                $py.detach(|| $fill(s, $($arg),*))
            }
            Target::F64(mut a) => {
                let s = a.as_slice_mut().map_err(not_contiguous)?;
                $py.detach(|| $fill(s, $($arg),*))
            }
        };
        result.map_err(fill_error)
    }};
}

fn not_contiguous(e: numpy::AsSliceError) -> PyErr {
    PyValueError::new_err(format!("out: {e}"))
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
    let t = target("out", out)?;
    fill_in_place!(py, t, init::fill_uniform, low, high, seed, stream)
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
    let t = target("out", out)?;
    fill_in_place!(py, t, init::fill_normal, loc, scale, seed, stream)
}

/// Adds the fill functions to `_core`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fill_uniform, m)?)?;
    m.add_function(wrap_pyfunction!(fill_normal, m)?)?;
    m.add("FILL_BLOCK_LEN", init::BLOCK_LEN)?;
    Ok(())
}
