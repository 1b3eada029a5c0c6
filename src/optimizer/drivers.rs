//! The optimizers whose step is more than one rule per element: per-layer norms before
//! (LARS) or between (LAMB) the element passes, gradient accumulation (LBSGD), seeded
//! noise (SGLD) and one state value per row (GroupAdaGrad). Each checks every tensor of a
//! call before its first write.

use super::{check_len, round_into, run_family, slices, Buffers, Family, Grad, Param};
use super::{ParamState, SgdMom, SgdPlain};
use crate::engine::reduce::{self, Reduction};
use crate::engine::{self, Dense, Mixed, Noise, RowMode, RowWise, RowWiseSparse, Rows};
use crate::init::Generator;
use crate::optim::group_adagrad::GroupAdaGrad;
use crate::optim::lamb::Lamb;
use crate::optim::lars::{is_scaled, Lars, Layer};
use crate::optim::lbsgd::{Lbsgd, WarmupStrategy};
use crate::optim::sgd::{F32Lr, MultiSgd, MultiSgdMom, Sgd};
use crate::optim::sgld::Sgld;
use crate::real::{Elem, Storage};
use crate::rule::Step;
use crate::{Error, Result};

/// LBSGD's gradient accumulation for one parameter (in checkpoints: `{"count": n,
/// "held": "zero"}`, `"dense"`, or `"rows"` with `"rows"` and `"indices"`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Accumulation {
    /// Gradients accumulated so far, counted from `begin_epoch·updates_per_epoch`
    /// (MXNet's `num_cums`); 0 before the first.
    pub(crate) count: u64,
    /// What the accumulator buffer holds.
    #[serde(flatten)]
    pub(crate) held: Held,
}

/// The content of LBSGD's accumulator buffer.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "held", rename_all = "lowercase")]
pub(crate) enum Held {
    /// Nothing: a fresh accumulator, or one reset by an update (MXNet's `cum_grad = 0`).
    #[default]
    Zero,
    /// A dense sum.
    Dense,
    /// The sum of row-sparse gradients of a weight of `rows` rows, over `indices`
    /// (strictly increasing).
    Rows { rows: usize, indices: Vec<i64> },
}

/// One parameter as an update sees it: the weight (or its `f32` master copy), the
/// gradient, the state buffers and the step.
pub(super) struct Slot<'a, S> {
    w: &'a mut [S],
    g: Grad<'a, S>,
    states: &'a mut Vec<Vec<S>>,
    accumulation: &'a mut Accumulation,
    step: Step,
}

/// An update over [`Slot`]s of any parameter type.
pub(super) trait Driver {
    fn run<S: Param>(&mut self, slots: &mut [Slot<'_, S>]) -> Result<()>;
}

/// Runs `driver` on the parameters, or — for `f16` parameters with master copies — on
/// the `f32` master copies with the gradients widened to `f32`, then rounds every master
/// into its weight: MXNet's generic multi-precision fallback.
pub(super) fn on_master<T: Param, D: Driver>(
    params: &mut [(&str, &mut [T], Grad<'_, T>)],
    states: &mut [ParamState],
    steps: &[Step],
    driver: &mut D,
) -> Result<()> {
    let mixed = states
        .iter()
        .any(|s| matches!(s.buffers, Buffers::Mixed { .. }));
    if !mixed {
        let mut slots = Vec::with_capacity(params.len());
        for (((_, w, g), state), &step) in params.iter_mut().zip(states.iter_mut()).zip(steps) {
            slots.push(Slot {
                w,
                g: *g,
                states: T::buffers(&mut state.buffers).ok_or(Error::StateType)?,
                accumulation: &mut state.accumulation,
                step,
            });
        }
        return driver.run(&mut slots);
    }
    let widened: Vec<Vec<f32>> = params
        .iter()
        .map(|(_, _, g)| {
            values(*g)
                .iter()
                .map(|v| v.load().to_f64() as f32)
                .collect()
        })
        .collect();
    let mut slots = Vec::with_capacity(params.len());
    let parts = params.iter().zip(states.iter_mut()).zip(steps);
    for ((((_, w, g), state), &step), values) in parts.zip(&widened) {
        let Buffers::Mixed { master, states } = &mut state.buffers else {
            return Err(Error::StateType);
        };
        check_len("weight", master.len(), w.len())?;
        let g = match *g {
            Grad::Dense(_) => Grad::Dense(values.as_slice()),
            Grad::Matrix { rows, .. } => Grad::Matrix { rows, values },
            Grad::Rows { rows, indices, .. } => Grad::Rows {
                rows,
                indices,
                values,
            },
        };
        slots.push(Slot {
            w: master.as_mut_slice(),
            g,
            states,
            accumulation: &mut state.accumulation,
            step,
        });
    }
    driver.run(&mut slots)?;
    for ((_, w, _), state) in params.iter_mut().zip(states.iter()) {
        if let Buffers::Mixed { master, .. } = &state.buffers {
            round_into(w, master);
        }
    }
    Ok(())
}

/// The stored values of a gradient.
fn values<T>(g: Grad<'_, T>) -> &[T] {
    match g {
        Grad::Dense(v) | Grad::Matrix { values: v, .. } | Grad::Rows { values: v, .. } => v,
    }
}

/// The values of a gradient the caller made dense (row-sparse ones are refused).
fn dense<T>(g: Grad<'_, T>) -> Result<&[T]> {
    match g {
        Grad::Dense(v) | Grad::Matrix { values: v, .. } => Ok(v),
        Grad::Rows { .. } => Err(Error::Unsupported {
            kernel: "Optimizer::update_rows",
            name: "row_sparse",
            value: 1.0,
            why: "this optimizer takes dense gradients",
        }),
    }
}

fn is_f32<S: 'static>() -> bool {
    std::any::TypeId::of::<S>() == std::any::TypeId::of::<f32>()
}

/// The error for a parameter type an optimizer with `f32` states does not take.
fn needs_f32(kernel: &'static str) -> Error {
    Error::Unsupported {
        kernel,
        name: "dtype",
        value: 0.0,
        why: "the states are f32: the parameters must be f32, or f16 with multi_precision",
    }
}

/// LARS for one call (see [`super::Algorithm::Lars`]).
pub(super) struct LarsCall {
    pub hyper: Lars,
    /// The momentum handed to the kernels (corrected; 0 when not positive).
    pub kernel_momentum: f64,
    pub how: Reduction,
    pub mode: RowMode,
}

/// LARS's dense path: SGD's preloaded multi-tensor kernels at the scaled rates.
struct LarsDense(Lars);

impl Family<1> for LarsDense {
    type Rule<E: Elem> = MultiSgdMom<E, F32Lr>;
    fn dense<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>> {
        self.0.update_mom_at(step)
    }
    fn rows<E: Elem>(&self, step: Step, _: RowMode) -> Result<Self::Rule<E>> {
        self.0.update_mom_at(step)
    }
}

impl Family<0> for LarsDense {
    type Rule<E: Elem> = MultiSgd<E, F32Lr>;
    fn dense<E: Elem>(&self, step: Step) -> Result<Self::Rule<E>> {
        self.0.update_at(step)
    }
    fn rows<E: Elem>(&self, step: Step, _: RowMode) -> Result<Self::Rule<E>> {
        self.0.update_at(step)
    }
}

impl LarsCall {
    pub(super) fn run<T: Param>(
        &self,
        params: &mut [(&str, &mut [T], Grad<'_, T>)],
        states: &mut [ParamState],
        steps: &[Step],
    ) -> Result<()> {
        // The momentum kernel whenever there is a buffer (MXNet passes 0 momentum to it
        // when the given one is not positive).
        let with_momentum = self.hyper.momentum != 0.0;
        let mode = self.mode;
        if params
            .iter()
            .all(|(_, _, g)| !matches!(g, Grad::Rows { .. }))
        {
            let layers = params
                .iter()
                .zip(steps)
                .map(|((name, w, g), &step)| Ok((&**w, dense(*g)?, step, is_scaled(name))))
                .collect::<Result<Vec<Layer<'_, T>>>>()?;
            let steps = self.hyper.trust()?.steps(&layers, self.how)?;
            let family = LarsDense(Lars {
                momentum: self.kernel_momentum,
                ..self.hyper
            });
            return if with_momentum {
                run_family::<T, _, 1>(&family, params, states, &steps, mode)
            } else {
                run_family::<T, _, 0>(&family, params, states, &steps, mode)
            };
        }
        // A list with a row-sparse gradient: MXNet's `_get_lars` per tensor, then SGD's own
        // kernels (row-sparse ones for row-sparse gradients).
        let rs = self.hyper.rescale_grad as f32;
        let mut scaled_steps = Vec::with_capacity(params.len());
        for ((name, w, g), &step) in params.iter().zip(steps) {
            if !is_scaled(name) {
                scaled_steps.push(step);
                continue;
            }
            let widen = |v: &T| v.load().to_f64() as f32;
            let weight: Vec<f32> = w.iter().map(widen).collect();
            let grad: Vec<f32> = values(*g).iter().map(|v| widen(v) * rs).collect();
            let weight_norm = reduce::norm(&weight, self.how);
            let grad_norm = match g {
                Grad::Rows { .. } => reduce::row_sparse_norm(&grad, self.how),
                _ => reduce::norm(&grad, self.how),
            };
            let lr = self
                .hyper
                .sparse_lr(step.lr, step.wd, weight_norm, grad_norm);
            scaled_steps.push(Step { lr, ..step });
        }
        let sgd = Sgd {
            momentum: self.kernel_momentum,
            rescale_grad: self.hyper.rescale_grad,
            clip_gradient: self.hyper.clip_gradient,
        };
        if with_momentum {
            let family = SgdMom { sgd, single: true };
            run_family(&family, params, states, &scaled_steps, mode)
        } else {
            let plain = SgdPlain { sgd, single: true };
            run_family(&plain, params, states, &scaled_steps, mode)
        }
    }
}

/// LAMB for one call (see [`super::Algorithm::Lamb`]).
pub(super) struct LambCall {
    pub hyper: Lamb,
    pub how: Reduction,
    pub update_master_copy: bool,
}

impl LambCall {
    pub(super) fn run<T: Param>(
        &self,
        params: &mut [(&str, &mut [T], Grad<'_, T>)],
        states: &mut [ParamState],
        steps: &[Step],
    ) -> Result<()> {
        let mixed = states
            .iter()
            .any(|s| matches!(s.buffers, Buffers::Mixed { .. }));
        // Every rule (and so every scalar) is checked before the first write.
        let directions = steps
            .iter()
            .map(|&step| {
                let direction = self.hyper.direction_at(step, mixed)?;
                self.hyper.step_at(step, direction, 1.0, 1.0)?;
                Ok(direction)
            })
            .collect::<Result<Vec<_>>>()?;
        let lengths = |len: usize, others: &[(&'static str, usize)]| {
            others
                .iter()
                .try_for_each(|&(what, got)| check_len(what, len, got))
        };
        let mut walks = Vec::with_capacity(params.len());
        if mixed {
            let mut mixed_walks = Vec::with_capacity(params.len());
            let mut jobs = Vec::with_capacity(params.len());
            for ((_, w, g), state) in params.iter_mut().zip(states.iter_mut()) {
                let (Some((w, g)), Buffers::Mixed { master, states }) =
                    (T::as_f16(w, dense(*g)?), &mut state.buffers)
                else {
                    return Err(Error::StateType);
                };
                let [m, v] = slices::<f32, 2>(states)?;
                let others = [("grad", g.len()), ("master weight", master.len())];
                lengths(w.len(), &others)?;
                lengths(w.len(), &[("state", m.len()), ("state", v.len())])?;
                jobs.push((w, g, master.as_mut_slice(), [m, v]));
            }
            let sweeps = jobs
                .iter_mut()
                .zip(&directions)
                .map(|((_, g, master, [m, v]), &d)| (d, &**master, *g, [&mut **m, &mut **v]))
                .collect();
            let norms = reduce::sweep_each(sweeps, self.how);
            for ((w, g, master, s), (r, (&step, &d))) in jobs
                .into_iter()
                .zip(norms.into_iter().zip(steps.iter().zip(&directions)))
            {
                let rule = self.hyper.step_at(step, d, r.weight, r.swept)?;
                let walk = Mixed::new(w, g, master, s)?;
                let walk = if self.update_master_copy {
                    walk
                } else {
                    walk.keeping_master()
                };
                mixed_walks.push((rule, walk));
            }
            engine::run_many(mixed_walks);
            return Ok(());
        }
        let mut jobs = Vec::with_capacity(params.len());
        for ((_, w, g), state) in params.iter_mut().zip(states.iter_mut()) {
            let (Some((w, g)), Buffers::F32(states)) =
                (T::as_f32(w, dense(*g)?), &mut state.buffers)
            else {
                return Err(needs_f32("lamb"));
            };
            let [m, v] = slices::<f32, 2>(states)?;
            lengths(
                w.len(),
                &[("grad", g.len()), ("state", m.len()), ("state", v.len())],
            )?;
            jobs.push((w, g, [m, v]));
        }
        let sweeps = jobs
            .iter_mut()
            .zip(&directions)
            .map(|((w, g, [m, v]), &d)| (d, &**w, *g, [&mut **m, &mut **v]))
            .collect();
        let norms = reduce::sweep_each(sweeps, self.how);
        for ((w, g, s), (r, (&step, &d))) in jobs
            .into_iter()
            .zip(norms.into_iter().zip(steps.iter().zip(&directions)))
        {
            let rule = self.hyper.step_at(step, d, r.weight, r.swept)?;
            walks.push((rule, Dense::new(w, g, s)?));
        }
        engine::run_many(walks);
        Ok(())
    }
}

/// SGLD for one call (see [`super::Algorithm::Sgld`]).
pub(super) struct SgldCall<'g> {
    pub hyper: Sgld,
    /// The noise source; `None` without noise.
    pub generator: Option<&'g mut Generator>,
}

impl Driver for SgldCall<'_> {
    fn run<S: Param>(&mut self, slots: &mut [Slot<'_, S>]) -> Result<()> {
        // One stream per tensor, in list order, as the Python package draws them.
        let noises = slots
            .iter()
            .map(|slot| {
                self.generator.as_deref_mut().map(|generator| {
                    let (seed, stream) = generator.next_stream();
                    Noise::new(seed, stream, Sgld::noise_scale(slot.step))
                })
            })
            .map(Option::transpose)
            .collect::<Result<Vec<_>>>()?;
        let (mut plain, mut noisy) = (Vec::new(), Vec::new());
        for (slot, noise) in slots.iter_mut().zip(noises) {
            let rule = self.hyper.at::<S::Elem>(slot.step)?;
            let walk = Dense::new(&mut *slot.w, dense(slot.g)?, [])?;
            match noise {
                Some(noise) => noisy.push((rule, walk, noise)),
                None => plain.push((rule, walk)),
            }
        }
        engine::run_many(plain);
        S::run_noisy(noisy);
        Ok(())
    }
}

/// GroupAdaGrad's refusal of weight decay (shared with the GPU optimizer).
pub(crate) fn no_weight_decay(step: Step) -> Result<()> {
    if step.wd == 0.0 {
        Ok(())
    } else {
        Err(Error::Unsupported {
            kernel: "groupadagrad",
            name: "wd",
            value: step.wd,
            why:
                "GroupAdaGrad has no weight decay: use wd = 0, or a wd_mult of 0 for this parameter",
        })
    }
}

/// GroupAdaGrad for one call (see [`super::Algorithm::GroupAdaGrad`]).
pub(super) struct GroupAdaGradCall(pub GroupAdaGrad);

impl Driver for GroupAdaGradCall {
    fn run<S: Param>(&mut self, slots: &mut [Slot<'_, S>]) -> Result<()> {
        if !is_f32::<S>() {
            return Err(needs_f32("groupadagrad"));
        }
        // The sparse kernel receives a clip bound only when it is truthy.
        let sparse_hyper = GroupAdaGrad {
            clip_gradient: self.0.clip_gradient.filter(|&c| c != 0.0),
            ..self.0
        };
        let (mut dense_jobs, mut sparse_jobs) = (Vec::new(), Vec::new());
        for slot in slots.iter_mut() {
            let step = slot.step;
            no_weight_decay(step)?;
            let [history] = slices::<S, 1>(slot.states)?;
            let w = &mut *slot.w;
            match slot.g {
                Grad::Dense(g) => {
                    let rows = history.len();
                    let walk = RowWise::new(w, g, history, rows)?;
                    dense_jobs.push((self.0.dense_at::<S::Elem>(step)?, walk));
                }
                Grad::Matrix { rows, values } => {
                    let walk = RowWise::new(w, values, history, rows)?;
                    dense_jobs.push((self.0.dense_at::<S::Elem>(step)?, walk));
                }
                Grad::Rows {
                    rows,
                    indices,
                    values,
                } => {
                    let walk = RowWiseSparse::new(w, history, rows, indices, values)?;
                    sparse_jobs.push((sparse_hyper.rows_at::<S::Elem>(step)?, walk));
                }
            }
        }
        engine::run_many(dense_jobs);
        engine::run_many(sparse_jobs);
        Ok(())
    }
}

/// LBSGD for one call (see [`super::Algorithm::Lbsgd`]); MXNet updates the tensors of a
/// list one after the other.
pub(super) struct LbsgdCall(pub Lbsgd);

impl Driver for LbsgdCall {
    fn run<S: Param>(&mut self, slots: &mut [Slot<'_, S>]) -> Result<()> {
        let hyper = self.0;
        let with_momentum = hyper.momentum != 0.0;
        let states = usize::from(with_momentum) + usize::from(hyper.batch_scale > 1);
        // Everything a tensor's update could refuse is checked before the first write.
        for slot in slots.iter() {
            let len = slot.w.len();
            check_len("optimizer states", states, slot.states.len())?;
            for s in slot.states.iter() {
                check_len("state", len, s.len())?;
            }
            match slot.g {
                Grad::Dense(g) | Grad::Matrix { values: g, .. } => check_len("grad", len, g.len())?,
                Grad::Rows {
                    rows,
                    indices,
                    values,
                } => {
                    super::dense_of_rows(len, rows, indices, values)?;
                    // Rows held from earlier gradients (or a checkpoint) index the same rows.
                    if let Held::Rows { rows: held, .. } = slot.accumulation.held {
                        check_len("gradient rows (as accumulated so far)", held, rows)?;
                    }
                }
            }
            placeholder().single_at::<S::Elem>(Step {
                lr: 0.0,
                ..slot.step
            })?;
            hyper.sgd().mom_at::<S::Elem>(slot.step)?;
        }
        for slot in slots.iter_mut() {
            self.one(slot)?;
        }
        Ok(())
    }
}

/// MXNet's no-op update between accumulations: `sgd_update` at learning rate 0, without
/// rescaling or clipping.
fn placeholder() -> Sgd {
    Sgd {
        momentum: 0.0,
        rescale_grad: 1.0,
        clip_gradient: None,
    }
}

impl LbsgdCall {
    fn one<S: Param>(&self, slot: &mut Slot<'_, S>) -> Result<()> {
        let hyper = self.0;
        let with_momentum = hyper.momentum != 0.0;
        let (momentum, accumulator) = slot.states.split_at_mut(usize::from(with_momentum));
        let acc = &mut *slot.accumulation;
        acc.count = hyper.next_count(acc.count);
        if let Some(buffer) = accumulator.first_mut() {
            accumulate(buffer, &mut acc.held, slot.g)?;
        }
        let step = slot.step;
        if !hyper.finishes(acc.count) {
            let step = Step { lr: 0.0, ..step };
            return sgd_step(placeholder(), step, slot.w, None, slot.g);
        }
        // The mean gradient: the accumulator divided by `batch_scale` in place, or the
        // gradient itself.
        let mut compact = Vec::new();
        let mean: Grad<'_, S> = match accumulator.first_mut() {
            None => slot.g,
            Some(buffer) => {
                let scale = <S::Elem as Elem>::from_f64(hyper.batch_scale as f64);
                let divide = |v: &mut S| *v = <S as Storage>::store(v.load() / scale);
                match &acc.held {
                    Held::Rows { rows, indices } => {
                        let len = buffer.len().checked_div(*rows).unwrap_or(0);
                        for &r in indices {
                            let at = r as usize * len;
                            buffer[at..at + len].iter_mut().for_each(divide);
                            compact.extend_from_slice(&buffer[at..at + len]);
                        }
                        Grad::Rows {
                            rows: *rows,
                            indices,
                            values: &compact,
                        }
                    }
                    Held::Dense | Held::Zero => {
                        buffer.iter_mut().for_each(divide);
                        Grad::Dense(buffer.as_slice())
                    }
                }
            }
        };
        let multiplier = if hyper.warmup_strategy == WarmupStrategy::Lars {
            let grad_sq = match mean {
                Grad::Dense(g) | Grad::Matrix { values: g, .. } => reduce::numpy_sum_sq(g),
                Grad::Rows {
                    rows,
                    indices,
                    values,
                } => reduce::numpy_sum_sq(&super::dense_of_rows(
                    slot.w.len(),
                    rows,
                    indices,
                    values,
                )?),
            };
            Lbsgd::lars_multiplier(reduce::numpy_sum_sq(slot.w), grad_sq, step.wd)
        } else {
            hyper.multiplier(acc.count)
        };
        let step = Step {
            lr: step.lr * multiplier,
            ..step
        };
        sgd_step(hyper.sgd(), step, slot.w, momentum.first_mut(), mean)?;
        slot.accumulation.held = Held::Zero;
        Ok(())
    }
}

/// SGD's update of `w` (row-sparse gradients lazily): `sgd_mom_update` with a momentum
/// buffer, else `sgd_update`.
fn sgd_step<S: Param>(
    sgd: Sgd,
    step: Step,
    w: &mut [S],
    momentum: Option<&mut Vec<S>>,
    grad: Grad<'_, S>,
) -> Result<()> {
    match (momentum, grad) {
        (Some(m), Grad::Dense(g) | Grad::Matrix { values: g, .. }) => {
            let walk = Dense::new(w, g, [m.as_mut_slice()])?;
            engine::run(&sgd.mom_at::<S::Elem>(step)?, walk);
        }
        (None, Grad::Dense(g) | Grad::Matrix { values: g, .. }) => {
            engine::run(&sgd.single_at::<S::Elem>(step)?, Dense::new(w, g, [])?);
        }
        (
            Some(m),
            Grad::Rows {
                rows,
                indices,
                values,
            },
        ) => {
            let s = [m.as_mut_slice()];
            let walk = Rows::new(w, rows, indices, values, s, RowMode::Lazy)?;
            engine::run(&sgd.mom_at::<S::Elem>(step)?, walk);
        }
        (
            None,
            Grad::Rows {
                rows,
                indices,
                values,
            },
        ) => {
            let walk = Rows::new(w, rows, indices, values, [], RowMode::Lazy)?;
            engine::run(&sgd.single_at::<S::Elem>(step)?, walk);
        }
    }
    Ok(())
}

/// Adds `g` to LBSGD's accumulator as MXNet's NDArray addition does: a fresh or reset
/// accumulator takes the gradient (plus `0.0`, MXNet's `0 + g`); two row-sparse sums stay
/// row-sparse over the union of their rows; anything else is added densely (zeros outside
/// a row-sparse operand's rows).
fn accumulate<S: Storage>(buffer: &mut [S], held: &mut Held, g: Grad<'_, S>) -> Result<()> {
    let add = |a: S, b: S| <S as Storage>::store(a.load() + b.load());
    let zero = <S as Storage>::store(<S::Elem as Elem>::zero());
    let width = |rows: usize| buffer.len().checked_div(rows).unwrap_or(0);
    *held = match (std::mem::take(held), g) {
        (Held::Zero, Grad::Dense(g) | Grad::Matrix { values: g, .. }) => {
            for (a, &b) in buffer.iter_mut().zip(g) {
                *a = add(zero, b);
            }
            Held::Dense
        }
        (
            Held::Zero,
            Grad::Rows {
                rows,
                indices,
                values,
            },
        ) => {
            let len = width(rows);
            for (&r, row) in indices.iter().zip(values.chunks_exact(len.max(1))) {
                let at = r as usize * len;
                for (a, &b) in buffer[at..at + len].iter_mut().zip(row) {
                    *a = add(zero, b);
                }
            }
            Held::Rows {
                rows,
                indices: indices.to_vec(),
            }
        }
        (Held::Dense, g) => {
            let dense = match g {
                Grad::Rows {
                    rows,
                    indices,
                    values,
                } => super::dense_of_rows(buffer.len(), rows, indices, values)?,
                Grad::Dense(g) | Grad::Matrix { values: g, .. } => g.to_vec(),
            };
            for (a, b) in buffer.iter_mut().zip(dense) {
                *a = add(*a, b);
            }
            Held::Dense
        }
        (
            Held::Rows {
                rows,
                indices: mine,
            },
            Grad::Dense(g) | Grad::Matrix { values: g, .. },
        ) => {
            let len = width(rows).max(1);
            let mut mine = mine.iter().peekable();
            for (r, (a, b)) in buffer.chunks_mut(len).zip(g.chunks(len)).enumerate() {
                let held_row = mine.next_if(|&&m| m as usize == r).is_some();
                for (a, &b) in a.iter_mut().zip(b) {
                    *a = add(if held_row { *a } else { zero }, b);
                }
            }
            Held::Dense
        }
        (
            Held::Rows {
                rows,
                indices: mine,
            },
            Grad::Rows {
                indices, values, ..
            },
        ) => {
            let len = width(rows);
            for (&r, row) in indices.iter().zip(values.chunks_exact(len.max(1))) {
                let at = r as usize * len;
                let shared = mine.binary_search(&r).is_ok();
                for (a, &b) in buffer[at..at + len].iter_mut().zip(row) {
                    *a = if shared { add(*a, b) } else { b };
                }
            }
            let mut union = mine;
            union.extend_from_slice(indices);
            union.sort_unstable();
            union.dedup();
            Held::Rows {
                rows,
                indices: union,
            }
        }
    };
    Ok(())
}
