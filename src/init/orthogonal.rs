//! MXNet's `Orthogonal` initializer: a random `(nout, nin)` matrix replaced by an
//! orthonormal factor of the same shape.
//!
//! MXNet takes a factor of NumPy's (LAPACK's) SVD. That factor depends on the LAPACK build,
//! so both languages of this crate compute another, fully specified one in `f64`: the `Q`
//! of the Householder QR decomposition of the matrix (of its transpose when `nout < nin`),
//! with each column's sign chosen so that `R` has a non-negative diagonal. It spans the
//! same subspace as MXNet's factor (the column space for `nout ≥ nin`, the row space
//! otherwise), and for a Gaussian matrix it is distributed uniformly (Haar) over the
//! matrices with orthonormal columns (rows). Every dot product runs sequentially; columns
//! are updated in parallel, so the result does not depend on the thread count.

use super::{fill_normal, fill_uniform, Element, FillError};
use rayon::prelude::*;

/// The distribution of the matrix that is orthogonalized (`rand_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrthogonalRand {
    /// U(−1, 1) draws (`"uniform"`, MXNet's default).
    #[default]
    Uniform,
    /// N(0, 1) draws (`"normal"`): the factor is then Haar-distributed.
    Normal,
}

/// Fills `out`, an array of shape `(nout, nin)` in C order (`nin` the product of the
/// trailing dimensions), with `scale` times the orthonormal factor of an `f32` matrix of
/// `rand` draws from the keystream `(seed, stream)` — the values `fill_uniform` or
/// `fill_normal` would write into an `f32` array of that size. The factor has orthonormal
/// rows when `nout ≤ nin` (columns when `nout ≥ nin`); each value is computed in `f64`
/// and rounded once to `T`.
///
/// # Errors
/// [`FillError::NotFinite`] for a non-finite `scale`; the caller checks that `out` has
/// `nout·nin` elements. Nothing is written on error.
///
/// ```
/// use mxopt::init::{fill_orthogonal, OrthogonalRand};
/// let mut w = vec![0.0_f64; 3 * 5];
/// fill_orthogonal(&mut w, 3, 5, 1.0, OrthogonalRand::Normal, 7, 0)?;
/// // Rows are orthonormal.
/// let dot = |a: usize, b: usize| (0..5).map(|j| w[a * 5 + j] * w[b * 5 + j]).sum::<f64>();
/// assert!((dot(0, 0) - 1.0).abs() < 1e-12 && dot(0, 1).abs() < 1e-12);
/// # Ok::<(), mxopt::init::FillError>(())
/// ```
pub fn fill_orthogonal<T: Element>(
    out: &mut [T],
    nout: usize,
    nin: usize,
    scale: f64,
    rand: OrthogonalRand,
    seed: u64,
    stream: u64,
) -> Result<(), FillError> {
    if !scale.is_finite() {
        return Err(FillError::NotFinite {
            name: "scale",
            value: scale,
        });
    }
    let mut drawn = vec![0.0_f32; nout * nin];
    match rand {
        OrthogonalRand::Uniform => fill_uniform(&mut drawn, -1.0, 1.0, seed, stream)?,
        OrthogonalRand::Normal => fill_normal(&mut drawn, 0.0, 1.0, seed, stream)?,
    }
    // Columns of the tall matrix: those of the drawn one, or of its transpose.
    let tall = nout >= nin;
    let (m, n) = if tall { (nout, nin) } else { (nin, nout) };
    let columns: Vec<Vec<f64>> = (0..n)
        .map(|j| {
            (0..m)
                .map(|i| {
                    let x = if tall {
                        drawn[i * nin + j]
                    } else {
                        drawn[j * nin + i]
                    };
                    f64::from(x)
                })
                .collect()
        })
        .collect();
    let q = orthonormal_columns(columns);
    let scaled: Vec<f64> = (0..nout * nin)
        .map(|at| {
            let (i, j) = (at / nin, at % nin);
            let value = if tall { q[j][i] } else { q[i][j] };
            scale * value
        })
        .collect();
    T::store(out, &scaled);
    Ok(())
}

/// `Q` of the QR decomposition of the `m × n` matrix (`m ≥ n`) given by its columns, with
/// `R`'s diagonal made non-negative; returned as its `n` columns.
fn orthonormal_columns(mut a: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let n = a.len();
    let m = a.first().map_or(0, Vec::len);
    // Householder vectors `v` (unit length, acting on rows k..) and the signs of R's diagonal.
    let mut reflectors: Vec<Option<Vec<f64>>> = Vec::with_capacity(n);
    let mut signs = Vec::with_capacity(n);
    for k in 0..n {
        let (done, rest) = a.split_at_mut(k + 1);
        let x = &done[k][k..];
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        // R's diagonal entry is `alpha`, of the sign opposite to x[0] (no cancellation).
        let alpha = if x[0] > 0.0 { -norm } else { norm };
        signs.push(if alpha < 0.0 { -1.0 } else { 1.0 });
        let mut v = x.to_vec();
        v[0] -= alpha;
        let v_norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if v_norm == 0.0 {
            reflectors.push(None); // the column is zero below the diagonal already
            continue;
        }
        v.iter_mut().for_each(|x| *x /= v_norm);
        rest.par_iter_mut()
            .for_each(|column| reflect(&v, &mut column[k..]));
        reflectors.push(Some(v));
    }
    // Q = H₀·H₁·…·H_{n−1}·[I; 0], each column built independently; then the signs.
    (0..n)
        .into_par_iter()
        .map(|j| {
            let mut q = vec![0.0; m];
            q[j] = 1.0;
            for (k, v) in reflectors.iter().enumerate().rev() {
                if let Some(v) = v {
                    reflect(v, &mut q[k..]);
                }
            }
            q.iter_mut().for_each(|x| *x *= signs[j]);
            q
        })
        .collect()
}

/// `x ← (I − 2vvᵀ)·x` for a unit vector `v`.
fn reflect(v: &[f64], x: &mut [f64]) {
    let dot: f64 = v.iter().zip(x.iter()).map(|(a, b)| a * b).sum();
    for (x, a) in x.iter_mut().zip(v) {
        *x -= 2.0 * dot * a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factor(nout: usize, nin: usize, seed: u64) -> Vec<f64> {
        let mut w = vec![0.0; nout * nin];
        fill_orthogonal(&mut w, nout, nin, 1.0, OrthogonalRand::Normal, seed, 0).expect("fill");
        w
    }

    #[test]
    fn orthonormal_rows_or_columns() {
        for (nout, nin) in [(4, 9), (9, 4), (6, 6), (1, 5), (5, 1)] {
            let w = factor(nout, nin, 3);
            // Rows when nout ≤ nin, else columns: vectors `a` of length `inner`.
            let (outer, inner) = (nout.min(nin), nout.max(nin));
            let at = |a: usize, t: usize| {
                if nout <= nin {
                    a * nin + t
                } else {
                    t * nin + a
                }
            };
            for a in 0..outer {
                for b in 0..outer {
                    let dot: f64 = (0..inner).map(|t| w[at(a, t)] * w[at(b, t)]).sum();
                    let expected = if a == b { 1.0 } else { 0.0 };
                    assert!((dot - expected).abs() < 1e-12, "{nout}x{nin}: {dot}");
                }
            }
        }
    }

    #[test]
    fn haar_signs_and_thread_independence() {
        // Without the sign correction the first entry would always be negative.
        let firsts: Vec<f64> = (0..400).map(|s| factor(5, 3, s)[0]).collect();
        let positive = firsts.iter().filter(|&&x| x > 0.0).count();
        assert!((160..240).contains(&positive), "{positive} of 400 positive");
        // E[q₁₁²] = 1/m for a Haar column of length m = 5.
        let second_moment = firsts.iter().map(|x| x * x).sum::<f64>() / 400.0;
        assert!((second_moment - 0.2).abs() < 0.03, "{second_moment}");
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let big = factor(70, 50, 9);
        assert_eq!(one.install(|| factor(70, 50, 9)), big);
    }

    #[test]
    fn zero_columns_and_bad_scale() {
        assert_eq!(
            orthonormal_columns(vec![vec![0.0, 0.0]]),
            vec![vec![1.0, 0.0]]
        );
        let mut w = [0.0_f32; 4];
        let bad = fill_orthogonal(&mut w, 2, 2, f64::NAN, OrthogonalRand::Uniform, 0, 0);
        assert!(bad.is_err());
        assert_eq!(w, [0.0; 4]);
    }
}
