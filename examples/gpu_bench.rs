//! GPU path throughput (feature `wgpu`): every optimizer over one large `f32` tensor and
//! over ResNet-50's 161 tensors in one dispatch, in GB/s of memory traffic against the
//! device's buffer-copy bandwidth measured in the same run.
//!
//! `cargo run --release --features wgpu --example gpu_bench -- [elements] [repetitions]`
//! (default 64M elements, 20 repetitions). On a software driver (lavapipe) the figures
//! only show that the path runs; they say nothing about GPU speed.

use mxopt::gpu::{Context, Kernel, ParamSet, Precision};
use mxopt::optim::lbsgd::{Lbsgd, Phase};
use mxopt::optim::signum::Signum;
use mxopt::optim::{adadelta::AdaDelta, adagrad::AdaGrad, adam::Adam, adamax::Adamax};
use mxopt::optim::{dcasgd::Dcasgd, ftml::Ftml, ftrl::Ftrl, lamb::Lamb, lars::Lars};
use mxopt::optim::{nadam::Nadam, nag::Nag, rmsprop::RmsProp, sgd::Sgd, sgld::Sgld};
use mxopt::rule::Step;
use std::time::Instant;

#[path = "../benches/common/resnet50.rs"]
mod shapes;
use shapes::resnet50;

/// Median seconds of `reps` runs of `f` (each waited for), after one warm-up run.
fn seconds(ctx: &Context, reps: usize, mut f: impl FnMut()) -> mxopt::Result<f64> {
    f();
    ctx.wait()?;
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            ctx.wait().map(|()| start.elapsed().as_secs_f64())
        })
        .collect::<mxopt::Result<_>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Buffer-to-buffer copy bandwidth (bytes read + written per second).
fn copy_bandwidth(ctx: &Context, elements: usize, reps: usize) -> mxopt::Result<f64> {
    let set = ParamSet::new(ctx, Precision::F32, &[elements], 1)?;
    let bytes = elements as u64 * 4;
    let t = seconds(ctx, reps, || {
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(set.weight_buffer(), 0, set.grad_buffer(), 0, bytes);
        ctx.queue().submit([enc.finish()]);
    })?;
    Ok(2.0 * bytes as f64 / t)
}

struct Bench<'a> {
    ctx: &'a Context,
    reps: usize,
    copy: f64,
}

impl Bench<'_> {
    fn report(&self, name: &str, lens: &[usize], states: usize, t: f64) {
        let elements: usize = lens.iter().sum();
        // Weight read + written, gradient read, each state read + written.
        let bytes = elements as f64 * 4.0 * (3.0 + 2.0 * states as f64);
        let rate = bytes / t;
        println!(
            "{name:<18} {:>4} tensors {:>11} params {:>9.3} ms {:>9.1} GB/s {:>6.1}% of copy",
            lens.len(),
            elements,
            t * 1e3,
            rate / 1e9,
            100.0 * rate / self.copy
        );
    }

    fn kernel<K: Kernel<N>, const N: usize>(
        &self,
        name: &str,
        lens: &[usize],
        make: impl Fn(Step) -> mxopt::Result<K>,
    ) -> mxopt::Result<()> {
        let mut set = ParamSet::new(self.ctx, Precision::F32, lens, N)?;
        let rules = lens
            .iter()
            .map(|_| make(Step::new(0.01, 1e-4, 1)))
            .collect::<mxopt::Result<Vec<_>>>()?;
        let mut failed = None;
        let t = seconds(self.ctx, self.reps, || {
            if let Err(e) = self.ctx.step(&mut set, &rules) {
                failed = Some(e);
            }
        })?;
        failed.map_or(Ok(()), Err)?;
        self.report(name, lens, N, t);
        Ok(())
    }

    fn layerwise(&self, lens: &[usize]) -> mxopt::Result<()> {
        let steps = vec![Step::new(0.01, 1e-4, 1); lens.len()];
        let mut failed = None;
        let mut set = ParamSet::new(self.ctx, Precision::F32, lens, 1)?;
        let lars = Lars {
            momentum: 0.9,
            ..Lars::default()
        };
        let scaled = vec![true; lens.len()];
        let t = seconds(self.ctx, self.reps, || {
            if let Err(e) = self.ctx.lars_step(&mut set, &lars, &steps, &scaled) {
                failed = Some(e);
            }
        })?;
        self.report("lars (2 passes)", lens, 1, t);
        let mut set = ParamSet::new(self.ctx, Precision::F32, lens, 2)?;
        let t = seconds(self.ctx, self.reps, || {
            if let Err(e) = self.ctx.lamb_step(&mut set, &Lamb::default(), &steps, true) {
                failed = Some(e);
            }
        })?;
        self.report("lamb (2 passes)", lens, 2, t);
        // LBSGD with momentum and an accumulator, every call finishing a batch of 2.
        let lbsgd = Lbsgd {
            momentum: 0.9,
            batch_scale: 2,
            ..Lbsgd::default()
        };
        let finishing = Phase {
            fresh: false,
            finishes: true,
            multiplier: 2.0,
        };
        let phases = vec![finishing; lens.len()];
        let mut set = ParamSet::new(self.ctx, Precision::F32, lens, 2)?;
        let t = seconds(self.ctx, self.reps, || {
            if let Err(e) = self.ctx.lbsgd_step(&mut set, &lbsgd, &steps, &phases) {
                failed = Some(e);
            }
        })?;
        self.report("lbsgd (mom + acc)", lens, 2, t);
        failed.map_or(Ok(()), Err)
    }

    fn all(&self, lens: &[usize]) -> mxopt::Result<()> {
        let mom = Sgd {
            momentum: 0.9,
            ..Sgd::default()
        };
        self.kernel("sgd", lens, |s| Sgd::default().multi_at::<f32>(s))?;
        self.kernel("sgd momentum", lens, |s| mom.multi_mom_at::<f32>(s))?;
        self.kernel("nag", lens, |s| {
            Nag {
                momentum: 0.9,
                ..Nag::default()
            }
            .at::<f32>(s)
        })?;
        self.kernel("adam", lens, |s| Adam::default().at::<f32>(s))?;
        self.kernel("adagrad", lens, |s| AdaGrad::default().at::<f32>(s))?;
        self.kernel("rmsprop", lens, |s| RmsProp::default().at::<f32>(s))?;
        self.kernel("rmsprop centered", lens, |s| {
            RmsProp::default().centered_at::<f32>(s)
        })?;
        self.kernel("adamax", lens, |s| Adamax::default().at::<f32>(s))?;
        self.kernel("nadam", lens, |s| Nadam::default().at::<f32>(s))?;
        self.kernel("adadelta", lens, |s| AdaDelta::default().at::<f32>(s))?;
        self.kernel("ftml", lens, |s| Ftml::default().at::<f32>(s))?;
        self.kernel("ftrl", lens, |s| Ftrl::default().at::<f32>(s))?;
        self.kernel("signum", lens, |s| Signum::default().at::<f32>(s))?;
        self.kernel("signsgd", lens, |s| Signum::default().sign_at::<f32>(s))?;
        self.kernel("dcasgd", lens, |s| Dcasgd::default().at::<f32>(s))?;
        self.kernel("sgld (no noise)", lens, |s| Sgld::default().at::<f32>(s))?;
        self.layerwise(lens)
    }
}

fn main() -> mxopt::Result<()> {
    let mut args = std::env::args().skip(1);
    let elements: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64 << 20);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let ctx = Context::new()?;
    println!("adapter: {:?}", ctx.device().adapter_info());
    let copy = copy_bandwidth(&ctx, elements, reps)?;
    println!("buffer copy: {:.1} GB/s ({elements} f32)", copy / 1e9);
    let bench = Bench {
        ctx: &ctx,
        reps,
        copy,
    };
    bench.all(&[elements])?;
    println!("ResNet-50 list, one dispatch:");
    bench.all(&resnet50())
}
