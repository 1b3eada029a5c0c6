//! Nadam (MXNet `nadam`).
//!
//! A chain of NDArray operations in MXNet's Python: every operation rounds to the array
//! type and every scalar (`1 − β1`, the momentum schedule `μt = β1·(1 − 0.5·0.96^(t·sd))`,
//! the bias corrections) is computed in `f64` before reaching the arrays. The running
//! product `m_schedule` belongs to the optimizer, not to a tensor: it is advanced on every
//! update of every index, so the caller hands in its value after this tensor's factor
//! ([`Step::schedule`]).

use crate::real::Elem;
use crate::rule::{scalar, PyClip, Rule, Step};
use crate::Result;

/// Nadam's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, schedule_decay = 0.004`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::nadam::Nadam, rule::Step};
/// let hyper = Nadam { rescale_grad: 0.5, ..Nadam::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// let mut s1 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0, &mut s1])?);
/// assert!(w[0] != 1.0);
/// let bad = Nadam { rescale_grad: f64::NAN, ..Nadam::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Nadam {
    /// Decay of the first moment, `β1`, and the scale of the momentum schedule.
    pub beta1: f64,
    /// Decay of the second moment, `β2`.
    pub beta2: f64,
    /// Added to `sqrt(v̂)`.
    pub epsilon: f64,
    /// How fast the momentum schedule warms up (`sd`).
    pub schedule_decay: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Python-side clip bound of `rs·g + wd·w`, applied whenever it is not `None`.
    pub clip_gradient: Option<f64>,
}

impl Default for Nadam {
    fn default() -> Self {
        Nadam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            schedule_decay: 0.004,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl Nadam {
    /// The momentum schedule's factor for update count `t`:
    /// `β1·(1 − 0.5·0.96^(t·sd))`, in `f64` as MXNet's Python computes it.
    #[must_use]
    pub fn momentum(&self, t: i64) -> f64 {
        self.beta1 * (1.0 - 0.5 * 0.96_f64.powf(t as f64 * self.schedule_decay))
    }

    /// The update of one tensor at one step; `step.schedule` is the optimizer's
    /// `m_schedule` after this tensor's factor [`Nadam::momentum`]`(t)`.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter (or a scalar
    /// derived from them) that is NaN or not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<NadamRule<E>> {
        scalar::<f64>("schedule_decay", self.schedule_decay)?;
        scalar::<f64>("schedule", step.schedule)?;
        let momentum = self.momentum(step.t);
        let momentum_next = self.momentum(step.t + 1);
        let schedule_next = step.schedule * momentum_next;
        let bias_v = 1.0 - self.beta2.powf(step.t as f64);
        Ok(NadamRule {
            rs: scalar("rescale_grad", self.rescale_grad)?,
            wd: scalar("wd", step.wd)?,
            clip: PyClip::new(self.clip_gradient)?,
            beta1: scalar("beta1", self.beta1)?,
            one_minus_beta1: scalar("beta1", 1.0 - self.beta1)?,
            beta2: scalar("beta2", self.beta2)?,
            one_minus_beta2: scalar("beta2", 1.0 - self.beta2)?,
            bias_g: scalar("schedule", 1.0 - step.schedule)?,
            bias_m: scalar("schedule", 1.0 - schedule_next)?,
            bias_v: scalar("beta2", bias_v)?,
            one_minus_momentum: scalar("beta1", 1.0 - momentum)?,
            momentum_next: scalar("beta1", momentum_next)?,
            lr: scalar("lr", step.lr)?,
            epsilon: scalar("epsilon", self.epsilon)?,
        })
    }
}

/// `ĝ = clip(rs·g + wd·w)`; `m' = m·β1 + (1−β1)·ĝ`; `v' = v·β2 + (1−β2)·ĝ·ĝ`;
/// `m̄ = (1−μt)·ĝ/(1−Π) + μt1·m'/(1−Π·μt1)`; `w' = w − lr·m̄/(sqrt(v'/(1−β2^t)) + ε)`,
/// `Π` being the schedule product after this step's factor.
#[derive(Clone, Copy, Debug)]
pub struct NadamRule<E> {
    rs: E,
    wd: E,
    clip: PyClip<E>,
    beta1: E,
    one_minus_beta1: E,
    beta2: E,
    one_minus_beta2: E,
    /// `1 − Π`, dividing the gradient.
    bias_g: E,
    /// `1 − Π·μt1`, dividing the first moment.
    bias_m: E,
    /// `1 − β2^t`, dividing the second moment.
    bias_v: E,
    one_minus_momentum: E,
    momentum_next: E,
    lr: E,
    epsilon: E,
}

impl<E: Elem> Rule<E, 2> for NadamRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [m, v]: [E; 2]) -> (E, [E; 2]) {
        let g = self.clip.of(g * self.rs + w * self.wd);
        let m = m * self.beta1 + self.one_minus_beta1 * g;
        let v = v * self.beta2 + self.one_minus_beta2 * g * g;
        let g_prime = g / self.bias_g;
        let m_prime = m / self.bias_m;
        let v_prime = v / self.bias_v;
        let m_bar = self.one_minus_momentum * g_prime + self.momentum_next * m_prime;
        (
            w - self.lr * m_bar / (v_prime.sqrt() + self.epsilon),
            [m, v],
        )
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<2> for NadamRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "nadam",
        fields: &[
            "rs",
            "wd",
            "clip_on",
            "clip",
            "beta1",
            "one_minus_beta1",
            "beta2",
            "one_minus_beta2",
            "bias_g",
            "bias_m",
            "bias_v",
            "one_minus_momentum",
            "momentum_next",
            "lr",
            "epsilon",
        ],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = clip_if(g * h.rs + w * h.wd, h.clip_on, h.clip);
    let m = (*s)[0] * h.beta1 + h.one_minus_beta1 * x;
    let v = (*s)[1] * h.beta2 + h.one_minus_beta2 * x * x;
    let g_prime = x / h.bias_g;
    let m_prime = m / h.bias_m;
    let v_prime = v / h.bias_v;
    let m_bar = h.one_minus_momentum * g_prime + h.momentum_next * m_prime;
    (*s)[0] = m;
    (*s)[1] = v;
    return w - h.lr * m_bar / (sqrt(v_prime) + h.epsilon);
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
            self.one_minus_beta2,
            self.bias_g,
            self.bias_m,
            self.bias_v,
            self.one_minus_momentum,
            self.momentum_next,
            self.lr,
            self.epsilon,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_matches_hand_computation_in_f64() {
        let nadam = Nadam::default();
        let mu1 = 0.9 * (1.0 - 0.5 * 0.96_f64.powf(0.004));
        let mu2 = 0.9 * (1.0 - 0.5 * 0.96_f64.powf(2.0 * 0.004));
        assert_eq!(nadam.momentum(1), mu1);
        let step = Step {
            schedule: mu1,
            ..Step::new(0.001, 0.0, 1)
        };
        let (w, [m, v]) = nadam.at::<f64>(step).unwrap().apply(1.0, 0.5, [0.0, 0.0]);
        let expect_m = (1.0 - 0.9) * 0.5;
        let expect_v = (1.0 - 0.999) * 0.5 * 0.5;
        assert_eq!((m, v), (expect_m, expect_v));
        let m_bar = (1.0 - mu1) * (0.5 / (1.0 - mu1)) + mu2 * (expect_m / (1.0 - mu1 * mu2));
        let v_hat = expect_v / (1.0 - 0.999);
        assert_eq!(w, 1.0 - 0.001 * m_bar / (v_hat.sqrt() + 1e-8));
    }

    #[test]
    fn the_schedule_changes_the_step() {
        let nadam = Nadam::default();
        let at = |schedule| {
            let step = Step {
                schedule,
                ..Step::new(0.001, 0.0, 1)
            };
            nadam.at::<f32>(step).unwrap().apply(1.0, 0.5, [0.0, 0.0]).0
        };
        assert_ne!(at(nadam.momentum(1)), at(nadam.momentum(1).powi(3)));
    }

    #[test]
    fn non_finite_schedule_decay_is_rejected() {
        let nadam = Nadam {
            schedule_decay: f64::NAN,
            ..Nadam::default()
        };
        let err = nadam.at::<f32>(Step::new(0.001, 0.0, 1)).unwrap_err();
        assert!(err.to_string().contains("schedule_decay"));
    }
}
