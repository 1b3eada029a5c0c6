//! FTML, Follow the Moving Leader (MXNet `ftml`).
//!
//! The kernel depends on the update count `t` through `β1^t` and `β2^t`, computed with the
//! C library's `pow` in the weight's type (`powf` for `f32`, and for `f16` in `f32` with
//! the result rounded). `t` itself is converted to the weight's type. Unlike every other
//! hyper-parameter, the operator declares `epsilon` as a `double`: it reaches `f64`
//! weights as MXNet parses it in double ([`double_param`]) and `f32`/`f16` weights by one
//! more conversion.

use crate::real::{kclip, Elem};
use crate::rule::{bound, double_param, param, Rule, Step};
use crate::Result;

/// FTML's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `beta1 = 0.6, beta2 = 0.999, epsilon = 1e-8`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::ftml::Ftml, rule::Step};
/// let hyper = Ftml { rescale_grad: 0.5, ..Ftml::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// let mut s1 = vec![0.0_f32; 4];
/// let mut s2 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0, &mut s1, &mut s2])?);
/// assert!(w[0] != 1.0);
/// let bad = Ftml { rescale_grad: f64::NAN, ..Ftml::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ftml {
    /// `β1`: decay of `z` and of the previous `d`.
    pub beta1: f64,
    /// `β2`: decay of the second moment `v`.
    pub beta2: f64,
    /// Added to `sqrt(v̂)` (a `double` parameter of the operator).
    pub epsilon: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Kernel clip bound (applied to `rs·g + wd·w`): `None` or negative disables it.
    pub clip_gradient: Option<f64>,
}

impl Default for Ftml {
    fn default() -> Self {
        Ftml {
            beta1: 0.6,
            beta2: 0.999,
            epsilon: 1e-8,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl Ftml {
    /// `ftml_update` for one tensor and step (`step.t` is the update count).
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter that is NaN or
    /// not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<FtmlRule<E>> {
        let beta1: E = param("beta1", self.beta1)?;
        let beta2: E = param("beta2", self.beta2)?;
        #[allow(clippy::cast_precision_loss)] // static_cast<DType>(int), as MXNet does
        let t = E::from_f64(step.t as f64);
        let lr: E = step.lr()?;
        Ok(FtmlRule {
            beta1,
            one_minus_beta1: E::one() - beta1,
            beta2,
            one_minus_beta2: E::one() - beta2,
            d_scale: (E::one() - beta1.powf(t)) / lr,
            v_correction: E::one() - beta2.powf(t),
            epsilon: double_param("epsilon", self.epsilon)?,
            rs: param("rescale_grad", self.rescale_grad)?,
            clip: bound("clip_gradient", self.clip_gradient)?,
            wd: step.wd()?,
        })
    }
}

/// `ĝ = clip(rs·g + wd·w)`; `v' = β2·v + (1−β2)·ĝ²`;
/// `d' = (1−β1^t)/lr · (sqrt(v'/(1−β2^t)) + ε)`; `z' = β1·z + (1−β1)·ĝ − (d' − β1·d)·w`;
/// `w' = −z'/d'`.
#[derive(Clone, Copy, Debug)]
pub struct FtmlRule<E> {
    beta1: E,
    one_minus_beta1: E,
    beta2: E,
    one_minus_beta2: E,
    /// `(1 − β1^t)/lr`.
    d_scale: E,
    /// `1 − β2^t`.
    v_correction: E,
    epsilon: E,
    rs: E,
    clip: Option<E>,
    wd: E,
}

impl<E: Elem> Rule<E, 3> for FtmlRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [d, v, z]: [E; 3]) -> (E, [E; 3]) {
        let mut g = self.rs * g + self.wd * w;
        if let Some(c) = self.clip {
            g = kclip(g, c);
        }
        let v = self.beta2 * v + self.one_minus_beta2 * (g * g);
        let d_new = self.d_scale * ((v / self.v_correction).sqrt() + self.epsilon);
        let z = (self.beta1 * z + self.one_minus_beta1 * g) - (d_new - self.beta1 * d) * w;
        (-z / d_new, [d_new, v, z])
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<3> for FtmlRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "ftml",
        fields: &[
            "beta1",
            "one_minus_beta1",
            "beta2",
            "one_minus_beta2",
            "d_scale",
            "v_correction",
            "epsilon",
            "rs",
            "clip_on",
            "clip",
            "wd",
        ],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = clip_if(h.rs * g + h.wd * w, h.clip_on, h.clip);
    let v = h.beta2 * (*s)[1] + h.one_minus_beta2 * (x * x);
    let d_new = h.d_scale * (sqrt(v / h.v_correction) + h.epsilon);
    let z = (h.beta1 * (*s)[2] + h.one_minus_beta1 * x) - (d_new - h.beta1 * (*s)[0]) * w;
    (*s)[0] = d_new;
    (*s)[1] = v;
    (*s)[2] = z;
    return -z / d_new;
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
            self.d_scale,
            self.v_correction,
            self.epsilon,
            self.rs,
            on,
            c,
            self.wd,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_by_hand() {
        let ftml = Ftml::default();
        let r = ftml.at::<f64>(Step::new(0.1, 0.0, 1)).unwrap();
        let (w, [d, v, z]) = r.apply(1.0, 0.5, [0.0, 0.0, 0.0]);
        let (b1, b2, lr) = (f64::from(0.6_f32), f64::from(0.999_f32), f64::from(0.1_f32));
        assert_eq!(v, (1.0 - b2) * 0.25);
        // epsilon is a double parameter: f64 weights see 1e-8 itself.
        assert_eq!(
            d,
            (1.0 - b1.powf(1.0)) / lr * ((v / (1.0 - b2.powf(1.0))).sqrt() + 1e-8)
        );
        assert_eq!(z, (1.0 - b1) * 0.5 - d);
        assert_eq!(w, -z / d);
    }

    #[test]
    fn bias_corrections_follow_t() {
        let ftml = Ftml::default();
        let r = ftml.at::<f32>(Step::new(0.1, 0.0, 3)).unwrap();
        assert_eq!(r.v_correction, 1.0 - 0.999_f32.powf(3.0));
        assert_eq!(r.d_scale, (1.0 - 0.6_f32.powf(3.0)) / 0.1);
    }

    #[test]
    fn epsilon_is_converted_directly_for_f32() {
        let ftml = Ftml {
            epsilon: 0.1,
            ..Ftml::default()
        };
        let r = ftml.at::<f32>(Step::new(0.1, 0.0, 1)).unwrap();
        assert_eq!(r.epsilon, 0.1_f64 as f32);
        let bad = Ftml {
            epsilon: 1e39,
            ..Ftml::default()
        };
        assert!(bad.at::<f32>(Step::new(0.1, 0.0, 1)).is_err());
    }
}
