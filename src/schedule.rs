//! Learning-rate schedules of MXNet 1.6 (`mx.lr_scheduler`), value for value.
//!
//! A [`Scheduler`] maps an update count to a learning rate and, like MXNet's schedulers,
//! keeps state: Factor and MultiFactor scale their base rate as milestones pass (calling
//! with a smaller count undoes nothing), Poly and Cosine overwrite it on every call inside
//! their range and keep the last value past `max_update`. All arithmetic is `f64` in
//! MXNet's (Python's) order of operations.
//!
//! ```
//! use mxopt::schedule::{Factor, Warmup, WarmupMode};
//! let mut sched = Factor { factor: 0.5, base_lr: 1.0, ..Factor::new(2) }.build()?;
//! let lrs: Vec<f64> = (0..7).map(|n| sched.lr(n)).collect();
//! assert_eq!(lrs, [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]);
//!
//! let warm = Warmup { steps: 4, begin_lr: 0.0, mode: WarmupMode::Linear };
//! let mut sched = Factor { factor: 0.5, base_lr: 1.0, warmup: warm, ..Factor::new(2) }.build()?;
//! assert_eq!(sched.lr(1), 0.25);
//! # Ok::<(), mxopt::Error>(())
//! ```

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the learning rate moves during warmup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WarmupMode {
    /// From `begin_lr` to the constructor's `base_lr` in equal steps (MXNet's default).
    #[default]
    Linear,
    /// `begin_lr` throughout the warmup.
    Constant,
}

/// The warmup of any scheduler: updates `n < steps` get the warmup rate. Default: no
/// warmup (`steps: 0, begin_lr: 0.0, mode: Linear`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    /// Number of updates that use the warmup rate (MXNet `warmup_steps`, default 0).
    pub steps: u64,
    /// The rate at update 0 (MXNet `warmup_begin_lr`, default 0); at most `base_lr`.
    pub begin_lr: f64,
    /// Linear ramp or constant (MXNet `warmup_mode`, default `'linear'`).
    pub mode: WarmupMode,
}

/// `FactorScheduler`: multiplies the rate by `factor` every `step` updates, never below
/// `stop_factor_lr`. The k-th decay happens at the first call with `n > k·step` (the
/// counter starts at update 0, warmup or not).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Factor {
    /// Updates between two decays; at least 1 (required).
    pub step: u64,
    /// Decay factor, at most 1 (default 1).
    pub factor: f64,
    /// Lower bound of the rate (default `1e-8`).
    pub stop_factor_lr: f64,
    /// Rate after warmup (default `0.01`).
    pub base_lr: f64,
    /// Warmup (default none).
    pub warmup: Warmup,
}

impl Factor {
    /// A Factor schedule decaying every `step` updates, with MXNet's defaults otherwise
    /// (`factor: 1.0, stop_factor_lr: 1e-8, base_lr: 0.01`, no warmup).
    #[must_use]
    pub fn new(step: u64) -> Factor {
        Factor {
            step,
            factor: 1.0,
            stop_factor_lr: 1e-8,
            base_lr: 0.01,
            warmup: Warmup::default(),
        }
    }

    /// The running scheduler.
    ///
    /// # Errors
    /// [`Error::Schedule`] when `step < 1`, `factor > 1`, a value is not finite or the
    /// warmup is invalid (`begin_lr > base_lr`).
    ///
    /// ```
    /// use mxopt::schedule::Factor;
    /// assert!(Factor { factor: 2.0, ..Factor::new(3) }.build().is_err());
    /// ```
    pub fn build(&self) -> Result<Scheduler> {
        if self.step < 1 {
            return invalid(format!("step must be at least 1, got {}", self.step));
        }
        check_factor(self.factor)?;
        finite("stop_factor_lr", self.stop_factor_lr)?;
        Scheduler::new(
            self.base_lr,
            self.warmup,
            Kind::Factor {
                step: self.step,
                factor: self.factor,
                stop_factor_lr: self.stop_factor_lr,
                count: 0,
            },
        )
    }
}

/// `MultiFactorScheduler`: multiplies the rate by `factor` once `n` passes each milestone
/// (`n > milestone`, strictly).
#[derive(Clone, Debug, PartialEq)]
pub struct MultiFactor {
    /// Strictly increasing milestones, each at least 1 (required, non-empty).
    pub steps: Vec<u64>,
    /// Decay factor, at most 1 (default 1).
    pub factor: f64,
    /// Rate after warmup (default `0.01`).
    pub base_lr: f64,
    /// Warmup (default none).
    pub warmup: Warmup,
}

impl MultiFactor {
    /// A MultiFactor schedule with milestones `steps` and MXNet's defaults otherwise
    /// (`factor: 1.0, base_lr: 0.01`, no warmup).
    #[must_use]
    pub fn new(steps: Vec<u64>) -> MultiFactor {
        MultiFactor {
            steps,
            factor: 1.0,
            base_lr: 0.01,
            warmup: Warmup::default(),
        }
    }

    /// The running scheduler.
    ///
    /// # Errors
    /// [`Error::Schedule`] when `steps` is empty, not strictly increasing or holds a 0,
    /// when `factor > 1`, a value is not finite or the warmup is invalid.
    ///
    /// ```
    /// use mxopt::schedule::MultiFactor;
    /// let mut s = MultiFactor { factor: 0.1, base_lr: 1.0, ..MultiFactor::new(vec![2, 5]) }
    ///     .build()?;
    /// assert_eq!((s.lr(2), s.lr(3), s.lr(6)), (1.0, 0.1, 0.1 * 0.1));
    /// assert!(MultiFactor::new(vec![3, 3]).build().is_err());
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    pub fn build(&self) -> Result<Scheduler> {
        if self.steps.is_empty() {
            return invalid("steps must be a non-empty list".into());
        }
        if self.steps.windows(2).any(|w| w[1] <= w[0]) {
            return invalid(format!(
                "steps must be strictly increasing, got {:?}",
                self.steps
            ));
        }
        if self.steps[0] < 1 {
            return invalid(format!(
                "every step must be at least 1, got {:?}",
                self.steps
            ));
        }
        check_factor(self.factor)?;
        Scheduler::new(
            self.base_lr,
            self.warmup,
            Kind::MultiFactor {
                steps: self.steps.clone(),
                factor: self.factor,
                cur_step_ind: 0,
                count: 0,
            },
        )
    }
}

/// `PolyScheduler`: after warmup, `final_lr + (base_lr − final_lr)·(1 − done/max_steps)^pwr`
/// with `done = n − warmup.steps`, `max_steps = max_update − warmup.steps`, for
/// `n ≤ max_update`; later calls return the last value computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Poly {
    /// Update at which the decay reaches `final_lr`; at least 1, above `warmup.steps`
    /// (required).
    pub max_update: u64,
    /// Starting rate (default `0.01`).
    pub base_lr: f64,
    /// Power of the decay (default 2).
    pub pwr: f64,
    /// Rate at `max_update` (default 0).
    pub final_lr: f64,
    /// Warmup (default none).
    pub warmup: Warmup,
}

impl Poly {
    /// A Poly schedule over `max_update` updates with MXNet's defaults otherwise
    /// (`base_lr: 0.01, pwr: 2.0, final_lr: 0.0`, no warmup).
    #[must_use]
    pub fn new(max_update: u64) -> Poly {
        Poly {
            max_update,
            base_lr: 0.01,
            pwr: 2.0,
            final_lr: 0.0,
            warmup: Warmup::default(),
        }
    }

    /// The running scheduler.
    ///
    /// # Errors
    /// [`Error::Schedule`] when `max_update < 1`, `max_update ≤ warmup.steps` (MXNet
    /// accepts `max_update == warmup.steps` and then divides by zero at `n = max_update`),
    /// a value is not finite or the warmup is invalid.
    ///
    /// ```
    /// use mxopt::schedule::Poly;
    /// let mut s = Poly { base_lr: 1.0, pwr: 1.0, ..Poly::new(4) }.build()?;
    /// let lrs: Vec<f64> = (0..6).map(|n| s.lr(n)).collect();
    /// assert_eq!(lrs, [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]);
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    pub fn build(&self) -> Result<Scheduler> {
        finite("pwr", self.pwr)?;
        let decay = Decay::new(self.max_update, self.base_lr, self.final_lr, self.warmup)?;
        Scheduler::new(
            self.base_lr,
            self.warmup,
            Kind::Poly {
                decay,
                pwr: self.pwr,
            },
        )
    }
}

/// `CosineScheduler`: after warmup,
/// `final_lr + (base_lr − final_lr)·(1 + cos(π·done/max_steps))/2` for `n ≤ max_update`;
/// later calls return the last value computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cosine {
    /// Update at which the decay reaches `final_lr`; at least 1, above `warmup.steps`
    /// (required).
    pub max_update: u64,
    /// Starting rate (default `0.01`).
    pub base_lr: f64,
    /// Rate at `max_update` (default 0).
    pub final_lr: f64,
    /// Warmup (default none).
    pub warmup: Warmup,
}

impl Cosine {
    /// A Cosine schedule over `max_update` updates with MXNet's defaults otherwise
    /// (`base_lr: 0.01, final_lr: 0.0`, no warmup).
    #[must_use]
    pub fn new(max_update: u64) -> Cosine {
        Cosine {
            max_update,
            base_lr: 0.01,
            final_lr: 0.0,
            warmup: Warmup::default(),
        }
    }

    /// The running scheduler.
    ///
    /// # Errors
    /// As [`Poly::build`].
    ///
    /// ```
    /// use mxopt::schedule::Cosine;
    /// let mut s = Cosine { base_lr: 1.0, ..Cosine::new(4) }.build()?;
    /// assert_eq!((s.lr(0), s.lr(2), s.lr(4), s.lr(9)), (1.0, 0.5, 0.0, 0.0));
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    pub fn build(&self) -> Result<Scheduler> {
        let decay = Decay::new(self.max_update, self.base_lr, self.final_lr, self.warmup)?;
        Scheduler::new(self.base_lr, self.warmup, Kind::Cosine { decay })
    }
}

/// Poly's and Cosine's common decay from `base_lr_orig` to `final_lr`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Decay {
    base_lr_orig: f64,
    final_lr: f64,
    max_update: u64,
    max_steps: u64,
}

impl Decay {
    fn new(max_update: u64, base_lr: f64, final_lr: f64, warmup: Warmup) -> Result<Decay> {
        if max_update < 1 {
            return invalid(format!("max_update must be at least 1, got {max_update}"));
        }
        if max_update <= warmup.steps {
            return invalid(format!(
                "max_update ({max_update}) must be greater than warmup steps ({}): the decay \
                 would run over an empty span",
                warmup.steps
            ));
        }
        finite("final_lr", final_lr)?;
        finite("base_lr", base_lr)?;
        Ok(Decay {
            base_lr_orig: base_lr,
            final_lr,
            max_update,
            max_steps: max_update - warmup.steps,
        })
    }

    /// A deserialized decay must be what [`Decay::new`] builds from its own settings.
    fn check(&self, warmup: Warmup) -> Result<()> {
        let rebuilt = Decay::new(self.max_update, self.base_lr_orig, self.final_lr, warmup)?;
        if rebuilt == *self {
            Ok(())
        } else {
            invalid(format!(
                "max_steps ({}) must be max_update - warmup steps ({})",
                self.max_steps, rebuilt.max_steps
            ))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Kind {
    Factor {
        step: u64,
        factor: f64,
        stop_factor_lr: f64,
        count: u64,
    },
    MultiFactor {
        steps: Vec<u64>,
        factor: f64,
        cur_step_ind: usize,
        count: u64,
    },
    Poly {
        decay: Decay,
        pwr: f64,
    },
    Cosine {
        decay: Decay,
    },
}

/// A running learning-rate schedule, built by [`Factor::build`], [`MultiFactor::build`],
/// [`Poly::build`] or [`Cosine::build`].
/// Serializable with serde (the checkpoint format): its settings and its position (the
/// current base rate and the decay counters) as they are, checked again when
/// deserialized, so a tampered record is refused rather than making [`Scheduler::lr`]
/// divide by zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Unchecked")]
pub struct Scheduler {
    base_lr: f64,
    warmup_final_lr: f64,
    warmup: Warmup,
    kind: Kind,
}

impl Scheduler {
    fn new(base_lr: f64, warmup: Warmup, kind: Kind) -> Result<Scheduler> {
        finite("base_lr", base_lr)?;
        finite("warmup_begin_lr", warmup.begin_lr)?;
        if warmup.begin_lr > base_lr {
            return invalid(format!(
                "base_lr ({base_lr}) must not be lower than warmup_begin_lr ({})",
                warmup.begin_lr
            ));
        }
        Ok(Scheduler {
            base_lr,
            warmup_final_lr: base_lr,
            warmup,
            kind,
        })
    }

    /// The learning rate after `num_update` updates (MXNet's `scheduler(num_update)`),
    /// applying any decay now due.
    pub fn lr(&mut self, num_update: u64) -> f64 {
        if num_update < self.warmup.steps {
            return self.warmup_lr(num_update);
        }
        match &mut self.kind {
            Kind::Factor {
                step,
                factor,
                stop_factor_lr,
                count,
            } => {
                // MXNet: `while n > count + step: count += step; decay`.
                if num_update > count.saturating_add(*step) {
                    let decays = (num_update - 1 - *count) / *step;
                    *count += decays * *step;
                    self.base_lr = factor_decays(self.base_lr, *factor, *stop_factor_lr, decays);
                }
            }
            Kind::MultiFactor {
                steps,
                factor,
                cur_step_ind,
                count,
            } => {
                while *cur_step_ind < steps.len() && num_update > steps[*cur_step_ind] {
                    *count = steps[*cur_step_ind];
                    *cur_step_ind += 1;
                    self.base_lr *= *factor;
                }
            }
            Kind::Poly { decay, pwr } => {
                if num_update <= decay.max_update {
                    #[allow(clippy::cast_precision_loss)] // Python's float(int)
                    let remaining =
                        1.0 - (num_update - self.warmup.steps) as f64 / decay.max_steps as f64;
                    self.base_lr = decay.final_lr
                        + (decay.base_lr_orig - decay.final_lr) * remaining.powf(*pwr);
                }
            }
            Kind::Cosine { decay } => {
                if num_update <= decay.max_update {
                    #[allow(clippy::cast_precision_loss)] // Python's float(int)
                    let angle = std::f64::consts::PI * (num_update - self.warmup.steps) as f64
                        / decay.max_steps as f64;
                    self.base_lr = decay.final_lr
                        + (decay.base_lr_orig - decay.final_lr) * (1.0 + angle.cos()) / 2.0;
                }
            }
        }
        self.base_lr
    }

    /// The current base rate (MXNet's `scheduler.base_lr`).
    #[must_use]
    pub fn base_lr(&self) -> f64 {
        self.base_lr
    }

    /// Overwrites the base rate, as MXNet's optimizer does with its `learning_rate` when
    /// it is given a scheduler. Warmup still ramps to the built `base_lr`, and Poly and
    /// Cosine still decay from it.
    pub fn set_base_lr(&mut self, lr: f64) {
        self.base_lr = lr;
    }

    /// The decay counter of Factor and MultiFactor (MXNet's `count`: the last milestone
    /// passed); `None` for the other schedules.
    #[must_use]
    pub fn count(&self) -> Option<u64> {
        match self.kind {
            Kind::Factor { count, .. } | Kind::MultiFactor { count, .. } => Some(count),
            Kind::Poly { .. } | Kind::Cosine { .. } => None,
        }
    }

    /// The rate at warmup update `num_update < warmup.steps`.
    fn warmup_lr(&self, num_update: u64) -> f64 {
        match self.warmup.mode {
            WarmupMode::Linear => {
                #[allow(clippy::cast_precision_loss)] // Python's float(int)
                let increase = (self.warmup_final_lr - self.warmup.begin_lr) * num_update as f64
                    / self.warmup.steps as f64;
                self.warmup.begin_lr + increase
            }
            WarmupMode::Constant => self.warmup.begin_lr,
        }
    }
}

/// A deserialized [`Scheduler`] before its check.
#[derive(Deserialize)]
struct Unchecked {
    base_lr: f64,
    warmup_final_lr: f64,
    warmup: Warmup,
    kind: Kind,
}

impl TryFrom<Unchecked> for Scheduler {
    type Error = Error;

    /// What the builders guarantee, checked on a record that may come from anywhere: a
    /// scheduler that passes runs without panicking, dividing by zero or indexing out of
    /// range.
    fn try_from(u: Unchecked) -> Result<Scheduler> {
        // `new` checks the warmup against the rate it ramps to.
        let mut scheduler = Scheduler::new(u.warmup_final_lr, u.warmup, u.kind)?;
        finite("base_lr", u.base_lr)?;
        scheduler.base_lr = u.base_lr;
        match &scheduler.kind {
            Kind::Factor {
                step,
                factor,
                stop_factor_lr,
                ..
            } => {
                Factor {
                    step: *step,
                    factor: *factor,
                    stop_factor_lr: *stop_factor_lr,
                    base_lr: u.warmup_final_lr,
                    warmup: u.warmup,
                }
                .build()?;
            }
            Kind::MultiFactor {
                steps,
                factor,
                cur_step_ind,
                ..
            } => {
                MultiFactor {
                    steps: steps.clone(),
                    factor: *factor,
                    base_lr: u.warmup_final_lr,
                    warmup: u.warmup,
                }
                .build()?;
                if *cur_step_ind > steps.len() {
                    return invalid(format!(
                        "cur_step_ind ({cur_step_ind}) is past the {} milestones",
                        steps.len()
                    ));
                }
            }
            Kind::Poly { decay, pwr } => {
                finite("pwr", *pwr)?;
                decay.check(u.warmup)?;
            }
            Kind::Cosine { decay } => decay.check(u.warmup)?,
        }
        Ok(scheduler)
    }
}

/// `decays` iterations of `lr = max(lr·factor, floor)` (MXNet's loop), stopping once the
/// value no longer changes: the remaining iterations would reproduce it, except that a
/// negative factor flips the sign of a zero.
fn factor_decays(mut lr: f64, factor: f64, floor: f64, decays: u64) -> f64 {
    for done in 1..=decays {
        let before = lr;
        let after = before * factor;
        lr = if after < floor { floor } else { after };
        if lr.is_nan() && before.is_nan() {
            return lr;
        }
        if lr == before {
            if lr == 0.0 && (decays - done) % 2 == 1 && factor.is_sign_negative() {
                lr *= factor;
            }
            return lr;
        }
    }
    lr
}

fn check_factor(factor: f64) -> Result<()> {
    if factor > 1.0 {
        return invalid(format!(
            "factor must be at most 1 so the rate decreases, got {factor}"
        ));
    }
    finite("factor", factor)
}

fn finite(name: &str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        invalid(format!("{name} must be a finite number, got {value}"))
    }
}

fn invalid<T>(why: String) -> Result<T> {
    Err(Error::Schedule(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_closed_form_equals_the_loop() {
        let config = Factor {
            factor: 0.9,
            base_lr: 0.1,
            ..Factor::new(2)
        };
        let mut fast = config.build().unwrap();
        let (mut lr, mut count) = (0.1_f64, 0_u64);
        for n in [5, 1, 10, 3, 10, 25, 7, 1000] {
            while n > count + 2 {
                count += 2;
                lr = (lr * 0.9).max(1e-8);
            }
            assert_eq!(fast.lr(n), lr, "n = {n}");
            assert_eq!(fast.count(), Some(count));
        }
        // A huge count returns at once: the floor stops the loop.
        assert_eq!(fast.lr(u64::MAX), 1e-8);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert!(Factor::new(0).build().is_err());
        assert!(Factor {
            stop_factor_lr: f64::NAN,
            ..Factor::new(1)
        }
        .build()
        .is_err());
        let warmup = Warmup {
            steps: 2,
            begin_lr: 1.0,
            mode: WarmupMode::Linear,
        };
        assert!(Cosine {
            warmup,
            ..Cosine::new(4)
        }
        .build()
        .is_err());
        assert!(Poly::new(0).build().is_err());
        assert!(MultiFactor::new(vec![]).build().is_err());
        assert!(MultiFactor::new(vec![0, 2]).build().is_err());
    }
}
