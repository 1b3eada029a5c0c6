//! Overlap checks from the byte ranges arrays actually cover.
//!
//! rust-numpy's borrow tracking sees only arrays that share a base `ndarray`; views of one
//! foreign buffer (two `np.frombuffer` views of a `bytearray`, an `as_strided` view) escape
//! it. Every call therefore compares the byte ranges of all its arrays before it writes:
//! a written range may not overlap any other range; ranges that are only read may.

use numpy::{Element, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::fmt;

/// How an error names an array: an argument (`weight`) or an item of a list argument
/// (`weights[3]`).
#[derive(Clone, Copy, Debug)]
pub enum Name {
    Arg(&'static str),
    Item(&'static str, usize),
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Arg(name) => f.write_str(name),
            Name::Item(name, i) => write!(f, "{name}[{i}]"),
        }
    }
}

/// The byte range of one C-contiguous array of a call.
pub struct Span {
    start: usize,
    end: usize,
    writable: bool,
    owner: Name,
}

/// The range of `a` (validated C-contiguous), written by the call or only read.
pub fn span<T: Element>(a: &Bound<'_, PyArrayDyn<T>>, writable: bool, owner: Name) -> Span {
    let start = a.data() as usize;
    let bytes = PyUntypedArrayMethods::len(a) * std::mem::size_of::<T>();
    Span {
        start,
        end: start + bytes,
        writable,
        owner,
    }
}

/// Fails if a written range overlaps any other range (read-only ranges may share memory).
pub fn check_disjoint(mut spans: Vec<Span>) -> PyResult<()> {
    spans.retain(|s| s.end > s.start);
    spans.sort_unstable_by_key(|s| s.start);
    let (mut reach_any, mut reach_written): (Option<&Span>, Option<&Span>) = (None, None);
    for s in &spans {
        let blocker = if s.writable { reach_any } else { reach_written };
        if let Some(other) = blocker.filter(|o| o.end > s.start) {
            return Err(PyValueError::new_err(format!(
                "{}: shares memory with {} (an array written by this call must not overlap \
                 another array of the call, e.g. a weight aliasing its gradient, or the same \
                 weight updated by two threads at once)",
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

/// The ranges of a call's state arrays (all written), named `states[k]`.
pub fn state_spans<'a, T: Element>(
    states: &'a [numpy::PyReadwriteArrayDyn<'_, T>],
) -> impl Iterator<Item = Span> + 'a {
    states
        .iter()
        .enumerate()
        .map(|(k, s)| span(s, true, Name::Item("states", k)))
}
