//! Adam (MXNet `adam`).
//!
//! MXNet folds the bias correction into the learning rate in Python `f64`
//! (`lr·sqrt(1 − β2^t)/(1 − β1^t)`) and leaves `ε` uncorrected; weight decay joins the
//! gradient before the clip. The row-sparse kernels square the (clipped) gradient before
//! scaling it by `1 − β2`, except the lazy kernel without clipping, which keeps the dense
//! association: the three differ in the last bit, so each has its constructor.

use crate::real::{kclip, Elem};
use crate::rule::{bound, param, Rule, Step};
use crate::Result;

/// Adam's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::adam::Adam, rule::Step};
/// let hyper = Adam { rescale_grad: 0.5, ..Adam::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// let mut s1 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0, &mut s1])?);
/// assert!(w[0] != 1.0);
/// let bad = Adam { rescale_grad: f64::NAN, ..Adam::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adam {
    /// Decay of the first moment, `β1`.
    pub beta1: f64,
    /// Decay of the second moment, `β2`.
    pub beta2: f64,
    /// Added to `sqrt(v)`; not bias-corrected.
    pub epsilon: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Kernel clip bound (applied to `rs·g + wd·w`): `None` or negative disables it.
    pub clip_gradient: Option<f64>,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl Adam {
    /// The dense kernel (`adam_update`) for one tensor and step.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter that is NaN or
    /// not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<AdamRule<E>> {
        self.rule(step, false)
    }

    /// The row-sparse kernel on the gradient's rows only (`lazy_update=True`).
    ///
    /// # Errors
    /// As [`Adam::at`].
    pub fn lazy_at<E: Elem>(&self, step: Step) -> Result<AdamRule<E>> {
        self.rule(step, self.clip_gradient.is_some_and(|c| c >= 0.0))
    }

    /// The row-sparse kernel on every row (`lazy_update=False`; absent rows see `g = 0`).
    ///
    /// # Errors
    /// As [`Adam::at`].
    pub fn std_at<E: Elem>(&self, step: Step) -> Result<AdamRule<E>> {
        self.rule(step, true)
    }

    /// The learning rate with the bias correction folded in, as MXNet's Python computes
    /// it (`f64`, the correction factor first).
    #[must_use]
    pub fn corrected_lr(&self, step: Step) -> f64 {
        let t = step.t as f64;
        let correction = (1.0 - self.beta2.powf(t)).sqrt() / (1.0 - self.beta1.powf(t));
        step.lr * correction
    }

    fn rule<E: Elem>(&self, step: Step, square_first: bool) -> Result<AdamRule<E>> {
        // The learning rate itself must be finite in `E`, not only the corrected one.
        step.lr::<E>()?;
        let beta1: E = param("beta1", self.beta1)?;
        let beta2: E = param("beta2", self.beta2)?;
        let clip = bound("clip_gradient", self.clip_gradient)?;
        Ok(AdamRule {
            beta1,
            one_minus_beta1: E::one() - beta1,
            beta2,
            one_minus_beta2: E::one() - beta2,
            epsilon: param("epsilon", self.epsilon)?,
            rs: param("rescale_grad", self.rescale_grad)?,
            clip,
            lr: param("lr", self.corrected_lr(step))?,
            wd: step.wd()?,
            square_first,
        })
    }
}

/// `ĝ = clip(rs·g + wd·w)`; `m' = β1·m + (1−β1)·ĝ`; `v' = β2·v + (1−β2)·ĝ²`;
/// `w' = w − lr_t·m'/(sqrt(v') + ε)`.
#[derive(Clone, Copy, Debug)]
pub struct AdamRule<E> {
    beta1: E,
    one_minus_beta1: E,
    beta2: E,
    one_minus_beta2: E,
    epsilon: E,
    rs: E,
    clip: Option<E>,
    lr: E,
    wd: E,
    /// `(1−β2)·(ĝ·ĝ)` (the sparse kernels) instead of `((1−β2)·ĝ)·ĝ`.
    square_first: bool,
}

impl<E: Elem> Rule<E, 2> for AdamRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [m, v]: [E; 2]) -> (E, [E; 2]) {
        let mut g = g * self.rs + w * self.wd;
        if let Some(c) = self.clip {
            g = kclip(g, c);
        }
        let m = m * self.beta1 + self.one_minus_beta1 * g;
        let v = v * self.beta2
            + if self.square_first {
                self.one_minus_beta2 * (g * g)
            } else {
                self.one_minus_beta2 * g * g
            };
        (w - self.lr * m / (v.sqrt() + self.epsilon), [m, v])
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<2> for AdamRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "adam",
        fields: &[
            "beta1",
            "one_minus_beta1",
            "beta2",
            "one_minus_beta2",
            "epsilon",
            "rs",
            "clip_on",
            "clip",
            "lr",
            "wd",
            "square_first",
        ],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = clip_if(g * h.rs + w * h.wd, h.clip_on, h.clip);
    let m = (*s)[0] * h.beta1 + h.one_minus_beta1 * x;
    var sq_term: f32;
    if (h.square_first != 0.0) {
        sq_term = h.one_minus_beta2 * (x * x);
    } else {
        sq_term = h.one_minus_beta2 * x * x;
    }
    let v = (*s)[1] * h.beta2 + sq_term;
    (*s)[0] = m;
    (*s)[1] = v;
    return w - h.lr * m / (sqrt(v) + h.epsilon);
}
"],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.clip);
        vec![
            self.beta1,
            self.one_minus_beta1,
            self.beta2,
            self.one_minus_beta2,
            self.epsilon,
            self.rs,
            on,
            c,
            self.lr,
            self.wd,
            f32::from(u8::from(self.square_first)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_correction_is_folded_into_lr() {
        let adam = Adam::default();
        let lr = adam.corrected_lr(Step::new(0.1, 0.0, 2));
        let expect = 0.1 * ((1.0 - 0.999_f64.powf(2.0)).sqrt() / (1.0 - 0.9_f64.powf(2.0)));
        assert_eq!(lr, expect);
    }

    #[test]
    fn first_step_matches_hand_computation() {
        let adam = Adam::default();
        let r = adam.at::<f64>(Step::new(0.01, 0.0, 1)).unwrap();
        let (w, [m, v]) = r.apply(1.0, 0.5, [0.0, 0.0]);
        let (b1, b2) = (f64::from(0.9_f32), f64::from(0.999_f32));
        let expect_m = (1.0 - b1) * 0.5;
        let expect_v = (1.0 - b2) * 0.5 * 0.5;
        assert_eq!((m, v), (expect_m, expect_v));
        let lr = f64::from(adam.corrected_lr(Step::new(0.01, 0.0, 1)) as f32);
        let eps = f64::from(1e-8_f32);
        assert_eq!(w, 1.0 - lr * expect_m / (expect_v.sqrt() + eps));
    }
}
