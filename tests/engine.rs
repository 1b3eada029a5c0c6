//! The engine's walks against a naive element-by-element reference: every length around
//! the vectorisation, fp16-block and parallel-split edges, every state count, every dtype.

#![allow(clippy::unwrap_used)] // test helpers unwrap known-good inputs

use half::f16;
use mxopt::engine::{self, Dense, Mixed, RowMode, Rows, MIN_PARALLEL_LEN};
use mxopt::engine::{Noise, Noisy, RowRule, RowWise, RowWiseSparse, Walk};
use mxopt::init::{fill_normal, Element, BLOCK_LEN};
use mxopt::optim::{group_adagrad::GroupAdaGrad, nag::Nag, sgd::Sgd, sgld::Sgld};
use mxopt::real::Storage;
use mxopt::rule::{Rule, Step};
use mxopt::Error;

const LENGTHS: [usize; 14] = [
    0,
    1,
    7,
    8,
    9,
    63,
    64,
    65,
    511,
    512,
    513,
    MIN_PARALLEL_LEN * 2 - 1,
    MIN_PARALLEL_LEN * 2,
    MIN_PARALLEL_LEN * 4 + 3,
];

const STEP: Step = Step::new(0.1, 0.01, 1);

/// Element types built from an `f32` sample.
trait Sample {
    fn of(x: f32) -> Self;
}
impl Sample for f32 {
    fn of(x: f32) -> Self {
        x
    }
}
impl Sample for f64 {
    fn of(x: f32) -> Self {
        f64::from(x)
    }
}
impl Sample for f16 {
    fn of(x: f32) -> Self {
        f16::from_f32(x)
    }
}

/// Deterministic data, at least 1 in magnitude.
fn data<T: Sample>(n: usize, seed: u64) -> Vec<T> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (x >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            T::of(if x & 1 == 0 { 1.0 + unit } else { -1.0 - unit })
        })
        .collect()
}

/// The rule applied one element at a time, with no engine involved.
fn reference<T: Storage, R: Rule<T::Elem, N>, const N: usize>(
    rule: &R,
    w: &mut [T],
    g: &[T],
    s: &mut [Vec<T>; N],
) {
    for i in 0..w.len() {
        let states = std::array::from_fn(|k| s[k][i].load());
        let (w_new, states) = rule.apply(w[i].load(), g[i].load(), states);
        w[i] = T::store(w_new);
        for k in 0..N {
            s[k][i] = T::store(states[k]);
        }
    }
}

fn check_dense<T, R, const N: usize>(rule: &R)
where
    T: Storage + Sample + PartialEq + std::fmt::Debug,
    R: Rule<T::Elem, N>,
{
    for n in LENGTHS {
        let g = data::<T>(n, 1);
        let mut w = data::<T>(n, 2);
        let mut s: [Vec<T>; N] = std::array::from_fn(|k| data::<T>(n, 3 + k as u64));
        let (mut w_ref, mut s_ref) = (w.clone(), s.clone());
        reference(rule, &mut w_ref, &g, &mut s_ref);
        let states = s.each_mut().map(Vec::as_mut_slice);
        engine::run(rule, Dense::new(&mut w, &g, states).unwrap());
        assert_eq!(w, w_ref, "weight, n = {n}");
        assert_eq!(s, s_ref, "states, n = {n}");
        if n > 0 {
            assert!(
                w.iter().zip(data::<T>(n, 2)).all(|(a, b)| *a != b),
                "unchanged, n = {n}"
            );
        }
    }
}

#[test]
fn dense_matches_reference_for_every_rule_and_dtype() {
    let sgd = Sgd {
        momentum: 0.9,
        clip_gradient: Some(1.5),
        ..Sgd::default()
    };
    let nag = Nag {
        momentum: 0.9,
        ..Nag::default()
    };
    macro_rules! all {
        ($T:ty) => {
            check_dense::<$T, _, 0>(
                &Sgd {
                    momentum: 0.0,
                    ..sgd
                }
                .multi_at(STEP)
                .unwrap(),
            );
            check_dense::<$T, _, 1>(&sgd.multi_mom_at(STEP).unwrap());
            check_dense::<$T, _, 0>(&sgd.single_at(STEP).unwrap());
            check_dense::<$T, _, 1>(&nag.at(STEP).unwrap());
        };
    }
    all!(f32);
    all!(f64);
    all!(f16);
}

#[test]
fn mixed_equals_f32_update_of_the_master_then_rounding() {
    let rule = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    }
    .multi_mom_at::<f32>(STEP)
    .unwrap();
    for n in LENGTHS {
        let g16 = data::<f16>(n, 1);
        let mut w16 = data::<f16>(n, 2);
        let mut master: Vec<f32> = w16.iter().map(|x| x.to_f32()).collect();
        let mut mom = data::<f32>(n, 3);
        let g32: Vec<f32> = g16.iter().map(|x| x.to_f32()).collect();
        let (mut master_ref, mut mom_ref) = (master.clone(), [mom.clone()]);
        reference(&rule, &mut master_ref, &g32, &mut mom_ref);
        engine::run(
            &rule,
            Mixed::new(&mut w16, &g16, &mut master, [&mut mom]).unwrap(),
        );
        assert_eq!(master, master_ref, "n = {n}");
        assert_eq!(mom, mom_ref[0], "n = {n}");
        let rounded: Vec<f16> = master.iter().map(|&x| f16::from_f32(x)).collect();
        assert_eq!(w16, rounded, "n = {n}");
    }
}

#[test]
fn rows_lazy_and_standard_against_dense_reference() {
    let rule = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    }
    .multi_mom_at::<f32>(STEP)
    .unwrap();
    let row_len = 5;
    for rows in [1, 2, 9, 64, 65, 2 * MIN_PARALLEL_LEN / row_len + 7] {
        let indices: Vec<i64> = (0..rows as i64).filter(|r| r % 3 != 1).collect();
        let values = data::<f32>(indices.len() * row_len, 1);
        let w0 = data::<f32>(rows * row_len, 2);
        for mode in [RowMode::Lazy, RowMode::Standard] {
            // Reference: the dense gradient with zero rows, updated row by row.
            let mut dense_g = vec![0.0; rows * row_len];
            for (j, &r) in indices.iter().enumerate() {
                let r = r as usize;
                dense_g[r * row_len..(r + 1) * row_len]
                    .copy_from_slice(&values[j * row_len..(j + 1) * row_len]);
            }
            let (mut w_ref, mut m_ref) = (w0.clone(), [vec![0.25_f32; rows * row_len]]);
            let mut full = (w0.clone(), [m_ref[0].clone()]);
            reference(&rule, &mut full.0, &dense_g, &mut full.1);
            for r in 0..rows {
                let listed = indices.contains(&(r as i64));
                if mode == RowMode::Standard || listed {
                    let range = r * row_len..(r + 1) * row_len;
                    w_ref[range.clone()].copy_from_slice(&full.0[range.clone()]);
                    m_ref[0][range.clone()].copy_from_slice(&full.1[0][range]);
                }
            }
            let (mut w, mut m) = (w0.clone(), vec![0.25_f32; rows * row_len]);
            let walk = Rows::new(&mut w, rows, &indices, &values, [&mut m], mode).unwrap();
            engine::run(&rule, walk);
            assert_eq!(w, w_ref, "rows = {rows}, {mode:?}");
            assert_eq!(m, m_ref[0], "rows = {rows}, {mode:?}");
        }
    }
}

#[test]
fn rows_are_validated_before_anything_runs() {
    let mut w = vec![1.0_f32; 12];
    let values = vec![1.0_f32; 6];
    let bad = |indices: &[i64], w: &mut [f32]| {
        Rows::<f32, 0>::new(w, 4, indices, &values, [], RowMode::Lazy).err()
    };
    assert_eq!(
        bad(&[1, 4], &mut w),
        Some(Error::RowOutOfRange { index: 4, rows: 4 })
    );
    assert_eq!(
        bad(&[-1, 2], &mut w),
        Some(Error::RowOutOfRange { index: -1, rows: 4 })
    );
    assert_eq!(bad(&[2, 2], &mut w), Some(Error::RowsUnsorted { at: 1 }));
    assert_eq!(bad(&[3, 1], &mut w), Some(Error::RowsUnsorted { at: 1 }));
    assert!(matches!(bad(&[1], &mut w), Some(Error::Length { .. })));
}

#[test]
fn dense_rejects_length_mismatches() {
    let (mut w, g, mut m) = (vec![0.0_f32; 4], vec![0.0_f32; 3], vec![0.0_f32; 4]);
    assert!(matches!(
        Dense::new(&mut w, &g, [&mut m]),
        Err(Error::Length { what: "grad", .. })
    ));
    let (g, mut m) = (vec![0.0_f32; 4], vec![0.0_f32; 5]);
    assert!(matches!(
        Dense::new(&mut w, &g, [&mut m]),
        Err(Error::Length { what: "state", .. })
    ));
}

#[test]
fn many_equals_one_run_per_tensor_and_is_thread_count_independent() {
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    let sizes = [0, 1, 65, 513, 3 * MIN_PARALLEL_LEN + 1, 7];
    let grads: Vec<Vec<f32>> = sizes.iter().map(|&n| data(n, 1)).collect();
    let start: Vec<Vec<f32>> = sizes.iter().map(|&n| data(n, 2)).collect();
    let steps: Vec<Step> = (0..sizes.len())
        .map(|i| Step {
            lr: 0.01 * (i + 1) as f64,
            ..STEP
        })
        .collect();

    let run_all = |threads: usize| {
        let (mut ws, mut ms) = (start.clone(), start.clone());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let jobs = ws
                .iter_mut()
                .zip(ms.iter_mut())
                .zip(&grads)
                .zip(&steps)
                .map(|(((w, m), g), s)| {
                    (
                        sgd.multi_mom_at::<f32>(*s).unwrap(),
                        Dense::new(w, g, [m]).unwrap(),
                    )
                })
                .collect();
            engine::run_many(jobs);
        });
        (ws, ms)
    };
    let (mut ws, mut ms) = (start.clone(), start.clone());
    for (((w, m), g), s) in ws.iter_mut().zip(ms.iter_mut()).zip(&grads).zip(&steps) {
        engine::run(
            &sgd.multi_mom_at::<f32>(*s).unwrap(),
            Dense::new(w, g, [m]).unwrap(),
        );
    }
    for threads in [1, 2, 5] {
        assert_eq!(
            run_all(threads),
            (ws.clone(), ms.clone()),
            "threads = {threads}"
        );
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// The noise of `Noise::chunks` over `first..first + len`, gathered into one vector.
fn noise_of<T: Element>(noise: &Noise, first: usize, len: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(len);
    noise.chunks::<T>(first, len, |offset, part| {
        assert_eq!(offset, out.len(), "chunks arrive in order");
        out.extend_from_slice(part);
    });
    out
}

fn check_noise_is_the_normal_fill<T: Element + Sample + PartialEq + std::fmt::Debug>() {
    let n = 2 * BLOCK_LEN + 300;
    let noise = Noise::new(5, 9, 0.3).unwrap();
    let mut fill = vec![T::of(0.0); n];
    fill_normal(&mut fill, 0.0, 0.3, 5, 9).unwrap();
    assert_eq!(noise_of::<T>(&noise, 0, n), fill);
    // Any sub-range, starting mid-chunk or mid-block, gives the same values.
    for (first, len) in [
        (0, 1),
        (1, 700),
        (255, 2),
        (BLOCK_LEN - 3, 10),
        (BLOCK_LEN + 257, 5000),
    ] {
        assert_eq!(
            noise_of::<T>(&noise, first, len),
            fill[first..first + len],
            "{first}+{len}"
        );
    }
}

#[test]
fn noise_equals_fill_normal_over_any_range() {
    check_noise_is_the_normal_fill::<f32>();
    check_noise_is_the_normal_fill::<f64>();
    check_noise_is_the_normal_fill::<f16>();
    assert!(Noise::new(0, 0, f64::NAN).is_err());
    assert!(Noise::new(0, 0, -1.0).is_err());
}

fn check_noisy<T, R>(rule: &R)
where
    T: Storage + Element + Sample + PartialEq + std::fmt::Debug,
    R: Rule<T::Elem, 0>,
{
    for n in [0, 1, 300, BLOCK_LEN, 2 * BLOCK_LEN + 1, 4 * BLOCK_LEN + 3] {
        let g = data::<T>(n, 1);
        let mut noise = vec![T::of(0.0); n];
        fill_normal(&mut noise, 0.0, 0.25, 3, 4).unwrap();
        let mut expected = data::<T>(n, 2);
        reference(rule, &mut expected, &g, &mut []);
        for (w, z) in expected.iter_mut().zip(&noise) {
            *w = <T as Storage>::store(w.load() + z.load());
        }
        for threads in [1, 3] {
            let mut w = data::<T>(n, 2);
            let walk = Noisy::new(
                Dense::new(&mut w, &g, []).unwrap(),
                Noise::new(3, 4, 0.25).unwrap(),
            );
            pool(threads).install(|| engine::run(rule, walk));
            assert_eq!(w, expected, "n = {n}, threads = {threads}");
        }
        // A cut inside the first block (no boundary before it) gives the same values.
        let mut w = data::<T>(n, 2);
        let walk = Noisy::new(
            Dense::new(&mut w, &g, []).unwrap(),
            Noise::new(3, 4, 0.25).unwrap(),
        );
        let (left, right) = Walk::<R>::split_at(walk, n.min(1000));
        left.walk(rule);
        right.walk(rule);
        assert_eq!(w, expected, "n = {n}, cut mid-block");
    }
}

#[test]
fn noisy_walk_adds_the_fill_to_the_rule_whatever_the_threads() {
    let sgld = Sgld::default();
    check_noisy::<f32, _>(&sgld.at(STEP).unwrap());
    check_noisy::<f64, _>(&sgld.at(STEP).unwrap());
    check_noisy::<f16, _>(&sgld.at(STEP).unwrap());
}

/// Row by row, element by element: a compensated (`kahan`) or plain mean of the terms.
fn row_reference<R: RowRule<f32>>(rule: &R, w: &mut [f32], g: &[f32], h: &mut f32, kahan: bool) {
    let (mut sum, mut c) = (0.0_f32, 0.0_f32);
    for &x in g {
        let term = rule.term(rule.grad(x));
        if kahan {
            let y = term - c;
            let t = sum + y;
            c = (t - sum) - y;
            sum = t;
        } else {
            sum += term;
        }
    }
    *h = rule.row_state(*h, sum / g.len() as f32);
    for (w, &x) in w.iter_mut().zip(g) {
        *w = rule.apply(*w, rule.grad(x), *h);
    }
}

#[test]
fn row_wise_dense_and_sparse_against_row_by_row_reference() {
    let hyper = GroupAdaGrad {
        clip_gradient: Some(1.5),
        ..GroupAdaGrad::default()
    };
    let dense_rule = hyper.dense_at::<f32>(STEP).unwrap();
    let sparse_rule = hyper.rows_at::<f32>(STEP).unwrap();
    for (rows, row_len) in [(1, 1), (3, 7), (65, 100), (2 * MIN_PARALLEL_LEN / 9 + 5, 9)] {
        let g = data::<f32>(rows * row_len, 1);
        let w0 = data::<f32>(rows * row_len, 2);
        let h0: Vec<f32> = (0..rows).map(|r| r as f32 * 0.5).collect();
        let (mut w_ref, mut h_ref) = (w0.clone(), h0.clone());
        for ((w, g), h) in w_ref
            .chunks_exact_mut(row_len)
            .zip(g.chunks_exact(row_len))
            .zip(h_ref.iter_mut())
        {
            row_reference(&dense_rule, w, g, h, true);
        }
        for threads in [1, 4] {
            let (mut w, mut h) = (w0.clone(), h0.clone());
            let walk = RowWise::new(&mut w, &g, &mut h, rows).unwrap();
            pool(threads).install(|| engine::run(&dense_rule, walk));
            assert_eq!(
                (&w, &h),
                (&w_ref, &h_ref),
                "rows = {rows}, threads = {threads}"
            );
        }
        // Lazy row-sparse: the listed rows follow the plain mean, the others stay.
        let indices: Vec<i64> = (0..rows as i64).filter(|r| r % 3 != 1).collect();
        let values: Vec<f32> = indices
            .iter()
            .flat_map(|&r| g[r as usize * row_len..][..row_len].to_vec())
            .collect();
        let (mut w_ref, mut h_ref) = (w0.clone(), h0.clone());
        for &r in &indices {
            let (r, range) = (r as usize, r as usize * row_len..(r as usize + 1) * row_len);
            row_reference(
                &sparse_rule,
                &mut w_ref[range.clone()],
                &g[range],
                &mut h_ref[r],
                false,
            );
        }
        for threads in [1, 4] {
            let (mut w, mut h) = (w0.clone(), h0.clone());
            let walk = RowWiseSparse::new(&mut w, &mut h, rows, &indices, &values).unwrap();
            pool(threads).install(|| engine::run(&sparse_rule, walk));
            assert_eq!(
                (&w, &h),
                (&w_ref, &h_ref),
                "rows = {rows}, threads = {threads}"
            );
        }
    }
}

#[test]
fn row_wise_kahan_mean_differs_from_the_plain_sum() {
    // One large term then many small ones: a plain f32 sum drops the small ones.
    let rule = GroupAdaGrad::default()
        .dense_at::<f32>(Step::new(0.0, 0.0, 1))
        .unwrap();
    let mut g = vec![1e-3_f32; 1000];
    g[0] = 100.0;
    let (mut w, mut h) = (vec![0.0_f32; 1000], vec![0.0_f32]);
    engine::run(&rule, RowWise::new(&mut w, &g, &mut h, 1).unwrap());
    let plain = g.iter().fold(0.0_f32, |s, x| s + x * x) / 1000.0;
    let exact = g.iter().map(|&x| f64::from(x * x)).sum::<f64>() / 1000.0;
    assert_ne!(h[0], plain);
    assert!((f64::from(h[0]) - exact).abs() <= (f64::from(plain) - exact).abs());
}

#[test]
fn row_wise_walks_validate_before_running() {
    let (mut w, g, mut h) = (vec![0.0_f32; 6], vec![0.0_f32; 6], vec![0.0_f32; 2]);
    assert!(matches!(
        RowWise::new(&mut w, &g, &mut h, 3),
        Err(Error::Length {
            what: "row state",
            ..
        })
    ));
    let mut h = vec![0.0_f32; 3];
    assert!(matches!(
        RowWise::new(&mut w, &g[..4], &mut h, 3),
        Err(Error::Length { what: "grad", .. })
    ));
    let values = vec![0.0_f32; 4];
    assert_eq!(
        RowWiseSparse::new(&mut w, &mut h, 3, &[2, 1], &values).err(),
        Some(Error::RowsUnsorted { at: 1 })
    );
    assert_eq!(
        RowWiseSparse::new(&mut w, &mut h, 3, &[0, 3], &values).err(),
        Some(Error::RowOutOfRange { index: 3, rows: 3 })
    );
}
