//! FTRL-Proximal (MXNet `ftrl`).
//!
//! The new weight is a closed form of the states `z` and `n` alone; weights whose `|z|`
//! does not exceed `λ1` become (possibly negative) zero. Weight decay acts only in the
//! denominator. MXNet keeps the states in `float32`; a row-sparse gradient on a dense
//! weight runs this dense kernel over every row.

use crate::real::Elem;
use crate::rule::{param, Rescale, Rule, Step};
use crate::Result;

/// Ftrl's hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `lamda1 = 0.01, beta = 1`, `rescale_grad = 1`, `clip_gradient = None`.
///
/// ```
/// use mxopt::{engine, optim::ftrl::Ftrl, rule::Step};
/// let hyper = Ftrl { rescale_grad: 0.5, ..Ftrl::default() };
/// let rule = hyper.at::<f32>(Step::new(0.01, 0.0, 1))?;
/// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
/// let mut s0 = vec![0.0_f32; 4];
/// let mut s1 = vec![0.0_f32; 4];
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut s0, &mut s1])?);
/// assert!(w[0] != 1.0);
/// let bad = Ftrl { rescale_grad: f64::NAN, ..Ftrl::default() };
/// assert!(bad.at::<f32>(Step::new(0.01, 0.0, 1)).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ftrl {
    /// L1 regularisation strength `λ1`.
    pub lamda1: f64,
    /// `β` of the per-coordinate learning rate `lr/(β + sqrt(n))`.
    pub beta: f64,
    /// Factor applied to the gradient before anything else.
    pub rescale_grad: f64,
    /// Kernel clip bound (applied to `rs·g`): `None` or negative disables it.
    pub clip_gradient: Option<f64>,
}

impl Default for Ftrl {
    fn default() -> Self {
        Ftrl {
            lamda1: 0.01,
            beta: 1.0,
            rescale_grad: 1.0,
            clip_gradient: None,
        }
    }
}

impl Ftrl {
    /// `ftrl_update` for one tensor and step.
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a hyper-parameter that is NaN or
    /// not finite in `E`.
    pub fn at<E: Elem>(&self, step: Step) -> Result<FtrlRule<E>> {
        Ok(FtrlRule {
            lamda1: param("lamda1", self.lamda1)?,
            beta: param("beta", self.beta)?,
            rescale: Rescale::new(self.rescale_grad, self.clip_gradient)?,
            lr: step.lr()?,
            wd: step.wd()?,
        })
    }
}

/// `ĝ = clip(rs·g)`; `z' = z + (ĝ − (sqrt(n + ĝ²) − sqrt(n))·w/lr)`; `n' = n + ĝ²`;
/// `w' = (sgn(z')·λ1 − z')/((β + sqrt(n'))/lr + wd) · [|z'| > λ1]`.
#[derive(Clone, Copy, Debug)]
pub struct FtrlRule<E> {
    lamda1: E,
    beta: E,
    rescale: Rescale<E>,
    lr: E,
    wd: E,
}

impl<E: Elem> Rule<E, 2> for FtrlRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, [z, n]: [E; 2]) -> (E, [E; 2]) {
        let g = self.rescale.of(g);
        let g2 = g * g;
        let z = z + (g - ((n + g2).sqrt() - n.sqrt()) * w / self.lr);
        let n = n + g2;
        let active = if z.abs() > self.lamda1 {
            E::one()
        } else {
            E::zero()
        };
        let w = (z.sgn() * self.lamda1 - z) / ((self.beta + n.sqrt()) / self.lr + self.wd) * active;
        (w, [z, n])
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<2> for FtrlRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "ftrl",
        fields: &["lamda1", "beta", "rs", "clip_on", "clip", "lr", "wd"],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let x = clip_if(g * h.rs, h.clip_on, h.clip);
    let g2 = x * x;
    let z = (*s)[0] + (x - (sqrt((*s)[1] + g2) - sqrt((*s)[1])) * w / h.lr);
    let n = (*s)[1] + g2;
    var is_active = 0.0;
    if (abs(z) > h.lamda1) { is_active = 1.0; }
    (*s)[0] = z;
    (*s)[1] = n;
    return (sgn(z) * h.lamda1 - z) / ((h.beta + sqrt(n)) / h.lr + h.wd) * is_active;
}
"],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        let [on, c] = crate::gpu::flag(self.rescale.clip);
        vec![
            self.lamda1,
            self.beta,
            self.rescale.rs,
            on,
            c,
            self.lr,
            self.wd,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_by_hand() {
        let ftrl = Ftrl::default();
        let r = ftrl.at::<f64>(Step::new(0.1, 0.0, 1)).unwrap();
        let (w, [z, n]) = r.apply(1.0, 0.5, [0.0, 0.0]);
        let lr = f64::from(0.1_f32);
        let l1 = f64::from(0.01_f32);
        assert_eq!(z, 0.5 - 0.5 * 1.0 / lr);
        assert_eq!(n, 0.25);
        assert_eq!(w, (-l1 - z) / ((1.0 + 0.5) / lr));
    }

    #[test]
    fn small_z_gives_signed_zero() {
        let ftrl = Ftrl {
            lamda1: 10.0,
            ..Ftrl::default()
        };
        let r = ftrl.at::<f32>(Step::new(0.1, 0.0, 1)).unwrap();
        // z' = 0.5 > 0: (λ1 − z')/(...) > 0, times 0 → +0; the weight term is 0 (w = 0).
        let (w, _) = r.apply(0.0, 0.5, [0.0, 0.0]);
        assert_eq!(w.to_bits(), 0.0_f32.to_bits());
        // z' = −0.5: (−λ1 + 0.5)/(...) < 0, times 0 → −0.
        let (w, _) = r.apply(0.0, -0.5, [0.0, 0.0]);
        assert_eq!(w.to_bits(), (-0.0_f32).to_bits());
    }

    #[test]
    fn nan_hyper_parameters_are_rejected() {
        let ftrl = Ftrl {
            beta: f64::NAN,
            ..Ftrl::default()
        };
        assert!(ftrl.at::<f32>(Step::new(0.1, 0.0, 1)).is_err());
    }
}
