//! LBSGD on the device: the gradient accumulation and the update in one pass, or, for
//! the `lars` warm-up, a pass that accumulates and sums the squares of the weight and of
//! the mean gradient, the per-tensor sums, and the update (one submission).

use super::{check, Context, ParamSet, Pass, Source};
use crate::optim::lbsgd::{self, Lbsgd, Phase};
use crate::optim::sgd::VELOCITY_WGSL;
use crate::rule::Step;
use crate::Result;

const ONE_PASS: Source = Source {
    name: "lbsgd",
    fields: lbsgd::FIELDS,
    rule: &[
        VELOCITY_WGSL[0],
        VELOCITY_WGSL[1],
        lbsgd::MEAN_WGSL,
        lbsgd::APPLY_WGSL,
        lbsgd::RULE_WGSL,
    ],
    ..Source::ELEMENTWISE
};

const NORMS: Source = Source {
    name: "lbsgd_norms",
    rule: &[lbsgd::MEAN_WGSL, lbsgd::NORMS_WGSL],
    reduces: true,
    writes_weight: false,
    ..ONE_PASS
};

const AFTER_NORMS: Source = Source {
    name: "lbsgd_after_norms",
    rule: &[
        VELOCITY_WGSL[0],
        VELOCITY_WGSL[1],
        lbsgd::APPLY_WGSL,
        lbsgd::AFTER_NORMS_WGSL,
    ],
    prepare: Some(lbsgd::LARS_PREPARE),
    ..ONE_PASS
};

impl Context {
    /// LBSGD's dense update of a set: each tensor's gradient joins its accumulator (the
    /// last state when `batch_scale > 1`; the momentum, when `momentum ≠ 0`, is the
    /// first), and a tensor whose `phases[i].finishes` is updated by SGD on the mean
    /// gradient at `lr·multiplier` (the `lars` warm-up: the multiplier from the norms of
    /// the weight, or master copy, and of the mean gradient, summed on the device in a
    /// fixed order); the others run MXNet's placeholder update (`sgd_update` at rate 0).
    /// `steps[i]` is tensor `i`'s step before the multiplier.
    ///
    /// # Errors
    /// [`crate::Error::Length`] for `steps`/`phases` of the wrong length or a set without
    /// LBSGD's state count; [`crate::Error::NotFinite`] / [`crate::Error::Unsupported`] for
    /// hyper-parameters the CPU kernels refuse; [`crate::Error::Gpu`] for a device error.
    pub fn lbsgd_step(
        &self,
        set: &mut ParamSet,
        hyper: &Lbsgd,
        steps: &[Step],
        phases: &[Phase],
    ) -> Result<()> {
        check("steps", set.len(), steps.len())?;
        check("phases", set.len(), phases.len())?;
        hyper.check()?;
        let states = usize::from(hyper.momentum != 0.0) + usize::from(hyper.batch_scale > 1);
        check("optimizer states", states, set.num_states())?;
        let hyper_of = steps
            .iter()
            .zip(phases)
            .map(|(&step, &phase)| hyper.gpu_hyper(step, phase))
            .collect::<Result<Vec<_>>>()?;
        let lars = hyper.warmup_strategy == lbsgd::WarmupStrategy::Lars;
        if !(lars && phases.iter().any(|p| p.finishes)) {
            return self.step_with(set, ONE_PASS, states, &hyper_of);
        }
        let norms = Pass::new(set, NORMS, states, &hyper_of, true)?;
        let update = Pass::new(set, AFTER_NORMS, states, &hyper_of, true)?;
        self.two_passes(set, &norms, &update)
    }
}
