//! The Rust schedulers against `tests/golden/schedulers.json` (MXNet 1.6.0's values, which
//! the Python package reproduces: every call of every case, bit for bit, and the final
//! base rate and counter) and against `tests/fixtures/schedulers_mxopt.json` (the Python
//! package's values over long ranges of update counts, from `tests/rust_fixtures.py`).

use mxopt::schedule::{Cosine, Factor, MultiFactor, Poly, Scheduler, Warmup, WarmupMode};
use serde_json::Value;

fn f(v: &Value, key: &str, default: f64) -> f64 {
    v.get(key)
        .map_or(default, |x| x.as_f64().expect("a number"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().expect("an integer")
}

fn build(name: &str, kw: &Value) -> mxopt::Result<Scheduler> {
    let base_lr = f(kw, "base_lr", 0.01);
    let warmup = Warmup {
        steps: kw
            .get("warmup_steps")
            .map_or(0, |x| x.as_u64().expect("int")),
        begin_lr: f(kw, "warmup_begin_lr", 0.0),
        mode: match kw.get("warmup_mode").and_then(Value::as_str) {
            Some("constant") => WarmupMode::Constant,
            _ => WarmupMode::Linear,
        },
    };
    match name {
        "FactorScheduler" => Factor {
            factor: f(kw, "factor", 1.0),
            stop_factor_lr: f(kw, "stop_factor_lr", 1e-8),
            base_lr,
            warmup,
            ..Factor::new(u(kw, "step"))
        }
        .build(),
        "MultiFactorScheduler" => {
            let steps = kw["step"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|s| s.as_u64().expect("int"))
                .collect();
            MultiFactor {
                factor: f(kw, "factor", 1.0),
                base_lr,
                warmup,
                ..MultiFactor::new(steps)
            }
            .build()
        }
        "PolyScheduler" => Poly {
            base_lr,
            pwr: f(kw, "pwr", 2.0),
            final_lr: f(kw, "final_lr", 0.0),
            warmup,
            ..Poly::new(u(kw, "max_update"))
        }
        .build(),
        "CosineScheduler" => Cosine {
            base_lr,
            final_lr: f(kw, "final_lr", 0.0),
            warmup,
            ..Cosine::new(u(kw, "max_update"))
        }
        .build(),
        other => panic!("unknown scheduler {other}"),
    }
}

#[test]
fn every_golden_case_bit_for_bit() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/schedulers.json"
    ))
    .expect("golden file");
    let golden: Value = serde_json::from_str(&text).expect("json");
    let cases = golden["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 23);
    let mut compared = 0;
    for (i, case) in cases.iter().enumerate() {
        let name = case["scheduler"].as_str().expect("name");
        let kw = &case["kwargs"];
        let outputs = case["outputs"].as_array().expect("outputs");
        if outputs.iter().any(|o| o.get("raises").is_some()) {
            // warmup_steps == max_update: MXNet divides by zero at n = max_update; the Rust
            // builder refuses the configuration instead.
            assert!(build(name, kw).is_err(), "case {i}");
            continue;
        }
        let calls = case["calls"].as_array().expect("calls");
        if calls.iter().any(|n| n.as_u64().is_none()) {
            // Negative or fractional counts: the Rust schedules take a `u64`.
            continue;
        }
        let mut sched = build(name, kw).unwrap_or_else(|e| panic!("case {i}: {e}"));
        if let Some(lr) = case.get("optimizer_learning_rate") {
            sched.set_base_lr(lr.as_f64().expect("lr"));
        }
        for (n, want) in calls.iter().zip(outputs) {
            let n = n.as_u64().expect("int");
            let want = want.as_f64().expect("a rate");
            let got = sched.lr(n);
            assert_eq!(got.to_bits(), want.to_bits(), "case {i} ({name}) n = {n}");
            compared += 1;
        }
        let attrs = &case["attributes"];
        assert_eq!(sched.base_lr(), f(attrs, "base_lr", f64::NAN), "case {i}");
        if let Some(count) = attrs.get("count") {
            assert_eq!(sched.count(), count.as_u64(), "case {i}");
        }
    }
    assert!(compared > 100, "{compared}");
}

#[test]
fn python_package_values_over_long_ranges() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/schedulers_mxopt.json"
    ))
    .expect("fixture");
    let fixture: Value = serde_json::from_str(&text).expect("json");
    let mut compared = 0;
    for (i, case) in fixture["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let name = case["scheduler"].as_str().expect("name");
        let mut sched = build(name, &case["kwargs"]).unwrap_or_else(|e| panic!("case {i}: {e}"));
        let calls = case["calls"].as_array().expect("calls");
        for (n, want) in calls
            .iter()
            .zip(case["outputs"].as_array().expect("outputs"))
        {
            let n = n.as_u64().expect("int");
            let want = want.as_f64().expect("rate");
            assert_eq!(
                sched.lr(n).to_bits(),
                want.to_bits(),
                "case {i} ({name}) n = {n}"
            );
            compared += 1;
        }
    }
    assert!(compared > 1000, "{compared}");
}

#[test]
fn long_runs_match_a_transcription_of_mxnet_loops() {
    // MXNet's FactorScheduler loop, transcribed, over 10 000 consecutive updates.
    let mut sched = Factor {
        factor: 0.97,
        stop_factor_lr: 1e-5,
        base_lr: 0.3,
        ..Factor::new(7)
    }
    .build()
    .expect("valid");
    let (mut lr, mut count) = (0.3_f64, 0_u64);
    for n in 0..10_000 {
        while n > count + 7 {
            count += 7;
            lr *= 0.97;
            if lr < 1e-5 {
                lr = 1e-5;
            }
        }
        assert_eq!(sched.lr(n), lr, "n = {n}");
    }
}
