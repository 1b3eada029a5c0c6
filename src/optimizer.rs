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
//! Implemented: `sgd` (and its alias `ccsgd`), `nag`, `adam`, `adagrad` (dense and row-sparse gradients), and
//! `rmsprop` (plain and centered), `adamax`, `nadam`, `adadelta`, `ftml`, `ftrl`,
//! `signum` (dense gradients); all with `f32`/`f64`/`f16` parameters and multi-precision.
//! Not yet: `lars`, `lamb`, `lbsgd`, `dcasgd`, `sgld`, `groupadagrad`, `test`
//! (their kernels are in [`crate::optim`]), and the Python package's fallback that
//! densifies row-sparse gradients for optimizers without a sparse kernel.

use crate::engine::{self, Dense, Mixed, RowMode, Rows};
use crate::optim::{adadelta::AdaDelta, adagrad::AdaGrad, adam::Adam, adamax::Adamax};
use crate::optim::{ftml::Ftml, ftrl::Ftrl, nadam::Nadam, nag::Nag, rmsprop::RmsProp};
use crate::optim::{sgd::Sgd, signum::Signum};
use crate::real::{Elem, Storage};
use crate::rule::{Rule, Step};
use crate::schedule::Scheduler;
use crate::{Error, Result};
use half::f16;
use std::collections::HashMap;

/// The update rule and its hyper-parameters (`Default` of each = MXNet 1.6's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
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
}

impl Algorithm {
    /// The algorithm registered under MXNet's name (case-insensitive), with its defaults.
    ///
    /// # Errors
    /// [`Error::UnknownOptimizer`] for a name without a high-level driver.
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
        }
    }

    /// The learning rate MXNet's constructor uses when none is given and there is no
    /// scheduler.
    #[must_use]
    pub fn default_learning_rate(&self) -> f64 {
        match self {
            Algorithm::Adam(_) | Algorithm::RmsProp { .. } | Algorithm::Nadam(_) => 0.001,
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
        )
    }

    /// Whether MXNet (and so this driver) turns row-sparse gradients into dense ones
    /// for this optimizer, which has no row-sparse kernel (NAG: only with momentum).
    #[must_use]
    pub fn densifies_rows(&self) -> bool {
        match self {
            Algorithm::Sgd(_) | Algorithm::Adam(_) | Algorithm::AdaGrad(_) => false,
            Algorithm::Nag(n) => n.momentum != 0.0,
            _ => true,
        }
    }

    /// State buffers per parameter.
    #[must_use]
    pub fn num_states(&self) -> usize {
        match self {
            Algorithm::Sgd(s) => usize::from(s.momentum > 0.0),
            Algorithm::Nag(Nag { momentum, .. }) | Algorithm::Signum(Signum { momentum, .. }) => {
                usize::from(*momentum != 0.0)
            }
            Algorithm::AdaGrad(_)
            | Algorithm::RmsProp {
                centered: false, ..
            } => 1,
            Algorithm::Adam(_)
            | Algorithm::Adamax(_)
            | Algorithm::Nadam(_)
            | Algorithm::AdaDelta(_)
            | Algorithm::Ftrl(_) => 2,
            Algorithm::Ftml(_) | Algorithm::RmsProp { centered: true, .. } => 3,
        }
    }
}

/// The optimizer-wide settings of MXNet's `Optimizer` base class. `Default`: MXNet's.
#[derive(Clone, Debug, PartialEq)]
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
    use super::{f16, Mixed, Result};

    pub trait Sealed: Sized {
        /// The buffers of a parameter of this type, `None` if they were made for another.
        fn buffers(state: &mut Buffers) -> Option<&mut Vec<Vec<Self>>>;
        /// `n` zero buffers for `weight` (and its `f32` master copy for multi-precision
        /// `f16`).
        fn new_buffers(weight: &[Self], n: usize, multi_precision: bool) -> Buffers;
        /// The multi-precision walk; `None` for types without one.
        fn mixed<'a, const N: usize>(
            w: &'a mut [Self],
            g: &'a [Self],
            master: &'a mut [f32],
            s: [&'a mut [f32]; N],
        ) -> Option<Result<Mixed<'a, N>>>;
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

use sealed::{Buffers, Sealed};

macro_rules! param {
    ($T:ty, $V:ident) => {
        impl Sealed for $T {
            fn buffers(state: &mut Buffers) -> Option<&mut Vec<Vec<$T>>> {
                match state {
                    Buffers::$V(s) => Some(s),
                    _ => None,
                }
            }
            fn new_buffers(weight: &[$T], n: usize, _multi_precision: bool) -> Buffers {
                Buffers::$V(vec![vec![<$T>::default(); weight.len()]; n])
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
param!(f32, F32);
param!(f64, F64);

impl Sealed for f16 {
    fn buffers(state: &mut Buffers) -> Option<&mut Vec<Vec<f16>>> {
        match state {
            Buffers::F16(s) => Some(s),
            _ => None,
        }
    }
    fn new_buffers(weight: &[f16], n: usize, multi_precision: bool) -> Buffers {
        if multi_precision {
            Buffers::Mixed {
                master: weight.iter().map(|x| x.to_f32()).collect(),
                states: vec![vec![0.0; weight.len()]; n],
            }
        } else {
            Buffers::F16(vec![vec![f16::ZERO; weight.len()]; n])
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

/// A parameter's update count and buffers.
#[derive(Clone, Debug, PartialEq)]
struct ParamState {
    count: u64,
    buffers: Buffers,
}

/// A gradient: dense, or row-sparse (`indices` strictly increasing, one row of `values`
/// per index; the weight has `rows` rows).
#[derive(Clone, Copy, Debug)]
pub enum Grad<'a, T> {
    /// Same length as the weight.
    Dense(&'a [T]),
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
}

impl Optimizer {
    /// An optimizer with no parameter state yet. As in MXNet, `clip_gradient: Some(0.0)`
    /// means no clipping.
    ///
    /// # Errors
    /// [`Error::NotFinite`] when a hyper-parameter, the learning rate or the weight decay
    /// is NaN or infinite.
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
            | Algorithm::Signum(Signum { clip_gradient, .. }) => Some(clip_gradient),
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
        };
        // Reject bad hyper-parameters now rather than at the first update.
        opt.check_rules()?;
        Ok(Optimizer {
            num_update: opt.config.begin_num_update,
            ..opt
        })
    }

    fn check_rules(&self) -> Result<()> {
        let mut w = [0.0_f32];
        let (step, g) = (Step::new(0.0, 0.0, 1), [0.0_f32]);
        // A one-element dry run on a copy builds every rule of the algorithm.
        let mut probe = [("", &mut w[..], Grad::Dense(&g[..]))];
        let n = self.algorithm.num_states();
        let mut state = [ParamState {
            count: 0,
            buffers: f32::new_buffers(&[0.0], n, false),
        }];
        dispatch(
            self.algorithm,
            &mut probe,
            &mut state,
            &[step],
            RowMode::Lazy,
        )
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

    /// The learning rate of `name` for the current `num_update`: the schedule's rate (or
    /// the fixed one) times `lr_mult[name]`.
    fn lr_of(&mut self, name: &str) -> f64 {
        let base = match self.config.lr_scheduler.as_mut() {
            Some(s) => s.lr(self.num_update),
            None => self.lr,
        };
        base * self.config.lr_mult.get(name).copied().unwrap_or(1.0)
    }

    fn wd_of(&self, name: &str) -> f64 {
        let default = if !self.config.decay_by_suffix
            || name.ends_with("_weight")
            || name.ends_with("_gamma")
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
    /// learning rate or weight decay that is not finite. Nothing is written then.
    pub fn update<T: Param>(&mut self, name: &str, weight: &mut [T], grad: &[T]) -> Result<()> {
        self.update_many(&mut [(name, weight, Grad::Dense(grad))])
    }

    /// Updates one parameter in place with a row-sparse gradient.
    ///
    /// # Errors
    /// As [`Optimizer::update`], plus [`Error::RowOutOfRange`] and [`Error::RowsUnsorted`]
    /// for bad indices, and [`Error::Unsupported`] for `f16` with multi-precision.
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
        // Take the states out of the map (created on first use), so each job owns one.
        let n = self.algorithm.num_states();
        let mp = self.config.multi_precision;
        let mut taken: Vec<ParamState> = Vec::with_capacity(params.len());
        for (name, w, _) in params.iter() {
            let state = self.params.remove(*name).unwrap_or_else(|| ParamState {
                count: self.config.begin_num_update,
                buffers: T::new_buffers(w, n, mp),
            });
            taken.push(state);
        }
        let result = self.run(params, &mut taken);
        for ((name, ..), state) in params.iter().zip(taken) {
            self.params.insert((*name).to_owned(), state);
        }
        result
    }

    fn run<T: Param>(
        &mut self,
        params: &mut [(&str, &mut [T], Grad<'_, T>)],
        states: &mut [ParamState],
    ) -> Result<()> {
        let counts: Vec<u64> = states.iter().map(|s| s.count + 1).collect();
        let names: Vec<&str> = params.iter().map(|(name, ..)| *name).collect();
        let (steps, saved) = self.plan(&names, &counts);
        let mode = if self.config.lazy_update {
            RowMode::Lazy
        } else {
            RowMode::Standard
        };
        let outcome = if self.algorithm.densifies_rows() {
            densified(params).and_then(|dense| {
                let mut list: Vec<(&str, &mut [T], Grad<'_, T>)> = params
                    .iter_mut()
                    .zip(&dense)
                    .map(|((name, w, g), d)| {
                        let g = d.as_deref().map_or(*g, Grad::Dense);
                        (*name, &mut **w, g)
                    })
                    .collect();
                dispatch(self.algorithm, &mut list, states, &steps, mode)
            })
        } else {
            dispatch(self.algorithm, params, states, &steps, mode)
        };
        match outcome {
            Ok(()) => {
                for (s, t) in states.iter_mut().zip(counts) {
                    s.count = t;
                }
                Ok(())
            }
            Err(e) => {
                // Nothing was written: undo the count and the scheduler's progress.
                self.restore(saved);
                Err(e)
            }
        }
    }

    /// The steps of a list update of `names` whose new counts are `counts`: advances the
    /// optimizer-wide count, schedule and Nadam's momentum product, and returns what
    /// [`Optimizer::restore`] needs to undo that when the update is refused. (Shared with
    /// the GPU optimizer, which keeps the counts and states on its side.)
    pub(crate) fn plan(&mut self, names: &[&str], counts: &[u64]) -> (Vec<Step>, Progress) {
        let saved = Progress(
            self.num_update,
            self.config.lr_scheduler.clone(),
            self.m_schedule,
        );
        // SGD counts the whole list, then reads the rates (`_update_count(indices)`, then
        // `_get_lrs`); the others run MXNet's preamble index by index.
        if matches!(self.algorithm, Algorithm::Sgd(_)) {
            self.num_update = counts.iter().copied().fold(self.num_update, u64::max);
        }
        let mut steps = Vec::with_capacity(names.len());
        for (name, &t) in names.iter().zip(counts) {
            self.num_update = self.num_update.max(t);
            let (lr, wd) = (self.lr_of(name), self.wd_of(name));
            // `as _`: the count type of `Step` may change (u64 or i64).
            let mut step = Step::new(lr, wd, t as _);
            if let Algorithm::Nadam(nadam) = self.algorithm {
                self.m_schedule *= nadam.momentum(t as _);
                step.schedule = self.m_schedule;
            }
            steps.push(step);
        }
        (steps, saved)
    }

    /// Undoes a [`Optimizer::plan`].
    pub(crate) fn restore(&mut self, saved: Progress) {
        self.num_update = saved.0;
        self.config.lr_scheduler = saved.1;
        self.m_schedule = saved.2;
    }
}

/// The optimizer-wide progress a refused update gives back: `num_update`, the scheduler,
/// Nadam's `m_schedule`.
pub(crate) struct Progress(u64, Option<Scheduler>, f64);

/// The dense form of each row-sparse gradient (`None` for dense ones): zeros outside the
/// gradient's rows, as MXNet's fallback for optimizers without a sparse kernel.
fn densified<T: Param>(params: &[(&str, &mut [T], Grad<'_, T>)]) -> Result<Vec<Option<Vec<T>>>> {
    params
        .iter()
        .map(|(_, w, g)| match *g {
            Grad::Dense(_) => Ok(None),
            Grad::Rows {
                rows,
                indices,
                values,
            } => {
                let row_len = w.len().checked_div(rows).unwrap_or(0);
                if rows * row_len != w.len() {
                    return Err(Error::Length {
                        what: "weight",
                        expected: rows * row_len,
                        got: w.len(),
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
                let mut dense = vec![T::store(T::Elem::zero()); w.len()];
                for (&r, row) in indices.iter().zip(values.chunks_exact(row_len.max(1))) {
                    let at = usize::try_from(r).unwrap_or(0) * row_len;
                    dense[at..at + row_len].copy_from_slice(&row[..row_len]);
                }
                Ok(Some(dense))
            }
        })
        .collect()
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
    type Rule<E: Elem>: Rule<E, N> + Send;
    fn dense<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>>;
    fn rows<E: Elem>(&self, step: Step, mode: RowMode) -> Result<Self::Rule<E>>;
}

struct SgdMom(Sgd);
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
        self.0.multi_mom_at(step)
    }
    fn rows<E: Elem>(&self, step: Step, _: RowMode) -> Result<Self::Rule<E>> {
        self.0.multi_mom_at(step)
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
    fn rows<E: Elem>(&self, step: Step, _: RowMode) -> Result<Self::Rule<E>> {
        self.sgd.single_at(step).map(PlainRule::Single)
    }
}

impl Family<2> for AdamFamily {
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
    params: &mut [(&str, &mut [T], Grad<'_, T>)],
    states: &mut [ParamState],
    steps: &[Step],
    mode: RowMode,
) -> Result<()> {
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
        Algorithm::Sgd(h) if h.momentum > 0.0 => go!(SgdMom(h)),
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
use crate::optim::{ftrl::FtrlRule, nadam::NadamRule};
use crate::optim::{rmsprop::RmsPropAlexRule, rmsprop::RmsPropRule};
use crate::optim::{signum::SignSgdRule, signum::SignumRule};

dense_ctor! {
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
    let mut dense = Vec::new();
    let mut mixed = Vec::new();
    let mut rows = Vec::new();
    for (((_, w, g), state), &step) in params.iter_mut().zip(states.iter_mut()).zip(steps) {
        let w: &mut [T] = w;
        match (&mut state.buffers, *g) {
            (Buffers::Mixed { master, states }, Grad::Dense(g)) => {
                let walk =
                    T::mixed(w, g, master, slices::<f32, N>(states)?).ok_or(Error::StateType)??;
                mixed.push((family.dense::<f32>(step)?, walk));
            }
            (Buffers::Mixed { .. }, Grad::Rows { .. }) => {
                return Err(Error::Unsupported {
                    kernel: "Optimizer::update_rows",
                    name: "multi_precision",
                    value: 1.0,
                    why: "row-sparse gradients of f16 parameters with a master copy are not implemented",
                });
            }
            (buffers, Grad::Dense(g)) => {
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
    Ok(())
}
