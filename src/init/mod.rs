//! Seeded, parallel random fills and MXNet's initializers ([`Initializer`], drawing from a
//! [`Generator`] as the Python package's `mxopt.random` does).
//!
//! Every fill cuts its output into blocks of [`BLOCK_LEN`] elements. Block `k` draws from its
//! own ChaCha8 keystream, keyed by `(seed, stream, k)`, so the values depend only on
//! `(seed, stream)` and the array's length, never on how rayon schedules the blocks: one
//! thread and sixteen threads produce the same array bit for bit. A shorter array receives a
//! prefix of a longer one's values.
//!
//! ```
//! let mut w = vec![0.0f32; 10];
//! mxopt::init::fill_uniform(&mut w, -0.07, 0.07, 42, 0)?;
//! assert!(w.iter().all(|&x| (-0.07..0.07).contains(&x)));
//!
//! let mut again = vec![0.0f32; 10];
//! mxopt::init::fill_uniform(&mut again, -0.07, 0.07, 42, 0)?;
//! assert_eq!(w, again);
//! # Ok::<(), mxopt::init::FillError>(())
//! ```

mod element;
mod fill;
mod initializer;
mod orthogonal;
mod rng;

pub use element::Element;
pub(crate) use fill::Normal;
pub use fill::{fill_normal, fill_uniform, BLOCK_LEN};
pub use initializer::{FactorType, Generator, Initializer, RandType, DEFAULT_SEED};
pub use orthogonal::{fill_orthogonal, OrthogonalRand};
pub(crate) use rng::{block_rng, CHUNK};

/// Why a fill was refused. Nothing is written when a fill returns an error. Converts into
/// [`crate::Error`] (`?` works in functions returning [`crate::Result`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FillError {
    /// A distribution parameter is NaN or infinite.
    #[error("{name} must be finite, got {value}")]
    NotFinite {
        /// The parameter's name (`low`, `high`, `loc`, `scale`).
        name: &'static str,
        /// The value that was given.
        value: f64,
    },
    /// `low > high` for a uniform fill.
    #[error("low must not exceed high, got low={low} and high={high}")]
    EmptyRange {
        /// Lower bound given.
        low: f64,
        /// Upper bound given.
        high: f64,
    },
    /// A negative standard deviation for a normal fill.
    #[error("scale must be non-negative, got {0}")]
    NegativeScale(f64),
}
