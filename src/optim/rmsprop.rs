//! RMSProp (MXNet `rmsprop`), plain (Tieleman & Hinton) and centered (Graves).
//!
//! Weight decay joins the gradient before the clip, `ε` sits inside the square root, and
//! the optional weight clip (`clip_weights`) bounds the new weight. MXNet keeps the states
//! in `float32` whatever the weight's type; the rules are generic all the same (the
//! multi-precision path runs them on the `f32` master copy).

use crate::real::{kclip, Elem};
use crate::rule::{bound, param, Rule, Step};
use crate::Result;

/// RMSProp's hyper-parameters, with the defaults of MXNet 1.6's `RMSProp` class (the
/// class always passes its `gamma1 = 0.9`; the operators' own default, 0.95, never shows).
///
/// Defaults: `gamma1 = 0.9, gamma2 = 0.9, epsilon = 1e-8, clip_weights = None`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::rmsprop::RmsProp, rule::Step};
/// let hyper = RmsProp { rescale_grad: 0.5, ..RmsProp::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0])?);
/// assert!(w[0] != 1.0);
/// let bad = RmsProp { rescale_grad: f64::NAN, ..RmsProp::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RmsProp {
    /// Decay of the running mean square `n` (and, centered, of the running mean `ḡ`).
    pub gamma1: f64,
    /// Momentum of the centered update `δ` (unused by the plain kernel).
    pub gamma2: f64,
    /// Added to the mean square inside the square root.
    pub epsilon: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Kernel clip bound (applied to `rs·g + wd·w`): `None` or negative disables it.
    pub clip_gradient: Option<f64>,
    /// Bound of the updated weight: `None` or negative disables the weight clip.
    pub clip_weights: Option<f64>,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp {
            gamma1: 0.9,
            gamma2: 0.9,
            epsilon: 1e-8,
            rescale_grad: 1.0,
            clip_gradient: None,
            clip_weights: None,
        }
    }
}

/// The constants both kernels share.
#[derive(Clone, Copy, Debug)]
struct Common<E> {
    gamma1: E,
    one_minus_gamma1: E,
    epsilon: E,
    rs: E,
    clip: Option<E>,
    clip_weights: Option<E>,
    lr: E,
    wd: E,
}

impl<E: Elem> Common<E> {
    /// `ĝ = rs·g + wd·w`, clipped when clipping.
    #[inline(always)]
    fn grad(&self, w: E, g: E) -> E {
        let g = self.rs * g + self.wd * w;
        match self.clip {
            Some(c) => kclip(g, c),
            None => g,
        }
    }

    #[inline(always)]
    fn clip_weight(&self, w: E) -> E {
        match self.clip_weights {
            Some(c) => kclip(w, c),
            None => w,
        }
    }
}

impl RmsProp {
    fn common<E: Elem>(&self, step: Step) -> Result<Common<E>> {
        let gamma1: E = param("gamma1", self.gamma1)?;
        Ok(Common {
            gamma1,
            one_minus_gamma1: E::one() - gamma1,
            epsilon: param("epsilon", self.epsilon)?,
            rs: param("rescale_grad", self.rescale_grad)?,
            clip: bound("clip_gradient", self.clip_gradient)?,
            clip_weights: bound("clip_weights", self.clip_weights)?,
            lr: step.lr()?,
            wd: step.wd()?,
        })
    }

    /// `rmsprop_update` (not centered; one state, `n`) for one tensor and step.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter that is NaN or
    /// not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<RmsPropRule<E>> {
        self.common(step).map(RmsPropRule)
    }

    /// `rmspropalex_update` (centered; states `n`, `ḡ`, `δ`) for one tensor and step.
    ///
    /// # Errors
    /// As [`RmsProp::at`].
    pub fn centered_at<E: Elem>(&self, step: Step) -> Result<RmsPropAlexRule<E>> {
        Ok(RmsPropAlexRule {
            common: self.common(step)?,
            gamma2: param("gamma2", self.gamma2)?,
        })
    }
}

/// `n' = (1−γ1)·ĝ² + γ1·n`; `w' = clip_w(w − lr·(ĝ/sqrt(n' + ε)))`.
#[derive(Clone, Copy, Debug)]
pub struct RmsPropRule<E>(Common<E>);

impl<E: Elem> Rule<E, 1> for RmsPropRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [n]: [E; 1]) -> (E, [E; 1]) {
        let c = &self.0;
        let g = c.grad(w, g);
        let n = c.one_minus_gamma1 * (g * g) + c.gamma1 * n;
        let w = w - c.lr * (g / (n + c.epsilon).sqrt());
        (c.clip_weight(w), [n])
    }
}

/// `n' = (1−γ1)·ĝ² + γ1·n`; `ḡ' = (1−γ1)·ĝ + γ1·ḡ`;
/// `δ' = γ2·δ − lr·ĝ/sqrt(n' − ḡ'² + ε)`; `w' = clip_w(w + δ')`.
#[derive(Clone, Copy, Debug)]
pub struct RmsPropAlexRule<E> {
    common: Common<E>,
    gamma2: E,
}

impl<E: Elem> Rule<E, 3> for RmsPropAlexRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [n, mean, delta]: [E; 3]) -> (E, [E; 3]) {
        let c = &self.common;
        let g = c.grad(w, g);
        let n = c.one_minus_gamma1 * g * g + c.gamma1 * n;
        let mean = c.one_minus_gamma1 * g + c.gamma1 * mean;
        let delta = self.gamma2 * delta - c.lr * g / ((n - mean * mean) + c.epsilon).sqrt();
        (c.clip_weight(w + delta), [n, mean, delta])
    }
}

/// WGSL of [`Common`]'s gradient and weight clip, shared by both RMSProp kernels.
#[cfg(feature = "wgpu")]
const COMMON_WGSL: &str = r"
fn rms_grad(w: f32, g: f32) -> f32 {
    return clip_if(h.rs * g + h.wd * w, h.clip_on, h.clip);
}
fn clip_weight(w: f32) -> f32 {
    return clip_if(w, h.cw_on, h.clip_weights);
}
";

#[cfg(feature = "wgpu")]
const COMMON_FIELDS: [&str; 10] = [
    "gamma1",
    "one_minus_gamma1",
    "epsilon",
    "rs",
    "clip_on",
    "clip",
    "cw_on",
    "clip_weights",
    "lr",
    "wd",
];

#[cfg(feature = "wgpu")]
impl Common<f32> {
    /// The values of [`COMMON_FIELDS`].
    fn hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.clip);
        let [cw_on, cw] = crate::gpu::flag(self.clip_weights);
        vec![
            self.gamma1,
            self.one_minus_gamma1,
            self.epsilon,
            self.rs,
            on,
            c,
            cw_on,
            cw,
            self.lr,
            self.wd,
        ]
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<1> for RmsPropRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "rmsprop",
        fields: &COMMON_FIELDS,
        rule: &[
            COMMON_WGSL,
            r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = rms_grad(w, g);
    let n = h.one_minus_gamma1 * (x * x) + h.gamma1 * (*s)[0];
    (*s)[0] = n;
    return clip_weight(w - h.lr * (x / sqrt(n + h.epsilon)));
}
",
        ],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        self.0.hyper()
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<3> for RmsPropAlexRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "rmsprop_centered",
        fields: &[
            COMMON_FIELDS[0],
            COMMON_FIELDS[1],
            COMMON_FIELDS[2],
            COMMON_FIELDS[3],
            COMMON_FIELDS[4],
            COMMON_FIELDS[5],
            COMMON_FIELDS[6],
            COMMON_FIELDS[7],
            COMMON_FIELDS[8],
            COMMON_FIELDS[9],
            "gamma2",
        ],
        rule: &[
            COMMON_WGSL,
            r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = rms_grad(w, g);
    let n = h.one_minus_gamma1 * x * x + h.gamma1 * (*s)[0];
    let mean = h.one_minus_gamma1 * x + h.gamma1 * (*s)[1];
    let delta = h.gamma2 * (*s)[2] - h.lr * x / sqrt((n - mean * mean) + h.epsilon);
    (*s)[0] = n;
    (*s)[1] = mean;
    (*s)[2] = delta;
    return clip_weight(w + delta);
}
",
        ],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let mut h = self.common.hyper();
        h.push(self.gamma2);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> f64 {
        f64::from(x as f32)
    }

    #[test]
    fn plain_step_puts_epsilon_inside_the_root() {
        let rms = RmsProp {
            epsilon: 0.25,
            ..RmsProp::default()
        };
        let r = rms.at::<f64>(Step::new(0.1, 0.0, 1)).unwrap();
        let (w, [n]) = r.apply(1.0, 0.5, [0.0]);
        let expect_n = (1.0 - f(0.9)) * 0.25;
        assert_eq!(n, expect_n);
        assert_eq!(w, 1.0 - f(0.1) * (0.5 / (expect_n + 0.25).sqrt()));
    }

    #[test]
    fn weight_decay_is_inside_the_gradient_clip() {
        let rms = RmsProp {
            clip_gradient: Some(0.5),
            ..RmsProp::default()
        };
        let r = rms.at::<f32>(Step::new(0.1, 10.0, 1)).unwrap();
        // rs·g + wd·w = 0.1 + 10 = 10.1, clipped to 0.5.
        let (_, [n]) = r.apply(1.0, 0.1, [0.0]);
        assert_eq!(n, (1.0 - 0.9_f32) * 0.25);
    }

    #[test]
    fn weight_clip_only_for_non_negative_bounds() {
        let clipped = RmsProp {
            clip_weights: Some(0.5),
            ..RmsProp::default()
        };
        let r = clipped.at::<f32>(Step::new(0.1, 0.0, 1)).unwrap();
        assert_eq!(r.apply(3.0, 0.1, [0.0]).0, 0.5);
        let off = RmsProp {
            clip_weights: Some(-1.0),
            ..RmsProp::default()
        };
        let r = off.at::<f32>(Step::new(0.1, 0.0, 1)).unwrap();
        assert!(r.apply(3.0, 0.1, [0.0]).0 > 2.0);
        let nan = RmsProp {
            clip_weights: Some(f64::NAN),
            ..RmsProp::default()
        };
        assert!(nan.at::<f32>(Step::new(0.1, 0.0, 1)).is_err());
    }

    #[test]
    fn centered_step_subtracts_the_squared_mean() {
        let rms = RmsProp::default();
        let r = rms.centered_at::<f64>(Step::new(0.1, 0.0, 1)).unwrap();
        let (w, [n, mean, delta]) = r.apply(1.0, 0.5, [0.0, 0.0, 0.0]);
        let g1 = f(0.9);
        assert_eq!(n, (1.0 - g1) * 0.5 * 0.5);
        assert_eq!(mean, (1.0 - g1) * 0.5);
        let expect = -(f(0.1) * 0.5) / ((n - mean * mean) + f(1e-8)).sqrt();
        assert_eq!(delta, expect);
        assert_eq!(w, 1.0 + expect);
    }
}
