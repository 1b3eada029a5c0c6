//! Per-block ChaCha8 keystreams and the samplers the fills use (uniform, ziggurat normal).

use std::sync::OnceLock;

use rand_chacha::rand_core::block::Generator;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Core;

/// Domain tag in the last quarter of the ChaCha key, so that mxopt's fills never share a
/// keystream with another user of the same seed.
const KEY_TAG: [u8; 8] = *b"mxoptfl1";

/// Words produced by one ChaCha8 core call (four 64-byte blocks).
const WORDS: usize = 64;

/// The generator of block `block` of the fill identified by `(seed, stream)`.
///
/// The 256-bit ChaCha key is `seed ‖ stream ‖ block ‖ KEY_TAG` (little endian), so every
/// block has its own keystream, read from word 0: a seed derived per block.
pub(crate) fn block_rng(seed: u64, stream: u64, block: u64) -> BlockRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&stream.to_le_bytes());
    key[16..24].copy_from_slice(&block.to_le_bytes());
    key[24..].copy_from_slice(&KEY_TAG);
    BlockRng {
        core: ChaCha8Core::from_seed(key),
        buf: [0; WORDS],
        pos: WORDS,
    }
}

/// One block's generator: a buffered ChaCha8 keystream with the samplers the fills need.
pub(crate) struct BlockRng {
    core: ChaCha8Core,
    buf: [u32; WORDS],
    pos: usize,
}

const TWO_POW_M53: f64 = 1.0 / 9_007_199_254_740_992.0;
const TWO_POW_M23_F32: f32 = 1.0 / 8_388_608.0;
const TWO_POW_M24_F32: f32 = 1.0 / 16_777_216.0;

impl BlockRng {
    #[inline]
    fn next_u32(&mut self) -> u32 {
        if self.pos == WORDS {
            self.core.generate(&mut self.buf);
            self.pos = 0;
        }
        let w = self.buf[self.pos];
        self.pos += 1;
        w
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        let lo = u64::from(self.next_u32());
        lo | (u64::from(self.next_u32()) << 32)
    }

    /// The next `dst.len()` words of the keystream, in order.
    fn fill_u32(&mut self, dst: &mut [u32]) {
        for d in dst.iter_mut() {
            *d = self.next_u32();
        }
    }

    /// Uniform on `[0, 1)` from 53 random bits.
    #[inline]
    pub(crate) fn unit53(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * TWO_POW_M53
    }

    /// Uniform on `(0, 1]` from 53 random bits (safe to take the logarithm of).
    #[inline]
    fn open_unit53(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * TWO_POW_M53
    }

    /// Writes uniforms on `[0, 1)` into `out`, each from the top 24 of 32 random bits
    /// (exact in `f32`).
    pub(crate) fn units24(&mut self, out: &mut [f32]) {
        let mut bits = [0u32; CHUNK];
        for part in out.chunks_mut(CHUNK) {
            let bits = &mut bits[..part.len()];
            self.fill_u32(bits);
            for (o, &b) in part.iter_mut().zip(bits.iter()) {
                // b >> 8 < 2^24 fits an i32, whose conversion vectorises.
                *o = ((b >> 8) as i32) as f32 * TWO_POW_M24_F32;
            }
        }
    }

    /// One standard normal draw in `f64` precision (ziggurat method of Marsaglia and Tsang,
    /// 256 layers, 64 random bits per try).
    #[inline]
    pub(crate) fn standard_normal(&mut self) -> f64 {
        let z = ziggurat();
        loop {
            let bits = self.next_u64();
            // Low 8 bits pick the layer, the top 53 bits give a signed uniform in [-1, 1).
            let i = (bits & 0xff) as usize;
            let u = 2.0 * ((bits >> 11) as f64 * TWO_POW_M53) - 1.0;
            let x = u * z.x[i];
            if x.abs() < z.x[i + 1] {
                return x;
            }
            if let Some(x) = self.normal_slow(i, x, u < 0.0) {
                return x;
            }
        }
    }

    /// Writes standard normal draws in `f32` precision into `out`: the same ziggurat with 32
    /// random bits per try (8 for the layer, 24 for the position), enough for `f16`/`f32`.
    ///
    /// A first pass takes one word per element and keeps the ~99% of tries that land inside
    /// their layer's rectangle; a second pass, in element order, redraws the others.
    pub(crate) fn standard_normals_f32(&mut self, out: &mut [f32]) {
        let z = ziggurat();
        let mut bits = [0u32; CHUNK];
        let mut misses = [0u16; CHUNK];
        for part in out.chunks_mut(CHUNK) {
            // Always a full chunk of words, so a shorter array gets a prefix of a longer one.
            self.fill_u32(&mut bits);
            let mut n_miss = 0usize;
            for (k, (o, &b)) in part.iter_mut().zip(bits.iter()).enumerate() {
                let (x, inside) = zig_try_f32(z, b);
                *o = x;
                misses[n_miss] = k as u16;
                n_miss += usize::from(!inside);
            }
            for &k in &misses[..n_miss] {
                let k = usize::from(k);
                part[k] = self.finish_normal_f32(z, bits[k], part[k]);
            }
        }
    }

    /// Completes a ziggurat try that fell outside its rectangle (tail or wedge), retrying
    /// with fresh words until a draw is accepted.
    #[cold]
    fn finish_normal_f32(&mut self, z: &Ziggurat, mut b: u32, mut x: f32) -> f32 {
        loop {
            let i = (b & 0xff) as usize;
            if let Some(v) = self.normal_slow(i, f64::from(x), x < 0.0) {
                return v as f32;
            }
            b = self.next_u32();
            let (nx, inside) = zig_try_f32(z, b);
            if inside {
                return nx;
            }
            x = nx;
        }
    }

    /// The rare ziggurat cases: the tail (layer 0) or the wedge test of layer `i`.
    /// `None` rejects the try.
    #[cold]
    fn normal_slow(&mut self, i: usize, x: f64, negative: bool) -> Option<f64> {
        let z = ziggurat();
        if i == 0 {
            return Some(self.normal_tail(negative));
        }
        // Wedge between the rectangle and the curve: accept under the density.
        let y = z.f[i] + (z.f[i + 1] - z.f[i]) * self.unit53();
        (y < (-0.5 * x * x).exp()).then_some(x)
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

/// Samples are produced this many at a time (stack buffers).
pub(crate) const CHUNK: usize = 256;

/// One narrow ziggurat try from the word `b`: the candidate and whether it is accepted
/// outright (inside its layer's rectangle).
#[inline(always)]
fn zig_try_f32(z: &Ziggurat, b: u32) -> (f32, bool) {
    let i = (b & 0xff) as usize;
    let u = ((b >> 8) as i32) as f32 * TWO_POW_M23_F32 - 1.0;
    let x = u * z.x32[i];
    (x, x.abs() < z.x32[i + 1])
}

/// Start of the tail for 256 layers.
const ZIG_R: f64 = 3.654_152_885_361_009;
/// Area of every layer (and of the base strip with its tail) for 256 layers.
const ZIG_V: f64 = 0.004_928_673_233_99;

/// Layer edges `x[0..=256]` (decreasing, `x[1] = R`, `x[256] = 0`) and `f[i] = exp(-x[i]²/2)`.
struct Ziggurat {
    x: [f64; 257],
    f: [f64; 257],
    /// `x` rounded to `f32` for the narrow sampler.
    x32: [f32; 257],
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
        let x32 = x.map(|v| v as f32);
        Ziggurat { x, f, x32 }
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
        let a = block_rng(1, 0, 0).next_u64();
        let b = block_rng(1, 0, 1).next_u64();
        let c = block_rng(1, 1, 0).next_u64();
        let d = block_rng(2, 0, 0).next_u64();
        assert!(a != b && a != c && a != d && b != c);
        assert_eq!(a, block_rng(1, 0, 0).next_u64());
    }

    #[test]
    fn buffered_words_cross_core_calls_in_order() {
        let mut one = block_rng(4, 4, 4);
        let mut bulk = [0u32; 3 * WORDS + 5];
        one.fill_u32(&mut bulk);
        let mut two = block_rng(4, 4, 4);
        let singles: Vec<u32> = (0..bulk.len()).map(|_| two.next_u32()).collect();
        assert_eq!(bulk[..], singles[..]);
    }

    #[test]
    fn standard_normal_moments() {
        let mut rng = block_rng(7, 3, 0);
        let wide: Vec<f64> = (0..200_000).map(|_| rng.standard_normal()).collect();
        moments(&wide);
        let mut narrow = vec![0.0f32; 200_000];
        rng.standard_normals_f32(&mut narrow);
        moments(&narrow.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
    }

    fn moments(zs: &[f64]) {
        let (mut s1, mut s2, mut s4) = (0.0, 0.0, 0.0);
        let mut beyond3 = 0usize;
        for &z in zs {
            s1 += z;
            s2 += z * z;
            s4 += z * z * z * z;
            if z.abs() > 3.0 {
                beyond3 += 1;
            }
        }
        let nf = zs.len() as f64;
        let mean = s1 / nf;
        let var = s2 / nf - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "var {var}");
        assert!((s4 / nf - 3.0).abs() < 0.1, "kurtosis {}", s4 / nf);
        // P(|Z| > 3) = 0.0027; 200k draws give 540 ± 23.
        assert!((440..640).contains(&beyond3), "tail count {beyond3}");
    }

    #[test]
    fn units24_in_range() {
        let mut rng = block_rng(1, 1, 1);
        let mut u = vec![0.0f32; 10_000];
        rng.units24(&mut u);
        assert!(u.iter().all(|&v| (0.0..1.0).contains(&v)));
        let mean = u.iter().map(|&v| f64::from(v)).sum::<f64>() / 1e4;
        assert!((mean - 0.5).abs() < 0.01);
    }
}
