//! The number types of a kernel.
//!
//! MXNet's C++ optimizer kernels receive every hyper-parameter as a decimal string parsed
//! as `f32` ([`K`]), convert it to the weight's type, and do *all* arithmetic in that type:
//! plain `f32`/`f64`, or, for `f16` weights without multi-precision, `f32` arithmetic with
//! every result rounded back to `f16` ([`Half`]) — products of two hyper-parameters such
//! as `lr·wd` included. Checked against MXNet 1.6.0 for all three types.

use half::f16;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// A kernel hyper-parameter: an `f32`, as MXNet's operators parse their parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct K(pub f32);

impl K {
    /// The `f32` MXNet's kernel sees for the Python float `x`: Python formats `x` as `repr`
    /// does and the operator reads that decimal with dmlc-core's parser, which is not
    /// correctly rounded (one value in fifteen with an integer part lands one ulp off
    /// `x as f32`). `None` where MXNet refuses the decimal as out of range although `x` is
    /// a finite `f32` (`1e-40`, `3.5e38`). NaN, infinities and values that overflow `f32`
    /// come back as `x as f32` (not finite: the callers refuse them as such).
    #[must_use]
    pub fn from_py(x: f64) -> Option<K> {
        #[allow(clippy::cast_possible_truncation)] // rounding to f32 is the point
        let direct = x as f32;
        if !direct.is_finite() {
            return Some(K(direct));
        }
        crate::decimal::from_python(x).map(K)
    }

    /// The `f32` a kernel sees for the Python float `x` as an element of a list-valued
    /// parameter (SGD's multi-tensor `lrs`/`wds`): those are read by the C++ stream, which
    /// rounds the shortest round-trip decimal of `x` correctly. That double rounding differs
    /// from a direct `x as f32` only when `x` lies within half an `f64` ulp of a midpoint
    /// between two `f32`s (the decimal is that close to `x`); only then is the decimal
    /// formatted and parsed.
    #[must_use]
    pub fn from_py_list(x: f64) -> K {
        #[allow(clippy::cast_possible_truncation)] // rounding to f32 is the point
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
    /// `self` raised to `exp`, as MXNet's `power` op computes it: C's `powf` (`pow` for
    /// `f64`); `f16` operands go through `powf` and the result is rounded to `f16`.
    #[must_use]
    fn powf(self, exp: Self) -> Self;

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
            #[inline(always)]
            fn powf(self, exp: Self) -> Self { <$T>::powf(self, exp) }
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
        Half(f16_bits_to_f32(f32_to_f16_bits(x)))
    }
}

impl From<f16> for Half {
    #[inline(always)]
    fn from(h: f16) -> Half {
        Half(f16_bits_to_f32(h.to_bits()))
    }
}

impl From<Half> for f16 {
    #[inline(always)]
    fn from(h: Half) -> f16 {
        f16::from_bits(f32_to_f16_bits(h.0))
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
    #[inline(always)]
    fn powf(self, exp: Self) -> Self {
        Half::round(self.0.powf(exp.0))
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

// `half`'s scalar conversions call an out-of-line F16C routine per value (runtime
// detected) unless the whole crate is built for F16C; `Half` converts after every
// operation, so it uses these two inlinable, branch-light versions instead (equal to
// `half` on every input: tests below). Slices still go through `half`, whose F16C path
// converts eight values per call.
#[inline(always)]
fn f16_bits_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let magnitude = h & 0x7fff;
    // Moving exponent and mantissa into place and scaling by 2^112 re-biases the exponent;
    // the multiply also normalises subnormals exactly. Infinity and NaN keep all-ones.
    let scaled = f32::from_bits(magnitude << 13) * f32::from_bits(0x7780_0000);
    let special = f32::from_bits((magnitude << 13) | 0x7f80_0000);
    let value = if magnitude >= 0x7c00 { special } else { scaled };
    f32::from_bits(value.to_bits() | ((h & 0x8000) << 16))
}

#[inline(always)]
fn f32_to_f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let a = bits & 0x7fff_ffff;
    // |x| ≥ 65520 rounds to infinity (65536 and up directly; the normal path carries into
    // the infinity exponent for [65520, 65536)); NaN keeps its top payload bits, quiet.
    let special = if a > 0x7f80_0000 {
        0x7e00 | ((a >> 13) & 0x3ff)
    } else {
        0x7c00
    };
    // Below 2^-14 the result is subnormal: adding 0.5 lines the f16 ulp (2^-24) up with
    // the f32 ulp of [0.5, 1), so the f32 addition rounds to nearest even for us.
    let subnormal = (f32::from_bits(a) + 0.5)
        .to_bits()
        .wrapping_sub(0x3f00_0000);
    // Normal: re-bias the exponent (−112 << 23), add half an ulp minus one plus the
    // parity bit (round half to even), shift the 13 extra mantissa bits out.
    let normal = a.wrapping_add(0xc800_0fff).wrapping_add((a >> 13) & 1) >> 13;
    let magnitude = if a >= 0x4780_0000 {
        special
    } else if a < 0x3880_0000 {
        subnormal
    } else {
        normal
    };
    // Every branch fits in 16 bits.
    #[allow(clippy::cast_possible_truncation)]
    let result = (magnitude | ((bits >> 16) & 0x8000)) as u16;
    result
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

/// The clip of MXNet's Python-side optimizers (the NDArray `clip` op with bounds
/// `−bound`, `bound`): `bound` if `x > bound`, `−bound` if `x < −bound`, else `x`. Unlike
/// [`kclip`] it is applied whatever the bound's sign: `0` zeroes every value and a
/// negative bound swaps the roles of the two tests.
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
    fn from_py_list_matches_decimal_parse() {
        let decimal = |x: f64| format!("{x:e}").parse::<f32>().unwrap();
        for x in [
            0.1,
            0.01,
            1e-8,
            1.0 / 3.0,
            123.456,
            -2.5e-5,
            1e-40,
            3.5e38,
            1e300,
        ] {
            assert_eq!(K::from_py_list(x).0.to_bits(), decimal(x).to_bits(), "{x}");
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
                assert_eq!(
                    K::from_py_list(x).0.to_bits(),
                    decimal(x).to_bits(),
                    "{x:e}"
                );
            }
        }
    }

    #[test]
    fn from_py_is_mxnets_parse() {
        let bits = |x: f64| K::from_py(x).map(|k| k.0.to_bits());
        assert_eq!(bits(0.1), Some(0.1_f32.to_bits()));
        assert_eq!(bits(1e-8), Some(1e-8_f32.to_bits()));
        // MXNet 1.6.0: lr=1.957236684465528 reaches sgd_update as 0x3ffa86bc, one ulp
        // above the correctly rounded 0x3ffa86bb.
        assert_eq!(bits(1.957_236_684_465_528), Some(0x3ffa_86bc));
        // Refused by MXNet's parser although a (subnormal) f32 ...
        assert_eq!(bits(1e-40), None);
        // ... and overflowing f32: not finite, refused as such by the callers.
        assert_eq!(bits(3.5e38), Some(f32::INFINITY.to_bits()));
        assert!(K::from_py(f64::NAN).is_some_and(|k| k.0.is_nan()));
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
        let w = 1.0_f64 - 0.1_f64 * f64::from_k(K::from_py(0.01).unwrap());
        assert_eq!(w, 1.0 - 0.1 * f64::from(0.01_f32));
    }

    #[test]
    fn widening_equals_half_for_every_f16() {
        for bits in 0..=u16::MAX {
            let (w, expect) = (f16_bits_to_f32(bits), f16::from_bits(bits).to_f32());
            assert!(w.to_bits() == expect.to_bits() || (w.is_nan() && expect.is_nan()));
        }
    }

    #[test]
    fn narrowing_equals_half() {
        // Every f16 value, the midpoints between neighbours (ties) and their f32
        // neighbours, then a spread of other bit patterns, both signs.
        let mut inputs = vec![];
        for h in 0..0x7c00_u16 {
            let lo = f16::from_bits(h).to_f32();
            let hi = f16::from_bits(h + 1).to_f32();
            let mid = lo + (hi - lo) / 2.0;
            inputs.extend([lo, mid, mid.next_down(), mid.next_up(), hi]);
        }
        inputs.extend((0..1_000_000_u32).map(|i| f32::from_bits(i.wrapping_mul(0x9e37_79b9))));
        inputs.extend([
            f32::INFINITY,
            f32::MAX,
            65520.0,
            65519.99,
            f32::MIN_POSITIVE,
            0.0,
        ]);
        for x in inputs.iter().flat_map(|&x| [x, -x]) {
            let h = f16::from_bits(f32_to_f16_bits(x));
            let expect = f16::from_f32(x);
            assert!(
                h.to_bits() == expect.to_bits() || (h.is_nan() && expect.is_nan()),
                "{x:e}: {:#x} != {:#x}",
                h.to_bits(),
                expect.to_bits()
            );
        }
    }

    #[test]
    fn half_pow_is_computed_in_f32_and_rounded() {
        let beta = Half::from_k(K(0.9995));
        let t = Half::from_f64(3001.0); // 3001 is not an f16: t itself rounds to 3000
        assert_eq!(t.0, 3000.0);
        let expect = f16::from_f32(beta.0.powf(3000.0)).to_f32();
        assert_eq!(beta.powf(t).0, expect);
    }

    #[test]
    fn kclip_bounds_and_nan() {
        assert_eq!(kclip(3.0_f32, 1.0), 1.0);
        assert_eq!(kclip(-3.0_f32, 1.0), -1.0);
        assert_eq!(kclip(0.5_f32, 1.0), 0.5);
        assert!(kclip(f32::NAN, 1.0).is_nan());
    }

    #[test]
    fn pyclip_zero_and_negative_bounds() {
        assert_eq!(pyclip(3.0_f32, 1.0), 1.0);
        assert_eq!(pyclip(-3.0_f32, 1.0), -1.0);
        assert_eq!(pyclip(0.5_f32, 0.0), 0.0);
        assert_eq!(pyclip(-0.5_f32, 0.0), 0.0);
        // With c = −1: every x > −1 becomes −1, every smaller x becomes 1.
        let clipped = [0.5_f32, -0.5, 3.0, -3.0].map(|x| pyclip(x, -1.0));
        assert_eq!(clipped, [-1.0, -1.0, -1.0, 1.0]);
        assert!(pyclip(f32::NAN, 1.0).is_nan());
    }
}
