//! Optimizer checkpoints: round trips that continue bit-identically, and every kind of
//! damaged file refused with an error.

// The helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use mxopt::half::f16;
use mxopt::init::Generator;
use mxopt::optim::lbsgd::{Lbsgd, WarmupStrategy};
use mxopt::optim::{lars::Lars, nadam::Nadam, rmsprop::RmsProp, sgd::Sgd, signum::Signum};
use mxopt::optimizer::checkpoint::{ParamType, Record, Tensor, Values};
use mxopt::optimizer::{Algorithm, Config, Grad, Optimizer, Param};
use mxopt::schedule::{Factor, MultiFactor, Poly, Warmup, WarmupMode};
use mxopt::Error;
use std::collections::HashMap;

fn algorithms() -> Vec<Algorithm> {
    let mut all: Vec<Algorithm> = Algorithm::NAMES
        .iter()
        .map(|n| Algorithm::from_name(n).unwrap())
        .collect();
    all.push(Algorithm::Sgd(Sgd {
        momentum: 0.9,
        clip_gradient: Some(0.5),
        ..Sgd::default()
    }));
    all.push(Algorithm::RmsProp {
        hyper: RmsProp {
            clip_weights: Some(2.0),
            ..RmsProp::default()
        },
        centered: true,
    });
    all.push(Algorithm::Signum(Signum {
        momentum: 0.0,
        ..Signum::default()
    }));
    all.push(Algorithm::Nadam(Nadam {
        schedule_decay: 0.01,
        ..Nadam::default()
    }));
    all.push(Algorithm::Lars {
        hyper: Lars {
            momentum: 0.9,
            eta: 0.01,
            ..Lars::default()
        },
        momentum_correction: true,
        exact_norms: true,
    });
    // Saved part-way through a batch of 3 (and through the warm-up).
    all.push(Algorithm::Lbsgd(Lbsgd {
        momentum: 0.9,
        batch_scale: 3,
        warmup_epochs: 1,
        updates_per_epoch: 4,
        begin_epoch: 1,
        warmup_strategy: WarmupStrategy::Power2,
        ..Lbsgd::default()
    }));
    all.push(Algorithm::Lbsgd(Lbsgd {
        batch_scale: 2,
        warmup_strategy: WarmupStrategy::Lars,
        ..Lbsgd::default()
    }));
    all
}

/// Whether `algorithm` takes parameters of type `T` (LAMB and GroupAdaGrad keep `f32`
/// states: `f32`, or `f16` with multi-precision).
fn takes<T: Param>(algorithm: &Algorithm, multi_precision: bool) -> bool {
    let f32_states = matches!(
        algorithm,
        Algorithm::Lamb { .. } | Algorithm::GroupAdaGrad(_)
    );
    let size = std::mem::size_of::<T>();
    !f32_states || size == 4 || (size == 2 && multi_precision)
}

fn config(multi_precision: bool) -> Config {
    Config {
        learning_rate: Some(0.05),
        wd: 1e-3,
        multi_precision,
        begin_num_update: 2,
        lr_scheduler: Some(
            Factor {
                factor: 0.7,
                warmup: Warmup {
                    steps: 2,
                    begin_lr: 0.001,
                    mode: WarmupMode::Linear,
                },
                ..Factor::new(3)
            }
            .build()
            .unwrap(),
        ),
        lr_mult: HashMap::from([("b_weight".to_owned(), 0.5)]),
        wd_mult: HashMap::from([("a_bias".to_owned(), 2.0)]),
        ..Config::default()
    }
}

/// Deterministic, varied gradients.
fn grad<T: Param>(len: usize, step: usize, of: impl Fn(f64) -> T) -> Vec<T> {
    (0..len)
        .map(|i| of(((i * 7 + step * 13) % 11) as f64 / 11.0 - 0.4))
        .collect()
}

/// Trains two parameters of 3 rows (one of them only every other step, so counts
/// differ).
fn train<T: Param + Copy>(
    opt: &mut Optimizer,
    w: &mut [Vec<T>; 2],
    steps: std::ops::Range<usize>,
    of: impl Fn(f64) -> T + Copy,
) {
    for step in steps {
        let g = grad(w[0].len(), step, of);
        let values = &g;
        opt.update_many(&mut [("a_bias", &mut w[0], Grad::Matrix { rows: 3, values })])
            .unwrap();
        if step % 2 == 0 {
            let g = grad(w[1].len(), step + 1, of);
            let values = &g;
            opt.update_many(&mut [("b_weight", &mut w[1], Grad::Matrix { rows: 3, values })])
                .unwrap();
        }
    }
}

fn continues_identically<T: Param + Copy + PartialEq + std::fmt::Debug>(
    of: impl Fn(f64) -> T + Copy,
    multi_precision: bool,
) {
    for algorithm in algorithms() {
        if !takes::<T>(&algorithm, multi_precision) {
            continue;
        }
        let config = Config {
            wd: if matches!(algorithm, Algorithm::GroupAdaGrad(_)) {
                0.0
            } else {
                1e-3
            },
            ..config(multi_precision)
        };
        let mut opt = Optimizer::new(algorithm, config).unwrap();
        opt.set_generator(Generator::new(7));
        let mut w = [vec![of(0.5); 6], vec![of(-0.25); 9]];
        train(&mut opt, &mut w, 0..5, of);
        let mut resumed = Optimizer::from_bytes(&opt.to_bytes().unwrap()).unwrap();
        assert!(
            resumed.to_record().unwrap() == opt.to_record().unwrap(),
            "{algorithm:?}"
        );
        let mut w2 = w.clone();
        train(&mut opt, &mut w, 5..12, of);
        train(&mut resumed, &mut w2, 5..12, of);
        assert_eq!(w, w2, "{algorithm:?}");
        assert!(opt.to_record().unwrap() == resumed.to_record().unwrap());
        // `Test` does not count updates.
        if !matches!(algorithm, Algorithm::Test(_)) {
            assert_eq!(resumed.update_count("b_weight"), Some(2 + 6));
            assert_eq!(resumed.num_update(), 2 + 12);
        }
        assert_eq!(resumed.generator(), opt.generator());
    }
}

#[test]
fn every_algorithm_and_type_continues_bit_identically() {
    continues_identically(|x| x as f32, false);
    continues_identically(|x| x, false);
    continues_identically(f16::from_f64, false);
    continues_identically(f16::from_f64, true);
}

#[test]
fn schedules_resume_at_their_position() {
    let schedules = [
        MultiFactor {
            factor: 0.5,
            ..MultiFactor::new(vec![2, 4, 7])
        }
        .build()
        .unwrap(),
        Poly {
            pwr: 1.5,
            ..Poly::new(9)
        }
        .build()
        .unwrap(),
        mxopt::schedule::Cosine {
            warmup: Warmup {
                steps: 3,
                begin_lr: 0.0,
                mode: WarmupMode::Constant,
            },
            ..mxopt::schedule::Cosine::new(8)
        }
        .build()
        .unwrap(),
    ];
    for schedule in schedules {
        let config = Config {
            lr_scheduler: Some(schedule),
            ..Config::default()
        };
        let mut opt = Optimizer::new(Algorithm::from_name("adam").unwrap(), config).unwrap();
        let mut w = [vec![1.0_f32; 6], vec![2.0_f32; 3]];
        train(&mut opt, &mut w, 0..6, |x| x as f32);
        let mut resumed = Optimizer::from_bytes(&opt.to_bytes().unwrap()).unwrap();
        let mut w2 = w.clone();
        train(&mut opt, &mut w, 6..14, |x| x as f32);
        train(&mut resumed, &mut w2, 6..14, |x| x as f32);
        assert_eq!(w, w2);
    }
}

#[test]
fn save_and_load_files() {
    let dir = std::env::temp_dir().join(format!("mxopt-ckpt-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("opt.safetensors");
    let mut opt = Optimizer::new(Algorithm::from_name("ftml").unwrap(), config(false)).unwrap();
    let mut w = [vec![1.0_f64; 6], vec![2.0_f64; 3]];
    train(&mut opt, &mut w, 0..3, |x| x);
    opt.save(&path).unwrap();
    assert!(!dir.join("opt.safetensors.partial").exists());
    let loaded = Optimizer::load(&path).unwrap();
    assert!(loaded.to_record().unwrap() == opt.to_record().unwrap());
    // Unwritable and unreadable paths: errors naming the path.
    let missing = dir.join("no/such/dir/x.safetensors");
    for err in [
        opt.save(&missing).unwrap_err(),
        Optimizer::load(&missing).unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::Checkpoint(m) if m.contains("no/such/dir")),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A small checkpoint: SGD with momentum, one f32 parameter of 3 elements.
fn small() -> Vec<u8> {
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    let mut opt = Optimizer::new(Algorithm::Sgd(sgd), Config::default()).unwrap();
    opt.update("w", &mut [1.0_f32, 2.0, 3.0], &[0.1, 0.2, 0.3])
        .unwrap();
    opt.to_bytes().unwrap()
}

fn split(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn join(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// The small checkpoint with its header edited.
fn edited(edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let (mut header, data) = split(&small());
    edit(&mut header);
    join(&header.to_string(), &data)
}

fn set_meta(key: &str, value: &str) -> Vec<u8> {
    edited(|h| h["__metadata__"][key] = value.into())
}

fn refused(bytes: &[u8], needle: &str) {
    match Optimizer::from_bytes(bytes) {
        Err(err @ (Error::Checkpoint(_) | Error::NotFinite { .. } | Error::Schedule(_))) => {
            let text = err.to_string();
            assert!(text.contains(needle), "{text:?} should mention {needle:?}");
        }
        other => panic!("expected an error mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn the_small_checkpoint_loads() {
    let opt = Optimizer::from_bytes(&small()).unwrap();
    assert_eq!(opt.update_count("w"), Some(1));
}

#[test]
fn truncated_files_are_refused() {
    let bytes = small();
    for len in 0..bytes.len() {
        assert!(
            matches!(
                Optimizer::from_bytes(&bytes[..len]),
                Err(Error::Checkpoint(_))
            ),
            "prefix of {len} bytes"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    refused(&longer, "safetensors");
}

#[test]
fn damaged_containers_are_refused() {
    let (header, data) = split(&small());
    // Header lengths past the file or absurdly large.
    let mut huge = small();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    refused(&huge, "safetensors");
    let mut long = small();
    long[..8].copy_from_slice(&(1_u64 << 40).to_le_bytes());
    refused(&long, "safetensors");
    // Not JSON, not UTF-8, not the expected structure.
    refused(&join("{\"a\": nope", &data), "safetensors");
    refused(&join("\u{0}\u{0}", &[]), "safetensors");
    let mut not_utf8 = join("{}", &[]);
    not_utf8[8] = 0xff;
    refused(&not_utf8, "safetensors");
    refused(&join("[1, 2]", &[]), "safetensors");
    // Offsets out of range, overlapping, or a shape that does not match the data.
    let key = "state/w/0";
    for (field, value) in [
        ("data_offsets", serde_json::json!([0, 16])),
        ("data_offsets", serde_json::json!([4, 16])),
        ("data_offsets", serde_json::json!([8, 4])),
        ("shape", serde_json::json!([4])),
        ("shape", serde_json::json!([1_u64 << 62, 1_u64 << 62])),
        ("dtype", serde_json::json!("F64")),
        ("dtype", serde_json::json!("Q7")),
    ] {
        let mut h = header.clone();
        h[key][field] = value;
        refused(&join(&h.to_string(), &data), "safetensors");
    }
    // Two tensors over the same bytes.
    let mut h = header.clone();
    h["state/w/1"] = h[key].clone();
    refused(&join(&h.to_string(), &data), "safetensors");
    // No metadata at all.
    let mut h = header.clone();
    h.as_object_mut().unwrap().remove("__metadata__");
    refused(&join(&h.to_string(), &data), "\"format\"");
}

#[test]
fn wrong_dtypes_and_shapes_are_refused() {
    // A valid container whose state is F64 for an F32 parameter (8 bytes per element).
    let (mut header, _) = split(&small());
    header["state/w/0"] =
        serde_json::json!({"dtype": "F64", "shape": [3], "data_offsets": [0, 24]});
    refused(&join(&header.to_string(), &[0; 24]), "expected F32");
    header["state/w/0"] =
        serde_json::json!({"dtype": "I32", "shape": [3], "data_offsets": [0, 12]});
    refused(&join(&header.to_string(), &[0; 12]), "I32");
    // A shape whose product with zeros hides huge dimensions.
    header["state/w/0"] =
        serde_json::json!({"dtype": "F32", "shape": [0, 1_u64 << 62, 4], "data_offsets": [0, 0]});
    refused(&join(&header.to_string(), &[]), "unusable shape");
}

#[test]
fn missing_or_extra_entries_are_refused() {
    for key in [
        "format",
        "format_version",
        "params",
        "algorithm",
        "config",
        "state",
        "accumulation",
    ] {
        refused(
            &edited(|h| {
                h["__metadata__"].as_object_mut().unwrap().remove(key);
            }),
            key,
        );
    }
    refused(&set_meta("format", "pytorch"), "format");
    refused(&set_meta("format_version", "2"), "version");
    // The params entry names a tensor the file lacks, or the file has one it does not name.
    refused(
        &set_meta(
            "params",
            r#"{"w":{"count":1,"dtype":"F32","states":2,"master":false}}"#,
        ),
        "declares 2 states",
    );
    refused(
        &set_meta(
            "params",
            r#"{"w":{"count":1,"dtype":"F32","states":1,"master":true}}"#,
        ),
        "master/w",
    );
    refused(&set_meta("params", "{}"), "state/w/0");
    refused(
        &set_meta(
            "params",
            r#"{"w":{"count":1,"dtype":"F32","states":99999999999,"master":false}}"#,
        ),
        "declares",
    );
    refused(
        &set_meta(
            "params",
            r#"{"w":{"count":-1,"dtype":"F32","states":1,"master":false}}"#,
        ),
        "params",
    );
    refused(&set_meta("params", "garbage"), "params");
}

#[test]
fn wrong_optimizers_and_settings_are_refused() {
    // An algorithm this build has no driver for, or no name at all.
    refused(&set_meta("algorithm", r#"{"name":"lbfgs"}"#), "lbfgs");
    refused(&set_meta("algorithm", r#"{"momentum":0.9}"#), "name");
    // The algorithm keeps another number of states than the file has.
    let adam = serde_json::to_string(&Algorithm::from_name("adam").unwrap()).unwrap();
    refused(&set_meta("algorithm", &adam), "algorithm keeps 2");
    // A missing hyper-parameter, or a bad value.
    refused(
        &set_meta("algorithm", r#"{"name":"sgd","momentum":0.9}"#),
        "rescale_grad",
    );
    refused(
        &set_meta(
            "algorithm",
            r#"{"name":"sgd","momentum":0.9,"rescale_grad":1e999,"clip_gradient":null}"#,
        ),
        "algorithm",
    );
    // Configs and counters.
    let config = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c = serde_json::to_value(Config::default()).unwrap();
        edit(&mut c);
        set_meta("config", &c.to_string())
    };
    refused(
        &config(&|c| c["lr_mult"] = serde_json::json!({"w": "x"})),
        "config",
    );
    // An f16 parameter without a master copy under multi-precision, and the reverse.
    let mut half =
        Optimizer::new(Algorithm::from_name("adam").unwrap(), Config::default()).unwrap();
    half.update("h", &mut [f16::ONE], &[f16::ONE]).unwrap();
    let mut record = half.to_record().unwrap();
    let mut c: serde_json::Value = serde_json::from_str(&record.metadata["config"]).unwrap();
    c["multi_precision"] = true.into();
    record.metadata.insert("config".into(), c.to_string());
    refused(&record.to_bytes().unwrap(), "master copy is missing");
    let mixed = Config {
        multi_precision: true,
        ..Config::default()
    };
    let mut half = Optimizer::new(Algorithm::from_name("adam").unwrap(), mixed).unwrap();
    half.update("h", &mut [f16::ONE], &[f16::ONE]).unwrap();
    let mut record = half.to_record().unwrap();
    record.metadata.insert(
        "config".into(),
        serde_json::to_string(&Config::default()).unwrap(),
    );
    refused(&record.to_bytes().unwrap(), "master copy is present");
    refused(
        &config(&|c| c["wd"] = serde_json::json!(1e308 * 10.0)),
        "config",
    );
    refused(
        &set_meta("state", r#"{"lr":0.1,"num_update":1}"#),
        "m_schedule",
    );
    let progress = r#""lr":0.1,"num_update":1,"m_schedule":1,"last_lr":null,"cur_lr":null"#;
    refused(
        &set_meta(
            "state",
            &format!(r#"{{{progress},"generator":{{"seed":0,"count":0}},"x":2}}"#),
        ),
        "x",
    );
    refused(&set_meta("state", &format!("{{{progress}}}")), "generator");
}

#[test]
fn tampered_schedules_are_refused() {
    let with = |schedule: serde_json::Value| {
        let mut c = serde_json::to_value(Config::default()).unwrap();
        c["lr_scheduler"] = schedule;
        set_meta("config", &c.to_string())
    };
    let factor = serde_json::to_value(Factor::new(3).build().unwrap()).unwrap();
    let mut zero_step = factor.clone();
    zero_step["kind"]["step"] = 0.into();
    refused(&with(zero_step), "step must be at least 1");
    let mut warm = factor.clone();
    warm["warmup"]["begin_lr"] = 5.0.into();
    refused(&with(warm), "warmup_begin_lr");
    let poly = serde_json::to_value(Poly::new(5).build().unwrap()).unwrap();
    let mut steps = poly.clone();
    steps["kind"]["decay"]["max_steps"] = 0.into();
    refused(&with(steps), "max_steps");
    let multi = serde_json::to_value(MultiFactor::new(vec![2, 4]).build().unwrap()).unwrap();
    let mut ind = multi.clone();
    ind["kind"]["cur_step_ind"] = 7.into();
    refused(&with(ind), "cur_step_ind");
    let mut unsorted = multi.clone();
    unsorted["kind"]["steps"] = serde_json::json!([4, 2]);
    refused(&with(unsorted), "strictly increasing");
    let mut kind = multi;
    kind["kind"]["type"] = "exponential".into();
    refused(&with(kind), "exponential");
    // A valid schedule in the middle of its run is kept as it is.
    let mut moved = factor;
    moved["base_lr"] = 0.25.into();
    moved["kind"]["count"] = 6.into();
    let opt = Optimizer::from_bytes(&with(moved)).unwrap();
    let back = serde_json::to_value(opt.to_record().unwrap().metadata["config"].clone()).unwrap();
    assert!(back.as_str().unwrap().contains("\"count\":6"));
}

#[test]
fn records_are_checked_before_writing() {
    let param = |dtype, master: Option<Values>, states: Vec<Values>| {
        mxopt::optimizer::checkpoint::ParamRecord {
            count: 1,
            dtype,
            master: master.map(Tensor::flat),
            states: states.into_iter().map(Tensor::flat).collect(),
        }
    };
    let cases = [
        param(ParamType::F32, None, vec![Values::F64(vec![0.0])]),
        param(ParamType::F32, Some(Values::F32(vec![0.0])), vec![]),
        param(ParamType::F16, Some(Values::F16(vec![f16::ZERO])), vec![]),
    ];
    for p in cases {
        let record = Record {
            params: [("w".to_owned(), p)].into(),
            ..Record::default()
        };
        assert!(matches!(record.to_bytes(), Err(Error::Checkpoint(_))));
    }
    let mut bad_shape = param(ParamType::F32, None, vec![Values::F32(vec![0.0; 4])]);
    bad_shape.states[0].shape = vec![3];
    let record = Record {
        params: [("w".to_owned(), bad_shape)].into(),
        ..Record::default()
    };
    assert!(record.to_bytes().is_err());
    let reserved = Record {
        metadata: [("format".to_owned(), "x".to_owned())].into(),
        ..Record::default()
    };
    assert!(reserved.to_bytes().is_err());
}

#[test]
fn lengths_must_fit_the_algorithm() {
    let mut opt = Optimizer::new(Algorithm::from_name("adam").unwrap(), Config::default()).unwrap();
    opt.update("w", &mut [1.0_f32, 2.0], &[0.5, 0.5]).unwrap();
    let mut record = opt.to_record().unwrap();
    let param = record.params.get_mut("w").unwrap();
    param.states[1] = Tensor::flat(Values::F32(vec![0.0; 3]));
    // The container accepts it (GroupAdaGrad's states are shorter than the weight) ...
    let bytes = record.to_bytes().unwrap();
    // ... but not Adam.
    refused(&bytes, "tensors of 2 and 3 values");
}

#[test]
fn names_with_slashes_round_trip() {
    let mut opt = Optimizer::new(Algorithm::from_name("adam").unwrap(), Config::default()).unwrap();
    for name in ["net/0", "net", "net/0/1", "state/x", ""] {
        opt.update(name, &mut [1.0_f32, 2.0], &[0.5, 0.5]).unwrap();
    }
    let record = opt.to_record().unwrap();
    let back = Optimizer::from_bytes(&record.to_bytes().unwrap()).unwrap();
    assert!(back.to_record().unwrap() == record);
    assert_eq!(record.params.len(), 5);
}

/// The hyper-parameters the Python package writes (`python/mxopt/optimizer/_checkpoint.py`,
/// defaults of `create(name)`) read as the algorithms with their defaults.
#[test]
fn python_hyper_parameters_read_as_the_algorithms() {
    let cases = [
        r#"{"name": "lars", "eta": 0.001, "eps": 0, "momentum": 0.0, "rescale_grad": 1.0, "clip_gradient": null, "momentum_correction": true, "exact_norms": true}"#,
        r#"{"name": "lamb", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-06, "rescale_grad": 1.0, "clip_gradient": null, "bias_correction": true, "lower_bound": null, "upper_bound": null, "exact_norms": true, "update_master_copy": false}"#,
        r#"{"name": "lbsgd", "momentum": 0.0, "rescale_grad": 1.0, "clip_gradient": null, "warmup_strategy": "linear", "warmup_epochs": 5, "batch_scale": 1, "updates_per_epoch": 32, "begin_epoch": 0}"#,
        r#"{"name": "dcasgd", "lamda": 0.04, "rescale_grad": 1.0, "clip_gradient": null}"#,
        r#"{"name": "sgld", "rescale_grad": 1.0, "clip_gradient": null, "add_noise": true}"#,
        r#"{"name": "groupadagrad", "epsilon": 1e-05, "rescale_grad": 1.0, "clip_gradient": null}"#,
        r#"{"name": "test", "rescale_grad": 1.0}"#,
    ];
    for json in cases {
        let value: Algorithm = serde_json::from_str(json).unwrap();
        let mut object: serde_json::Value = serde_json::from_str(json).unwrap();
        let name = object["name"].as_str().unwrap().to_owned();
        assert_eq!(value, Algorithm::from_name(&name).unwrap(), "{json}");
        // Written back: the same fields.
        let back = serde_json::to_value(value).unwrap();
        let keys =
            |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&back), keys(&object), "{json}");
        // Every field is required: a file without one is refused.
        object.as_object_mut().unwrap().remove("rescale_grad");
        assert!(serde_json::from_value::<Algorithm>(object).is_err());
    }
    let strategies: Vec<WarmupStrategy> =
        serde_json::from_str(r#"["linear", "power2", "sqrt", "lars", "constant"]"#).unwrap();
    assert_eq!(strategies.len(), 5);
    assert!(serde_json::from_str::<WarmupStrategy>(r#""exponential""#).is_err());
}

/// LBSGD with momentum, accumulating 3 gradients per update: row-sparse gradients kept
/// row-sparse over the union of their rows, then a dense one.
fn lbsgd_rows() -> Optimizer {
    let lbsgd = Lbsgd {
        momentum: 0.5,
        batch_scale: 3,
        ..Lbsgd::default()
    };
    let config = Config {
        learning_rate: Some(0.1),
        ..Config::default()
    };
    Optimizer::new(Algorithm::Lbsgd(lbsgd), config).unwrap()
}

fn sparse_steps(opt: &mut Optimizer, w: &mut [f32], steps: std::ops::Range<usize>) {
    for step in steps {
        let g = grad(w.len(), step, |x| x as f32);
        if step % 4 == 3 {
            opt.update("emb_weight", w, &g).unwrap();
        } else {
            // Rows `step % 4` and 3 of 4 rows of 2.
            let r = step % 4;
            let values = [&g[2 * r..2 * r + 2], &g[6..8]].concat();
            opt.update_rows("emb_weight", w, 4, &[r as i64, 3], &values)
                .unwrap();
        }
    }
}

#[test]
fn row_sparse_accumulation_resumes_at_every_step() {
    for stop in 0..9 {
        let mut opt = lbsgd_rows();
        let mut w = vec![0.5_f32; 8];
        sparse_steps(&mut opt, &mut w, 0..stop);
        let bytes = opt.to_bytes().unwrap();
        let mut resumed = Optimizer::from_bytes(&bytes).unwrap();
        let mut w2 = w.clone();
        sparse_steps(&mut opt, &mut w, stop..12);
        sparse_steps(&mut resumed, &mut w2, stop..12);
        assert_eq!(w, w2, "saved after {stop} steps");
        assert!(opt.to_record().unwrap() == resumed.to_record().unwrap());
    }
    // Other optimizers with row-sparse gradients (sparse kernels and densified ones).
    for name in ["adam", "adagrad", "sgd", "groupadagrad", "ftml", "lars"] {
        let mut opt =
            Optimizer::new(Algorithm::from_name(name).unwrap(), Config::default()).unwrap();
        let mut w = vec![0.5_f32; 8];
        sparse_steps(&mut opt, &mut w, 0..2);
        let mut resumed = Optimizer::from_bytes(&opt.to_bytes().unwrap()).unwrap();
        let mut w2 = w.clone();
        sparse_steps(&mut opt, &mut w, 2..7);
        sparse_steps(&mut resumed, &mut w2, 2..7);
        assert_eq!(w, w2, "{name}");
    }
}

/// The LBSGD checkpoint of [`lbsgd_rows`] after 2 row-sparse gradients, with its
/// accumulation entry of `emb_weight` replaced.
fn with_accumulation(entry: serde_json::Value) -> Vec<u8> {
    let mut opt = lbsgd_rows();
    sparse_steps(&mut opt, &mut [0.5_f32; 8], 0..2);
    let mut record = opt.to_record().unwrap();
    let held: serde_json::Value = serde_json::from_str(&record.metadata["accumulation"]).unwrap();
    assert_eq!(
        held["emb_weight"],
        serde_json::json!({"count": 2, "held": "rows", "rows": 4, "indices": [0, 1, 3]})
    );
    let table = serde_json::json!({ "emb_weight": entry });
    record
        .metadata
        .insert("accumulation".into(), table.to_string());
    record.to_bytes().unwrap()
}

#[test]
fn tampered_accumulations_are_refused() {
    use serde_json::json;
    let rows = |count: u64, rows: u64, indices: serde_json::Value| json!({"count": count, "held": "rows", "rows": rows, "indices": indices});
    // The untampered entry loads.
    Optimizer::from_bytes(&with_accumulation(rows(2, 4, json!([0, 1, 3])))).unwrap();
    for (entry, needle) in [
        (rows(u64::MAX, 4, json!([0])), "too large"),
        (json!({"count": -1, "held": "zero"}), "accumulation"),
        (json!({"count": 1, "held": "zero"}), "exactly when"),
        (json!({"count": 3, "held": "dense"}), "exactly when"),
        (json!({"count": 1, "held": "sometimes"}), "accumulation"),
        (json!({"count": 1}), "accumulation"),
        (rows(2, 3, json!([0])), "do not divide"),
        (rows(2, 0, json!([])), "do not divide"),
        (rows(2, 4, json!([1, 0])), "held rows"),
        (rows(2, 4, json!([0, 4])), "held rows"),
        (rows(2, 4, json!([-1])), "held rows"),
        (rows(2, 4, json!(["x"])), "accumulation"),
    ] {
        refused(&with_accumulation(entry.clone()), needle);
    }
    // Entries for unknown parameters, or for an optimizer that does not accumulate.
    let bytes = small();
    let (mut header, data) = split(&bytes);
    header["__metadata__"]["accumulation"] = r#"{"other": {"count": 0, "held": "zero"}}"#.into();
    refused(&join(&header.to_string(), &data), "not a parameter");
    header["__metadata__"]["accumulation"] = r#"{"w": {"count": 0, "held": "zero"}}"#.into();
    refused(&join(&header.to_string(), &data), "only LBSGD");
    // A count before the starting epoch.
    let mut late = lbsgd_rows();
    if let Algorithm::Lbsgd(_) = late.algorithm() {
        let lbsgd = Lbsgd {
            begin_epoch: 2,
            updates_per_epoch: 3,
            ..Lbsgd::default()
        };
        late = Optimizer::new(Algorithm::Lbsgd(lbsgd), Config::default()).unwrap();
    }
    late.update("w", &mut [1.0_f32], &[0.5]).unwrap();
    let mut record = late.to_record().unwrap();
    record.metadata.insert(
        "accumulation".into(),
        r#"{"w": {"count": 6, "held": "zero"}}"#.into(),
    );
    refused(&record.to_bytes().unwrap(), "starting epoch");
}

#[test]
fn held_rows_of_another_row_count_are_an_error_at_the_update() {
    // 8 values held as 2 rows of 4: a gradient over 4 rows of 2 does not fit them.
    let bytes = with_accumulation(json_rows());
    let mut opt = Optimizer::from_bytes(&bytes).unwrap();
    let mut w = [0.5_f32; 8];
    let err = opt
        .update_rows("emb_weight", &mut w, 4, &[3], &[1.0, 1.0])
        .unwrap_err();
    assert!(matches!(err, Error::Length { .. }), "{err}");
    assert_eq!(w, [0.5; 8]);
}

fn json_rows() -> serde_json::Value {
    serde_json::json!({"count": 2, "held": "rows", "rows": 2, "indices": [1]})
}

#[test]
fn per_row_states_must_fit_the_master_copy() {
    let config = Config {
        multi_precision: true,
        ..Config::default()
    };
    let mut opt = Optimizer::new(Algorithm::from_name("groupadagrad").unwrap(), config).unwrap();
    let mut w = [f16::ONE; 8];
    let g = [f16::ONE; 8];
    opt.update_many(&mut [(
        "e",
        &mut w[..],
        Grad::Matrix {
            rows: 4,
            values: &g,
        },
    )])
    .unwrap();
    let record = opt.to_record().unwrap();
    assert_eq!(record.params["e"].states[0].values.len(), 4);
    Optimizer::from_bytes(&record.to_bytes().unwrap()).unwrap();
    for len in [3, 0, 16] {
        let mut bad = record.clone();
        bad.params.get_mut("e").unwrap().states[0] = Tensor::flat(Values::F32(vec![0.0; len]));
        refused(&bad.to_bytes().unwrap(), "row count");
    }
    // Without a master copy the weight is not in the file: the update refuses a state
    // that does not have its row count.
    let mut opt = Optimizer::new(
        Algorithm::from_name("groupadagrad").unwrap(),
        Config::default(),
    )
    .unwrap();
    let mut w = [1.0_f32; 8];
    opt.update_many(&mut [(
        "e",
        &mut w[..],
        Grad::Matrix {
            rows: 4,
            values: &[1.0; 8],
        },
    )])
    .unwrap();
    let mut bad = opt.to_record().unwrap();
    bad.params.get_mut("e").unwrap().states[0] = Tensor::flat(Values::F32(vec![0.0; 3]));
    let mut loaded = Optimizer::from_bytes(&bad.to_bytes().unwrap()).unwrap();
    let before = w;
    assert!(loaded.update("e", &mut w, &[1.0; 8]).is_err());
    assert_eq!(w, before);
}

#[test]
fn generator_and_lars_rates_are_restored_and_checked() {
    let lars = Algorithm::Lars {
        hyper: Lars {
            momentum: 0.9,
            ..Lars::default()
        },
        momentum_correction: true,
        exact_norms: true,
    };
    let config = Config {
        lr_scheduler: Some(
            Factor {
                factor: 0.5,
                ..Factor::new(1)
            }
            .build()
            .unwrap(),
        ),
        ..Config::default()
    };
    let mut opt = Optimizer::new(lars, config).unwrap();
    opt.set_generator(Generator::new(99));
    opt.update("w_weight", &mut [1.0_f32, 2.0], &[0.5, 0.5])
        .unwrap();
    opt.update("w_weight", &mut [1.0_f32, 2.0], &[0.5, 0.5])
        .unwrap();
    let record = opt.to_record().unwrap();
    let state: serde_json::Value = serde_json::from_str(&record.metadata["state"]).unwrap();
    assert_eq!(
        state["generator"],
        serde_json::json!({"seed": 99, "count": 0})
    );
    assert!(state["last_lr"].as_f64().unwrap() > state["cur_lr"].as_f64().unwrap());
    let loaded = Optimizer::from_record(&record).unwrap();
    assert_eq!(loaded.generator(), Generator::new(99));
    for (field, value, needle) in [
        (
            "generator",
            serde_json::json!({"seed": -1, "count": 0}),
            "state",
        ),
        ("generator", serde_json::json!({"seed": 1}), "count"),
        ("generator", serde_json::json!("x"), "state"),
        ("last_lr", serde_json::json!("nan"), "state"),
    ] {
        let mut s = state.clone();
        s[field] = value;
        let mut bad = record.clone();
        bad.metadata.insert("state".into(), s.to_string());
        refused(&bad.to_bytes().unwrap(), needle);
    }
}
