//! Criterion benchmarks of the optimizer kernels, through the public Rust API only.
//!
//! Every figure is reported as bytes moved per second (`Throughput::Bytes`), counting each
//! array element read or written once per step: a kernel with `N` state arrays reads
//! `w, g` and the states and writes `w` and the states: `4·(3 + 2N)` B/param in `f32`
//! (plain SGD 12, momentum SGD and NAG 20, Adam 28); the multi-precision step reads `g16`
//! and the `f32` master and states and writes `w16`, the master and the states:
//! `12 + 8N` B/param.
//!
//! Groups:
//! * `fp32/{1M,16M}` — one dense tensor (`engine::run` over `engine::Dense`) for every
//!   kernel of the binding's table (`kernels!` below); at 16M also momentum SGD on a
//!   one-thread pool, and a hand-written two-thread axpy `w += a·g` as the machine's
//!   in-place streaming reference (12 B/param).
//! * `mp16/16M` — one `f16` weight with its `f32` master copy (`engine::Mixed`), every
//!   kernel.
//! * `norms/16M` — `engine::reduce::norm` of one tensor, MXNet's exact sequential recipe
//!   against the fast blocked one (4 B/param).
//! * `resnet50` — one `engine::run_many` call over ResNet-50's 161 parameter tensors
//!   (25,557,032 parameters; see `benches/common/resnet50.rs`), as an aggregated update would issue it.
//!
//! Sizes are powers of two: 1M = 2^20, 16M = 2^24 parameters. Run with
//! `cargo bench --bench kernels`; the whole run takes about two minutes on two cores.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use half::f16;
use mxopt::engine::reduce::{self, Reduction};
use mxopt::engine::{self, Dense, Mixed, Noise, Noisy, RowWise};
use mxopt::optim::{
    adadelta::AdaDelta, adagrad::AdaGrad, adam::Adam, adamax::Adamax, dcasgd::Dcasgd, ftml::Ftml,
    ftrl::Ftrl, group_adagrad::GroupAdaGrad, lamb::Lamb, lars::Lars, nadam::Nadam, nag::Nag,
    rmsprop::RmsProp, sgd::Sgd, sgld::Sgld, signum::Signum,
};
use mxopt::rule::{Rule, Step};
use rayon::prelude::*;
use std::time::Duration;

#[path = "common/resnet50.rs"]
mod shapes;
use shapes::resnet50;

type BenchResult = Result<(), Box<dyn std::error::Error>>;
type Group<'a> = BenchmarkGroup<'a, WallTime>;

/// The per-call scalars every benchmark uses.
const STEP: Step = Step::new(0.01, 1e-4, 1);

const SGD_PLAIN: Sgd = Sgd {
    momentum: 0.0,
    rescale_grad: 1.0,
    clip_gradient: None,
};

const SGD_MOMENTUM: Sgd = Sgd {
    momentum: 0.9,
    ..SGD_PLAIN
};

const NAG: Nag = Nag {
    momentum: 0.9,
    rescale_grad: 1.0,
    clip_gradient: None,
};

/// Bytes moved per parameter by a step without state, and with one state buffer.
const BYTES_PLAIN: u64 = 12;
const BYTES_ONE_STATE: u64 = 20;

/// Calls `$bench::<_, N>(group, name, &rule, tensor)?` for every kernel of the binding's
/// table (the row-sparse variants aside), with MXNet's default hyper-parameters.
macro_rules! kernels {
    ($bench:ident, $g:expr, $t:expr) => {
        $bench::<_, 0>($g, "sgd_update", &SGD_PLAIN.single_at(STEP)?, $t)?;
        $bench::<_, 0>($g, "sgd_plain", &SGD_PLAIN.multi_at(STEP)?, $t)?;
        $bench::<_, 1>($g, "sgd_momentum", &SGD_MOMENTUM.multi_mom_at(STEP)?, $t)?;
        $bench::<_, 1>($g, "nag", &NAG.at(STEP)?, $t)?;
        $bench::<_, 2>($g, "adam", &Adam::default().at(STEP)?, $t)?;
        $bench::<_, 2>($g, "adamax", &Adamax::default().at(STEP)?, $t)?;
        $bench::<_, 2>($g, "nadam", &Nadam::default().at(STEP)?, $t)?;
        $bench::<_, 1>($g, "adagrad", &AdaGrad::default().at(STEP)?, $t)?;
        $bench::<_, 2>($g, "adadelta", &AdaDelta::default().at(STEP)?, $t)?;
        $bench::<_, 1>($g, "rmsprop", &RmsProp::default().at(STEP)?, $t)?;
        $bench::<_, 3>(
            $g,
            "rmsprop_centered",
            &RmsProp::default().centered_at(STEP)?,
            $t,
        )?;
        $bench::<_, 3>($g, "ftml", &Ftml::default().at(STEP)?, $t)?;
        $bench::<_, 2>($g, "ftrl", &Ftrl::default().at(STEP)?, $t)?;
        $bench::<_, 1>($g, "signum", &Signum::default().at(STEP)?, $t)?;
        $bench::<_, 0>($g, "signsgd", &Signum::default().sign_at(STEP)?, $t)?;
        $bench::<_, 1>($g, "dcasgd", &Dcasgd::default().at(STEP)?, $t)?;
        $bench::<_, 0>($g, "sgld_drift", &Sgld::default().at(STEP)?, $t)?;
    };
}

/// Deterministic, non-constant data in `[-0.5, 0.5)` (no RNG needed to fill buffers).
fn ramp(n: usize, phase: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(phase) % 1024) as f32) / 1024.0 - 0.5)
        .collect()
}

/// Weight, gradient and up to three states of one `f32` tensor.
struct Fp32 {
    w: Vec<f32>,
    g: Vec<f32>,
    s: [Vec<f32>; 3],
}

impl Fp32 {
    fn new(n: usize) -> Fp32 {
        Fp32 {
            w: ramp(n, 1),
            g: ramp(n, 2).iter().map(|x| x * 0.01).collect(),
            s: std::array::from_fn(|k| ramp(n, 3 + k).iter().map(|x| x.abs()).collect()),
        }
    }

    /// The dense walk with the first `N` state buffers.
    fn walk<const N: usize>(&mut self) -> mxopt::Result<Dense<'_, f32, N>> {
        Dense::new(&mut self.w, &self.g, first_states(&mut self.s))
    }
}

/// The first `N` of three state buffers.
fn first_states<const N: usize>(s: &mut [Vec<f32>; 3]) -> [&mut [f32]; N] {
    let mut it = s.iter_mut();
    std::array::from_fn(|_| it.next().map(Vec::as_mut_slice).unwrap_or_default())
}

/// Bytes moved per parameter by an `f32` step with `N` state buffers.
const fn bytes_per_param<const N: usize>() -> u64 {
    4 * (3 + 2 * N as u64)
}

/// The `f16` weight and gradient of one tensor, with its `f32` master copy and states.
struct Mp16 {
    w: Vec<f16>,
    g: Vec<f16>,
    master: Vec<f32>,
    s: [Vec<f32>; 3],
}

impl Mp16 {
    fn new(n: usize) -> Mp16 {
        let master = ramp(n, 1);
        Mp16 {
            w: master.iter().map(|&x| f16::from_f32(x)).collect(),
            g: ramp(n, 2)
                .iter()
                .map(|&x| f16::from_f32(x * 0.01))
                .collect(),
            master,
            s: std::array::from_fn(|k| ramp(n, 3 + k).iter().map(|x| x.abs()).collect()),
        }
    }

    /// The multi-precision walk with the first `N` state buffers.
    fn walk<const N: usize>(&mut self) -> mxopt::Result<Mixed<'_, N>> {
        Mixed::new(
            &mut self.w,
            &self.g,
            &mut self.master,
            first_states(&mut self.s),
        )
    }
}

/// Benchmarks one dense `f32` step of `rule` on `t`.
fn dense_step<R: Rule<f32, N>, const N: usize>(
    g: &mut Group<'_>,
    name: &str,
    rule: &R,
    t: &mut Fp32,
) -> BenchResult {
    let bytes = bytes_per_param::<N>() * t.w.len() as u64;
    timed(g, BenchmarkId::from_parameter(name), bytes, || {
        engine::run(rule, t.walk::<N>()?);
        Ok(())
    })
}

/// Benchmarks one multi-precision step of `rule` on `t`.
fn mixed_step<R: Rule<f32, N>, const N: usize>(
    g: &mut Group<'_>,
    name: &str,
    rule: &R,
    t: &mut Mp16,
) -> BenchResult {
    let bytes = (12 + 8 * N as u64) * t.w.len() as u64;
    timed(g, BenchmarkId::from_parameter(name), bytes, || {
        engine::run(rule, t.walk::<N>()?);
        Ok(())
    })
}

/// Benchmarks `step` under `id`; the first error `step` returns ends the run.
fn timed(
    group: &mut Group<'_>,
    id: BenchmarkId,
    bytes: u64,
    mut step: impl FnMut() -> mxopt::Result<()>,
) -> BenchResult {
    let mut failure = None;
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function(id, |b| {
        b.iter(|| {
            if let Err(e) = step() {
                failure.get_or_insert(e);
            }
        });
    });
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// A group sized for steps of tens of milliseconds: flat sampling, ten samples.
fn group<'a>(c: &'a mut Criterion, name: &str, measure_s: u64) -> Group<'a> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(measure_s));
    g
}

/// Single-tensor `f32` steps at `n` parameters (`label` names the size).
fn fp32(c: &mut Criterion, n: usize, label: &str) -> BenchResult {
    let mut t = Fp32::new(n);
    let elems = n as u64;
    let mut g = group(c, &format!("fp32/{label}"), if n > 1 << 22 { 3 } else { 1 });

    kernels!(dense_step, &mut g, &mut t);

    if n > 1 << 22 {
        let rule = SGD_MOMENTUM.multi_mom_at::<f32>(STEP)?;
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
        let id = BenchmarkId::from_parameter("sgd_momentum_1thread");
        timed(&mut g, id, BYTES_ONE_STATE * elems, || {
            one.install(|| -> mxopt::Result<()> {
                engine::run(&rule, t.walk::<1>()?);
                Ok(())
            })
        })?;
    }

    if n > 1 << 22 {
        // The streaming reference: the simplest in-place kernel, on the global pool.
        let id = BenchmarkId::from_parameter("reference_axpy");
        timed(&mut g, id, BYTES_PLAIN * elems, || {
            t.w.par_chunks_mut(1 << 16)
                .zip(t.g.par_chunks(1 << 16))
                .for_each(|(w, g)| w.iter_mut().zip(g).for_each(|(w, g)| *w += 0.001 * g));
            Ok(())
        })?;
    }
    g.finish();
    Ok(())
}

/// Multi-precision single-tensor steps at `n` parameters.
fn mp16(c: &mut Criterion, n: usize, label: &str) -> BenchResult {
    let mut t = Mp16::new(n);
    let mut g = group(c, &format!("mp16/{label}"), 3);

    kernels!(mixed_step, &mut g, &mut t);
    g.finish();
    Ok(())
}

/// One aggregated `run_many` call over ResNet-50's parameter list.
fn aggregated(c: &mut Criterion) -> BenchResult {
    let sizes = resnet50();
    let total: usize = sizes.iter().sum();
    assert_eq!(
        (sizes.len(), total),
        (161, 25_557_032),
        "ResNet-50 parameter list"
    );
    let elems = total as u64;
    let mut g = group(c, "resnet50", 3);
    let label = format!("{}_tensors", sizes.len());

    let mut fp32: Vec<Fp32> = sizes.iter().map(|&n| Fp32::new(n)).collect();
    timed(
        &mut g,
        BenchmarkId::new("fp32_sgd_plain", &label),
        BYTES_PLAIN * elems,
        || {
            let mut jobs = Vec::with_capacity(fp32.len());
            for t in &mut fp32 {
                jobs.push((SGD_PLAIN.multi_at::<f32>(STEP)?, t.walk::<0>()?));
            }
            engine::run_many(jobs);
            Ok(())
        },
    )?;
    timed(
        &mut g,
        BenchmarkId::new("fp32_sgd_momentum", &label),
        BYTES_ONE_STATE * elems,
        || {
            let mut jobs = Vec::with_capacity(fp32.len());
            for t in &mut fp32 {
                jobs.push((SGD_MOMENTUM.multi_mom_at::<f32>(STEP)?, t.walk::<1>()?));
            }
            engine::run_many(jobs);
            Ok(())
        },
    )?;
    drop(fp32);

    let mut mp: Vec<Mp16> = sizes.iter().map(|&n| Mp16::new(n)).collect();
    timed(
        &mut g,
        BenchmarkId::new("mp16_sgd_momentum", &label),
        BYTES_ONE_STATE * elems,
        || {
            let mut jobs = Vec::with_capacity(mp.len());
            for t in &mut mp {
                jobs.push((SGD_MOMENTUM.multi_mom_at::<f32>(STEP)?, t.walk::<1>()?));
            }
            engine::run_many(jobs);
            Ok(())
        },
    )?;
    g.finish();
    Ok(())
}

/// The kernels outside the rule table, one `f32` tensor each: LAMB's two passes (the
/// sweep that updates the moments and reduces `‖w‖`, `‖u‖`, then the step; 40 B/param),
/// LARS's norms of `w` and `g` plus its momentum update (28 B/param), each with exact and
/// fast norms, SGLD with its noise (12 B/param) and GroupAdaGrad's per-row walk (12 B/param
/// and the row states).
fn layerwise(c: &mut Criterion, n: usize, label: &str) -> BenchResult {
    let mut t = Fp32::new(n);
    let elems = n as u64;
    let mut g = group(c, &format!("layerwise/{label}"), 3);
    for (name, how) in [("exact", Reduction::Exact), ("fast", Reduction::Fast)] {
        let lamb = Lamb::default();
        timed(&mut g, BenchmarkId::new("lamb", name), 40 * elems, || {
            let direction = lamb.direction_at(STEP, false)?;
            let [m, v, _] = &mut t.s;
            let norms = reduce::sweep(&direction, &t.w, &t.g, [m, v], how);
            let step = lamb.step_at(STEP, direction, norms.weight, norms.swept)?;
            engine::run(&step, t.walk::<2>()?);
            Ok(())
        })?;
        let lars = Lars {
            momentum: 0.9,
            ..Lars::default()
        };
        timed(
            &mut g,
            BenchmarkId::new("lars_momentum", name),
            28 * elems,
            || {
                let (wss, gss) = (reduce::sum_sq(&t.w, how), reduce::sum_sq(&t.g, how));
                #[allow(clippy::cast_possible_truncation)]
                let lr = lars.trust()?.lr(STEP.lr as f32, STEP.wd as f32, wss, gss);
                let rule = lars.update_mom_at::<f32>(Step::new(f64::from(lr), STEP.wd, 1))?;
                engine::run(&rule, t.walk::<1>()?);
                Ok(())
            },
        )?;
    }
    let sgld = Sgld::default().at::<f32>(STEP)?;
    let noise = Noise::new(7, 0, Sgld::noise_scale(STEP))?;
    timed(
        &mut g,
        BenchmarkId::from_parameter("sgld_noise"),
        BYTES_PLAIN * elems,
        || {
            engine::run(&sgld, Noisy::new(t.walk::<0>()?, noise));
            Ok(())
        },
    )?;
    let rows = n / 256;
    let group_rule = GroupAdaGrad::default().dense_at::<f32>(STEP)?;
    let mut history = vec![0.0_f32; rows];
    timed(
        &mut g,
        BenchmarkId::from_parameter("groupadagrad"),
        BYTES_PLAIN * elems,
        || {
            engine::run(
                &group_rule,
                RowWise::new(&mut t.w, &t.g, &mut history, rows)?,
            );
            Ok(())
        },
    )?;
    g.finish();
    Ok(())
}

/// One tensor's L2 norm: MXNet's sequential recipe against the fast blocked sum.
fn norms(c: &mut Criterion, n: usize, label: &str) -> BenchResult {
    let a = ramp(n, 5);
    let mut g = group(c, &format!("norms/{label}"), 3);
    for (name, how) in [("exact", Reduction::Exact), ("fast", Reduction::Fast)] {
        timed(
            &mut g,
            BenchmarkId::from_parameter(name),
            4 * n as u64,
            || {
                std::hint::black_box(reduce::norm(&a, how));
                Ok(())
            },
        )?;
    }
    g.finish();
    Ok(())
}

fn main() -> BenchResult {
    let mut c = Criterion::default().configure_from_args();
    fp32(&mut c, 1 << 20, "1M")?;
    fp32(&mut c, 1 << 24, "16M")?;
    mp16(&mut c, 1 << 24, "16M")?;
    norms(&mut c, 1 << 24, "16M")?;
    layerwise(&mut c, 1 << 24, "16M")?;
    aggregated(&mut c)?;
    c.final_summary();
    Ok(())
}
