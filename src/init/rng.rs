//! Per-block ChaCha8 substreams and the scalar samplers (uniform, ziggurat normal).

use std::sync::OnceLock;

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Domain tag stored in the upper half of the ChaCha key, so that mxopt's fills never share a
/// keystream with another user of the same 64-bit seed.
const KEY_TAG: [u8; 16] = *b"mxopt/init/fill1";

/// The generator of block `block` for the fill identified by `(seed, stream)`.
///
/// The key holds `seed` and `stream` (little endian) and [`KEY_TAG`]; the ChaCha nonce is the
/// block index, so every block starts its own independent keystream at word 0.
pub(crate) fn block_rng(seed: u64, stream: u64, block: u64) -> BlockRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&stream.to_le_bytes());
    key[16..].copy_from_slice(&KEY_TAG);
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(block);
    BlockRng(rng)
}

/// One block's generator with the samplers the fills need.
pub(crate) struct BlockRng(ChaCha8Rng);

const TWO_POW_M32: f64 = 1.0 / 4_294_967_296.0;
const TWO_POW_M53: f64 = 1.0 / 9_007_199_254_740_992.0;

impl BlockRng {
    /// Uniform on `[0, 1)` from 32 random bits.
    #[inline]
    pub(crate) fn unit32(&mut self) -> f64 {
        f64::from(self.0.next_u32()) * TWO_POW_M32
    }

    /// Uniform on `[0, 1)` from 53 random bits.
    #[inline]
    pub(crate) fn unit53(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * TWO_POW_M53
    }

    /// Uniform on `(0, 1]` from 53 random bits (safe to take the logarithm of).
    #[inline]
    fn open_unit53(&mut self) -> f64 {
        ((self.0.next_u64() >> 11) + 1) as f64 * TWO_POW_M53
    }

    /// One standard normal draw (ziggurat method of Marsaglia and Tsang, 256 layers).
    #[inline]
    pub(crate) fn standard_normal(&mut self) -> f64 {
        let z = ziggurat();
        loop {
            let bits = self.0.next_u64();
            // Low 8 bits pick the layer, the top 53 bits give a signed uniform in [-1, 1).
            let i = (bits & 0xff) as usize;
            let u = 2.0 * ((bits >> 11) as f64 * TWO_POW_M53) - 1.0;
            let x = u * z.x[i];
            if x.abs() < z.x[i + 1] {
                return x;
            }
            if i == 0 {
                return self.normal_tail(u < 0.0);
            }
            // Wedge between the rectangle and the curve: accept under the density.
            let y = z.f[i] + (z.f[i + 1] - z.f[i]) * self.unit53();
            if y < (-0.5 * x * x).exp() {
                return x;
            }
        }
    }

    /// A draw from the normal tail beyond `R` (Marsaglia's exponential rejection).
    fn normal_tail(&mut self, negative: bool) -> f64 {
        loop {
            let a = -self.open_unit53().ln() / ZIG_R;
            let b = -self.open_unit53().ln();
            if 2.0 * b > a * a {
                let x = ZIG_R + a;
                return if negative { -x } else { x };
            }
        }
    }
}

/// Start of the tail for 256 layers.
const ZIG_R: f64 = 3.654_152_885_361_009;
/// Area of every layer (and of the base strip with its tail) for 256 layers.
const ZIG_V: f64 = 0.004_928_673_233_99;

/// Layer edges `x[0..=256]` (decreasing, `x[1] = R`, `x[256] = 0`) and `f[i] = exp(-x[i]²/2)`.
struct Ziggurat {
    x: [f64; 257],
    f: [f64; 257],
}

fn ziggurat() -> &'static Ziggurat {
    static TABLES: OnceLock<Ziggurat> = OnceLock::new();
    TABLES.get_or_init(|| {
        let density = |x: f64| (-0.5 * x * x).exp();
        let mut x = [0.0f64; 257];
        x[0] = ZIG_V / density(ZIG_R);
        x[1] = ZIG_R;
        for i in 2..256 {
            // Layer i-1 has width x[i-1] and area V, so its top sits at f(x[i-1]) + V/x[i-1].
            x[i] = (-2.0 * (ZIG_V / x[i - 1] + density(x[i - 1])).ln()).sqrt();
        }
        x[256] = 0.0;
        let mut f = [0.0f64; 257];
        for (fi, &xi) in f.iter_mut().zip(&x) {
            *fi = density(xi);
        }
        Ziggurat { x, f }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ziggurat_tables_close_at_the_top() {
        let z = ziggurat();
        assert!(z.x.windows(2).all(|w| w[0] > w[1]));
        // The top layer's edge must land just above zero: a wrong R/V pair drifts far off.
        assert!(z.x[255] > 0.0 && z.x[255] < 0.3, "x[255] = {}", z.x[255]);
        assert!((z.f[256] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn blocks_and_streams_differ() {
        let a = block_rng(1, 0, 0).0.next_u64();
        let b = block_rng(1, 0, 1).0.next_u64();
        let c = block_rng(1, 1, 0).0.next_u64();
        let d = block_rng(2, 0, 0).0.next_u64();
        assert!(a != b && a != c && a != d && b != c);
        assert_eq!(a, block_rng(1, 0, 0).0.next_u64());
    }

    #[test]
    fn standard_normal_moments() {
        let mut rng = block_rng(7, 3, 0);
        let n = 200_000;
        let (mut s1, mut s2, mut s4) = (0.0, 0.0, 0.0);
        let mut beyond3 = 0usize;
        for _ in 0..n {
            let z = rng.standard_normal();
            s1 += z;
            s2 += z * z;
            s4 += z * z * z * z;
            if z.abs() > 3.0 {
                beyond3 += 1;
            }
        }
        let nf = n as f64;
        let mean = s1 / nf;
        let var = s2 / nf - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "var {var}");
        assert!((s4 / nf - 3.0).abs() < 0.1, "kurtosis {}", s4 / nf);
        // P(|Z| > 3) = 0.0027; 200k draws give 540 ± 23.
        assert!((440..640).contains(&beyond3), "tail count {beyond3}");
    }
}
