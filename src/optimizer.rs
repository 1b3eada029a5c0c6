//! A high-level optimizer in the style of MXNet's `Optimizer` + `Updater`: it owns every
//! parameter's state (created on first use), counts updates per parameter, applies the
//! learning-rate schedule and the per-parameter multipliers, and picks the kernel (dense,
//! row-sparse, or `f16` with an `f32` master copy) — on plain slices.
//!
//! ```
//! use mxopt::optim::sgd::Sgd;
//! use mxopt::optimizer::{Algorithm, Config, Optimizer};
//!
//! let sgd = Sgd { momentum: 0.9, ..Sgd::default() };
//! let mut opt = Optimizer::new(Algorithm::Sgd(sgd), Config { learning_rate: Some(0.1), ..Config::default() })?;
//! let mut w = vec![1.0_f32; 4];
//! let g = vec![0.5_f32; 4];
//! opt.update("fc1_weight", &mut w, &g)?; // momentum buffer created here
//! opt.update("fc1_weight", &mut w, &g)?;
//! assert_eq!(opt.update_count("fc1_weight"), Some(2));
//!
//! // By MXNet name, with MXNet's defaults (Adam: learning rate 0.001).
//! let mut adam = Optimizer::new(Algorithm::from_name("adam")?, Config::default())?;
//! adam.update("fc1_weight", &mut w, &g)?;
//! # Ok::<(), mxopt::Error>(())
//! ```
//!
//! Implemented — every optimizer the Python package registers, by type ([`Algorithm`]) and
//! by MXNet name ([`Algorithm::from_name`]):
//! `sgd` (and its alias `ccsgd`), `nag`, `adam`, `adagrad`, `rmsprop` (plain and centered),
//! `adamax`, `nadam`, `adadelta`, `ftml`, `ftrl`, `signum`, `lars`, `lamb`, `lbsgd`,
//! `dcasgd`, `sgld` (seeded noise, see [`Optimizer::set_generator`]), `groupadagrad` and
//! `test`. All take `f32`, `f64` and `f16` parameters (LAMB and GroupAdaGrad keep `f32`
//! states, so they take `f32`, or `f16` with multi-precision), with or without
//! multi-precision, dense or row-sparse gradients. Row-sparse gradients run the
//! optimizer's row-sparse kernel where MXNet has one (`sgd`, `nag` without momentum,
//! `adam`, `adagrad`, `lars`, `lbsgd`, `groupadagrad`; lazily or not per
//! [`Config::lazy_update`]); for the others they are turned into dense gradients (zeros
//! outside their rows), as MXNet does. With multi-precision, row-sparse gradients of `f16`
//! parameters follow MXNet too: densified for the SGD family, the sparse kernel on the
//! `f32` master copy for Adam and AdaGrad.

pub(crate) mod drivers;

use crate::engine::{self, Dense, Mixed, Noise, RowMode, Rows};
use crate::init::Generator;
use crate::optim::{adadelta::AdaDelta, adagrad::AdaGrad, adam::Adam, adamax::Adamax};
use crate::optim::{dcasgd::Dcasgd, group_adagrad::GroupAdaGrad, lamb::Lamb, lars::Lars};
use crate::optim::{ftml::Ftml, ftrl::Ftrl, nadam::Nadam, nag::Nag, rmsprop::RmsProp};
use crate::optim::{lbsgd::Lbsgd, sgld::Sgld, test_opt::Test};
use crate::optim::{sgd::Sgd, signum::Signum};
use crate::real::{Elem, Storage};
use crate::rule::{Rule, Step};
use crate::schedule::Scheduler;
use crate::{Error, Result};
use half::f16;
use std::collections::HashMap;

pub mod checkpoint;

/// The update rule and its hyper-parameters (`Default` of each = MXNet 1.6's defaults).
/// Serialized (in checkpoints) as MXNet's name under `"name"` beside the fields of its
/// hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Algorithm {
    /// `sgd`: momentum buffer when `momentum > 0`.
    Sgd(Sgd),
    /// `adam`: mean and variance buffers.
    Adam(Adam),
    /// `nag`: momentum buffer when `momentum > 0`.
    Nag(Nag),
    /// `adagrad`: the squared-gradient history.
    AdaGrad(AdaGrad),
    /// `rmsprop`: `n`, or `(n, g, delta)` when `centered`.
    RmsProp {
        /// Hyper-parameters.
        #[serde(flatten)]
        hyper: RmsProp,
        /// Graves' centered variant (MXNet `centered=True`, default `false`).
        centered: bool,
    },
    /// `adamax`: mean and infinity norm.
    Adamax(Adamax),
    /// `nadam`: mean and variance; the optimizer carries the momentum schedule.
    Nadam(Nadam),
    /// `adadelta`: accumulated squared gradients and updates (no learning rate).
    AdaDelta(AdaDelta),
    /// `ftml`: `(d, v, z)`.
    Ftml(Ftml),
    /// `ftrl`: `(z, n)`.
    Ftrl(Ftrl),
    /// `signum`: momentum buffer, or signSGD (no state) when `momentum == 0`.
    Signum(Signum),
    /// `lars`: SGD (momentum buffer when `momentum != 0`) at a per-layer learning rate
    /// scaled by the trust ratio `η·‖w‖/(‖g‖·rescale_grad + wd·‖w‖ + eps)`. Layers whose
    /// name ends in `gamma`, `beta` or `bias` keep their rate; with
    /// [`Config::decay_by_suffix`] only names ending in `_weight` get weight decay.
    /// Defaults: those of [`Lars`], `momentum_correction = true`, `exact_norms = true`.
    Lars {
        /// Hyper-parameters; `momentum` is the one given, before its correction.
        #[serde(flatten)]
        hyper: Lars,
        /// Scale the momentum by `current lr / previous lr` when the rate changes.
        momentum_correction: bool,
        /// `true`: norms bit-exact with MXNet, one sequential pass per layer; `false`:
        /// blocked parallel `f64` sums (not MXNet's last bit, faster for huge layers).
        exact_norms: bool,
    },
    /// `lamb`: Adam's direction scaled per layer by `‖w‖/‖u‖`; states `(mean, var)` in
    /// `f32`. Default learning rate 0.001. Defaults: those of [`Lamb`],
    /// `exact_norms = true`, `update_master_copy = false`.
    Lamb {
        /// Hyper-parameters.
        #[serde(flatten)]
        hyper: Lamb,
        /// As for [`Algorithm::Lars`].
        exact_norms: bool,
        /// `false` reproduces MXNet 1.6, whose multi-precision LAMB never writes the `f32`
        /// master copy (every step starts from the first master); `true` writes it.
        update_master_copy: bool,
    },
    /// `lbsgd`: gradients accumulated over `batch_scale` updates, then SGD on their mean
    /// at a warmed-up learning rate; states: momentum buffer when `momentum != 0`, and the
    /// accumulator when `batch_scale > 1`. Defaults: those of [`Lbsgd`].
    Lbsgd(Lbsgd),
    /// `dcasgd`: delay-compensated SGD; its state is the previous weight (starts as a
    /// copy of the weight). Defaults: those of [`Dcasgd`].
    Dcasgd(Dcasgd),
    /// `sgld`: Langevin dynamics, `w − lr/2·(ĝ + wd·w) + N(0, √lr)`; no state. The noise
    /// comes from the optimizer's [`Generator`], one stream per parameter per update, as
    /// the Python package draws it from `mxopt.random`. Defaults: those of [`Sgld`],
    /// `add_noise = true`.
    Sgld {
        /// Hyper-parameters.
        #[serde(flatten)]
        hyper: Sgld,
        /// Add the noise (`false`: the deterministic half step only).
        add_noise: bool,
    },
    /// `groupadagrad` (MXNet's `contrib.GroupAdaGrad`): AdaGrad with one `f32` accumulator
    /// per row; the weight is a matrix, so its first dense gradient must be a
    /// [`Grad::Matrix`] (or a [`Grad::Rows`]) giving the row count. No weight decay.
    /// Defaults: those of [`GroupAdaGrad`].
    GroupAdaGrad(GroupAdaGrad),
    /// `test` (MXNet's `Test`): `w ← w + rescale_grad·g`, the state a copy of the new
    /// weight; learning rate, weight decay and update counts are not used.
    Test(Test),
}

impl Algorithm {
    /// Every name [`Algorithm::from_name`] accepts: MXNet 1.6's optimizer registry
    /// (`ccsgd` is its deprecated alias of `sgd`).
    ///
    /// ```
    /// use mxopt::optimizer::Algorithm;
    /// for name in Algorithm::NAMES {
    ///     assert!(Algorithm::from_name(name).is_ok());
    /// }
    /// ```
    pub const NAMES: [&'static str; 19] = [
        "sgd",
        "ccsgd",
        "nag",
        "adam",
        "adagrad",
        "rmsprop",
        "adamax",
        "nadam",
        "adadelta",
        "ftml",
        "ftrl",
        "signum",
        "lars",
        "lamb",
        "lbsgd",
        "dcasgd",
        "sgld",
        "groupadagrad",
        "test",
    ];

    /// The algorithm registered under MXNet's name (case-insensitive), with its defaults.
    ///
    /// Known names: `sgd` (and `ccsgd`), `nag`, `adam`, `adagrad`, `rmsprop`, `adamax`,
    /// `nadam`, `adadelta`, `ftml`, `ftrl`, `signum`, `lars`, `lamb`, `lbsgd`, `dcasgd`,
    /// `sgld`, `groupadagrad`, `test`.
    ///
    /// # Errors
    /// [`Error::UnknownOptimizer`] for another name.
    ///
    /// ```
    /// use mxopt::optimizer::Algorithm;
    /// assert!(Algorithm::from_name("SGD").is_ok());
    /// assert!(Algorithm::from_name("lbfgs").is_err());
    /// ```
    pub fn from_name(name: &str) -> Result<Algorithm> {
        match name.to_ascii_lowercase().as_str() {
            // `ccsgd` is MXNet 1.6's deprecated alias of `sgd`.
            "sgd" | "ccsgd" => Ok(Algorithm::Sgd(Sgd::default())),
            "adam" => Ok(Algorithm::Adam(Adam::default())),
            "nag" => Ok(Algorithm::Nag(Nag::default())),
            "adagrad" => Ok(Algorithm::AdaGrad(AdaGrad::default())),
            "rmsprop" => Ok(Algorithm::RmsProp {
                hyper: RmsProp::default(),
                centered: false,
            }),
            "adamax" => Ok(Algorithm::Adamax(Adamax::default())),
            "nadam" => Ok(Algorithm::Nadam(Nadam::default())),
            "adadelta" => Ok(Algorithm::AdaDelta(AdaDelta::default())),
            "ftml" => Ok(Algorithm::Ftml(Ftml::default())),
            "ftrl" => Ok(Algorithm::Ftrl(Ftrl::default())),
            "signum" => Ok(Algorithm::Signum(Signum::default())),
            "lars" => Ok(Algorithm::Lars {
                hyper: Lars::default(),
                momentum_correction: true,
                exact_norms: true,
            }),
            "lamb" => Ok(Algorithm::Lamb {
                hyper: Lamb::default(),
                exact_norms: true,
                update_master_copy: false,
            }),
            "lbsgd" => Ok(Algorithm::Lbsgd(Lbsgd::default())),
            "dcasgd" => Ok(Algorithm::Dcasgd(Dcasgd::default())),
            "sgld" => Ok(Algorithm::Sgld {
                hyper: Sgld::default(),
                add_noise: true,
            }),
            "groupadagrad" => Ok(Algorithm::GroupAdaGrad(GroupAdaGrad::default())),
            "test" => Ok(Algorithm::Test(Test::default())),
            _ => Err(Error::UnknownOptimizer(name.to_owned())),
        }
    }

    /// MXNet's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Sgd(_) => "sgd",
            Algorithm::Adam(_) => "adam",
            Algorithm::Nag(_) => "nag",
            Algorithm::AdaGrad(_) => "adagrad",
            Algorithm::RmsProp { .. } => "rmsprop",
            Algorithm::Adamax(_) => "adamax",
            Algorithm::Nadam(_) => "nadam",
            Algorithm::AdaDelta(_) => "adadelta",
            Algorithm::Ftml(_) => "ftml",
            Algorithm::Ftrl(_) => "ftrl",
            Algorithm::Signum(_) => "signum",
            Algorithm::Lars { .. } => "lars",
            Algorithm::Lamb { .. } => "lamb",
            Algorithm::Lbsgd(_) => "lbsgd",
            Algorithm::Dcasgd(_) => "dcasgd",
            Algorithm::Sgld { .. } => "sgld",
            Algorithm::GroupAdaGrad(_) => "groupadagrad",
            Algorithm::Test(_) => "test",
        }
    }

    /// The learning rate MXNet's constructor uses when none is given and there is no
    /// scheduler.
    #[must_use]
    pub fn default_learning_rate(&self) -> f64 {
        match self {
            Algorithm::Adam(_)
            | Algorithm::RmsProp { .. }
            | Algorithm::Nadam(_)
            | Algorithm::Lamb { .. } => 0.001,
            Algorithm::Adamax(_) => 0.002,
            Algorithm::Ftrl(_) => 0.1,
            _ => 0.01,
        }
    }

    /// Whether MXNet's constructor declares its own default learning rate (then passed on
    /// to a scheduler too, overwriting its base rate), rather than inheriting the base
    /// class's `None` (0.01 without a scheduler).
    #[must_use]
    pub fn declares_learning_rate(&self) -> bool {
        matches!(
            self,
            Algorithm::Adam(_)
                | Algorithm::RmsProp { .. }
                | Algorithm::Nadam(_)
                | Algorithm::Adamax(_)
                | Algorithm::Signum(_)
                | Algorithm::Lamb { .. }
        )
    }

    /// Whether MXNet (and so this driver) turns row-sparse gradients into dense ones
    /// for this optimizer, which has no row-sparse kernel (NAG: only with momentum).
    #[must_use]
    pub fn densifies_rows(&self) -> bool {
        match self {
            Algorithm::Sgd(_)
            | Algorithm::Adam(_)
            | Algorithm::AdaGrad(_)
            | Algorithm::Lars { .. }
            | Algorithm::Lbsgd(_)
            | Algorithm::GroupAdaGrad(_) => false,
            Algorithm::Nag(n) => n.momentum != 0.0,
            _ => true,
        }
    }

    /// State buffers per parameter (LBSGD's accumulator included).
    #[must_use]
    pub fn num_states(&self) -> usize {
        match self {
            Algorithm::Sgd(s) => usize::from(s.momentum > 0.0),
            Algorithm::Nag(Nag { momentum, .. })
            | Algorithm::Signum(Signum { momentum, .. })
            | Algorithm::Lars {
                hyper: Lars { momentum, .. },
                ..
            } => usize::from(*momentum != 0.0),
            Algorithm::Lbsgd(h) => usize::from(h.momentum != 0.0) + usize::from(h.batch_scale > 1),
            Algorithm::Sgld { .. } => 0,
            Algorithm::AdaGrad(_)
            | Algorithm::RmsProp {
                centered: false, ..
            }
            | Algorithm::Dcasgd(_)
            | Algorithm::GroupAdaGrad(_)
            | Algorithm::Test(_) => 1,
            Algorithm::Adam(_)
            | Algorithm::Adamax(_)
            | Algorithm::Nadam(_)
            | Algorithm::AdaDelta(_)
            | Algorithm::Ftrl(_)
            | Algorithm::Lamb { .. } => 2,
            Algorithm::Ftml(_) | Algorithm::RmsProp { centered: true, .. } => 3,
        }
    }

    /// How a parameter's state buffers start, given the row count its gradient reveals.
    fn layout(&self, rows: Option<usize>) -> Result<Layout> {
        let start = match self {
            Algorithm::Dcasgd(_) => Start::Weight,
            Algorithm::GroupAdaGrad(_) => Start::RowZeros(rows.ok_or(Error::Unsupported {
                kernel: "groupadagrad",
                name: "rows",
                value: 0.0,
                why: "the first update of a parameter needs its row count: pass Grad::Matrix or Grad::Rows",
            })?),
            _ => Start::Zeros,
        };
        Ok(Layout {
            states: self.num_states(),
            start,
        })
    }
}

/// The optimizer-wide settings of MXNet's `Optimizer` base class. `Default`: MXNet's.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// Learning rate (`None`: the algorithm's default, see
    /// [`Algorithm::default_learning_rate`]). With a scheduler, a given value overwrites
    /// the scheduler's base rate, as in MXNet — and so does the default of an algorithm
    /// that [declares one](Algorithm::declares_learning_rate).
    pub learning_rate: Option<f64>,
    /// Weight decay (default 0).
    pub wd: f64,
    /// Keep an `f32` master copy and `f32` states for `f16` parameters (default `false`).
    pub multi_precision: bool,
    /// The update count a parameter starts from (default 0): its first update has
    /// `t = begin_num_update + 1`.
    pub begin_num_update: u64,
    /// Learning-rate schedule, called with the largest update count so far (default none).
    pub lr_scheduler: Option<Scheduler>,
    /// Learning-rate multipliers by parameter name (default: 1 for every name).
    pub lr_mult: HashMap<String, f64>,
    /// Weight-decay multipliers by parameter name; names absent here get MXNet's default
    /// (see `decay_by_suffix`).
    pub wd_mult: HashMap<String, f64>,
    /// MXNet's rule for named parameters (`param_idx2name`): names ending in neither
    /// `_weight` nor `_gamma` get no weight decay. Default `true`; `false` decays every
    /// parameter (MXNet's behaviour for unnamed indices).
    pub decay_by_suffix: bool,
    /// Row-sparse gradients update only their rows, states included (default `true`).
    pub lazy_update: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            learning_rate: None,
            wd: 0.0,
            multi_precision: false,
            begin_num_update: 0,
            lr_scheduler: None,
            lr_mult: HashMap::new(),
            wd_mult: HashMap::new(),
            decay_by_suffix: true,
            lazy_update: true,
        }
    }
}

/// A parameter type the optimizer updates: `f32`, `f64` or `f16` (sealed).
pub trait Param: Storage + sealed::Sealed {}

impl Param for f32 {}
impl Param for f64 {}
impl Param for f16 {}

/// The crate-internal side of [`Param`]: how a parameter type keeps its state.
mod sealed {
    use super::{f16, Dense, Mixed, Noise, Result, Rule, Storage};

    pub trait Sealed: Storage + Sized {
        /// Runs each rule over its walk, then adds its noise (SGLD).
        fn run_noisy<R: Rule<Self::Elem, 0> + Send>(jobs: Vec<(R, Dense<'_, Self, 0>, Noise)>);
        /// The buffers of a parameter of this type, `None` if they were made for another.
        fn buffers(state: &mut Buffers) -> Option<&mut Vec<Vec<Self>>>;
        /// The state buffers of `weight` (and its `f32` master copy for multi-precision
        /// `f16`).
        fn new_buffers(weight: &[Self], layout: Layout, multi_precision: bool) -> Buffers;
        /// The weight and gradient as `f32` data (`Some` for `f32` only).
        fn as_f32<'a>(w: &'a mut [Self], g: &'a [Self]) -> Option<(&'a mut [f32], &'a [f32])>;
        /// The weight and gradient as `f16` data (`Some` for `f16` only).
        fn as_f16<'a>(w: &'a mut [Self], g: &'a [Self]) -> Option<(&'a mut [f16], &'a [f16])>;
        /// The multi-precision walk; `None` for types without one.
        fn mixed<'a, const N: usize>(
            w: &'a mut [Self],
            g: &'a [Self],
            master: &'a mut [f32],
            s: [&'a mut [f32]; N],
        ) -> Option<Result<Mixed<'a, N>>>;
    }

    /// How many state buffers a parameter gets, and how they start.
    #[derive(Clone, Copy, Debug)]
    pub struct Layout {
        pub states: usize,
        pub start: Start,
    }

    /// The initial content of every state buffer of a parameter.
    #[derive(Clone, Copy, Debug)]
    pub enum Start {
        /// Zeros, the weight's length.
        Zeros,
        /// A copy of the weight (of its master copy with multi-precision).
        Weight,
        /// One zero per row.
        RowZeros(usize),
    }

    /// One parameter's state buffers, in its storage type or, for multi-precision `f16`,
    /// in `f32` next to the master copy.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Buffers {
        F32(Vec<Vec<f32>>),
        F64(Vec<Vec<f64>>),
        F16(Vec<Vec<f16>>),
        Mixed {
            master: Vec<f32>,
            states: Vec<Vec<f32>>,
        },
    }
}

use sealed::{Buffers, Layout, Sealed, Start};

macro_rules! param {
    ($T:ty, $V:ident, $as_f32:expr) => {
        impl Sealed for $T {
            fn as_f32<'a>(w: &'a mut [$T], g: &'a [$T]) -> Option<(&'a mut [f32], &'a [f32])> {
                $as_f32(w, g)
            }
            fn as_f16<'a>(_: &'a mut [$T], _: &'a [$T]) -> Option<(&'a mut [f16], &'a [f16])> {
                None
            }
            fn run_noisy<R: Rule<Self::Elem, 0> + Send>(jobs: Vec<(R, Dense<'_, Self, 0>, Noise)>) {
                run_noisy(jobs);
            }
            fn buffers(state: &mut Buffers) -> Option<&mut Vec<Vec<$T>>> {
                match state {
                    Buffers::$V(s) => Some(s),
                    _ => None,
                }
            }
            fn new_buffers(weight: &[$T], layout: Layout, _multi_precision: bool) -> Buffers {
                Buffers::$V(layout.buffers(weight))
            }
            fn mixed<'a, const N: usize>(
                _: &'a mut [$T],
                _: &'a [$T],
                _: &'a mut [f32],
                _: [&'a mut [f32]; N],
            ) -> Option<Result<Mixed<'a, N>>> {
                None
            }
        }
    };
}
param!(f32, F32, |w, g| Some((w, g)));
param!(f64, F64, |_, _| None);

impl Sealed for f16 {
    fn run_noisy<R: Rule<Self::Elem, 0> + Send>(jobs: Vec<(R, Dense<'_, Self, 0>, Noise)>) {
        run_noisy(jobs);
    }
    fn as_f32<'a>(_: &'a mut [f16], _: &'a [f16]) -> Option<(&'a mut [f32], &'a [f32])> {
        None
    }
    fn as_f16<'a>(w: &'a mut [f16], g: &'a [f16]) -> Option<(&'a mut [f16], &'a [f16])> {
        Some((w, g))
    }
    fn buffers(state: &mut Buffers) -> Option<&mut Vec<Vec<f16>>> {
        match state {
            Buffers::F16(s) => Some(s),
            _ => None,
        }
    }
    fn new_buffers(weight: &[f16], layout: Layout, multi_precision: bool) -> Buffers {
        if multi_precision {
            let master: Vec<f32> = weight.iter().map(|x| x.to_f32()).collect();
            Buffers::Mixed {
                states: layout.buffers(&master),
                master,
            }
        } else {
            Buffers::F16(layout.buffers(weight))
        }
    }
    fn mixed<'a, const N: usize>(
        w: &'a mut [f16],
        g: &'a [f16],
        master: &'a mut [f32],
        s: [&'a mut [f32]; N],
    ) -> Option<Result<Mixed<'a, N>>> {
        Some(Mixed::new(w, g, master, s))
    }
}

impl Layout {
    fn buffers<T: Storage + Default>(self, weight: &[T]) -> Vec<Vec<T>> {
        let buffer = match self.start {
            Start::Zeros => vec![T::default(); weight.len()],
            Start::Weight => weight.to_vec(),
            Start::RowZeros(rows) => vec![T::default(); rows],
        };
        vec![buffer; self.states]
    }
}

fn run_noisy<T, R>(jobs: Vec<(R, Dense<'_, T, 0>, Noise)>)
where
    T: Storage + crate::init::Element,
    R: Rule<T::Elem, 0> + Send,
{
    let jobs = jobs
        .into_iter()
        .map(|(rule, walk, noise)| (rule, engine::Noisy::new(walk, noise)))
        .collect();
    engine::run_many(jobs);
}

/// A parameter's update count and buffers.
#[derive(Clone, Debug, PartialEq)]
struct ParamState {
    count: u64,
    buffers: Buffers,
    /// LBSGD's gradient accumulation (unused by the other optimizers).
    accumulation: drivers::Accumulation,
}

/// A gradient: dense, or row-sparse (`indices` strictly increasing, one row of `values`
/// per index; the weight has `rows` rows).
#[derive(Clone, Copy, Debug)]
pub enum Grad<'a, T> {
    /// Same length as the weight.
    Dense(&'a [T]),
    /// Dense, of a weight seen as a matrix of `rows` rows: what GroupAdaGrad, whose state
    /// is one value per row, needs at a parameter's first update. The others read it as
    /// [`Grad::Dense`].
    Matrix {
        /// Number of rows of the weight.
        rows: usize,
        /// Same length as the weight.
        values: &'a [T],
    },
    /// Row-sparse.
    Rows {
        /// Number of rows of the weight.
        rows: usize,
        /// Row indices, strictly increasing.
        indices: &'a [i64],
        /// `indices.len()` rows of the weight's row length.
        values: &'a [T],
    },
}

/// MXNet's optimizer and updater in one: see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Optimizer {
    algorithm: Algorithm,
    config: Config,
    lr: f64,
    num_update: u64,
    /// Nadam's running momentum product (`m_schedule`), 1 for the others.
    m_schedule: f64,
    params: HashMap<String, ParamState>,
    /// SGLD's noise source.
    generator: Generator,
    /// LARS's momentum correction: the base learning rate of the previous and of the
    /// current update call (MXNet's `last_lr`, `cur_lr`), unset before the first.
    last_lr: Option<f64>,
    cur_lr: Option<f64>,
}

impl Optimizer {
    /// An optimizer with no parameter state yet. As in MXNet, `clip_gradient: Some(0.0)`
    /// means no clipping.
    ///
    /// # Errors
    /// [`Error::NotFinite`] when a hyper-parameter, the learning rate or the weight decay
    /// is NaN or infinite; [`Error::Unsupported`] for LBSGD's `batch_scale = 0`.
    ///
    /// ```
    /// use mxopt::optim::lars::Lars;
    /// use mxopt::optimizer::{Algorithm, Config, Optimizer};
    /// let lars = Algorithm::Lars { hyper: Lars { eta: f64::NAN, ..Lars::default() }, momentum_correction: true, exact_norms: true };
    /// assert!(Optimizer::new(lars, Config::default()).is_err());
    /// ```
    pub fn new(mut algorithm: Algorithm, mut config: Config) -> Result<Optimizer> {
        // MXNet's optimizers hand `clip_gradient` to a kernel only when it is truthy: a zero
        // bound means no clipping.
        // (The optimizers MXNet runs in Python operations clip whenever a bound is set.)
        let clip = match &mut algorithm {
            Algorithm::Sgd(Sgd { clip_gradient, .. })
            | Algorithm::Nag(Nag { clip_gradient, .. })
            | Algorithm::Adam(Adam { clip_gradient, .. })
            | Algorithm::RmsProp {
                hyper: RmsProp { clip_gradient, .. },
                ..
            }
            | Algorithm::Ftml(Ftml { clip_gradient, .. })
            | Algorithm::Ftrl(Ftrl { clip_gradient, .. })
            | Algorithm::Signum(Signum { clip_gradient, .. })
            | Algorithm::Lars {
                hyper: Lars { clip_gradient, .. },
                ..
            }
            | Algorithm::Lamb {
                hyper: Lamb { clip_gradient, .. },
                ..
            } => Some(clip_gradient),
            _ => None,
        };
        if let Some(clip) = clip {
            if *clip == Some(0.0) {
                *clip = None;
            }
        }
        if let Algorithm::RmsProp { hyper, .. } = &mut algorithm {
            if hyper.clip_weights == Some(0.0) {
                hyper.clip_weights = None;
            }
        }
        // LAMB passes its bounds only when truthy too.
        if let Algorithm::Lamb { hyper, .. } = &mut algorithm {
            for bound in [&mut hyper.lower_bound, &mut hyper.upper_bound] {
                if *bound == Some(0.0) {
                    *bound = None;
                }
            }
        }
        // Optimizers whose constructor declares a default rate (Adam's 0.001) pass it on,
        // and a given rate overwrites the scheduler's base rate.
        let given = config.learning_rate.or_else(|| {
            algorithm
                .declares_learning_rate()
                .then(|| algorithm.default_learning_rate())
        });
        // Ftrl keeps its rate out of MXNet's base constructor: its scheduler is left alone.
        if let (Some(lr), Some(s), false) = (
            given,
            config.lr_scheduler.as_mut(),
            matches!(algorithm, Algorithm::Ftrl(_)),
        ) {
            s.set_base_lr(lr);
        }
        let lr = given.unwrap_or_else(|| algorithm.default_learning_rate());
        for (name, v) in [("learning_rate", lr), ("wd", config.wd)] {
            if !v.is_finite() {
                return Err(Error::NotFinite { name, value: v });
            }
        }
        let opt = Optimizer {
            algorithm,
            config,
            lr,
            num_update: 0,
            m_schedule: 1.0,
            params: HashMap::new(),
            generator: Generator::default(),
            last_lr: None,
            cur_lr: None,
        };
        // Reject bad hyper-parameters now rather than at the first update.
        opt.check_rules()?;
        Ok(Optimizer {
            num_update: opt.config.begin_num_update,
            ..opt
        })
    }

    fn check_rules(&self) -> Result<()> {
        if let Algorithm::Lbsgd(lbsgd) = self.algorithm {
            // The update kernel runs only every `batch_scale` calls: build it now.
            lbsgd.check()?;
            lbsgd.sgd().mom_at::<f32>(Step::new(0.0, 0.0, 1))?;
        }
        let mut w = [0.0_f32];
        let (step, g) = (Step::new(0.0, 0.0, 1), [0.0_f32]);
        // A one-element dry run on a copy builds every rule of the algorithm.
        let grad = Grad::Matrix {
            rows: 1,
            values: &g[..],
        };
        let mut probe = [("", &mut w[..], grad)];
        let layout = self.algorithm.layout(Some(1))?;
        let mut state = [ParamState {
            count: 0,
            buffers: f32::new_buffers(&[0.0], layout, false),
            accumulation: drivers::Accumulation::default(),
        }];
        self.clone().execute(&mut probe, &mut state, &[step])
    }

    /// The generator SGLD draws its noise from (at its current position).
    #[must_use]
    pub fn generator(&self) -> Generator {
        self.generator
    }

    /// Sets the generator SGLD draws its noise from: each update of a parameter takes its
    /// next stream, as `mxopt.random.next_stream()` does in the Python package, so
    /// `Generator::new(seed)` (after the same initializer calls) gives the Python
    /// package's trajectory for `mxopt.random.seed(seed)`. A new optimizer holds
    /// `Generator::default()`.
    ///
    /// ```
    /// use mxopt::init::Generator;
    /// use mxopt::optimizer::{Algorithm, Config, Optimizer};
    /// let mut opt = Optimizer::new(Algorithm::from_name("sgld")?, Config::default())?;
    /// opt.set_generator(Generator::new(42));
    /// let mut w = vec![0.0_f32; 4];
    /// opt.update("w_weight", &mut w, &[0.0; 4])?; // noise N(0, √0.01)
    /// assert!(w.iter().any(|&x| x != 0.0));
    /// assert_eq!(opt.generator().next_stream(), (42, 1)); // one stream per update
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    pub fn set_generator(&mut self, generator: Generator) {
        self.generator = generator;
    }

    /// The algorithm and its hyper-parameters.
    #[must_use]
    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    /// The largest update count so far (MXNet's `num_update`, the scheduler's input).
    #[must_use]
    pub fn num_update(&self) -> u64 {
        self.num_update
    }

    /// How many times `name` was updated, counted from `begin_num_update`; `None` before
    /// its first update.
    #[must_use]
    pub fn update_count(&self, name: &str) -> Option<u64> {
        self.params.get(name).map(|p| p.count)
    }

    /// The learning rate for the current `num_update`, before multipliers: the
    /// schedule's rate, or the fixed one.
    fn base_lr(&mut self) -> f64 {
        match self.config.lr_scheduler.as_mut() {
            Some(s) => s.lr(self.num_update),
            None => self.lr,
        }
    }

    /// The learning rate of `name` for the current `num_update`: the schedule's rate (or
    /// the fixed one) times `lr_mult[name]`.
    fn lr_of(&mut self, name: &str) -> f64 {
        self.base_lr() * self.config.lr_mult.get(name).copied().unwrap_or(1.0)
    }

    fn wd_of(&self, name: &str) -> f64 {
        // LARS decays only `*_weight` parameters (its own `set_wd_mult`).
        let gamma_decays = !matches!(self.algorithm, Algorithm::Lars { .. });
        let default = if !self.config.decay_by_suffix
            || name.ends_with("_weight")
            || (gamma_decays && name.ends_with("_gamma"))
        {
            1.0
        } else {
            0.0
        };
        self.config.wd * self.config.wd_mult.get(name).copied().unwrap_or(default)
    }

    /// Updates one parameter in place with a dense gradient.
    ///
    /// # Errors
    /// [`Error::Length`] when the gradient's length differs from the weight's (or from
    /// the state created at the parameter's first update); [`Error::NotFinite`] for a
    /// learning rate or weight decay that is not finite (or SGLD's noise scale `√lr` for
    /// a negative rate); [`Error::StateType`] when the parameter's element type changed;
    /// [`Error::Unsupported`] for what the optimizer refuses (LAMB and GroupAdaGrad: `f64`
    /// parameters, or `f16` ones without multi-precision; GroupAdaGrad: weight decay, or
    /// a first dense update without [`Grad::Matrix`]). Nothing is written then.
    pub fn update<T: Param>(&mut self, name: &str, weight: &mut [T], grad: &[T]) -> Result<()> {
        self.update_many(&mut [(name, weight, Grad::Dense(grad))])
    }

    /// Updates one parameter in place with a row-sparse gradient.
    ///
    /// # Errors
    /// As [`Optimizer::update`], plus [`Error::RowOutOfRange`] and [`Error::RowsUnsorted`]
    /// for bad indices.
    ///
    /// ```
    /// use mxopt::optimizer::{Algorithm, Config, Optimizer};
    /// let config = Config { learning_rate: Some(0.5), ..Config::default() };
    /// let mut opt = Optimizer::new(Algorithm::from_name("sgd")?, config)?;
    /// let mut emb = vec![1.0_f32; 3 * 2]; // 3 rows of 2
    /// opt.update_rows("emb_weight", &mut emb, 3, &[1], &[1.0, 1.0])?;
    /// assert_eq!(emb, [1.0, 1.0, 0.5, 0.5, 1.0, 1.0]); // lazy: only row 1 moves
    /// assert!(opt.update_rows("emb_weight", &mut emb, 3, &[3], &[1.0, 1.0]).is_err());
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    pub fn update_rows<T: Param>(
        &mut self,
        name: &str,
        weight: &mut [T],
        rows: usize,
        indices: &[i64],
        values: &[T],
    ) -> Result<()> {
        let grad = Grad::Rows {
            rows,
            indices,
            values,
        };
        self.update_many(&mut [(name, weight, grad)])
    }

    /// Updates a list of parameters (distinct names), in parallel: MXNet's aggregated
    /// update. Every count is incremented before the learning rates are read, as MXNet
    /// does for a list.
    ///
    /// # Errors
    /// As [`Optimizer::update_rows`], and [`Error::Duplicate`] when a name appears twice.
    /// All checks run before anything is written or counted.
    ///
    /// ```
    /// use mxopt::optimizer::{Algorithm, Config, Grad, Optimizer};
    /// let mut opt = Optimizer::new(Algorithm::from_name("adam")?, Config::default())?;
    /// let (mut w, mut b) = (vec![1.0_f64; 8], vec![0.0_f64; 2]);
    /// let (gw, gb) = (vec![0.1_f64; 8], vec![0.2_f64; 2]);
    /// opt.update_many(&mut [
    ///     ("fc_weight", &mut w, Grad::Dense(&gw)),
    ///     ("fc_bias", &mut b, Grad::Dense(&gb)),
    /// ])?;
    /// assert_eq!((opt.update_count("fc_bias"), opt.num_update()), (Some(1), 1));
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    pub fn update_many<T: Param>(
        &mut self,
        params: &mut [(&str, &mut [T], Grad<'_, T>)],
    ) -> Result<()> {
        for (i, (name, ..)) in params.iter().enumerate() {
            if params[..i].iter().any(|(other, ..)| other == name) {
                return Err(Error::Duplicate((*name).to_owned()));
            }
        }
        for (_, w, g) in params.iter() {
            if let Grad::Matrix { rows, .. } = *g {
                let row_len = w.len().checked_div(rows).unwrap_or(0);
                check_len("weight (rows × row length)", rows * row_len, w.len())?;
            }
        }
        // The states of new parameters first: a refused one leaves the map as it was.
        let mp = self.config.multi_precision;
        let mut new_states = Vec::with_capacity(params.len());
        for (name, w, g) in params.iter() {
            if self.params.contains_key(*name) {
                new_states.push(None);
                continue;
            }
            let rows = match *g {
                Grad::Dense(_) => None,
                Grad::Matrix { rows, .. } | Grad::Rows { rows, .. } => Some(rows),
            };
            new_states.push(Some(ParamState {
                count: self.config.begin_num_update,
                buffers: T::new_buffers(w, self.algorithm.layout(rows)?, mp),
                accumulation: drivers::Accumulation::default(),
            }));
        }
        let created: Vec<bool> = new_states.iter().map(Option::is_some).collect();
        // Take the states out of the map, so each job owns one.
        let mut taken: Vec<ParamState> = params
            .iter()
            .zip(new_states)
            .filter_map(|((name, ..), new)| new.or_else(|| self.params.remove(*name)))
            .collect();
        let result = self.run(params, &mut taken);
        for (((name, ..), state), created) in params.iter().zip(taken).zip(created) {
            // A refused first update leaves no state behind.
            if result.is_ok() || !created {
                self.params.insert((*name).to_owned(), state);
            }
        }
        result
    }

    fn run<T: Param>(
        &mut self,
        params: &mut [(&str, &mut [T], Grad<'_, T>)],
        states: &mut [ParamState],
    ) -> Result<()> {
        let saved = self.progress();
        let names: Vec<&str> = params.iter().map(|(name, ..)| *name).collect();
        let previous: Vec<u64> = states.iter().map(|s| s.count).collect();
        let (counts, steps) = self.begin_call(&names, &previous);
        match self.execute(params, states, &steps) {
            Ok(()) => {
                for (s, t) in states.iter_mut().zip(counts) {
                    s.count = t;
                }
                Ok(())
            }
            Err(e) => {
                // Nothing was written: undo the count and the optimizer's progress.
                self.restore(saved);
                Err(e)
            }
        }
    }

    /// The optimizer-wide progress an update makes (count, schedule, Nadam's product,
    /// SGLD's generator, LARS's rates), to [`Optimizer::restore`] when it is refused.
    pub(crate) fn progress(&self) -> Progress {
        Progress {
            num_update: self.num_update,
            lr_scheduler: self.config.lr_scheduler.clone(),
            m_schedule: self.m_schedule,
            generator: self.generator,
            lrs: (self.last_lr, self.cur_lr),
        }
    }

    /// Undoes the progress made since `saved` was taken.
    pub(crate) fn restore(&mut self, saved: Progress) {
        self.num_update = saved.num_update;
        self.config.lr_scheduler = saved.lr_scheduler;
        self.m_schedule = saved.m_schedule;
        self.generator = saved.generator;
        (self.last_lr, self.cur_lr) = saved.lrs;
    }

    /// The new counts and the steps of an update of `names`, whose counts so far are
    /// `previous` (shared with the GPU optimizer; undo with [`Optimizer::restore`]).
    pub(crate) fn begin_call(&mut self, names: &[&str], previous: &[u64]) -> (Vec<u64>, Vec<Step>) {
        if let Algorithm::Test(_) = self.algorithm {
            // `Test` neither counts nor reads a learning rate.
            return (previous.to_vec(), vec![Step::new(0.0, 0.0, 0); names.len()]);
        }
        let counts: Vec<u64> = previous.iter().map(|c| c + 1).collect();
        let steps = self.preamble(names, &counts);
        (counts, steps)
    }

    /// The momentum LARS hands its kernels this call: the given one, scaled by the
    /// scheduler's `current / previous` rate with `momentum_correction`; 0 when the given
    /// one is not positive (MXNet's kernels take no negative momentum).
    pub(crate) fn lars_kernel_momentum(&self, hyper: &Lars, momentum_correction: bool) -> f64 {
        let momentum = match (self.last_lr, self.cur_lr) {
            (Some(last), Some(cur)) if momentum_correction && last != 0.0 => {
                hyper.momentum * (cur / last)
            }
            _ => hyper.momentum,
        };
        if hyper.momentum > 0.0 {
            momentum
        } else {
            0.0
        }
    }

    /// SGLD's noise source, for the GPU optimizer's draws.
    #[cfg(feature = "wgpu")]
    pub(crate) fn generator_mut(&mut self) -> &mut Generator {
        &mut self.generator
    }

    /// Parameter `name`'s update count, `f32` master copy (multi-precision `f16`) and
    /// `f32` states; `None` before its first update. For the GPU optimizer's checkpoints.
    ///
    /// # Errors
    /// [`Error::StateType`] for a parameter whose states are not `f32`.
    #[cfg(feature = "wgpu")]
    pub(crate) fn f32_state(&self, name: &str) -> Result<Option<F32State<'_>>> {
        let Some(state) = self.params.get(name) else {
            return Ok(None);
        };
        let (master, states) = match &state.buffers {
            Buffers::F32(states) => (None, states),
            Buffers::Mixed { master, states } => (Some(master.as_slice()), states),
            Buffers::F64(_) | Buffers::F16(_) => return Err(Error::StateType),
        };
        Ok(Some(F32State {
            count: state.count,
            master,
            states,
            accumulation: &state.accumulation,
        }))
    }

    /// Sets parameter `name`'s count, master copy, `f32` states and LBSGD accumulation
    /// (the GPU optimizer's download); `master: Some` makes it a multi-precision `f16`
    /// parameter.
    #[cfg(feature = "wgpu")]
    pub(crate) fn set_f32_state(
        &mut self,
        name: &str,
        count: u64,
        master: Option<Vec<f32>>,
        states: Vec<Vec<f32>>,
        accumulation: drivers::Accumulation,
    ) {
        let buffers = match master {
            Some(master) => Buffers::Mixed { master, states },
            None => Buffers::F32(states),
        };
        self.params.insert(
            name.to_owned(),
            ParamState {
                count,
                buffers,
                accumulation,
            },
        );
    }

    /// The settings (after the constructor's adjustments).
    #[cfg(feature = "wgpu")]
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// A copy with the optimizer-wide progress and no parameter state.
    #[cfg(feature = "wgpu")]
    pub(crate) fn stateless(&self) -> Optimizer {
        Optimizer {
            params: HashMap::new(),
            ..self.clone()
        }
    }

    /// MXNet's preamble for the parameters `names` whose new counts are `counts`:
    /// `num_update` and each parameter's [`Step`] (shared with the GPU optimizer).
    pub(crate) fn preamble(&mut self, names: &[&str], counts: &[u64]) -> Vec<Step> {
        // SGD and LARS count the whole list, then read the rates (`_update_count(indices)`,
        // then `_get_lrs`); LBSGD reads each rate before counting; the others run MXNet's
        // preamble index by index.
        if matches!(self.algorithm, Algorithm::Sgd(_) | Algorithm::Lars { .. }) {
            self.num_update = counts.iter().copied().fold(self.num_update, u64::max);
        }
        if let Algorithm::Lars { .. } = self.algorithm {
            // The scheduler's rate of this call and of the previous one (momentum correction).
            let lr = self.base_lr();
            self.last_lr = Some(self.cur_lr.unwrap_or(lr));
            self.cur_lr = Some(lr);
        }
        let lr_first = matches!(self.algorithm, Algorithm::Lbsgd(_));
        let mut steps = Vec::with_capacity(names.len());
        for (name, &t) in names.iter().zip(counts) {
            let lr = if lr_first {
                let lr = self.lr_of(name);
                self.num_update = self.num_update.max(t);
                lr
            } else {
                self.num_update = self.num_update.max(t);
                self.lr_of(name)
            };
            // `as _`: the count type of `Step` may change (u64 or i64).
            let mut step = Step::new(lr, self.wd_of(name), t as _);
            if let Algorithm::Nadam(nadam) = self.algorithm {
                self.m_schedule *= nadam.momentum(t as _);
                step.schedule = self.m_schedule;
            }
            steps.push(step);
        }
        steps
    }

    /// Runs the update with the given steps; all checks come before the first write.
    fn execute<T: Param>(
        &mut self,
        params: &mut [(&str, &mut [T], Grad<'_, T>)],
        states: &mut [ParamState],
        steps: &[Step],
    ) -> Result<()> {
        let mode = if self.config.lazy_update {
            RowMode::Lazy
        } else {
            RowMode::Standard
        };
        if !self.algorithm.densifies_rows() {
            return self.dispatch(params, states, steps, mode);
        }
        let dense = densified(params)?;
        let mut list: Vec<(&str, &mut [T], Grad<'_, T>)> = params
            .iter_mut()
            .zip(&dense)
            .map(|((name, w, g), d)| {
                let g = d.as_deref().map_or(*g, Grad::Dense);
                (*name, &mut **w, g)
            })
            .collect();
        self.dispatch(&mut list, states, steps, mode)
    }

    fn dispatch<T: Param>(
        &mut self,
        params: &mut [(&str, &mut [T], Grad<'_, T>)],
        states: &mut [ParamState],
        steps: &[Step],
        mode: RowMode,
    ) -> Result<()> {
        let lars_momentum = match &self.algorithm {
            Algorithm::Lars {
                hyper,
                momentum_correction,
                ..
            } => self.lars_kernel_momentum(hyper, *momentum_correction),
            _ => 0.0,
        };
        let call = Call {
            steps,
            mode,
            generator: &mut self.generator,
            lars_momentum,
        };
        dispatch(self.algorithm, call, params, states)
    }
}

/// A parameter's `f32` state as [`Optimizer::f32_state`] lends it.
#[cfg(feature = "wgpu")]
pub(crate) struct F32State<'a> {
    pub count: u64,
    pub master: Option<&'a [f32]>,
    pub states: &'a [Vec<f32>],
    /// LBSGD's accumulation (its buffer is the last state).
    pub accumulation: &'a drivers::Accumulation,
}

/// What [`Optimizer::progress`] saves.
pub(crate) struct Progress {
    num_update: u64,
    lr_scheduler: Option<Scheduler>,
    m_schedule: f64,
    generator: Generator,
    lrs: (Option<f64>, Option<f64>),
}

/// What one update call hands the kernels besides the tensors.
struct Call<'a> {
    steps: &'a [Step],
    mode: RowMode,
    /// SGLD's noise source.
    generator: &'a mut Generator,
    /// The momentum LARS hands its kernels (see [`Optimizer::lars_kernel_momentum`]).
    lars_momentum: f64,
}

fn reduction(exact: bool) -> engine::reduce::Reduction {
    if exact {
        engine::reduce::Reduction::Exact
    } else {
        engine::reduce::Reduction::Fast
    }
}

/// The dense form of each row-sparse gradient (`None` for dense ones): zeros outside the
/// gradient's rows, as MXNet's fallback for optimizers without a sparse kernel.
fn densified<T: Param>(params: &[(&str, &mut [T], Grad<'_, T>)]) -> Result<Vec<Option<Vec<T>>>> {
    params
        .iter()
        .map(|(_, w, g)| match *g {
            Grad::Dense(_) | Grad::Matrix { .. } => Ok(None),
            Grad::Rows {
                rows,
                indices,
                values,
            } => dense_of_rows(w.len(), rows, indices, values).map(Some),
        })
        .collect()
}

/// A row-sparse gradient of a weight of `len` elements in `rows` rows, as a dense one.
fn dense_of_rows<T: Storage>(
    len: usize,
    rows: usize,
    indices: &[i64],
    values: &[T],
) -> Result<Vec<T>> {
    let row_len = len.checked_div(rows).unwrap_or(0);
    if rows * row_len != len {
        return Err(Error::Length {
            what: "weight",
            expected: rows * row_len,
            got: len,
        });
    }
    if values.len() != indices.len() * row_len {
        return Err(Error::Length {
            what: "gradient values",
            expected: indices.len() * row_len,
            got: values.len(),
        });
    }
    engine::check_rows(indices, rows)?;
    let mut dense = vec![T::store(T::Elem::zero()); len];
    for (&r, row) in indices.iter().zip(values.chunks_exact(row_len.max(1))) {
        let at = usize::try_from(r).unwrap_or(0) * row_len;
        dense[at..at + row_len].copy_from_slice(&row[..row_len]);
    }
    Ok(dense)
}

/// The slices of a parameter's state buffers as the engine's array.
fn slices<T, const N: usize>(buffers: &mut [Vec<T>]) -> Result<[&mut [T]; N]> {
    let got = buffers.len();
    let v: Vec<&mut [T]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
    v.try_into().map_err(|_| Error::Length {
        what: "optimizer states",
        expected: N,
        got,
    })
}

/// What one algorithm needs from a kernel family: the rule for a step, in any compute type.
trait Family<const N: usize> {
    /// Row-sparse gradients of multi-precision parameters run the sparse kernel on the
    /// master copy (else they are made dense).
    const ROWS_ON_MASTER: bool = false;
    type Rule<E: Elem>: Rule<E, N> + Send;
    fn dense<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>>;
    fn rows<E: Elem>(&self, step: Step, mode: RowMode) -> Result<Self::Rule<E>>;
}

/// SGD with momentum; `single` as for [`SgdPlain`], with `sgd_mom_update`, whose scalar
/// `lr` and `wd` round differently from the multi-tensor kernel's lists.
struct SgdMom {
    sgd: Sgd,
    single: bool,
}
/// Plain SGD; `single`: a list with a row-sparse gradient, for which MXNet runs
/// `sgd_update` on every tensor (the multi-tensor kernel only for all-dense lists).
struct SgdPlain {
    sgd: Sgd,
    single: bool,
}
struct AdamFamily(Adam);

impl Family<1> for SgdMom {
    type Rule<E: Elem> = crate::optim::sgd::MultiSgdMom<E>;
    fn dense<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>> {
        if self.single {
            return self.sgd.mom_at(step);
        }
        self.sgd.multi_mom_at(step)
    }
    fn rows<E: Elem>(&self, step: Step, _: RowMode) -> Result<Self::Rule<E>> {
        self.sgd.mom_at(step)
    }
}

/// Plain SGD: the multi-tensor kernel for dense gradients, `sgd_update` for row-sparse.
enum PlainRule<E> {
    Multi(crate::optim::sgd::MultiSgd<E>),
    Single(crate::optim::sgd::SgdUpdate<E>),
}

impl<E: Elem> Rule<E, 0> for PlainRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, s: [E; 0]) -> (E, [E; 0]) {
        match self {
            PlainRule::Multi(r) => r.apply(w, g, s),
            PlainRule::Single(r) => r.apply(w, g, s),
        }
    }
}

impl Family<0> for SgdPlain {
    type Rule<E: Elem> = PlainRule<E>;
    fn dense<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>> {
        if self.single {
            return self.sgd.single_at(step).map(PlainRule::Single);
        }
        Sgd {
            momentum: 0.0,
            ..self.sgd
        }
        .multi_at(step)
        .map(PlainRule::Multi)
    }
    fn rows<E: Elem>(&self, step: Step, mode: RowMode) -> Result<Self::Rule<E>> {
        match mode {
            RowMode::Lazy => self.sgd.single_at(step),
            RowMode::Standard => self.sgd.std_at(step),
        }
        .map(PlainRule::Single)
    }
}

impl Family<2> for AdamFamily {
    const ROWS_ON_MASTER: bool = true;
    type Rule<E: Elem> = crate::optim::adam::AdamRule<E>;
    fn dense<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>> {
        self.0.at(step)
    }
    fn rows<E: Elem>(&self, step: Step, mode: RowMode) -> Result<Self::Rule<E>> {
        match mode {
            RowMode::Lazy => self.0.lazy_at(step),
            RowMode::Standard => self.0.std_at(step),
        }
    }
}

fn dispatch<T: Param>(
    algorithm: Algorithm,
    call: Call<'_>,
    params: &mut [(&str, &mut [T], Grad<'_, T>)],
    states: &mut [ParamState],
) -> Result<()> {
    let (steps, mode) = (call.steps, call.mode);
    let any_rows = params
        .iter()
        .any(|(_, _, g)| matches!(g, Grad::Rows { .. }));
    macro_rules! go {
        ($family:expr) => {
            run_family(&$family, params, states, steps, mode)
        };
        ($hyper:expr, $N:literal) => {
            run_family::<T, _, $N>(&DenseOnly($hyper), params, states, steps, mode)
        };
    }
    match algorithm {
        Algorithm::Sgd(sgd) if sgd.momentum > 0.0 => go!(SgdMom {
            sgd,
            single: any_rows
        }),
        Algorithm::Sgd(sgd) => go!(SgdPlain {
            sgd,
            single: any_rows
        }),
        Algorithm::Adam(h) => go!(AdamFamily(h)),
        // A momentum buffer exists for any non-zero momentum, but MXNet hands the kernel
        // only a positive one.
        Algorithm::Nag(h) if h.momentum != 0.0 => go!(NagFamily(Nag {
            momentum: h.momentum.max(0.0),
            ..h
        })),
        // NAG without momentum runs `sgd_update`.
        Algorithm::Nag(h) => go!(SgdPlain {
            sgd: Sgd {
                momentum: 0.0,
                rescale_grad: h.rescale_grad,
                clip_gradient: h.clip_gradient,
            },
            single: true
        }),
        Algorithm::AdaGrad(h) => go!(AdaGradFamily(h)),
        Algorithm::RmsProp {
            hyper,
            centered: false,
        } => go!(hyper, 1),
        Algorithm::RmsProp {
            hyper,
            centered: true,
        } => go!(hyper, 3),
        Algorithm::Adamax(h) => go!(h, 2),
        Algorithm::Nadam(h) => go!(h, 2),
        Algorithm::AdaDelta(h) => go!(h, 2),
        Algorithm::Ftml(h) => go!(h, 3),
        Algorithm::Ftrl(h) => go!(h, 2),
        Algorithm::Signum(h) if h.momentum != 0.0 => go!(h, 1),
        Algorithm::Signum(h) => go!(h, 0),
        Algorithm::Dcasgd(h) => go!(h, 1),
        Algorithm::Test(h) => go!(h, 1),
        Algorithm::Lars {
            hyper, exact_norms, ..
        } => {
            let lars = drivers::LarsCall {
                hyper,
                kernel_momentum: call.lars_momentum,
                how: reduction(exact_norms),
                mode,
            };
            lars.run(params, states, steps)
        }
        Algorithm::Lamb {
            hyper,
            exact_norms,
            update_master_copy,
        } => {
            let lamb = drivers::LambCall {
                hyper,
                how: reduction(exact_norms),
                update_master_copy,
            };
            lamb.run(params, states, steps)
        }
        Algorithm::Lbsgd(hyper) => {
            drivers::on_master(params, states, steps, &mut drivers::LbsgdCall(hyper))
        }
        Algorithm::Sgld { hyper, add_noise } => {
            let mut sgld = drivers::SgldCall {
                hyper,
                generator: add_noise.then_some(call.generator),
            };
            drivers::on_master(params, states, steps, &mut sgld)
        }
        Algorithm::GroupAdaGrad(hyper) => {
            drivers::on_master(params, states, steps, &mut drivers::GroupAdaGradCall(hyper))
        }
    }
}

struct NagFamily(Nag);

impl Family<1> for NagFamily {
    type Rule<E: Elem> = crate::optim::nag::NagMom<E>;
    fn dense<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>> {
        self.0.at(step)
    }
    fn rows<E: Elem>(&self, step: Step, _: RowMode) -> Result<Self::Rule<E>> {
        self.0.at(step)
    }
}

struct AdaGradFamily(AdaGrad);

impl Family<1> for AdaGradFamily {
    const ROWS_ON_MASTER: bool = true;
    type Rule<E: Elem> = AdaGradAny<E>;
    fn dense<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>> {
        self.0.at(step).map(AdaGradAny::Dense)
    }
    fn rows<E: Elem>(&self, step: Step, _: RowMode) -> Result<Self::Rule<E>> {
        self.0.rows_at(step).map(AdaGradAny::Rows)
    }
}

/// AdaGrad's dense rule or its row-sparse kernel's.
enum AdaGradAny<E> {
    Dense(crate::optim::adagrad::AdaGradRule<E>),
    Rows(crate::optim::adagrad::AdaGradRowsRule<E>),
}

impl<E: Elem> Rule<E, 1> for AdaGradAny<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, s: [E; 1]) -> (E, [E; 1]) {
        match self {
            AdaGradAny::Dense(r) => r.apply(w, g, s),
            AdaGradAny::Rows(r) => r.apply(w, g, s),
        }
    }
}

/// An optimizer whose high-level driver has one dense kernel with `N` states and no
/// row-sparse one.
struct DenseOnly<H>(H);

/// The dense rule constructor of a hyper-parameter struct, by state count.
trait DenseCtor<const N: usize> {
    type Rule<E: Elem>: Rule<E, N> + Send;
    fn make<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>>;
}

impl<H: DenseCtor<N>, const N: usize> Family<N> for DenseOnly<H> {
    type Rule<E: Elem> = H::Rule<E>;
    fn dense<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>> {
        self.0.make(step)
    }
    fn rows<E: Elem>(&self, _: Step, _: RowMode) -> Result<Self::Rule<E>> {
        Err(Error::Unsupported {
            kernel: "Optimizer::update_rows",
            name: "row_sparse",
            value: 1.0,
            why: "this optimizer's high-level driver takes dense gradients only",
        })
    }
}

macro_rules! dense_ctor {
    ($($H:ident :: $f:ident => $R:ident, $N:literal;)*) => {$(
        impl DenseCtor<$N> for $H {
            type Rule<E: Elem> = $R<E>;
            fn make<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>> {
                self.$f(step)
            }
        }
    )*};
}

use crate::optim::{adadelta::AdaDeltaRule, adamax::AdamaxRule, ftml::FtmlRule};
use crate::optim::{dcasgd::DcasgdRule, ftrl::FtrlRule, nadam::NadamRule};
use crate::optim::{rmsprop::RmsPropAlexRule, rmsprop::RmsPropRule};
use crate::optim::{signum::SignSgdRule, signum::SignumRule};

impl DenseCtor<1> for Test {
    type Rule<E: Elem> = crate::optim::test_opt::TestRule<E>;
    fn make<E: Elem>(&self, _: Step) -> Result<Self::Rule<E>> {
        self.at()
    }
}

dense_ctor! {
    Dcasgd::at => DcasgdRule, 1;
    RmsProp::at => RmsPropRule, 1;
    RmsProp::centered_at => RmsPropAlexRule, 3;
    Adamax::at => AdamaxRule, 2;
    Nadam::at => NadamRule, 2;
    AdaDelta::at => AdaDeltaRule, 2;
    Ftml::at => FtmlRule, 3;
    Ftrl::at => FtrlRule, 2;
    Signum::at => SignumRule, 1;
    Signum::sign_at => SignSgdRule, 0;
}

/// Builds every job (all checks first), then runs each walk kind's jobs with
/// [`engine::run_many`].
fn run_family<T: Param, F: Family<N>, const N: usize>(
    family: &F,
    params: &mut [(&str, &mut [T], Grad<'_, T>)],
    states: &mut [ParamState],
    steps: &[Step],
    mode: RowMode,
) -> Result<()> {
    // Row-sparse gradients of multi-precision parameters: MXNet runs the sparse kernel on
    // the master copy (Adam, AdaGrad) or densifies them (the SGD family).
    let mixed_rows: Vec<Option<MixedRows<T>>> = params
        .iter()
        .zip(states.iter())
        .map(|((_, w, g), state)| match (&state.buffers, *g) {
            (
                Buffers::Mixed { .. },
                Grad::Rows {
                    rows,
                    indices,
                    values,
                },
            ) => Ok(Some(if F::ROWS_ON_MASTER {
                MixedRows::Widened(values.iter().map(|v| v.load().to_f64() as f32).collect())
            } else {
                MixedRows::Dense(dense_of_rows(w.len(), rows, indices, values)?)
            })),
            _ => Ok(None),
        })
        .collect::<Result<_>>()?;
    let mut dense = Vec::new();
    let mut mixed = Vec::new();
    let mut rows = Vec::new();
    let mut master_rows = Vec::new();
    let jobs = params.iter_mut().zip(states.iter_mut()).zip(steps);
    for ((((_, w, g), state), &step), extra) in jobs.zip(&mixed_rows) {
        let w: &mut [T] = w;
        match (&mut state.buffers, *g, extra) {
            (
                Buffers::Mixed { master, states },
                Grad::Dense(g) | Grad::Matrix { values: g, .. },
                _,
            ) => {
                let walk =
                    T::mixed(w, g, master, slices::<f32, N>(states)?).ok_or(Error::StateType)??;
                mixed.push((family.dense::<f32>(step)?, walk));
            }
            (Buffers::Mixed { master, states }, Grad::Rows { .. }, Some(MixedRows::Dense(g))) => {
                let walk =
                    T::mixed(w, g, master, slices::<f32, N>(states)?).ok_or(Error::StateType)??;
                mixed.push((family.rows::<f32>(step, mode)?, walk));
            }
            (
                Buffers::Mixed { master, states },
                Grad::Rows {
                    rows: n, indices, ..
                },
                Some(MixedRows::Widened(values)),
            ) => {
                check_len("weight", master.len(), w.len())?;
                let walk = Rows::new(master, n, indices, values, slices::<f32, N>(states)?, mode)?;
                master_rows.push((family.rows::<f32>(step, mode)?, walk));
            }
            (Buffers::Mixed { .. }, Grad::Rows { .. }, None) => return Err(Error::StateType),
            (buffers, Grad::Dense(g) | Grad::Matrix { values: g, .. }, _) => {
                let s = T::buffers(buffers).ok_or(Error::StateType)?;
                let walk = Dense::new(w, g, slices::<T, N>(s)?)?;
                dense.push((family.dense::<T::Elem>(step)?, walk));
            }
            (
                buffers,
                Grad::Rows {
                    rows: n,
                    indices,
                    values,
                },
                _,
            ) => {
                let s = T::buffers(buffers).ok_or(Error::StateType)?;
                let walk = Rows::new(w, n, indices, values, slices::<T, N>(s)?, mode)?;
                rows.push((family.rows::<T::Elem>(step, mode)?, walk));
            }
        }
    }
    engine::run_many(dense);
    engine::run_many(mixed);
    engine::run_many(rows);
    engine::run_many(master_rows);
    // The sparse kernel wrote the master copy: the whole of it goes to the weight.
    for (((_, w, _), state), extra) in params.iter_mut().zip(states.iter()).zip(&mixed_rows) {
        if let (Some(MixedRows::Widened(_)), Buffers::Mixed { master, .. }) =
            (extra, &state.buffers)
        {
            round_into(w, master);
        }
    }
    Ok(())
}

/// What the kernels of a row-sparse gradient of a multi-precision parameter read.
enum MixedRows<T> {
    /// The gradient made dense, in the parameter's type.
    Dense(Vec<T>),
    /// The gradient's rows widened to `f32`, for the sparse kernel on the master copy.
    Widened(Vec<f32>),
}

/// `weight ← master`, rounded to the weight's type.
fn round_into<T: Storage>(weight: &mut [T], master: &[f32]) {
    for (w, &m) in weight.iter_mut().zip(master) {
        *w = T::store(T::Elem::from_f64(f64::from(m)));
    }
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Length {
            what,
            expected,
            got,
        })
    }
}
