//! The number types of a kernel.
//!
//! MXNet's C++ optimizer kernels receive every hyper-parameter as a decimal string parsed
//! as `f32` ([`K`]), convert it to the weight's type, and do *all* arithmetic in that type:
//! plain `f32`/`f64`, or, for `f16` weights without multi-precision, `f32` arithmetic with
//! every result rounded back to `f16` ([`Half`]) — products of two hyper-parameters such
//! as `lr·wd` included. Spec: optimizers.md §0.3; checked against MXNet 1.6.0 for all three
//! types.

use half::f16;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// A kernel hyper-parameter: an `f32`, as MXNet's operators parse their parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct K(pub f32);

impl K {
    /// The `f32` MXNet's kernel sees for the Python float `x`: Python formats `x` as its
    /// shortest round-trip decimal and the operator parses that string as `f32`. That
    /// double rounding differs from a direct `x as f32` only when `x` lies within half an
    /// `f64` ulp of a midpoint between two `f32`s (the decimal is that close to `x`); only
    /// then is the decimal formatted and parsed.
    #[must_use]
    pub fn from_py(x: f64) -> K {
        let direct = x as f32;
        if f64::from(direct) == x || !direct.is_finite() || direct == 0.0 {
            return K(direct);
        }
        let toward_x = if f64::from(direct) < x {
            direct.next_up()
        } else {
            direct.next_down()
        };
        let midpoint = (f64::from(direct) + f64::from(toward_x)) / 2.0; // exact in f64
        let ulp = x.abs().next_up() - x.abs();
        if (x - midpoint).abs() > ulp {
            return K(direct);
        }
        K(format!("{x:e}").parse().unwrap_or(direct))
    }
}

/// A type kernels compute element maths in, hyper-parameters included.
pub trait Elem:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// The hyper-parameter converted to this type (MXNet's `DType(param)`).
    fn from_k(k: K) -> Self;
    /// A Python float as an NDArray scalar operation sees it: converted straight to this
    /// type (full precision for `f64`; through `f32` for `f16`, as `half_t(double)` does).
    fn from_f64(x: f64) -> Self;
    /// Widened to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Zero.
    fn zero() -> Self;
    /// One.
    fn one() -> Self;
    /// Square root, rounded to this type.
    #[must_use]
    fn sqrt(self) -> Self;
    /// Absolute value (exact in every type).
    #[must_use]
    fn abs(self) -> Self;
    /// Whether the value is neither NaN nor infinite.
    fn is_finite(self) -> bool;

    /// MXNet's `maximum`: `self` if `self > other`, else `other` (so a NaN `self` loses).
    #[inline(always)]
    #[must_use]
    fn max(self, other: Self) -> Self {
        if self > other {
            self
        } else {
            other
        }
    }

    /// MXNet's `sign`: `1` for positive, `−1` for negative, `0` for zeros and NaN.
    #[inline(always)]
    #[must_use]
    fn sgn(self) -> Self {
        if self > Self::zero() {
            Self::one()
        } else if self < Self::zero() {
            -Self::one()
        } else {
            Self::zero()
        }
    }
}

macro_rules! native_elem {
    ($($T:ty)*) => {$(
        impl Elem for $T {
            #[inline(always)]
            fn from_k(k: K) -> Self { <$T>::from(k.0) }
            #[inline(always)]
            #[allow(clippy::cast_possible_truncation)] // rounding to the type is the point
            fn from_f64(x: f64) -> Self { x as $T }
            #[inline(always)]
            fn to_f64(self) -> f64 { f64::from(self) }
            #[inline(always)]
            fn zero() -> Self { 0.0 }
            #[inline(always)]
            fn one() -> Self { 1.0 }
            #[inline(always)]
            fn sqrt(self) -> Self { <$T>::sqrt(self) }
            #[inline(always)]
            fn abs(self) -> Self { <$T>::abs(self) }
            #[inline(always)]
            fn is_finite(self) -> bool { <$T>::is_finite(self) }
        }
    )*};
}
native_elem!(f32 f64);

/// An `f16` value being computed on: held as the `f32` it converts to exactly, with every
/// operation done in `f32` and rounded back to `f16` (round to nearest even), as MXNet's
/// `half_t` arithmetic does.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Half(f32);

impl Half {
    #[inline(always)]
    fn round(x: f32) -> Half {
        Half(f16::from_f32(x).to_f32())
    }
}

impl From<f16> for Half {
    #[inline(always)]
    fn from(h: f16) -> Half {
        Half(h.to_f32())
    }
}

impl From<Half> for f16 {
    #[inline(always)]
    fn from(h: Half) -> f16 {
        f16::from_f32(h.0)
    }
}

macro_rules! half_ops {
    ($($Op:ident $op:ident)*) => {$(
        impl $Op for Half {
            type Output = Half;
            #[inline(always)]
            fn $op(self, rhs: Half) -> Half { Half::round(self.0.$op(rhs.0)) }
        }
    )*};
}
half_ops!(Add add Sub sub Mul mul Div div);

impl Neg for Half {
    type Output = Half;
    #[inline(always)]
    fn neg(self) -> Half {
        Half(-self.0)
    }
}

impl Elem for Half {
    #[inline(always)]
    fn from_k(k: K) -> Self {
        Half::round(k.0)
    }
    #[inline(always)]
    #[allow(clippy::cast_possible_truncation)]
    fn from_f64(x: f64) -> Self {
        Half::round(x as f32)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self.0)
    }
    #[inline(always)]
    fn zero() -> Self {
        Half(0.0)
    }
    #[inline(always)]
    fn one() -> Self {
        Half(1.0)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Half::round(self.0.sqrt())
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Half(self.0.abs())
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        self.0.is_finite()
    }
}

/// How an array element is stored, and the type it is computed in.
pub trait Storage: Copy + Send + Sync + 'static {
    /// The compute type.
    type Elem: Elem;
    /// Reads a stored element.
    fn load(self) -> Self::Elem;
    /// Stores a computed value.
    fn store(e: Self::Elem) -> Self;
}

impl Storage for f32 {
    type Elem = f32;
    #[inline(always)]
    fn load(self) -> f32 {
        self
    }
    #[inline(always)]
    fn store(e: f32) -> f32 {
        e
    }
}

impl Storage for f64 {
    type Elem = f64;
    #[inline(always)]
    fn load(self) -> f64 {
        self
    }
    #[inline(always)]
    fn store(e: f64) -> f64 {
        e
    }
}

impl Storage for f16 {
    type Elem = Half;
    #[inline(always)]
    fn load(self) -> Half {
        Half::from(self)
    }
    #[inline(always)]
    fn store(e: Half) -> f16 {
        f16::from(e)
    }
}

/// MXNet's kernel clip: `c` if `x > c`, `−c` if `x < −c`, else `x` (NaN passes through).
#[inline(always)]
pub fn kclip<E: Elem>(x: E, hi: E) -> E {
    let lo = -hi;
    if x > hi {
        hi
    } else if x < lo {
        lo
    } else {
        x
    }
}

/// The clip of MXNet's Python-side optimizers (`NDArray.clip(-bound, bound)`): `hi` if
/// `x > hi`, `lo` if `x < lo`, else `x`, with `lo = −bound` and `hi = bound`. Unlike
/// [`kclip`] it applies to any bound: `0` zeroes everything and a negative bound scrambles
/// signs (spec §0.4).
#[inline(always)]
pub fn pyclip<E: Elem>(x: E, bound: E) -> E {
    let (lo, hi) = (-bound, bound);
    if x > hi {
        hi
    } else if x < lo {
        lo
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_py_matches_decimal_parse() {
        let decimal = |x: f64| format!("{x:e}").parse::<f32>().unwrap();
        for x in [
            0.1,
            0.01,
            1e-8,
            0.9,
            1.0 / 3.0,
            123.456,
            -2.5e-5,
            1e-40,
            3.5e38,
            1e300,
        ] {
            assert_eq!(K::from_py(x).0.to_bits(), decimal(x).to_bits(), "{x}");
        }
        // Values next to f32 rounding midpoints, where a direct cast can differ.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let f = f32::from_bits((state >> 33) as u32 & 0x7f7f_ffff);
            let mid = (f64::from(f) + f64::from(f.next_up())) / 2.0;
            for x in [mid, mid.next_up(), mid.next_down(), f64::from(f)] {
                assert_eq!(K::from_py(x).0.to_bits(), decimal(x).to_bits(), "{x:e}");
            }
        }
    }

    #[test]
    fn half_rounds_after_every_operation() {
        // 2049 is not an f16; 2048 + 1 rounds to 2048 (ties to even).
        let a = Half::from(f16::from_f32(2048.0));
        let b = Half::from(f16::from_f32(1.0));
        assert_eq!(f16::from(a + b).to_f32(), 2048.0);
        // Hyper-parameters are rounded to f16 too.
        assert_eq!(Half::from_k(K(0.1)).0, f16::from_f32(0.1).to_f32());
    }

    #[test]
    fn f64_widens_f32_parameters() {
        let w = 1.0_f64 - 0.1_f64 * f64::from_k(K::from_py(0.01));
        assert_eq!(w, 1.0 - 0.1 * f64::from(0.01_f32));
    }

    #[test]
    fn kclip_bounds_and_nan() {
        assert_eq!(kclip(3.0_f32, 1.0), 1.0);
        assert_eq!(kclip(-3.0_f32, 1.0), -1.0);
        assert_eq!(kclip(0.5_f32, 1.0), 0.5);
        assert!(kclip(f32::NAN, 1.0).is_nan());
    }

    #[test]
    fn pyclip_negative_bound_scrambles() {
        let clipped = [0.5_f32, -0.5, 3.0, -3.0].map(|x| pyclip(x, -1.0));
        assert_eq!(clipped, [-1.0, -1.0, -1.0, 1.0]);
        assert_eq!(pyclip(2.0_f32, 0.0), 0.0);
    }
}
