//! LBSGD, large-batch SGD (MXNet `lbsgd`).
//!
//! A Python-side optimizer in MXNet: gradients are accumulated over `batch_scale` calls,
//! and every `batch_scale`-th call runs SGD's kernels (`sgd_update`, or `sgd_mom_update`
//! with momentum) on the mean gradient at a learning rate scaled by a warm-up multiplier.
//! This module holds the hyper-parameters and the multipliers; the accumulation lives in
//! [`crate::optimizer`].

use crate::optim::sgd::Sgd;
use crate::{Error, Result};

/// How LBSGD's learning-rate multiplier warms up (`warmup_strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum WarmupStrategy {
    /// `1 + (M−1)·nup/N` (`"linear"`, MXNet's default).
    #[default]
    Linear,
    /// `1 + (M−1)·(nup/N)²` (`"power2"`).
    Power2,
    /// `1 + (M−1)·√(nup/N)` (`"sqrt"`).
    Sqrt,
    /// A LARS-like ratio of the weight and mean-gradient norms, clipped to `[0.01, 100]`
    /// (`"lars"`).
    Lars,
    /// Multiplier 1 during the warm-up (any other string in MXNet).
    Constant,
}

impl WarmupStrategy {
    /// The strategy MXNet's string names; any unknown string means [`WarmupStrategy::Constant`].
    #[must_use]
    pub fn from_name(name: &str) -> WarmupStrategy {
        match name {
            "linear" => WarmupStrategy::Linear,
            "power2" => WarmupStrategy::Power2,
            "sqrt" => WarmupStrategy::Sqrt,
            "lars" => WarmupStrategy::Lars,
            _ => WarmupStrategy::Constant,
        }
    }
}

/// LBSGD's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `momentum = 0`, `rescale_grad = 1`, `clip_gradient = None`,
/// `warmup_strategy = Linear`, `warmup_epochs = 5`, `batch_scale = 1`,
/// `updates_per_epoch = 32`, `begin_epoch = 0`.
///
/// ```
/// use mxopt::optim::lbsgd::{Lbsgd, WarmupStrategy};
/// let lbsgd = Lbsgd { batch_scale: 4, warmup_epochs: 1, updates_per_epoch: 10, ..Lbsgd::default() };
/// assert_eq!(lbsgd.multiplier(5), 1.0 + 3.0 * 5.0 / 10.0);
/// assert_eq!(lbsgd.multiplier(10), 4.0); // warm-up over
/// assert!(Lbsgd { batch_scale: 0, ..Lbsgd::default() }.check().is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lbsgd {
    /// Momentum; `0` keeps no momentum buffer.
    pub momentum: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Kernel clip bound: `None` (or `0`: MXNet passes only a truthy bound) for none.
    pub clip_gradient: Option<f64>,
    /// How the multiplier warms up.
    pub warmup_strategy: WarmupStrategy,
    /// Epochs of warm-up.
    pub warmup_epochs: u64,
    /// Gradients accumulated per weight update, and the final multiplier.
    pub batch_scale: u64,
    /// Accumulated steps per epoch.
    pub updates_per_epoch: u64,
    /// The epoch training starts at: the accumulation count starts past it.
    pub begin_epoch: u64,
}

impl Default for Lbsgd {
    fn default() -> Self {
        Lbsgd {
            momentum: 0.0,
            rescale_grad: 1.0,
            clip_gradient: None,
            warmup_strategy: WarmupStrategy::Linear,
            warmup_epochs: 5,
            batch_scale: 1,
            updates_per_epoch: 32,
            begin_epoch: 0,
        }
    }
}

impl Lbsgd {
    /// Checks what the kernels do not: a positive `batch_scale`, and that the epoch
    /// products do not overflow.
    ///
    /// # Errors
    /// [`Error::Unsupported`] as described.
    pub fn check(&self) -> Result<()> {
        let unsupported = |name, value: u64, why| Error::Unsupported {
            kernel: "lbsgd",
            name,
            value: value as f64,
            why,
        };
        if self.batch_scale == 0 {
            return Err(unsupported("batch_scale", 0, "it must be positive"));
        }
        let too_large = "the epoch count times updates_per_epoch must fit in 63 bits";
        for (name, epochs) in [
            ("warmup_epochs", self.warmup_epochs),
            ("begin_epoch", self.begin_epoch),
        ] {
            match epochs.checked_mul(self.updates_per_epoch) {
                Some(n) if i64::try_from(n).is_ok() => {}
                _ => return Err(unsupported(name, epochs, too_large)),
            }
        }
        Ok(())
    }

    /// The accumulation count a fresh accumulator starts past
    /// (`begin_epoch·updates_per_epoch`).
    #[must_use]
    pub fn init_updates(&self) -> u64 {
        self.begin_epoch.saturating_mul(self.updates_per_epoch)
    }

    /// The warm-up multiplier after `nup` accumulated steps (strategies other than
    /// [`WarmupStrategy::Lars`]; that one gives 1 here), in Python `f64`.
    #[must_use]
    pub fn multiplier(&self, nup: u64) -> f64 {
        let nwup = self.warmup_epochs.saturating_mul(self.updates_per_epoch);
        let maxmult = self.batch_scale as f64;
        if nup >= nwup {
            return maxmult;
        }
        if nwup <= 1 {
            return 1.0;
        }
        let (nup_f, nwup_f) = (nup as f64, nwup as f64);
        match self.warmup_strategy {
            WarmupStrategy::Linear => 1.0 + (maxmult - 1.0) * nup_f / nwup_f,
            // Python multiplies the integers first: exact below 2^53.
            WarmupStrategy::Power2 => {
                let square = |x: u64| x.checked_mul(x).map_or(x as f64 * x as f64, |s| s as f64);
                1.0 + (maxmult - 1.0) * square(nup) / square(nwup)
            }
            WarmupStrategy::Sqrt => 1.0 + (maxmult - 1.0) * (nup_f / nwup_f).sqrt(),
            WarmupStrategy::Lars | WarmupStrategy::Constant => 1.0,
        }
    }

    /// The [`WarmupStrategy::Lars`] multiplier from the squared norms of the weight and
    /// of the mean gradient: `√(w² / (g² + wd·w² + 1e-18))` clipped to `[0.01, 100]`.
    #[must_use]
    pub fn lars_multiplier(weight_sq: f64, grad_sq: f64, wd: f64) -> f64 {
        let ratio = (weight_sq / (grad_sq + wd * weight_sq + 1e-18)).sqrt();
        ratio.clamp(0.01, 100.0)
    }

    /// The SGD hyper-parameters of the update (MXNet passes a momentum only when
    /// positive and a clip bound only when truthy).
    #[must_use]
    pub fn sgd(&self) -> Sgd {
        Sgd {
            momentum: self.momentum.max(0.0),
            rescale_grad: self.rescale_grad,
            clip_gradient: self.clip_gradient.filter(|&c| c != 0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_curves_and_lars_clamp() {
        let base = Lbsgd {
            batch_scale: 3,
            warmup_epochs: 2,
            updates_per_epoch: 2,
            ..Lbsgd::default()
        };
        let at = |warmup_strategy, nup| {
            Lbsgd {
                warmup_strategy,
                ..base
            }
            .multiplier(nup)
        };
        assert_eq!(at(WarmupStrategy::Linear, 1), 1.5);
        assert_eq!(at(WarmupStrategy::Power2, 2), 1.5);
        assert_eq!(at(WarmupStrategy::Sqrt, 1), 2.0);
        assert_eq!(at(WarmupStrategy::Constant, 1), 1.0);
        assert_eq!(at(WarmupStrategy::Sqrt, 4), 3.0);
        assert_eq!(Lbsgd::lars_multiplier(1.0, 0.0, 0.0), 100.0);
        assert_eq!(Lbsgd::lars_multiplier(0.0, 1.0, 0.0), 0.01);
        assert_eq!(
            WarmupStrategy::from_name("cosine"),
            WarmupStrategy::Constant
        );
    }
}
