//! Walks for rules whose state is one value per row (GroupAdaGrad): each row first reduces
//! its gradient to a mean that updates the row's state, then every element of the row is
//! updated with the new state.
//!
//! The reduction follows the MXNet code path being reproduced: [`RowWise`] (dense gradient)
//! takes the Kahan-compensated mean that `NDArray.mean(axis=1)` computes, [`RowWiseSparse`]
//! (row-sparse gradient, lazy) the plain sequential sum divided by the row length that the
//! sparse kernels compute. Rows are independent, so the walks
//! split between rows like the others (cut points depend only on the row count).

use super::{check_len, check_rows, Walk, MIN_PARALLEL_LEN};
use crate::real::{Elem, Storage};
use crate::Result;

/// An update with one state value per row.
pub trait RowRule<E: Elem>: Sync {
    /// The gradient as the update sees it (rescaled, clipped).
    fn grad(&self, g: E) -> E;
    /// The value of one element that the row averages, from [`RowRule::grad`]'s result.
    fn term(&self, g: E) -> E;
    /// The row's new state from its old state and the mean of its terms.
    fn row_state(&self, state: E, mean: E) -> E;
    /// One element's new weight from its weight, its [`RowRule::grad`] value and the row's
    /// new state.
    fn apply(&self, w: E, g: E, state: E) -> E;
}

/// Kahan-compensated sum in `E`, as mshadow's `sum` reducer with a residual (an infinite
/// partial sum resets the residual), divided by the count in `E`.
fn kahan_mean<E: Elem>(terms: impl Iterator<Item = E>, count: usize) -> E {
    let (mut sum, mut residual) = (E::zero(), E::zero());
    for term in terms {
        let y = term - residual;
        let t = sum + y;
        let infinite = t.abs().to_f64() == f64::INFINITY;
        residual = if infinite { E::zero() } else { (t - sum) - y };
        sum = t;
    }
    sum / E::from_f64(count as f64)
}

/// Plain sequential sum in `E`, divided by the count in `E`.
fn sequential_mean<E: Elem>(terms: impl Iterator<Item = E>, count: usize) -> E {
    terms.fold(E::zero(), |sum, term| sum + term) / E::from_f64(count as f64)
}

/// How a row's terms are averaged.
#[derive(Clone, Copy)]
enum Mean {
    /// [`kahan_mean`] (`NDArray.mean`).
    Kahan,
    /// [`sequential_mean`] (the sparse kernels' loop).
    Sequential,
}

/// Updates one row: reduce, update the row state, update the elements.
#[inline(always)]
fn row<T: Storage, R: RowRule<T::Elem>>(rule: &R, mean: Mean, w: &mut [T], g: &[T], state: &mut T) {
    let terms = g.iter().map(|&x| rule.term(rule.grad(x.load())));
    let mean = match mean {
        Mean::Kahan => kahan_mean(terms, g.len()),
        Mean::Sequential => sequential_mean(terms, g.len()),
    };
    let h = rule.row_state(state.load(), mean);
    *state = T::store(h);
    for (w, &g) in w.iter_mut().zip(g) {
        *w = T::store(rule.apply(w.load(), rule.grad(g.load()), h));
    }
}

fn min_rows(row_len: usize) -> usize {
    (MIN_PARALLEL_LEN / row_len.max(1)).max(1)
}

/// A dense weight of `rows` rows, its dense gradient and one state value per row.
pub struct RowWise<'a, T> {
    w: &'a mut [T],
    g: &'a [T],
    state: &'a mut [T],
    row_len: usize,
}

impl<'a, T> RowWise<'a, T> {
    /// Checks that the gradient has the weight's length and the state one value per row.
    ///
    /// # Errors
    /// [`Error::Length`](crate::Error::Length) for a buffer of the wrong length.
    pub fn new(w: &'a mut [T], g: &'a [T], state: &'a mut [T], rows: usize) -> Result<Self> {
        let row_len = w.len().checked_div(rows).unwrap_or(0);
        check_len("weight", rows * row_len, w.len())?;
        check_len("grad", w.len(), g.len())?;
        check_len("row state", rows, state.len())?;
        Ok(RowWise {
            w,
            g,
            state,
            row_len,
        })
    }
}

impl<T: Storage, R: RowRule<T::Elem>> Walk<R> for RowWise<'_, T> {
    fn units(&self) -> usize {
        self.state.len()
    }
    fn min_units(&self) -> usize {
        min_rows(self.row_len)
    }
    fn split_at(self, mid: usize) -> (Self, Self) {
        let cut = mid * self.row_len;
        let (w0, w1) = self.w.split_at_mut(cut);
        let (g0, g1) = self.g.split_at(cut);
        let (s0, s1) = self.state.split_at_mut(mid);
        let half = |w, g, state| RowWise {
            w,
            g,
            state,
            row_len: self.row_len,
        };
        (half(w0, g0, s0), half(w1, g1, s1))
    }
    fn walk(self, rule: &R) {
        let len = self.row_len.max(1);
        let rows = self.w.chunks_exact_mut(len).zip(self.g.chunks_exact(len));
        for ((w, g), state) in rows.zip(self.state.iter_mut()) {
            row(rule, Mean::Kahan, w, g, state);
        }
    }
}

/// A dense weight with one state value per row, updated lazily from a row-sparse gradient:
/// only the rows listed in the strictly increasing `indices` are touched.
pub struct RowWiseSparse<'a, T> {
    w: &'a mut [T],
    state: &'a mut [T],
    row_len: usize,
    first_row: usize,
    indices: &'a [i64],
    values: &'a [T],
}

impl<'a, T> RowWiseSparse<'a, T> {
    /// Checks lengths, and that `indices` are in range and strictly increasing.
    ///
    /// # Errors
    /// [`Error::Length`](crate::Error::Length), [`Error::RowOutOfRange`](crate::Error::RowOutOfRange)
    /// or [`Error::RowsUnsorted`](crate::Error::RowsUnsorted).
    pub fn new(
        w: &'a mut [T],
        state: &'a mut [T],
        rows: usize,
        indices: &'a [i64],
        values: &'a [T],
    ) -> Result<Self> {
        let row_len = w.len().checked_div(rows).unwrap_or(0);
        check_len("weight", rows * row_len, w.len())?;
        check_len("row state", rows, state.len())?;
        check_len("gradient values", indices.len() * row_len, values.len())?;
        check_rows(indices, rows)?;
        Ok(RowWiseSparse {
            w,
            state,
            row_len,
            first_row: 0,
            indices,
            values,
        })
    }
}

impl<T: Storage, R: RowRule<T::Elem>> Walk<R> for RowWiseSparse<'_, T> {
    fn units(&self) -> usize {
        self.state.len()
    }
    fn min_units(&self) -> usize {
        min_rows(self.row_len)
    }
    fn split_at(self, mid: usize) -> (Self, Self) {
        let (w0, w1) = self.w.split_at_mut(mid * self.row_len);
        let (s0, s1) = self.state.split_at_mut(mid);
        let boundary = (self.first_row + mid) as i64;
        let present = self.indices.partition_point(|&r| r < boundary);
        let (i0, i1) = self.indices.split_at(present);
        let (v0, v1) = self.values.split_at(present * self.row_len);
        let half = |w, state, first_row, indices, values| RowWiseSparse {
            w,
            state,
            row_len: self.row_len,
            first_row,
            indices,
            values,
        };
        (
            half(w0, s0, self.first_row, i0, v0),
            half(w1, s1, self.first_row + mid, i1, v1),
        )
    }
    fn walk(self, rule: &R) {
        let len = self.row_len.max(1);
        for (&index, g) in self.indices.iter().zip(self.values.chunks_exact(len)) {
            let local = index as usize - self.first_row;
            let w = &mut self.w[local * self.row_len..][..self.row_len];
            row(rule, Mean::Sequential, w, g, &mut self.state[local]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kahan_mean_recovers_lost_low_bits() {
        // 1 + 1e-8 + ... in f32: a plain sum loses every small term, Kahan keeps them.
        let terms = std::iter::once(1.0_f32).chain(std::iter::repeat_n(1e-8_f32, 1000));
        let plain = sequential_mean(terms.clone(), 1001);
        let compensated = kahan_mean(terms, 1001);
        assert_eq!(plain, 1.0 / 1001.0);
        assert!(compensated > plain);
    }
}
