//! The high-level optimizer on the device: [`crate::optimizer::Optimizer`]'s algorithms,
//! config and step semantics (counts, schedule, multipliers, Nadam's momentum product),
//! with weights, gradients and states in a [`ParamSet`].

use super::{Context, ParamSet, Precision};
use crate::optim::{nag::Nag, sgd::Sgd};
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
    /// Schedule, multipliers and optimizer-wide counts; it holds no parameter state.
    host: Optimizer,
    algorithm: Algorithm,
    names: Vec<String>,
    counts: Vec<u64>,
    params: ParamSet,
}

impl GpuOptimizer {
    /// An optimizer for the parameters `names` of lengths `lens`, with zero weights,
    /// gradients and states (upload them through [`GpuOptimizer::params_mut`]).
    /// [`Precision::F16Master`] needs `config.multi_precision` (the device computes in
    /// `f32` on the master copy).
    ///
    /// # Errors
    /// As [`Optimizer::new`]; [`Error::Duplicate`] for a repeated name,
    /// [`Error::Length`] when `names` and `lens` differ in length,
    /// [`Error::Unsupported`] for `f16` without multi-precision or an algorithm without a
    /// GPU kernel, [`Error::Gpu`] for a device error.
    pub fn new(
        ctx: &Context,
        algorithm: Algorithm,
        config: Config,
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
        if precision == Precision::F16Master && !config.multi_precision {
            return Err(Error::Unsupported {
                kernel: "GpuOptimizer",
                name: "multi_precision",
                value: 0.0,
                why: "f16 parameters on the device need multi_precision (an f32 master copy)",
            });
        }
        let begin = config.begin_num_update;
        let host = Optimizer::new(algorithm, config)?;
        let algorithm = *host.algorithm();
        // A dry run on an empty set refuses an algorithm without a kernel.
        let mut empty = ParamSet::new(ctx, precision, &[], algorithm.num_states())?;
        run(ctx, &mut empty, algorithm, &[])?;
        let params = ParamSet::new(ctx, precision, lens, algorithm.num_states())?;
        Ok(GpuOptimizer {
            host,
            algorithm,
            names: names.iter().map(|&n| n.to_owned()).collect(),
            counts: vec![begin; names.len()],
            params,
        })
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

    /// Updates every parameter with its current gradient: one dispatch (LARS/LAMB have
    /// no high-level driver yet, see [`Context::lars_step`] and [`Context::lamb_step`]).
    ///
    /// # Errors
    /// [`Error::NotFinite`] for a learning rate or weight decay that is not finite,
    /// [`Error::Gpu`] for a device error; counts and schedule are then left as they were.
    pub fn step(&mut self, ctx: &Context) -> Result<()> {
        let counts: Vec<u64> = self.counts.iter().map(|c| c + 1).collect();
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let saved = self.host.progress();
        let steps = self.host.preamble(&names, &counts);
        match run(ctx, &mut self.params, self.algorithm, &steps) {
            Ok(()) => {
                self.counts = counts;
                Ok(())
            }
            Err(e) => {
                self.host.restore(saved);
                Err(e)
            }
        }
    }
}

/// MXNet's dense kernel choice for `algorithm` (as [`Optimizer`]'s dispatch), on the device.
fn run(ctx: &Context, set: &mut ParamSet, algorithm: Algorithm, steps: &[Step]) -> Result<()> {
    macro_rules! go {
        ($make:expr) => {{
            let rules = steps
                .iter()
                .map(|&s| $make(s))
                .collect::<Result<Vec<_>>>()?;
            ctx.step(set, &rules)
        }};
    }
    match algorithm {
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
        #[allow(unreachable_patterns)] // for variants `Algorithm` gains before they are wired
        other => Err(Error::Unsupported {
            kernel: "GpuOptimizer",
            name: other.name(),
            value: 0.0,
            why: "this algorithm has no high-level GPU driver yet",
        }),
    }
}
