//! The crate's error type. Kernel calls and fills detect every error before the first write.

/// Why a call was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two buffers that must be walked in lockstep differ in length.
    #[error("{what}: expected {expected} elements, got {got}")]
    Length {
        /// The buffer with the wrong length.
        what: &'static str,
        /// The length of the weight it must match.
        expected: usize,
        /// Its actual length.
        got: usize,
    },
    /// A row index of a row-sparse gradient lies outside the weight.
    #[error("row index {index} is out of range for a weight with {rows} rows")]
    RowOutOfRange {
        /// The offending index.
        index: i64,
        /// The number of rows of the weight.
        rows: usize,
    },
    /// Row indices of a row-sparse gradient must be strictly increasing (sorted, no duplicates).
    #[error("row indices must be strictly increasing (no duplicates); position {at} breaks it")]
    RowsUnsorted {
        /// Position in the index array of the first out-of-order entry.
        at: usize,
    },
    /// A hyper-parameter or per-call scalar is NaN or infinite.
    #[error("{name} must be finite, got {value}")]
    NotFinite {
        /// Name of the parameter (MXNet's keyword).
        name: &'static str,
        /// The value received.
        value: f64,
    },
    /// A hyper-parameter whose decimal MXNet's operators refuse to parse ("Out of range
    /// value": a decimal exponent beyond ±38 for `f32` parameters, e.g. `1e-40`).
    #[error(
        "{name} = {value:e} is out of the range MXNet's operators parse (MXNet refuses it too)"
    )]
    OutOfRange {
        /// Name of the parameter (MXNet's keyword).
        name: &'static str,
        /// The value received.
        value: f64,
    },
    /// A hyper-parameter value a kernel has no implementation for (MXNet refuses it too).
    #[error("{name} = {value} is not supported by {kernel}: {why}")]
    Unsupported {
        /// The kernel.
        kernel: &'static str,
        /// Name of the parameter (MXNet's keyword).
        name: &'static str,
        /// The value received.
        value: f64,
        /// What the kernel accepts instead.
        why: &'static str,
    },
    /// A random fill was refused ([`crate::init`]).
    #[error(transparent)]
    Fill(#[from] crate::init::FillError),
    /// An initializer cannot fill an array of this shape; the message says why.
    #[error("{0}")]
    Init(String),
    /// No optimizer is registered under this name (MXNet 1.6's registry names are
    /// known: see [`Algorithm::from_name`](crate::optimizer::Algorithm::from_name)).
    #[error(
        "unknown optimizer {0:?} (expected one of sgd, ccsgd, nag, adam, adagrad, rmsprop, \
         adamax, nadam, adadelta, ftml, ftrl, signum, lars, lamb, lbsgd, dcasgd, sgld, \
         groupadagrad, test)"
    )]
    UnknownOptimizer(String),
    /// A parameter name appears twice in one list update.
    #[error("parameter {0:?} appears twice in one update")]
    Duplicate(String),
    /// A parameter was updated with another element type than at its first update.
    #[error("the parameter's element type changed since its state was created")]
    StateType,
    /// The GPU path ([`crate::gpu`], feature `wgpu`) found no adapter, hit a device limit
    /// or had its work rejected by the device; the message says which.
    #[error("GPU: {0}")]
    Gpu(String),
    /// An invalid learning-rate schedule ([`crate::schedule`]); the message says why.
    #[error("invalid lr schedule: {0}")]
    Schedule(String),
    /// A checkpoint could not be written, read or understood (a truncated or tampered
    /// file, another optimizer, ...); the message says what and where.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
