//! Property tests (proptest) of the engine's entry points: walks built from random
//! lengths and row indices fail with `Err`, never a panic, and valid ones equal a dense
//! element-by-element reference; results and fast norms do not depend on the rayon pool's
//! thread count; `K::from_py_list` equals parsing the shortest decimal and `K::from_py`
//! (MXNet's parser) stays within a few ulps of it.
//!
//! (cargo-fuzz needs a nightly toolchain, which this project's machines do not have; these
//! properties run on stable as ordinary tests.)

#![allow(clippy::unwrap_used)] // test helpers unwrap known-good inputs

use half::f16;
use mxopt::engine::reduce::{norm, sum_sq, Reduction};
use mxopt::engine::{self, Dense, Mixed, RowMode, Rows, MIN_PARALLEL_LEN};
use mxopt::optim::sgd::Sgd;
use mxopt::real::{Elem, K};
use mxopt::rule::{Rule, Step};
use proptest::prelude::*;

const STEP: Step = Step::new(0.1, 0.01, 1);

fn rule() -> impl Rule<f32, 1> {
    Sgd {
        momentum: 0.9,
        ..Sgd::default()
    }
    .multi_mom_at::<f32>(STEP)
    .unwrap()
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
        .collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// Lengths around the SIMD, fp16-block and parallel-split edges, or anything up to 3 splits.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![
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
            2 * MIN_PARALLEL_LEN - 1,
            2 * MIN_PARALLEL_LEN,
            2 * MIN_PARALLEL_LEN + 1,
        ]),
        0..3 * MIN_PARALLEL_LEN,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rows_new_never_panics_and_valid_rows_equal_dense(
        rows in 0usize..40,
        row_len in 0usize..9,
        w_extra in prop::sample::select(vec![0i64, 0, 0, -1, 1]),
        indices in prop::collection::vec(-3i64..45, 0..12),
        sort in any::<bool>(),
        v_extra in prop::sample::select(vec![0i64, 0, 0, -1, 1]),
        s_extra in prop::sample::select(vec![0i64, 0, 0, -1, 1]),
        standard in any::<bool>(),
    ) {
        let mut indices = indices;
        if sort {
            indices.sort_unstable();
            indices.dedup();
        }
        let n = ((rows * row_len) as i64 + w_extra).max(0) as usize;
        let nv = ((indices.len() * row_len) as i64 + v_extra).max(0) as usize;
        let ns = (n as i64 + s_extra).max(0) as usize;
        let w0 = values(n, 1);
        let g = values(nv, 2);
        let m0 = values(ns, 3);
        let mode = if standard { RowMode::Standard } else { RowMode::Lazy };
        let (mut w, mut m) = (w0.clone(), m0.clone());
        let built = Rows::new(&mut w, rows, &indices, &g, [&mut m], mode);
        let valid = (rows == 0 && n == 0 || rows > 0 && n == rows * (n / rows))
            && nv == indices.len() * n.checked_div(rows).unwrap_or(0)
            && ns == n
            && indices.iter().all(|&r| r >= 0 && (r as usize) < rows)
            && indices.windows(2).all(|p| p[0] < p[1]);
        prop_assert_eq!(built.is_ok(), valid, "rows {} n {} indices {:?}", rows, n, indices);
        let Ok(walk) = built else { return Ok(()) };
        let rule = rule();
        engine::run(&rule, walk);
        // Reference: every listed row (every row in standard mode) updated element by
        // element with its gradient row or zeros; other rows untouched.
        let len = n.checked_div(rows).unwrap_or(0);
        let (mut w_ref, mut m_ref) = (w0.clone(), m0.clone());
        for r in 0..rows {
            let at = indices.iter().position(|&x| x as usize == r);
            if at.is_none() && !standard {
                continue;
            }
            for c in 0..len {
                let gv = at.map_or(0.0, |j| g[j * len + c]);
                let (wn, [mn]) = rule.apply(w_ref[r * len + c], gv, [m_ref[r * len + c]]);
                w_ref[r * len + c] = wn;
                m_ref[r * len + c] = mn;
            }
        }
        prop_assert_eq!(w.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        w_ref.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        prop_assert_eq!(m, m_ref);
    }

    #[test]
    fn dense_and_mixed_refuse_length_mismatches(
        n in 0usize..40,
        dg in -2i64..3,
        ds in -2i64..3,
        dm in -2i64..3,
    ) {
        let len = |d: i64| (n as i64 + d).max(0) as usize;
        let (mut w, g, mut s) = (vec![0.0_f32; n], vec![0.0_f32; len(dg)], vec![0.0_f32; len(ds)]);
        let ok = len(dg) == n && len(ds) == n;
        prop_assert_eq!(Dense::new(&mut w, &g, [&mut s]).is_ok(), ok);
        let (mut w16, g16) = (vec![f16::ZERO; n], vec![f16::ZERO; len(dg)]);
        let mut master = vec![0.0_f32; len(dm)];
        let ok = ok && len(dm) == n;
        prop_assert_eq!(Mixed::new(&mut w16, &g16, &mut master, [&mut s]).is_ok(), ok);
    }

    #[test]
    fn run_does_not_depend_on_the_thread_count(n in length(), seed in any::<u32>()) {
        let rule = rule();
        let (w0, g, m0) = (values(n, seed), values(n, seed ^ 7), values(n, seed ^ 9));
        let results: Vec<(Vec<f32>, Vec<f32>)> = [1, 3]
            .iter()
            .map(|&threads| {
                let (mut w, mut m) = (w0.clone(), m0.clone());
                pool(threads).install(|| {
                    engine::run(&rule, Dense::new(&mut w, &g, [&mut m]).unwrap());
                });
                (w, m)
            })
            .collect();
        prop_assert_eq!(&results[0], &results[1]);
        // The mixed-precision walk too.
        let g16: Vec<f16> = g.iter().map(|&x| f16::from_f32(x)).collect();
        let mixed: Vec<Vec<f16>> = [1, 3]
            .iter()
            .map(|&threads| {
                let mut w16: Vec<f16> = w0.iter().map(|&x| f16::from_f32(x)).collect();
                let (mut master, mut m) = (w0.clone(), m0.clone());
                pool(threads).install(|| {
                    let walk = Mixed::new(&mut w16, &g16, &mut master, [&mut m]).unwrap();
                    engine::run(&rule, walk);
                });
                w16
            })
            .collect();
        prop_assert_eq!(&mixed[0], &mixed[1]);
    }

    #[test]
    fn fast_norms_do_not_depend_on_the_thread_count(n in length(), seed in any::<u32>()) {
        let a = values(n, seed);
        let a64: Vec<f64> = a.iter().map(|&x| f64::from(x) * 1e3).collect();
        let a16: Vec<f16> = a.iter().map(|&x| f16::from_f32(x)).collect();
        let run = |threads: usize| {
            pool(threads).install(|| {
                (
                    sum_sq(&a, Reduction::Fast).to_bits(),
                    norm(&a, Reduction::Fast).to_bits(),
                    norm(&a64, Reduction::Fast).to_bits(),
                    norm(&a16, Reduction::Fast).to_f64().to_bits(),
                )
            })
        };
        prop_assert_eq!(run(1), run(3));
    }

    #[test]
    fn from_py_list_equals_parsing_the_shortest_decimal(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        prop_assume!(x.is_finite());
        let parsed: f32 = format!("{x:e}").parse().unwrap();
        prop_assert_eq!(K::from_py_list(x).0.to_bits(), parsed.to_bits(), "{:e}", x);
    }

    #[test]
    fn from_py_is_close_to_the_correctly_rounded_value(mantissa in 1.0..10.0_f64, exponent in -30..30_i32) {
        // MXNet's parser rounds the integer part, the fraction and the scale separately.
        let x = mantissa * 10_f64.powi(exponent);
        let correct = K::from_py_list(x).0;
        let got = K::from_py(x).unwrap().0;
        let ulps = (i64::from(got.to_bits()) - i64::from(correct.to_bits())).abs();
        prop_assert!(ulps <= 4, "{:e}: {} vs {}", x, got, correct);
    }

    #[test]
    fn from_py_list_near_f32_midpoints(bits in any::<u32>(), offset in -4i64..5) {
        // Values within a few f64 ulps of the midpoint between two adjacent f32s.
        let a = f32::from_bits(bits & 0x7f7f_ffff);
        let mid = (f64::from(a) + f64::from(a.next_up())) / 2.0;
        let x = f64::from_bits((mid.to_bits() as i64 + offset) as u64);
        prop_assume!(x.is_finite());
        let parsed: f32 = format!("{x:e}").parse().unwrap();
        prop_assert_eq!(K::from_py_list(x).0.to_bits(), parsed.to_bits(), "{:e}", x);
    }
}
