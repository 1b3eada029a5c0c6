//! `_core.checkpoint_write` / `_core.checkpoint_read`: the optimizer checkpoint container
//! ([`crate::optimizer::checkpoint`]) from and to NumPy arrays, so that the Python
//! package writes and checks exactly the files the Rust optimizer does.

use super::arrays::{readonly, with_dtype, Dtype};
use crate::optimizer::checkpoint::{self, ParamRecord, ParamType, Record, Tensor, Values};
use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One parameter as Python passes it: `(count, dtype name, master or None, states)`.
type PyParam<'py> = (
    u64,
    String,
    Option<Bound<'py, PyAny>>,
    Vec<Bound<'py, PyAny>>,
);

/// What `checkpoint_read` returns per parameter name: a `PyParam`-shaped tuple.
type PyParams<'py> = BTreeMap<String, Bound<'py, PyAny>>;

fn param_type(name: &str, dtype: &str) -> PyResult<ParamType> {
    match dtype {
        "float16" => Ok(ParamType::F16),
        "float32" => Ok(ParamType::F32),
        "float64" => Ok(ParamType::F64),
        _ => Err(PyTypeError::new_err(format!(
            "params[{name:?}]: dtype must be 'float16', 'float32' or 'float64', got {dtype:?}"
        ))),
    }
}

fn type_name(t: ParamType) -> &'static str {
    match t {
        ParamType::F16 => "float16",
        ParamType::F32 => "float32",
        ParamType::F64 => "float64",
    }
}

/// A copy of a float array (any shape, C-contiguous) as a checkpoint tensor.
fn tensor(what: &str, obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    with_dtype!(Dtype::of(what, obj)?, T => {
        let array = readonly::<T>(what, obj)?;
        let shape = array.shape().to_vec();
        let values: Vec<T> = array.as_slice().map(<[T]>::to_vec).unwrap_or_default();
        Ok(Tensor { shape, values: Values::from(values) })
    })
}

/// The tensor as a new NumPy array of its shape (its values move, not copied).
fn array(py: Python<'_>, t: Tensor) -> PyResult<Bound<'_, PyAny>> {
    let shape = t.shape.as_slice();
    Ok(match t.values {
        Values::F16(v) => PyArray1::from_vec(py, v).reshape(shape)?.into_any(),
        Values::F32(v) => PyArray1::from_vec(py, v).reshape(shape)?.into_any(),
        Values::F64(v) => PyArray1::from_vec(py, v).reshape(shape)?.into_any(),
    })
}

/// checkpoint_write(path, metadata, params)
/// --
///
/// Write an optimizer checkpoint (safetensors) to `path`, through a temporary file renamed
/// when complete. `metadata`: str -> str entries (not 'format', 'format_version' or
/// 'params', which the format owns); `params`: name -> (update count, parameter dtype
/// name 'float16'/'float32'/'float64', float32 master copy or None, list of state arrays).
/// Raises TypeError for a wrong type, ValueError for inconsistent dtypes or lengths or a
/// file that cannot be written (nothing is written then).
#[pyfunction]
fn checkpoint_write(
    path: PathBuf,
    metadata: BTreeMap<String, String>,
    params: BTreeMap<String, PyParam<'_>>,
) -> PyResult<()> {
    let mut record = Record {
        metadata,
        params: BTreeMap::new(),
    };
    for (name, (count, dtype, master, states)) in params {
        let master = master
            .map(|m| tensor(&format!("params[{name:?}] master"), &m))
            .transpose()?;
        let states = states
            .iter()
            .enumerate()
            .map(|(i, s)| tensor(&format!("params[{name:?}] state {i}"), s))
            .collect::<PyResult<Vec<_>>>()?;
        let dtype = param_type(&name, &dtype)?;
        record.params.insert(
            name,
            ParamRecord {
                count,
                dtype,
                master,
                states,
            },
        );
    }
    Ok(checkpoint::write_atomically(&path, &record.to_bytes()?)?)
}

/// checkpoint_read(path)
/// --
///
/// Read and check an optimizer checkpoint: returns (metadata, params) in the layout
/// `checkpoint_write` takes, with new writeable arrays in the shapes of the file. Raises
/// ValueError for a file that cannot be read, is damaged or is not a version-1 checkpoint.
#[pyfunction]
fn checkpoint_read<'py>(
    py: Python<'py>,
    path: PathBuf,
) -> PyResult<(BTreeMap<String, String>, PyParams<'py>)> {
    let record = Record::from_bytes(&checkpoint::read(&path)?)?;
    let mut params = BTreeMap::new();
    for (name, p) in record.params {
        let master = p.master.map(|m| array(py, m)).transpose()?;
        let states = p
            .states
            .into_iter()
            .map(|s| array(py, s))
            .collect::<PyResult<Vec<_>>>()?;
        let entry = (p.count, type_name(p.dtype), master, states);
        params.insert(name, entry.into_pyobject(py)?.into_any());
    }
    Ok((record.metadata, params))
}

/// Adds the checkpoint functions to `_core`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(checkpoint_write, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint_read, m)?)?;
    Ok(())
}
