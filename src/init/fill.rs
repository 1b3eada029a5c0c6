//! The block-parallel fill drivers.

use rayon::prelude::*;

use super::rng::{block_rng, BlockRng, CHUNK};
use super::{Element, FillError};

/// Elements per block; each block draws from its own substream. Part of the reproducibility
/// contract: changing it changes every filled array.
pub const BLOCK_LEN: usize = 1 << 16;

/// Fills `out` with i.i.d. draws from the uniform distribution on `[low, high)`.
///
/// Each value is `low + (high - low)·u` with `u` uniform on `[0, 1)`: 53 random bits and
/// `f64` arithmetic for `f64`, 24 bits and `f32` arithmetic for `f16`/`f32`,
/// rounded to `T`. A value that rounds up to `high` is replaced by the
/// largest `T` below `high`, so the interval stays half-open as in MXNet. `low == high`
/// fills with `low`. The result depends only on `(seed, stream)` and the length, not on the
/// number of rayon threads.
///
/// # Errors
/// [`FillError::NotFinite`] for a NaN or infinite bound, [`FillError::EmptyRange`] when
/// `low > high`; `out` is untouched then.
pub fn fill_uniform<T: Element>(
    out: &mut [T],
    low: f64,
    high: f64,
    seed: u64,
    stream: u64,
) -> Result<(), FillError> {
    finite("low", low)?;
    finite("high", high)?;
    if low > high {
        return Err(FillError::EmptyRange { low, high });
    }
    let span = high - low;
    let (low32, span32) = (low as f32, span as f32);
    let narrow = !T::WIDE && low32.is_finite() && span32.is_finite();
    // Replacement for a draw that rounded up to `high` (unused when `low == high`).
    let top = T::below(high);
    drive(out, seed, stream, |rng, block| {
        let mut buf = [0.0f64; CHUNK];
        let mut buf32 = [0.0f32; CHUNK];
        for part in block.chunks_mut(CHUNK) {
            if narrow {
                let vals = &mut buf32[..part.len()];
                rng.units24(vals);
                vals.iter_mut().for_each(|v| *v = low32 + span32 * *v);
                T::store_f32(part, vals);
            } else {
                let vals = &mut buf[..part.len()];
                vals.iter_mut().for_each(|v| *v = low + span * rng.unit53());
                T::store(part, vals);
            }
            if low < high {
                for p in part.iter_mut() {
                    if p.to_f64() >= high {
                        *p = top;
                    }
                }
            }
        }
    });
    Ok(())
}

/// Fills `out` with i.i.d. draws from the normal distribution with mean `loc` and standard
/// deviation `scale`: `loc + scale·z` with `z` standard normal by the ziggurat method
/// (64 random bits and `f64` arithmetic per try for `f64`; 32 bits and `f32` for
/// `f16`/`f32`), rounded to `T`. The result depends only on `(seed, stream)` and the length,
/// not on the number of rayon threads.
///
/// # Errors
/// [`FillError::NotFinite`] for a NaN or infinite parameter, [`FillError::NegativeScale`] for
/// `scale < 0`; `out` is untouched then.
pub fn fill_normal<T: Element>(
    out: &mut [T],
    loc: f64,
    scale: f64,
    seed: u64,
    stream: u64,
) -> Result<(), FillError> {
    finite("loc", loc)?;
    finite("scale", scale)?;
    if scale < 0.0 {
        return Err(FillError::NegativeScale(scale));
    }
    let normal = Normal::new::<T>(loc, scale);
    drive(out, seed, stream, |rng, block| {
        for part in block.chunks_mut(CHUNK) {
            normal.fill_chunk(rng, part);
        }
    });
    Ok(())
}

/// `loc + scale·z` in the precision [`fill_normal`] uses for its element type; shared with
/// the engine's noise walk, which must reproduce a fill's values exactly.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Normal {
    loc: f64,
    scale: f64,
    loc32: f32,
    scale32: f32,
    narrow: bool,
}

impl Normal {
    /// Parameters for filling `T` elements (checked finite by the caller).
    pub(crate) fn new<T: Element>(loc: f64, scale: f64) -> Normal {
        let (loc32, scale32) = (loc as f32, scale as f32);
        Normal {
            loc,
            scale,
            loc32,
            scale32,
            narrow: !T::WIDE && loc32.is_finite() && scale32.is_finite(),
        }
    }

    /// Fills `part` (at most [`CHUNK`] elements) with the next draws of `rng`. A shorter
    /// `part` receives a prefix of what a full chunk would.
    pub(crate) fn fill_chunk<T: Element>(&self, rng: &mut BlockRng, part: &mut [T]) {
        if self.narrow {
            let mut buf32 = [0.0f32; CHUNK];
            let vals = &mut buf32[..part.len()];
            rng.standard_normals_f32(vals);
            vals.iter_mut()
                .for_each(|v| *v = self.loc32 + self.scale32 * *v);
            T::store_f32(part, vals);
        } else {
            let mut buf = [0.0f64; CHUNK];
            let vals = &mut buf[..part.len()];
            vals.iter_mut()
                .for_each(|v| *v = self.loc + self.scale * rng.standard_normal());
            T::store(part, vals);
        }
    }
}

fn finite(name: &'static str, value: f64) -> Result<(), FillError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(FillError::NotFinite { name, value })
    }
}

/// Runs `fill_block` on every [`BLOCK_LEN`] block of `out` with that block's generator; blocks
/// run in parallel on the current rayon pool when there is more than one.
fn drive<T, F>(out: &mut [T], seed: u64, stream: u64, fill_block: F)
where
    T: Element,
    F: Fn(&mut BlockRng, &mut [T]) + Sync,
{
    if out.len() <= BLOCK_LEN {
        fill_block(&mut block_rng(seed, stream, 0), out);
    } else {
        out.par_chunks_mut(BLOCK_LEN)
            .enumerate()
            .for_each(|(k, block)| fill_block(&mut block_rng(seed, stream, k as u64), block));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use half::f16;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        (m, xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n)
    }

    #[test]
    fn same_seed_same_output_whatever_the_thread_count() {
        let n = 3 * BLOCK_LEN + 17;
        let run = |threads: usize| {
            let mut u = vec![0.0f32; n];
            let mut g = vec![0.0f64; n];
            let mut h = vec![f16::ZERO; n];
            pool(threads).install(|| {
                fill_uniform(&mut u, -1.0, 2.0, 99, 5).unwrap();
                fill_normal(&mut g, 0.5, 3.0, 99, 6).unwrap();
                fill_normal(&mut h, 0.0, 1.0, 99, 7).unwrap();
            });
            (u, g, h)
        };
        let one = run(1);
        let four = run(4);
        assert_eq!(one.0, four.0);
        assert_eq!(one.1, four.1);
        assert_eq!(one.2, four.2);
        // And it is really random, across blocks too.
        assert_ne!(one.0[..BLOCK_LEN], one.0[BLOCK_LEN..2 * BLOCK_LEN]);
    }

    #[test]
    fn prefix_does_not_depend_on_length() {
        let mut short = vec![0.0f32; 1000];
        let mut long = vec![0.0f32; 2 * BLOCK_LEN];
        fill_normal(&mut short, 0.0, 1.0, 3, 0).unwrap();
        fill_normal(&mut long, 0.0, 1.0, 3, 0).unwrap();
        assert_eq!(short[..], long[..1000]);
    }

    #[test]
    fn seeds_and_streams_change_the_output() {
        let mut a = vec![0.0f64; 64];
        let mut b = vec![0.0f64; 64];
        let mut c = vec![0.0f64; 64];
        fill_uniform(&mut a, 0.0, 1.0, 1, 0).unwrap();
        fill_uniform(&mut b, 0.0, 1.0, 1, 1).unwrap();
        fill_uniform(&mut c, 0.0, 1.0, 2, 0).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn uniform_bounds_and_moments() {
        let mut x = vec![0.0f32; 300_000];
        fill_uniform(&mut x, -0.07, 0.07, 11, 0).unwrap();
        let lo = -0.07f64 as f32;
        assert!(x.iter().all(|&v| v >= lo && f64::from(v) < 0.07));
        let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let (m, v) = mean_var(&xs);
        assert!(m.abs() < 5e-4, "mean {m}");
        let want = 0.14f64 * 0.14 / 12.0;
        assert!((v / want - 1.0).abs() < 0.01, "var {v}");
    }

    #[test]
    fn uniform_f16_never_reaches_high() {
        // In f16 many draws near the top round up to `high`: they must be pulled below it.
        let mut x = vec![f16::ZERO; 100_000];
        fill_uniform(&mut x, 0.0, 1.0, 5, 0).unwrap();
        let top = x.iter().map(|v| v.to_f64()).fold(0.0, f64::max);
        assert!(top < 1.0 && top > 0.999);
    }

    #[test]
    fn degenerate_uniform_and_zero_scale() {
        let mut x = vec![1.0f32; 10];
        fill_uniform(&mut x, 0.0, 0.0, 5, 0).unwrap();
        assert!(x.iter().all(|&v| v == 0.0));
        let mut y = vec![1.0f64; 10];
        fill_normal(&mut y, 2.5, 0.0, 5, 0).unwrap();
        assert!(y.iter().all(|&v| v == 2.5));
    }

    #[test]
    fn normal_moments_f32() {
        let mut x = vec![0.0f32; 2 * BLOCK_LEN + 5];
        fill_normal(&mut x, 1.0, 0.01, 8, 2).unwrap();
        let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let (m, v) = mean_var(&xs);
        assert!((m - 1.0).abs() < 1e-4, "mean {m}");
        assert!((v.sqrt() / 0.01 - 1.0).abs() < 0.01, "std {}", v.sqrt());
    }

    #[test]
    fn bad_parameters_leave_output_untouched() {
        let mut x = vec![7.0f32; 4];
        assert_eq!(
            fill_uniform(&mut x, 1.0, 0.0, 0, 0),
            Err(FillError::EmptyRange {
                low: 1.0,
                high: 0.0
            })
        );
        assert!(matches!(
            fill_uniform(&mut x, f64::NAN, 0.0, 0, 0),
            Err(FillError::NotFinite { name: "low", .. })
        ));
        assert!(matches!(
            fill_normal(&mut x, 0.0, f64::INFINITY, 0, 0),
            Err(FillError::NotFinite { name: "scale", .. })
        ));
        assert_eq!(
            fill_normal(&mut x, 0.0, -1.0, 0, 0),
            Err(FillError::NegativeScale(-1.0))
        );
        assert_eq!(x, [7.0; 4]);
    }

    #[test]
    fn empty_output_is_fine() {
        let mut x: Vec<f32> = Vec::new();
        fill_uniform(&mut x, 0.0, 1.0, 0, 0).unwrap();
        fill_normal(&mut x, 0.0, 1.0, 0, 0).unwrap();
    }
}
