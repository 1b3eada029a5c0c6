//! GroupAdaGrad (MXNet `contrib.GroupAdaGrad`, registry `groupadagrad`).
//!
//! AdaGrad with one accumulator per row of a 2-D weight: the row's accumulator grows by
//! the mean of the squared gradient over the row. MXNet has two code paths that differ in
//! number type and clip: dense gradients run as Python NDArray ops (`pyclip` with an
//! `f32`-parsed bound, other Python floats straight to the dtype, Kahan mean:
//! [`RowWise`](crate::engine::RowWise)), row-sparse
//! gradients run the `group_adagrad_update` kernel (`kclip`, `f32`-parsed parameters,
//! sequential sum: [`RowWiseSparse`](crate::engine::RowWiseSparse)). Weight decay is not
//! supported (MXNet asserts `wd == 0`); the step's `wd` is not read.

use crate::engine::RowRule;
use crate::real::{kclip, pyclip, Elem};
use crate::rule::{param, scalar, Rescale, Step};
use crate::Result;

/// GroupAdaGrad's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `epsilon = 1e-5`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{optim::group_adagrad::GroupAdaGrad, rule::Step};
/// let hyper = GroupAdaGrad { rescale_grad: 0.5, ..GroupAdaGrad::default() };
/// assert!(hyper.dense_at::<f32>(Step::new(0.01, 0.0, 1)).is_ok());
/// let bad = GroupAdaGrad { rescale_grad: f64::NAN, ..GroupAdaGrad::default() };
/// assert!(bad.dense_at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupAdaGrad {
    /// Added to the accumulator under the square root (`float_stable_eps`).
    pub epsilon: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Clip bound of `rs·g`: `pyclip` for any value on the dense path, `kclip` for a
    /// non-negative value on the row-sparse path.
    pub clip_gradient: Option<f64>,
}

impl Default for GroupAdaGrad {
    fn default() -> Self {
        GroupAdaGrad {
            epsilon: 1e-5,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

/// Which clip the gradient goes through.
#[derive(Clone, Copy, Debug)]
enum Clip<E> {
    None,
    Python(E),
    Kernel(E),
}

impl GroupAdaGrad {
    /// The dense-gradient update (MXNet's Python ops) for one tensor and step.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter that is NaN or
    /// not finite in `E`.
    pub fn dense_at<E: Elem>(&self, step: Step) -> Result<GroupAdaGradRule<E>> {
        let clip = match self.clip_gradient {
            Some(c) => Clip::Python(param("clip_gradient", c)?),
            None => Clip::None,
        };
        Ok(GroupAdaGradRule {
            rs: scalar("rescale_grad", self.rescale_grad)?,
            clip,
            lr: scalar("lr", step.lr)?,
            epsilon: scalar("epsilon", self.epsilon)?,
        })
    }

    /// The row-sparse kernel (`group_adagrad_update`) for one tensor and step.
    ///
    /// # Errors
    /// As [`GroupAdaGrad::dense_at`].
    pub fn rows_at<E: Elem>(&self, step: Step) -> Result<GroupAdaGradRule<E>> {
        let rescale = Rescale::new(self.rescale_grad, self.clip_gradient)?;
        Ok(GroupAdaGradRule {
            rs: rescale.rs,
            clip: rescale.clip.map_or(Clip::None, Clip::Kernel),
            lr: step.lr()?,
            epsilon: param("epsilon", self.epsilon)?,
        })
    }
}

/// `ĝ = clip(g·rs)`; `h' = h + mean_row(ĝ²)`; `w' = w − (ĝ·lr)/sqrt(h' + ε)`.
#[derive(Clone, Copy, Debug)]
pub struct GroupAdaGradRule<E> {
    rs: E,
    clip: Clip<E>,
    lr: E,
    epsilon: E,
}

impl<E: Elem> RowRule<E> for GroupAdaGradRule<E> {
    #[inline(always)]
    fn grad(&self, g: E) -> E {
        let g = g * self.rs;
        match self.clip {
            Clip::None => g,
            Clip::Python(c) => pyclip(g, c),
            Clip::Kernel(c) => kclip(g, c),
        }
    }
    #[inline(always)]
    fn term(&self, g: E) -> E {
        g * g
    }
    #[inline(always)]
    fn row_state(&self, state: E, mean: E) -> E {
        state + mean
    }
    #[inline(always)]
    fn apply(&self, w: E, g: E, state: E) -> E {
        w - (g * self.lr) / (state + self.epsilon).sqrt()
    }
}

/// The row walk's gradient in WGSL ([`GroupAdaGradRule`]'s `grad`; both clips have the
/// same formula, the kernel one being absent for negative bounds already).
#[cfg(feature = "wgpu")]
pub(crate) const GRAD_WGSL: &str = r"
fn row_grad(g: f32) -> f32 {
    return clip_if(g * h.rs, h.clip_on, h.clip);
}
fn row_apply(w: f32, x: f32, hist: f32) -> f32 {
    return w - (x * h.lr) / sqrt(hist + h.epsilon);
}
";

/// The scalar fields of [`GroupAdaGradRule::gpu_hyper`].
#[cfg(feature = "wgpu")]
pub(crate) const FIELDS: &[&str] = &["rs", "clip_on", "clip", "lr", "epsilon"];

#[cfg(feature = "wgpu")]
impl GroupAdaGradRule<f32> {
    /// The scalars, in the order of [`FIELDS`].
    pub(crate) fn gpu_hyper(&self) -> Vec<f32> {
        let bound = match self.clip {
            Clip::None => None,
            Clip::Python(c) | Clip::Kernel(c) => Some(c),
        };
        let [on, c] = crate::gpu::flag(bound);
        vec![self.rs, on, c, self.lr, self.epsilon]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_clip_is_pyclip_and_sparse_clip_is_kclip() {
        let hyper = GroupAdaGrad {
            clip_gradient: Some(-1.0),
            ..GroupAdaGrad::default()
        };
        let step = Step::new(0.1, 0.0, 1);
        assert_eq!(hyper.dense_at::<f32>(step).unwrap().grad(0.5), -1.0);
        assert_eq!(hyper.rows_at::<f32>(step).unwrap().grad(0.5), 0.5);
    }
}
