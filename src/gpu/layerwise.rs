//! LARS and LAMB on the device: a reducing pass, the fixed-order per-tensor sums of
//! squares, and the update, recorded in one command buffer (no host round trip).

use super::{check, gpu_error, Context, ParamSet, Pass, Source};
use crate::optim::lamb::{self, Lamb};
use crate::optim::lars::Lars;
use crate::optim::sgd::{Sgd, MULTI_SGD_MOM_RULE, MULTI_SGD_RULE, VELOCITY_WGSL};
use crate::rule::{param, Step};
use crate::Result;

/// LARS's norms: the squares of the stored weight (the `f16` one for `f16` sets, as the
/// CPU path) and of the raw gradient.
const LARS_NORMS: Source = Source {
    name: "lars_norms",
    fields: &[],
    rule: &["
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    sq = vec2<f32>(w_stored * w_stored, g * g);
    return w;
}
"],
    prepare: None,
    reduces: true,
    writes_weight: false,
};

/// [`VELOCITY_FIELDS`], then the trust ratio's inputs.
const LARS_FIELDS: &[&str] = &[
    "momentum", "lr_wd", "lr", "lr_rs", "rs", "clip_on", "clip", "scaled", "base_lr", "base_wd",
    "eta", "eps",
];

/// `multi_lars` ([`crate::optim::lars::TrustRatio::lr`]) in `f32`, then SGD's
/// preloaded rates `lr·wd` and `lr·rs` from it; tensors not `scaled` keep their rate.
const LARS_PREPARE: &str = "
    if (h.scaled != 0.0) {
        let sums = norms[tensor];
        let wn = sqrt(sums.x);
        var lr = h.base_lr;
        if (wn > 0.0 && sums.y > 0.0) {
            lr = ((h.base_lr * h.eta) * wn) / (((sqrt(sums.y) * h.rs) + (h.base_wd * wn)) + h.eps);
        }
        h.lr = lr;
        h.lr_wd = lr * h.base_wd;
        h.lr_rs = lr * h.rs;
    }
";

const LARS_SGD: Source = Source {
    name: "lars_sgd",
    fields: LARS_FIELDS,
    rule: &[VELOCITY_WGSL[0], VELOCITY_WGSL[1], MULTI_SGD_RULE],
    prepare: Some(LARS_PREPARE),
    reduces: false,
    writes_weight: true,
};

const LARS_SGD_MOM: Source = Source {
    name: "lars_sgd_mom",
    rule: &[VELOCITY_WGSL[0], VELOCITY_WGSL[1], MULTI_SGD_MOM_RULE],
    ..LARS_SGD
};

const LAMB_PHASE1: Source = Source {
    name: "lamb_phase1",
    fields: lamb::FIELDS,
    rule: &[lamb::DIRECTION_WGSL, lamb::PHASE1_WGSL],
    prepare: None,
    reduces: true,
    writes_weight: false,
};

const LAMB_PHASE2: Source = Source {
    name: "lamb_phase2",
    rule: &[lamb::DIRECTION_WGSL, lamb::PHASE2_WGSL],
    prepare: Some(lamb::PHASE2_PREPARE),
    reduces: false,
    writes_weight: true,
    ..LAMB_PHASE1
};

impl Context {
    /// LARS's dense update of a set (MXNet's `multi_sum_sq`, `multi_lars` and
    /// `preloaded_multi_sgd[_mom]_update`): the trust ratio of each `scaled` tensor from
    /// the sums of squares of its weight and raw gradient (a fixed-order reduction on the
    /// device), then SGD with momentum when the set has one state, without when it has
    /// none. `steps[i]` is tensor `i`'s step.
    ///
    /// # Errors
    /// [`crate::Error::Length`] for `steps`/`scaled` of the wrong length or a set with more
    /// than one state; [`crate::Error::NotFinite`] / [`crate::Error::Unsupported`] for
    /// hyper-parameters the CPU kernels refuse; [`crate::Error::Gpu`] for a device error.
    pub fn lars_step(
        &self,
        set: &mut ParamSet,
        lars: &Lars,
        steps: &[Step],
        scaled: &[bool],
    ) -> Result<()> {
        check("steps", set.len(), steps.len())?;
        check("scaled", set.len(), scaled.len())?;
        let (eta, eps): (f32, f32) = (param("eta", lars.eta)?, param("eps", lars.eps)?);
        let sgd = Sgd {
            momentum: lars.momentum,
            rescale_grad: lars.rescale_grad,
            clip_gradient: lars.clip_gradient,
        };
        let momentum = match set.num_states() {
            0 => false,
            1 => true,
            n => {
                return Err(crate::Error::Length {
                    what: "optimizer states",
                    expected: 1,
                    got: n,
                })
            }
        };
        let mut hyper = Vec::with_capacity(steps.len());
        for (&step, &s) in steps.iter().zip(scaled) {
            let mut h = if momentum {
                super::Kernel::hyper(&sgd.multi_mom_at::<f32>(step)?)
            } else {
                super::Kernel::hyper(&sgd.multi_at::<f32>(step)?)
            };
            let (lr, wd): (f32, f32) = (step.lr()?, step.wd()?);
            h.extend_from_slice(&[f32::from(u8::from(s)), lr, wd, eta, eps]);
            hyper.push(h);
        }
        let update = if momentum { LARS_SGD_MOM } else { LARS_SGD };
        let norms_pass = Pass::new(set, LARS_NORMS, 0, &vec![Vec::new(); set.len()], true)?;
        let update_pass = Pass::new(set, update, set.num_states(), &hyper, true)?;
        self.two_passes(set, &norms_pass, &update_pass)
    }

    /// LAMB's update of a set (MXNet's `[mp_]lamb_update_phase1`, the norms of the weight
    /// and of the direction, `[mp_]lamb_update_phase2`), with the set's two states (mean,
    /// variance). For `f16` sets the direction reads the master copy and the scaled
    /// gradient rounded to `f16`, as MXNet's `mp_` kernels; `write_master: false` leaves
    /// the master copy as it was (MXNet 1.6's `mp_lamb_update_phase2`).
    ///
    /// # Errors
    /// As [`Context::lars_step`] (the set must hold two states).
    pub fn lamb_step(
        &self,
        set: &mut ParamSet,
        lamb: &Lamb,
        steps: &[Step],
        write_master: bool,
    ) -> Result<()> {
        check("steps", set.len(), steps.len())?;
        check("optimizer states", 2, set.num_states())?;
        let mixed = set.precision() == super::Precision::F16Master;
        let mut hyper = Vec::with_capacity(steps.len());
        for &step in steps {
            let direction = lamb.direction_at(step, mixed)?;
            // Validates the rate as the CPU's phase 2 does.
            lamb.step_at(step, direction, 1.0, 1.0)?;
            let mut h = direction.gpu_hyper();
            h.extend_from_slice(&lamb.gpu_step_hyper(step)?);
            hyper.push(h);
        }
        let phase1 = Pass::new(set, LAMB_PHASE1, 2, &hyper, true)?;
        let phase2 = Pass::new(set, LAMB_PHASE2, 2, &hyper, write_master)?;
        self.two_passes(set, &phase1, &phase2)
    }

    /// A reducing pass, the per-tensor sums, and a pass reading them: one submission.
    pub(super) fn two_passes(
        &self,
        set: &mut ParamSet,
        reduce: &Pass,
        update: &Pass,
    ) -> Result<()> {
        if reduce.chunks == 0 {
            return Ok(());
        }
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, set, reduce)?;
        self.encode(&mut encoder, set, update)?;
        self.scoped(|| {
            self.queue.submit([encoder.finish()]);
        })
        .map_err(|e| {
            gpu_error(format!(
                "{} / {}: {e}",
                reduce.variant.source.name, update.variant.source.name
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::sgd::VELOCITY_FIELDS;

    #[test]
    fn lars_fields_extend_sgds() {
        assert_eq!(&LARS_FIELDS[..VELOCITY_FIELDS.len()], VELOCITY_FIELDS);
    }
}
