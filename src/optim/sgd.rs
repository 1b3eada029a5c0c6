//! SGD with optional momentum (MXNet `sgd`, `ccsgd`).
//!
//! MXNet has two association orders for the same update, and which one runs depends on
//! the call, not on the maths: dense updates always go through the multi-tensor kernel
//! ([`MultiSgd`]); row-sparse updates without momentum (and NAG without momentum) go
//! through `sgd_update` ([`SgdUpdate`]). The two differ in the last bit.

use crate::real::{Elem, K};
use crate::rule::{param, Rescale, Rule, Step};
use crate::{Error, Result};

/// SGD's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `momentum = 0`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::sgd::Sgd, rule::Step};
/// let hyper = Sgd { rescale_grad: 0.5, ..Sgd::default() };
/// let rule = hyper.multi_at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [])?);
/// assert!(w[0] != 1.0);
/// let bad = Sgd { rescale_grad: f64::NAN, ..Sgd::default() };
/// assert!(bad.multi_at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// The momentum-free multi-tensor kernel (`multi_[mp_]sgd_update`) for one tensor and
    /// step: a [`Rule`] with no state buffer. MXNet runs it when `momentum ≤ 0`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when `momentum > 0` (that needs a momentum buffer: use
    /// [`Sgd::multi_mom_at`]); [`Error::NotFinite`] for a NaN or infinite scalar.
    ///
    /// ```
    /// use mxopt::{engine, optim::sgd::Sgd, rule::Step};
    /// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
    /// let rule = Sgd::default().multi_at::<f32>(Step::new(0.1, 0.0, 1))?;
    /// engine::run(&rule, engine::Dense::new(&mut w, &g, [])?);
    /// assert_eq!(w[0], 0.95);
    /// // Momentum without a buffer would silently be plain SGD: refused.
    /// let heavy = Sgd { momentum: 0.9, ..Sgd::default() };
    /// assert!(heavy.multi_at::<f32>(Step::new(0.1, 0.0, 1)).is_err());
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    pub fn multi_at<E: Elem>(&self, step: Step) -> Result<MultiSgd<E>> {
        self.no_momentum("multi_sgd_update")?;
        let lr: E = step.list_lr()?;
        Ok(MultiSgd(self.velocity(lr * step.list_wd()?, lr)?))
    }

    /// The momentum multi-tensor kernel (`multi_[mp_]sgd_mom_update`) for one tensor and
    /// step: a [`Rule`] with one state buffer, the momentum (zeros at first).
    ///
    /// # Errors
    /// [`Error::NotFinite`] for a NaN or infinite scalar.
    ///
    /// ```
    /// use mxopt::{engine, optim::sgd::Sgd, rule::Step};
    /// let (mut w, g, mut mom) = (vec![1.0_f32; 4], vec![0.5_f32; 4], vec![0.0_f32; 4]);
    /// let sgd = Sgd { momentum: 0.9, ..Sgd::default() };
    /// let rule = sgd.multi_mom_at::<f32>(Step::new(0.1, 0.0, 1))?;
    /// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut mom])?);
    /// assert_eq!((w[0], mom[0]), (0.95, -0.05));
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    ///
    /// The momentum rule has exactly one state buffer; forgetting it does not compile:
    /// ```compile_fail
    /// use mxopt::{engine, optim::sgd::Sgd, rule::Step};
    /// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
    /// let sgd = Sgd { momentum: 0.9, ..Sgd::default() };
    /// let rule = sgd.multi_mom_at::<f32>(Step::new(0.1, 0.0, 1)).unwrap();
    /// engine::run(&rule, engine::Dense::new(&mut w, &g, []).unwrap());
    /// ```
    pub fn multi_mom_at<E: Elem>(&self, step: Step) -> Result<MultiSgdMom<E>> {
        let lr: E = step.list_lr()?;
        Ok(MultiSgdMom(self.velocity(lr * step.list_wd()?, lr)?))
    }

    /// The single-tensor kernel `[mp_]sgd_mom_update` (row-sparse gradients, LBSGD): the
    /// maths of [`Sgd::multi_mom_at`], but `lr` and `wd` arrive as scalar parameters
    /// ([`Step::lr`]) instead of list elements ([`Step::list_lr`]), which round differently.
    ///
    /// # Errors
    /// [`Error::NotFinite`] for a NaN or infinite scalar.
    pub fn mom_at<E: Elem>(&self, step: Step) -> Result<MultiSgdMom<E>> {
        let lr: E = step.lr()?;
        Ok(MultiSgdMom(self.velocity(lr * step.wd()?, lr)?))
    }

    /// The momentum-free `preloaded_multi_[mp_]sgd_update` kernel (LARS): `step.lr` and
    /// `step.wd` are read as `f32`, and `lr` and `lr·wd` (computed in `f32`) stay `f32` in
    /// their products with elements. For `f32` weights this equals [`Sgd::multi_at`].
    ///
    /// # Errors
    /// As [`Sgd::multi_at`].
    pub fn preloaded_at<E: Elem>(&self, step: Step) -> Result<MultiSgd<E, F32Lr>> {
        self.no_momentum("preloaded_multi_sgd_update")?;
        let (lr, wd): (f32, f32) = (step.array_lr()?, step.array_wd()?);
        Ok(MultiSgd(self.velocity(F32Lr(lr * wd), F32Lr(lr))?))
    }

    /// The momentum `preloaded_multi_[mp_]sgd_mom_update` kernel (LARS), with one state
    /// buffer; see [`Sgd::preloaded_at`].
    ///
    /// # Errors
    /// [`Error::NotFinite`] for a NaN or infinite scalar.
    pub fn preloaded_mom_at<E: Elem>(&self, step: Step) -> Result<MultiSgdMom<E, F32Lr>> {
        let (lr, wd): (f32, f32) = (step.array_lr()?, step.array_wd()?);
        Ok(MultiSgdMom(self.velocity(F32Lr(lr * wd), F32Lr(lr))?))
    }

    /// The single-tensor kernel `[mp_]sgd_update`, which has no momentum (MXNet runs it
    /// for row-sparse gradients of weights without a momentum state): `momentum` is not
    /// read.
    ///
    /// # Errors
    /// [`Error::NotFinite`] for a NaN or infinite scalar.
    ///
    /// ```
    /// use mxopt::{engine, optim::sgd::Sgd, rule::Step};
    /// let (mut w, g) = (vec![1.0_f64; 4], vec![0.5_f64; 4]);
    /// let rule = Sgd::default().single_at::<f64>(Step::new(0.5, 0.0, 1))?;
    /// engine::run(&rule, engine::Dense::new(&mut w, &g, [])?);
    /// assert_eq!(w[0], 0.75);
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    pub fn single_at<E: Elem>(&self, step: Step) -> Result<SgdUpdate<E>> {
        let lr: E = step.lr()?;
        Ok(SgdUpdate {
            decay: E::one() - lr * step.wd()?,
            grad: LrGrad::new(self, lr)?,
        })
    }

    /// `[mp_]sgd_update` on every row of a row-sparse gradient (`lazy_update=False`): MXNet
    /// first scales the whole weight by `1 − lr·wd` computed in `f32` (then converted to
    /// the weight's type, where the dense and lazy kernels compute it), then subtracts `G`
    /// on the gradient's rows. Equals [`Sgd::single_at`] for `f32` weights.
    ///
    /// # Errors
    /// [`Error::NotFinite`] for a NaN or infinite scalar.
    pub fn std_at<E: Elem>(&self, step: Step) -> Result<SgdUpdate<E>> {
        let (lr, wd): (f32, f32) = (step.lr()?, step.wd()?);
        Ok(SgdUpdate {
            decay: E::from_k(K(1.0 - lr * wd)),
            grad: LrGrad::new(self, step.lr()?)?,
        })
    }

    fn velocity<E: Elem, L: LrFactor<E>>(&self, lr_wd: L, lr: L) -> Result<Velocity<E, L>> {
        Ok(Velocity {
            momentum: param("momentum", self.momentum)?,
            lr_wd,
            grad: LrGrad::new(self, lr)?,
        })
    }

    fn no_momentum(&self, kernel: &'static str) -> Result<()> {
        param::<f32>("momentum", self.momentum)?;
        if self.momentum > 0.0 {
            return Err(Error::Unsupported {
                kernel,
                name: "momentum",
                value: self.momentum,
                why: "momentum > 0 needs a momentum buffer (the `_mom` kernel)",
            });
        }
        Ok(())
    }
}

/// `m' = ((μ·m) − ((lr·wd)·w)) − G`.
#[derive(Clone, Copy, Debug)]
struct Velocity<E, L> {
    momentum: E,
    lr_wd: L,
    grad: LrGrad<E, L>,
}

impl<E: Elem, L: LrFactor<E>> Velocity<E, L> {
    #[inline(always)]
    fn of(&self, w: E, g: E, m: E) -> E {
        (m * self.momentum - self.lr_wd.times(w)) - self.grad.of(g)
    }
}

/// `w' = w + ((−(lr·wd)·w) − G)`: the multi-tensor kernel without momentum (no state).
#[derive(Clone, Copy, Debug)]
pub struct MultiSgd<E, L = E>(Velocity<E, L>);

impl<E: Elem, L: LrFactor<E>> Rule<E, 0> for MultiSgd<E, L> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, []: [E; 0]) -> (E, [E; 0]) {
        (w + self.0.of(w, g, E::zero()), [])
    }
}

/// `m' = ((μ·m) − ((lr·wd)·w)) − G`, `w' = w + m'`: the multi-tensor kernel with its
/// momentum buffer (the one state).
#[derive(Clone, Copy, Debug)]
pub struct MultiSgdMom<E, L = E>(Velocity<E, L>);

impl<E: Elem, L: LrFactor<E>> Rule<E, 1> for MultiSgdMom<E, L> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [m]: [E; 1]) -> (E, [E; 1]) {
        let m = self.0.of(w, g, m);
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

/// WGSL of `G`, the lr-scaled gradient step ([`LrGrad`]).
#[cfg(feature = "wgpu")]
const LR_GRAD_WGSL: &str = r"
fn lr_grad(g: f32) -> f32 {
    if (h.clip_on != 0.0) { return kclip(g * h.rs, h.clip) * h.lr; }
    return g * h.lr_rs;
}
";

/// WGSL of the velocity ([`Velocity`]), shared by the multi-tensor kernels and LARS.
#[cfg(feature = "wgpu")]
pub(crate) const VELOCITY_WGSL: [&str; 2] = [
    LR_GRAD_WGSL,
    r"
fn velocity(w: f32, g: f32, m: f32) -> f32 {
    return (m * h.momentum - w * h.lr_wd) - lr_grad(g);
}
",
];

/// The rule of [`MultiSgd`] in WGSL.
#[cfg(feature = "wgpu")]
pub(crate) const MULTI_SGD_RULE: &str = r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    return w + velocity(w, g, 0.0);
}
";

/// The rule of [`MultiSgdMom`] in WGSL.
#[cfg(feature = "wgpu")]
pub(crate) const MULTI_SGD_MOM_RULE: &str = r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let m = velocity(w, g, (*s)[0]);
    (*s)[0] = m;
    return w + m;
}
";

/// The scalar fields of [`Velocity::hyper`].
#[cfg(feature = "wgpu")]
pub(crate) const VELOCITY_FIELDS: &[&str] =
    &["momentum", "lr_wd", "lr", "lr_rs", "rs", "clip_on", "clip"];

#[cfg(feature = "wgpu")]
impl Velocity<f32, f32> {
    /// The values of [`VELOCITY_FIELDS`].
    fn hyper(&self) -> Vec<f32> {
        let g = &self.grad;
        let [on, c] = crate::gpu::flag(g.rescale.clip);
        vec![
            self.momentum,
            self.lr_wd,
            g.lr,
            g.lr_rs,
            g.rescale.rs,
            on,
            c,
        ]
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<0> for MultiSgd<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "multi_sgd",
        fields: VELOCITY_FIELDS,
        rule: &[VELOCITY_WGSL[0], VELOCITY_WGSL[1], MULTI_SGD_RULE],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        self.0.hyper()
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<1> for MultiSgdMom<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "multi_sgd_mom",
        fields: VELOCITY_FIELDS,
        rule: &[VELOCITY_WGSL[0], VELOCITY_WGSL[1], MULTI_SGD_MOM_RULE],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        self.0.hyper()
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<0> for SgdUpdate<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "sgd_update",
        fields: &["decay", "lr", "lr_rs", "rs", "clip_on", "clip"],
        rule: &[
            LR_GRAD_WGSL,
            r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    return w * h.decay - lr_grad(g);
}
",
        ],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let g = &self.grad;
        let [on, c] = crate::gpu::flag(g.rescale.clip);
        vec![self.decay, g.lr, g.lr_rs, g.rescale.rs, on, c]
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
        let r = sgd.multi_mom_at::<f32>(step(0.1, 0.01)).unwrap();
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
