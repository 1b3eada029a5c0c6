//! Optimizer checkpoints: one [safetensors](https://huggingface.co/docs/safetensors) file
//! that holds no code, read by this crate and by the Python package alike.
//!
//! # Format (version 1)
//!
//! A safetensors file: an 8-byte little-endian header length, a JSON header, then the
//! tensors' little-endian bytes. Tensors, for each parameter `<name>`:
//!
//! * `state/<name>/<i>`, `i = 0, 1, ...`: the optimizer's state buffers in the kernel's
//!   order (momentum; Adam's mean then variance; ...; LBSGD's gradient accumulator last),
//!   in the parameter's dtype (`F16`, `F32`, `F64`), or `F32` next to a master copy;
//!   as long as the parameter, except GroupAdaGrad's (one value per row);
//! * `master/<name>`: the `F32` master copy of an `F16` parameter under multi-precision.
//!
//! Shapes are free (the Rust optimizer writes flat vectors, Python the weight's shape);
//! only the element counts matter. The header's `__metadata__` (string → string) holds:
//!
//! | key | value |
//! |---|---|
//! | `format` | `"mxopt-optimizer"` |
//! | `format_version` | `"1"` |
//! | `params` | JSON `{"<name>": {"count": u64, "dtype": "F16"\|"F32"\|"F64", "states": n, "master": bool}}`: update count, parameter dtype, number of state tensors, whether there is a master copy |
//! | `algorithm` | JSON of [`Algorithm`]: `{"name": "<MXNet name>", <hyper-parameters>}` (the fields of the hyper-parameter struct beside the variant's own: RMSProp's `"centered"`, LARS's `"momentum_correction"`, ...) |
//! | `config` | JSON of [`Config`]: `learning_rate`, `wd`, `multi_precision`, `begin_num_update`, `lr_scheduler` (its settings and position, or `null`), `lr_mult`, `wd_mult`, `decay_by_suffix`, `lazy_update` |
//! | `state` | JSON `{"lr": f64, "num_update": u64, "m_schedule": f64, "last_lr": f64\|null, "cur_lr": f64\|null, "generator": {"seed": u64, "count": u64}}`: the fixed learning rate, the largest update count, Nadam's momentum product, LARS's previous and current scheduler rates, SGLD's noise generator |
//! | `accumulation` | JSON `{"<name>": {"count": u64, "held": "zero"\|"dense"\|"rows"}}` (`"rows"` adds `"rows": n, "indices": [...]`): LBSGD's accumulated gradients per parameter (`{}` for the others); the accumulator holds something exactly when `count` is not a multiple of `batch_scale` |
//!
//! Other keys are kept for other readers (the Python package adds `python`) and ignored
//! here. Floats are JSON numbers that round-trip exactly. The version stays 1 through
//! the additions of `last_lr`, `cur_lr`, `generator` and `accumulation`, made before any
//! release: readers require them.
//!
//! Loading checks everything before building anything: the container (header length,
//! JSON, offsets, data length against dtype and shape — the safetensors crate's checks),
//! the format and version, the algorithm and its hyper-parameters, the schedule, that
//! every parameter has exactly its tensors, with consistent dtypes and lengths, and that
//! LBSGD's accumulations fit their counts and buffers. What the file cannot tell (the
//! weight's length and row count without a master copy) the next update checks.

use super::drivers::{Accumulation, Held};
use super::{Algorithm, Buffers, Config, Optimizer, ParamState, Start};
use crate::init::Generator;
use crate::{Error, Result};
use half::f16;
use safetensors::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The value of the `format` metadata key.
pub const FORMAT: &str = "mxopt-optimizer";
/// The value of the `format_version` metadata key this crate writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// Metadata keys the container layer owns; the others pass through [`Record::metadata`].
const RESERVED: [&str; 3] = ["format", "format_version", "params"];
/// NumPy's limit on dimensions is 64; no state needs more than a few.
const MAX_DIMS: usize = 32;

/// A tensor's elements, in one of the parameter types.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Half precision.
    F16(Vec<f16>),
    /// Single precision.
    F32(Vec<f32>),
    /// Double precision.
    F64(Vec<f64>),
}

impl Values {
    /// The number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Values::F16(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn dtype(&self) -> Dtype {
        match self {
            Values::F16(_) => Dtype::F16,
            Values::F32(_) => Dtype::F32,
            Values::F64(_) => Dtype::F64,
        }
    }

    fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Values::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    fn from_le_bytes(dtype: Dtype, bytes: &[u8], what: &str) -> Result<Values> {
        fn decode<const N: usize, T>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
            bytes
                .chunks_exact(N)
                .map(|c| f(c.try_into().unwrap_or([0; N])))
                .collect()
        }
        match dtype {
            Dtype::F16 => Ok(Values::F16(decode(bytes, f16::from_le_bytes))),
            Dtype::F32 => Ok(Values::F32(decode(bytes, f32::from_le_bytes))),
            Dtype::F64 => Ok(Values::F64(decode(bytes, f64::from_le_bytes))),
            other => bad(format!(
                "{what} has dtype {other:?}; expected F16, F32 or F64"
            )),
        }
    }
}

macro_rules! values_from {
    ($($T:ty => $V:ident),*) => {$(
        impl From<Vec<$T>> for Values {
            fn from(v: Vec<$T>) -> Values {
                Values::$V(v)
            }
        }
    )*};
}
values_from!(f16 => F16, f32 => F32, f64 => F64);

/// A tensor of a checkpoint: its shape (as written; a flat `[len]` from Rust) and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions; their product is the number of values.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub values: Values,
}

impl Tensor {
    /// A one-dimensional tensor.
    #[must_use]
    pub fn flat(values: Values) -> Tensor {
        Tensor {
            shape: vec![values.len()],
            values,
        }
    }
}

/// The container's view of a [`Tensor`] while it is written.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The element type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParamType {
    /// `half::f16`.
    F16,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

/// One parameter's entry: update count, element type, optional master copy, states.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamRecord {
    /// Updates so far (from `begin_num_update`).
    pub count: u64,
    /// The parameter's element type.
    pub dtype: ParamType,
    /// The `f32` master copy of an `f16` parameter under multi-precision.
    pub master: Option<Tensor>,
    /// State buffers in the kernel's order: the parameter's type, or `f32` beside a master
    /// copy.
    pub states: Vec<Tensor>,
}

/// The `params` metadata entry of one parameter.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamMeta {
    count: u64,
    dtype: ParamType,
    states: usize,
    master: bool,
}

/// A checkpoint as the container holds it, before any optimizer interprets it: what the
/// Python package reads and writes, and what [`Optimizer::to_bytes`] builds on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// Metadata entries other than `format`, `format_version` and `params` (for an
    /// optimizer: `algorithm`, `config`, `state`).
    pub metadata: BTreeMap<String, String>,
    /// Parameters by name.
    pub params: BTreeMap<String, ParamRecord>,
}

impl Record {
    /// The file's bytes.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when a parameter is inconsistent (state dtypes, a master copy
    /// on a non-`f16` parameter, a shape that does not match the values), or metadata
    /// uses a reserved key.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut metadata = self.metadata.clone();
        for key in RESERVED {
            if metadata.contains_key(key) {
                return bad(format!("metadata key {key:?} is reserved for the format"));
            }
        }
        let mut meta = BTreeMap::new();
        let mut tensors = Vec::new();
        for (name, param) in &self.params {
            param.check(name)?;
            meta.insert(
                name.as_str(),
                ParamMeta {
                    count: param.count,
                    dtype: param.dtype,
                    states: param.states.len(),
                    master: param.master.is_some(),
                },
            );
            let named = param.master.iter().map(|m| (master_name(name), m)).chain(
                param
                    .states
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (state_name(name, i), s)),
            );
            for (key, tensor) in named {
                tensors.push((
                    key,
                    Bytes {
                        dtype: tensor.values.dtype(),
                        shape: tensor.shape.clone(),
                        data: tensor.values.to_le_bytes(),
                    },
                ));
            }
        }
        metadata.insert("format".into(), FORMAT.into());
        metadata.insert("format_version".into(), FORMAT_VERSION.into());
        metadata.insert("params".into(), to_json(&meta)?);
        safetensors::serialize(
            tensors.iter().map(|(k, b)| (k.as_str(), b)),
            Some(metadata.into_iter().collect()),
        )
        .map_err(|e| Error::Checkpoint(format!("cannot serialize: {e}")))
    }

    /// Parses and checks a file's bytes.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] for anything but a well-formed version-1 checkpoint: a bad
    /// header length, a header that is not the expected JSON, tensor offsets out of range
    /// or overlapping, data lengths that do not match dtype and shape, another format or
    /// version, a missing or extra tensor, inconsistent dtypes.
    ///
    /// ```
    /// use mxopt::optimizer::checkpoint::Record;
    /// assert!(Record::from_bytes(b"\x08\0\0\0\0\0\0\0{}").is_err()); // truncated
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Record> {
        // The crate checks the header's length and JSON, that offsets tile the data
        // exactly, and that each tensor's bytes match its dtype and shape.
        let (header_len, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::Checkpoint(format!("not a valid safetensors file: {e}")))?;
        let data = bytes.get(8 + header_len..).unwrap_or_default();
        let infos = header.tensors();
        let mut metadata: BTreeMap<String, String> = header
            .metadata()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut take = |key: &str| {
            metadata
                .remove(key)
                .ok_or_else(|| Error::Checkpoint(format!("metadata has no {key:?} entry")))
        };
        let format = take("format")?;
        if format != FORMAT {
            return bad(format!("format is {format:?}, expected {FORMAT:?}"));
        }
        let version = take("format_version")?;
        if version != FORMAT_VERSION {
            return bad(format!(
                "format version {version:?} is not supported (this build reads {FORMAT_VERSION:?})"
            ));
        }
        let meta: BTreeMap<String, ParamMeta> = from_json("params", &take("params")?)?;
        let mut expected = std::collections::HashSet::new();
        let mut params = BTreeMap::new();
        for (name, m) in meta {
            let mut tensor = |key: String| -> Result<Tensor> {
                let info = infos
                    .get(&key)
                    .ok_or_else(|| Error::Checkpoint(format!("tensor {key:?} is missing")))?;
                let shape = info.shape.clone();
                if shape.len() > MAX_DIMS
                    || shape
                        .iter()
                        .try_fold(1_usize, |n, &d| n.checked_mul(d.max(1)))
                        .is_none_or(|n| n > isize::MAX as usize / 8)
                {
                    return bad(format!("tensor {key:?} has an unusable shape {shape:?}"));
                }
                let (start, end) = info.data_offsets;
                let raw = data.get(start..end).ok_or_else(|| {
                    Error::Checkpoint(format!("tensor {key:?} lies outside the data"))
                })?;
                let values = Values::from_le_bytes(info.dtype, raw, &key)?;
                expected.insert(key);
                Ok(Tensor { shape, values })
            };
            let master = if m.master {
                Some(tensor(master_name(&name))?)
            } else {
                None
            };
            // Bounded by the file: each state must be a tensor in it.
            if m.states > infos.len() {
                return bad(format!(
                    "parameter {name:?} declares {} states; the file holds {} tensors",
                    m.states,
                    infos.len()
                ));
            }
            let states = (0..m.states)
                .map(|i| tensor(state_name(&name, i)))
                .collect::<Result<Vec<_>>>()?;
            let param = ParamRecord {
                count: m.count,
                dtype: m.dtype,
                master,
                states,
            };
            param.check(&name)?;
            params.insert(name, param);
        }
        if infos.len() != expected.len() {
            let mut orphans: Vec<&String> = infos
                .keys()
                .filter(|key| !expected.contains(*key))
                .collect();
            orphans.sort();
            return bad(format!(
                "tensors {orphans:?} belong to no parameter of the params entry"
            ));
        }
        Ok(Record { metadata, params })
    }
}

impl ParamRecord {
    /// Dtypes agree: states in the parameter's type (`f32` beside a master copy, which
    /// only `f16` parameters have), and shapes match the values. Lengths are the
    /// optimizer's business (GroupAdaGrad keeps one value per row).
    fn check(&self, name: &str) -> Result<()> {
        let state_type = match (self.dtype, &self.master) {
            (ParamType::F16, Some(_)) | (ParamType::F32, None) => Dtype::F32,
            (_, Some(_)) => {
                return bad(format!(
                    "parameter {name:?} has a master copy but is not F16"
                ))
            }
            (ParamType::F16, None) => Dtype::F16,
            (ParamType::F64, None) => Dtype::F64,
        };
        let master = self
            .master
            .iter()
            .map(|m| (master_name(name), m, Dtype::F32));
        let states = self
            .states
            .iter()
            .enumerate()
            .map(|(i, s)| (state_name(name, i), s, state_type));
        for (key, tensor, dtype) in master.chain(states) {
            if tensor.values.dtype() != dtype {
                return bad(format!(
                    "tensor {key:?} has dtype {:?}, expected {dtype:?}",
                    tensor.values.dtype()
                ));
            }
            let n = tensor.values.len();
            if tensor
                .shape
                .iter()
                .try_fold(1_usize, |a, &d| a.checked_mul(d))
                != Some(n)
            {
                return bad(format!(
                    "tensor {key:?} has shape {:?} but {n} values",
                    tensor.shape
                ));
            }
        }
        Ok(())
    }
}

fn state_name(param: &str, i: usize) -> String {
    format!("state/{param}/{i}")
}

fn master_name(param: &str) -> String {
    format!("master/{param}")
}

fn bad<T>(why: String) -> Result<T> {
    Err(Error::Checkpoint(why))
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    // Through `Value`, whose maps are sorted: the same optimizer gives the same bytes.
    serde_json::to_value(value)
        .and_then(|v| serde_json::to_string(&v))
        .map_err(|e| Error::Checkpoint(format!("cannot encode metadata: {e}")))
}

fn from_json<'a, T: Deserialize<'a>>(key: &str, text: &'a str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Checkpoint(format!("metadata {key:?}: {e}")))
}

/// The optimizer-wide counters that are not configuration.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Progress {
    lr: f64,
    num_update: u64,
    m_schedule: f64,
    /// LARS's base learning rates of the previous and the current update call.
    last_lr: Option<f64>,
    cur_lr: Option<f64>,
    /// SGLD's noise source: its seed and the streams taken so far.
    generator: Generator,
}

/// The largest LBSGD accumulation count a checkpoint may hold (the count is incremented
/// by every update; MXNet's is a Python int, the warm-up maths `f64`).
const MAX_ACCUMULATION: u64 = i64::MAX as u64;

impl Optimizer {
    /// The checkpoint of this optimizer: configuration, schedule position, counts and
    /// every parameter's state (see [`checkpoint`](self) for the format).
    ///
    /// # Errors
    /// [`Error::Checkpoint`] if the metadata cannot be encoded (not expected).
    pub fn to_record(&self) -> Result<Record> {
        let progress = Progress {
            lr: self.lr,
            num_update: self.num_update,
            m_schedule: self.m_schedule,
            last_lr: self.last_lr,
            cur_lr: self.cur_lr,
            generator: self.generator,
        };
        // Only LBSGD accumulates: the other algorithms write an empty table.
        let accumulation: BTreeMap<&str, &Accumulation> = match self.algorithm {
            Algorithm::Lbsgd(_) => self
                .params
                .iter()
                .map(|(name, p)| (name.as_str(), &p.accumulation))
                .collect(),
            _ => BTreeMap::new(),
        };
        let metadata = BTreeMap::from([
            ("algorithm".to_owned(), to_json(&self.algorithm)?),
            ("config".to_owned(), to_json(&self.config)?),
            ("state".to_owned(), to_json(&progress)?),
            ("accumulation".to_owned(), to_json(&accumulation)?),
        ]);
        let params = self
            .params
            .iter()
            .map(|(name, p)| (name.clone(), p.to_record()))
            .collect();
        Ok(Record { metadata, params })
    }

    /// The optimizer a checkpoint holds.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when the algorithm is not one this build has, a setting is
    /// invalid, or a parameter's tensors do not fit the algorithm (number of states,
    /// lengths, multi-precision); the errors of [`Optimizer::new`] for bad
    /// hyper-parameters.
    pub fn from_record(record: &Record) -> Result<Optimizer> {
        let entry = |key: &str| {
            record
                .metadata
                .get(key)
                .ok_or_else(|| Error::Checkpoint(format!("metadata has no {key:?} entry")))
        };
        let algorithm: Algorithm = from_json("algorithm", entry("algorithm")?)?;
        let config: Config = from_json("config", entry("config")?)?;
        let progress: Progress = from_json("state", entry("state")?)?;
        let mut accumulation: BTreeMap<String, Accumulation> =
            from_json("accumulation", entry("accumulation")?)?;
        for (what, map) in [("lr_mult", &config.lr_mult), ("wd_mult", &config.wd_mult)] {
            if let Some((name, v)) = map.iter().find(|(_, v)| !v.is_finite()) {
                return bad(format!("{what}[{name:?}] = {v} is not finite"));
            }
        }
        let lrs = [("last_lr", progress.last_lr), ("cur_lr", progress.cur_lr)];
        let rates = [
            ("lr", Some(progress.lr)),
            ("m_schedule", Some(progress.m_schedule)),
        ];
        for (what, v) in rates.into_iter().chain(lrs) {
            if let Some(v) = v.filter(|v| !v.is_finite()) {
                return bad(format!("state {what} = {v} is not finite"));
            }
        }
        if let Some(name) = accumulation
            .keys()
            .find(|n| !record.params.contains_key(*n))
        {
            return bad(format!(
                "accumulation of {name:?}, which is not a parameter of the file"
            ));
        }
        // The constructor checks the hyper-parameters; the saved position then replaces
        // what it derives (it would reset the scheduler's base rate).
        let schedule = config.lr_scheduler.clone();
        let mut opt = Optimizer::new(algorithm, config)?;
        opt.config.lr_scheduler = schedule;
        opt.lr = progress.lr;
        opt.num_update = progress.num_update;
        opt.m_schedule = progress.m_schedule;
        opt.last_lr = progress.last_lr;
        opt.cur_lr = progress.cur_lr;
        opt.generator = progress.generator;
        let algorithm = opt.algorithm;
        let mp = opt.config.multi_precision;
        opt.params = record
            .params
            .iter()
            .map(|(name, p)| {
                let mut state = ParamState::from_record(name, p, &algorithm, mp)?;
                if let Some(acc) = accumulation.remove(name) {
                    check_accumulation(name, &acc, &algorithm, &state.buffers)?;
                    state.accumulation = acc;
                }
                Ok((name.clone(), state))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(opt)
    }

    /// The checkpoint's bytes (see [`checkpoint`](self) for the format).
    ///
    /// # Errors
    /// As [`Optimizer::to_record`].
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.to_record()?.to_bytes()
    }

    /// The optimizer a checkpoint's bytes hold.
    ///
    /// # Errors
    /// As [`Record::from_bytes`] and [`Optimizer::from_record`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Optimizer> {
        Optimizer::from_record(&Record::from_bytes(bytes)?)
    }

    /// Writes the checkpoint to `path`, through a temporary file beside it that is then
    /// renamed: a failed write leaves no partial checkpoint under `path`.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when the file cannot be written.
    ///
    /// ```
    /// use mxopt::optimizer::{Algorithm, Config, Optimizer};
    /// let mut opt = Optimizer::new(Algorithm::from_name("adam")?, Config::default())?;
    /// let (mut w, g) = (vec![1.0_f32; 4], vec![0.5_f32; 4]);
    /// opt.update("fc_weight", &mut w, &g)?;
    /// let path = std::env::temp_dir().join(format!("mxopt-doc-{}.safetensors", std::process::id()));
    /// opt.save(&path)?;
    /// let mut resumed = Optimizer::load(&path)?;
    /// # std::fs::remove_file(&path).ok();
    /// let mut w2 = w.clone();
    /// opt.update("fc_weight", &mut w, &g)?;
    /// resumed.update("fc_weight", &mut w2, &g)?;
    /// assert_eq!(w, w2);
    /// # Ok::<(), mxopt::Error>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomically(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads a checkpoint written by [`Optimizer::save`] or by the Python package's
    /// `Updater.save`.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when the file cannot be read, and as
    /// [`Optimizer::from_bytes`].
    pub fn load(path: impl AsRef<Path>) -> Result<Optimizer> {
        Optimizer::from_bytes(&read(path.as_ref())?)
    }
}

/// Writes `bytes` to `path` through `<path>.partial`, renamed once complete.
///
/// # Errors
/// [`Error::Checkpoint`] naming the path and the system's reason.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = Path::new(&partial);
    std::fs::write(partial, bytes)
        .and_then(|()| std::fs::rename(partial, path))
        .map_err(|e| {
            std::fs::remove_file(partial).ok();
            Error::Checkpoint(format!("cannot write {}: {e}", path.display()))
        })
}

/// The bytes of the file at `path`.
///
/// # Errors
/// [`Error::Checkpoint`] naming the path and the system's reason.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::Checkpoint(format!("cannot read {}: {e}", path.display())))
}

impl ParamState {
    fn to_record(&self) -> ParamRecord {
        fn flat<T: Clone>(states: &[Vec<T>], wrap: fn(Vec<T>) -> Values) -> Vec<Tensor> {
            states
                .iter()
                .map(|s| Tensor::flat(wrap(s.clone())))
                .collect()
        }
        let (dtype, master, states) = match &self.buffers {
            Buffers::F16(s) => (ParamType::F16, None, flat(s, Values::F16)),
            Buffers::F32(s) => (ParamType::F32, None, flat(s, Values::F32)),
            Buffers::F64(s) => (ParamType::F64, None, flat(s, Values::F64)),
            Buffers::Mixed { master, states } => (
                ParamType::F16,
                Some(Tensor::flat(Values::F32(master.clone()))),
                flat(states, Values::F32),
            ),
        };
        ParamRecord {
            count: self.count,
            dtype,
            master,
            states,
        }
    }

    /// A parameter's state from its (already self-consistent) record, for `algorithm`.
    fn from_record(
        name: &str,
        p: &ParamRecord,
        algorithm: &Algorithm,
        mp: bool,
    ) -> Result<ParamState> {
        let n = algorithm.num_states();
        if p.states.len() != n {
            return bad(format!(
                "parameter {name:?} has {} state tensors; the algorithm keeps {n}",
                p.states.len()
            ));
        }
        if p.master.is_some() != (mp && p.dtype == ParamType::F16) {
            return bad(format!(
                "parameter {name:?}: a master copy is {} with multi_precision = {mp} and dtype {:?}",
                if p.master.is_some() { "present" } else { "missing" },
                p.dtype
            ));
        }
        p.check(name)?;
        check_lengths(name, p, algorithm)?;
        let buffers = match (&p.master, p.dtype) {
            (Some(master), _) => Buffers::Mixed {
                master: typed(std::slice::from_ref(master), as_f32)?.remove(0),
                states: typed(&p.states, as_f32)?,
            },
            (None, ParamType::F16) => Buffers::F16(typed(&p.states, |v| match v {
                Values::F16(x) => Some(x),
                _ => None,
            })?),
            (None, ParamType::F32) => Buffers::F32(typed(&p.states, as_f32)?),
            (None, ParamType::F64) => Buffers::F64(typed(&p.states, |v| match v {
                Values::F64(x) => Some(x),
                _ => None,
            })?),
        };
        Ok(ParamState {
            count: p.count,
            buffers,
            accumulation: Accumulation::default(),
        })
    }
}

/// The state buffers all have one length: the parameter's (as its master copy's, if
/// any), or for per-row states (GroupAdaGrad) one value per row of the master copy.
/// Without a master copy, the next update checks them against the weight.
fn check_lengths(name: &str, p: &ParamRecord, algorithm: &Algorithm) -> Result<()> {
    let mut lens = p.states.iter().map(|t| t.values.len());
    let first = lens.next();
    if let (Some(first), Some(other)) = (first, lens.find(|&n| Some(n) != first)) {
        return bad(format!(
            "parameter {name:?} has state tensors of {first} and {other} values; they must \
             have one length"
        ));
    }
    let (Some(state), Some(master)) = (first, p.master.as_ref().map(|m| m.values.len())) else {
        return Ok(());
    };
    let per_row = matches!(algorithm.layout(Some(0))?.start, Start::RowZeros(_));
    if per_row {
        // `rows` rows of `master / rows` values: the states have the row count.
        let row_len = master.checked_div(state).unwrap_or(0);
        if state * row_len != master || (state == 0) != (master == 0) {
            return bad(format!(
                "parameter {name:?} has per-row states of {state} values, which is not a \
                 row count of its {master}-value master copy"
            ));
        }
    } else if state != master {
        return bad(format!(
            "parameter {name:?} has tensors of {master} and {state} values; its state and \
             master copy must have the parameter's length"
        ));
    }
    Ok(())
}

/// LBSGD's accumulation of a parameter: a count that can still grow and that is past
/// the starting epoch, an accumulator that holds something exactly when a batch is
/// part-way (it is reset by every weight update), and held rows that fit the buffer.
fn check_accumulation(
    name: &str,
    acc: &Accumulation,
    algorithm: &Algorithm,
    buffers: &Buffers,
) -> Result<()> {
    let Algorithm::Lbsgd(hyper) = algorithm else {
        return bad(format!(
            "accumulation of {name:?}: only LBSGD accumulates gradients, this is {}",
            algorithm.name()
        ));
    };
    let what = format!("accumulation of {name:?}");
    if acc.count > MAX_ACCUMULATION {
        return bad(format!("{what}: count {} is too large", acc.count));
    }
    if acc.count != 0 && acc.count <= hyper.init_updates() {
        return bad(format!(
            "{what}: count {} is not past the starting epoch's {} updates",
            acc.count,
            hyper.init_updates()
        ));
    }
    let part_way = acc.count % hyper.batch_scale != 0;
    if part_way != (acc.held != Held::Zero) {
        return bad(format!(
            "{what}: the accumulator must hold gradients exactly when the count ({}) is not \
             a multiple of batch_scale ({})",
            acc.count, hyper.batch_scale
        ));
    }
    if let Held::Rows { rows, indices } = &acc.held {
        // The accumulator is the last state buffer.
        let len = match buffers {
            Buffers::F16(s) => s.last().map(Vec::len),
            Buffers::F32(s) | Buffers::Mixed { states: s, .. } => s.last().map(Vec::len),
            Buffers::F64(s) => s.last().map(Vec::len),
        }
        .unwrap_or(0);
        let row_len = len.checked_div(*rows).unwrap_or(0);
        if rows * row_len != len {
            return bad(format!(
                "{what}: {rows} rows do not divide the accumulator's {len} values"
            ));
        }
        crate::engine::check_rows(indices, *rows)
            .map_err(|e| Error::Checkpoint(format!("{what}: held rows: {e}")))?;
    }
    Ok(())
}

/// The values of `tensors`, all of the type `pick` accepts (which [`ParamRecord::check`]
/// verified).
fn typed<T: Clone>(
    tensors: &[Tensor],
    pick: fn(&Values) -> Option<&Vec<T>>,
) -> Result<Vec<Vec<T>>> {
    tensors
        .iter()
        .map(|t| pick(&t.values).cloned().ok_or(Error::StateType))
        .collect()
}

fn as_f32(v: &Values) -> Option<&Vec<f32>> {
    match v {
        Values::F32(x) => Some(x),
        _ => None,
    }
}
