//! `mxopt::init::Initializer` against the Python package's values
//! (`tests/fixtures/initializers_mxopt.json`, written by `tests/rust_fixtures.py`): the
//! same seed and the same sequence of initializers give the same numbers, bit for bit.

use mxopt::half::f16;
use mxopt::init::{FactorType, Generator, Initializer, OrthogonalRand, RandType};
use serde_json::Value;

fn initializer(name: &str, kw: &Value) -> Initializer {
    let num = |key: &str, default: f64| kw.get(key).map_or(default, |v| v.as_f64().expect("num"));
    let factor = || match kw.get("factor_type").and_then(Value::as_str) {
        None | Some("avg") => FactorType::Avg,
        Some("in") => FactorType::In,
        Some("out") => FactorType::Out,
        Some(other) => panic!("factor_type {other}"),
    };
    match name {
        "Zero" => Initializer::Zero,
        "One" => Initializer::One,
        "Constant" => Initializer::Constant(num("value", f64::NAN)),
        "Uniform" => Initializer::Uniform {
            scale: num("scale", 0.07),
        },
        "Normal" => Initializer::Normal {
            sigma: num("sigma", 0.01),
        },
        "Xavier" => Initializer::Xavier {
            rnd_type: match kw.get("rnd_type").and_then(Value::as_str) {
                None | Some("uniform") => RandType::Uniform,
                Some("gaussian") => RandType::Gaussian,
                Some(other) => panic!("rnd_type {other}"),
            },
            factor_type: factor(),
            magnitude: num("magnitude", 3.0),
        },
        "MSRAPrelu" => Initializer::MsraPrelu {
            factor_type: factor(),
            slope: num("slope", 0.25),
        },
        "Orthogonal" => Initializer::Orthogonal {
            scale: num("scale", 1.414),
            rand_type: match kw.get("rand_type").and_then(Value::as_str) {
                None | Some("uniform") => OrthogonalRand::Uniform,
                Some("normal") => OrthogonalRand::Normal,
                Some(other) => panic!("rand_type {other}"),
            },
        },
        other => panic!("initializer {other}"),
    }
}

#[test]
fn same_seed_same_numbers_as_python() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/initializers_mxopt.json"
    ))
    .expect("fixture");
    let fixture: Value = serde_json::from_str(&text).expect("json");
    let mut gen = Generator::new(fixture["seed"].as_u64().expect("seed"));
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(cases.len() >= 19);
    for (i, case) in cases.iter().enumerate() {
        let init = initializer(case["init"].as_str().expect("name"), &case["kwargs"]);
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| usize::try_from(d.as_u64().expect("dim")).expect("usize"))
            .collect();
        let want: Vec<f64> = case["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| v.as_f64().expect("value"))
            .collect();
        let n = want.len();
        let got: Vec<f64> = match case["dtype"].as_str().expect("dtype") {
            "float16" => {
                let mut out = vec![f16::ZERO; n];
                init.init(&mut gen, &shape, &mut out).expect("init");
                out.iter().map(|x| x.to_f64()).collect()
            }
            "float32" => {
                let mut out = vec![0.0_f32; n];
                init.init(&mut gen, &shape, &mut out).expect("init");
                out.iter().map(|&x| f64::from(x)).collect()
            }
            _ => {
                let mut out = vec![0.0_f64; n];
                init.init(&mut gen, &shape, &mut out).expect("init");
                out
            }
        };
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "case {i}: {case}");
    }
}

#[test]
fn shape_errors() {
    let mut gen = Generator::default();
    let mut out = vec![0.0_f32; 6];
    assert!(matches!(
        Initializer::UNIFORM.init(&mut gen, &[2, 2], &mut out),
        Err(mxopt::Error::Length { .. })
    ));
    assert!(matches!(
        Initializer::MSRA_PRELU.init(&mut gen, &[6], &mut out),
        Err(mxopt::Error::Init(_))
    ));
    assert!(matches!(
        Initializer::Normal { sigma: -1.0 }.init(&mut gen, &[6], &mut out),
        Err(mxopt::Error::Fill(_))
    ));
    assert!(matches!(
        Initializer::ORTHOGONAL.init(&mut gen, &[6], &mut out),
        Err(mxopt::Error::Init(_))
    ));
    let nan_scale = Initializer::Orthogonal {
        scale: f64::NAN,
        rand_type: OrthogonalRand::Uniform,
    };
    assert!(nan_scale.init(&mut gen, &[2, 3], &mut out).is_err());
    for magnitude in [-1.0, f64::NAN, f64::INFINITY] {
        let xavier = Initializer::Xavier {
            rnd_type: RandType::Uniform,
            factor_type: FactorType::Avg,
            magnitude,
        };
        assert!(matches!(
            xavier.init(&mut gen, &[2, 3], &mut out),
            Err(mxopt::Error::Init(_))
        ));
    }
    assert!(out.iter().all(|&x| x == 0.0));
}

/// Empty arrays whose fans are zero (MXNet divides by zero) have nothing to draw.
#[test]
fn xavier_of_an_empty_array_draws_nothing() {
    let mut gen = Generator::new(3);
    for shape in [[2, 3, 0, 4], [0, 0, 3, 3]] {
        Initializer::XAVIER
            .init(&mut gen, &shape, &mut [0.0_f32; 0])
            .unwrap();
        Initializer::MSRA_PRELU
            .init(&mut gen, &shape, &mut [0.0_f32; 0])
            .unwrap();
    }
    assert_eq!(gen, Generator::new(3));
}

/// MXNet's fill operator writes +0 for `Constant(-0.0)` (tests/golden: `fill_signed_zero`).
#[test]
fn constant_negative_zero_fills_positive_zero() {
    let mut gen = Generator::default();
    let mut out = vec![f16::from_f64(-9.0); 3];
    Initializer::Constant(-0.0)
        .init(&mut gen, &[3], &mut out)
        .unwrap();
    assert!(out.iter().all(|x| x.to_bits() == 0));
    let mut out = [-9.0_f64; 2];
    Initializer::Constant(-0.0)
        .init(&mut gen, &[2], &mut out)
        .unwrap();
    assert!(out.iter().all(|x| x.to_bits() == 0));
}

/// MXNet's fill operator casts to float16 through float32 (tests/golden:
/// `fill_operator_scalars`): 1 + 2⁻¹¹ + 2⁻⁴⁰ becomes the tie 1 + 2⁻¹¹, then 1.
#[test]
fn constant_reaches_float16_through_float32() {
    let mut gen = Generator::default();
    let near_tie = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
    let mut half = [f16::ZERO; 2];
    Initializer::Constant(near_tie)
        .init(&mut gen, &[2], &mut half)
        .unwrap();
    assert!(half.iter().all(|&x| x == f16::ONE));
    let mut double = [0.0_f64; 1];
    Initializer::Constant(near_tie)
        .init(&mut gen, &[1], &mut double)
        .unwrap();
    assert_eq!(double[0], near_tie);
}
