//! AdaDelta (MXNet `adadelta`).
//!
//! A chain of NDArray operations in MXNet's Python (scalars converted straight to the
//! array type, `1 − ρ` computed in `f64`, the Python-side clip). There is no learning
//! rate: the step's `lr` is ignored, and weight decay is added to the step unscaled,
//! after the clip. MXNet also rescales the caller's gradient in place; this rule leaves
//! inputs alone (the numbers are the same).

use crate::real::Elem;
use crate::rule::{scalar, PyClip, Rule, Step};
use crate::Result;

/// AdaDelta's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `rho = 0.9, epsilon = 1e-5`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::adadelta::AdaDelta, rule::Step};
/// let hyper = AdaDelta { rescale_grad: 0.5, ..AdaDelta::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// let mut s1 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0, &mut s1])?);
/// assert!(w[0] != 1.0);
/// let bad = AdaDelta { rescale_grad: f64::NAN, ..AdaDelta::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdaDelta {
    /// Decay of both running averages, `ρ`.
    pub rho: f64,
    /// Added under both square roots.
    pub epsilon: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Python-side clip bound of `rs·g`, applied whenever it is not `None`.
    pub clip_gradient: Option<f64>,
}

impl Default for AdaDelta {
    fn default() -> Self {
        AdaDelta {
            rho: 0.9,
            epsilon: 1e-5,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl AdaDelta {
    /// The update of one tensor at one step (`step.lr` and `step.t` are not used).
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter that is NaN or
    /// not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<AdaDeltaRule<E>> {
        Ok(AdaDeltaRule {
            rs: scalar("rescale_grad", self.rescale_grad)?,
            clip: PyClip::new(self.clip_gradient)?,
            rho: scalar("rho", self.rho)?,
            one_minus_rho: scalar("rho", 1.0 - self.rho)?,
            epsilon: scalar("epsilon", self.epsilon)?,
            wd: scalar("wd", step.wd)?,
        })
    }
}

/// `ĝ = clip(rs·g)`; `a' = a·ρ + (1−ρ)·ĝ·ĝ`; `δ = sqrt(d + ε)/sqrt(a' + ε)·ĝ`;
/// `d' = d·ρ + (1−ρ)·δ·δ`; `w' = w − (δ + w·wd)`.
#[derive(Clone, Copy, Debug)]
pub struct AdaDeltaRule<E> {
    rs: E,
    clip: PyClip<E>,
    rho: E,
    one_minus_rho: E,
    epsilon: E,
    wd: E,
}

impl<E: Elem> Rule<E, 2> for AdaDeltaRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [acc_g, acc_delta]: [E; 2]) -> (E, [E; 2]) {
        let g = self.clip.of(g * self.rs);
        let acc_g = acc_g * self.rho + self.one_minus_rho * g * g;
        let delta = (acc_delta + self.epsilon).sqrt() / (acc_g + self.epsilon).sqrt() * g;
        let acc_delta = acc_delta * self.rho + self.one_minus_rho * delta * delta;
        (w - (delta + w * self.wd), [acc_g, acc_delta])
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<2> for AdaDeltaRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "adadelta",
        fields: &[
            "rs",
            "clip_on",
            "clip",
            "rho",
            "one_minus_rho",
            "epsilon",
            "wd",
        ],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = clip_if(g * h.rs, h.clip_on, h.clip);
    let acc_g = (*s)[0] * h.rho + h.one_minus_rho * x * x;
    let delta = sqrt((*s)[1] + h.epsilon) / sqrt(acc_g + h.epsilon) * x;
    let acc_delta = (*s)[1] * h.rho + h.one_minus_rho * delta * delta;
    (*s)[0] = acc_g;
    (*s)[1] = acc_delta;
    return w - (delta + w * h.wd);
}
"],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.clip.bound());
        vec![
            self.rs,
            on,
            c,
            self.rho,
            self.one_minus_rho,
            self.epsilon,
            self.wd,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_matches_hand_computation() {
        let r = AdaDelta::default()
            .at::<f64>(Step::new(0.0, 0.01, 1))
            .unwrap();
        let (w, [a, d]) = r.apply(2.0, 0.5, [0.0, 0.0]);
        let expect_a = (1.0 - 0.9) * 0.5 * 0.5;
        assert_eq!(a, expect_a);
        let delta = (1e-5_f64).sqrt() / (expect_a + 1e-5).sqrt() * 0.5;
        assert_eq!(d, (1.0 - 0.9) * delta * delta);
        assert_eq!(w, 2.0 - (delta + 2.0 * 0.01));
    }

    #[test]
    fn learning_rate_and_count_have_no_effect() {
        let adadelta = AdaDelta::default();
        let run = |step| {
            adadelta
                .at::<f32>(step)
                .unwrap()
                .apply(1.0, 0.5, [0.1, 0.2])
        };
        assert_eq!(run(Step::new(0.0, 0.0, 1)), run(Step::new(7.5, 0.0, 9)));
    }
}
