//! The contract between an optimizer's maths and the engine that walks arrays.

use crate::real::{pyclip, Elem, K};
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
    pub t: i64,
    /// A running product an optimizer carries from one update call to the next, after
    /// this tensor's factor (Nadam's momentum schedule `m_schedule`); `1.0` where unused.
    pub schedule: f64,
}

impl Step {
    /// A step with learning rate `lr`, weight decay `wd` and update count `t`.
    #[must_use]
    pub const fn new(lr: f64, wd: f64, t: i64) -> Step {
        Step {
            lr,
            wd,
            t,
            schedule: 1.0,
        }
    }

    /// The learning rate as the kernel sees it.
    ///
    /// # Errors
    /// [`Error::NotFinite`] when it is NaN or not finite in `E`.
    pub fn lr<E: Elem>(&self) -> Result<E> {
        param("lr", self.lr)
    }
    /// The weight decay as the kernel sees it.
    ///
    /// # Errors
    /// [`Error::NotFinite`] when it is NaN or not finite in `E`.
    pub fn wd<E: Elem>(&self) -> Result<E> {
        param("wd", self.wd)
    }
    /// The learning rate as an element of a list-valued kernel parameter (SGD's
    /// multi-tensor `lrs`, [`K::from_py_list`]).
    ///
    /// # Errors
    /// [`Error::NotFinite`] when it is NaN or not finite in `E`.
    pub fn list_lr<E: Elem>(&self) -> Result<E> {
        finite("lr", self.lr, E::from_k(K::from_py_list(self.lr)))
    }
    /// The weight decay as an element of a list-valued kernel parameter (`wds`).
    ///
    /// # Errors
    /// [`Error::NotFinite`] when it is NaN or not finite in `E`.
    pub fn list_wd<E: Elem>(&self) -> Result<E> {
        finite("wd", self.wd, E::from_k(K::from_py_list(self.wd)))
    }
    /// The learning rate as MXNet stores it in a `float32` NDArray (LARS's `lrs`): `x as f32`.
    ///
    /// # Errors
    /// [`Error::NotFinite`] when it is NaN or not finite in `E`.
    pub fn array_lr<E: Elem>(&self) -> Result<E> {
        array_param("lr", self.lr)
    }
    /// The weight decay as MXNet stores it in a `float32` NDArray (LARS's `wds`).
    ///
    /// # Errors
    /// [`Error::NotFinite`] when it is NaN or not finite in `E`.
    pub fn array_wd<E: Elem>(&self) -> Result<E> {
        array_param("wd", self.wd)
    }
}

#[allow(clippy::cast_possible_truncation)] // numpy's float64 -> float32 cast
fn array_param<E: Elem>(name: &'static str, value: f64) -> Result<E> {
    finite(name, value, E::from_k(K(value as f32)))
}

/// The value a C++ kernel computing in `E` sees for the Python float hyper-parameter
/// `value` (parsed as `f32` the way MXNet does, [`K::from_py`], then converted). A value
/// that is not finite in `E` (NaN, infinite, or too large for `f32` or `E`) or that MXNet
/// refuses to parse is rejected.
///
/// # Errors
/// [`Error::NotFinite`] or [`Error::OutOfRange`] as described.
///
/// ```
/// assert_eq!(mxopt::rule::param::<f64>("lr", 0.1)?, f64::from(0.1_f32));
/// assert!(mxopt::rule::param::<f32>("lr", 1e39).is_err());
/// assert!(mxopt::rule::param::<f32>("lr", 1e-40).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
pub fn param<E: Elem>(name: &'static str, value: f64) -> Result<E> {
    let parsed = K::from_py(value).ok_or(Error::OutOfRange { name, value })?;
    finite(name, value, E::from_k(parsed))
}

/// Like [`param`] for a parameter the operator declares as `double` (FTML's `epsilon`):
/// parsed as `f64` the way MXNet does, then converted to `E`.
///
/// # Errors
/// [`Error::NotFinite`] or [`Error::OutOfRange`] as for [`param`].
pub fn double_param<E: Elem>(name: &'static str, value: f64) -> Result<E> {
    let parsed = if value.is_finite() {
        crate::decimal::from_python::<f64>(value).ok_or(Error::OutOfRange { name, value })?
    } else {
        value
    };
    finite(name, value, E::from_f64(parsed))
}

/// The value an NDArray operation on `E` arrays sees for the Python float `value` (MXNet's
/// Python-side optimizers: full precision for `f64`, rounded once for `f32`/`f16`). A value
/// that is not finite in `E` is rejected.
///
/// # Errors
/// [`Error::NotFinite`] as described.
pub fn scalar<E: Elem>(name: &'static str, value: f64) -> Result<E> {
    finite(name, value, E::from_f64(value))
}

fn finite<E: Elem>(name: &'static str, value: f64, converted: E) -> Result<E> {
    if value.is_finite() && converted.is_finite() {
        Ok(converted)
    } else {
        Err(Error::NotFinite { name, value })
    }
}

/// A kernel bound such as `clip_gradient`: MXNet's kernels apply it only when it is `≥ 0`,
/// so `None` and negative values give `None`. NaN, or a bound not finite in `E`, is rejected.
///
/// # Errors
/// [`Error::NotFinite`] as described.
pub fn bound<E: Elem>(name: &'static str, value: Option<f64>) -> Result<Option<E>> {
    match value {
        Some(c) if c < 0.0 => Ok(None),
        Some(c) => param(name, c).map(Some),
        None => Ok(None),
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
/// The clip always follows the rescale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rescale<E> {
    /// `rescale_grad`.
    pub rs: E,
    /// The kernel's `clip_gradient`; MXNet's kernels clip only when it is `≥ 0`.
    pub clip: Option<E>,
}

impl<E: Elem> Rescale<E> {
    /// Validates `rescale_grad` and `clip_gradient` (a negative bound disables clipping).
    ///
    /// # Errors
    /// [`Error::NotFinite`] when either is NaN or not finite in `E`.
    pub fn new(rescale_grad: f64, clip_gradient: Option<f64>) -> Result<Rescale<E>> {
        Ok(Rescale {
            rs: param("rescale_grad", rescale_grad)?,
            clip: bound("clip_gradient", clip_gradient)?,
        })
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

/// The optional clip of MXNet's Python-side optimizers: applied whenever `clip_gradient`
/// is not `None` (zero and negative bounds included, with [`pyclip`]'s results). Unlike
/// the other scalars of those optimizers, the bound is a parameter of the `clip` operator,
/// which parses it as `f32` ([`param`]): on `f64` arrays `clip(x, −0.1, 0.1)` gives
/// `±f64(f32(0.1))` (checked against MXNet 1.6.0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PyClip<E>(Option<E>);

impl<E: Elem> PyClip<E> {
    /// The clip for `clip_gradient`.
    ///
    /// # Errors
    /// [`Error::NotFinite`] when the bound is NaN or not finite in `E`.
    pub fn new(clip_gradient: Option<f64>) -> Result<PyClip<E>> {
        clip_gradient
            .map(|c| param("clip_gradient", c))
            .transpose()
            .map(PyClip)
    }

    /// The bound, if any (the GPU kernels receive it as a scalar).
    #[cfg(feature = "wgpu")]
    pub(crate) fn bound(&self) -> Option<E> {
        self.0
    }

    /// `pyclip(x)`, or `x` without a bound.
    #[inline(always)]
    pub fn of(&self, x: E) -> E {
        match self.0 {
            Some(bound) => pyclip(x, bound),
            None => x,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_side_clip_parses_its_bound_as_f32() {
        let clip = PyClip::<f64>::new(Some(0.1)).unwrap();
        assert_eq!(clip.of(5.0), f64::from(0.1_f32));
        assert_eq!(clip.of(-5.0), -f64::from(0.1_f32));
        assert_eq!(PyClip::<f64>::new(Some(0.0)).unwrap().of(5.0), 0.0);
        assert_eq!(PyClip::<f64>::new(None).unwrap().of(5.0), 5.0);
        assert!(PyClip::<f32>::new(Some(1e39)).is_err());
    }

    #[test]
    fn bound_applies_only_from_zero_up_and_rejects_nan() {
        assert_eq!(bound::<f32>("c", None), Ok(None));
        assert_eq!(bound::<f32>("c", Some(-1.0)), Ok(None));
        assert_eq!(bound::<f32>("c", Some(0.0)), Ok(Some(0.0)));
        assert_eq!(bound::<f64>("c", Some(0.1)), Ok(Some(f64::from(0.1_f32))));
        assert!(bound::<f32>("c", Some(f64::NAN)).is_err());
        assert!(bound::<f32>("c", Some(1e39)).is_err());
    }
}
