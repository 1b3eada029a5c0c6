//! LBSGD, large-batch SGD (MXNet `lbsgd`).
//!
//! A Python-side optimizer in MXNet: gradients are accumulated over `batch_scale` calls,
//! and every `batch_scale`-th call runs SGD's kernels (`sgd_update`, or `sgd_mom_update`
//! with momentum) on the mean gradient at a learning rate scaled by a warm-up multiplier.
//! This module holds the hyper-parameters and the multipliers; the accumulation lives in
//! [`crate::optimizer`].

use crate::optim::sgd::Sgd;
#[cfg(feature = "wgpu")]
use crate::rule::Step;
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

    /// The accumulation count after one more gradient, from `count` so far (`0`: a
    /// fresh accumulator, which starts past [`Lbsgd::init_updates`]).
    #[must_use]
    pub fn next_count(&self, count: u64) -> u64 {
        match count {
            0 => self.init_updates().saturating_add(1),
            n => n.saturating_add(1),
        }
    }

    /// Whether the gradient that brings the count to `count` completes a batch: the mean
    /// gradient then updates the weight (other calls run MXNet's placeholder update).
    #[must_use]
    pub fn finishes(&self, count: u64) -> bool {
        count.is_multiple_of(self.batch_scale.max(1))
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

/// Where one tensor's accumulation stands in a call (the GPU path's per-tensor input;
/// the CPU optimizer derives the same from its accumulator).
#[cfg(feature = "wgpu")]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phase {
    /// The accumulator holds nothing (a fresh one, or reset by the last update): it takes
    /// `0 + g` instead of adding `g`.
    pub fresh: bool,
    /// The call completes a batch ([`Lbsgd::finishes`]): the mean gradient updates the
    /// weight.
    pub finishes: bool,
    /// The learning-rate multiplier of a finishing call ([`Lbsgd::multiplier`]); unused
    /// for [`WarmupStrategy::Lars`], whose multiplier comes from the device's norms.
    pub multiplier: f64,
}

/// The accumulator (the last state when `batch_scale > 1`): `0 + g` when fresh, else
/// `a + g`, divided by `batch_scale` in place by a finishing call, whose gradient is then
/// the mean.
#[cfg(feature = "wgpu")]
pub(crate) const MEAN_WGSL: &str = r"
fn lbsgd_mean(g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    if (!(h.scale > 1.0)) { return g; }
    var a = (*s)[NS - 1u];
    if (h.fresh != 0.0) { a = 0.0 + g; } else { a = a + g; }
    if (h.finishes != 0.0) { a = a / h.scale; }
    (*s)[NS - 1u] = a;
    if (h.finishes != 0.0) { return a; }
    return g;
}
";

/// SGD with momentum (the first state) for a finishing call with momentum, else
/// `sgd_update` (a finishing call without momentum, or MXNet's placeholder at rate 0).
#[cfg(feature = "wgpu")]
pub(crate) const APPLY_WGSL: &str = r"
fn lbsgd_apply(w: f32, grad: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    if (h.with_momentum != 0.0) {
        let m = velocity(w, grad, (*s)[0]);
        (*s)[0] = m;
        return w + m;
    }
    return w * h.decay - lr_grad(grad);
}
";

/// One pass: accumulate, then update.
#[cfg(feature = "wgpu")]
pub(crate) const RULE_WGSL: &str = r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    return lbsgd_apply(w, lbsgd_mean(g, s), s);
}
";

/// The `lars` warm-up's first pass: accumulate, and the squares of the weight and of the
/// mean gradient for the norms; the weight is left as it is.
#[cfg(feature = "wgpu")]
pub(crate) const NORMS_WGSL: &str = r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let mean = lbsgd_mean(g, s);
    sq = vec2<f32>(w * w, mean * mean);
    return w;
}
";

/// The `lars` warm-up's second pass: the update, from the mean the first pass left in
/// the accumulator.
#[cfg(feature = "wgpu")]
pub(crate) const AFTER_NORMS_WGSL: &str = r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    var grad = g;
    if (h.finishes != 0.0 && h.scale > 1.0) { grad = (*s)[NS - 1u]; }
    return lbsgd_apply(w, grad, s);
}
";

/// [`Lbsgd::lars_multiplier`] in `f32` from the sums of squares, then the rates SGD's
/// scalars derive from the learning rate (as `Sgd::mom_at` and `Sgd::single_at`
/// compute them from an `f32` rate).
#[cfg(feature = "wgpu")]
pub(crate) const LARS_PREPARE: &str = "
    if (h.lars != 0.0) {
        let sums = norms[tensor];
        var mult = sqrt(sums.x / ((sums.y + h.wd * sums.x) + 1e-18));
        if (mult < 0.01) { mult = 0.01; }
        if (mult > 100.0) { mult = 100.0; }
        h.lr = h.base_lr * mult;
        h.lr_wd = h.lr * h.wd;
        h.lr_rs = h.lr * h.rs;
        h.decay = 1.0 - h.lr * h.wd;
    }
";

/// The scalars of every LBSGD pass: SGD's velocity fields, `sgd_update`'s decay, then
/// the call's phase and the `lars` warm-up's inputs.
#[cfg(feature = "wgpu")]
pub(crate) const FIELDS: &[&str] = &[
    "momentum",
    "lr_wd",
    "lr",
    "lr_rs",
    "rs",
    "clip_on",
    "clip",
    "decay",
    "with_momentum",
    "scale",
    "fresh",
    "finishes",
    "lars",
    "base_lr",
    "wd",
];

#[cfg(feature = "wgpu")]
impl Lbsgd {
    /// One tensor's scalars ([`FIELDS`]) for a call in `phase` at `step` (before the
    /// warm-up multiplier), built by the CPU's constructors: MXNet's placeholder
    /// (`sgd_update` at rate 0, no rescale or clip) while accumulating, SGD at
    /// `lr·multiplier` when finishing.
    ///
    /// # Errors
    /// What those constructors refuse ([`crate::Error::NotFinite`] for a rate that
    /// overflows `f32`, ...).
    pub(crate) fn gpu_hyper(&self, step: Step, phase: Phase) -> Result<Vec<f32>> {
        use crate::gpu::Kernel;
        let lars = phase.finishes && self.warmup_strategy == WarmupStrategy::Lars;
        let rates = |lr: f64| -> Result<Vec<f32>> {
            let at = Step { lr, ..step };
            Ok(if !phase.finishes {
                let placeholder = Sgd {
                    momentum: 0.0,
                    rescale_grad: 1.0,
                    clip_gradient: None,
                };
                sgd_update_fields(&placeholder.single_at::<f32>(at)?.hyper())
            } else if self.momentum != 0.0 {
                let mut h = self.sgd().mom_at::<f32>(at)?.hyper();
                h.push(0.0);
                h
            } else {
                sgd_update_fields(&self.sgd().single_at::<f32>(at)?.hyper())
            })
        };
        let mut h = if !phase.finishes {
            rates(0.0)?
        } else if lars {
            // The device picks the multiplier in [0.01, 100]: both ends must be valid
            // rates; the rates derived from `lr` are rewritten by the prepare step.
            rates(step.lr * 100.0)?;
            rates(step.lr * 0.01)?;
            rates(step.lr)?
        } else {
            rates(step.lr * phase.multiplier)?
        };
        let flag = |b: bool| f32::from(u8::from(b));
        let (base_lr, wd): (f32, f32) = (step.lr()?, step.wd()?);
        h.extend_from_slice(&[
            flag(phase.finishes && self.momentum != 0.0),
            // As the CPU's divisor, `from_f64` of the count.
            (self.batch_scale as f64) as f32,
            flag(phase.fresh),
            flag(phase.finishes),
            flag(lars),
            base_lr,
            wd,
        ]);
        Ok(h)
    }
}

/// `sgd_update`'s scalars `[decay, lr, lr_rs, rs, clip_on, clip]` in [`FIELDS`]' first
/// eight places (no momentum, no `lr·wd`).
#[cfg(feature = "wgpu")]
fn sgd_update_fields(h: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0, 0.0];
    out.extend_from_slice(&h[1..]);
    out.push(h[0]);
    out
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
