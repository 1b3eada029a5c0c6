//! The element types a fill can write: `f32`, `f64` and `half::f16`.

use half::{f16, slice::HalfFloatSliceExt};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
}

/// A floating-point element type that the fills can write (sealed: `f16`, `f32`, `f64`).
///
/// Values are generated in `f64` (for `f64`) or `f32` (for `f16`/`f32`) and rounded to
/// nearest once when stored.
pub trait Element: Copy + Send + Sync + PartialOrd + 'static + sealed::Sealed {
    /// `true` when draws need 64 random bits and `f64` arithmetic to cover the mantissa
    /// (only `f64`); narrower types draw 32 bits per try and compute in `f32`.
    const WIDE: bool;

    /// Rounds each `f64` of `src` to `Self` into the same position of `dst` (equal lengths).
    fn store(dst: &mut [Self], src: &[f64]);

    /// Converts each `f32` of `src` to `Self` into the same position of `dst` (equal lengths).
    fn store_f32(dst: &mut [Self], src: &[f32]);

    /// Rounds one `f64` to `Self`.
    fn from_f64(x: f64) -> Self;

    /// Widens to `f64` exactly.
    fn to_f64(self) -> f64;

    /// The largest value of `Self` strictly below `x` (for finite `x`).
    fn below(x: f64) -> Self;
}

impl Element for f64 {
    const WIDE: bool = true;

    fn store(dst: &mut [f64], src: &[f64]) {
        dst.copy_from_slice(src);
    }

    fn store_f32(dst: &mut [f64], src: &[f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f64::from(s);
        }
    }

    fn from_f64(x: f64) -> f64 {
        x
    }

    fn to_f64(self) -> f64 {
        self
    }

    fn below(x: f64) -> f64 {
        let bits = x.to_bits();
        if x == 0.0 {
            -f64::from_bits(1)
        } else if x > 0.0 {
            f64::from_bits(bits - 1)
        } else {
            f64::from_bits(bits + 1)
        }
    }
}

impl Element for f32 {
    const WIDE: bool = false;

    fn store(dst: &mut [f32], src: &[f64]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s as f32;
        }
    }

    fn store_f32(dst: &mut [f32], src: &[f32]) {
        dst.copy_from_slice(src);
    }

    fn from_f64(x: f64) -> f32 {
        x as f32
    }

    fn to_f64(self) -> f64 {
        f64::from(self)
    }

    fn below(x: f64) -> f32 {
        let mut y = x as f32;
        while f64::from(y) >= x {
            y = if y == 0.0 {
                -f32::from_bits(1)
            } else if y > 0.0 {
                f32::from_bits(y.to_bits() - 1)
            } else {
                f32::from_bits(y.to_bits() + 1)
            };
        }
        y
    }
}

impl Element for f16 {
    const WIDE: bool = false;

    fn store(dst: &mut [f16], src: &[f64]) {
        // Narrow through f32 a chunk at a time so half's vectorised conversion does the work.
        let mut buf = [0.0f32; 256];
        for (d, s) in dst.chunks_mut(buf.len()).zip(src.chunks(buf.len())) {
            let b = &mut buf[..s.len()];
            f32::store(b, s);
            d.convert_from_f32_slice(b);
        }
    }

    fn store_f32(dst: &mut [f16], src: &[f32]) {
        dst.convert_from_f32_slice(src);
    }

    fn from_f64(x: f64) -> f16 {
        f16::from_f64(x)
    }

    fn to_f64(self) -> f64 {
        f64::from(self)
    }

    fn below(x: f64) -> f16 {
        let mut y = f16::from_f64(x);
        while f64::from(y) >= x {
            let bits = y.to_bits();
            y = if bits & 0x7fff == 0 {
                f16::from_bits(0x8001)
            } else if bits & 0x8000 == 0 {
                f16::from_bits(bits - 1)
            } else {
                f16::from_bits(bits + 1)
            };
        }
        y
    }
}
