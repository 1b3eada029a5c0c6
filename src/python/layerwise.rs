//! Entry points of the layer-wise optimizers, whose updates need per-tensor reductions
//! before (LARS) or between (LAMB) element passes, and the reductions themselves.
//!
//! Each call takes a whole list of tensors of one dtype, validates it (and every
//! hyper-parameter and per-tensor scalar) before the first write, and releases the GIL
//! for large updates.

use super::arrays::{readonly, slice, slice_mut, state_slices, with_dtype, Dtype, Item};
use super::kernels::{compute, hyper_from_kwargs, per_tensor, steps_of};
use super::many::{in_chunks, rules_for, Borrowed, Tensors};
use crate::engine::reduce::{self, Reduction};
use crate::engine::{self, Dense, Mixed};
use crate::optim::lamb::{Lamb, LambDirection};
use crate::optim::lars::{Lars, Layer, TrustRatio};
use crate::real::{Elem, Storage};
use crate::rule::{Rule, Step};
use half::f16;
use numpy::{Element, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn reduction(exact: bool) -> Reduction {
    if exact {
        Reduction::Exact
    } else {
        Reduction::Fast
    }
}

fn steps(lrs: Vec<f64>, wds: Vec<f64>, ts: Vec<i64>, n: usize) -> PyResult<Vec<Step>> {
    let steps = steps_of(n, lrs, wds, ts, None)?;
    // Every kernel reads lr and wd as f32: reject bad ones before anything is written.
    for s in &steps {
        s.lr::<f32>()?;
        s.wd::<f32>()?;
    }
    Ok(steps)
}

/// Per-array reduction over a list of arrays of any float dtype, arrays in parallel.
fn reduce_all<R: Send>(
    py: Python<'_>,
    arrays: &[Bound<'_, PyAny>],
    f: impl Fn(Reduced<'_>) -> R + Sync + Send,
) -> PyResult<Vec<R>> {
    let mut guards = Vec::with_capacity(arrays.len());
    for (i, a) in arrays.iter().enumerate() {
        guards.push(with_dtype!(Dtype::of(Item("arrays", i), a)?, T => {
            Guard::from(readonly::<T>(Item("arrays", i), a)?)
        }));
    }
    let views: Vec<Reduced<'_>> = guards.iter().map(Guard::view).collect();
    let elements = views.iter().map(Reduced::len).sum();
    let mut out = Vec::new();
    compute(py, elements, || {
        out = reduce::each(&views, elements, |v| f(*v))
    });
    Ok(out)
}

/// A borrowed array of one of the three dtypes.
enum Guard<'py> {
    F16(numpy::PyReadonlyArrayDyn<'py, f16>),
    F32(numpy::PyReadonlyArrayDyn<'py, f32>),
    F64(numpy::PyReadonlyArrayDyn<'py, f64>),
}

macro_rules! guard_from {
    ($($T:ty => $V:ident),*) => {$(
        impl<'py> From<numpy::PyReadonlyArrayDyn<'py, $T>> for Guard<'py> {
            fn from(a: numpy::PyReadonlyArrayDyn<'py, $T>) -> Self {
                Guard::$V(a)
            }
        }
    )*};
}
guard_from!(f16 => F16, f32 => F32, f64 => F64);

/// The data of a [`Guard`], shareable across threads.
#[derive(Clone, Copy)]
enum Reduced<'a> {
    F16(&'a [f16]),
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl Guard<'_> {
    fn view(&self) -> Reduced<'_> {
        match self {
            Guard::F16(a) => Reduced::F16(slice(a)),
            Guard::F32(a) => Reduced::F32(slice(a)),
            Guard::F64(a) => Reduced::F64(slice(a)),
        }
    }
}

impl Reduced<'_> {
    fn len(&self) -> usize {
        match self {
            Reduced::F16(a) => a.len(),
            Reduced::F32(a) => a.len(),
            Reduced::F64(a) => a.len(),
        }
    }
}

/// `Σ v²` of each array as MXNet's `multi_sum_sq` computes it (an `f32`; `0` for an empty
/// array); with `exact=False` the blocked parallel sum.
#[pyfunction]
#[pyo3(signature = (arrays, exact = true))]
fn sum_sq(py: Python<'_>, arrays: Vec<Bound<'_, PyAny>>, exact: bool) -> PyResult<Vec<f32>> {
    let how = reduction(exact);
    reduce_all(py, &arrays, |a| match a {
        Reduced::F16(a) => reduce::sum_sq(a, how),
        Reduced::F32(a) => reduce::sum_sq(a, how),
        Reduced::F64(a) => reduce::sum_sq(a, how),
    })
}

/// `‖a‖₂` of each array as MXNet's `NDArray.norm()` computes it, in the array's dtype
/// (returned widened to a float; `0` for an empty array, where MXNet fails). With
/// `row_sparse=True` the arrays are the stored values of row-sparse `float32` arrays,
/// whose norm MXNet computes with a BLAS dot product instead.
#[pyfunction]
#[pyo3(signature = (arrays, exact = true, row_sparse = false))]
fn norm(
    py: Python<'_>,
    arrays: Vec<Bound<'_, PyAny>>,
    exact: bool,
    row_sparse: bool,
) -> PyResult<Vec<f64>> {
    let how = reduction(exact);
    if row_sparse {
        let values = arrays
            .iter()
            .enumerate()
            .map(|(i, a)| readonly::<f32>(Item("arrays", i), a))
            .collect::<PyResult<Vec<_>>>()?;
        let views: Vec<&[f32]> = values.iter().map(slice).collect();
        let elements = views.iter().map(|v| v.len()).sum();
        let mut out = Vec::new();
        compute(py, elements, || {
            out = reduce::each(&views, elements, |v| {
                f64::from(reduce::row_sparse_norm(v, how))
            });
        });
        return Ok(out);
    }
    reduce_all(py, &arrays, |a| match a {
        Reduced::F16(a) => reduce::norm(a, how).to_f64(),
        Reduced::F32(a) => reduce::norm(a, how).to_f64(),
        Reduced::F64(a) => reduce::norm(a, how).to_f64(),
    })
}

/// LARS's dense update of a list, in one call: the sums of squares of the weights and raw
/// gradients of the `scaled` tensors, their trust-ratio learning rates (`multi_lars`), and
/// SGD's preloaded multi-tensor update. `states` holds one momentum array per weight for
/// the momentum kernel, none for the plain one. With `masters` the weights are `f16` (norms are taken
/// of the `f16` weights and gradients) and the update runs on the `f32` master copies.
#[pyfunction]
#[pyo3(signature = (weights, grads, states, lrs, wds, ts, scaled, masters = None, exact_norms = true, **hyper))]
#[allow(clippy::too_many_arguments)]
fn lars_many(
    py: Python<'_>,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    lrs: Vec<f64>,
    wds: Vec<f64>,
    ts: Vec<i64>,
    scaled: Vec<bool>,
    masters: Option<Vec<Bound<'_, PyAny>>>,
    exact_norms: bool,
    hyper: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let lars: Lars = hyper_from_kwargs("lars", hyper)?;
    let n = weights.len();
    let grads = per_tensor("grads", grads, n)?;
    let scaled = per_tensor("scaled", scaled, n)?;
    let steps = steps(lrs, wds, ts, n)?;
    let trust = lars.trust()?;
    // Reject a bad momentum, rescale_grad or clip_gradient before anything is written.
    lars.update_mom_at::<f32>(Step::new(0.0, 0.0, 1))?;
    let Some(first) = weights.first() else {
        return Ok(());
    };
    let run = LarsRun {
        lars,
        trust,
        scaled: &scaled,
        steps: &steps,
        how: reduction(exact_norms),
    };
    let tensors = Tensors {
        weights: &weights,
        grads: &grads,
        states: &states,
    };
    // MXNet picks the momentum kernel by `momentum > 0` before its correction, which may
    // bring it to 0: the caller says which by passing the momentum arrays or not.
    let with_momentum = !states.is_empty();
    match masters {
        Some(masters) => {
            let masters = per_tensor("masters", masters, n)?;
            if with_momentum {
                run.mixed::<1, _>(py, &tensors, &masters, Lars::update_mom_at::<f32>)
            } else {
                run.mixed::<0, _>(py, &tensors, &masters, Lars::update_at::<f32>)
            }
        }
        None => with_dtype!(Dtype::of("weights[0]", first)?, T => {
            if with_momentum {
                run.dense::<T, 1, _>(py, &tensors, Lars::update_mom_at::<<T as Storage>::Elem>)
            } else {
                run.dense::<T, 0, _>(py, &tensors, Lars::update_at::<<T as Storage>::Elem>)
            }
        }),
    }
}

struct LarsRun<'a> {
    lars: Lars,
    trust: TrustRatio,
    scaled: &'a [bool],
    steps: &'a [Step],
    how: Reduction,
}

impl LarsRun<'_> {
    /// The steps of a chunk with the trust-ratio learning rates of its scaled tensors,
    /// from the weights and gradients as they are before the update.
    fn scaled_steps<W: Element + Storage, S: Element>(
        &self,
        py: Python<'_>,
        chunk: &[Borrowed<'_, W, S>],
    ) -> PyResult<Vec<Step>> {
        let layers: Vec<Layer<'_, W>> = chunk
            .iter()
            .map(|b| {
                let w = b.w.as_slice().unwrap_or_default();
                (w, slice(&b.g), self.steps[b.index], self.scaled[b.index])
            })
            .collect();
        let elements = layers.iter().map(|layer| 2 * layer.0.len()).sum();
        let mut steps = Ok(Vec::new());
        compute(py, elements, || steps = self.trust.steps(&layers, self.how));
        Ok(steps?)
    }

    fn dense<T: Element + Storage, const N: usize, R: Rule<T::Elem, N> + Send + Copy>(
        &self,
        py: Python<'_>,
        tensors: &Tensors<'_, '_>,
        at: fn(&Lars, Step) -> crate::Result<R>,
    ) -> PyResult<()> {
        in_chunks::<T, T>(tensors, None, N, |chunk| {
            let steps = self.scaled_steps(py, chunk)?;
            let rules = rules_for(|s| at(&self.lars, s), &steps)?;
            let elements = chunk.iter().map(|b| b.w.len()).sum();
            let mut jobs = Vec::with_capacity(chunk.len());
            for (b, rule) in chunk.iter_mut().zip(rules) {
                let s = state_slices::<T, N>(&mut b.s);
                let walk = Dense::new(slice_mut(&mut b.w), slice(&b.g), s)?;
                jobs.push((rule, walk));
            }
            compute(py, elements, || engine::run_many(jobs));
            Ok(())
        })
    }

    fn mixed<const N: usize, R: Rule<f32, N> + Send + Copy>(
        &self,
        py: Python<'_>,
        tensors: &Tensors<'_, '_>,
        masters: &[Bound<'_, PyAny>],
        at: fn(&Lars, Step) -> crate::Result<R>,
    ) -> PyResult<()> {
        in_chunks::<f16, f32>(tensors, Some(masters), N, |chunk| {
            let steps = self.scaled_steps(py, chunk)?;
            let rules = rules_for(|s| at(&self.lars, s), &steps)?;
            let elements = chunk.iter().map(|b| b.w.len()).sum();
            let mut jobs = Vec::with_capacity(chunk.len());
            for (b, rule) in chunk.iter_mut().zip(rules) {
                let master = b.master.as_mut().map(slice_mut).unwrap_or_default();
                let s = state_slices::<f32, N>(&mut b.s);
                let walk = Mixed::new(slice_mut(&mut b.w), slice(&b.g), master, s)?;
                jobs.push((rule, walk));
            }
            compute(py, elements, || engine::run_many(jobs));
            Ok(())
        })
    }
}

/// LAMB's update of a list of `float32` weights (or, with `masters`, `float16` weights
/// and their `float32` master copies) with `float32` states `(mean, var)` per weight
/// (flat). Per tensor: phase 1 (moments, and the norms of the weight — the master copy
/// when there is one — and of the direction), then phase 2. MXNet 1.6 never writes the
/// master copy back; `write_master=True` does (the corrected behaviour).
#[pyfunction]
#[pyo3(signature = (weights, grads, states, lrs, wds, ts, masters = None, exact_norms = true, write_master = false, **hyper))]
#[allow(clippy::too_many_arguments)]
fn lamb_many(
    py: Python<'_>,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    lrs: Vec<f64>,
    wds: Vec<f64>,
    ts: Vec<i64>,
    masters: Option<Vec<Bound<'_, PyAny>>>,
    exact_norms: bool,
    write_master: bool,
    hyper: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let lamb: Lamb = hyper_from_kwargs("lamb", hyper)?;
    let n = weights.len();
    let grads = per_tensor("grads", grads, n)?;
    let steps = steps(lrs, wds, ts, n)?;
    let mixed = masters.is_some();
    // Every rule is built before anything is written.
    let directions = steps
        .iter()
        .map(|&s| lamb.direction_at(s, mixed))
        .collect::<crate::Result<Vec<_>>>()?;
    if let Some(&d) = directions.first() {
        lamb.step_at(steps[0], d, 1.0, 1.0)?;
    }
    let how = reduction(exact_norms);
    let tensors = Tensors {
        weights: &weights,
        grads: &grads,
        states: &states,
    };
    match masters {
        None => in_chunks::<f32, f32>(&tensors, None, 2, |chunk| {
            let elements = chunk.iter().map(|b| b.w.len()).sum();
            let mut sweeps = Vec::with_capacity(chunk.len());
            for b in chunk.iter_mut() {
                let w = b.w.as_slice().unwrap_or_default();
                let s = state_slices::<f32, 2>(&mut b.s);
                sweeps.push((directions[b.index], w, slice(&b.g), s));
            }
            let norms = phase1(py, elements, how, sweeps);
            let mut jobs = Vec::with_capacity(chunk.len());
            for (b, r) in chunk.iter_mut().zip(norms) {
                let step = lamb.step_at(steps[b.index], directions[b.index], r.weight, r.swept)?;
                let s = state_slices::<f32, 2>(&mut b.s);
                jobs.push((step, Dense::new(slice_mut(&mut b.w), slice(&b.g), s)?));
            }
            compute(py, elements, || engine::run_many(jobs));
            Ok(())
        }),
        Some(masters) => {
            let masters = per_tensor("masters", masters, n)?;
            in_chunks::<f16, f32>(&tensors, Some(&masters), 2, |chunk| {
                let elements = chunk.iter().map(|b| b.w.len()).sum();
                let mut sweeps = Vec::with_capacity(chunk.len());
                for b in chunk.iter_mut() {
                    let master = b.master.as_ref().map(|m| m.as_slice().unwrap_or_default());
                    let s = state_slices::<f32, 2>(&mut b.s);
                    sweeps.push((
                        directions[b.index],
                        master.unwrap_or_default(),
                        slice(&b.g),
                        s,
                    ));
                }
                let norms = phase1(py, elements, how, sweeps);
                let mut jobs = Vec::with_capacity(chunk.len());
                for (b, r) in chunk.iter_mut().zip(norms) {
                    let step =
                        lamb.step_at(steps[b.index], directions[b.index], r.weight, r.swept)?;
                    let master = b.master.as_mut().map(slice_mut).unwrap_or_default();
                    let s = state_slices::<f32, 2>(&mut b.s);
                    let walk = Mixed::new(slice_mut(&mut b.w), slice(&b.g), master, s)?;
                    jobs.push((
                        step,
                        if write_master {
                            walk
                        } else {
                            walk.keeping_master()
                        },
                    ));
                }
                compute(py, elements, || engine::run_many(jobs));
                Ok(())
            })
        }
    }
}

/// LAMB's phase 1 over a chunk ([`reduce::sweep_each`]), the GIL released when large.
fn phase1<G: Storage>(
    py: Python<'_>,
    elements: usize,
    how: Reduction,
    sweeps: Vec<reduce::SweepJob<'_, LambDirection, f32, G, 2>>,
) -> Vec<reduce::SweptNorms<f32>> {
    let mut norms = Vec::new();
    compute(py, elements, || norms = reduce::sweep_each(sweeps, how));
    norms
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sum_sq, m)?)?;
    m.add_function(wrap_pyfunction!(norm, m)?)?;
    m.add_function(wrap_pyfunction!(lars_many, m)?)?;
    m.add_function(wrap_pyfunction!(lamb_many, m)?)?;
    Ok(())
}
