//! Adamax (MXNet `adamax`).
//!
//! MXNet runs Adamax as a chain of NDArray operations in Python: every operation rounds to
//! the array type, every Python float reaches the arrays as a straight conversion
//! ([`scalar`]; the clip bound aside, see [`PyClip`]), and scalar sub-expressions (`1 − β1`, `lr/(1 − β1^t)`) are computed in
//! `f64` first. Weight decay joins the gradient before the (Python-side) clip. A
//! coordinate whose `ĝ` is exactly zero at the first step divides `0/0` and becomes NaN,
//! as in MXNet.

use crate::real::Elem;
use crate::rule::{scalar, PyClip, Rule, Step};
use crate::Result;

/// Adamax's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `beta1 = 0.9, beta2 = 0.999`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::adamax::Adamax, rule::Step};
/// let hyper = Adamax { rescale_grad: 0.5, ..Adamax::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// let mut s1 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0, &mut s1])?);
/// assert!(w[0] != 1.0);
/// let bad = Adamax { rescale_grad: f64::NAN, ..Adamax::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adamax {
    /// Decay of the first moment, `β1`; also sets the bias correction `1/(1 − β1^t)`.
    pub beta1: f64,
    /// Decay of the infinity norm `u`, `β2`.
    pub beta2: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Python-side clip bound of `rs·g + wd·w`, applied whenever it is not `None`.
    pub clip_gradient: Option<f64>,
}

impl Default for Adamax {
    fn default() -> Self {
        Adamax {
            beta1: 0.9,
            beta2: 0.999,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl Adamax {
    /// The update of one tensor at one step.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter (or the
    /// bias-corrected `lr`) that is NaN or not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<AdamaxRule<E>> {
        let corrected_lr = step.lr / (1.0 - self.beta1.powf(step.t as f64));
        Ok(AdamaxRule {
            rs: scalar("rescale_grad", self.rescale_grad)?,
            wd: scalar("wd", step.wd)?,
            clip: PyClip::new(self.clip_gradient)?,
            beta1: scalar("beta1", self.beta1)?,
            one_minus_beta1: scalar("beta1", 1.0 - self.beta1)?,
            beta2: scalar("beta2", self.beta2)?,
            lr: scalar("lr", corrected_lr)?,
        })
    }
}

/// `ĝ = clip(rs·g + wd·w)`; `m' = m·β1 + (1−β1)·ĝ`; `u' = max(β2·u, |ĝ|)`;
/// `w' = w − (lr_t·m')/u'`.
#[derive(Clone, Copy, Debug)]
pub struct AdamaxRule<E> {
    rs: E,
    wd: E,
    clip: PyClip<E>,
    beta1: E,
    one_minus_beta1: E,
    beta2: E,
    /// `lr/(1 − β1^t)`, computed in `f64`.
    lr: E,
}

impl<E: Elem> Rule<E, 2> for AdamaxRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [m, u]: [E; 2]) -> (E, [E; 2]) {
        let g = self.clip.of(g * self.rs + w * self.wd);
        let m = m * self.beta1 + self.one_minus_beta1 * g;
        let u = (self.beta2 * u).max(g.abs());
        (w - self.lr * m / u, [m, u])
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<2> for AdamaxRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "adamax",
        fields: &[
            "rs",
            "wd",
            "clip_on",
            "clip",
            "beta1",
            "one_minus_beta1",
            "beta2",
            "lr",
        ],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = clip_if(g * h.rs + w * h.wd, h.clip_on, h.clip);
    let m = (*s)[0] * h.beta1 + h.one_minus_beta1 * x;
    let u = maximum(h.beta2 * (*s)[1], abs(x));
    (*s)[0] = m;
    (*s)[1] = u;
    return w - h.lr * m / u;
}
"],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.clip.bound());
        vec![
            self.rs,
            self.wd,
            on,
            c,
            self.beta1,
            self.one_minus_beta1,
            self.beta2,
            self.lr,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_on_f64_uses_full_precision_scalars() {
        let r = Adamax::default()
            .at::<f64>(Step::new(0.002, 0.0, 1))
            .unwrap();
        let (w, [m, u]) = r.apply(1.0, 0.5, [0.0, 0.0]);
        assert_eq!(m, (1.0 - 0.9) * 0.5);
        assert_eq!(u, 0.5);
        assert_eq!(w, 1.0 - (0.002 / (1.0 - 0.9)) * m / u);
    }

    #[test]
    fn zero_gradient_at_the_first_step_is_nan() {
        let r = Adamax::default()
            .at::<f32>(Step::new(0.002, 0.0, 1))
            .unwrap();
        assert!(r.apply(1.0, 0.0, [0.0, 0.0]).0.is_nan());
    }

    #[test]
    fn zero_clip_zeroes_the_gradient() {
        let adamax = Adamax {
            clip_gradient: Some(0.0),
            ..Adamax::default()
        };
        let r = adamax.at::<f32>(Step::new(0.002, 0.0, 1)).unwrap();
        let (w, [m, u]) = r.apply(1.0, 5.0, [0.0, 0.0]);
        assert_eq!((m, u), (0.0, 0.0));
        assert!(w.is_nan());
    }

    #[test]
    fn bias_correction_overflowing_f32_is_rejected() {
        let adamax = Adamax {
            beta1: 1.0,
            ..Adamax::default()
        };
        assert!(adamax.at::<f32>(Step::new(0.002, 0.0, 1)).is_err());
    }
}
