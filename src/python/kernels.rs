//! The kernel table and the four entry points: `step` (dense), `step_mixed` (fp16 weight
//! with fp32 master copy), `step_rows` (row-sparse gradient) and `step_many` (one call for
//! a whole list of tensors). Each validates everything before the first write, then runs
//! the engine with the GIL released (for updates large enough for that to pay).

use super::arrays::{
    readonly, same_shape, slice, slice_mut, state_slices, states, weight_and_grad, writable,
};
use super::arrays::{with_dtype, Dtype};
use super::many::{in_chunks, rules_for, Tensors};
use super::overlap::{check_disjoint, span, state_spans, Name};
use crate::engine::{self, Dense, Mixed, Noise, Noisy, RowMode, RowWise, RowWiseSparse, Rows};
use crate::optim::{adadelta::AdaDelta, adagrad::AdaGrad, adamax::Adamax, nadam::Nadam};
use crate::optim::{adam::Adam, ftml::Ftml, ftrl::Ftrl, nag::Nag, rmsprop::RmsProp, sgd::Sgd};
use crate::optim::{dcasgd::Dcasgd, group_adagrad::GroupAdaGrad, sgld::Sgld, signum::Signum};
use crate::optim::{lamb::Lamb, lars::Lars};
use crate::real::Storage;
use crate::rule::Step;
use half::f16;
use numpy::PyUntypedArrayMethods;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::marker::Ungil;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyDictMethods};

/// Elements below which a kernel runs with the GIL held: releasing and re-taking it costs
/// more than such an update (under a microsecond), and only per-call overhead would grow.
const RELEASE_GIL_LEN: usize = 1 << 14;

/// Runs `f`, releasing the GIL when the update is large enough for that to pay.
pub(super) fn compute<F: Ungil + FnOnce()>(py: Python<'_>, elements: usize, f: F) {
    if elements >= RELEASE_GIL_LEN {
        py.detach(f);
    } else {
        f();
    }
}

/// The kernel table: one line per kernel, `Variant "name" => Hyper::constructor, states;`.
/// `Hyper` (an `optim` struct listed in `from_kwargs!` below) is read from the keyword
/// arguments of `Kernel(name, **hyper)`; `constructor` builds the kernel's
/// [`Rule`](crate::rule::Rule) for one [`Step`]; `states` is its state-array count.
/// Everything else in this file is generated from it.
macro_rules! kernel_table {
    ($callback:ident!($($args:tt)*)) => {
        $callback! {$($args)*;
            Sgd "sgd" => Sgd::single_at, 0;
            SgdStd "sgd_std" => Sgd::std_at, 0;
            MultiSgd "multi_sgd" => Sgd::multi_at, 0;
            SgdMom "sgd_mom" => Sgd::mom_at, 1;
            MultiSgdMom "multi_sgd_mom" => Sgd::multi_mom_at, 1;
            NagMom "nag_mom" => Nag::at, 1;
            Adam "adam" => Adam::at, 2;
            AdamLazy "adam_lazy" => Adam::lazy_at, 2;
            AdamStd "adam_std" => Adam::std_at, 2;
            Adamax "adamax" => Adamax::at, 2;
            Nadam "nadam" => Nadam::at, 2;
            AdaGrad "adagrad" => AdaGrad::at, 1;
            AdaGradRows "adagrad_rows" => AdaGrad::rows_at, 1;
            AdaDelta "adadelta" => AdaDelta::at, 2;
            RmsProp "rmsprop" => RmsProp::at, 1;
            RmsPropAlex "rmspropalex" => RmsProp::centered_at, 3;
            Ftml "ftml" => Ftml::at, 3;
            Ftrl "ftrl" => Ftrl::at, 2;
            Signum "signum" => Signum::at, 1;
            SignSgd "signsgd" => Signum::sign_at, 0;
            Dcasgd "dcasgd" => Dcasgd::at, 1;
            Sgld "sgld" => Sgld::at, 0;
        }
    };
}

/// Hyper-parameters read from keyword arguments; an absent key keeps MXNet's default.
pub(super) trait FromKwargs: Sized {
    fn from_kwargs(kwargs: &Kwargs<'_>) -> PyResult<Self>;
}

/// Implements [`FromKwargs`] for each `Hyper { every, field }` (the struct literal makes
/// the compiler check that every field is listed).
macro_rules! from_kwargs {
    ($($H:ident { $($field:ident),* $(,)? })*) => {$(
        impl FromKwargs for $H {
            fn from_kwargs(kwargs: &Kwargs<'_>) -> PyResult<Self> {
                let default = $H::default();
                Ok($H { $($field: kwargs.take(stringify!($field), default.$field)?),* })
            }
        }
    )*};
}

from_kwargs! {
    Sgd { momentum, rescale_grad, clip_gradient }
    Nag { momentum, rescale_grad, clip_gradient }
    Adam { beta1, beta2, epsilon, rescale_grad, clip_gradient }
    Adamax { beta1, beta2, rescale_grad, clip_gradient }
    Nadam { beta1, beta2, epsilon, schedule_decay, rescale_grad, clip_gradient }
    AdaGrad { epsilon, rescale_grad, clip_gradient }
    AdaDelta { rho, epsilon, rescale_grad, clip_gradient }
    RmsProp { gamma1, gamma2, epsilon, rescale_grad, clip_gradient, clip_weights }
    Ftml { beta1, beta2, epsilon, rescale_grad, clip_gradient }
    Ftrl { lamda1, beta, rescale_grad, clip_gradient }
    Signum { momentum, wd_lh, rescale_grad, clip_gradient }
    Dcasgd { lamda, rescale_grad, clip_gradient }
    Sgld { rescale_grad, clip_gradient }
    Lars { eta, eps, momentum, rescale_grad, clip_gradient }
    Lamb { beta1, beta2, epsilon, rescale_grad, clip_gradient, bias_correction, lower_bound, upper_bound }
}

/// Reads the hyper-parameters `H` of `what` from keyword arguments, rejecting unknown keys.
pub(super) fn hyper_from_kwargs<H: FromKwargs>(
    what: &str,
    hyper: Option<&Bound<'_, PyDict>>,
) -> PyResult<H> {
    let kwargs = Kwargs {
        kernel: what.to_owned(),
        dict: hyper.map(|d| d.copy()).transpose()?,
    };
    let parsed = H::from_kwargs(&kwargs)?;
    kwargs.done()?;
    Ok(parsed)
}

macro_rules! define_any_rule {
    (; $($V:ident $name:literal => $H:ident :: $ctor:ident, $n:literal;)*) => {
        /// Every kernel, with its hyper-parameters. The variant fixes the rule and its
        /// state count.
        #[derive(Clone, Copy, Debug)]
        pub(super) enum AnyRule {
            $($V($H),)*
        }

        impl AnyRule {
            fn parse(name: &str, kwargs: &Kwargs<'_>) -> PyResult<AnyRule> {
                match name {
                    $($name => Ok(AnyRule::$V($H::from_kwargs(kwargs)?)),)*
                    _ => Err(PyValueError::new_err(format!(
                        "unknown kernel {name:?}; expected one of {:?}",
                        [$($name),*]
                    ))),
                }
            }
        }
    };
}
kernel_table!(define_any_rule!());

/// Runs `$body` with `$at` = the rule constructor for a [`Step`] and `$N` = its state count.
macro_rules! with_rule {
    ($rule:expr, $E:ty, |$at:ident, $N:ident| $body:expr) => {
        kernel_table!(with_rule_arms!($rule, $E, $at, $N, $body))
    };
}

macro_rules! with_rule_arms {
    ($rule:expr, $E:ty, $at:ident, $N:ident, $body:expr;
     $($V:ident $name:literal => $H:ident :: $ctor:ident, $n:literal;)*) => {
        match $rule {
            $(AnyRule::$V(h) => {
                #[allow(dead_code)]
                const $N: usize = $n;
                let $at = |s| h.$ctor::<$E>(s);
                $body
            })*
        }
    };
}

/// Keyword hyper-parameters, consumed one by one so leftovers can be reported.
pub(super) struct Kwargs<'py> {
    kernel: String,
    dict: Option<Bound<'py, PyDict>>,
}

impl Kwargs<'_> {
    fn take<T: for<'a, 'py> FromPyObject<'a, 'py>>(&self, key: &str, default: T) -> PyResult<T> {
        let Some(dict) = &self.dict else {
            return Ok(default);
        };
        match dict.get_item(key)? {
            None => Ok(default),
            Some(value) => {
                dict.del_item(key)?;
                value.extract().map_err(|_| {
                    let type_name = value
                        .get_type()
                        .name()
                        .map_or_else(|_| "?".into(), |n| n.to_string());
                    PyTypeError::new_err(format!(
                        "{key}: expected a number, got {} ({type_name}; kernel {})",
                        value.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
                        self.kernel
                    ))
                })
            }
        }
    }

    fn done(self) -> PyResult<()> {
        match self.dict.filter(|d| !d.is_empty()) {
            None => Ok(()),
            Some(d) => Err(PyTypeError::new_err(format!(
                "{}: unexpected hyper-parameter(s) {:?}",
                self.kernel,
                d.keys().iter().map(|k| k.to_string()).collect::<Vec<_>>()
            ))),
        }
    }
}

/// A kernel with its hyper-parameters, built once per change of hyper-parameters:
/// `Kernel("multi_sgd_mom", momentum=0.9, rescale_grad=1.0, clip_gradient=None)`.
#[pyclass(frozen, module = "mxopt._core")]
pub struct Kernel {
    pub(super) rule: AnyRule,
}

#[pymethods]
impl Kernel {
    #[new]
    #[pyo3(signature = (name, **hyper))]
    fn new(name: &str, hyper: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let kwargs = Kwargs {
            kernel: name.to_owned(),
            dict: hyper.map(|d| d.copy()).transpose()?,
        };
        let rule = AnyRule::parse(name, &kwargs)?;
        kwargs.done()?;
        // Surface NaN hyper-parameters now rather than at the first update.
        with_rule!(rule, f32, |at, N| at(Step::new(0.0, 0.0, 1)).map(|_| ()))?;
        Ok(Kernel { rule })
    }

    /// Number of state arrays the kernel updates next to the weight.
    #[getter]
    fn num_states(&self) -> usize {
        with_rule!(self.rule, f32, |_at, N| N)
    }

    fn __repr__(&self) -> String {
        format!("Kernel({:?})", self.rule)
    }
}

/// Dense update of one weight, in place.
#[pyfunction]
#[pyo3(signature = (kernel, weight, grad, states, lr, wd, t = 1, schedule = 1.0))]
#[allow(clippy::too_many_arguments)]
fn step(
    py: Python<'_>,
    kernel: &Kernel,
    weight: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    states: Vec<Bound<'_, PyAny>>,
    lr: f64,
    wd: f64,
    t: i64,
    schedule: f64,
) -> PyResult<()> {
    let step = Step {
        lr,
        wd,
        t,
        schedule,
    };
    with_dtype!(Dtype::of("weight", weight)?, T => {
        let (mut w, g) = weight_and_grad::<T>(("weight", "grad"), weight, grad)?;
        with_rule!(kernel.rule, <T as Storage>::Elem, |at, N| {
            let mut s = self::states::<T>(w.shape(), &states, N)?;
            let mut spans = vec![span(&w, true, Name::Arg("weight")), span(&g, false, Name::Arg("grad"))];
            spans.extend(state_spans(&s));
            check_disjoint(spans)?;
            let rule = at(step)?;
            let elements = w.len();
            let walk = Dense::new(slice_mut(&mut w), slice(&g), state_slices::<T, N>(&mut s))?;
            compute(py, elements, || engine::run(&rule, walk));
        });
    });
    Ok(())
}

/// Multi-precision update: `f16` weight and grad, `f32` master copy and states.
#[pyfunction]
#[pyo3(signature = (kernel, weight, grad, master, states, lr, wd, t = 1, schedule = 1.0))]
#[allow(clippy::too_many_arguments)]
fn step_mixed(
    py: Python<'_>,
    kernel: &Kernel,
    weight: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    master: &Bound<'_, PyAny>,
    states: Vec<Bound<'_, PyAny>>,
    lr: f64,
    wd: f64,
    t: i64,
    schedule: f64,
) -> PyResult<()> {
    let step = Step {
        lr,
        wd,
        t,
        schedule,
    };
    let (mut w, g) = weight_and_grad::<f16>(("weight", "grad"), weight, grad)?;
    let mut m = writable::<f32>("master weight", master)?;
    same_shape("master weight", w.shape(), m.shape())?;
    with_rule!(kernel.rule, f32, |at, N| {
        let mut s = self::states::<f32>(w.shape(), &states, N)?;
        let mut spans = vec![
            span(&w, true, Name::Arg("weight")),
            span(&g, false, Name::Arg("grad")),
            span(&m, true, Name::Arg("master weight")),
        ];
        spans.extend(state_spans(&s));
        check_disjoint(spans)?;
        let rule = at(step)?;
        let elements = w.len();
        let walk = Mixed::new(
            slice_mut(&mut w),
            slice(&g),
            slice_mut(&mut m),
            state_slices::<f32, N>(&mut s),
        )?;
        compute(py, elements, || engine::run(&rule, walk));
    });
    Ok(())
}

/// Update of a dense weight from a row-sparse gradient (`indices`, `values`).
#[pyfunction]
#[pyo3(signature = (kernel, lazy, weight, indices, values, states, lr, wd, t = 1, schedule = 1.0))]
#[allow(clippy::too_many_arguments)]
fn step_rows(
    py: Python<'_>,
    kernel: &Kernel,
    lazy: bool,
    weight: &Bound<'_, PyAny>,
    indices: &Bound<'_, PyAny>,
    values: &Bound<'_, PyAny>,
    states: Vec<Bound<'_, PyAny>>,
    lr: f64,
    wd: f64,
    t: i64,
    schedule: f64,
) -> PyResult<()> {
    let step = Step {
        lr,
        wd,
        t,
        schedule,
    };
    let mode = if lazy {
        RowMode::Lazy
    } else {
        RowMode::Standard
    };
    let idx = readonly::<i64>("indices", indices)?;
    if idx.shape().len() != 1 {
        return Err(PyValueError::new_err(format!(
            "indices: expected a 1-d array, got shape {:?}",
            idx.shape()
        )));
    }
    with_dtype!(Dtype::of("weight", weight)?, T => {
        let mut w = writable::<T>("weight", weight)?;
        let Some((&rows, row_shape)) = w.shape().split_first() else {
            return Err(PyValueError::new_err("weight: a row-sparse update needs at least 1 dim"));
        };
        let v = readonly::<T>("values", values)?;
        let expected: Vec<usize> = [idx.shape()[0]].iter().chain(row_shape).copied().collect();
        if v.shape() != expected.as_slice() {
            return Err(PyValueError::new_err(format!(
                "values: expected shape {expected:?} (one weight row per index), got {:?}",
                v.shape()
            )));
        }
        with_rule!(kernel.rule, <T as Storage>::Elem, |at, N| {
            let mut s = self::states::<T>(w.shape(), &states, N)?;
            let mut spans = vec![
                span(&w, true, Name::Arg("weight")),
                span(&idx, false, Name::Arg("indices")),
                span(&v, false, Name::Arg("values")),
            ];
            spans.extend(state_spans(&s));
            check_disjoint(spans)?;
            let rule = at(step)?;
            let elements = w.len();
            let walk = Rows::new(
                slice_mut(&mut w),
                rows,
                slice(&idx),
                slice(&v),
                state_slices::<T, N>(&mut s),
                mode,
            )?;
            compute(py, elements, || engine::run(&rule, walk));
        });
    });
    Ok(())
}

/// The per-tensor [`Step`]s of an aggregated call, each list checked for one value per
/// weight (`schedules` absent: `1.0`).
pub(super) fn steps_of(
    n: usize,
    lrs: Vec<f64>,
    wds: Vec<f64>,
    ts: Vec<i64>,
    schedules: Option<Vec<f64>>,
) -> PyResult<Vec<Step>> {
    let schedules = match schedules {
        Some(values) => per_tensor("schedules", values, n)?,
        None => vec![1.0; n],
    };
    Ok(per_tensor("lrs", lrs, n)?
        .into_iter()
        .zip(per_tensor("wds", wds, n)?)
        .zip(per_tensor("ts", ts, n)?)
        .zip(schedules)
        .map(|(((lr, wd), t), schedule)| Step {
            lr,
            wd,
            t,
            schedule,
        })
        .collect())
}

pub(super) fn per_tensor<T: Clone>(name: &str, values: Vec<T>, n: usize) -> PyResult<Vec<T>> {
    match values.len() {
        len if len == n => Ok(values),
        _ => Err(PyValueError::new_err(format!(
            "{name}: expected one value per weight ({n}), got {}",
            values.len()
        ))),
    }
}

/// One call updating a whole list of dense tensors of one dtype (MXNet's multi-tensor
/// kernels, without their 60-tensor limit). `states` is flat: the kernel's
/// `num_states` arrays of the first weight, then of the second, and so on. With `masters`,
/// the weights are `f16` and the update is multi-precision.
#[pyfunction]
#[pyo3(signature = (kernel, weights, grads, states, lrs, wds, ts, masters = None, schedules = None))]
#[allow(clippy::too_many_arguments)]
fn step_many(
    py: Python<'_>,
    kernel: &Kernel,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    lrs: Vec<f64>,
    wds: Vec<f64>,
    ts: Vec<i64>,
    masters: Option<Vec<Bound<'_, PyAny>>>,
    schedules: Option<Vec<f64>>,
) -> PyResult<()> {
    let n = weights.len();
    let grads = per_tensor("grads", grads, n)?;
    let steps = steps_of(n, lrs, wds, ts, schedules)?;
    let Some(first) = weights.first() else {
        return Ok(());
    };
    let tensors = Tensors {
        weights: &weights,
        grads: &grads,
        states: &states,
    };
    match masters {
        Some(masters) => {
            let masters = per_tensor("masters", masters, n)?;
            with_rule!(kernel.rule, f32, |at, N| {
                let rules = rules_for(at, &steps)?;
                in_chunks::<f16, f32>(&tensors, Some(&masters), N, |chunk| {
                    let elements = chunk.iter().map(|b| b.w.len()).sum();
                    let mut jobs = Vec::with_capacity(chunk.len());
                    for b in chunk.iter_mut() {
                        let master = b.master.as_mut().map(slice_mut).unwrap_or_default();
                        let s = state_slices::<f32, N>(&mut b.s);
                        let walk = Mixed::new(slice_mut(&mut b.w), slice(&b.g), master, s)?;
                        jobs.push((rules[b.index], walk));
                    }
                    compute(py, elements, || engine::run_many(jobs));
                    Ok(())
                })
            })
        }
        None => with_dtype!(Dtype::of("weights[0]", first)?, T => {
            with_rule!(kernel.rule, <T as Storage>::Elem, |at, N| {
                let rules = rules_for(at, &steps)?;
                in_chunks::<T, T>(&tensors, None, N, |chunk| {
                    let elements = chunk.iter().map(|b| b.w.len()).sum();
                    let mut jobs = Vec::with_capacity(chunk.len());
                    for b in chunk.iter_mut() {
                        let s = state_slices::<T, N>(&mut b.s);
                        let walk = Dense::new(slice_mut(&mut b.w), slice(&b.g), s)?;
                        jobs.push((rules[b.index], walk));
                    }
                    compute(py, elements, || engine::run_many(jobs));
                    Ok(())
                })
            })
        }),
    }
}

/// [`step_many`] followed by seeded Gaussian noise (SGLD): tensor `i` receives
/// `N(0, scales[i]²)` drawn from the keystream `(seeds[i], streams[i])`, exactly the values
/// `fill_normal` would write into an array of the weight's dtype and size.
#[pyfunction]
#[pyo3(signature = (kernel, weights, grads, states, lrs, wds, ts, scales, seeds, streams))]
#[allow(clippy::too_many_arguments)]
fn step_noisy(
    py: Python<'_>,
    kernel: &Kernel,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    lrs: Vec<f64>,
    wds: Vec<f64>,
    ts: Vec<i64>,
    scales: Vec<f64>,
    seeds: Vec<u64>,
    streams: Vec<u64>,
) -> PyResult<()> {
    let n = weights.len();
    let grads = per_tensor("grads", grads, n)?;
    let keystreams: Vec<(f64, (u64, u64))> = per_tensor("scales", scales, n)?
        .into_iter()
        .zip(
            per_tensor("seeds", seeds, n)?
                .into_iter()
                .zip(per_tensor("streams", streams, n)?),
        )
        .collect();
    let steps = steps_of(n, lrs, wds, ts, None)?;
    let Some(first) = weights.first() else {
        return Ok(());
    };
    let tensors = Tensors {
        weights: &weights,
        grads: &grads,
        states: &states,
    };
    with_dtype!(Dtype::of("weights[0]", first)?, T => {
        with_rule!(kernel.rule, <T as Storage>::Elem, |at, N| {
            // Every rule is built before the first tensor is written.
            let rules = steps.iter().map(|&s| at(s)).collect::<crate::Result<Vec<_>>>()?;
            let noises = keystreams
                .iter()
                .map(|&(scale, (seed, stream))| Noise::new(seed, stream, scale))
                .collect::<crate::Result<Vec<_>>>()?;
            in_chunks::<T, T>(&tensors, None, N, |chunk| {
                let elements = chunk.iter().map(|b| b.w.len()).sum();
                let mut jobs = Vec::with_capacity(chunk.len());
                for b in chunk.iter_mut() {
                    let s = state_slices::<T, N>(&mut b.s);
                    let dense = Dense::new(slice_mut(&mut b.w), slice(&b.g), s)?;
                    jobs.push((rules[b.index], Noisy::new(dense, noises[b.index])));
                }
                compute(py, elements, || engine::run_many(jobs));
                Ok(())
            })
        })
    })
}

/// GroupAdaGrad of one 2-D weight with its `(rows, 1)` accumulator `history`: a dense
/// gradient runs MXNet's Python-op maths; with `indices`, `grad` holds the listed rows of a
/// row-sparse gradient and only those rows are updated (MXNet's sparse kernel).
#[pyfunction]
#[pyo3(signature = (weight, grad, history, lr, epsilon, rescale_grad, clip_gradient, indices = None))]
#[allow(clippy::too_many_arguments)]
fn step_group_adagrad(
    py: Python<'_>,
    weight: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    history: &Bound<'_, PyAny>,
    lr: f64,
    epsilon: f64,
    rescale_grad: f64,
    clip_gradient: Option<f64>,
    indices: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let hyper = GroupAdaGrad {
        epsilon,
        rescale_grad,
        clip_gradient,
    };
    let step = Step::new(lr, 0.0, 1);
    with_dtype!(Dtype::of("weight", weight)?, T => {
        let mut w = writable::<T>("weight", weight)?;
        let &[rows, cols] = w.shape() else {
            return Err(PyValueError::new_err(format!(
                "weight: GroupAdaGrad needs a 2-d weight, got shape {:?}",
                w.shape()
            )));
        };
        let mut h = writable::<T>("history", history)?;
        if h.shape() != [rows, 1] {
            return Err(PyValueError::new_err(format!(
                "history: expected shape {:?} (one value per weight row), got {:?}",
                [rows, 1],
                h.shape()
            )));
        }
        let elements = w.len();
        match indices {
            None => {
                let g = readonly::<T>("grad", grad)?;
                same_shape("grad", w.shape(), g.shape())?;
                let rule = hyper.dense_at::<<T as Storage>::Elem>(step)?;
                let walk = RowWise::new(slice_mut(&mut w), slice(&g), slice_mut(&mut h), rows)?;
                compute(py, elements, || engine::run(&rule, walk));
            }
            Some(indices) => {
                let idx = readonly::<i64>("indices", indices)?;
                let v = readonly::<T>("values", grad)?;
                let expected = [idx.shape().first().copied().unwrap_or(0), cols];
                if idx.shape().len() != 1 || v.shape() != expected {
                    return Err(PyValueError::new_err(format!(
                        "values: expected shape {expected:?} (one weight row per index), got {:?}",
                        v.shape()
                    )));
                }
                let rule = hyper.rows_at::<<T as Storage>::Elem>(step)?;
                let walk = RowWiseSparse::new(
                    slice_mut(&mut w),
                    slice_mut(&mut h),
                    rows,
                    slice(&idx),
                    slice(&v),
                )?;
                compute(py, elements, || engine::run(&rule, walk));
            }
        }
    });
    Ok(())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Kernel>()?;
    m.add_function(wrap_pyfunction!(step, m)?)?;
    m.add_function(wrap_pyfunction!(step_mixed, m)?)?;
    m.add_function(wrap_pyfunction!(step_rows, m)?)?;
    m.add_function(wrap_pyfunction!(step_many, m)?)?;
    m.add_function(wrap_pyfunction!(step_noisy, m)?)?;
    m.add_function(wrap_pyfunction!(step_group_adagrad, m)?)?;
    Ok(())
}
