//! The `mxopt._core` extension module: validation, dtype dispatch and GIL release around
//! the engine. No maths lives here.

mod arrays;
mod checkpoint;
#[cfg(feature = "wgpu")]
mod gpu;
mod init;
mod kernels;
mod layerwise;
mod many;
mod overlap;

use pyo3::prelude::*;

impl From<crate::Error> for PyErr {
    fn from(e: crate::Error) -> PyErr {
        pyo3::exceptions::PyValueError::new_err(e.to_string())
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MIN_PARALLEL_LEN", crate::engine::MIN_PARALLEL_LEN)?;
    kernels::register(m)?;
    layerwise::register(m)?;
    init::register(m)?;
    // `mxopt.gpu` reads this to explain a wheel built without the GPU path.
    m.add("HAS_WGPU", cfg!(feature = "wgpu"))?;
    #[cfg(feature = "wgpu")]
    gpu::register(m)?;
    checkpoint::register(m)?;
    Ok(())
}
