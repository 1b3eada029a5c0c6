//! mxopt: the update kernels of MXNet 1.6's optimizers, reproduced number for number.
//!
//! The crate is split the way an optimizer step is built:
//! * [`real`] — the element types a kernel computes in ([`real::K`] for hyper-parameters,
//!   which MXNet's C++ kernels parse as `f32`; `f32`, `f64` and [`real::Half`] for elements);
//! * [`rule`] — one optimizer's per-element maths ([`rule::Rule`]) and the per-call scalars
//!   ([`rule::Step`]);
//! * [`optim`] — one module per optimizer: its hyper-parameters and its rules;
//! * [`engine`] — the only code that loops: dense, fp16 multi-precision, row-sparse and
//!   aggregated walks, split across rayon threads;
//! * [`init`] — seeded, parallel random fills for the initializers, reproducible whatever
//!   the thread count;
//! * [`optimizer`] — MXNet's `Optimizer`/`Updater` on plain slices: per-parameter state,
//!   update counts, schedule and multipliers, kernel selection;
//! * [`schedule`] — the learning-rate schedules (Factor, MultiFactor, Poly, Cosine, with
//!   warmup).
//!
//! Native use needs no Python. The high-level API initializes, schedules and updates
//! named parameters on plain slices, with the Python package's numbers:
//! ```
//! use mxopt::init::{Generator, Initializer};
//! use mxopt::optimizer::{Algorithm, Config, Optimizer};
//! use mxopt::schedule::Factor;
//!
//! let mut gen = Generator::new(42); // as mxopt.random.seed(42)
//! let mut w = vec![0.0_f32; 64 * 32];
//! Initializer::XAVIER.init(&mut gen, &[64, 32], &mut w)?;
//! let config = Config {
//!     learning_rate: Some(0.1),
//!     wd: 1e-4,
//!     lr_scheduler: Some(Factor { factor: 0.5, ..Factor::new(1000) }.build()?),
//!     ..Config::default()
//! };
//! let mut opt = Optimizer::new(Algorithm::from_name("sgd")?, config)?;
//! let grad = vec![0.01_f32; w.len()];
//! opt.update("fc1_weight", &mut w, &grad)?; // state, count, schedule, lr/wd multipliers
//! # Ok::<(), mxopt::Error>(())
//! ```
//!
//! The kernels underneath can be driven directly:
//! ```
//! use mxopt::{engine, optim::sgd::Sgd, rule::Step};
//! let mut weight = vec![1.0_f32; 10];
//! let grad = vec![0.5_f32; 10];
//! let mut momentum = vec![0.0_f32; 10];
//! let sgd = Sgd { momentum: 0.9, ..Sgd::default() };
//! let rule = sgd.multi_mom_at::<f32>(Step::new(0.1, 0.0, 1))?;
//! engine::run(&rule, engine::Dense::new(&mut weight, &grad, [&mut momentum])?);
//! assert_eq!(weight[0], 0.95);
//! # Ok::<(), mxopt::Error>(())
//! ```

mod decimal;
pub mod engine;
mod error;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod init;
pub mod optim;
pub mod optimizer;
pub mod real;
pub mod rule;
pub mod schedule;

pub use error::{Error, Result};
/// The `half` crate, whose [`f16`](half::f16) is this crate's half-precision element type.
pub use half;

#[cfg(feature = "python")]
mod python;
