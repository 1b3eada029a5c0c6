//! The engine's walks against a naive element-by-element reference: every length around
//! the vectorisation, fp16-block and parallel-split edges, every state count, every dtype.

#![allow(clippy::unwrap_used)] // test helpers unwrap known-good inputs

use half::f16;
use mxopt::engine::{self, Dense, Mixed, RowMode, Rows, MIN_PARALLEL_LEN};
use mxopt::optim::{nag::Nag, sgd::Sgd};
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
            check_dense::<$T, _, 0>(&sgd.multi_at(STEP).unwrap());
            check_dense::<$T, _, 1>(&sgd.multi_at(STEP).unwrap());
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
    .multi_at::<f32>(STEP)
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
    .multi_at::<f32>(STEP)
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
                        sgd.multi_at::<f32>(*s).unwrap(),
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
            &sgd.multi_at::<f32>(*s).unwrap(),
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
