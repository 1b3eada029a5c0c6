//! How a Python float reaches an MXNet operator parameter: Python formats it with `repr`
//! and the operator reads that decimal with dmlc-core's fast parser (`dmlc::stof` /
//! `dmlc::stod`), which is *not* correctly rounded. The parser
//!
//! * converts the digits before the point, as one `u64`, to the target type;
//! * adds the fraction, read as `u64` digits (the first 19) divided by their power of ten
//!   in `f64`, converted to the target type — two roundings, and a third for the sum;
//! * scales by `10^e`, the factor built in the target type from steps of `1e8` and `10`,
//!   with one multiplication or division;
//! * refuses (`std::out_of_range`) an exponent beyond 38 (`f32`) or 308 (`f64`), or
//!   exactly that with a significand beyond the type's range.
//!
//! For `f32` about one value in fifteen with a non-zero integer part lands one ulp away
//! from the correctly rounded result (checked against MXNet 1.6.0; `tests/fuzz/vs_mxnet.py`
//! found it).

use std::ops::{Add, Div, Mul};

/// The types dmlc-core parses into.
pub(crate) trait Parsed:
    Copy + PartialOrd + Add<Output = Self> + Mul<Output = Self> + Div<Output = Self>
{
    /// The largest decimal exponent the parser accepts.
    const MAX_EXPONENT: u32;
    /// With the largest exponent, the largest significand accepted (positive exponent)...
    const MAX_SIGNIFICAND: Self;
    /// ... and the smallest (negative exponent).
    const MIN_SIGNIFICAND: Self;
    fn from_u64(x: u64) -> Self;
    fn from_f64(x: f64) -> Self;
    fn neg(self) -> Self;
}

impl Parsed for f32 {
    const MAX_EXPONENT: u32 = 38;
    #[allow(clippy::cast_possible_truncation, clippy::excessive_precision)]
    const MAX_SIGNIFICAND: f32 = 3.402_823_466_f64 as f32;
    #[allow(clippy::cast_possible_truncation, clippy::excessive_precision)]
    const MIN_SIGNIFICAND: f32 = 1.175_494_351_f64 as f32;
    #[allow(clippy::cast_precision_loss)]
    fn from_u64(x: u64) -> f32 {
        x as f32
    }
    #[allow(clippy::cast_possible_truncation)]
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    fn neg(self) -> f32 {
        -self
    }
}

impl Parsed for f64 {
    const MAX_EXPONENT: u32 = 308;
    #[allow(clippy::excessive_precision)]
    const MAX_SIGNIFICAND: f64 = 1.797_693_134_862_315_70;
    #[allow(clippy::excessive_precision)]
    const MIN_SIGNIFICAND: f64 = 2.225_073_858_507_201_39;
    #[allow(clippy::cast_precision_loss)]
    fn from_u64(x: u64) -> f64 {
        x as f64
    }
    fn from_f64(x: f64) -> f64 {
        x
    }
    fn neg(self) -> f64 {
        -self
    }
}

/// The value an operator parameter of type `T` receives for the finite Python float `x`,
/// or `None` where MXNet raises "Out of range value".
pub(crate) fn from_python<T: Parsed>(x: f64) -> Option<T> {
    let (digits, exponent) = shortest_digits(x.abs());
    let parsed = parse::<T>(&python_layout(&digits, exponent))?;
    Some(if x.is_sign_negative() {
        parsed.neg()
    } else {
        parsed
    })
}

/// The shortest round-trip digits of a finite, non-negative `x` and the decimal exponent
/// of the first one (`x = d.ddd × 10^exponent`), as Python's `repr` chooses them.
fn shortest_digits(x: f64) -> (String, i32) {
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse().unwrap_or(0))
}

/// Python's `repr` layout (without the sign): positional for exponents -4 to 15 (with a
/// `.0` for integers), otherwise `d.ddde±XX`.
fn python_layout(digits: &str, exponent: i32) -> String {
    if !(-4..16).contains(&exponent) {
        let (lead, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{lead}{point}{rest}e{sign}{:02}", exponent.unsigned_abs());
    }
    if exponent < 0 {
        let zeros = "0".repeat(exponent.unsigned_abs() as usize - 1);
        return format!("0.{zeros}{digits}");
    }
    let point = exponent.unsigned_abs() as usize + 1;
    if digits.len() > point {
        format!("{}.{}", &digits[..point], &digits[point..])
    } else {
        format!("{digits}{}.0", "0".repeat(point - digits.len()))
    }
}

/// dmlc-core's range-checked `ParseFloat` of an unsigned decimal as `python_layout` writes it.
fn parse<T: Parsed>(text: &str) -> Option<T> {
    const MAX_FRACTION_DIGITS: usize = 19;
    let (number, exponent) = match text.split_once('e') {
        Some((number, exponent)) => (number, Some(exponent)),
        None => (text, None),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole = whole.bytes().fold(0_u64, |acc, d| {
        acc.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
    });
    let mut value = T::from_u64(whole);
    if !fraction.is_empty() {
        let kept = &fraction.as_bytes()[..fraction.len().min(MAX_FRACTION_DIGITS)];
        let (numerator, power) = kept.iter().fold((0_u64, 1_u64), |(n, p), d| {
            (n * 10 + u64::from(d - b'0'), p * 10)
        });
        #[allow(clippy::cast_precision_loss)] // the parser's own u64 -> double conversions
        let part = numerator as f64 / power as f64;
        value = value + T::from_f64(part);
    }
    let Some(exponent) = exponent else {
        return Some(value);
    };
    let negative = exponent.starts_with('-');
    let mut e: u32 = exponent.trim_start_matches(['+', '-']).parse().ok()?;
    let beyond = if negative {
        value < T::MIN_SIGNIFICAND
    } else {
        value > T::MAX_SIGNIFICAND
    };
    if e > T::MAX_EXPONENT || (e == T::MAX_EXPONENT && beyond) {
        return None;
    }
    let (ten, hundred_million) = (T::from_u64(10), T::from_u64(100_000_000));
    let mut scale = T::from_u64(1);
    while e >= 8 {
        scale = scale * hundred_million;
        e -= 8;
    }
    while e > 0 {
        scale = scale * ten;
        e -= 1;
    }
    Some(if negative {
        value / scale
    } else {
        value * scale
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(x: f64) -> String {
        let (digits, exponent) = shortest_digits(x);
        python_layout(&digits, exponent)
    }

    #[test]
    fn layout_is_pythons_repr() {
        for (x, text) in [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (1e-4, "0.0001"),
            (1.5e-5, "1.5e-05"),
            (1e-8, "1e-08"),
            (1e16, "1e+16"),
            (1_234_567_890_123_456.8, "1234567890123456.8"),
            (12_345.678, "12345.678"),
            (0.000_123_456_789_012_345_67, "0.00012345678901234567"),
        ] {
            assert_eq!(repr(x), text);
        }
    }

    #[test]
    fn values_recorded_from_mxnet() {
        // (Python float, the f32 MXNet 1.6.0's sgd_update used as lr): one ulp off the
        // correctly rounded value where the integer part and fraction round separately.
        for (x, bits) in [
            (1.957_236_684_465_528, 0x3ffa_86bc_u32),
            (1.887_496_157_029_248_3, 0x3ff1_997a),
            (12_345_678_901.25, 0x5037_f707),
            (2e-38, 0x00d9_c7dc),
            (0.1, 0x3dcc_cccd),
        ] {
            assert_eq!(from_python::<f32>(x).map(f32::to_bits), Some(bits), "{x}");
        }
        for x in [1e-38, 3.5e38, 1e-40, 1e39] {
            assert_eq!(from_python::<f32>(x), None, "{x}");
        }
        assert_eq!(from_python::<f32>(-0.5), Some(-0.5));
        assert_eq!(from_python::<f64>(1e-8), Some(1e-8));
    }
}
