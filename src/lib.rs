//! mxopt: MXNet 1.6's optimizer update kernels.
#[cfg(feature = "python")]
mod python;
