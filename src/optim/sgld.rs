//! SGLD, stochastic gradient Langevin dynamics (MXNet `sgld`).
//!
//! A Python-side optimizer in MXNet (NDArray ops in the weight's dtype, `pyclip`). The
//! rule here is the deterministic half of the step; the Langevin noise `N(0, sqrt(lr))`
//! is added afterwards by the engine's seeded noise walk
//! ([`Noisy`](crate::engine::Noisy)), drawn in the weight's dtype as MXNet does.

use crate::real::{pyclip, Elem};
use crate::rule::{param, scalar, Rule, Step};
use crate::Result;

/// SGLD's hyper-parameters (it has none of its own), with MXNet 1.6's defaults.
///
/// Defaults: `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{optim::sgld::Sgld, rule::Step};
/// let hyper = Sgld { rescale_grad: 0.5, ..Sgld::default() };
/// assert!(hyper.at::<f32>(Step::new(0.01, 0.0, 1)).is_ok());
/// let bad = Sgld { rescale_grad: f64::NAN, ..Sgld::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sgld {
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// `pyclip` bound of `rs·g` (the `clip` operator parses it as `f32`, unlike the
    /// other scalars); any value (zero and negatives included) clips.
    pub clip_gradient: Option<f64>,
}

impl Default for Sgld {
    fn default() -> Self {
        Sgld {
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl Sgld {
    /// The deterministic part of the update for one tensor and step.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter that is NaN or
    /// not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<SgldRule<E>> {
        let clip = self
            .clip_gradient
            .map(|c| param("clip_gradient", c))
            .transpose()?;
        Ok(SgldRule {
            rs: scalar("rescale_grad", self.rescale_grad)?,
            clip,
            // MXNet computes `-lr/2` in Python f64 before it meets the array.
            neg_half_lr: scalar("lr", -step.lr / 2.0)?,
            wd: scalar("wd", step.wd)?,
        })
    }

    /// The standard deviation of the Langevin noise: `sqrt(lr)`, in Python `f64`.
    #[must_use]
    pub fn noise_scale(step: Step) -> f64 {
        step.lr.sqrt()
    }
}

/// `ĝ = pyclip(g·rs)`; `w' = w + (ĝ + w·wd)·(−lr/2)` (noise follows, see the module).
#[derive(Clone, Copy, Debug)]
pub struct SgldRule<E> {
    rs: E,
    clip: Option<E>,
    neg_half_lr: E,
    wd: E,
}

impl<E: Elem> Rule<E, 0> for SgldRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, _: [E; 0]) -> (E, [E; 0]) {
        let mut g = g * self.rs;
        if let Some(c) = self.clip {
            g = pyclip(g, c);
        }
        (w + (g + w * self.wd) * self.neg_half_lr, [])
    }
}

/// [`SgldRule`]'s deterministic half step in WGSL.
#[cfg(feature = "wgpu")]
const HALF_STEP_WGSL: &str = r"
fn half_step(w: f32, g: f32) -> f32 {
    let x = clip_if(g * h.rs, h.clip_on, h.clip);
    return w + (x + w * h.wd) * h.neg_half_lr;
}
";

/// SGLD with the Langevin noise drawn on the device: [`SgldRule`]'s half step plus
/// `scale·z`, `z` a standard normal of the element's index under the key `(seed, stream)`
/// (see [`crate::gpu::NORMAL_WGSL`]): deterministic, and independent of how the work is
/// split into dispatches.
#[cfg(feature = "wgpu")]
#[derive(Clone, Copy, Debug)]
pub struct DeviceNoisySgld {
    rule: SgldRule<f32>,
    key: [u32; 4],
    scale: f32,
}

#[cfg(feature = "wgpu")]
impl DeviceNoisySgld {
    /// `rule` plus noise of standard deviation `scale` from the keystream
    /// `(seed, stream)` (a [`crate::init::Generator::next_stream`] pair).
    ///
    /// # Errors
    /// [`crate::Error::NotFinite`] for a scale that is NaN, infinite, negative or beyond
    /// `f32`.
    pub fn new(rule: SgldRule<f32>, seed: u64, stream: u64, scale: f64) -> Result<Self> {
        // The CPU noise's check (a negative learning rate has no square root).
        crate::engine::Noise::new(seed, stream, scale)?;
        let halves = |x: u64| [x as u32, (x >> 32) as u32];
        let [s0, s1] = halves(seed);
        let [t0, t1] = halves(stream);
        Ok(DeviceNoisySgld {
            rule,
            key: [s0, s1, t0, t1],
            scale: scalar("noise scale", scale)?,
        })
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<0> for DeviceNoisySgld {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "sgld_noise",
        fields: &[
            "rs",
            "clip_on",
            "clip",
            "neg_half_lr",
            "wd",
            "key0_lo",
            "key0_hi",
            "key1_lo",
            "key1_hi",
            "key2_lo",
            "key2_hi",
            "key3_lo",
            "key3_hi",
            "scale",
        ],
        rule: &[
            HALF_STEP_WGSL,
            crate::gpu::NORMAL_WGSL,
            r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let key = vec4<u32>(
        join16(h.key0_lo, h.key0_hi),
        join16(h.key1_lo, h.key1_hi),
        join16(h.key2_lo, h.key2_hi),
        join16(h.key3_lo, h.key3_hi),
    );
    return half_step(w, g) + h.scale * normal(key, elem);
}
",
        ],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let mut h = <SgldRule<f32> as crate::gpu::Kernel<0>>::hyper(&self.rule);
        // Each key word as two exact 16-bit halves: a word's bits as an `f32` could be a
        // NaN pattern, which a driver need not carry unchanged.
        for word in self.key {
            h.extend_from_slice(&[f32::from(word as u16), f32::from((word >> 16) as u16)]);
        }
        h.push(self.scale);
        h
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<0> for SgldRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "sgld",
        fields: &["rs", "clip_on", "clip", "neg_half_lr", "wd"],
        rule: &[
            HALF_STEP_WGSL,
            r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    return half_step(w, g);
}
",
        ],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.clip);
        vec![self.rs, on, c, self.neg_half_lr, self.wd]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_step_against_the_gradient() {
        let rule = Sgld::default().at::<f64>(Step::new(0.1, 0.0, 1)).unwrap();
        assert_eq!(rule.apply(1.0, 0.5, []).0, 1.0 + 0.5 * -0.05);
        assert_eq!(Sgld::noise_scale(Step::new(0.01, 0.0, 1)), 0.1);
    }
}
