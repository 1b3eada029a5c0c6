//! Signum and signSGD (MXNet `signum`).
//!
//! With momentum MXNet runs `signum_update`, whose stored momentum is the negative of the
//! textbook one (the gradient is subtracted), and whose decoupled decay `wd_lh` shrinks the
//! weight before the signed step. Without momentum it runs `signsgd_update`, which takes
//! the sign of the raw gradient: `rescale_grad` and `clip_gradient` are ignored there.

use crate::real::Elem;
use crate::rule::{param, Rescale, Rule, Step};
use crate::Result;

/// Signum's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `momentum = 0.9, wd_lh = 0`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::signum::Signum, rule::Step};
/// let hyper = Signum { rescale_grad: 0.5, ..Signum::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0])?);
/// assert!(w[0] != 1.0);
/// let bad = Signum { rescale_grad: f64::NAN, ..Signum::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Signum {
    /// Momentum `μ`; `0` selects signSGD.
    pub momentum: f64,
    /// Decoupled weight decay applied before the signed step (momentum kernel only).
    pub wd_lh: f64,
    /// Factor applied to the gradient (ignored by signSGD).
    pub rescale_grad: f64,
    /// Kernel clip bound of `rs·g` (ignored by signSGD): `None` or negative disables it.
    pub clip_gradient: Option<f64>,
}

impl Default for Signum {
    fn default() -> Self {
        Signum {
            momentum: 0.9,
            wd_lh: 0.0,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl Signum {
    /// The momentum kernel (`signum_update`) for one tensor and step.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter that is NaN or
    /// not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<SignumRule<E>> {
        let momentum: E = param("momentum", self.momentum)?;
        let one_minus_momentum = E::one() - momentum;
        let rescale = Rescale::new(self.rescale_grad, self.clip_gradient)?;
        let lr: E = step.lr()?;
        Ok(SignumRule {
            momentum,
            decay: one_minus_momentum * step.wd()?,
            one_minus_momentum,
            scaled_rs: one_minus_momentum * rescale.rs,
            rescale,
            lr,
            shrink: E::one() - lr * param("wd_lh", self.wd_lh)?,
        })
    }

    /// The kernel without momentum (`signsgd_update`). `rescale_grad` and `clip_gradient`
    /// are still checked to be finite (MXNet parses them) but do not act.
    ///
    /// # Errors
    /// As [`Signum::at`].
    pub fn sign_at<E: Elem>(&self, step: Step) -> Result<SignSgdRule<E>> {
        Rescale::<E>::new(self.rescale_grad, self.clip_gradient)?;
        let lr: E = step.lr()?;
        Ok(SignSgdRule {
            lr,
            shrink: E::one() - lr * step.wd()?,
        })
    }
}

/// `m' = ((μ·m) − ((1−μ)·wd)·w) − (1−μ)·kclip(rs·g)` (without clipping the last term is
/// `((1−μ)·rs)·g`); `w' = (1 − lr·wd_lh)·w + lr·sgn(m')`. `m` is the negated momentum.
#[derive(Clone, Copy, Debug)]
pub struct SignumRule<E> {
    momentum: E,
    one_minus_momentum: E,
    /// `(1−μ)·wd`.
    decay: E,
    /// `(1−μ)·rs`, the unclipped kernel's gradient factor.
    scaled_rs: E,
    rescale: Rescale<E>,
    lr: E,
    /// `1 − lr·wd_lh`.
    shrink: E,
}

impl<E: Elem> Rule<E, 1> for SignumRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [m]: [E; 1]) -> (E, [E; 1]) {
        let step = match self.rescale.clip {
            Some(_) => self.one_minus_momentum * self.rescale.of(g),
            None => self.scaled_rs * g,
        };
        let m = (self.momentum * m - self.decay * w) - step;
        (self.shrink * w + self.lr * m.sgn(), [m])
    }
}

/// `w' = (1 − lr·wd)·w − lr·sgn(g)`.
#[derive(Clone, Copy, Debug)]
pub struct SignSgdRule<E> {
    lr: E,
    /// `1 − lr·wd`.
    shrink: E,
}

impl<E: Elem> Rule<E, 0> for SignSgdRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, _: [E; 0]) -> (E, [E; 0]) {
        (self.shrink * w - self.lr * g.sgn(), [])
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<1> for SignumRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "signum",
        fields: &[
            "momentum",
            "one_minus_momentum",
            "decay",
            "scaled_rs",
            "rs",
            "clip_on",
            "clip",
            "lr",
            "shrink",
        ],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    var step_term: f32;
    if (h.clip_on != 0.0) {
        step_term = h.one_minus_momentum * kclip(g * h.rs, h.clip);
    } else {
        step_term = h.scaled_rs * g;
    }
    let m = (h.momentum * (*s)[0] - h.decay * w) - step_term;
    (*s)[0] = m;
    return h.shrink * w + h.lr * sgn(m);
}
"],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.rescale.clip);
        vec![
            self.momentum,
            self.one_minus_momentum,
            self.decay,
            self.scaled_rs,
            self.rescale.rs,
            on,
            c,
            self.lr,
            self.shrink,
        ]
    }
}
#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<0> for SignSgdRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "signsgd",
        fields: &["lr", "shrink"],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    return h.shrink * w - h.lr * sgn(g);
}
"],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        vec![self.lr, self.shrink]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signsgd_ignores_rescale_and_clip() {
        let flipped = Signum {
            momentum: 0.0,
            rescale_grad: -3.0,
            clip_gradient: Some(0.1),
            ..Signum::default()
        };
        let plain = Signum::default();
        let step = Step::new(0.1, 0.0, 1);
        let a = flipped.sign_at::<f32>(step).unwrap().apply(1.0, 0.5, []);
        let b = plain.sign_at::<f32>(step).unwrap().apply(1.0, 0.5, []);
        assert_eq!(a, b);
        assert_eq!(a.0, 1.0 - 0.1_f32);
    }

    #[test]
    fn momentum_state_is_negated() {
        let signum = Signum::default();
        let rule = signum.at::<f64>(Step::new(0.1, 0.0, 1)).unwrap();
        let (w, [m]) = rule.apply(1.0, 2.0, [0.0]);
        assert!(m < 0.0, "a positive gradient leaves a negative state");
        assert_eq!(w, 1.0 - f64::from(0.1_f32));
    }
}
