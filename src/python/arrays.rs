//! NumPy arrays in, validated slices out. Each failure names the argument and says what
//! was expected: `TypeError` for a wrong type or dtype, `ValueError` for shape, layout,
//! writability and aliasing.

use numpy::{
    BorrowError, Element, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn,
    PyReadwriteArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::fmt::{self, Display};

/// The `i`-th item of a list argument, e.g. `weights[3]`; formatted only for an error.
#[derive(Clone, Copy, Debug)]
pub struct Item(pub &'static str, pub usize);

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// The element types the kernels accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F16,
    F32,
    F64,
}

impl Dtype {
    /// The float dtype of `obj`, or a `TypeError` naming `name`.
    pub fn of(name: impl Display + Copy, obj: &Bound<'_, PyAny>) -> PyResult<Dtype> {
        let array = untyped(name, obj)?;
        let dtype = array.dtype();
        match (dtype.kind(), dtype.itemsize()) {
            (b'f', 2) => Ok(Dtype::F16),
            (b'f', 4) => Ok(Dtype::F32),
            (b'f', 8) => Ok(Dtype::F64),
            _ => Err(PyTypeError::new_err(format!(
                "{name}: expected a float16, float32 or float64 array, got dtype {dtype}"
            ))),
        }
    }
}

/// Runs `$body` with `$T` bound to the Rust type of `$dtype`.
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::python::arrays::Dtype::F16 => {
                type $T = half::f16;
                $body
            }
            $crate::python::arrays::Dtype::F32 => {
                type $T = f32;
                $body
            }
            $crate::python::arrays::Dtype::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}
pub(crate) use with_dtype;

fn untyped<'a, 'py>(
    name: impl Display,
    obj: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyUntypedArray>> {
    obj.cast::<PyUntypedArray>().map_err(|_| {
        let type_name = obj
            .get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string());
        PyTypeError::new_err(format!("{name}: expected a numpy.ndarray, got {type_name}"))
    })
}

fn typed<'a, 'py, T: Element>(
    name: impl Display + Copy,
    obj: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyArrayDyn<T>>> {
    let array = untyped(name, obj)?;
    if !array.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{name}: expected a C-contiguous array (use numpy.ascontiguousarray)"
        )));
    }
    obj.cast::<PyArrayDyn<T>>().map_err(|_| {
        let expected = numpy::dtype::<T>(obj.py());
        PyTypeError::new_err(format!(
            "{name}: expected dtype {expected}, got {}",
            array.dtype()
        ))
    })
}

fn borrow_error(name: impl Display, e: BorrowError) -> PyErr {
    match e {
        BorrowError::NotWriteable => {
            PyValueError::new_err(format!("{name}: array is read-only; it must be writeable"))
        }
        BorrowError::AlreadyBorrowed => PyValueError::new_err(format!(
            "{name}: shares memory with another array of this call (e.g. a weight aliasing its \
             gradient), or another thread is updating it right now; every array of a call \
             must be distinct, and one weight is updated by one thread at a time"
        )),
        other => PyValueError::new_err(format!("{name}: {other}")),
    }
}

/// A C-contiguous array of `T` that this call may write.
pub fn writable<'py, T: Element>(
    name: impl Display + Copy,
    obj: &Bound<'py, PyAny>,
) -> PyResult<PyReadwriteArrayDyn<'py, T>> {
    typed::<T>(name, obj)?
        .try_readwrite()
        .map_err(|e| borrow_error(name, e))
}

/// A C-contiguous array of `T` that this call only reads.
pub fn readonly<'py, T: Element>(
    name: impl Display + Copy,
    obj: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    typed::<T>(name, obj)?
        .try_readonly()
        .map_err(|e| borrow_error(name, e))
}

/// Fails unless `got` has the shape `expected` (the weight's).
pub fn same_shape(name: impl Display, expected: &[usize], got: &[usize]) -> PyResult<()> {
    if expected == got {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!(
            "{name}: expected shape {expected:?} (the weight's), got {got:?}"
        )))
    }
}

/// Borrows a weight for writing and its gradient for reading, checking they share a shape.
pub fn weight_and_grad<'py, T: Element>(
    names: (impl Display + Copy, impl Display + Copy),
    weight: &Bound<'py, PyAny>,
    grad: &Bound<'py, PyAny>,
) -> PyResult<(PyReadwriteArrayDyn<'py, T>, PyReadonlyArrayDyn<'py, T>)> {
    let w = writable::<T>(names.0, weight)?;
    let g = readonly::<T>(names.1, grad)?;
    same_shape(names.1, w.shape(), g.shape())?;
    Ok((w, g))
}

/// The contiguous data of a validated writable array.
pub fn slice_mut<'a, T: Element>(a: &'a mut PyReadwriteArrayDyn<'_, T>) -> &'a mut [T] {
    // `writable` checked C-contiguity, so this is the whole array.
    a.as_slice_mut().unwrap_or_default()
}

/// The contiguous data of a validated read-only array.
pub fn slice<'a, T: Element>(a: &'a PyReadonlyArrayDyn<'_, T>) -> &'a [T] {
    a.as_slice().unwrap_or_default()
}

/// Writable state arrays of the weight's shape, as exactly `N` slices.
pub fn states<'py, T: Element>(
    shape: &[usize],
    objs: &[Bound<'py, PyAny>],
    expected: usize,
) -> PyResult<Vec<PyReadwriteArrayDyn<'py, T>>> {
    if objs.len() != expected {
        return Err(PyValueError::new_err(format!(
            "state: this kernel expects {expected} state array(s), got {}",
            objs.len()
        )));
    }
    objs.iter()
        .map(|obj| {
            let a = writable::<T>("state", obj)?;
            same_shape("state", shape, a.shape())?;
            Ok(a)
        })
        .collect()
}

/// Borrows `N` state guards as an array of slices (`states` checked the count).
pub fn state_slices<'a, T: Element, const N: usize>(
    guards: &'a mut [PyReadwriteArrayDyn<'_, T>],
) -> [&'a mut [T]; N] {
    let mut it = guards.iter_mut();
    std::array::from_fn(|_| it.next().map(slice_mut).unwrap_or_default())
}
