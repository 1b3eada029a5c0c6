//! Optimizer checkpoints: round trips that continue bit-identically, and every kind of
//! damaged file refused with an error.

// The helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use mxopt::half::f16;
use mxopt::optim::{nadam::Nadam, rmsprop::RmsProp, sgd::Sgd, signum::Signum};
use mxopt::optimizer::checkpoint::{ParamType, Record, Tensor, Values};
use mxopt::optimizer::{Algorithm, Config, Optimizer, Param};
use mxopt::schedule::{Factor, MultiFactor, Poly, Warmup, WarmupMode};
use mxopt::Error;
use std::collections::HashMap;

fn algorithms() -> Vec<Algorithm> {
    let mut all: Vec<Algorithm> = [
        "sgd", "nag", "adam", "adagrad", "rmsprop", "adamax", "nadam", "adadelta", "ftml", "ftrl",
        "signum",
    ]
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
    all
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

/// Trains two parameters (one of them only every other step, so counts differ).
fn train<T: Param + Copy>(
    opt: &mut Optimizer,
    w: &mut [Vec<T>; 2],
    steps: std::ops::Range<usize>,
    of: impl Fn(f64) -> T + Copy,
) {
    for step in steps {
        let g = grad(w[0].len(), step, of);
        opt.update("a_bias", &mut w[0], &g).unwrap();
        if step % 2 == 0 {
            let g = grad(w[1].len(), step + 1, of);
            opt.update("b_weight", &mut w[1], &g).unwrap();
        }
    }
}

fn continues_identically<T: Param + Copy + PartialEq + std::fmt::Debug>(
    of: impl Fn(f64) -> T + Copy,
    multi_precision: bool,
) {
    for algorithm in algorithms() {
        let mut opt = Optimizer::new(algorithm, config(multi_precision)).unwrap();
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
        assert_eq!(resumed.update_count("b_weight"), Some(2 + 6));
        assert_eq!(resumed.num_update(), 2 + 12);
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
        let mut w = [vec![1.0_f32; 4], vec![2.0_f32; 3]];
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
    let mut w = [vec![1.0_f64; 4], vec![2.0_f64; 3]];
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
    refused(
        &set_meta("state", r#"{"lr":0.1,"num_update":1,"m_schedule":1,"x":2}"#),
        "x",
    );
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

/// The hyper-parameters the Python package writes for the optimizers the high-level
/// Rust API does not drive yet (`python/mxopt/optimizer/_checkpoint.py`, defaults of
/// `create(name)`) read as the kernel-level structs, with the same values: a driver
/// added for them loads Python's files.
#[test]
fn python_hyper_parameters_read_as_the_rust_structs() {
    use mxopt::optim::sgld::Sgld;
    use mxopt::optim::{dcasgd::Dcasgd, group_adagrad::GroupAdaGrad, lamb::Lamb, lars::Lars};
    fn read<T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(json: &str, expected: T) {
        let value: T = serde_json::from_str(json).unwrap();
        assert_eq!(value, expected, "{json}");
        // Every field is required: a file without one is refused.
        let mut object: serde_json::Value = serde_json::from_str(json).unwrap();
        object.as_object_mut().unwrap().remove("rescale_grad");
        assert!(serde_json::from_value::<T>(object).is_err());
    }
    read(
        r#"{"name": "lars", "eta": 0.001, "eps": 0, "momentum": 0.0, "rescale_grad": 1.0, "clip_gradient": null}"#,
        Lars::default(),
    );
    read(
        r#"{"name": "lamb", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-06, "rescale_grad": 1.0, "clip_gradient": null, "bias_correction": true, "lower_bound": null, "upper_bound": null}"#,
        Lamb::default(),
    );
    read(
        r#"{"name": "dcasgd", "lamda": 0.04, "rescale_grad": 1.0, "clip_gradient": null}"#,
        Dcasgd::default(),
    );
    read(
        r#"{"name": "sgld", "rescale_grad": 1.0, "clip_gradient": null}"#,
        Sgld::default(),
    );
    read(
        r#"{"name": "groupadagrad", "epsilon": 1e-05, "rescale_grad": 1.0, "clip_gradient": null}"#,
        GroupAdaGrad::default(),
    );
}
