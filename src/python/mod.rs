//! The `mxopt._core` extension module.
use pyo3::prelude::*;

mod init;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    init::register(m)?;
    Ok(())
}
