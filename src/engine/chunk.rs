//! The element loops. Every update in the crate ends up in [`dense`].

use super::{RowMode, Rows};
use crate::real::{Elem, Storage};
use crate::rule::Rule;
use half::f16;
use half::slice::HalfFloatSliceExt;

/// Elements converted from/to `f16` per block on the multi-precision path: the block
/// stays in L1 between the conversion and the rule.
const MIXED_BLOCK: usize = 512;

/// Applies `rule` to every element. Callers guarantee equal lengths; re-slicing to `n`
/// lets the compiler drop bounds checks and vectorise.
#[inline(always)]
pub(super) fn dense<T: Storage, R: Rule<T::Elem, N>, const N: usize>(
    rule: &R,
    w: &mut [T],
    g: &[T],
    s: [&mut [T]; N],
) {
    let n = w.len();
    let g = &g[..n];
    let mut s = s.map(|x| &mut x[..n]);
    for i in 0..n {
        let states = std::array::from_fn(|k| s[k][i].load());
        let (w_new, states) = rule.apply(w[i].load(), g[i].load(), states);
        w[i] = T::store(w_new);
        for (buf, value) in s.iter_mut().zip(states) {
            buf[i] = T::store(value);
        }
    }
}

/// The multi-precision walk: per block, widen the gradient, run the `f32` rule on the
/// master copy (or a copy of it, when the master is kept), narrow the result into the
/// weight.
#[inline(always)]
pub(super) fn mixed<R: Rule<f32, N>, const N: usize>(
    rule: &R,
    w: &mut [f16],
    g: &[f16],
    master: &mut [f32],
    mut s: [&mut [f32]; N],
    write_master: bool,
) {
    let mut g32 = [0.0_f32; MIXED_BLOCK];
    let mut scratch = [0.0_f32; MIXED_BLOCK];
    let mut start = 0;
    while start < w.len() {
        let end = (start + MIXED_BLOCK).min(w.len());
        let g32 = &mut g32[..end - start];
        g[start..end].convert_to_f32_slice(g32);
        let block = s.each_mut().map(|x| &mut x[start..end]);
        let out = if write_master {
            &mut master[start..end]
        } else {
            let scratch = &mut scratch[..end - start];
            scratch.copy_from_slice(&master[start..end]);
            scratch
        };
        dense(rule, out, g32, block);
        w[start..end].convert_from_f32_slice(out);
        start = end;
    }
}

/// The row-sparse walk over one contiguous range of rows.
pub(super) fn rows<T: Storage, R: Rule<T::Elem, N>, const N: usize>(
    rule: &R,
    walk: Rows<'_, T, N>,
) {
    let Rows {
        w,
        mut s,
        row_len,
        first_row,
        indices,
        values,
        mode,
    } = walk;
    let rows = w.len().checked_div(row_len).unwrap_or(0);
    let mut row_of = |local: usize, g: &[T]| {
        let range = local * row_len..(local + 1) * row_len;
        let states = s.each_mut().map(|x| &mut x[range.clone()]);
        dense(rule, &mut w[range], g, states);
    };
    match mode {
        RowMode::Lazy => {
            for (index, g) in indices.iter().zip(values.chunks_exact(row_len.max(1))) {
                row_of(*index as usize - first_row, g);
            }
        }
        RowMode::Standard => {
            let zeros = vec![T::store(<T::Elem as Elem>::zero()); row_len];
            let mut present = indices
                .iter()
                .zip(values.chunks_exact(row_len.max(1)))
                .peekable();
            for local in 0..rows {
                let g = match present.peek() {
                    Some(&(&index, g)) if index as usize == first_row + local => {
                        present.next();
                        g
                    }
                    _ => &zeros,
                };
                row_of(local, g);
            }
        }
    }
}
