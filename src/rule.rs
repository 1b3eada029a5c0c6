//! The contract between an optimizer's maths and the engine that walks arrays.

use crate::real::{Elem, K};
use crate::{Error, Result};

/// The scalars that change per tensor and per call: the learning rate and weight decay
/// after multipliers (computed in Python `f64`, as MXNet does) and the update count `t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// Learning rate for this tensor, multipliers applied.
    pub lr: f64,
    /// Weight decay for this tensor, multipliers applied.
    pub wd: f64,
    /// This tensor's update count after the increment (starts at `begin_num_update + 1`).
    pub t: u64,
}

impl Step {
    /// The learning rate as the kernel sees it.
    pub fn lr<E: Elem>(&self) -> Result<E> {
        param("lr", self.lr)
    }
    /// The weight decay as the kernel sees it.
    pub fn wd<E: Elem>(&self) -> Result<E> {
        param("wd", self.wd)
    }
}

/// The value a kernel computing in `E` sees for the Python float hyper-parameter `value`
/// (parsed as `f32`, then converted); NaN and infinity are rejected.
pub fn param<E: Elem>(name: &'static str, value: f64) -> Result<E> {
    if value.is_finite() {
        Ok(E::from_k(K::from_py(value)))
    } else {
        Err(Error::NotFinite { name, value })
    }
}

/// One optimizer's update of one element, with `N` state buffers (momentum, ...).
///
/// Implementations hold the step's constants and are pure: no slices, no loops. The
/// engine inlines `apply` into its single element loop.
pub trait Rule<E: Elem, const N: usize>: Sync {
    /// Takes the weight, the gradient and the states; returns the new weight and states.
    fn apply(&self, w: E, g: E, s: [E; N]) -> (E, [E; N]);
}

/// The gradient as MXNet's kernels first see it: `kclip(rs·g)` when clipping, else `rs·g`.
/// The clip always follows the rescale. Spec: optimizers.md §0.4.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rescale<E> {
    /// `rescale_grad`.
    pub rs: E,
    /// The kernel's `clip_gradient`; MXNet's kernels clip only when it is `≥ 0`.
    pub clip: Option<E>,
}

impl<E: Elem> Rescale<E> {
    /// Validates `rescale_grad` and `clip_gradient` (a negative bound disables clipping).
    pub fn new(rescale_grad: f64, clip_gradient: Option<f64>) -> Result<Rescale<E>> {
        let rs = param("rescale_grad", rescale_grad)?;
        let clip = match clip_gradient {
            Some(c) if c < 0.0 => None,
            Some(c) => Some(param("clip_gradient", c)?),
            None => None,
        };
        Ok(Rescale { rs, clip })
    }

    /// `kclip(rs·g)` or `rs·g`.
    #[inline(always)]
    pub fn of(&self, g: E) -> E {
        match self.clip {
            Some(c) => crate::real::kclip(g * self.rs, c),
            None => g * self.rs,
        }
    }
}
