//! The GPU path against the CPU kernels (feature `wgpu`). Without a Vulkan adapter every
//! test prints why and returns: the rest of the suite is unaffected.
#![cfg(feature = "wgpu")]
#![allow(clippy::unwrap_used)] // test helpers unwrap known-good inputs

use mxopt::engine::{self, Dense, Mixed};
use mxopt::gpu::{Context, Kernel, ParamSet, Precision, CHUNK};
use mxopt::half::f16;
use mxopt::rule::{Rule, Step};
use mxopt::Result;
use std::sync::OnceLock;

/// One device for the whole test binary (opening one costs more than the tests).
fn ctx() -> Option<&'static Context> {
    static CTX: OnceLock<std::result::Result<Context, String>> = OnceLock::new();
    match CTX.get_or_init(|| Context::new().map_err(|e| e.to_string())) {
        Ok(c) => Some(c),
        Err(why) => {
            eprintln!("skipping GPU test: {why}");
            None
        }
    }
}

/// Sizes around the workgroup (256) and chunk (1024) and their multiples, odd ones
/// included (odd `f16` lengths leave half a word).
const SIZES: [usize; 12] = [
    0,
    1,
    63,
    64,
    65,
    255,
    256,
    257,
    1023,
    1024,
    1025,
    2 * 1024 + 3,
];

/// Steps run: enough for states to matter and counts to move the bias corrections.
const STEPS: i64 = 3;

/// Largest distance in `f32` ulps allowed between GPU and CPU (see the module docs of
/// `mxopt::gpu`: the driver may fuse `a·b + c` and round `/` and `sqrt` within 3 ulp).
const ULPS: u32 = 8;

/// A fused `a·b + c` is exact where the CPU rounds `a·b` first: when `a·b` and `c` nearly
/// cancel, the difference is a few ulps of the operands (O(1) in these tests), not of the
/// small result. Differences up to this absolute bound (8 ulps of 1.0) are accepted too.
const ABS: f32 = 8.0 * f32::EPSILON;

/// A deterministic value in `[-1, 1)` (xorshift), never exactly zero.
fn value(seed: u64, i: usize) -> f32 {
    let mut x =
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    let v = ((x >> 40) as f32) / ((1u64 << 24) as f32) * 2.0 - 1.0;
    if v == 0.0 {
        0.5
    } else {
        v
    }
}

fn ordered(x: f32) -> i64 {
    let b = x.to_bits() as i32;
    i64::from(if b < 0 { i32::MIN - b } else { b })
}

fn ulps(a: f32, b: f32) -> u64 {
    if a.is_nan() && b.is_nan() {
        return 0;
    }
    (ordered(a) - ordered(b)).unsigned_abs()
}

fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], tol: u32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    for (i, (&a, &b)) in gpu.iter().zip(cpu).enumerate() {
        assert!(
            ulps(a, b) <= u64::from(tol) || (a - b).abs() <= ABS,
            "{what}[{i}]: gpu {a:e} cpu {b:e} ({} ulp)",
            ulps(a, b)
        );
    }
}

fn assert_close_f16(what: &str, gpu: &[f16], cpu: &[f16]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    for (i, (&a, &b)) in gpu.iter().zip(cpu).enumerate() {
        let d = (i32::from(a.to_bits() as i16) - i32::from(b.to_bits() as i16)).unsigned_abs();
        assert!(
            a.to_bits() == b.to_bits() || (d <= 1 && a.is_finite()),
            "{what}[{i}]: gpu {a} cpu {b}"
        );
    }
}

/// The per-tensor step of tensor `i` at update `t`: every tensor has its own rate and
/// decay, as in an aggregated update with multipliers.
fn step_of(i: usize, t: i64) -> Step {
    Step::new(0.05 + 0.01 * i as f64, 0.001 * (i % 3) as f64, t)
}

/// Runs `make`'s rule for [`STEPS`] steps on the CPU and, as ONE list in one dispatch per
/// step, on the GPU, with `f32` weights (or `f16` weights and an `f32` master copy), and
/// compares weights, states and master copies.
fn compare<K, const N: usize>(
    lens: &[usize],
    precision: Precision,
    make: impl Fn(Step) -> Result<K>,
) where
    K: Kernel<N> + Rule<f32, N>,
{
    let Some(ctx) = ctx() else { return };
    let mut set = ParamSet::new(ctx, precision, lens, N).unwrap();
    let mut w32: Vec<Vec<f32>> = Vec::new();
    let mut w16: Vec<Vec<f16>> = Vec::new();
    let mut states: Vec<[Vec<f32>; N]> = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        let w: Vec<f32> = (0..len).map(|j| value(i as u64 + 1, j)).collect();
        // Non-zero starting states exercise every branch from the first step.
        let s: [Vec<f32>; N] = std::array::from_fn(|k| {
            (0..len)
                .map(|j| value(100 + k as u64, j).abs() * 0.1)
                .collect()
        });
        for (k, sk) in s.iter().enumerate() {
            set.write_state(ctx, k, i, sk).unwrap();
        }
        match precision {
            Precision::F32 => set.write_weight_f32(ctx, i, &w).unwrap(),
            Precision::F16Master => {
                let h: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
                set.write_weight_f16(ctx, i, &h).unwrap();
                w16.push(h);
            }
        }
        w32.push(w);
        states.push(s);
    }
    if precision == Precision::F16Master {
        w32 = w16
            .iter()
            .map(|h| h.iter().map(|x| x.to_f32()).collect())
            .collect();
    }
    for t in 1..=STEPS {
        let mut rules = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            let g: Vec<f32> = (0..len)
                .map(|j| value(1000 * t as u64 + i as u64, j))
                .collect();
            let rule = make(step_of(i, t)).unwrap();
            let s: [&mut [f32]; N] = {
                let v: Vec<&mut [f32]> = states[i].iter_mut().map(Vec::as_mut_slice).collect();
                v.try_into().unwrap_or_else(|_| unreachable!())
            };
            match precision {
                Precision::F32 => {
                    set.write_grad_f32(ctx, i, &g).unwrap();
                    engine::run(&rule, Dense::new(&mut w32[i], &g, s).unwrap());
                }
                Precision::F16Master => {
                    let g: Vec<f16> = g.iter().map(|&x| f16::from_f32(x)).collect();
                    set.write_grad_f16(ctx, i, &g).unwrap();
                    engine::run(&rule, Mixed::new(&mut w16[i], &g, &mut w32[i], s).unwrap());
                }
            }
            rules.push(rule);
        }
        ctx.step(&mut set, &rules).unwrap();
    }
    for (i, _) in lens.iter().enumerate() {
        let what = format!("{} tensor {i}", K::SOURCE.name);
        match precision {
            Precision::F32 => {
                assert_close(&what, &set.read_weight_f32(ctx, i).unwrap(), &w32[i], ULPS);
            }
            Precision::F16Master => {
                assert_close(&what, &set.read_master(ctx, i).unwrap(), &w32[i], ULPS);
                assert_close_f16(&what, &set.read_weight_f16(ctx, i).unwrap(), &w16[i]);
            }
        }
        for (k, expected) in states[i].iter().enumerate() {
            let what = format!("{what} state {k}");
            assert_close(&what, &set.read_state(ctx, k, i).unwrap(), expected, ULPS);
        }
    }
}

/// Both precisions over the list of [`SIZES`] in one dispatch, and one multi-chunk tensor.
fn both<K, const N: usize>(make: impl Fn(Step) -> Result<K> + Copy)
where
    K: Kernel<N> + Rule<f32, N>,
{
    for precision in [Precision::F32, Precision::F16Master] {
        compare(&SIZES, precision, make);
        compare(&[3 * CHUNK as usize * 2 + 5], precision, make);
    }
}

use mxopt::optim::{adadelta::AdaDelta, adagrad::AdaGrad, adam::Adam, adamax::Adamax};
use mxopt::optim::{dcasgd::Dcasgd, ftml::Ftml, ftrl::Ftrl, nadam::Nadam, nag::Nag};
use mxopt::optim::{rmsprop::RmsProp, sgd::Sgd, sgld::Sgld, signum::Signum};

#[test]
fn sgd_plain_momentum_and_single() {
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    both(|s| sgd.multi_mom_at::<f32>(s));
    both(|s| Sgd::default().multi_at::<f32>(s));
    let clipped = Sgd {
        rescale_grad: 2.0,
        clip_gradient: Some(0.7),
        momentum: 0.5,
    };
    both(|s| clipped.multi_mom_at::<f32>(s));
    both(|s| clipped.single_at::<f32>(s));
}

#[test]
fn adam() {
    both(|s| Adam::default().at::<f32>(s));
    let clipped = Adam {
        clip_gradient: Some(0.3),
        rescale_grad: 1.5,
        ..Adam::default()
    };
    both(|s| clipped.at::<f32>(s));
}

#[test]
fn nag() {
    let nag = Nag {
        momentum: 0.9,
        clip_gradient: Some(0.5),
        ..Nag::default()
    };
    both(|s| nag.at::<f32>(s));
}

#[test]
fn adagrad() {
    both(|s| AdaGrad::default().at::<f32>(s));
    let clipped = AdaGrad {
        clip_gradient: Some(0.4),
        ..AdaGrad::default()
    };
    both(|s| clipped.at::<f32>(s));
}

#[test]
fn rmsprop_plain_and_centered() {
    let hyper = RmsProp {
        clip_gradient: Some(0.8),
        clip_weights: Some(0.9),
        ..RmsProp::default()
    };
    both(|s| hyper.at::<f32>(s));
    both(|s| hyper.centered_at::<f32>(s));
    both(|s| RmsProp::default().centered_at::<f32>(s));
}

#[test]
fn adamax_nadam_adadelta() {
    both(|s| Adamax::default().at::<f32>(s));
    both(|s| Nadam::default().at::<f32>(Step { schedule: 0.8, ..s }));
    both(|s| {
        AdaDelta {
            clip_gradient: Some(0.5),
            ..AdaDelta::default()
        }
        .at::<f32>(s)
    });
}

#[test]
fn ftml_ftrl() {
    both(|s| Ftml::default().at::<f32>(s));
    both(|s| Ftrl::default().at::<f32>(s));
}

#[test]
fn signum_signsgd_dcasgd_sgld() {
    both(|s| {
        Signum {
            wd_lh: 0.01,
            ..Signum::default()
        }
        .at::<f32>(s)
    });
    both(|s| {
        Signum {
            clip_gradient: Some(0.3),
            ..Signum::default()
        }
        .at::<f32>(s)
    });
    both(|s| Signum::default().sign_at::<f32>(s));
    both(|s| Dcasgd::default().at::<f32>(s));
    both(|s| {
        Sgld {
            clip_gradient: Some(0.5),
            ..Sgld::default()
        }
        .at::<f32>(s)
    });
}

use mxopt::engine::reduce::{self, Reduction};
use mxopt::optim::{lamb::Lamb, lars::Lars};

/// Host copies of a set's tensors for a CPU reference run.
struct Host {
    w32: Vec<Vec<f32>>,
    w16: Vec<Vec<f16>>,
    states: Vec<Vec<Vec<f32>>>,
}

/// A set over `lens` filled like [`compare`]'s, with `n` states, and its host copy.
fn filled(ctx: &Context, lens: &[usize], precision: Precision, n: usize) -> (ParamSet, Host) {
    let mut set = ParamSet::new(ctx, precision, lens, n).unwrap();
    let mut host = Host {
        w32: Vec::new(),
        w16: Vec::new(),
        states: Vec::new(),
    };
    for (i, &len) in lens.iter().enumerate() {
        let w: Vec<f32> = (0..len).map(|j| value(i as u64 + 7, j)).collect();
        let s: Vec<Vec<f32>> = (0..n)
            .map(|k| {
                (0..len)
                    .map(|j| value(200 + k as u64, j).abs() * 0.01)
                    .collect()
            })
            .collect();
        for (k, sk) in s.iter().enumerate() {
            set.write_state(ctx, k, i, sk).unwrap();
        }
        match precision {
            Precision::F32 => {
                set.write_weight_f32(ctx, i, &w).unwrap();
                host.w32.push(w);
            }
            Precision::F16Master => {
                let h: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
                set.write_weight_f16(ctx, i, &h).unwrap();
                host.w32.push(h.iter().map(|x| x.to_f32()).collect());
                host.w16.push(h);
            }
        }
        host.states.push(s);
    }
    (set, host)
}

fn grads(ctx: &Context, set: &mut ParamSet, t: i64) -> Vec<Vec<f32>> {
    let lens = set.lens().to_vec();
    lens.iter()
        .enumerate()
        .map(|(i, &len)| {
            let g: Vec<f32> = (0..len)
                .map(|j| value(5000 * t as u64 + i as u64, j))
                .collect();
            match set.precision() {
                Precision::F32 => {
                    set.write_grad_f32(ctx, i, &g).unwrap();
                    g
                }
                Precision::F16Master => {
                    let h: Vec<f16> = g.iter().map(|&x| f16::from_f32(x)).collect();
                    set.write_grad_f16(ctx, i, &h).unwrap();
                    h.iter().map(|x| x.to_f32()).collect()
                }
            }
        })
        .collect()
}

fn compare_host(ctx: &Context, set: &ParamSet, host: &Host, name: &str) {
    for i in 0..set.len() {
        let what = format!("{name} tensor {i}");
        match set.precision() {
            Precision::F32 => assert_close(
                &what,
                &set.read_weight_f32(ctx, i).unwrap(),
                &host.w32[i],
                ULPS,
            ),
            Precision::F16Master => {
                assert_close(&what, &set.read_master(ctx, i).unwrap(), &host.w32[i], ULPS);
                assert_close_f16(&what, &set.read_weight_f16(ctx, i).unwrap(), &host.w16[i]);
            }
        }
        for k in 0..set.num_states() {
            assert_close(
                &format!("{what} state {k}"),
                &set.read_state(ctx, k, i).unwrap(),
                &host.states[i][k],
                ULPS,
            );
        }
    }
}

fn state_array<const N: usize>(s: &mut [Vec<f32>]) -> [&mut [f32]; N] {
    let v: Vec<&mut [f32]> = s.iter_mut().map(Vec::as_mut_slice).collect();
    v.try_into()
        .unwrap_or_else(|_| panic!("{N} states expected"))
}

/// LARS on the CPU: sums of squares in `f64` blocks (the GPU sums in `f32` in a fixed tree:
/// both within an ulp or two of the exact sum), trust ratio, preloaded SGD momentum.
fn lars_cpu(lars: &Lars, host: &mut Host, g: &[Vec<f32>], steps: &[Step], scaled: &[bool]) {
    let trust = lars.trust().unwrap();
    for i in 0..g.len() {
        let (wss, gss) = if host.w16.is_empty() {
            (
                reduce::sum_sq(&host.w32[i], Reduction::Fast),
                reduce::sum_sq(&g[i], Reduction::Fast),
            )
        } else {
            let g16: Vec<f16> = g[i].iter().map(|&x| f16::from_f32(x)).collect();
            (
                reduce::sum_sq(&host.w16[i], Reduction::Fast),
                reduce::sum_sq(&g16, Reduction::Fast),
            )
        };
        let mut step = steps[i];
        if scaled[i] {
            step.lr = f64::from(trust.lr(step.lr as f32, step.wd as f32, wss, gss));
        }
        let rule = lars.update_mom_at::<f32>(step).unwrap();
        let s = state_array::<1>(&mut host.states[i]);
        if host.w16.is_empty() {
            engine::run(&rule, Dense::new(&mut host.w32[i], &g[i], s).unwrap());
        } else {
            let g16: Vec<f16> = g[i].iter().map(|&x| f16::from_f32(x)).collect();
            engine::run(
                &rule,
                Mixed::new(&mut host.w16[i], &g16, &mut host.w32[i], s).unwrap(),
            );
        }
    }
}

#[test]
fn lars_matches_cpu_in_one_submission() {
    let Some(ctx) = ctx() else { return };
    let lars = Lars {
        momentum: 0.9,
        eta: 0.01,
        ..Lars::default()
    };
    for precision in [Precision::F32, Precision::F16Master] {
        let (mut set, mut host) = filled(ctx, &SIZES, precision, 1);
        let scaled: Vec<bool> = (0..SIZES.len()).map(|i| i % 4 != 1).collect();
        for t in 1..=STEPS {
            let g = grads(ctx, &mut set, t);
            let steps: Vec<Step> = (0..SIZES.len()).map(|i| step_of(i, t)).collect();
            ctx.lars_step(&mut set, &lars, &steps, &scaled).unwrap();
            lars_cpu(&lars, &mut host, &g, &steps, &scaled);
        }
        compare_host(ctx, &set, &host, "lars");
    }
}

fn lamb_cpu(lamb: &Lamb, host: &mut Host, g: &[Vec<f32>], steps: &[Step], write_master: bool) {
    let mixed = !host.w16.is_empty();
    for i in 0..g.len() {
        let d = lamb.direction_at(steps[i], mixed).unwrap();
        let g16: Vec<f16> = g[i].iter().map(|&x| f16::from_f32(x)).collect();
        let norms = if mixed {
            reduce::sweep(
                &d,
                &host.w32[i],
                &g16,
                state_array::<2>(&mut host.states[i]),
                Reduction::Fast,
            )
        } else {
            reduce::sweep(
                &d,
                &host.w32[i],
                &g[i],
                state_array::<2>(&mut host.states[i]),
                Reduction::Fast,
            )
        };
        let rule = lamb
            .step_at(steps[i], d, norms.weight, norms.swept)
            .unwrap();
        let s = state_array::<2>(&mut host.states[i]);
        if mixed {
            let walk = Mixed::new(&mut host.w16[i], &g16, &mut host.w32[i], s).unwrap();
            engine::run(
                &rule,
                if write_master {
                    walk
                } else {
                    walk.keeping_master()
                },
            );
        } else {
            engine::run(&rule, Dense::new(&mut host.w32[i], &g[i], s).unwrap());
        }
    }
}

#[test]
fn lamb_matches_cpu_in_one_submission() {
    let Some(ctx) = ctx() else { return };
    let lamb = Lamb {
        lower_bound: Some(0.1),
        upper_bound: Some(20.0),
        ..Lamb::default()
    };
    for (precision, write_master) in [
        (Precision::F32, true),
        (Precision::F16Master, true),
        (Precision::F16Master, false),
    ] {
        let (mut set, mut host) = filled(ctx, &SIZES, precision, 2);
        for t in 1..=STEPS {
            let g = grads(ctx, &mut set, t);
            let steps: Vec<Step> = (0..SIZES.len()).map(|i| step_of(i, t)).collect();
            ctx.lamb_step(&mut set, &lamb, &steps, write_master)
                .unwrap();
            lamb_cpu(&lamb, &mut host, &g, &steps, write_master);
        }
        compare_host(ctx, &set, &host, "lamb");
    }
}

#[test]
fn norms_are_deterministic() {
    let Some(ctx) = ctx() else { return };
    let lens = [3 * CHUNK as usize * 256 + 17, 1001];
    let lamb = Lamb::default();
    let mut results = Vec::new();
    for _ in 0..2 {
        let (mut set, _) = filled(ctx, &lens, Precision::F32, 2);
        grads(ctx, &mut set, 1);
        let steps = [Step::new(0.01, 0.0, 1); 2];
        ctx.lamb_step(&mut set, &lamb, &steps, true).unwrap();
        let w: Vec<u32> = set
            .read_weight_f32(ctx, 0)
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        results.push(w);
    }
    assert!(
        results[0] == results[1],
        "two identical LAMB steps gave different bits"
    );
}

#[test]
fn bad_input_is_an_error_before_any_write() {
    let Some(ctx) = ctx() else { return };
    let mut set = ParamSet::new(ctx, Precision::F32, &[5, 3], 1).unwrap();
    set.write_weight_f32(ctx, 0, &[1.0; 5]).unwrap();
    let rule = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    }
    .multi_mom_at::<f32>(Step::new(0.1, 0.0, 1))
    .unwrap();
    // One rule for two tensors, a plain rule for a set with a momentum state.
    assert!(matches!(
        ctx.step(&mut set, &[rule]),
        Err(mxopt::Error::Length { .. })
    ));
    let plain = Sgd::default()
        .multi_at::<f32>(Step::new(0.1, 0.0, 1))
        .unwrap();
    assert!(ctx.step(&mut set, &[plain, plain]).is_err());
    assert_eq!(set.read_weight_f32(ctx, 0).unwrap(), [1.0; 5]);
    // Wrong lengths, indices, precision, state numbers.
    assert!(set.write_weight_f32(ctx, 0, &[1.0; 4]).is_err());
    assert!(set.write_weight_f32(ctx, 2, &[1.0; 5]).is_err());
    assert!(matches!(
        set.write_weight_f16(ctx, 0, &[f16::ONE; 5]),
        Err(mxopt::Error::Gpu(_))
    ));
    assert!(set.read_master(ctx, 0).is_err());
    assert!(set.write_state(ctx, 1, 0, &[0.0; 5]).is_err());
    assert!(ParamSet::new(ctx, Precision::F32, &[1], 5).is_err());
    let huge = ParamSet::new(ctx, Precision::F32, &[usize::MAX / 8], 0);
    assert!(matches!(huge, Err(mxopt::Error::Gpu(_))), "{huge:?}");
    let overflowing = ParamSet::new(
        ctx,
        Precision::F16Master,
        &[usize::MAX / 2, usize::MAX / 2, 3],
        0,
    );
    assert!(matches!(overflowing, Err(mxopt::Error::Gpu(_))));
    // The application's buffers must be large enough and carry the usages.
    let small = ctx
        .device()
        .create_buffer(&mxopt::gpu::wgpu::BufferDescriptor {
            label: None,
            size: 8,
            usage: mxopt::gpu::wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
    let r = ParamSet::from_buffers(Precision::F32, &[5], small.clone(), small, None, vec![]);
    assert!(matches!(r, Err(mxopt::Error::Gpu(_))));
}

#[test]
fn application_buffers_are_updated_in_place() {
    let Some(ctx) = ctx() else { return };
    use mxopt::gpu::wgpu::{BufferDescriptor, BufferUsages};
    let lens = [7, 300];
    let (_, total) = ParamSet::offsets(Precision::F16Master, &lens);
    let make = |bytes: usize| {
        ctx.device().create_buffer(&BufferDescriptor {
            label: Some("app"),
            size: bytes as u64,
            usage: BufferUsages::STORAGE | BufferUsages::COPY_SRC | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let weight = make(total * 2);
    let mut set = ParamSet::from_buffers(
        Precision::F16Master,
        &lens,
        weight.clone(),
        make(total * 2),
        Some(make(total * 4)),
        vec![make(total * 4)],
    )
    .unwrap();
    let w: Vec<f16> = (0..7).map(|j| f16::from_f32(value(3, j))).collect();
    let g: Vec<f16> = (0..7).map(|j| f16::from_f32(value(4, j))).collect();
    set.write_weight_f16(ctx, 0, &w).unwrap();
    set.write_grad_f16(ctx, 0, &g).unwrap();
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    let rule = sgd.multi_mom_at::<f32>(Step::new(0.1, 0.0, 1)).unwrap();
    ctx.step(&mut set, &[rule, rule]).unwrap();
    let (mut cw, mut master, mut mom) = (
        w.clone(),
        w.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        vec![0.0; 7],
    );
    engine::run(
        &rule,
        Mixed::new(&mut cw, &g, &mut master, [&mut mom]).unwrap(),
    );
    assert_close_f16("app weight", &set.read_weight_f16(ctx, 0).unwrap(), &cw);
    assert!(
        std::ptr::eq(set.weight_buffer(), set.weight_buffer()) && *set.weight_buffer() == weight
    );
}

use mxopt::gpu::GpuOptimizer;
use mxopt::optimizer::{Algorithm, Config, Grad, Optimizer};

/// The config of the high-level comparisons: weight decay, a schedule that halves the
/// rate every 2 updates (LARS's momentum correction moves), a learning-rate multiplier.
fn scheduled(precision: Precision, wd: f64) -> Config {
    Config {
        wd,
        multi_precision: precision == Precision::F16Master,
        lr_scheduler: Some(
            mxopt::schedule::Factor {
                factor: 0.5,
                ..mxopt::schedule::Factor::new(2)
            }
            .build()
            .unwrap(),
        ),
        lr_mult: [("fc_weight".to_owned(), 0.5)].into_iter().collect(),
        ..Config::default()
    }
}

/// Weights of the high-level tests (`f32`, and their `f16` rounding).
fn initial(lens: &[usize]) -> (Vec<Vec<f32>>, Vec<Vec<f16>>) {
    let w32: Vec<Vec<f32>> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| (0..len).map(|j| value(i as u64 + 50, j)).collect())
        .collect();
    let w16 = w32
        .iter()
        .map(|w| w.iter().map(|&x| f16::from_f32(x)).collect())
        .collect();
    (w32, w16)
}

/// Uploads the weights of `initial` to a GPU optimizer.
fn upload(ctx: &Context, gpu: &mut GpuOptimizer, w32: &[Vec<f32>], w16: &[Vec<f16>]) {
    for i in 0..w32.len() {
        if gpu.params().precision() == Precision::F32 {
            gpu.params_mut().write_weight_f32(ctx, i, &w32[i]).unwrap();
        } else {
            gpu.params_mut().write_weight_f16(ctx, i, &w16[i]).unwrap();
        }
    }
}

/// The gradients of update `t` (`f32`, and their `f16` rounding).
fn grads_at(lens: &[usize], t: i64) -> (Vec<Vec<f32>>, Vec<Vec<f16>>) {
    let g: Vec<Vec<f32>> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            (0..len)
                .map(|j| value(900 + 10 * t as u64 + i as u64, j))
                .collect()
        })
        .collect();
    let g16 = g
        .iter()
        .map(|v| v.iter().map(|&x| f16::from_f32(x)).collect())
        .collect();
    (g, g16)
}

/// Uploads the gradients of update `t` and steps.
fn gpu_step(ctx: &Context, gpu: &mut GpuOptimizer, lens: &[usize], t: i64) {
    let (g, g16) = grads_at(lens, t);
    for i in 0..lens.len() {
        if gpu.params().precision() == Precision::F32 {
            gpu.params_mut().write_grad_f32(ctx, i, &g[i]).unwrap();
        } else {
            gpu.params_mut().write_grad_f16(ctx, i, &g16[i]).unwrap();
        }
    }
    gpu.step(ctx).unwrap();
}

/// Tensor `i`'s gradient, as a matrix when the row counts are given.
fn matrix<'a, T>(rows: Option<&[usize]>, i: usize, values: &'a [T]) -> Grad<'a, T> {
    match rows {
        Some(rows) => Grad::Matrix {
            rows: rows[i],
            values,
        },
        None => Grad::Dense(values),
    }
}

/// Runs `algorithm` for `steps` updates on the CPU optimizer and the GPU one (tensor
/// `i` with `rows[i]` rows when given) and compares weights, counts and `num_update`
/// after every update.
#[allow(clippy::too_many_arguments)]
fn high_level(
    ctx: &Context,
    algorithm: Algorithm,
    config: &Config,
    precision: Precision,
    names: &[&str],
    lens: &[usize],
    rows: Option<&[usize]>,
    steps: i64,
) {
    let mut cpu = Optimizer::new(algorithm, config.clone()).unwrap();
    let mut gpu =
        GpuOptimizer::new(ctx, algorithm, config.clone(), names, lens, precision).unwrap();
    if let Some(rows) = rows {
        gpu.set_rows(rows).unwrap();
    }
    let (mut w32, mut w16) = initial(lens);
    upload(ctx, &mut gpu, &w32, &w16);
    for t in 1..=steps {
        let (g, g16) = grads_at(lens, t);
        if precision == Precision::F32 {
            let mut list: Vec<(&str, &mut [f32], Grad<'_, f32>)> = names
                .iter()
                .zip(w32.iter_mut())
                .zip(&g)
                .enumerate()
                .map(|(i, ((n, w), g))| (*n, w.as_mut_slice(), matrix(rows, i, g)))
                .collect();
            cpu.update_many(&mut list).unwrap();
        } else {
            let mut list: Vec<(&str, &mut [f16], Grad<'_, f16>)> = names
                .iter()
                .zip(w16.iter_mut())
                .zip(&g16)
                .enumerate()
                .map(|(i, ((n, w), g))| (*n, w.as_mut_slice(), matrix(rows, i, g)))
                .collect();
            cpu.update_many(&mut list).unwrap();
        }
        gpu_step(ctx, &mut gpu, lens, t);
        assert_eq!(gpu.num_update(), cpu.num_update());
        for (i, name) in names.iter().enumerate() {
            assert_eq!(gpu.update_count(name), cpu.update_count(name));
            let what = format!("{algorithm:?} {precision:?} {name} after update {t}");
            if precision == Precision::F32 {
                let got = gpu.params().read_weight_f32(ctx, i).unwrap();
                assert_close(&what, &got, &w32[i], ULPS);
            } else {
                let got = gpu.params().read_weight_f16(ctx, i).unwrap();
                assert_close_f16(&what, &got, &w16[i]);
            }
        }
    }
}

const NAMES: [&str; 3] = ["conv0_weight", "conv0_bias", "fc_weight"];
const LENS: [usize; 3] = [257, 64, 1031];

/// Every high-level algorithm with a dense GPU driver: the GPU optimizer against the CPU
/// one over a named list (schedule, lr multiplier, MXNet's wd-by-suffix rule, Nadam's
/// running product, LARS's momentum correction and excluded layers), in `f32` and
/// multi-precision `f16`. The CPU's LARS and LAMB use their blocked norms
/// (`exact_norms: false`), as close to the device's tree sums as the exact ones.
#[test]
fn gpu_optimizer_matches_the_cpu_optimizer() {
    let Some(ctx) = ctx() else { return };
    let mut algorithms: Vec<Algorithm> = [
        "sgd", "nag", "adam", "adagrad", "rmsprop", "adamax", "nadam", "adadelta", "ftml", "ftrl",
        "signum", "dcasgd", "test",
    ]
    .iter()
    .map(|n| Algorithm::from_name(n).unwrap())
    .collect();
    algorithms.push(Algorithm::Sgd(Sgd {
        momentum: 0.9,
        ..Sgd::default()
    }));
    algorithms.push(Algorithm::Nag(Nag {
        momentum: 0.9,
        ..Nag::default()
    }));
    algorithms.push(Algorithm::RmsProp {
        hyper: RmsProp::default(),
        centered: true,
    });
    algorithms.push(Algorithm::Signum(Signum {
        momentum: 0.0,
        ..Signum::default()
    }));
    for (momentum, momentum_correction) in [(0.9, true), (0.9, false), (0.0, true)] {
        algorithms.push(Algorithm::Lars {
            hyper: Lars {
                momentum,
                eta: 0.01,
                ..Lars::default()
            },
            momentum_correction,
            exact_norms: false,
        });
    }
    for update_master_copy in [false, true] {
        algorithms.push(Algorithm::Lamb {
            hyper: Lamb::default(),
            exact_norms: false,
            update_master_copy,
        });
    }
    algorithms.push(Algorithm::Sgld {
        hyper: Sgld::default(),
        add_noise: false,
    });
    for algorithm in algorithms {
        for precision in [Precision::F32, Precision::F16Master] {
            let config = scheduled(precision, 1e-3);
            high_level(
                ctx, algorithm, &config, precision, &NAMES, &LENS, None, STEPS,
            );
        }
    }
}

use mxopt::optim::lbsgd::{Lbsgd, Phase, WarmupStrategy};

/// LBSGD configurations of the device tests: every warm-up strategy, with and without
/// momentum and accumulation, a warm-up that ends within the run, a start past epoch 0,
/// rescaling and clipping.
fn lbsgd_cases() -> Vec<Lbsgd> {
    let base = Lbsgd {
        warmup_epochs: 1,
        updates_per_epoch: 5,
        ..Lbsgd::default()
    };
    vec![
        Lbsgd::default(),
        Lbsgd {
            momentum: 0.9,
            batch_scale: 3,
            ..base
        },
        Lbsgd {
            batch_scale: 2,
            warmup_strategy: WarmupStrategy::Power2,
            rescale_grad: 0.5,
            clip_gradient: Some(0.3),
            ..base
        },
        Lbsgd {
            momentum: 0.5,
            batch_scale: 2,
            warmup_strategy: WarmupStrategy::Sqrt,
            begin_epoch: 1,
            ..base
        },
        Lbsgd {
            warmup_strategy: WarmupStrategy::Lars,
            ..base
        },
        Lbsgd {
            momentum: 0.9,
            batch_scale: 3,
            warmup_strategy: WarmupStrategy::Lars,
            ..base
        },
        Lbsgd {
            batch_scale: 4,
            warmup_strategy: WarmupStrategy::Constant,
            ..base
        },
    ]
}

/// LBSGD's accumulation, placeholder updates, warm-up multipliers (the `lars` one from
/// norms summed on the device) against the CPU optimizer after every one of 8 updates.
#[test]
fn gpu_optimizer_lbsgd_matches_the_cpu_optimizer() {
    let Some(ctx) = ctx() else { return };
    for hyper in lbsgd_cases() {
        for precision in [Precision::F32, Precision::F16Master] {
            let config = scheduled(precision, 1e-3);
            let algorithm = Algorithm::Lbsgd(hyper);
            high_level(ctx, algorithm, &config, precision, &NAMES, &LENS, None, 8);
        }
    }
}

/// LBSGD on a raw set: tensors at different points of their accumulation in one
/// dispatch (fresh and running sums, finishing and not), lengths around the chunk
/// edges, against the CPU's rules applied by hand.
#[test]
fn lbsgd_phases_differ_per_tensor_in_one_dispatch() {
    let Some(ctx) = ctx() else { return };
    let lens = [0, 1, 7, 8, 9, 63, 64, 65, 1023, 1024, 1025, 2051];
    let hyper = Lbsgd {
        momentum: 0.9,
        batch_scale: 2,
        ..Lbsgd::default()
    };
    let (mut set, mut host) = filled(ctx, &lens, Precision::F32, 2);
    // Tensor i starts its accumulation at update 1 + i % 2: the finishing calls alternate.
    let mut counts = vec![0_u64; lens.len()];
    let mut fresh = vec![true; lens.len()];
    for t in 1..=4 {
        let g = grads(ctx, &mut set, t);
        let steps: Vec<Step> = (0..lens.len()).map(|i| step_of(i, t)).collect();
        let phases: Vec<Phase> = (0..lens.len())
            .map(|i| {
                let count = hyper.next_count(counts[i]) + (i % 2 == 1 && t == 1) as u64;
                Phase {
                    fresh: fresh[i],
                    finishes: hyper.finishes(count),
                    multiplier: 1.5,
                }
            })
            .collect();
        ctx.lbsgd_step(&mut set, &hyper, &steps, &phases).unwrap();
        for i in 0..lens.len() {
            let [mom, acc] = state_array::<2>(&mut host.states[i]);
            for (a, &x) in acc.iter_mut().zip(&g[i]) {
                *a = if phases[i].fresh { 0.0 + x } else { *a + x };
            }
            let w = &mut host.w32[i];
            if phases[i].finishes {
                acc.iter_mut().for_each(|a| *a /= 2.0);
                let step = Step {
                    lr: steps[i].lr * 1.5,
                    ..steps[i]
                };
                let rule = hyper.sgd().multi_mom_at::<f32>(step).unwrap();
                engine::run(&rule, Dense::new(w, acc, [mom]).unwrap());
            } else {
                let placeholder = Sgd::default()
                    .single_at::<f32>(Step {
                        lr: 0.0,
                        ..steps[i]
                    })
                    .unwrap();
                engine::run(&placeholder, Dense::new(w, &g[i], []).unwrap());
            }
            counts[i] = hyper.next_count(counts[i]) + (i % 2 == 1 && t == 1) as u64;
            fresh[i] = phases[i].finishes;
        }
        compare_host(ctx, &set, &host, &format!("lbsgd update {t}"));
    }
    // The wrong state count, and phases of the wrong length, change nothing.
    let before = set.read_weight_f32(ctx, 11).unwrap();
    let steps = vec![step_of(0, 5); lens.len()];
    let phase = Phase {
        fresh: false,
        finishes: true,
        multiplier: 1.0,
    };
    let one_state = Lbsgd {
        momentum: 0.0,
        ..hyper
    };
    assert!(ctx
        .lbsgd_step(&mut set, &one_state, &steps, &vec![phase; lens.len()])
        .is_err());
    assert!(ctx.lbsgd_step(&mut set, &hyper, &steps, &[phase]).is_err());
    let huge_lr = vec![Step::new(1e38, 0.0, 5); lens.len()];
    let multiplied = Phase {
        multiplier: 100.0,
        ..phase
    };
    assert!(ctx
        .lbsgd_step(&mut set, &hyper, &huge_lr, &vec![multiplied; lens.len()])
        .is_err());
    assert_eq!(set.read_weight_f32(ctx, 11).unwrap(), before);
}

/// GroupAdaGrad through the high-level API: row counts given once, per-row states.
#[test]
fn gpu_optimizer_group_adagrad_matches_the_cpu_optimizer() {
    let Some(ctx) = ctx() else { return };
    let algorithm = Algorithm::from_name("groupadagrad").unwrap();
    // Rows of odd length (257 × 1, 1 × 1) share f16 words.
    let rows = [1, 64, 1031];
    for precision in [Precision::F32, Precision::F16Master] {
        let config = scheduled(precision, 0.0);
        high_level(
            ctx,
            algorithm,
            &config,
            precision,
            &NAMES,
            &LENS,
            Some(&rows),
            STEPS,
        );
    }
    let config = scheduled(Precision::F32, 0.0);
    let mut gpu = GpuOptimizer::new(ctx, algorithm, config, &NAMES, &LENS, Precision::F32).unwrap();
    // No row counts yet, then counts that do not divide a tensor.
    assert!(matches!(
        gpu.step(ctx),
        Err(mxopt::Error::Unsupported { .. })
    ));
    assert_eq!(
        (gpu.num_update(), gpu.update_count("fc_weight")),
        (0, Some(0))
    );
    assert!(matches!(
        gpu.set_rows(&[2, 2, 2]),
        Err(mxopt::Error::Length { .. })
    ));
    assert!(gpu.set_rows(&[1, 1]).is_err());
    // Weight decay is refused as on the CPU.
    let decayed = scheduled(Precision::F32, 0.1);
    let mut gpu =
        GpuOptimizer::new(ctx, algorithm, decayed, &NAMES, &LENS, Precision::F32).unwrap();
    gpu.set_rows(&rows).unwrap();
    assert!(matches!(
        gpu.step(ctx),
        Err(mxopt::Error::Unsupported { .. })
    ));
    let sgd = GpuOptimizer::new(
        ctx,
        Algorithm::from_name("sgd").unwrap(),
        Config::default(),
        &NAMES,
        &LENS,
        Precision::F32,
    );
    assert!(sgd.unwrap().set_rows(&rows).is_err());
}

#[test]
fn gpu_optimizer_refuses_bad_setups() {
    let Some(ctx) = ctx() else { return };
    let sgd = Algorithm::from_name("sgd").unwrap();
    let f16_without_master = GpuOptimizer::new(
        ctx,
        sgd,
        Config::default(),
        &["a"],
        &[3],
        Precision::F16Master,
    );
    assert!(matches!(
        f16_without_master,
        Err(mxopt::Error::Unsupported { .. })
    ));
    let dup = GpuOptimizer::new(
        ctx,
        sgd,
        Config::default(),
        &["a", "a"],
        &[3, 3],
        Precision::F32,
    );
    assert!(matches!(dup, Err(mxopt::Error::Duplicate(_))));
    assert!(
        GpuOptimizer::new(ctx, sgd, Config::default(), &["a"], &[3, 3], Precision::F32).is_err()
    );
    let nan = Config {
        learning_rate: Some(f64::NAN),
        ..Config::default()
    };
    assert!(GpuOptimizer::new(ctx, sgd, nan, &["a"], &[3], Precision::F32).is_err());
}

use mxopt::optim::group_adagrad::GroupAdaGrad;

#[test]
fn group_adagrad_rows_match_cpu() {
    let Some(ctx) = ctx() else { return };
    // Row lengths even and odd (odd ones share f16 words between rows).
    let shapes = [(0, 4), (1, 1), (3, 21), (64, 5), (7, 300), (257, 3)];
    let lens: Vec<usize> = shapes.iter().map(|(r, c)| r * c).collect();
    let rows: Vec<usize> = shapes.iter().map(|s| s.0).collect();
    let hypers = [
        GroupAdaGrad::default(),
        GroupAdaGrad {
            clip_gradient: Some(0.3),
            rescale_grad: 2.0,
            ..GroupAdaGrad::default()
        },
    ];
    for (hyper, precision) in hypers
        .iter()
        .flat_map(|h| [(h, Precision::F32), (h, Precision::F16Master)])
    {
        let (mut set, mut host) = filled(ctx, &lens, precision, 1);
        for t in 1..=STEPS {
            let g = grads(ctx, &mut set, t);
            let steps: Vec<Step> = (0..lens.len()).map(|i| step_of(i, t)).collect();
            ctx.group_adagrad_step(&mut set, hyper, &steps, &rows)
                .unwrap();
            for i in 0..lens.len() {
                let rule = hyper.dense_at::<f32>(steps[i]).unwrap();
                let state = &mut host.states[i][0][..rows[i]];
                engine::run(
                    &rule,
                    engine::RowWise::new(&mut host.w32[i], &g[i], state, rows[i]).unwrap(),
                );
                if precision == Precision::F16Master {
                    host.w16[i] = host.w32[i].iter().map(|&x| f16::from_f32(x)).collect();
                }
            }
        }
        compare_host(ctx, &set, &host, &format!("group_adagrad {precision:?}"));
    }
    let steps = [Step::new(0.1, 0.0, 1)];
    for precision in [Precision::F32, Precision::F16Master] {
        let (mut set, _) = filled(ctx, &[6], precision, 1);
        assert!(ctx
            .group_adagrad_step(&mut set, &GroupAdaGrad::default(), &steps, &[4])
            .is_err());
    }
}

use mxopt::init::Generator;

/// Downloads every weight of a GPU optimizer as `f32` (`f16` ones widened).
fn weights(ctx: &Context, gpu: &GpuOptimizer) -> Vec<Vec<f32>> {
    (0..gpu.params().len())
        .map(|i| match gpu.params().precision() {
            Precision::F32 => gpu.params().read_weight_f32(ctx, i).unwrap(),
            Precision::F16Master => gpu
                .params()
                .read_weight_f16(ctx, i)
                .unwrap()
                .iter()
                .map(|x| x.to_f32())
                .collect(),
        })
        .collect()
}

/// Every state (and master copy) of a GPU optimizer, downloaded.
fn device_states(ctx: &Context, gpu: &GpuOptimizer) -> Vec<Vec<f32>> {
    let p = gpu.params();
    let mut out = Vec::new();
    for i in 0..p.len() {
        for k in 0..p.num_states() {
            out.push(p.read_state(ctx, k, i).unwrap());
        }
        if p.precision() == Precision::F16Master {
            out.push(p.read_master(ctx, i).unwrap());
        }
    }
    out
}

/// A GPU run converted to the CPU optimizer, through its checkpoint bytes, and back
/// continues exactly as the uninterrupted run; the CPU form holds the downloaded states (they come back bit for
/// bit) and, continued on the CPU, matches the device within the usual ulps.
#[test]
fn checkpoints_go_through_the_cpu_optimizer() {
    let Some(ctx) = ctx() else { return };
    let lars = Algorithm::Lars {
        hyper: Lars {
            momentum: 0.9,
            eta: 0.01,
            ..Lars::default()
        },
        momentum_correction: true,
        exact_norms: false,
    };
    let lamb = Algorithm::Lamb {
        hyper: Lamb::default(),
        exact_norms: false,
        update_master_copy: false,
    };
    let named = |n: &str| Algorithm::from_name(n).unwrap();
    let cases = [
        (named("adam"), Precision::F32, None),
        (named("nadam"), Precision::F16Master, None),
        (lars, Precision::F32, None),
        (lamb, Precision::F16Master, None),
        (named("dcasgd"), Precision::F16Master, None),
        (named("test"), Precision::F32, None),
        (named("sgld"), Precision::F32, None),
        (named("groupadagrad"), Precision::F32, Some([1, 64, 1031])),
        // Saved part-way through an accumulation of 3 (and of 2 with the lars warm-up).
        (Algorithm::Lbsgd(lbsgd_cases()[1]), Precision::F32, None),
        (
            Algorithm::Lbsgd(lbsgd_cases()[5]),
            Precision::F16Master,
            None,
        ),
        (
            Algorithm::Lbsgd(lbsgd_cases()[3]),
            Precision::F16Master,
            None,
        ),
    ];
    for (algorithm, precision, rows) in cases {
        let what = format!("{} {precision:?}", algorithm.name());
        let wd = if rows.is_some() { 0.0 } else { 1e-3 };
        let config = scheduled(precision, wd);
        let mut a =
            GpuOptimizer::new(ctx, algorithm, config.clone(), &NAMES, &LENS, precision).unwrap();
        if let Some(rows) = &rows {
            a.set_rows(rows).unwrap();
        }
        a.set_generator(Generator::new(7));
        let (w32, w16) = initial(&LENS);
        upload(ctx, &mut a, &w32, &w16);
        // Before any step the CPU form has no state, and its GPU form starts afresh.
        let fresh = a.to_optimizer(ctx).unwrap();
        assert_eq!(fresh.update_count("fc_weight"), None, "{what}");
        for t in 1..=2 {
            gpu_step(ctx, &mut a, &LENS, t);
        }
        // Through the CPU optimizer's checkpoint bytes (`save`/`load` write/read them).
        let bytes = a.to_optimizer(ctx).unwrap().to_bytes().unwrap();
        let cpu = Optimizer::from_bytes(&bytes).unwrap();
        assert_eq!(cpu.num_update(), a.num_update(), "{what}");
        for name in NAMES {
            assert_eq!(cpu.update_count(name), a.update_count(name), "{what}");
        }
        let mut b = GpuOptimizer::from_optimizer(ctx, &cpu, &NAMES, &LENS, precision).unwrap();
        for (i, w) in weights(ctx, &a).iter().enumerate() {
            if precision == Precision::F32 {
                b.params_mut().write_weight_f32(ctx, i, w).unwrap();
            } else {
                let h: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
                b.params_mut()
                    .write_weight_f16_keeping_master(ctx, i, &h)
                    .unwrap();
            }
        }
        assert_eq!(device_states(ctx, &b), device_states(ctx, &a), "{what}");
        // The CPU form, continued on the CPU (SGLD's noise is the device's own).
        let mut on_cpu = cpu.clone();
        let mut w_cpu = weights(ctx, &a);
        let mut w_cpu16: Vec<Vec<f16>> = w_cpu
            .iter()
            .map(|w| w.iter().map(|&x| f16::from_f32(x)).collect())
            .collect();
        let (g, g16) = grads_at(&LENS, 3);
        if precision == Precision::F32 {
            let mut list: Vec<(&str, &mut [f32], Grad<'_, f32>)> = NAMES
                .iter()
                .zip(w_cpu.iter_mut())
                .zip(&g)
                .enumerate()
                .map(|(i, ((n, w), g))| {
                    (
                        *n,
                        w.as_mut_slice(),
                        matrix(rows.as_ref().map(|r| &r[..]), i, g),
                    )
                })
                .collect();
            on_cpu.update_many(&mut list).unwrap();
        } else {
            let mut list: Vec<(&str, &mut [f16], Grad<'_, f16>)> = NAMES
                .iter()
                .zip(w_cpu16.iter_mut())
                .zip(&g16)
                .map(|((n, w), g)| (*n, w.as_mut_slice(), Grad::Dense(g.as_slice())))
                .collect();
            on_cpu.update_many(&mut list).unwrap();
        }
        for t in 3..=4 {
            gpu_step(ctx, &mut a, &LENS, t);
            gpu_step(ctx, &mut b, &LENS, t);
            if t == 3 && algorithm.name() != "sgld" {
                for (i, w) in weights(ctx, &a).iter().enumerate() {
                    let what = format!("{what} continued on the CPU, tensor {i}");
                    if precision == Precision::F32 {
                        assert_close(&what, w, &w_cpu[i], ULPS);
                    } else {
                        let h: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
                        assert_close_f16(&what, &h, &w_cpu16[i]);
                    }
                }
            }
        }
        assert_eq!(weights(ctx, &b), weights(ctx, &a), "{what}: resumed run");
        assert_eq!(device_states(ctx, &b), device_states(ctx, &a), "{what}");
        assert_eq!(
            b.to_optimizer(ctx).unwrap().generator(),
            a.to_optimizer(ctx).unwrap().generator(),
            "{what}"
        );
    }
}

#[test]
fn from_optimizer_refuses_states_that_do_not_fit() {
    let Some(ctx) = ctx() else { return };
    let adam = Algorithm::from_name("adam").unwrap();
    let config = Config {
        multi_precision: true,
        ..Config::default()
    };
    let mut cpu = Optimizer::new(adam, config).unwrap();
    let mut w = vec![f16::from_f32(0.5); 4];
    cpu.update("a", &mut w, &[f16::from_f32(0.1); 4]).unwrap();
    let from = |cpu: &Optimizer, names: &[&str], lens: &[usize], precision| {
        GpuOptimizer::from_optimizer(ctx, cpu, names, lens, precision)
    };
    // Master copies into an f32 set; another length; some names without state.
    assert!(matches!(
        from(&cpu, &["a"], &[4], Precision::F32),
        Err(mxopt::Error::StateType)
    ));
    assert!(matches!(
        from(&cpu, &["a"], &[5], Precision::F16Master),
        Err(mxopt::Error::Length { .. })
    ));
    assert!(matches!(
        from(&cpu, &["a", "b"], &[4, 4], Precision::F16Master),
        Err(mxopt::Error::Unsupported { .. })
    ));
    assert!(from(&cpu, &["a"], &[4], Precision::F16Master).is_ok());
    let mut f64s = Optimizer::new(adam, Config::default()).unwrap();
    f64s.update("a", &mut [0.5_f64; 4], &[0.1; 4]).unwrap();
    assert!(matches!(
        from(&f64s, &["a"], &[4], Precision::F32),
        Err(mxopt::Error::StateType)
    ));
}

/// A CPU LBSGD whose accumulator holds row-sparse sums continues on the device as on the
/// CPU (the device takes the dense sum they stand for).
#[test]
fn lbsgd_row_sparse_accumulation_continues_on_the_device() {
    let Some(ctx) = ctx() else { return };
    let hyper = Lbsgd {
        momentum: 0.9,
        batch_scale: 3,
        ..Lbsgd::default()
    };
    let mut cpu = Optimizer::new(Algorithm::Lbsgd(hyper), Config::default()).unwrap();
    let (rows, width) = (5, 3);
    let mut w: Vec<f32> = (0..rows * width).map(|j| value(1, j)).collect();
    let values: Vec<f32> = (0..2 * width).map(|j| value(2, j)).collect();
    // A first batch of 3 leaves its mean in the accumulator buffer; then rows 1 and 3
    // are accumulated and the other rows hold that stale mean on the CPU.
    for t in 0..3 {
        let g: Vec<f32> = (0..rows * width).map(|j| value(20 + t, j)).collect();
        cpu.update("a", &mut w, &g).unwrap();
    }
    cpu.update_rows("a", &mut w, rows, &[1, 3], &values)
        .unwrap();
    let mut gpu =
        GpuOptimizer::from_optimizer(ctx, &cpu, &["a"], &[rows * width], Precision::F32).unwrap();
    gpu.params_mut().write_weight_f32(ctx, 0, &w).unwrap();
    for t in 2..=4 {
        let g: Vec<f32> = (0..rows * width).map(|j| value(10 + t, j)).collect();
        cpu.update("a", &mut w, &g).unwrap();
        gpu.params_mut().write_grad_f32(ctx, 0, &g).unwrap();
        gpu.step(ctx).unwrap();
        let got = gpu.params().read_weight_f32(ctx, 0).unwrap();
        assert_close(&format!("update {t}"), &got, &w, ULPS);
    }
}

/// The noise `w_after − w_deterministic` of every tensor and step of a seeded SGLD run,
/// the deterministic half step computed on the CPU from the downloaded weights (master
/// copies for `f16`).
fn sgld_noise(
    ctx: &Context,
    seed: u64,
    names: &[&str],
    lens: &[usize],
    precision: Precision,
    steps: i64,
) -> Vec<Vec<f32>> {
    let algorithm = Algorithm::from_name("sgld").unwrap();
    let config = Config {
        learning_rate: Some(0.04),
        multi_precision: precision == Precision::F16Master,
        ..Config::default()
    };
    let mut gpu = GpuOptimizer::new(ctx, algorithm, config, names, lens, precision).unwrap();
    gpu.set_generator(Generator::new(seed));
    let (w32, w16) = initial(lens);
    upload(ctx, &mut gpu, &w32, &w16);
    let rule = Sgld::default().at::<f32>(Step::new(0.04, 0.0, 1)).unwrap();
    let mut noise = Vec::new();
    for t in 1..=steps {
        let before: Vec<Vec<f32>> = match precision {
            Precision::F32 => weights(ctx, &gpu),
            Precision::F16Master => (0..lens.len())
                .map(|i| gpu.params().read_master(ctx, i).unwrap())
                .collect(),
        };
        gpu_step(ctx, &mut gpu, lens, t);
        let (g, g16) = grads_at(lens, t);
        for (i, mut det) in before.into_iter().enumerate() {
            let g: Vec<f32> = match precision {
                Precision::F32 => g[i].clone(),
                Precision::F16Master => g16[i].iter().map(|x| x.to_f32()).collect(),
            };
            engine::run(&rule, Dense::new(&mut det, &g, []).unwrap());
            let after = match precision {
                Precision::F32 => gpu.params().read_weight_f32(ctx, i).unwrap(),
                Precision::F16Master => gpu.params().read_master(ctx, i).unwrap(),
            };
            noise.push(after.iter().zip(&det).map(|(a, d)| a - d).collect());
        }
    }
    noise
}

fn mean(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64
}

fn correlation(x: &[f32], y: &[f32]) -> f64 {
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (a, b) = (f64::from(a) - mx, f64::from(b) - my);
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    sxy / (sxx * syy).sqrt()
}

/// SGLD's device noise: `N(0, √lr)` (mean, variance, the share within one σ, the fourth
/// moment), independent across tensors, steps and seeds, the same bits for a seed, and
/// the same for a tensor whatever else the dispatch holds.
#[test]
fn sgld_noise_on_the_device_is_normal_and_deterministic() {
    let Some(ctx) = ctx() else { return };
    let n = 20_000;
    let names = ["a_weight", "b_weight"];
    let lens = [n, n + 1];
    let sigma = 0.2_f64; // √0.04
    for precision in [Precision::F32, Precision::F16Master] {
        let noise = sgld_noise(ctx, 11, &names, &lens, precision, 2);
        let m = n as f64;
        for (j, x) in noise.iter().enumerate() {
            let what = format!("{precision:?} sample {j}");
            let mu = mean(x);
            assert!(mu.abs() < 4.5 * sigma / m.sqrt(), "{what}: mean {mu}");
            let var = x.iter().map(|&v| (f64::from(v) - mu).powi(2)).sum::<f64>() / m;
            let ratio = var / (sigma * sigma);
            assert!(
                (ratio - 1.0).abs() < 4.5 * (2.0 / m).sqrt(),
                "{what}: var ratio {ratio}"
            );
            let within = x.iter().filter(|&&v| f64::from(v).abs() < sigma).count() as f64 / m;
            assert!(
                (within - 0.682_689).abs() < 0.015,
                "{what}: within 1σ {within}"
            );
            let kurtosis = x
                .iter()
                .map(|&v| (f64::from(v) / sigma).powi(4))
                .sum::<f64>()
                / m;
            assert!(
                (kurtosis - 3.0).abs() < 0.4,
                "{what}: fourth moment {kurtosis}"
            );
        }
        // Tensors of one step, and one tensor at two steps.
        let cut = |v: &Vec<f32>| v[..n].to_vec();
        for (p, q) in [(0, 1), (0, 2), (1, 3)] {
            let r = correlation(&cut(&noise[p]), &cut(&noise[q]));
            assert!(
                r.abs() < 5.0 / (n as f64).sqrt(),
                "{precision:?} samples {p}, {q}: r {r}"
            );
        }
        let other_seed = sgld_noise(ctx, 12, &names, &lens, precision, 1);
        let r = correlation(&noise[0], &other_seed[0]);
        assert!(
            r.abs() < 5.0 / (n as f64).sqrt(),
            "{precision:?} seeds: r {r}"
        );
        assert_eq!(
            sgld_noise(ctx, 11, &names, &lens, precision, 1)[..],
            noise[..2]
        );
        // Alone in its dispatch, the first tensor draws the same stream, same noise.
        let alone = sgld_noise(ctx, 11, &names[..1], &lens[..1], precision, 1);
        assert_eq!(alone[0], noise[0], "{precision:?}");
    }
    // One stream per tensor per update; a refused step draws none.
    let algorithm = Algorithm::from_name("sgld").unwrap();
    let bad = Config {
        learning_rate: Some(-1.0),
        ..Config::default()
    };
    let mut gpu = GpuOptimizer::new(ctx, algorithm, bad, &names, &lens, Precision::F32).unwrap();
    gpu.set_generator(Generator::new(5));
    assert!(matches!(gpu.step(ctx), Err(mxopt::Error::NotFinite { .. })));
    assert_eq!(
        gpu.to_optimizer(ctx).unwrap().generator().next_stream(),
        (5, 0)
    );
    let mut gpu = GpuOptimizer::new(
        ctx,
        algorithm,
        Config::default(),
        &names,
        &lens,
        Precision::F32,
    )
    .unwrap();
    gpu.set_generator(Generator::new(5));
    gpu.step(ctx).unwrap();
    assert_eq!(
        gpu.to_optimizer(ctx).unwrap().generator().next_stream(),
        (5, 2)
    );
}
