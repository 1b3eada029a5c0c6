//! LAMB, layer-wise adaptive moments (MXNet `lamb`).
//!
//! MXNet runs three steps per tensor: phase 1 updates the moments and returns the
//! direction `u`; the norms `r1 = ‖w‖`, `r2 = ‖u‖` follow; phase 2 writes
//! `w − (lr·r1/r2)·u`. Here phase 1 is a [`Sweep`] that yields `u` to the norms without
//! storing it, and phase 2 ([`LambStep`]) recomputes `u` from the new moments — the same
//! expression on the same inputs, so the same bits. States and compute type are `f32`.

use crate::engine::reduce::Sweep;
use crate::real::kclip;
use crate::rule::{param, Rule, Step};
use crate::Result;
use half::f16;

/// LAMB's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `beta1 = 0.9, beta2 = 0.999, epsilon = 1e-6, bias_correction = true, lower_bound = upper_bound = None`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{optim::lamb::Lamb, rule::Step};
/// let hyper = Lamb { rescale_grad: 0.5, ..Lamb::default() };
/// assert!(hyper.direction_at(Step::new(0.01, 0.0, 1), false).is_ok());
/// let bad = Lamb { rescale_grad: f64::NAN, ..Lamb::default() };
/// assert!(bad.direction_at(Step::new(0.01, 0.0, 1), false).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lamb {
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to `√v̂`.
    pub epsilon: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Kernel clip bound: `None` or negative disables clipping.
    pub clip_gradient: Option<f64>,
    /// Divide the moments by `1 − β^t`.
    pub bias_correction: bool,
    /// Lower bound of `r1`; `None` (or negative) for none.
    pub lower_bound: Option<f64>,
    /// Upper bound of `r1`; `None` (or negative) for none.
    pub upper_bound: Option<f64>,
}

impl Default for Lamb {
    fn default() -> Self {
        Lamb {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-6,
            rescale_grad: 1.0,
            clip_gradient: None,
            bias_correction: true,
            lower_bound: None,
            upper_bound: None,
        }
    }
}

fn bound(name: &'static str, value: Option<f64>) -> Result<Option<f32>> {
    match value {
        None => Ok(None),
        Some(b) => Ok(Some(param(name, b)?).filter(|b: &f32| *b >= 0.0)),
    }
}

/// Phase 1 for one tensor and step: `u = m̂/(√v̂ + ε) + wd·w`.
#[derive(Clone, Copy, Debug)]
pub struct LambDirection {
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    epsilon: f32,
    wd: f32,
    rs: f32,
    clip: Option<f32>,
    /// `1 − β1^t` (divided in `f64`, as MXNet's kernel does) and `1 − β2^t`.
    correction: Option<(f64, f32)>,
    /// The multi-precision kernel rounds `g·rs` to `f16` before clipping.
    half_scaled_grad: bool,
}

impl LambDirection {
    /// `u` from the weight and the updated moments.
    #[inline(always)]
    fn direction(&self, w: f32, m: f32, v: f32) -> f32 {
        let ratio = match self.correction {
            Some((c1, c2)) => {
                #[allow(clippy::cast_possible_truncation)]
                let m_hat = (f64::from(m) / c1) as f32;
                m_hat / ((v / c2).sqrt() + self.epsilon)
            }
            None => m / (v.sqrt() + self.epsilon),
        };
        ratio + self.wd * w
    }
}

impl Sweep<f32, 2> for LambDirection {
    #[inline(always)]
    fn sweep(&self, w: f32, g: f32, [m, v]: [f32; 2]) -> ([f32; 2], f32) {
        let mut g = g * self.rs;
        if self.half_scaled_grad {
            g = f16::from_f32(g).to_f32();
        }
        if let Some(c) = self.clip {
            g = kclip(g, c);
        }
        let m = self.beta1 * m + self.one_minus_beta1 * g;
        let v = self.beta2 * v + (self.one_minus_beta2 * g) * g;
        ([m, v], self.direction(w, m, v))
    }
}

/// Phase 2 for one tensor: `w' = w − lr*·u`, `u` recomputed from the phase-1 moments.
#[derive(Clone, Copy, Debug)]
pub struct LambStep {
    direction: LambDirection,
    lr: f32,
}

impl Rule<f32, 2> for LambStep {
    #[inline(always)]
    fn apply(&self, w: f32, _g: f32, s: [f32; 2]) -> (f32, [f32; 2]) {
        let [m, v] = s;
        (w - self.lr * self.direction.direction(w, m, v), s)
    }
}

impl Lamb {
    /// Phase 1 for one step (`lamb_update_phase1`, or `mp_lamb_update_phase1` when
    /// `mixed`).
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a NaN or infinite scalar.
    pub fn direction_at(&self, step: Step, mixed: bool) -> Result<LambDirection> {
        let beta1: f32 = param("beta1", self.beta1)?;
        let beta2: f32 = param("beta2", self.beta2)?;
        // The kernel raises the f32 betas to the integer power in double.
        #[allow(clippy::cast_possible_truncation)]
        let power = |beta: f32| f64::from(beta).powf(step.t as f64) as f32;
        let correction = self
            .bias_correction
            .then(|| (1.0 - f64::from(power(beta1)), 1.0 - power(beta2)));
        bound("lower_bound", self.lower_bound)?;
        bound("upper_bound", self.upper_bound)?;
        let clip = match self.clip_gradient {
            Some(c) if c < 0.0 => None,
            Some(c) => Some(param("clip_gradient", c)?),
            None => None,
        };
        Ok(LambDirection {
            beta1,
            beta2,
            one_minus_beta1: 1.0 - beta1,
            one_minus_beta2: 1.0 - beta2,
            epsilon: param("epsilon", self.epsilon)?,
            wd: step.wd()?,
            rs: param("rescale_grad", self.rescale_grad)?,
            clip,
            correction,
            half_scaled_grad: mixed,
        })
    }

    /// Phase 2 given the norms `r1 = ‖w‖` and `r2 = ‖u‖`: `lr* = lr·r1*/r2`, with `r1*`
    /// bounded (bounds are ignored when absent or negative) and `lr* = lr` when either
    /// norm is zero.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a NaN or infinite scalar.
    pub fn step_at(
        &self,
        step: Step,
        direction: LambDirection,
        r1: f32,
        r2: f32,
    ) -> Result<LambStep> {
        let lr: f32 = param("lr", step.lr)?;
        let mut r1 = r1;
        // std::max / std::min argument order: a NaN r1 survives both.
        if let Some(lower) = bound("lower_bound", self.lower_bound)? {
            r1 = if r1 < lower { lower } else { r1 };
        }
        if let Some(upper) = bound("upper_bound", self.upper_bound)? {
            r1 = if upper < r1 { upper } else { r1 };
        }
        let lr = if r1 == 0.0 || r2 == 0.0 {
            lr
        } else {
            (lr * r1) / r2
        };
        Ok(LambStep { direction, lr })
    }
}

/// WGSL of LAMB's direction `u` ([`LambDirection::direction`]). The `f64` division of
/// the bias correction (`f32(m/c1)` in `f64`) becomes an `f32` division by `f32(c1)` on the
/// device (no `f64` in WGSL): the one place the GPU may differ by an ulp beyond the driver.
#[cfg(feature = "wgpu")]
pub(crate) const DIRECTION_WGSL: &str = r"
fn direction(w: f32, m: f32, v: f32) -> f32 {
    var ratio: f32;
    if (h.corr_on != 0.0) {
        let m_hat = m / h.c1;
        ratio = m_hat / (sqrt(v / h.c2) + h.epsilon);
    } else {
        ratio = m / (sqrt(v) + h.epsilon);
    }
    return ratio + h.wd * w;
}
";

/// Phase 1 in WGSL ([`LambDirection`]'s sweep): the moments, and the squares of `w` and
/// `u` for the norms; the weight is left as it is.
#[cfg(feature = "wgpu")]
pub(crate) const PHASE1_WGSL: &str = r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    var x = g * h.rs;
    if (h.half_scaled != 0.0) {
        x = unpack2x16float(pack2x16float(vec2<f32>(x, 0.0))).x;
    }
    x = clip_if(x, h.clip_on, h.clip);
    let m = h.beta1 * (*s)[0] + h.one_minus_beta1 * x;
    let v = h.beta2 * (*s)[1] + (h.one_minus_beta2 * x) * x;
    (*s)[0] = m;
    (*s)[1] = v;
    let u = direction(w, m, v);
    sq = vec2<f32>(w * w, u * u);
    return w;
}
";

/// Phase 2 in WGSL ([`LambStep`]): `w − lr'·u` with `lr' = lr·r1/r2` from the norms
/// (`prepare`, [`Lamb::step_at`]'s bounds and zero tests).
#[cfg(feature = "wgpu")]
pub(crate) const PHASE2_WGSL: &str = r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    return w - h.lr * direction(w, (*s)[0], (*s)[1]);
}
";

/// Phase 2's per-tensor learning rate from the sums of squares `norms[tensor]`.
#[cfg(feature = "wgpu")]
pub(crate) const PHASE2_PREPARE: &str = r"
    let sums = norms[tensor];
    var r1 = sqrt(sums.x);
    let r2 = sqrt(sums.y);
    if (h.lower_on != 0.0 && r1 < h.lower) { r1 = h.lower; }
    if (h.upper_on != 0.0 && h.upper < r1) { r1 = h.upper; }
    if (!(r1 == 0.0 || r2 == 0.0)) { h.lr = (h.lr * r1) / r2; }
";

/// The scalar fields of both phases ([`LambDirection::gpu_hyper`], then
/// [`Lamb::gpu_step_hyper`]).
#[cfg(feature = "wgpu")]
pub(crate) const FIELDS: &[&str] = &[
    "beta1",
    "beta2",
    "one_minus_beta1",
    "one_minus_beta2",
    "epsilon",
    "wd",
    "rs",
    "clip_on",
    "clip",
    "corr_on",
    "c1",
    "c2",
    "half_scaled",
    "lr",
    "lower_on",
    "lower",
    "upper_on",
    "upper",
];

#[cfg(feature = "wgpu")]
impl LambDirection {
    /// The direction's scalars, in the order of [`FIELDS`].
    pub(crate) fn gpu_hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.clip);
        let (corr_on, c1, c2) = match self.correction {
            #[allow(clippy::cast_possible_truncation)]
            Some((c1, c2)) => (1.0, c1 as f32, c2),
            None => (0.0, 1.0, 1.0),
        };
        vec![
            self.beta1,
            self.beta2,
            self.one_minus_beta1,
            self.one_minus_beta2,
            self.epsilon,
            self.wd,
            self.rs,
            on,
            c,
            corr_on,
            c1,
            c2,
            f32::from(u8::from(self.half_scaled_grad)),
        ]
    }
}

#[cfg(feature = "wgpu")]
impl Lamb {
    /// Phase 2's scalars after the direction's: `lr` and the bounds of `r1`.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a NaN or infinite value.
    pub(crate) fn gpu_step_hyper(&self, step: Step) -> Result<[f32; 5]> {
        let lr: f32 = param("lr", step.lr)?;
        let [lower_on, lower] = crate::gpu::flag(bound("lower_bound", self.lower_bound)?);
        let [upper_on, upper] = crate::gpu::flag(bound("upper_bound", self.upper_bound)?);
        Ok([lr, lower_on, lower, upper_on, upper])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase1_and_phase2_by_hand() {
        let lamb = Lamb {
            bias_correction: false,
            ..Lamb::default()
        };
        let dir = lamb.direction_at(Step::new(0.1, 0.0, 1), false).unwrap();
        let ([m, v], u) = dir.sweep(1.0, 2.0, [0.0, 0.0]);
        assert_eq!(m, (1.0 - 0.9_f32) * 2.0);
        assert_eq!(v, ((1.0 - 0.999_f32) * 2.0) * 2.0);
        assert_eq!(u, m / (v.sqrt() + 1e-6_f32));
        let step = lamb.step_at(Step::new(0.5, 0.0, 1), dir, 3.0, 2.0).unwrap();
        let (w, s) = step.apply(1.0, 0.0, [m, v]);
        assert_eq!(s, [m, v]);
        assert_eq!(w, 1.0 - ((0.5_f32 * 3.0) / 2.0) * u);
    }

    #[test]
    fn bounds_clamp_r1_and_zero_norms_keep_lr() {
        let lamb = Lamb {
            lower_bound: Some(4.0),
            upper_bound: Some(5.0),
            ..Lamb::default()
        };
        let dir = lamb.direction_at(Step::new(1.0, 0.0, 1), false).unwrap();
        let lr = |r1, r2| {
            lamb.step_at(Step::new(1.0, 0.0, 1), dir, r1, r2)
                .unwrap()
                .lr
        };
        assert_eq!(lr(1.0, 2.0), 2.0);
        assert_eq!(lr(9.0, 2.0), 2.5);
        assert_eq!(lr(0.0, 2.0), 2.0); // bounded r1 = 4, so not "zero"
        assert_eq!(lr(3.0, 0.0), 1.0);
        let unbounded = Lamb::default();
        let lr0 = unbounded
            .step_at(Step::new(1.0, 0.0, 1), dir, 0.0, 2.0)
            .unwrap()
            .lr;
        assert_eq!(lr0, 1.0);
        let nan = Lamb {
            beta1: f64::NAN,
            ..Lamb::default()
        };
        assert!(nan.direction_at(Step::new(1.0, 0.0, 1), false).is_err());
    }

    #[test]
    fn mixed_phase2_can_keep_or_write_the_master_copy() {
        use crate::engine::{self, Mixed};
        let lamb = Lamb::default();
        let step = Step::new(0.1, 0.0, 1);
        let dir = lamb.direction_at(step, true).unwrap();
        let rule = lamb.step_at(step, dir, 1.0, 1.0).unwrap();
        let n = 1000;
        let g = vec![f16::from_f32(0.5); n];
        for write in [false, true] {
            let mut w = vec![f16::from_f32(1.0); n];
            let mut master = vec![1.0_f32; n];
            let (mut m, mut v) = (vec![0.1_f32; n], vec![0.2_f32; n]);
            let walk = Mixed::new(&mut w, &g, &mut master, [&mut m, &mut v]).unwrap();
            let walk = if write { walk } else { walk.keeping_master() };
            engine::run(&rule, walk);
            let (expected, []) = Rule::<f32, 0>::apply(&Plain(rule), 1.0, 0.0, []);
            assert!(w.iter().all(|x| *x == f16::from_f32(expected)));
            let master_now = if write { expected } else { 1.0 };
            assert!(master.iter().all(|x| *x == master_now));
        }
    }

    /// Phase 2 on fixed moments, for the check above.
    struct Plain(LambStep);
    impl Rule<f32, 0> for Plain {
        fn apply(&self, w: f32, g: f32, []: [f32; 0]) -> (f32, [f32; 0]) {
            (self.0.apply(w, g, [0.1, 0.2]).0, [])
        }
    }
}
