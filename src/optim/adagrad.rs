//! AdaGrad (MXNet `adagrad`).
//!
//! MXNet has two AdaGrads that differ in more than storage:
//! * dense gradients run a chain of NDArray operations in Python (scalars converted
//!   straight to the array type, the Python-side clip whenever `clip_gradient` is not
//!   `None`, weight decay added to the step: `w + (ĝ/sqrt(h + ε) + w·wd)·(−lr)`);
//! * row-sparse gradients run the C++ kernel `_sparse_adagrad_update` (`f32`-parsed
//!   parameters, the kernel clip, only the gradient's rows) which has no weight decay:
//!   MXNet refuses `wd ≠ 0` there, and so does [`AdaGrad::rows_at`].
//!
//! The history starts at zero; `ε` is added under the square root at every step.

use crate::real::Elem;
use crate::rule::{param, scalar, PyClip, Rescale, Rule, Step};
use crate::{Error, Result};

/// AdaGrad's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `epsilon = 1e-7`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::adagrad::AdaGrad, rule::Step};
/// let hyper = AdaGrad { rescale_grad: 0.5, ..AdaGrad::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0])?);
/// assert!(w[0] != 1.0);
/// let bad = AdaGrad { rescale_grad: f64::NAN, ..AdaGrad::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdaGrad {
    /// Added to the history under the square root (the class's `eps`).
    pub epsilon: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Clip bound of `rs·g`: the Python-side clip on the dense path; on the sparse path the
    /// kernel clip, which MXNet applies only for a positive bound.
    pub clip_gradient: Option<f64>,
}

impl Default for AdaGrad {
    fn default() -> Self {
        AdaGrad {
            epsilon: 1e-7,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl AdaGrad {
    /// The dense update (MXNet's Python operation chain) of one tensor at one step.
    ///
    /// # Errors
    /// [`Error::NotFinite`] for a hyper-parameter that is NaN or not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<AdaGradRule<E>> {
        Ok(AdaGradRule {
            rs: scalar("rescale_grad", self.rescale_grad)?,
            clip: PyClip::new(self.clip_gradient)?,
            epsilon: scalar("epsilon", self.epsilon)?,
            wd: scalar("wd", step.wd)?,
            neg_lr: scalar("lr", -step.lr)?,
        })
    }

    /// The row-sparse kernel (`_sparse_adagrad_update`): only the gradient's rows.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a nonzero weight decay (MXNet has no such kernel);
    /// [`Error::NotFinite`] as [`AdaGrad::at`].
    pub fn rows_at<E: Elem>(&self, step: Step) -> Result<AdaGradRowsRule<E>> {
        if step.wd != 0.0 {
            return Err(Error::Unsupported {
                kernel: "the row-sparse AdaGrad kernel",
                name: "wd",
                value: step.wd,
                why: "it has no weight decay; use wd=0 or a dense gradient",
            });
        }
        // MXNet hands the kernel a clip bound only when it is truthy.
        let clip = self.clip_gradient.filter(|&c| c != 0.0);
        Ok(AdaGradRowsRule {
            rescale: Rescale::new(self.rescale_grad, clip)?,
            epsilon: param("epsilon", self.epsilon)?,
            lr: step.lr()?,
        })
    }
}

/// Dense: `ĝ = clip(rs·g)`; `h' = h + ĝ·ĝ`; `w' = w + (ĝ/sqrt(h' + ε) + w·wd)·(−lr)`.
#[derive(Clone, Copy, Debug)]
pub struct AdaGradRule<E> {
    rs: E,
    clip: PyClip<E>,
    epsilon: E,
    wd: E,
    neg_lr: E,
}

impl<E: Elem> Rule<E, 1> for AdaGradRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [h]: [E; 1]) -> (E, [E; 1]) {
        let g = self.clip.of(g * self.rs);
        let h = h + g * g;
        let div = g / (h + self.epsilon).sqrt();
        (w + (div + w * self.wd) * self.neg_lr, [h])
    }
}

/// Row-sparse kernel: `ĝ = kclip(rs·g)`; `h' = h + ĝ·ĝ`; `w' = w − (ĝ/sqrt(h' + ε))·lr`.
#[derive(Clone, Copy, Debug)]
pub struct AdaGradRowsRule<E> {
    rescale: Rescale<E>,
    epsilon: E,
    lr: E,
}

impl<E: Elem> Rule<E, 1> for AdaGradRowsRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [h]: [E; 1]) -> (E, [E; 1]) {
        let g = self.rescale.of(g);
        let h = h + g * g;
        (w - g / (h + self.epsilon).sqrt() * self.lr, [h])
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<1> for AdaGradRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "adagrad",
        fields: &["rs", "clip_on", "clip", "epsilon", "wd", "neg_lr"],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = clip_if(g * h.rs, h.clip_on, h.clip);
    let hist = (*s)[0] + x * x;
    let div = x / sqrt(hist + h.epsilon);
    (*s)[0] = hist;
    return w + (div + w * h.wd) * h.neg_lr;
}
"],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.clip.bound());
        vec![self.rs, on, c, self.epsilon, self.wd, self.neg_lr]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_step_adds_weight_decay_and_scales_by_minus_lr() {
        let r = AdaGrad::default()
            .at::<f64>(Step::new(0.1, 0.01, 1))
            .unwrap();
        let (w, [h]) = r.apply(2.0, 0.5, [0.0]);
        assert_eq!(h, 0.25);
        assert_eq!(
            w,
            2.0 + (0.5 / (0.25_f64 + 1e-7).sqrt() + 2.0 * 0.01) * -0.1
        );
    }

    #[test]
    fn dense_clip_zero_freezes_history_but_not_weight_decay() {
        let adagrad = AdaGrad {
            clip_gradient: Some(0.0),
            ..AdaGrad::default()
        };
        let r = adagrad.at::<f32>(Step::new(0.1, 0.5, 1)).unwrap();
        let (w, [h]) = r.apply(1.0, 3.0, [0.0]);
        assert_eq!(h, 0.0);
        assert_eq!(w, 1.0 + (0.0 + 0.5) * -0.1_f32);
    }

    #[test]
    fn sparse_kernel_ignores_a_zero_clip_and_rejects_weight_decay() {
        let adagrad = AdaGrad {
            clip_gradient: Some(0.0),
            ..AdaGrad::default()
        };
        let r = adagrad.rows_at::<f32>(Step::new(0.1, 0.0, 1)).unwrap();
        let (_, [h]) = r.apply(1.0, 3.0, [0.0]);
        assert_eq!(h, 9.0);
        let err = adagrad.rows_at::<f32>(Step::new(0.1, 0.01, 1)).unwrap_err();
        assert!(matches!(err, Error::Unsupported { name: "wd", .. }));
    }

    #[test]
    fn sparse_kernel_parses_parameters_as_f32() {
        let r = AdaGrad::default()
            .rows_at::<f64>(Step::new(0.1, 0.0, 1))
            .unwrap();
        let (w, [h]) = r.apply(1.0, 0.5, [0.0]);
        let (eps, lr) = (f64::from(1e-7_f32), f64::from(0.1_f32));
        assert_eq!(w, 1.0 - 0.5 / (h + eps).sqrt() * lr);
    }
}
