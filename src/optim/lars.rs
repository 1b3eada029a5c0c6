//! LARS, layer-wise adaptive rate scaling (MXNet `lars`).
//!
//! The dense path of MXNet 1.6 scales each layer's learning rate by its trust ratio
//! (`multi_sum_sq` of weights and raw gradients, then `multi_lars`, all in `f32`) and
//! runs SGD's `preloaded_multi_*` kernels ([`Sgd::preloaded_at`]) with the scaled rates.
//! Its row-sparse path computes the ratio in Python floats from `NDArray.norm()`s
//! ([`Lars::sparse_lr`]) and runs SGD's own row-sparse kernels.

use crate::engine::reduce::{self, Reduction};
use crate::optim::sgd::{F32Lr, MultiSgd, MultiSgdMom, Sgd};
use crate::real::{Elem, Storage};
use crate::rule::{param, Step};
use crate::Result;

/// One layer of LARS's dense path: weight, gradient (not rescaled), step, and whether
/// its rate is scaled (layers named `…gamma`, `…beta`, `…bias` are not).
pub type Layer<'a, T> = (&'a [T], &'a [T], Step, bool);

/// The name suffixes whose layers keep their plain learning rate (no underscore needed:
/// `xgamma` is excluded too).
pub const EXCLUDED_SUFFIXES: [&str; 3] = ["gamma", "beta", "bias"];

/// Whether the layer `name` gets the trust ratio (its name ends in no
/// [`EXCLUDED_SUFFIXES`] entry).
#[must_use]
pub fn is_scaled(name: &str) -> bool {
    !EXCLUDED_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// LARS's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `eta = 0.001, eps = 0, momentum = 0`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{optim::lars::Lars, rule::Step};
/// let hyper = Lars { rescale_grad: 0.5, ..Lars::default() };
/// assert!(hyper.update_at::<f32>(Step::new(0.01, 0.0, 1)).is_ok());
/// let bad = Lars { rescale_grad: f64::NAN, ..Lars::default() };
/// assert!(bad.update_at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lars {
    /// Trust coefficient `η`.
    pub eta: f64,
    /// Added to the denominator of the trust ratio.
    pub eps: f64,
    /// Momentum, already corrected by `cur_lr/last_lr` where MXNet does so.
    pub momentum: f64,
    /// Factor applied to the gradient (and to the gradient norm in the ratio).
    pub rescale_grad: f64,
    /// Kernel clip bound: `None` or negative disables clipping.
    pub clip_gradient: Option<f64>,
}

impl Default for Lars {
    fn default() -> Self {
        let sgd = Sgd::default();
        Lars {
            eta: 0.001,
            eps: 0.0,
            momentum: sgd.momentum,
            rescale_grad: sgd.rescale_grad,
            clip_gradient: sgd.clip_gradient,
        }
    }
}

/// `multi_lars` for one layer, all `f32`: with `wn = √wss`, the rate becomes
/// `((lr·η)·wn) / (((√gss·rs) + (wd·wn)) + eps)` when `wn > 0` and `gss > 0`.
#[derive(Clone, Copy, Debug)]
pub struct TrustRatio {
    eta: f32,
    eps: f32,
    rs: f32,
}

impl TrustRatio {
    /// The scaled learning rate of a layer with weight and gradient sums of squares
    /// `wss`, `gss` (the gradient not rescaled).
    #[must_use]
    pub fn lr(&self, lr: f32, wd: f32, wss: f32, gss: f32) -> f32 {
        let wn = wss.sqrt();
        if wn > 0.0 && gss > 0.0 {
            ((lr * self.eta) * wn) / (((gss.sqrt() * self.rs) + (wd * wn)) + self.eps)
        } else {
            lr
        }
    }
}

impl TrustRatio {
    /// The steps of a list of layers with their trust-ratio learning rates (`multi_sum_sq`
    /// of the weights and gradients as they are before the update, then `multi_lars`);
    /// layers are reduced in parallel when the list is large.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a learning rate or weight decay
    /// that is not finite in `f32`.
    ///
    /// ```
    /// use mxopt::{engine::reduce::Reduction, optim::lars::Lars, rule::Step};
    /// let trust = Lars { eta: 1.0, ..Lars::default() }.trust()?;
    /// let (w, g) = ([3.0_f32, 4.0], [0.0_f32, 0.5]); // ‖w‖ = 5, ‖g‖ = 0.5
    /// let step = Step::new(0.1, 0.0, 1);
    /// let steps = trust.steps(&[(&w[..], &g[..], step, true), (&w[..], &g[..], step, false)], Reduction::Exact)?;
    /// assert_eq!(steps[0].lr, f64::from((0.1_f32 * 5.0) / 0.5));
    /// assert_eq!(steps[1].lr, 0.1); // not scaled
    /// let nan = Step::new(f64::NAN, 0.0, 1);
    /// assert!(trust.steps(&[(&w[..], &g[..], nan, true)], Reduction::Exact).is_err());
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    pub fn steps<T: Storage>(&self, layers: &[Layer<'_, T>], how: Reduction) -> Result<Vec<Step>> {
        let elements = layers
            .iter()
            .filter(|layer| layer.3)
            .map(|layer| 2 * layer.0.len())
            .sum();
        let sums = reduce::each(layers, elements, |&(w, g, _, scaled)| {
            scaled.then(|| (reduce::sum_sq(w, how), reduce::sum_sq(g, how)))
        });
        layers
            .iter()
            .zip(sums)
            .map(|(&(_, _, step, _), sums)| {
                let Some((wss, gss)) = sums else {
                    return Ok(step);
                };
                let lr = self.lr(step.array_lr()?, step.array_wd()?, wss, gss);
                if !lr.is_finite() {
                    // Only a weight or gradient that is not finite gets here (MXNet goes
                    // on and writes NaN weights).
                    return Err(crate::Error::NotFinite {
                        name: "lr scaled by the LARS trust ratio (a weight or gradient norm is not finite)",
                        value: f64::from(lr),
                    });
                }
                Ok(Step {
                    lr: f64::from(lr),
                    ..step
                })
            })
            .collect()
    }
}

impl Lars {
    /// The scaled rate of the row-sparse path (MXNet's `_get_lars`), in Python floats from
    /// the `f32` norms of the weight and of `rescale_grad·g`:
    /// `η·‖w‖/(‖g‖ + wd·‖w‖ + eps)·lr` when both norms are positive, else `lr`.
    #[must_use]
    pub fn sparse_lr(&self, lr: f64, wd: f64, weight_norm: f32, grad_norm: f32) -> f64 {
        let (wn, gn) = (f64::from(weight_norm), f64::from(grad_norm));
        if wn > 0.0 && gn > 0.0 {
            self.eta * wn / (gn + wd * wn + self.eps) * lr
        } else {
            lr
        }
    }

    /// The trust-ratio computation, hyper-parameters checked.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a NaN or infinite `eta`, `eps`
    /// or `rescale_grad`.
    pub fn trust(&self) -> Result<TrustRatio> {
        Ok(TrustRatio {
            eta: param("eta", self.eta)?,
            eps: param("eps", self.eps)?,
            rs: param("rescale_grad", self.rescale_grad)?,
        })
    }

    /// SGD's momentum-free preloaded multi-tensor kernel for one layer (no state);
    /// `step.lr` is the scaled rate.
    ///
    /// # Errors
    /// [`Error::Unsupported`](crate::Error::Unsupported) when `momentum > 0` (use
    /// [`Lars::update_mom_at`]); [`Error::NotFinite`](crate::Error::NotFinite) for a NaN
    /// or infinite scalar.
    pub fn update_at<E: Elem>(&self, step: Step) -> Result<MultiSgd<E, F32Lr>> {
        self.sgd().preloaded_at(step)
    }

    /// SGD's preloaded multi-tensor kernel with momentum (one state buffer) for one
    /// layer; `step.lr` is the scaled rate.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a NaN or infinite scalar.
    pub fn update_mom_at<E: Elem>(&self, step: Step) -> Result<MultiSgdMom<E, F32Lr>> {
        self.sgd().preloaded_mom_at(step)
    }

    fn sgd(&self) -> Sgd {
        Sgd {
            momentum: self.momentum,
            rescale_grad: self.rescale_grad,
            clip_gradient: self.clip_gradient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::Half;
    use crate::rule::Rule;
    use half::f16;

    #[test]
    fn trust_ratio_by_hand_and_degenerate_layers() {
        let lars = Lars {
            eta: 0.5,
            eps: 0.25,
            rescale_grad: 2.0,
            ..Lars::default()
        };
        let trust = lars.trust().unwrap();
        // wn = 2, gn = 3: (1·0.5·2) / (3·2 + 0.5·2 + 0.25).
        assert_eq!(trust.lr(1.0, 0.5, 4.0, 9.0), 1.0 / 7.25);
        assert_eq!(trust.lr(1.0, 0.5, 0.0, 9.0), 1.0);
        assert_eq!(trust.lr(1.0, 0.5, 4.0, 0.0), 1.0);
        let bad = Lars {
            eta: f64::NAN,
            ..lars
        };
        assert!(bad.trust().is_err());
    }

    #[test]
    fn f16_keeps_lr_in_f32() {
        // lr = 0.1 is not an f16: the preloaded kernel multiplies by the f32 value.
        let lars = Lars::default();
        let rule = lars.update_at::<Half>(Step::new(0.1, 0.0, 1)).unwrap();
        let g = Half::from(f16::from_f32(3.0));
        let (w, []) = Rule::<Half, 0>::apply(&rule, Half::zero(), g, []);
        let expected = f16::from_f32(-(f16::from_f32(0.1_f32 * 1.0).to_f32() * 3.0));
        assert_eq!(f16::from(w), expected);
    }
}
