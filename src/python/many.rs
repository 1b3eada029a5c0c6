//! Aggregated (multi-tensor) calls: validating and borrowing thousands of arrays.
//!
//! rust-numpy tracks every live borrow in one global table, whose cost grows with its size;
//! holding tens of thousands of borrows at once made tiny tensors several times slower
//! than they need to be. Large calls are therefore validated first — each tensor borrowed
//! and released, and every writable byte range checked against every other range for
//! overlap — and then borrowed, updated and released in chunks. Nothing is written unless
//! every tensor passed.

use super::arrays::{same_shape, states, weight_and_grad, writable, Item};
use crate::rule::Step;
use numpy::{
    Element, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods,
};
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

/// The byte range of one array, for the overlap check.
struct Span {
    start: usize,
    end: usize,
    writable: bool,
    owner: Item,
}

fn span<T: Element>(a: &Bound<'_, numpy::PyArrayDyn<T>>, writable: bool, owner: Item) -> Span {
    let start = a.data() as usize;
    let bytes = PyUntypedArrayMethods::len(a) * std::mem::size_of::<T>();
    Span {
        start,
        end: start + bytes,
        writable,
        owner,
    }
}

impl<W: Element, S: Element> Borrowed<'_, W, S> {
    fn spans(&self, out: &mut Vec<Span>) {
        let i = self.index;
        out.push(span(&self.w, true, Item("weights", i)));
        out.push(span(&self.g, false, Item("grads", i)));
        if let Some(m) = &self.master {
            out.push(span(m, true, Item("masters", i)));
        }
        out.extend(self.s.iter().map(|s| span(s, true, Item("states", i))));
    }
}

/// Fails if a written range overlaps any other range (read-only ranges may share memory).
fn check_disjoint(mut spans: Vec<Span>) -> PyResult<()> {
    spans.retain(|s| s.end > s.start);
    spans.sort_unstable_by_key(|s| s.start);
    let (mut reach_any, mut reach_written): (Option<&Span>, Option<&Span>) = (None, None);
    for s in &spans {
        let blocker = if s.writable { reach_any } else { reach_written };
        if let Some(other) = blocker.filter(|o| o.end > s.start) {
            return Err(PyValueError::new_err(format!(
                "{}: shares memory with {} (an array written by this call must not alias \
                 another array of the call)",
                s.owner, other.owner
            )));
        }
        if reach_any.is_none_or(|o| s.end > o.end) {
            reach_any = Some(s);
        }
        if s.writable && reach_written.is_none_or(|o| s.end > o.end) {
            reach_written = Some(s);
        }
    }
    Ok(())
}

/// Borrows the tensors chunk by chunk and hands each chunk to `run`, after validating the
/// whole call when it has more than one chunk.
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
        run(&mut chunk)?;
    }
    Ok(())
}

/// Builds rules for consecutive tensors, reusing the last one when the step repeats (an
/// aggregated call usually has one lr and one wd for all tensors).
pub struct RuleCache<F, R> {
    build: F,
    last: Option<(Step, R)>,
}

impl<F: Fn(Step) -> crate::Result<R>, R: Copy> RuleCache<F, R> {
    pub fn new(build: F) -> Self {
        RuleCache { build, last: None }
    }

    pub fn at(&mut self, step: Step) -> crate::Result<R> {
        match self.last {
            Some((last, rule)) if last == step => Ok(rule),
            _ => {
                let rule = (self.build)(step)?;
                self.last = Some((step, rule));
                Ok(rule)
            }
        }
    }
}
