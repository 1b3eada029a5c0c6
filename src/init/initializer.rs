//! MXNet's initializers for native users, drawing from the same seeded fills as the Python
//! package: with the same seed, the same sequence of calls gives the same numbers.

use super::{fill_normal, fill_orthogonal, fill_uniform, Element, OrthogonalRand};
use crate::{Error, Result};

/// The seed a fresh [`Generator`] starts from (`mxopt.random.DEFAULT_SEED`).
pub const DEFAULT_SEED: u64 = 0;

/// A seeded source of fills, the Rust twin of `mxopt.random`: every fill takes the next
/// `(seed, stream)` pair, so successive fills differ and re-seeding replays them.
///
/// ```
/// use mxopt::init::Generator;
/// let mut gen = Generator::new(42);
/// let mut a = vec![0.0_f32; 8];
/// gen.uniform(-1.0, 1.0, &mut a)?;
/// let mut b = vec![0.0_f32; 8];
/// gen.uniform(-1.0, 1.0, &mut b)?; // the next stream: different values
/// assert_ne!(a, b);
/// gen.seed(42);
/// gen.uniform(-1.0, 1.0, &mut b)?; // replayed
/// assert_eq!(a, b);
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Generator {
    seed: u64,
    count: u64,
}

impl Default for Generator {
    fn default() -> Self {
        Generator::new(DEFAULT_SEED)
    }
}

impl Generator {
    /// A generator seeded with `seed` (`mxopt.random.seed(seed)`: Python reduces the seed
    /// modulo 2⁶⁴, the same `u64`).
    #[must_use]
    pub const fn new(seed: u64) -> Generator {
        Generator { seed, count: 0 }
    }

    /// Re-seeds and restarts the stream counter.
    pub fn seed(&mut self, seed: u64) {
        *self = Generator::new(seed);
    }

    /// Reserves the next `(seed, stream)` pair (`mxopt.random.next_stream()`).
    pub fn next_stream(&mut self) -> (u64, u64) {
        let pair = (self.seed, self.count);
        self.count += 1;
        pair
    }

    /// Fills `out` with draws from U[low, high) on the next stream.
    ///
    /// # Errors
    /// [`Error::Fill`] for a non-finite bound or `low > high` (nothing written; the stream
    /// is consumed, as in Python).
    pub fn uniform<T: Element>(&mut self, low: f64, high: f64, out: &mut [T]) -> Result<()> {
        let (seed, stream) = self.next_stream();
        Ok(fill_uniform(out, low, high, seed, stream)?)
    }

    /// Fills `out` with draws from N(loc, scale²) on the next stream.
    ///
    /// # Errors
    /// [`Error::Fill`] for a non-finite parameter or `scale < 0`.
    pub fn normal<T: Element>(&mut self, loc: f64, scale: f64, out: &mut [T]) -> Result<()> {
        let (seed, stream) = self.next_stream();
        Ok(fill_normal(out, loc, scale, seed, stream)?)
    }
}

/// Xavier's distribution (`rnd_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RandType {
    /// U[−s, s) (MXNet's default, `"uniform"`).
    #[default]
    Uniform,
    /// N(0, s²) (`"gaussian"`).
    Gaussian,
}

/// Which fan Xavier divides by (`factor_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FactorType {
    /// `(fan_in + fan_out) / 2` (MXNet's default, `"avg"`).
    #[default]
    Avg,
    /// `fan_in` (`"in"`).
    In,
    /// `fan_out` (`"out"`).
    Out,
}

/// An initializer's weight fill (MXNet's `_init_weight`), with MXNet 1.6's parameters.
///
/// Defaults: [`Initializer::UNIFORM`] (`scale = 0.07`), [`Initializer::NORMAL`]
/// (`sigma = 0.01`), [`Initializer::XAVIER`] (uniform, avg, `magnitude = 3`),
/// [`Initializer::MSRA_PRELU`] (avg, `slope = 0.25`).
///
/// ```
/// use mxopt::init::{FactorType, Generator, Initializer, RandType};
/// let mut gen = Generator::new(7);
/// let mut w = vec![0.0_f32; 64 * 3 * 3 * 3];
/// let xavier = Initializer::Xavier {
///     rnd_type: RandType::Gaussian,
///     factor_type: FactorType::In,
///     magnitude: 2.0,
/// };
/// xavier.init(&mut gen, &[64, 3, 3, 3], &mut w)?;
/// Initializer::UNIFORM.init(&mut gen, &[10], &mut w[..10])?;
/// assert!(w[..10].iter().all(|x| x.abs() <= 0.07));
/// // Xavier needs two dimensions.
/// assert!(Initializer::XAVIER.init(&mut gen, &[10], &mut w[..10]).is_err());
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Initializer {
    /// All zeros (`Zero`).
    Zero,
    /// All ones (`One`).
    One,
    /// Every element `value`, rounded to the element type as MXNet's fill operator does
    /// (`Constant` with a scalar): `-0.0` fills `+0.0`, and float16 receives the value
    /// rounded to float32 first.
    Constant(f64),
    /// U[−scale, scale) (`Uniform`, default `scale = 0.07`).
    Uniform {
        /// Half-width of the interval.
        scale: f64,
    },
    /// N(0, sigma²) (`Normal`, default `sigma = 0.01`).
    Normal {
        /// Standard deviation.
        sigma: f64,
    },
    /// `Xavier`: scale `s = √(magnitude / factor)` with `hw = ∏shape[2..]`,
    /// `fan_in = shape[1]·hw`, `fan_out = shape[0]·hw`. Needs ≥ 2 dimensions.
    Xavier {
        /// Uniform or Gaussian draws (default uniform).
        rnd_type: RandType,
        /// The fan divided by (default avg).
        factor_type: FactorType,
        /// Numerator of the variance (default 3).
        magnitude: f64,
    },
    /// `MSRAPrelu`: Gaussian Xavier with `magnitude = 2 / (1 + slope²)`.
    MsraPrelu {
        /// The fan divided by (default avg).
        factor_type: FactorType,
        /// The PReLU negative slope (default 0.25).
        slope: f64,
    },
    /// `Orthogonal`: the array seen as `(shape[0], ∏shape[1..])`, `scale` times an
    /// orthonormal factor of a random matrix of that shape (see
    /// [`fill_orthogonal`](super::fill_orthogonal)). Needs ≥ 2 dimensions.
    Orthogonal {
        /// Factor of the orthonormal matrix (default 1.414).
        scale: f64,
        /// The random matrix's draws (default uniform).
        rand_type: OrthogonalRand,
    },
}

impl Initializer {
    /// `Uniform()`: `scale = 0.07`.
    pub const UNIFORM: Initializer = Initializer::Uniform { scale: 0.07 };
    /// `Normal()`: `sigma = 0.01`.
    pub const NORMAL: Initializer = Initializer::Normal { sigma: 0.01 };
    /// `Xavier()`: uniform draws, `factor_type = "avg"`, `magnitude = 3`.
    pub const XAVIER: Initializer = Initializer::Xavier {
        rnd_type: RandType::Uniform,
        factor_type: FactorType::Avg,
        magnitude: 3.0,
    };
    /// `Orthogonal()`: `scale = 1.414`, uniform draws.
    pub const ORTHOGONAL: Initializer = Initializer::Orthogonal {
        scale: 1.414,
        rand_type: OrthogonalRand::Uniform,
    };
    /// `MSRAPrelu()`: `factor_type = "avg"`, `slope = 0.25`.
    pub const MSRA_PRELU: Initializer = Initializer::MsraPrelu {
        factor_type: FactorType::Avg,
        slope: 0.25,
    };

    /// Fills `out`, a C-order array of shape `shape`, as the Python initializer's
    /// `_init_weight` does, taking the next stream of `gen` for a random fill.
    ///
    /// # Errors
    /// [`Error::Length`] when `out.len()` is not the product of `shape`;
    /// [`Error::Init`] when Xavier, MSRAPrelu or Orthogonal get fewer than 2 dimensions;
    /// [`Error::Fill`] for a non-finite scale, or a negative `sigma`. Nothing is written
    /// then.
    pub fn init<T: Element>(
        &self,
        gen: &mut Generator,
        shape: &[usize],
        out: &mut [T],
    ) -> Result<()> {
        let size: usize = shape.iter().product();
        if size != out.len() {
            return Err(Error::Length {
                what: "out",
                expected: size,
                got: out.len(),
            });
        }
        match *self {
            Initializer::Zero => out.fill(T::from_f64(0.0)),
            Initializer::One => out.fill(T::from_f64(1.0)),
            Initializer::Constant(value) => out.fill(mxnet_fill_value(value)),
            Initializer::Uniform { scale } => gen.uniform(-scale, scale, out)?,
            Initializer::Normal { sigma } => gen.normal(0.0, sigma, out)?,
            Initializer::Xavier {
                rnd_type,
                factor_type,
                magnitude,
            } => xavier(gen, shape, out, rnd_type, factor_type, magnitude)?,
            Initializer::MsraPrelu { factor_type, slope } => {
                let magnitude = 2.0 / (1.0 + slope * slope);
                xavier(gen, shape, out, RandType::Gaussian, factor_type, magnitude)?;
            }
            Initializer::Orthogonal { scale, rand_type } => {
                let [nout, rest @ ..] = shape else {
                    return Err(too_flat("Orthogonal", shape));
                };
                if rest.is_empty() {
                    return Err(too_flat("Orthogonal", shape));
                }
                let (seed, stream) = gen.next_stream();
                let nin = rest.iter().product();
                fill_orthogonal(out, *nout, nin, scale, rand_type, seed, stream)?;
            }
        }
        Ok(())
    }
}

#[allow(clippy::cast_precision_loss)] // Python's float(int)
fn xavier<T: Element>(
    gen: &mut Generator,
    shape: &[usize],
    out: &mut [T],
    rnd_type: RandType,
    factor_type: FactorType,
    magnitude: f64,
) -> Result<()> {
    let [fan_out, fan_in, rest @ ..] = shape else {
        return Err(too_flat("Xavier", shape));
    };
    if !(0.0..f64::INFINITY).contains(&magnitude) {
        return Err(Error::Init(format!(
            "Xavier: magnitude must be a finite non-negative number, got {magnitude}"
        )));
    }
    if out.is_empty() {
        return Ok(()); // nothing to draw (and a zero fan: MXNet divides by zero)
    }
    let hw_scale = if rest.is_empty() {
        1.0
    } else {
        rest.iter().product::<usize>() as f64
    };
    let (fan_in, fan_out) = (*fan_in as f64 * hw_scale, *fan_out as f64 * hw_scale);
    let factor = match factor_type {
        FactorType::Avg => (fan_in + fan_out) / 2.0,
        FactorType::In => fan_in,
        FactorType::Out => fan_out,
    };
    let scale = (magnitude / factor).sqrt();
    match rnd_type {
        RandType::Uniform => gen.uniform(-scale, scale, out),
        RandType::Gaussian => gen.normal(0.0, scale, out),
    }
}

fn too_flat(initializer: &str, shape: &[usize]) -> Error {
    Error::Init(format!(
        "{initializer} initializer needs an array of at least 2 dimensions, got shape {shape:?}"
    ))
}

/// `value` as MXNet's fill operator writes it into a `T` array: +0 for a zero of either
/// sign, and through float32 for float16 (so a value just above a float16 tie can round
/// down).
fn mxnet_fill_value<T: Element>(value: f64) -> T {
    let value = if value == 0.0 { 0.0 } else { value };
    if T::WIDE {
        return T::from_f64(value);
    }
    let mut narrowed = [T::from_f64(0.0)];
    T::store_f32(&mut narrowed, &[value as f32]);
    narrowed[0]
}
