//! SGD with optional momentum (MXNet `sgd`, `ccsgd`). Spec: optimizers.md §2.
//!
//! MXNet has two association orders for the same update, and which one runs depends on
//! the call, not on the maths: dense updates always go through the multi-tensor kernel
//! ([`MultiSgd`]); row-sparse updates without momentum (and NAG without momentum) go
//! through `sgd_update` ([`SgdUpdate`]). The two differ in the last bit.

use crate::real::Elem;
use crate::rule::{param, Rescale, Rule, Step};
use crate::Result;

/// SGD's hyper-parameters, with MXNet 1.6's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Momentum `μ`; momentum state buffers hold the negative, lr-scaled velocity.
    pub momentum: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Kernel clip bound: `None` or negative disables clipping.
    pub clip_gradient: Option<f64>,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            momentum: 0.0,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

/// How a kernel multiplies by its learning rate.
pub trait LrFactor<E>: Copy + Send + Sync {
    /// `x·lr`.
    fn times(self, x: E) -> E;
}

/// The learning rate converted to the compute type, as MXNet's per-call kernels hold it.
impl<E: Elem> LrFactor<E> for E {
    #[inline(always)]
    fn times(self, x: E) -> E {
        x * self
    }
}

/// A learning rate kept in `f32`, as the `preloaded_multi_*` kernels read it from their
/// `f32` array: `x·lr` is computed with the `f32` promoted to the wider operand's type and
/// rounded once to the compute type (for `f16`, `lr` itself is never rounded to `f16`).
#[derive(Clone, Copy, Debug)]
pub struct F32Lr(f32);

impl<E: Elem> LrFactor<E> for F32Lr {
    #[inline(always)]
    fn times(self, x: E) -> E {
        // Exact in f64 for every compute type, so this rounds once (f16: via f32, exact).
        E::from_f64(x.to_f64() * f64::from(self.0))
    }
}

/// `G`, the lr-scaled gradient step: `lr·kclip(rs·g)` when clipping, `(lr·rs)·g` otherwise.
#[derive(Clone, Copy, Debug)]
struct LrGrad<E, L> {
    lr: L,
    lr_rs: E,
    rescale: Rescale<E>,
}

impl<E: Elem, L: LrFactor<E>> LrGrad<E, L> {
    fn new(hyper: &Sgd, lr: L) -> Result<LrGrad<E, L>> {
        let rescale = Rescale::new(hyper.rescale_grad, hyper.clip_gradient)?;
        Ok(LrGrad {
            lr,
            lr_rs: lr.times(rescale.rs),
            rescale,
        })
    }

    #[inline(always)]
    fn of(&self, g: E) -> E {
        match self.rescale.clip {
            Some(_) => self.lr.times(self.rescale.of(g)),
            None => g * self.lr_rs,
        }
    }
}

impl Sgd {
    /// The multi-tensor kernel (`multi_[mp_]sgd[_mom]_update`) for one tensor and step.
    pub fn multi_at<E: Elem>(&self, step: Step) -> Result<MultiSgd<E>> {
        let lr: E = step.lr()?;
        Ok(MultiSgd {
            momentum: param("momentum", self.momentum)?,
            lr_wd: lr * step.wd()?,
            grad: LrGrad::new(self, lr)?,
        })
    }

    /// The `preloaded_multi_[mp_]sgd[_mom]_update` kernel (LARS): `step.lr` and `step.wd`
    /// are read as `f32`, and `lr` and `lr·wd` (computed in `f32`) stay `f32` in their
    /// products with elements. For `f32` weights this equals [`Sgd::multi_at`].
    pub fn preloaded_at<E: Elem>(&self, step: Step) -> Result<MultiSgd<E, F32Lr>> {
        let lr: f32 = step.lr()?;
        let wd: f32 = step.wd()?;
        Ok(MultiSgd {
            momentum: param("momentum", self.momentum)?,
            lr_wd: F32Lr(lr * wd),
            grad: LrGrad::new(self, F32Lr(lr))?,
        })
    }

    /// The single-tensor momentum-free kernel (`[mp_]sgd_update`) for one tensor and step.
    pub fn single_at<E: Elem>(&self, step: Step) -> Result<SgdUpdate<E>> {
        let lr: E = step.lr()?;
        Ok(SgdUpdate {
            decay: E::one() - lr * step.wd()?,
            grad: LrGrad::new(self, lr)?,
        })
    }
}

/// `m' = ((μ·m) − ((lr·wd)·w)) − G`, `w' = w + m'`; without momentum `m = 0`.
#[derive(Clone, Copy, Debug)]
pub struct MultiSgd<E, L = E> {
    momentum: E,
    lr_wd: L,
    grad: LrGrad<E, L>,
}

impl<E: Elem, L: LrFactor<E>> MultiSgd<E, L> {
    #[inline(always)]
    fn velocity(&self, w: E, g: E, m: E) -> E {
        (m * self.momentum - self.lr_wd.times(w)) - self.grad.of(g)
    }
}

impl<E: Elem, L: LrFactor<E>> Rule<E, 0> for MultiSgd<E, L> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, []: [E; 0]) -> (E, [E; 0]) {
        (w + self.velocity(w, g, E::zero()), [])
    }
}

impl<E: Elem, L: LrFactor<E>> Rule<E, 1> for MultiSgd<E, L> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [m]: [E; 1]) -> (E, [E; 1]) {
        let m = self.velocity(w, g, m);
        (w + m, [m])
    }
}

/// `w' = ((1 − lr·wd)·w) − G`.
#[derive(Clone, Copy, Debug)]
pub struct SgdUpdate<E> {
    decay: E,
    grad: LrGrad<E, E>,
}

impl<E: Elem> Rule<E, 0> for SgdUpdate<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, []: [E; 0]) -> (E, [E; 0]) {
        (w * self.decay - self.grad.of(g), [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(lr: f64, wd: f64) -> Step {
        Step::new(lr, wd, 1)
    }

    #[test]
    fn multi_momentum_matches_hand_computation() {
        let sgd = Sgd {
            momentum: 0.9,
            ..Sgd::default()
        };
        let r = sgd.multi_at::<f32>(step(0.1, 0.01)).unwrap();
        let (w, [m]) = Rule::<f32, 1>::apply(&r, 2.0, 0.5, [0.25]);
        let expect_m = (0.25_f32 * 0.9 - 2.0 * (0.1_f32 * 0.01)) - 0.5 * (0.1_f32 * 1.0);
        assert_eq!(m, expect_m);
        assert_eq!(w, 2.0 + expect_m);
    }

    #[test]
    fn clipping_follows_rescale() {
        let sgd = Sgd {
            rescale_grad: 2.0,
            clip_gradient: Some(1.0),
            ..Sgd::default()
        };
        let r = sgd.multi_at::<f32>(step(0.5, 0.0)).unwrap();
        // rs·g = 1.5 clips to 1; w' = 1 − 0.5·1.
        let (w, []) = Rule::<f32, 0>::apply(&r, 1.0, 0.75, []);
        assert_eq!(w, 0.5);
    }

    #[test]
    fn negative_clip_disables_clipping_and_nan_is_rejected() {
        let sgd = Sgd {
            clip_gradient: Some(-1.0),
            ..Sgd::default()
        };
        let r = sgd.multi_at::<f32>(step(1.0, 0.0)).unwrap();
        assert_eq!(Rule::<f32, 0>::apply(&r, 0.0, 5.0, []).0, -5.0);
        assert!(sgd.multi_at::<f32>(step(f64::NAN, 0.0)).is_err());
        let sgd = Sgd {
            momentum: f64::INFINITY,
            ..sgd
        };
        assert!(sgd.multi_at::<f32>(step(1.0, 0.0)).is_err());
    }

    #[test]
    fn single_kernel_uses_decay_factor() {
        let sgd = Sgd::default();
        let r = sgd.single_at::<f64>(step(0.01, 0.1)).unwrap();
        let (w, []) = Rule::<f64, 0>::apply(&r, 1.0, 0.1, []);
        // Hyper-parameters are parsed as f32 and widened before any arithmetic.
        let (lr, wd) = (f64::from(0.01_f32), f64::from(0.1_f32));
        assert_eq!(w, 1.0 * (1.0 - lr * wd) - 0.1 * lr);
    }
}
