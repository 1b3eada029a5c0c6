//! DCASGD, delay-compensated SGD (MXNet `dcasgd`).
//!
//! A Python-side optimizer in MXNet: every operation is one NDArray op in the weight's
//! dtype with Python floats converted straight to it, and the clip is `pyclip`. Its one
//! state array is the previous weight. MXNet 1.6 fails for any non-zero momentum, so
//! there is no momentum rule here (the Python class rejects it).

use crate::real::{pyclip, Elem};
use crate::rule::{param, scalar, Rule, Step};
use crate::Result;

/// DCASGD's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `lamda = 0.04`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::dcasgd::Dcasgd, rule::Step};
/// let hyper = Dcasgd { rescale_grad: 0.5, ..Dcasgd::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0])?);
/// assert!(w[0] != 1.0);
/// let bad = Dcasgd { rescale_grad: f64::NAN, ..Dcasgd::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dcasgd {
    /// Strength `λ` of the delay compensation `λ·ĝ²·(w − w_prev)`.
    pub lamda: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// `pyclip` bound of `rs·g` (the `clip` operator parses it as `f32`, unlike the
    /// other scalars); any value (zero and negatives included) clips.
    pub clip_gradient: Option<f64>,
}

impl Default for Dcasgd {
    fn default() -> Self {
        Dcasgd {
            lamda: 0.04,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl Dcasgd {
    /// The update for one tensor and step.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter that is NaN or
    /// not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<DcasgdRule<E>> {
        let clip = self
            .clip_gradient
            .map(|c| param("clip_gradient", c))
            .transpose()?;
        Ok(DcasgdRule {
            rs: scalar("rescale_grad", self.rescale_grad)?,
            clip,
            lamda: scalar("lamda", self.lamda)?,
            neg_lr: scalar("lr", -step.lr)?,
            wd: scalar("wd", step.wd)?,
        })
    }
}

/// `ĝ = pyclip(g·rs)`; `w' = w + ((ĝ + w·wd) + ((ĝ·λ)·ĝ)·(w − w_prev))·(−lr)`;
/// `w_prev' = w`.
#[derive(Clone, Copy, Debug)]
pub struct DcasgdRule<E> {
    rs: E,
    clip: Option<E>,
    lamda: E,
    neg_lr: E,
    wd: E,
}

impl<E: Elem> Rule<E, 1> for DcasgdRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [previous]: [E; 1]) -> (E, [E; 1]) {
        let mut g = g * self.rs;
        if let Some(c) = self.clip {
            g = pyclip(g, c);
        }
        let compensation = (g * self.lamda * g) * (w - previous);
        let delta = ((g + w * self.wd) + compensation) * self.neg_lr;
        (w + delta, [w])
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<1> for DcasgdRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "dcasgd",
        fields: &["rs", "clip_on", "clip", "lamda", "neg_lr", "wd"],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = clip_if(g * h.rs, h.clip_on, h.clip);
    let compensation = (x * h.lamda * x) * (w - (*s)[0]);
    let delta = ((x + w * h.wd) + compensation) * h.neg_lr;
    (*s)[0] = w;
    return w + delta;
}
"],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.clip);
        vec![self.rs, on, c, self.lamda, self.neg_lr, self.wd]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_weight_becomes_the_pre_update_weight() {
        let rule = Dcasgd::default().at::<f64>(Step::new(0.1, 0.0, 1)).unwrap();
        let (w, [previous]) = rule.apply(2.0, 0.5, [1.0]);
        assert_eq!(previous, 2.0);
        assert_eq!(w, 2.0 + (0.5 + (0.5 * 0.04 * 0.5) * 1.0) * -0.1);
    }
}
