//! Nesterov accelerated gradient (MXNet `nag`).
//!
//! The momentum buffer holds `−lr`-scaled velocity, and the momentum update reads the
//! weight *after* it was written (MXNet's op writes the weight in place first). Without
//! momentum MXNet runs plain `sgd_update`: see [`crate::optim::sgd::SgdUpdate`].

use crate::real::Elem;
use crate::rule::{param, Rescale, Rule, Step};
use crate::Result;

/// NAG's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `momentum = 0`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::nag::Nag, rule::Step};
/// let hyper = Nag { rescale_grad: 0.5, ..Nag::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0])?);
/// assert!(w[0] != 1.0);
/// let bad = Nag { rescale_grad: f64::NAN, ..Nag::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Nag {
    /// Momentum `μ`.
    pub momentum: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Kernel clip bound: `None` or negative disables clipping.
    pub clip_gradient: Option<f64>,
}

impl Default for Nag {
    fn default() -> Self {
        Nag {
            momentum: 0.0,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl Nag {
    /// `nag_mom_update` / `mp_nag_mom_update` for one tensor and step.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a NaN or infinite scalar.
    pub fn at<E: Elem>(&self, step: Step) -> Result<NagMom<E>> {
        let momentum: E = param("momentum", self.momentum)?;
        Ok(NagMom {
            momentum,
            momentum_plus_one: momentum + E::one(),
            lr: step.lr()?,
            wd: step.wd()?,
            rescale: Rescale::new(self.rescale_grad, self.clip_gradient)?,
        })
    }
}

/// `m1 = μ·m`; `w' = (w − m1) + ((μ+1)·(m1 − lr·(Ĝ + wd·w)))`; `m' = m1 − lr·(Ĝ + wd·w')`.
#[derive(Clone, Copy, Debug)]
pub struct NagMom<E> {
    momentum: E,
    momentum_plus_one: E,
    lr: E,
    wd: E,
    rescale: Rescale<E>,
}

impl<E: Elem> Rule<E, 1> for NagMom<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [m]: [E; 1]) -> (E, [E; 1]) {
        let g = self.rescale.of(g);
        let m1 = m * self.momentum;
        let w_new = (w - m1) + (m1 - (g + w * self.wd) * self.lr) * self.momentum_plus_one;
        (w_new, [m1 - (g + w_new * self.wd) * self.lr])
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<1> for NagMom<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "nag_mom",
        fields: &[
            "momentum",
            "momentum_plus_one",
            "lr",
            "wd",
            "rs",
            "clip_on",
            "clip",
        ],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = clip_if(g * h.rs, h.clip_on, h.clip);
    let m1 = (*s)[0] * h.momentum;
    let w_new = (w - m1) + (m1 - (x + w * h.wd) * h.lr) * h.momentum_plus_one;
    (*s)[0] = m1 - (x + w_new * h.wd) * h.lr;
    return w_new;
}
"],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.rescale.clip);
        vec![
            self.momentum,
            self.momentum_plus_one,
            self.lr,
            self.wd,
            self.rescale.rs,
            on,
            c,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn momentum_term_reads_the_new_weight() {
        let nag = Nag {
            momentum: 0.5,
            ..Nag::default()
        };
        let r = nag.at::<f64>(Step::new(0.1, 0.2, 1)).unwrap();
        let (w, [m]) = Rule::<f64, 1>::apply(&r, 1.0, 0.5, [0.25]);
        let (lr, wd, mu) = (f64::from(0.1_f32), f64::from(0.2_f32), 0.5);
        let m1 = 0.25 * mu;
        let expect_w = (1.0 - m1) + (m1 - (0.5 + 1.0 * wd) * lr) * (mu + 1.0);
        assert_eq!(w, expect_w);
        assert_eq!(m, m1 - (0.5 + expect_w * wd) * lr);
    }
}
