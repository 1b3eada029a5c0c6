//! mxopt: MXNet 1.6's optimizer update kernels.
pub mod init;
#[cfg(feature = "python")]
mod python;
