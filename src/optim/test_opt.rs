//! MXNet's `Test` optimizer (registry name `test`): `w ← w + rescale_grad·g`, the state a
//! copy of the new weight. It ignores the learning rate, weight decay and clipping, and
//! does not count updates. Each operation rounds in the weight's type (NDArray ops).

use crate::real::Elem;
use crate::rule::{scalar, Rule};
use crate::Result;

/// `Test`'s hyper-parameters, with MXNet 1.6's defaults.
///
/// Defaults: `rescale_grad = 1`.
///
/// ```
/// use mxopt::{engine, optim::test_opt::Test};
/// let rule = Test { rescale_grad: 0.5 }.at::<f32>()?;
/// let (mut w, g, mut mirror) = (vec![1.0_f32; 2], vec![2.0_f32; 2], vec![0.0_f32; 2]);
/// engine::run(&rule, engine::Dense::new(&mut w, &g, [&mut mirror])?);
/// assert_eq!((w[0], mirror[0]), (2.0, 2.0));
/// assert!(Test { rescale_grad: f64::NAN }.at::<f32>().is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Test {
    /// Factor applied to the gradient.
    pub rescale_grad: f64,
}

impl Default for Test {
    fn default() -> Self {
        Test { rescale_grad: 1.0 }
    }
}

impl Test {
    /// The update (it takes no step: learning rate and weight decay are ignored).
    ///
    /// # Errors
    /// [`Error::NotFinite`](crate::Error::NotFinite) for a `rescale_grad` that is NaN or
    /// not finite in `E`.
    pub fn at<E: Elem>(&self) -> Result<TestRule<E>> {
        Ok(TestRule {
            rs: scalar("rescale_grad", self.rescale_grad)?,
        })
    }
}

/// `w' = w + g·rs`; the state becomes `w'`.
#[derive(Clone, Copy, Debug)]
pub struct TestRule<E> {
    rs: E,
}

impl<E: Elem> Rule<E, 1> for TestRule<E> {
    #[inline(always)]
    fn apply(&self, w: E, g: E, _: [E; 1]) -> (E, [E; 1]) {
        let w = w + g * self.rs;
        (w, [w])
    }
}

#[cfg(feature = "wgpu")]
impl crate::gpu::Kernel<1> for TestRule<f32> {
    const SOURCE: crate::gpu::Source = crate::gpu::Source {
        name: "test",
        fields: &["rs"],
        rule: &[r"
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    let w_new = w + g * h.rs;
    (*s)[0] = w_new;
    return w_new;
}
"],
        ..crate::gpu::Source::ELEMENTWISE
    };
    fn hyper(&self) -> Vec<f32> {
        vec![self.rs]
    }
}
