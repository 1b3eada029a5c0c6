//! The high-level `Optimizer` against MXNet 1.6.0's golden trajectories of every optimizer
//! (`tests/fixtures/optimizer_golden.json` and, in small cases, `optimizer_golden_more.json`,
//! exported from `tests/golden/*.npz` by `tests/rust_fixtures.py`; the Python package
//! matches the same files bit for bit), against the Python package's own trajectories where
//! MXNet's cannot be reproduced (`optimizer_package.json`: SGLD's seeded noise), and its
//! error cases.
use mxopt::half::f16;
use mxopt::init::{Generator, Initializer};
use mxopt::optim::lbsgd::{Lbsgd, WarmupStrategy};
use mxopt::optim::{adadelta::AdaDelta, adagrad::AdaGrad, adam::Adam, adamax::Adamax};
use mxopt::optim::{dcasgd::Dcasgd, group_adagrad::GroupAdaGrad, lamb::Lamb, lars::Lars};
use mxopt::optim::{ftml::Ftml, ftrl::Ftrl, nadam::Nadam, nag::Nag, rmsprop::RmsProp};
use mxopt::optim::{sgd::Sgd, sgld::Sgld, signum::Signum, test_opt::Test};
use mxopt::optimizer::{Algorithm, Config, Grad, Optimizer, Param};
use mxopt::schedule::{Factor, MultiFactor, Scheduler, Warmup, WarmupMode};
use serde_json::Value;

/// An array of the fixture: the hex string of its little-endian bytes.
fn array<T: FromLe>(v: &Value) -> Vec<T> {
    let hex = v.as_str().expect("hex string").as_bytes();
    let bytes: Vec<u8> = hex
        .chunks_exact(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex"))
        .collect();
    bytes.chunks_exact(T::SIZE).map(T::from_le).collect()
}

fn opt_f(kw: &Value, key: &str) -> Option<f64> {
    kw.get(key).and_then(Value::as_f64)
}

fn flag(kw: &Value, key: &str) -> Option<bool> {
    kw.get(key).and_then(Value::as_bool)
}

fn scheduler(s: &Value) -> Option<Scheduler> {
    if s.is_null() {
        return None;
    }
    let kw = &s["kwargs"];
    let base_lr = opt_f(kw, "base_lr").unwrap_or(0.01);
    let factor = opt_f(kw, "factor").unwrap_or(1.0);
    let warmup = Warmup {
        steps: kw.get("warmup_steps").and_then(Value::as_u64).unwrap_or(0),
        begin_lr: opt_f(kw, "warmup_begin_lr").unwrap_or(0.0),
        mode: match kw.get("warmup_mode").and_then(Value::as_str) {
            Some("constant") => WarmupMode::Constant,
            _ => WarmupMode::Linear,
        },
    };
    let built = match s["class"].as_str().expect("class") {
        "FactorScheduler" => Factor {
            factor,
            base_lr,
            stop_factor_lr: opt_f(kw, "stop_factor_lr").unwrap_or(1e-8),
            warmup,
            ..Factor::new(kw["step"].as_u64().expect("step"))
        }
        .build(),
        "MultiFactorScheduler" => MultiFactor {
            factor,
            base_lr,
            warmup,
            ..MultiFactor::new(
                kw["step"]
                    .as_array()
                    .expect("steps")
                    .iter()
                    .map(|x| x.as_u64().expect("int"))
                    .collect(),
            )
        }
        .build(),
        other => panic!("scheduler {other} not used by the fixture"),
    };
    Some(built.expect("valid scheduler"))
}

fn mults(v: &Value) -> std::collections::HashMap<String, f64> {
    v.as_object()
        .expect("dict")
        .iter()
        .map(|(k, x)| (k.clone(), x.as_f64().expect("number")))
        .collect()
}

fn optimizer(case: &Value) -> Optimizer {
    let kw = &case["kwargs"];
    let clip = opt_f(kw, "clip_gradient");
    let rs = opt_f(kw, "rescale_grad").unwrap_or(1.0);
    let name = case["optimizer"].as_str().expect("name");
    let f = |key: &str, default: f64| opt_f(kw, key).unwrap_or(default);
    let algorithm = match Algorithm::from_name(name).expect("known optimizer") {
        Algorithm::Sgd(d) => Algorithm::Sgd(Sgd {
            momentum: f("momentum", d.momentum),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::Nag(d) => Algorithm::Nag(Nag {
            momentum: f("momentum", d.momentum),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::Adam(d) => Algorithm::Adam(Adam {
            beta1: f("beta1", d.beta1),
            beta2: f("beta2", d.beta2),
            epsilon: f("epsilon", d.epsilon),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::AdaGrad(d) => Algorithm::AdaGrad(AdaGrad {
            epsilon: f("eps", d.epsilon),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::RmsProp { hyper: d, .. } => Algorithm::RmsProp {
            hyper: RmsProp {
                gamma1: f("gamma1", d.gamma1),
                gamma2: f("gamma2", d.gamma2),
                epsilon: f("epsilon", d.epsilon),
                rescale_grad: rs,
                clip_gradient: clip,
                clip_weights: opt_f(kw, "clip_weights"),
            },
            centered: kw.get("centered").and_then(Value::as_bool).unwrap_or(false),
        },
        Algorithm::Adamax(d) => Algorithm::Adamax(Adamax {
            beta1: f("beta1", d.beta1),
            beta2: f("beta2", d.beta2),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::Nadam(d) => Algorithm::Nadam(Nadam {
            beta1: f("beta1", d.beta1),
            beta2: f("beta2", d.beta2),
            epsilon: f("epsilon", d.epsilon),
            schedule_decay: f("schedule_decay", d.schedule_decay),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::AdaDelta(d) => Algorithm::AdaDelta(AdaDelta {
            rho: f("rho", d.rho),
            epsilon: f("epsilon", d.epsilon),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::Ftml(d) => Algorithm::Ftml(Ftml {
            beta1: f("beta1", d.beta1),
            beta2: f("beta2", d.beta2),
            epsilon: f("epsilon", d.epsilon),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::Ftrl(d) => Algorithm::Ftrl(Ftrl {
            lamda1: f("lamda1", d.lamda1),
            beta: f("beta", d.beta),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::Signum(d) => Algorithm::Signum(Signum {
            momentum: f("momentum", d.momentum),
            wd_lh: f("wd_lh", d.wd_lh),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::Lars {
            hyper: d,
            momentum_correction,
            exact_norms,
        } => Algorithm::Lars {
            hyper: Lars {
                eta: f("eta", d.eta),
                eps: f("eps", d.eps),
                momentum: f("momentum", d.momentum),
                rescale_grad: rs,
                clip_gradient: clip,
            },
            momentum_correction: flag(kw, "momentum_correction").unwrap_or(momentum_correction),
            exact_norms,
        },
        Algorithm::Lamb {
            hyper: d,
            exact_norms,
            update_master_copy,
        } => Algorithm::Lamb {
            hyper: Lamb {
                beta1: f("beta1", d.beta1),
                beta2: f("beta2", d.beta2),
                epsilon: f("epsilon", d.epsilon),
                rescale_grad: rs,
                clip_gradient: clip,
                bias_correction: flag(kw, "bias_correction").unwrap_or(d.bias_correction),
                lower_bound: opt_f(kw, "lower_bound"),
                upper_bound: opt_f(kw, "upper_bound"),
            },
            exact_norms,
            update_master_copy,
        },
        Algorithm::Lbsgd(d) => {
            let int =
                |key: &str, default: u64| kw.get(key).and_then(Value::as_u64).unwrap_or(default);
            Algorithm::Lbsgd(Lbsgd {
                momentum: f("momentum", d.momentum),
                rescale_grad: rs,
                clip_gradient: clip,
                warmup_strategy: kw
                    .get("warmup_strategy")
                    .and_then(Value::as_str)
                    .map_or(d.warmup_strategy, WarmupStrategy::from_name),
                warmup_epochs: int("warmup_epochs", d.warmup_epochs),
                batch_scale: int("batch_scale", d.batch_scale),
                updates_per_epoch: int("updates_per_epoch", d.updates_per_epoch),
                begin_epoch: int("begin_epoch", d.begin_epoch),
            })
        }
        Algorithm::Dcasgd(d) => Algorithm::Dcasgd(Dcasgd {
            lamda: f("lamda", d.lamda),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::Sgld { .. } => Algorithm::Sgld {
            hyper: Sgld {
                rescale_grad: rs,
                clip_gradient: clip,
            },
            add_noise: case["noise"].as_bool().expect("noise flag"),
        },
        Algorithm::GroupAdaGrad(d) => Algorithm::GroupAdaGrad(GroupAdaGrad {
            epsilon: f("eps", d.epsilon),
            rescale_grad: rs,
            clip_gradient: clip,
        }),
        Algorithm::Test(_) => Algorithm::Test(Test { rescale_grad: rs }),
        other => panic!("{other:?}"),
    };
    let config = Config {
        learning_rate: opt_f(kw, "learning_rate"),
        wd: opt_f(kw, "wd").unwrap_or(0.0),
        multi_precision: kw
            .get("multi_precision")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        begin_num_update: kw
            .get("begin_num_update")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        lazy_update: kw
            .get("lazy_update")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        lr_scheduler: scheduler(&case["scheduler"]),
        decay_by_suffix: case["decay_by_suffix"].as_bool().expect("bool"),
        lr_mult: mults(&case["lr_mult"]),
        wd_mult: mults(&case["wd_mult"]),
    };
    Optimizer::new(algorithm, config).expect("valid optimizer")
}

trait FromLe: Param {
    const SIZE: usize;
    fn from_le(bytes: &[u8]) -> Self;
    fn to_f64(self) -> f64;
}
impl FromLe for f32 {
    const SIZE: usize = 4;
    fn from_le(b: &[u8]) -> Self {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}
impl FromLe for f64 {
    const SIZE: usize = 8;
    fn from_le(b: &[u8]) -> Self {
        f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
    fn to_f64(self) -> f64 {
        self
    }
}
impl FromLe for f16 {
    const SIZE: usize = 2;
    fn from_le(b: &[u8]) -> Self {
        f16::from_le_bytes([b[0], b[1]])
    }
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
}

/// A weight of the fixture, in its element type.
enum Weight {
    F16(Vec<f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Weight {
    fn new(dtype: &str, hex: &Value) -> Weight {
        match dtype {
            "float16" => Weight::F16(array(hex)),
            "float32" => Weight::F32(array(hex)),
            _ => Weight::F64(array(hex)),
        }
    }
}

/// The parameter type of a [`Weight`].
trait Typed: FromLe {
    fn of(w: &mut Weight) -> Option<&mut Vec<Self>>;
}
impl Typed for f16 {
    fn of(w: &mut Weight) -> Option<&mut Vec<Self>> {
        match w {
            Weight::F16(v) => Some(v),
            _ => None,
        }
    }
}
impl Typed for f32 {
    fn of(w: &mut Weight) -> Option<&mut Vec<Self>> {
        match w {
            Weight::F32(v) => Some(v),
            _ => None,
        }
    }
}
impl Typed for f64 {
    fn of(w: &mut Weight) -> Option<&mut Vec<Self>> {
        match w {
            Weight::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// The shape facts a call needs: rows of each weight, and whether dense gradients go as
/// [`Grad::Matrix`] (GroupAdaGrad's state has one value per row).
struct Shapes {
    rows: Vec<usize>,
    matrix: bool,
}

/// Fills `w` again with `init`; whether it got the same values.
fn refill<T: mxopt::init::Element + PartialEq>(
    init: &Initializer,
    generator: &mut Generator,
    shape: &[usize],
    w: &mut [T],
) -> bool {
    let before = w.to_vec();
    init.init(generator, shape, w).expect("fill");
    before == w
}

fn replay(case: &Value) {
    let name = case["name"].as_str().expect("name");
    let mut opt = optimizer(case);
    let dtypes: Vec<&str> = case["dtypes"]
        .as_array()
        .expect("dtypes")
        .iter()
        .map(|d| d.as_str().expect("dtype"))
        .collect();
    let mut weights: Vec<Weight> = case["w0"]
        .as_array()
        .expect("w0")
        .iter()
        .zip(&dtypes)
        .map(|(hex, dtype)| Weight::new(dtype, hex))
        .collect();
    let shapes = Shapes {
        rows: case["shapes"]
            .as_array()
            .expect("shapes")
            .iter()
            .map(|s| usize::try_from(s[0].as_u64().expect("dim")).expect("usize"))
            .collect(),
        matrix: case["optimizer"] == "groupadagrad",
    };
    if let Some(seed) = case.get("seed").and_then(Value::as_u64) {
        // The Python package seeded its generator, filled the weights, then drew SGLD's
        // noise from the same generator: the same here.
        let mut generator = Generator::new(seed);
        let sigma = case["init_sigma"].as_f64().expect("init_sigma");
        for (w, shape) in weights
            .iter_mut()
            .zip(case["shapes"].as_array().expect("shapes"))
        {
            let shape: Vec<usize> = shape
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| usize::try_from(d.as_u64().expect("dim")).expect("usize"))
                .collect();
            let init = Initializer::Normal { sigma };
            let filled = match w {
                Weight::F16(v) => refill(&init, &mut generator, &shape, v),
                Weight::F32(v) => refill(&init, &mut generator, &shape, v),
                Weight::F64(v) => refill(&init, &mut generator, &shape, v),
            };
            assert!(
                filled,
                "{name}: the initial weights differ from the Python package's"
            );
        }
        opt.set_generator(generator);
    }
    for (i, call) in case["calls"].as_array().expect("calls").iter().enumerate() {
        let first = usize::try_from(call["weights"][0].as_u64().expect("k")).expect("k");
        let at = format!("{name} call {i}");
        match dtypes[first] {
            "float16" => replay_call::<f16>(&mut opt, &mut weights, call, &shapes, &at),
            "float32" => replay_call::<f32>(&mut opt, &mut weights, call, &shapes, &at),
            _ => replay_call::<f64>(&mut opt, &mut weights, call, &shapes, &at),
        }
    }
}

fn replay_call<T: Typed>(
    opt: &mut Optimizer,
    weights: &mut [Weight],
    call: &Value,
    shapes: &Shapes,
    at: &str,
) {
    let conv = |v: &Value| array::<T>(v);
    let index: Vec<String> = call["names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().expect("name").to_owned())
        .collect();
    let ks: Vec<usize> = call["weights"]
        .as_array()
        .expect("weights")
        .iter()
        .map(|k| usize::try_from(k.as_u64().expect("k")).expect("usize"))
        .collect();
    let grads: Vec<(Vec<i64>, Vec<T>, bool)> = call["grads"]
        .as_array()
        .expect("grads")
        .iter()
        .map(|g| match g.get("dense") {
            Some(d) => (Vec::new(), conv(d), true),
            None => (
                g["indices"]
                    .as_array()
                    .expect("indices")
                    .iter()
                    .map(|x| x.as_i64().expect("i64"))
                    .collect(),
                conv(&g["values"]),
                false,
            ),
        })
        .collect();
    {
        // Borrow the called weights mutably, in call order.
        let mut slots: Vec<Option<&mut Weight>> = weights.iter_mut().map(Some).collect();
        let mut list: Vec<(&str, &mut [T], Grad<'_, T>)> = Vec::new();
        for ((idx, &k), (indices, values, dense)) in index.iter().zip(&ks).zip(&grads) {
            let w = T::of(slots[k].take().expect("distinct weights")).expect("one dtype");
            let rows = shapes.rows[k];
            let g = if *dense && shapes.matrix {
                Grad::Matrix {
                    rows,
                    values: values.as_slice(),
                }
            } else if *dense {
                Grad::Dense(values.as_slice())
            } else {
                Grad::Rows {
                    rows,
                    indices,
                    values,
                }
            };
            list.push((idx.as_str(), w.as_mut_slice(), g));
        }
        opt.update_many(&mut list)
            .unwrap_or_else(|e| panic!("{at}: {e}"));
    }
    for (k, want) in call["after"].as_object().expect("after") {
        let k: usize = k.parse().expect("k");
        let got: Vec<f64> = T::of(&mut weights[k])
            .expect("one dtype")
            .iter()
            .map(|&x| FromLe::to_f64(x))
            .collect();
        let want: Vec<f64> = array::<T>(want).into_iter().map(FromLe::to_f64).collect();
        assert_eq!(got.len(), want.len());
        for (j, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w || (g.is_nan() && w.is_nan()),
                "{at} weight {k}[{j}]: {g} != {w}"
            );
        }
    }
}

/// Replays every case of a fixture file; returns the number of cases per optimizer.
fn replay_file(file: &str) -> std::collections::BTreeMap<String, usize> {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("fixture");
    let fixture: Value = serde_json::from_str(&text).expect("json");
    let cases = fixture["cases"].as_array().expect("cases");
    let mut per_optimizer = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for case in cases {
        let run = std::panic::catch_unwind(|| replay(case));
        if let Err(e) = run {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "panic".to_owned());
            failures.push(msg);
        }
        *per_optimizer
            .entry(case["optimizer"].as_str().expect("name").to_owned())
            .or_insert(0) += 1;
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    per_optimizer
}

#[test]
fn golden_trajectories_of_every_driver() {
    let per_optimizer = replay_file("optimizer_golden.json");
    assert_eq!(per_optimizer.len(), 12, "{per_optimizer:?}");
    assert!(
        per_optimizer.values().all(|&n| n >= 10),
        "{per_optimizer:?}"
    );
}

#[test]
fn python_package_trajectories_with_noise_and_mixed_accumulation() {
    let per_optimizer = replay_file("optimizer_package.json");
    assert_eq!(per_optimizer.get("sgld"), Some(&4), "{per_optimizer:?}");
    assert_eq!(per_optimizer.get("lbsgd"), Some(&3), "{per_optimizer:?}");
    for (name, cases) in [
        ("lars", 3),
        ("lamb", 2),
        ("dcasgd", 3),
        ("groupadagrad", 2),
        ("test", 3),
    ] {
        assert_eq!(per_optimizer.get(name), Some(&cases), "{per_optimizer:?}");
    }
}

#[test]
fn golden_trajectories_of_the_layerwise_and_python_side_optimizers() {
    let per_optimizer = replay_file("optimizer_golden_more.json");
    assert_eq!(per_optimizer.len(), 7, "{per_optimizer:?}");
    assert!(per_optimizer.values().all(|&n| n >= 7), "{per_optimizer:?}");
}

#[test]
fn momentum_state_is_created_and_counted() {
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    let mut opt = Optimizer::new(
        Algorithm::Sgd(sgd),
        Config {
            learning_rate: Some(0.1),
            ..Config::default()
        },
    )
    .expect("valid");
    let (mut w, g) = (vec![1.0_f32; 3], vec![0.5_f32; 3]);
    opt.update("a_weight", &mut w, &g).expect("update");
    opt.update("a_weight", &mut w, &g).expect("update");
    // m1 = −0.05, w1 = 0.95; m2 = 0.9·m1 − 0.05 = −0.095, w2 = 0.855.
    assert_eq!(w[0], 0.95_f32 + (-0.05_f32 * 0.9 - 0.05));
    assert_eq!(opt.update_count("a_weight"), Some(2));
    assert!(opt.update("a_weight", &mut w, &g[..2]).is_err());
    assert_eq!(opt.update_count("a_weight"), Some(2));
    let mut w16 = vec![f16::ONE; 3];
    assert!(opt.update("a_weight", &mut w16, &[f16::ONE; 3]).is_err());
}

#[test]
fn multipliers_suffix_rule_and_atomic_errors() {
    let sgd = Algorithm::Sgd(Sgd::default());
    let config = Config {
        learning_rate: Some(1.0),
        wd: 0.5,
        lr_mult: [("b_weight".to_owned(), 2.0)].into_iter().collect(),
        ..Config::default()
    };
    let mut opt = Optimizer::new(sgd, config).expect("valid");
    let (mut a, mut b, mut bias) = (vec![1.0_f32; 2], vec![1.0_f32; 2], vec![1.0_f32; 2]);
    let g = vec![0.0_f32; 2];
    opt.update_many(&mut [
        ("a_weight", &mut a, Grad::Dense(&g)),
        ("b_weight", &mut b, Grad::Dense(&g)),
        ("a_bias", &mut bias, Grad::Dense(&g)),
    ])
    .expect("update");
    // w' = w − lr·wd·w: the bias gets no weight decay (MXNet's suffix rule).
    assert_eq!((a[0], b[0], bias[0]), (0.5, 0.0, 1.0));
    // A duplicate name or a bad length is refused before anything is written or counted.
    let before = (a.clone(), opt.num_update());
    let mut a2 = vec![1.0_f32; 2];
    assert!(opt
        .update_many(&mut [
            ("a_weight", &mut a, Grad::Dense(&g)),
            ("a_weight", &mut a2, Grad::Dense(&g)),
        ])
        .is_err());
    assert!(opt
        .update_many(&mut [
            ("a_weight", &mut a, Grad::Dense(&g)),
            ("b_weight", &mut b, Grad::Dense(&g[..1])),
        ])
        .is_err());
    assert_eq!((a, opt.num_update()), before);
    assert_eq!(opt.update_count("a_weight"), Some(1));
}

#[test]
fn multi_precision_keeps_an_f32_master() {
    let config = Config {
        learning_rate: Some(1e-4),
        multi_precision: true,
        ..Config::default()
    };
    let mut opt = Optimizer::new(Algorithm::Sgd(Sgd::default()), config).expect("valid");
    let mut w = vec![f16::ONE; 4];
    let g = vec![f16::ONE; 4];
    // Each step (1e-4) is below half an f16 ulp at 1.0: only the master copy moves, and
    // the f16 weight follows once the master has drifted far enough.
    opt.update("w_weight", &mut w, &g).expect("update");
    assert_eq!(w[0], f16::ONE);
    for _ in 0..9 {
        opt.update("w_weight", &mut w, &g).expect("update");
    }
    assert!(w[0] < f16::ONE);
}

#[test]
fn every_registered_name_builds_and_updates() {
    for name in Algorithm::NAMES {
        let algorithm = Algorithm::from_name(name).expect(name);
        let canonical = if name == "ccsgd" { "sgd" } else { name };
        assert_eq!(algorithm.name(), canonical);
        assert_eq!(
            Algorithm::from_name(&name.to_uppercase()).expect(name),
            algorithm
        );
        let mut opt = Optimizer::new(algorithm, Config::default()).expect(name);
        let mut w = vec![0.5_f32; 6];
        let g = vec![0.25_f32; 6];
        let grad = Grad::Matrix {
            rows: 2,
            values: &g,
        };
        opt.update_many(&mut [("fc_weight", &mut w, grad)])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(w.iter().all(|x| x.is_finite()), "{name}: {w:?}");
        assert!(
            w.iter().any(|&x| x != 0.5),
            "{name} left the weight as it was"
        );
    }
    let err = Algorithm::from_name("lbfgs").expect_err("unknown");
    assert!(err.to_string().contains("groupadagrad"), "{err}");
}

#[test]
fn bad_hyper_parameters_are_refused_at_construction() {
    let nan = f64::NAN;
    let bad = [
        Algorithm::Lars {
            hyper: Lars {
                eta: nan,
                ..Lars::default()
            },
            momentum_correction: true,
            exact_norms: true,
        },
        Algorithm::Lamb {
            hyper: Lamb {
                beta1: nan,
                ..Lamb::default()
            },
            exact_norms: true,
            update_master_copy: false,
        },
        Algorithm::Lbsgd(Lbsgd {
            batch_scale: 0,
            ..Lbsgd::default()
        }),
        // The update kernel runs only at the `batch_scale`-th call: checked at once anyway.
        Algorithm::Lbsgd(Lbsgd {
            batch_scale: 4,
            rescale_grad: nan,
            ..Lbsgd::default()
        }),
        Algorithm::Dcasgd(Dcasgd {
            lamda: f64::INFINITY,
            ..Dcasgd::default()
        }),
        Algorithm::Sgld {
            hyper: Sgld {
                rescale_grad: nan,
                ..Sgld::default()
            },
            add_noise: true,
        },
        Algorithm::GroupAdaGrad(GroupAdaGrad {
            epsilon: nan,
            ..GroupAdaGrad::default()
        }),
        Algorithm::Test(Test { rescale_grad: nan }),
    ];
    for algorithm in bad {
        assert!(
            Optimizer::new(algorithm, Config::default()).is_err(),
            "{algorithm:?}"
        );
    }
}

/// A list whose second tensor is bad leaves every weight, state, count and the noise
/// generator as they were, for every algorithm.
#[test]
fn refused_lists_write_nothing() {
    for name in Algorithm::NAMES {
        let mut opt =
            Optimizer::new(Algorithm::from_name(name).expect(name), Config::default()).expect(name);
        let g = vec![0.25_f32; 6];
        let (mut a, mut b) = (vec![0.5_f32; 6], vec![0.5_f32; 6]);
        let matrix = |values| Grad::Matrix { rows: 2, values };
        opt.update_many(&mut [
            ("a_weight", &mut a, matrix(&g)),
            ("b_weight", &mut b, matrix(&g)),
        ])
        .expect(name);
        let before = (a.clone(), b.clone(), opt.num_update(), opt.generator());
        let bad_grads = [
            Grad::Matrix {
                rows: 2,
                values: &g[..5],
            },
            Grad::Matrix {
                rows: 4,
                values: &g,
            },
            Grad::Rows {
                rows: 2,
                indices: &[1, 0],
                values: &g,
            },
            Grad::Rows {
                rows: 2,
                indices: &[2],
                values: &g[..3],
            },
        ];
        for bad in bad_grads {
            let result =
                opt.update_many(&mut [("a_weight", &mut a, matrix(&g)), ("b_weight", &mut b, bad)]);
            assert!(result.is_err(), "{name}: {bad:?}");
            assert_eq!(
                (a.clone(), b.clone(), opt.num_update(), opt.generator()),
                before,
                "{name}"
            );
            assert_eq!(
                opt.update_count("a_weight"),
                Some(1).filter(|_| name != "test").or(Some(0))
            );
        }
        // The state of `a_weight` is f32: an f16 update of it is refused.
        let mut half = vec![f16::ONE; 6];
        let g16 = vec![f16::ONE; 6];
        let result = opt.update_many(&mut [(
            "a_weight",
            &mut half,
            Grad::Matrix {
                rows: 2,
                values: &g16,
            },
        )]);
        assert!(result.is_err(), "{name}");
        assert!(half.iter().all(|&x| x == f16::ONE));
        // A refused first update leaves no state: the next one starts afresh.
        let mut fresh = vec![0.5_f32; 6];
        assert!(
            opt.update("c_weight", &mut fresh, &g[..4]).is_err(),
            "{name}"
        );
        assert_eq!(opt.update_count("c_weight"), None, "{name}");
        opt.update_many(&mut [("c_weight", &mut fresh, matrix(&g))])
            .expect(name);
        // The next good update still works, from where the first one left off.
        opt.update_many(&mut [
            ("a_weight", &mut a, matrix(&g)),
            ("b_weight", &mut b, matrix(&g)),
        ])
        .expect(name);
    }
}

#[test]
fn f32_state_optimizers_refuse_other_types_without_multi_precision() {
    for name in ["lamb", "groupadagrad"] {
        let algorithm = Algorithm::from_name(name).expect(name);
        let mut opt = Optimizer::new(algorithm, Config::default()).expect(name);
        let (mut w64, g64) = (vec![1.0_f64; 4], vec![0.5_f64; 4]);
        let grad = Grad::Matrix {
            rows: 2,
            values: &g64,
        };
        assert!(
            opt.update_many(&mut [("w64", &mut w64, grad)]).is_err(),
            "{name}"
        );
        assert_eq!(w64, [1.0; 4]);
        let (mut w16, g16) = (vec![f16::ONE; 4], vec![f16::ONE; 4]);
        let grad = Grad::Matrix {
            rows: 2,
            values: &g16,
        };
        assert!(
            opt.update_many(&mut [("w16", &mut w16, grad)]).is_err(),
            "{name}"
        );
        let mp = Config {
            multi_precision: true,
            ..Config::default()
        };
        let mut opt = Optimizer::new(algorithm, mp).expect(name);
        opt.update_many(&mut [("w16", &mut w16, grad)]).expect(name);
        assert!(w16.iter().all(|&x| x != f16::ONE), "{name}");
    }
}

#[test]
fn group_adagrad_needs_rows_and_no_weight_decay() {
    let algorithm = Algorithm::from_name("groupadagrad").expect("known");
    let mut opt = Optimizer::new(algorithm, Config::default()).expect("valid");
    let (mut w, g) = (vec![1.0_f32; 6], vec![0.5_f32; 6]);
    // A first dense update does not say how many rows the weight has.
    assert!(opt.update("emb_weight", &mut w, &g).is_err());
    assert_eq!(opt.update_count("emb_weight"), None);
    let matrix = Grad::Matrix {
        rows: 3,
        values: &g,
    };
    opt.update_many(&mut [("emb_weight", &mut w, matrix)])
        .expect("rows given");
    // Later dense updates use the state's row count.
    opt.update("emb_weight", &mut w, &g).expect("rows known");
    let decayed = Config {
        wd: 0.1,
        ..Config::default()
    };
    let mut opt = Optimizer::new(algorithm, decayed).expect("valid");
    let before = w.clone();
    assert!(opt
        .update_many(&mut [("emb_weight", &mut w, matrix)])
        .is_err());
    assert_eq!(w, before);
    // MXNet's name rule gives a `_bias` no weight decay: accepted.
    opt.update_many(&mut [("emb_bias", &mut w, matrix)])
        .expect("wd resolves to 0");
}

#[test]
fn test_optimizer_mirrors_the_weight_and_does_not_count() {
    let config = Config {
        learning_rate: Some(100.0),
        wd: 3.0,
        ..Config::default()
    };
    let mut opt =
        Optimizer::new(Algorithm::Test(Test { rescale_grad: 0.5 }), config).expect("valid");
    let (mut w, g) = (vec![1.0_f64; 3], vec![2.0_f64; 3]);
    opt.update("w", &mut w, &g).expect("update");
    opt.update("w", &mut w, &g).expect("update");
    assert_eq!(w, [3.0; 3]);
    assert_eq!((opt.update_count("w"), opt.num_update()), (Some(0), 0));
}
