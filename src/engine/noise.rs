//! Seeded Gaussian noise added to a rule's new weight (SGLD's Langevin term).
//!
//! The noise of element `i` is exactly the value `init::fill_normal(out, 0, scale, seed,
//! stream)` writes at `out[i]`: blocks of [`BLOCK_LEN`] elements draw from their own
//! keystream, chunk after chunk. It therefore depends only on `(seed, stream, i)`, never on
//! how the tensor is cut between threads. [`Noisy`] cuts at block boundaries so that no
//! draw is wasted; [`Noise::chunks`] also starts mid-block (it draws the skipped part of
//! the block and drops it).

use super::{chunk, split_each, Dense, Walk};
use crate::init::{block_rng, Element, Normal, BLOCK_LEN, CHUNK};
use crate::real::Storage;
use crate::rule::Rule;
use crate::{Error, Result};

/// The normal noise `N(0, scale²)` of one tensor's update, identified by `(seed, stream)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Noise {
    seed: u64,
    stream: u64,
    scale: f64,
}

impl Noise {
    /// Noise with standard deviation `scale`, drawn from the keystream `(seed, stream)`.
    ///
    /// # Errors
    /// [`Error::NotFinite`] when `scale` is NaN, infinite or negative.
    pub fn new(seed: u64, stream: u64, scale: f64) -> Result<Noise> {
        if scale.is_finite() && scale >= 0.0 {
            Ok(Noise {
                seed,
                stream,
                scale,
            })
        } else {
            Err(Error::NotFinite {
                name: "noise scale",
                value: scale,
            })
        }
    }

    /// Hands `each` the noise of elements `first..first + len`, a chunk at a time, with the
    /// chunk's offset from `first`.
    pub fn chunks<T: Element>(&self, first: usize, len: usize, mut each: impl FnMut(usize, &[T])) {
        let normal = Normal::new::<T>(0.0, self.scale);
        let mut buf = [T::from_f64(0.0); CHUNK];
        let end = first + len;
        let mut block_start = first - first % BLOCK_LEN;
        while block_start < end {
            let mut rng = block_rng(self.seed, self.stream, (block_start / BLOCK_LEN) as u64);
            let block_end = (block_start + BLOCK_LEN).min(end);
            // The keystream is sequential: chunks before `first` are drawn and dropped.
            for chunk_start in (block_start..block_end).step_by(CHUNK) {
                // Always a full chunk: a shorter one would be a prefix of it.
                normal.fill_chunk(&mut rng, &mut buf);
                let lo = first.max(chunk_start);
                let hi = (chunk_start + CHUNK).min(end);
                if lo < hi {
                    each(lo - first, &buf[lo - chunk_start..hi - chunk_start]);
                }
            }
            block_start += BLOCK_LEN;
        }
    }
}

/// A [`Dense`] update followed by `w' += noise` (in the weight's type: one more rounding
/// for `f16`). Walks shorter than two noise blocks are not cut; longer ones are cut on
/// block boundaries.
pub struct Noisy<'a, T, const N: usize> {
    dense: Dense<'a, T, N>,
    noise: Noise,
    /// Index of the walk's first element in the whole tensor.
    first: usize,
}

impl<'a, T, const N: usize> Noisy<'a, T, N> {
    /// The update of a whole tensor.
    #[must_use]
    pub fn new(dense: Dense<'a, T, N>, noise: Noise) -> Self {
        Noisy {
            dense,
            noise,
            first: 0,
        }
    }
}

impl<T, R, const N: usize> Walk<R> for Noisy<'_, T, N>
where
    T: Storage + Element,
    R: Rule<T::Elem, N>,
{
    fn units(&self) -> usize {
        self.dense.w.len()
    }
    fn min_units(&self) -> usize {
        BLOCK_LEN
    }
    /// Cuts at the last block boundary before `mid` when there is one (always, for the
    /// engine's halving of walks of two blocks or more), so that no draw is wasted; a cut
    /// elsewhere is still exact, only slower.
    fn split_at(self, mid: usize) -> (Self, Self) {
        let end = self.first + mid;
        let boundary = end - end % BLOCK_LEN;
        let cut = if boundary > self.first {
            boundary - self.first
        } else {
            mid
        };
        let Dense { w, g, s } = self.dense;
        let (w0, w1) = w.split_at_mut(cut);
        let (g0, g1) = g.split_at(cut);
        let (s0, s1) = split_each(s, cut);
        let part = |w, g, s, first| Noisy {
            dense: Dense { w, g, s },
            noise: self.noise,
            first,
        };
        (
            part(w0, g0, s0, self.first),
            part(w1, g1, s1, self.first + cut),
        )
    }
    fn walk(self, rule: &R) {
        let Dense { w, g, mut s } = self.dense;
        self.noise
            .chunks::<T>(self.first, w.len(), |offset, noise| {
                let range = offset..offset + noise.len();
                let states = s.each_mut().map(|x| &mut x[range.clone()]);
                let w = &mut w[range.clone()];
                chunk::dense(rule, w, &g[range], states);
                for (w, &n) in w.iter_mut().zip(noise) {
                    *w = <T as Storage>::store(w.load() + n.load());
                }
            });
    }
}
