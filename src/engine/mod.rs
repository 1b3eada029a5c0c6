//! The only code that walks arrays.
//!
//! A *walk* says what is traversed — [`Dense`] slices, an fp16 weight with its fp32
//! [`Mixed`] master copy, or the [`Rows`] of a row-sparse gradient — and a
//! [`Rule`] says what happens to each element. [`run`] splits a walk
//! across rayon threads; [`run_many`] does so for every tensor of an aggregated call at
//! once. Walks validate their buffers when built, so running one never fails halfway.
//! Splitting depends only on lengths and every element is updated independently, so
//! results never depend on the thread count.

mod chunk;
mod noise;
pub mod reduce;
mod row_rule;
mod simd;
mod split;

use crate::real::Storage;
use crate::rule::Rule;
use crate::{Error, Result};
use half::f16;
use rayon::prelude::*;

pub use noise::{Noise, Noisy};
pub use row_rule::{RowRule, RowWise, RowWiseSparse};
pub use split::MIN_PARALLEL_LEN;

/// Something the engine can cut in two and walk with a rule.
pub trait Walk<R>: Send + Sized {
    /// Units (elements or rows) the walk covers.
    fn units(&self) -> usize;
    /// Units below which a walk is not cut further.
    fn min_units(&self) -> usize;
    /// Cuts the walk before unit `mid`.
    fn split_at(self, mid: usize) -> (Self, Self);
    /// Walks every unit sequentially, applying `rule`.
    fn walk(self, rule: &R);
}

/// Runs `rule` over `walk`, in parallel for large walks.
pub fn run<R: Sync, W: Walk<R>>(rule: &R, walk: W) {
    split::par_for(walk, &|part: W| part.walk(rule));
}

/// Runs many (rule, walk) jobs — one per tensor of an aggregated update — in parallel,
/// packing small tensors together and cutting large ones.
pub fn run_many<R: Sync + Send, W: Walk<R>>(jobs: Vec<(R, W)>) {
    let units: usize = jobs.iter().map(|(_, walk)| walk.units()).sum();
    if units < 2 * MIN_PARALLEL_LEN {
        // Waking the thread pool costs more than updating this few elements.
        jobs.into_iter().for_each(|(rule, walk)| walk.walk(&rule));
    } else {
        jobs.into_par_iter()
            .for_each(|(rule, walk)| run(&rule, walk));
    }
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Length {
            what,
            expected,
            got,
        })
    }
}

fn check_states<T, const N: usize>(expected: usize, states: &[&mut [T]; N]) -> Result<()> {
    states
        .iter()
        .try_for_each(|s| check_len("state", expected, s.len()))
}

/// Checks that row indices are in range and strictly increasing.
pub(crate) fn check_rows(indices: &[i64], rows: usize) -> Result<()> {
    for (at, &index) in indices.iter().enumerate() {
        if index < 0 || index as u64 >= rows as u64 {
            return Err(Error::RowOutOfRange { index, rows });
        }
        if at > 0 && index <= indices[at - 1] {
            return Err(Error::RowsUnsorted { at });
        }
    }
    Ok(())
}

/// Cuts each of `N` slices at `mid`.
fn split_each<'a, T, const N: usize>(
    slices: [&'a mut [T]; N],
    mid: usize,
) -> ([&'a mut [T]; N], [&'a mut [T]; N]) {
    let mut right: [&'a mut [T]; N] = std::array::from_fn(|_| <&mut [T]>::default());
    let mut k = 0;
    let left = slices.map(|s| {
        let (l, r) = s.split_at_mut(mid);
        right[k] = r;
        k += 1;
        l
    });
    (left, right)
}

/// A dense update: weight, gradient and `N` states of one storage type, equal lengths.
pub struct Dense<'a, T, const N: usize> {
    w: &'a mut [T],
    g: &'a [T],
    s: [&'a mut [T]; N],
}

impl<'a, T, const N: usize> Dense<'a, T, N> {
    /// Checks that gradient and states have the weight's length.
    ///
    /// # Errors
    /// [`Error::Length`] for a buffer of the wrong length.
    ///
    /// ```
    /// use mxopt::engine::Dense;
    /// let (mut w, g) = (vec![0.0_f32; 3], vec![0.0_f32; 2]);
    /// assert!(Dense::new(&mut w, &g, []).is_err());
    /// ```
    pub fn new(w: &'a mut [T], g: &'a [T], s: [&'a mut [T]; N]) -> Result<Self> {
        check_len("grad", w.len(), g.len())?;
        check_states(w.len(), &s)?;
        Ok(Dense { w, g, s })
    }
}

impl<T: Storage, R: Rule<T::Elem, N>, const N: usize> Walk<R> for Dense<'_, T, N> {
    fn units(&self) -> usize {
        self.w.len()
    }
    fn min_units(&self) -> usize {
        MIN_PARALLEL_LEN
    }
    fn split_at(self, mid: usize) -> (Self, Self) {
        let (w0, w1) = self.w.split_at_mut(mid);
        let (g0, g1) = self.g.split_at(mid);
        let (s0, s1) = split_each(self.s, mid);
        (
            Dense {
                w: w0,
                g: g0,
                s: s0,
            },
            Dense {
                w: w1,
                g: g1,
                s: s1,
            },
        )
    }
    fn walk(self, rule: &R) {
        simd::dense(rule, self.w, self.g, self.s);
    }
}

/// A multi-precision update: the rule runs in `f32` on the master copy and `N` `f32`
/// states, reading the `f16` gradient exactly; the `f16` weight receives the rounded
/// master (round to nearest even).
pub struct Mixed<'a, const N: usize> {
    w: &'a mut [f16],
    g: &'a [f16],
    master: &'a mut [f32],
    s: [&'a mut [f32]; N],
    write_master: bool,
}

impl<'a, const N: usize> Mixed<'a, N> {
    /// Checks that gradient, master copy and states have the weight's length.
    ///
    /// # Errors
    /// [`Error::Length`] for a buffer of the wrong length.
    pub fn new(
        w: &'a mut [f16],
        g: &'a [f16],
        master: &'a mut [f32],
        s: [&'a mut [f32]; N],
    ) -> Result<Self> {
        check_len("grad", w.len(), g.len())?;
        check_len("master weight", w.len(), master.len())?;
        check_states(w.len(), &s)?;
        Ok(Mixed {
            w,
            g,
            master,
            s,
            write_master: true,
        })
    }

    /// Leaves the master copy as it was: only the `f16` weight (and the states) receive
    /// the result. MXNet 1.6's `mp_lamb_update_phase2` behaves so.
    #[must_use]
    pub fn keeping_master(self) -> Self {
        Mixed {
            write_master: false,
            ..self
        }
    }
}

impl<R: Rule<f32, N>, const N: usize> Walk<R> for Mixed<'_, N> {
    fn units(&self) -> usize {
        self.w.len()
    }
    fn min_units(&self) -> usize {
        MIN_PARALLEL_LEN
    }
    fn split_at(self, mid: usize) -> (Self, Self) {
        let (w0, w1) = self.w.split_at_mut(mid);
        let (g0, g1) = self.g.split_at(mid);
        let (m0, m1) = self.master.split_at_mut(mid);
        let (s0, s1) = split_each(self.s, mid);
        (
            Mixed {
                w: w0,
                g: g0,
                master: m0,
                s: s0,
                write_master: self.write_master,
            },
            Mixed {
                w: w1,
                g: g1,
                master: m1,
                s: s1,
                write_master: self.write_master,
            },
        )
    }
    fn walk(self, rule: &R) {
        simd::mixed(rule, self.w, self.g, self.master, self.s, self.write_master);
    }
}

/// How rows absent from a row-sparse gradient are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowMode {
    /// Only the gradient's rows are touched (weight decay included).
    Lazy,
    /// Every row is updated; absent rows see a zero gradient.
    Standard,
}

/// A dense weight (and states) of `rows` rows updated from a row-sparse gradient: `values`
/// holds one row of the weight's length for each entry of the strictly increasing `indices`.
pub struct Rows<'a, T, const N: usize> {
    w: &'a mut [T],
    s: [&'a mut [T]; N],
    row_len: usize,
    first_row: usize,
    indices: &'a [i64],
    values: &'a [T],
    mode: RowMode,
}

impl<'a, T, const N: usize> Rows<'a, T, N> {
    /// Checks lengths, and that `indices` are in range and strictly increasing.
    ///
    /// # Errors
    /// [`Error::Length`], [`Error::RowOutOfRange`]
    /// or [`Error::RowsUnsorted`]; nothing is written then.
    pub fn new(
        w: &'a mut [T],
        rows: usize,
        indices: &'a [i64],
        values: &'a [T],
        s: [&'a mut [T]; N],
        mode: RowMode,
    ) -> Result<Self> {
        let row_len = w.len().checked_div(rows).unwrap_or(0);
        check_len("weight", rows * row_len, w.len())?;
        check_len("gradient values", indices.len() * row_len, values.len())?;
        check_states(w.len(), &s)?;
        check_rows(indices, rows)?;
        Ok(Rows {
            w,
            s,
            row_len,
            first_row: 0,
            indices,
            values,
            mode,
        })
    }
}

impl<T: Storage, R: Rule<T::Elem, N>, const N: usize> Walk<R> for Rows<'_, T, N> {
    fn units(&self) -> usize {
        self.w.len().checked_div(self.row_len).unwrap_or(0)
    }
    fn min_units(&self) -> usize {
        (MIN_PARALLEL_LEN / self.row_len.max(1)).max(1)
    }
    fn split_at(self, mid: usize) -> (Self, Self) {
        let cut = mid * self.row_len;
        let (w0, w1) = self.w.split_at_mut(cut);
        let (s0, s1) = split_each(self.s, cut);
        let boundary = (self.first_row + mid) as i64;
        let present = self.indices.partition_point(|&r| r < boundary);
        let (i0, i1) = self.indices.split_at(present);
        let (v0, v1) = self.values.split_at(present * self.row_len);
        let half = |w, s, first_row, indices, values| Rows {
            w,
            s,
            row_len: self.row_len,
            first_row,
            indices,
            values,
            mode: self.mode,
        };
        (
            half(w0, s0, self.first_row, i0, v0),
            half(w1, s1, self.first_row + mid, i1, v1),
        )
    }
    fn walk(self, rule: &R) {
        chunk::rows(rule, self);
    }
}
