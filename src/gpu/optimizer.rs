//! The high-level optimizer on the device: [`crate::optimizer::Optimizer`]'s algorithms,
//! config and step semantics (counts, schedule, multipliers, Nadam's momentum product,
//! LARS's momentum correction, SGLD's noise streams, LBSGD's accumulation), with weights,
//! gradients and states in a [`ParamSet`]; checkpoints go through the CPU optimizer
//! ([`GpuOptimizer::to_optimizer`], [`GpuOptimizer::from_optimizer`]).

use super::{Context, ParamSet, Precision};
use crate::optim::lars::{is_scaled, Lars};
use crate::optim::lbsgd::Phase;
use crate::optim::sgld::{DeviceNoisySgld, Sgld};
use crate::optim::{nag::Nag, sgd::Sgd};
use crate::optimizer::drivers::{no_weight_decay, Accumulation, Held};
use crate::optimizer::{Algorithm, Config, Optimizer};
use crate::rule::Step;
use crate::{Error, Result};

/// A fixed list of named parameters on the device, updated together (MXNet's aggregated
/// update of every parameter) by [`GpuOptimizer::step`].
///
/// ```no_run
/// use mxopt::gpu::{Context, GpuOptimizer, Precision};
/// use mxopt::optimizer::{Algorithm, Config};
///
/// let ctx = Context::new()?;
/// let mut opt = GpuOptimizer::new(
///     &ctx,
///     Algorithm::from_name("adam")?,
///     Config { wd: 1e-4, ..Config::default() },
///     &["fc1_weight", "fc1_bias"],
///     &[512 * 256, 512],
///     Precision::F32,
/// )?;
/// opt.params_mut().write_weight_f32(&ctx, 0, &vec![0.01; 512 * 256])?;
/// // each iteration: the gradients reach opt.params().grad_buffer(), then
/// opt.step(&ctx)?;
/// # Ok::<(), mxopt::Error>(())
/// ```
#[derive(Debug)]
pub struct GpuOptimizer {
    /// Schedule, multipliers, optimizer-wide counts and SGLD's generator; it holds no
    /// parameter state.
    host: Optimizer,
    algorithm: Algorithm,
    names: Vec<String>,
    counts: Vec<u64>,
    params: ParamSet,
    /// GroupAdaGrad's row count of each tensor (its state is one value per row).
    rows: Option<Vec<usize>>,
    /// LBSGD's accumulation of each tensor (its buffer is the last state; on the device
    /// it holds nothing or a dense sum).
    accumulations: Vec<Accumulation>,
    /// Whether the states exist, as the CPU optimizer's after a first update (DCASGD's
    /// state then starts as a copy of the weight).
    started: bool,
}

impl GpuOptimizer {
    /// An optimizer for the parameters `names` of lengths `lens`, with zero weights,
    /// gradients and states (upload them through [`GpuOptimizer::params_mut`]).
    /// [`Precision::F16Master`] needs `config.multi_precision` (the device computes in
    /// `f32` on the master copy). GroupAdaGrad needs the row counts
    /// ([`GpuOptimizer::set_rows`]) before its first step.
    ///
    /// # Errors
    /// As [`Optimizer::new`]; [`Error::Duplicate`] for a repeated name,
    /// [`Error::Length`] when `names` and `lens` differ in length,
    /// [`Error::Unsupported`] for `f16` without multi-precision; [`Error::Gpu`] for a
    /// device error.
    pub fn new(
        ctx: &Context,
        algorithm: Algorithm,
        config: Config,
        names: &[&str],
        lens: &[usize],
        precision: Precision,
    ) -> Result<GpuOptimizer> {
        GpuOptimizer::over(
            ctx,
            Optimizer::new(algorithm, config)?,
            names,
            lens,
            precision,
        )
    }

    /// The GPU form of `host` (its progress; its parameter states are not read).
    fn over(
        ctx: &Context,
        host: Optimizer,
        names: &[&str],
        lens: &[usize],
        precision: Precision,
    ) -> Result<GpuOptimizer> {
        super::check("lens", names.len(), lens.len())?;
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(Error::Duplicate((*name).to_owned()));
            }
        }
        if precision == Precision::F16Master && !host.config().multi_precision {
            return Err(Error::Unsupported {
                kernel: "GpuOptimizer",
                name: "multi_precision",
                value: 0.0,
                why: "f16 parameters on the device need multi_precision (an f32 master copy)",
            });
        }
        let algorithm = *host.algorithm();
        let params = ParamSet::new(ctx, precision, lens, algorithm.num_states())?;
        Ok(GpuOptimizer {
            counts: vec![host.config().begin_num_update; names.len()],
            host: host.stateless(),
            algorithm,
            names: names.iter().map(|&n| n.to_owned()).collect(),
            params,
            rows: None,
            accumulations: vec![Accumulation::default(); names.len()],
            started: false,
        })
    }

    /// The GPU form of a CPU optimizer (one restored from a checkpoint): its progress
    /// (counts, schedule, Nadam's product, LARS's rates, SGLD's generator) and, when it
    /// has updated the parameters `names`, their states, master copies and LBSGD
    /// accumulations, uploaded (an accumulator of row-sparse sums becomes the dense sum).
    /// Upload the weights afterwards: `f32` ones with [`ParamSet::write_weight_f32`],
    /// `f16` ones with [`ParamSet::write_weight_f16_keeping_master`]. States of names
    /// outside `names` are not carried.
    ///
    /// # Errors
    /// As [`GpuOptimizer::new`]; [`Error::Unsupported`] when some of `names` have state
    /// and others not (the device updates them together); [`Error::StateType`] for
    /// states of another precision (`f64`, `f16` without master copy, master copies for
    /// [`Precision::F32`] or none for [`Precision::F16Master`]); [`Error::Length`] for
    /// states of other lengths than `lens`.
    pub fn from_optimizer(
        ctx: &Context,
        cpu: &Optimizer,
        names: &[&str],
        lens: &[usize],
        precision: Precision,
    ) -> Result<GpuOptimizer> {
        let mut gpu = GpuOptimizer::over(ctx, cpu.clone(), names, lens, precision)?;
        let states = names
            .iter()
            .map(|name| cpu.f32_state(name))
            .collect::<Result<Vec<_>>>()?;
        if states.iter().all(Option::is_none) {
            return Ok(gpu);
        }
        if states.iter().any(Option::is_none) {
            return Err(Error::Unsupported {
                kernel: "GpuOptimizer::from_optimizer",
                name: "names",
                value: 0.0,
                why: "either every parameter of the list has state or none has",
            });
        }
        let states: Vec<_> = states.into_iter().flatten().collect();
        let num_states = gpu.algorithm.num_states();
        let mut rows = Vec::with_capacity(names.len());
        // Every check before the first upload.
        for (state, &len) in states.iter().zip(lens) {
            if state.master.is_some() != (precision == Precision::F16Master) {
                return Err(Error::StateType);
            }
            if let Some(master) = state.master {
                super::check("master copy", len, master.len())?;
            }
            super::check("optimizer states", num_states, state.states.len())?;
            let state_len = match gpu.algorithm {
                Algorithm::GroupAdaGrad(_) => {
                    let n = state.states.first().map_or(0, Vec::len);
                    check_rows(len, n)?;
                    rows.push(n);
                    n
                }
                _ => len,
            };
            for s in state.states {
                super::check("state", state_len, s.len())?;
            }
        }
        for (i, (state, &len)) in states.iter().zip(lens).enumerate() {
            if let Some(master) = state.master {
                gpu.params.write_master(ctx, i, master)?;
            }
            let mut accumulation = state.accumulation.clone();
            let last = state.states.len().wrapping_sub(1);
            for (k, s) in state.states.iter().enumerate() {
                let mut full = s.clone();
                full.resize(len, 0.0);
                if let (true, Held::Rows { rows, indices }) = (k == last, &accumulation.held) {
                    densify_rows(&mut full, *rows, indices);
                    accumulation.held = Held::Dense;
                }
                gpu.params.write_state(ctx, k, i, &full)?;
            }
            gpu.counts[i] = state.count;
            gpu.accumulations[i] = accumulation;
        }
        if let Algorithm::GroupAdaGrad(_) = gpu.algorithm {
            gpu.rows = Some(rows);
        }
        gpu.started = true;
        Ok(gpu)
    }

    /// The CPU form: the progress, and (after a first step) every parameter's count,
    /// states and master copy downloaded — what a checkpoint saves:
    /// `gpu.to_optimizer(&ctx)?.save(path)` ([`Optimizer::save`]). The weights stay
    /// on the device ([`ParamSet::read_weight_f32`], [`ParamSet::read_weight_f16`]).
    ///
    /// # Errors
    /// [`Error::Gpu`] for a device error.
    pub fn to_optimizer(&self, ctx: &Context) -> Result<Optimizer> {
        let mut cpu = self.host.clone();
        if !self.started {
            return Ok(cpu);
        }
        for (i, name) in self.names.iter().enumerate() {
            let mut states = (0..self.params.num_states())
                .map(|k| self.params.read_state(ctx, k, i))
                .collect::<Result<Vec<_>>>()?;
            if let Some(rows) = &self.rows {
                states.iter_mut().for_each(|s| s.truncate(rows[i]));
            }
            let master = match self.params.precision() {
                Precision::F32 => None,
                Precision::F16Master => Some(self.params.read_master(ctx, i)?),
            };
            let accumulation = self.accumulations[i].clone();
            cpu.set_f32_state(name, self.counts[i], master, states, accumulation);
        }
        Ok(cpu)
    }

    /// GroupAdaGrad's row count of each tensor (`rows[i]` divides tensor `i`'s length;
    /// its state is one value per row): what the CPU optimizer learns from a first
    /// [`crate::optimizer::Grad::Matrix`].
    ///
    /// # Errors
    /// [`Error::Length`] for `rows` of the wrong length or a row count that does not
    /// divide its tensor; [`Error::Unsupported`] for another algorithm, or once the
    /// states exist.
    pub fn set_rows(&mut self, rows: &[usize]) -> Result<()> {
        let refuse = |why| {
            Err(Error::Unsupported {
                kernel: "GpuOptimizer::set_rows",
                name: "rows",
                value: 0.0,
                why,
            })
        };
        if !matches!(self.algorithm, Algorithm::GroupAdaGrad(_)) {
            return refuse("only GroupAdaGrad has per-row state");
        }
        if self.started {
            return refuse("the per-row states exist already");
        }
        super::check("rows", self.names.len(), rows.len())?;
        for (&len, &n) in self.params.lens().iter().zip(rows) {
            check_rows(len, n)?;
        }
        self.rows = Some(rows.to_vec());
        Ok(())
    }

    /// Sets the generator SGLD draws its noise keys from (see
    /// [`Optimizer::set_generator`]; each update of a parameter takes its next stream).
    pub fn set_generator(&mut self, generator: crate::init::Generator) {
        self.host.set_generator(generator);
    }

    /// The parameters (weights, gradients, states; tensor `i` is `names[i]`).
    #[must_use]
    pub fn params(&self) -> &ParamSet {
        &self.params
    }

    /// The parameters, to upload weights, gradients or states (a checkpoint's).
    pub fn params_mut(&mut self) -> &mut ParamSet {
        &mut self.params
    }

    /// The largest update count so far (the scheduler's input).
    #[must_use]
    pub fn num_update(&self) -> u64 {
        self.host.num_update()
    }

    /// How many times `name` was updated, counted from `begin_num_update`; `None` for a
    /// name not in the list.
    #[must_use]
    pub fn update_count(&self, name: &str) -> Option<u64> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.counts[i])
    }

    /// Updates every parameter with its current gradient: one dispatch (LARS, LAMB and
    /// LBSGD's `lars` warm-up: one submission of a reducing pass, the norms and the
    /// update).
    ///
    /// # Errors
    /// [`Error::NotFinite`] for a learning rate or weight decay that is not finite (or
    /// SGLD's noise scale `√lr` for a negative rate); [`Error::Unsupported`] for
    /// GroupAdaGrad without row counts or with weight decay; [`Error::Gpu`] for a device
    /// error; counts, schedule and generator are then left as they were.
    pub fn step(&mut self, ctx: &Context) -> Result<()> {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let saved = self.host.progress();
        let (counts, steps) = self.host.begin_call(&names, &self.counts);
        match self.dispatch(ctx, &steps) {
            Ok(()) => {
                self.counts = counts;
                self.started = true;
                Ok(())
            }
            Err(e) => {
                self.host.restore(saved);
                Err(e)
            }
        }
    }

    /// MXNet's dense kernel choice for the algorithm (as [`Optimizer`]'s dispatch), on the
    /// device.
    fn dispatch(&mut self, ctx: &Context, steps: &[Step]) -> Result<()> {
        let set = &mut self.params;
        macro_rules! go {
            ($make:expr) => {{
                let rules = steps
                    .iter()
                    .map(|&s| $make(s))
                    .collect::<Result<Vec<_>>>()?;
                ctx.step(set, &rules)
            }};
        }
        match self.algorithm {
            Algorithm::Sgd(h) if h.momentum > 0.0 => go!(|s| h.multi_mom_at::<f32>(s)),
            Algorithm::Sgd(h) => go!(|s| h.multi_at::<f32>(s)),
            // MXNet hands the kernel only a positive momentum.
            Algorithm::Nag(h) if h.momentum != 0.0 => {
                let nag = Nag {
                    momentum: h.momentum.max(0.0),
                    ..h
                };
                go!(|s| nag.at::<f32>(s))
            }
            // NAG without momentum runs `sgd_update`.
            Algorithm::Nag(h) => {
                let sgd = Sgd {
                    momentum: 0.0,
                    rescale_grad: h.rescale_grad,
                    clip_gradient: h.clip_gradient,
                };
                go!(|s| sgd.single_at::<f32>(s))
            }
            Algorithm::Adam(h) => go!(|s| h.at::<f32>(s)),
            Algorithm::AdaGrad(h) => go!(|s| h.at::<f32>(s)),
            Algorithm::RmsProp {
                hyper,
                centered: false,
            } => go!(|s| hyper.at::<f32>(s)),
            Algorithm::RmsProp {
                hyper,
                centered: true,
            } => go!(|s| hyper.centered_at::<f32>(s)),
            Algorithm::Adamax(h) => go!(|s| h.at::<f32>(s)),
            Algorithm::Nadam(h) => go!(|s| h.at::<f32>(s)),
            Algorithm::AdaDelta(h) => go!(|s| h.at::<f32>(s)),
            Algorithm::Ftml(h) => go!(|s| h.at::<f32>(s)),
            Algorithm::Ftrl(h) => go!(|s| h.at::<f32>(s)),
            Algorithm::Signum(h) if h.momentum != 0.0 => go!(|s| h.at::<f32>(s)),
            Algorithm::Signum(h) => go!(|s| h.sign_at::<f32>(s)),
            Algorithm::Dcasgd(h) => {
                let rules = steps
                    .iter()
                    .map(|&s| h.at::<f32>(s))
                    .collect::<Result<Vec<_>>>()?;
                if !self.started {
                    set.copy_weight_into_state(ctx, 0)?;
                }
                ctx.step(set, &rules)
            }
            Algorithm::Test(h) => go!(|_| h.at::<f32>()),
            Algorithm::Sgld {
                hyper,
                add_noise: false,
            } => go!(|s| hyper.at::<f32>(s)),
            Algorithm::Sgld {
                hyper,
                add_noise: true,
            } => {
                // One stream per tensor, in list order, as the CPU optimizer draws them.
                let generator = self.host.generator_mut();
                go!(|s| {
                    let (seed, stream) = generator.next_stream();
                    DeviceNoisySgld::new(hyper.at::<f32>(s)?, seed, stream, Sgld::noise_scale(s))
                })
            }
            Algorithm::Lars {
                hyper,
                momentum_correction,
                ..
            } => {
                let lars = Lars {
                    momentum: self.host.lars_kernel_momentum(&hyper, momentum_correction),
                    ..hyper
                };
                let scaled: Vec<bool> = self.names.iter().map(|n| is_scaled(n)).collect();
                ctx.lars_step(set, &lars, steps, &scaled)
            }
            Algorithm::Lamb {
                hyper,
                update_master_copy,
                ..
            } => ctx.lamb_step(set, &hyper, steps, update_master_copy),
            Algorithm::GroupAdaGrad(hyper) => {
                let rows = self.rows.as_deref().ok_or(Error::Unsupported {
                    kernel: "GpuOptimizer",
                    name: "rows",
                    value: 0.0,
                    why: "GroupAdaGrad needs each tensor's row count: call set_rows first",
                })?;
                for &step in steps {
                    no_weight_decay(step)?;
                }
                ctx.group_adagrad_step(set, &hyper, steps, rows)
            }
            Algorithm::Lbsgd(hyper) => {
                let next: Vec<Accumulation> = self
                    .accumulations
                    .iter()
                    .map(|acc| {
                        let count = hyper.next_count(acc.count);
                        let held = if hyper.finishes(count) {
                            Held::Zero
                        } else {
                            Held::Dense
                        };
                        Accumulation { count, held }
                    })
                    .collect();
                let phases: Vec<Phase> = self
                    .accumulations
                    .iter()
                    .zip(&next)
                    .map(|(before, after)| Phase {
                        fresh: before.held == Held::Zero,
                        finishes: hyper.finishes(after.count),
                        multiplier: hyper.multiplier(after.count),
                    })
                    .collect();
                ctx.lbsgd_step(set, &hyper, steps, &phases)?;
                self.accumulations = next;
                Ok(())
            }
        }
    }
}

/// Zeros the rows of a row-sparse sum's buffer that the sum does not hold: the dense
/// sum it stands for (adding a dense gradient to either gives the same numbers).
fn densify_rows(buffer: &mut [f32], rows: usize, held: &[i64]) {
    let width = buffer.len().checked_div(rows).unwrap_or(0).max(1);
    for (r, row) in buffer.chunks_mut(width).enumerate() {
        if held.binary_search(&(r as i64)).is_err() {
            row.fill(0.0);
        }
    }
}

/// Checks that `rows` rows divide a tensor of `len` elements.
fn check_rows(len: usize, rows: usize) -> Result<()> {
    let row_len = len.checked_div(rows).unwrap_or(0);
    super::check("weight (rows × row length)", len, rows * row_len)
}
