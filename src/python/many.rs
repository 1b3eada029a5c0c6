//! Aggregated (multi-tensor) calls: validating and borrowing thousands of arrays.
//!
//! rust-numpy tracks every live borrow in one global table, whose cost grows with its size;
//! holding tens of thousands of borrows at once made tiny tensors several times slower
//! than they need to be. Large calls are therefore validated first — each tensor borrowed
//! and released, and every writable byte range checked against every other range for
//! overlap — and then borrowed, updated and released in chunks. Nothing is written unless
//! every tensor passed.

use super::arrays::{same_shape, states, weight_and_grad, writable, Item};
use super::overlap::{check_disjoint, span, Name, Span};
use crate::rule::Step;
use numpy::{Element, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Tensors borrowed together; beyond this a call is checked up front and run in chunks.
const BORROW_CHUNK: usize = 512;

/// The per-tensor arguments of an aggregated call: one weight and one gradient per tensor,
/// and the states flattened (`num_states` per tensor, tensor after tensor).
pub struct Tensors<'a, 'py> {
    pub weights: &'a [Bound<'py, PyAny>],
    pub grads: &'a [Bound<'py, PyAny>],
    pub states: &'a [Bound<'py, PyAny>],
}

/// The borrowed arrays of one tensor: weight and gradient of type `W`, states (and the
/// master copy of a multi-precision update) of type `S`.
pub struct Borrowed<'py, W: Element, S: Element> {
    pub index: usize,
    pub w: PyReadwriteArrayDyn<'py, W>,
    pub g: PyReadonlyArrayDyn<'py, W>,
    pub master: Option<PyReadwriteArrayDyn<'py, S>>,
    pub s: Vec<PyReadwriteArrayDyn<'py, S>>,
}

fn borrow<'py, W: Element, S: Element>(
    t: &Tensors<'_, 'py>,
    masters: Option<&[Bound<'py, PyAny>]>,
    num_states: usize,
    index: usize,
) -> PyResult<Borrowed<'py, W, S>> {
    let names = (Item("weights", index), Item("grads", index));
    let (w, g) = weight_and_grad::<W>(names, &t.weights[index], &t.grads[index])?;
    let master = match masters {
        Some(masters) => {
            let m = writable::<S>(Item("masters", index), &masters[index])?;
            same_shape(Item("masters", index), w.shape(), m.shape())?;
            Some(m)
        }
        None => None,
    };
    let s = states::<S>(
        w.shape(),
        &t.states[index * num_states..][..num_states],
        num_states,
    )?;
    Ok(Borrowed {
        index,
        w,
        g,
        master,
        s,
    })
}

impl<W: Element, S: Element> Borrowed<'_, W, S> {
    fn spans(&self, out: &mut Vec<Span>) {
        let i = self.index;
        out.push(span(&self.w, true, Name::Item("weights", i)));
        out.push(span(&self.g, false, Name::Item("grads", i)));
        if let Some(m) = &self.master {
            out.push(span(m, true, Name::Item("masters", i)));
        }
        out.extend(
            self.s
                .iter()
                .map(|s| span(s, true, Name::Item("states", i))),
        );
    }
}

/// Borrows the tensors chunk by chunk and hands each chunk to `run`, after validating the
/// whole call (arrays, and byte ranges for overlap) before the first chunk runs.
pub fn in_chunks<'py, W: Element, S: Element>(
    t: &Tensors<'_, 'py>,
    masters: Option<&[Bound<'py, PyAny>]>,
    num_states: usize,
    mut run: impl FnMut(&mut [Borrowed<'py, W, S>]) -> PyResult<()>,
) -> PyResult<()> {
    let n = t.weights.len();
    if t.states.len() != n * num_states {
        return Err(PyValueError::new_err(format!(
            "states: expected {num_states} state array(s) per weight, {} in all, got {}",
            n * num_states,
            t.states.len()
        )));
    }
    if n > BORROW_CHUNK {
        let mut spans = Vec::with_capacity(n * (3 + num_states));
        for index in 0..n {
            borrow::<W, S>(t, masters, num_states, index)?.spans(&mut spans);
        }
        check_disjoint(spans)?;
    }
    for start in (0..n).step_by(BORROW_CHUNK) {
        let mut chunk = (start..n.min(start + BORROW_CHUNK))
            .map(|index| borrow::<W, S>(t, masters, num_states, index))
            .collect::<PyResult<Vec<_>>>()?;
        if n <= BORROW_CHUNK {
            let mut spans = Vec::with_capacity(n * (3 + num_states));
            chunk.iter().for_each(|b| b.spans(&mut spans));
            check_disjoint(spans)?;
        }
        run(&mut chunk)?;
    }
    Ok(())
}

/// The rule of every tensor of a call, built before anything runs so that a bad scalar of
/// a late tensor (a NaN learning rate) is reported before the first write. Consecutive
/// equal steps share one build (a call usually has one lr and one wd for all tensors).
pub fn rules_for<R: Copy>(
    build: impl Fn(Step) -> crate::Result<R>,
    steps: &[Step],
) -> crate::Result<Vec<R>> {
    let mut rules: Vec<R> = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let rule = match rules.last() {
            Some(&last) if steps[i - 1] == *step => last,
            _ => build(*step)?,
        };
        rules.push(rule);
    }
    Ok(rules)
}
