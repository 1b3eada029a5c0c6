//! The native half of `mxopt.gpu` (feature `wgpu`): a device, arrays resident on it, and
//! the optimizers' steps over lists of them, one dispatch per list.
//!
//! [`Context::step`] updates a list in one dispatch when each role of the list (weights,
//! gradients, master copies, each state) lies in one buffer in [`ParamSet::offsets`]'s
//! layout. A [`GpuArray`] is a handle to `(buffer, offset)`: the first step of a list
//! moves the members that are not laid out so into fresh buffers (a copy on the device)
//! and re-points their handles, so later steps of the same list copy nothing.

use super::arrays::{readonly, slice, Dtype as HostDtype};
use super::kernels::{hyper_from_kwargs, per_tensor, steps_of, AnyRule, Kernel};
use crate::gpu::{Context, Kernel as GpuKernel, ParamSet, Precision};
use crate::optim::lbsgd::{Lbsgd, Phase, WarmupStrategy};
use crate::optim::sgld::DeviceNoisySgld;
use crate::optim::{group_adagrad::GroupAdaGrad, lamb::Lamb, lars::Lars, test_opt::Test};
use crate::rule::Step;
use half::f16;
use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard};

/// Device failures are `RuntimeError`s; refused arguments stay `ValueError`s.
fn py_err(e: crate::Error) -> PyErr {
    match e {
        crate::Error::Gpu(what) => PyRuntimeError::new_err(what),
        other => other.into(),
    }
}

/// Element type of a device array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F32,
    F16,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
        }
    }

    /// Bytes from element `offset` on (an `f16` array starts on a 4-byte word).
    /// Saturating, like [`Dtype::bytes`]: [`alloc`] refuses lengths that would overflow.
    fn byte_offset(self, offset: usize) -> u64 {
        match self {
            Dtype::F32 => (offset as u64).saturating_mul(4),
            Dtype::F16 => (offset as u64).saturating_mul(2),
        }
    }

    /// Bytes of `len` elements in whole 4-byte words (the unit of buffer copies).
    fn bytes(self, len: usize) -> u64 {
        match self {
            Dtype::F32 => (len as u64).saturating_mul(4),
            Dtype::F16 => (len.div_ceil(2) as u64).saturating_mul(4),
        }
    }

    fn of(name: impl Display + Copy, obj: &Bound<'_, PyAny>) -> PyResult<Dtype> {
        match HostDtype::of(name, obj)? {
            HostDtype::F32 => Ok(Dtype::F32),
            HostDtype::F16 => Ok(Dtype::F16),
            HostDtype::F64 => Err(PyTypeError::new_err(format!(
                "{name}: the GPU path takes float32 or float16 arrays, got float64"
            ))),
        }
    }
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A zeroed buffer for `len` elements of `dtype`, within the device's limits.
fn alloc(ctx: &Context, dtype: Dtype, len: usize) -> PyResult<wgpu::Buffer> {
    let limits = ctx.device().limits();
    let largest = limits
        .max_buffer_size
        .min(limits.max_storage_buffer_binding_size);
    let bytes = dtype.bytes(len);
    if bytes > largest || u32::try_from(len).is_err() {
        return Err(PyValueError::new_err(format!(
            "{len} {} elements ({bytes} bytes) exceed the device's largest storage buffer \
             ({largest} bytes, at most 2**32 - 1 elements)",
            dtype.name()
        )));
    }
    ctx.storage("mxopt array", bytes, USAGE).map_err(py_err)
}

/// The dimensions of a `shape` argument: an int, or a sequence of non-negative ints.
fn shape_arg(shape: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let dims: Vec<i64> = match shape.extract::<i64>() {
        Ok(n) => vec![n],
        Err(_) => shape.extract().map_err(|_| {
            let got = shape
                .get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string());
            PyTypeError::new_err(format!(
                "shape: expected an int or a sequence of ints (each below 2**63), got {got}"
            ))
        })?,
    };
    dims.iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            PyValueError::new_err(format!(
                "shape: dimensions must be non-negative, got {dims:?}"
            ))
        })
}

/// A GPU (or a software Vulkan driver) with its queue and compiled pipelines.
#[pyclass(frozen, module = "mxopt._core")]
pub struct GpuDevice {
    ctx: Arc<Context>,
    info: wgpu::AdapterInfo,
}

impl GpuDevice {
    fn open() -> crate::Result<GpuDevice> {
        let ctx = Context::new()?;
        let info = ctx
            .adapter_info()
            .cloned()
            .ok_or_else(|| crate::Error::Gpu("the opened adapter is unknown".into()))?;
        // Every operation here runs in an error scope; an error outside one (a bug) is
        // reported rather than aborting the interpreter with wgpu's default panic.
        ctx.device()
            .on_uncaptured_error(Arc::new(|e| eprintln!("mxopt: uncaptured GPU error: {e}")));
        Ok(GpuDevice {
            ctx: Arc::new(ctx),
            info,
        })
    }

    fn new_array(slf: &Bound<'_, Self>, shape: Vec<usize>, dtype: Dtype) -> PyResult<GpuArray> {
        let this = slf.get();
        let len = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| PyValueError::new_err(format!("shape {shape:?} is too large")))?;
        let buffer = alloc(&this.ctx, dtype, len)?;
        Ok(GpuArray {
            ctx: this.ctx.clone(),
            device: slf.clone().unbind(),
            shape,
            len,
            dtype,
            slot: Mutex::new(Slot { buffer, offset: 0 }),
            set: Mutex::new(None),
        })
    }
}

#[pymethods]
impl GpuDevice {
    /// Opens the first Vulkan adapter (a GPU, or a software driver such as lavapipe).
    #[new]
    fn new(py: Python<'_>) -> PyResult<Self> {
        py.detach(GpuDevice::open).map_err(py_err)
    }

    /// The adapter's name.
    #[getter]
    fn name(&self) -> &str {
        &self.info.name
    }

    /// `"DiscreteGpu"`, `"IntegratedGpu"`, `"Cpu"` (a software driver), ...
    #[getter]
    fn device_type(&self) -> String {
        format!("{:?}", self.info.device_type)
    }

    /// The graphics API (`"Vulkan"`).
    #[getter]
    fn backend(&self) -> String {
        format!("{:?}", self.info.backend)
    }

    /// The driver's name and version.
    #[getter]
    fn driver(&self) -> String {
        format!("{} {}", self.info.driver, self.info.driver_info)
            .trim()
            .to_owned()
    }

    /// Uploads a float32 or float16 C-contiguous NumPy array.
    fn array(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<GpuArray> {
        let dtype = Dtype::of("data", data)?;
        let shape: Vec<usize> = data.getattr("shape")?.extract()?;
        let array = GpuDevice::new_array(slf, shape, dtype)?;
        let py = slf.py();
        array.write(py, "data", data)?;
        Ok(array)
    }

    /// A zero-filled array of `shape` (an int or a sequence of them, as NumPy takes) and
    /// `dtype` (float32 or float16).
    #[pyo3(signature = (shape, dtype = None))]
    fn zeros(
        slf: &Bound<'_, Self>,
        shape: &Bound<'_, PyAny>,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<GpuArray> {
        let shape = shape_arg(shape)?;
        let dtype = match dtype {
            None => Dtype::F32,
            Some(d) => {
                let np = d.py().import("numpy")?;
                let name: String = np
                    .getattr("dtype")?
                    .call1((d,))
                    .map_err(|e| PyTypeError::new_err(format!("dtype: {e}")))?
                    .getattr("name")?
                    .extract()?;
                match name.as_str() {
                    "float32" => Dtype::F32,
                    "float16" => Dtype::F16,
                    other => {
                        return Err(PyTypeError::new_err(format!(
                            "dtype: the GPU path takes float32 or float16, got {other}"
                        )))
                    }
                }
            }
        };
        GpuDevice::new_array(slf, shape, dtype)
    }

    /// Blocks (without the GIL) until every submitted update has run.
    fn synchronize(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.ctx.wait()).map_err(py_err)
    }

    fn __repr__(&self) -> String {
        format!(
            "Device(name={:?}, device_type={:?}, backend={:?})",
            self.info.name,
            self.device_type(),
            self.backend()
        )
    }
}

/// Locks `m`; a panic cannot happen while these locks are held (plain assignments and
/// takes only), so a poisoned lock still holds a consistent value.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where an array's elements live: a buffer and an element offset (even for `f16`).
#[derive(Clone)]
struct Slot {
    buffer: wgpu::Buffer,
    offset: usize,
}

/// A float32 or float16 array resident on a [`GpuDevice`].
#[pyclass(frozen, module = "mxopt._core")]
pub struct GpuArray {
    ctx: Arc<Context>,
    device: Py<GpuDevice>,
    shape: Vec<usize>,
    len: usize,
    dtype: Dtype,
    slot: Mutex<Slot>,
    /// The parameter set of the last list this array was the first weight of.
    set: Mutex<Option<CachedSet>>,
}

/// A list's parameter set, kept by its first weight: the next step over the same arrays
/// reuses the set's offset table and bind groups instead of building them again.
struct CachedSet {
    /// Each role's buffer, in [`Call::param_set`]'s order. With the set's precision and
    /// lengths (which fix every array's offset) they determine the set: arrays that are
    /// re-pointed or replaced end up in other buffers, so a stale set never matches.
    buffers: Vec<wgpu::Buffer>,
    set: ParamSet,
}

impl GpuArray {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        lock(&self.slot)
    }

    fn write(&self, py: Python<'_>, name: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let dtype = Dtype::of(name, data)?;
        if dtype != self.dtype {
            return Err(PyTypeError::new_err(format!(
                "{name}: expected dtype {} (the array's), got {}",
                self.dtype.name(),
                dtype.name()
            )));
        }
        let slot = self.slot().clone();
        let ctx = &self.ctx;
        match dtype {
            Dtype::F32 => {
                let a = readonly::<f32>(name, data)?;
                super::arrays::same_shape(name, &self.shape, a.shape())?;
                let data = slice(&a);
                py.detach(|| ctx.write_f32(&slot.buffer, slot.offset, data))
            }
            Dtype::F16 => {
                let a = readonly::<f16>(name, data)?;
                super::arrays::same_shape(name, &self.shape, a.shape())?;
                let data = slice(&a);
                py.detach(|| ctx.write_f16(&slot.buffer, slot.offset, data))
            }
        }
        .map_err(py_err)
    }
}

#[pymethods]
impl GpuArray {
    /// The shape.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.shape)
    }

    /// `numpy.dtype('float32')` or `numpy.dtype('float16')`.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> Bound<'py, numpy::PyArrayDescr> {
        match self.dtype {
            Dtype::F32 => numpy::dtype::<f32>(py),
            Dtype::F16 => numpy::dtype::<f16>(py),
        }
    }

    /// The device the array lives on.
    #[getter]
    fn device(&self, py: Python<'_>) -> Py<GpuDevice> {
        self.device.clone_ref(py)
    }

    /// The number of elements.
    #[getter]
    fn size(&self) -> usize {
        self.len
    }

    /// The number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Downloads the array into a new NumPy array (waiting, without the GIL, for the
    /// updates submitted before).
    fn asnumpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let slot = self.slot().clone();
        let (ctx, len, shape) = (&self.ctx, self.len, self.shape.clone());
        Ok(match self.dtype {
            Dtype::F32 => {
                let v = py
                    .detach(|| ctx.read_f32(&slot.buffer, slot.offset, len))
                    .map_err(py_err)?;
                PyArray1::from_vec(py, v).reshape(shape)?.into_any()
            }
            Dtype::F16 => {
                let v = py
                    .detach(|| ctx.read_f16(&slot.buffer, slot.offset, len))
                    .map_err(py_err)?;
                PyArray1::from_vec(py, v).reshape(shape)?.into_any()
            }
        })
    }

    /// Overwrites the array with `data` (a NumPy array of the same shape and dtype).
    fn copy_from(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.write(py, "data", data)
    }

    fn __repr__(&self) -> String {
        format!(
            "GpuArray(shape={:?}, dtype={})",
            self.shape,
            self.dtype.name()
        )
    }
}

/// The shape of each state array.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StateShape {
    /// The weight's.
    Weight,
    /// `(rows, 1)` of a 2-d weight: GroupAdaGrad's per-row history.
    Rows,
}

/// The arrays of one call, checked: types, device, dtypes, shapes, distinctness.
struct Call<'a, 'py> {
    device: &'a GpuDevice,
    weights: Vec<Bound<'py, GpuArray>>,
    grads: Vec<Bound<'py, GpuArray>>,
    states: Vec<Bound<'py, GpuArray>>,
    masters: Option<Vec<Bound<'py, GpuArray>>>,
    steps: Vec<Step>,
}

fn device_arrays<'py>(
    device: &GpuDevice,
    name: &'static str,
    objs: Vec<Bound<'py, PyAny>>,
) -> PyResult<Vec<Bound<'py, GpuArray>>> {
    objs.into_iter()
        .enumerate()
        .map(|(i, obj)| {
            let array = obj.cast_into::<GpuArray>().map_err(|e| {
                let got = e
                    .into_inner()
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string());
                PyTypeError::new_err(format!("{name}[{i}]: expected a GpuArray, got {got}"))
            })?;
            if !Arc::ptr_eq(&array.get().ctx, &device.ctx) {
                return Err(PyValueError::new_err(format!(
                    "{name}[{i}]: the array lives on another device"
                )));
            }
            Ok(array)
        })
        .collect()
}

fn expect(name: &str, i: usize, a: &GpuArray, dtype: Dtype, shape: &[usize]) -> PyResult<()> {
    if a.dtype != dtype {
        return Err(PyTypeError::new_err(format!(
            "{name}[{i}]: expected dtype {}, got {}",
            dtype.name(),
            a.dtype.name()
        )));
    }
    if a.shape != shape {
        return Err(PyValueError::new_err(format!(
            "{name}[{i}]: expected shape {shape:?}, got {:?}",
            a.shape
        )));
    }
    Ok(())
}

impl<'a, 'py> Call<'a, 'py> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        device: &'a GpuDevice,
        weights: Vec<Bound<'py, PyAny>>,
        grads: Vec<Bound<'py, PyAny>>,
        states: Vec<Bound<'py, PyAny>>,
        masters: Option<Vec<Bound<'py, PyAny>>>,
        steps: Vec<Step>,
        state_shape: StateShape,
    ) -> PyResult<Self> {
        let n = weights.len();
        let grads = per_tensor("grads", grads, n)?;
        let masters = masters.map(|m| per_tensor("masters", m, n)).transpose()?;
        let call = Call {
            device,
            weights: device_arrays(device, "weights", weights)?,
            grads: device_arrays(device, "grads", grads)?,
            states: device_arrays(device, "states", states)?,
            masters: masters
                .map(|m| device_arrays(device, "masters", m))
                .transpose()?,
            steps,
        };
        call.check(state_shape)?;
        Ok(call)
    }

    /// Checks that the call holds `per` states per weight (`layout` says which, for the
    /// message).
    fn expect_states(&self, per: usize, layout: &str) -> PyResult<()> {
        let n = self.weights.len();
        if self.states.len() == per * n {
            return Ok(());
        }
        Err(PyValueError::new_err(format!(
            "states: {layout}: {per} state array(s) per weight, expected {} for {n} weights, \
             got {}",
            per * n,
            self.states.len()
        )))
    }

    fn precision(&self) -> Precision {
        if self.masters.is_some() {
            Precision::F16Master
        } else {
            Precision::F32
        }
    }

    fn check(&self, state_shape: StateShape) -> PyResult<()> {
        let (weight_dtype, per_weight) = match &self.masters {
            None => (
                Dtype::F32,
                "float32 weights (float16 ones need master copies)",
            ),
            Some(_) => (Dtype::F16, "float16 weights (with float32 master copies)"),
        };
        for (i, w) in self.weights.iter().enumerate() {
            let w = w.get();
            if w.dtype != weight_dtype {
                return Err(PyTypeError::new_err(format!(
                    "weights[{i}]: this call takes {per_weight}, got {}",
                    w.dtype.name()
                )));
            }
            expect("grads", i, self.grads[i].get(), weight_dtype, &w.shape)?;
            if let Some(masters) = &self.masters {
                expect("masters", i, masters[i].get(), Dtype::F32, &w.shape)?;
            }
        }
        let n = self.weights.len();
        if (n == 0 && !self.states.is_empty()) || (n > 0 && !self.states.len().is_multiple_of(n)) {
            return Err(PyValueError::new_err(format!(
                "states: expected the same number of state arrays per weight ({n} weights), \
                 got {}",
                self.states.len()
            )));
        }
        let per = self.states.len().checked_div(n).unwrap_or(0);
        for (j, s) in self.states.iter().enumerate() {
            let weight = &self.weights[j / per].get().shape;
            let shape = match (state_shape, weight.as_slice()) {
                (StateShape::Weight, _) => weight.clone(),
                (StateShape::Rows, &[rows, _]) => vec![rows, 1],
                (StateShape::Rows, _) => {
                    return Err(PyValueError::new_err(format!(
                        "weights[{}]: a per-row state needs a 2-d weight, got shape {weight:?}",
                        j / per
                    )))
                }
            };
            expect("states", j, s.get(), Dtype::F32, &shape)?;
        }
        // Every array is read or written once per element: the same one twice would
        // bind one buffer to two roles (a data race on the device).
        let mut seen: HashMap<*mut pyo3::ffi::PyObject, String> = HashMap::new();
        let roles = [
            ("weights", &self.weights),
            ("grads", &self.grads),
            ("states", &self.states),
        ];
        let masters = self.masters.iter().map(|m| ("masters", m));
        for (name, list) in roles.into_iter().chain(masters) {
            for (i, a) in list.iter().enumerate() {
                let here = format!("{name}[{i}]");
                if let Some(before) = seen.insert(a.as_ptr(), here.clone()) {
                    return Err(PyValueError::new_err(format!(
                        "{here}: is the same array as {before}; every array of a call must \
                         be distinct"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs `update` (without the GIL) on the parameter set over the call's arrays,
    /// then keeps the set with the first weight for the next call over the same arrays.
    /// An empty list has nothing to run (once everything is checked).
    fn with_set(
        &self,
        py: Python<'_>,
        update: impl FnOnce(&Context, &mut ParamSet) -> crate::Result<()> + Send,
    ) -> PyResult<()> {
        if self.weights.is_empty() {
            return Ok(());
        }
        let (buffers, mut set) = self.param_set(py)?;
        let ctx = &self.device.ctx;
        let done = py.detach(|| update(ctx, &mut set)).map_err(py_err);
        if let Some(first) = self.weights.first() {
            *lock(&first.get().set) = Some(CachedSet { buffers, set });
        }
        done
    }

    /// The parameter set over the call's arrays (with each role's buffer), moving (on the
    /// device) those not laid out as one set into fresh buffers, with their handles
    /// re-pointed; the set kept by the first weight when it still matches.
    fn param_set(&self, py: Python<'_>) -> PyResult<(Vec<wgpu::Buffer>, ParamSet)> {
        let precision = self.precision();
        let lens: Vec<usize> = self.weights.iter().map(|w| w.get().len).collect();
        let (offsets, total) = ParamSet::offsets(precision, &lens);
        let n = self.weights.len();
        let per = self.states.len().checked_div(n).unwrap_or(0);
        let weight_dtype = match precision {
            Precision::F32 => Dtype::F32,
            Precision::F16Master => Dtype::F16,
        };
        let mut roles: Vec<(Vec<&GpuArray>, Dtype)> = vec![
            (self.weights.iter().map(Bound::get).collect(), weight_dtype),
            (self.grads.iter().map(Bound::get).collect(), weight_dtype),
        ];
        if let Some(m) = &self.masters {
            roles.push((m.iter().map(Bound::get).collect(), Dtype::F32));
        }
        for k in 0..per {
            let state_k = (0..n).map(|i| self.states[i * per + k].get()).collect();
            roles.push((state_k, Dtype::F32));
        }
        let ctx = &self.device.ctx;
        let mut buffers: Vec<wgpu::Buffer> = Vec::with_capacity(roles.len());
        let mut moves: Vec<(&GpuArray, Slot)> = Vec::new();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        for (arrays, dtype) in &roles {
            let slots: Vec<Slot> = arrays.iter().map(|a| a.slot().clone()).collect();
            let home = slots.first().map(|s| s.buffer.clone());
            let in_place = home.as_ref().is_some_and(|b| {
                b.size() >= dtype.bytes(total)
                    && !buffers.contains(b)
                    && slots
                        .iter()
                        .zip(&offsets)
                        .all(|(s, &at)| s.buffer == *b && s.offset == at)
            });
            if let (true, Some(buffer)) = (in_place, home) {
                buffers.push(buffer);
                continue;
            }
            let buffer = alloc(ctx, *dtype, total)?;
            for ((a, old), &at) in arrays.iter().zip(slots).zip(&offsets) {
                if a.len > 0 {
                    encoder.copy_buffer_to_buffer(
                        &old.buffer,
                        dtype.byte_offset(old.offset),
                        &buffer,
                        dtype.byte_offset(at),
                        dtype.bytes(a.len),
                    );
                }
                let to = Slot {
                    buffer: buffer.clone(),
                    offset: at,
                };
                moves.push((*a, to));
            }
            buffers.push(buffer);
        }
        if !moves.is_empty() {
            py.detach(|| {
                ctx.scoped(|| {
                    ctx.queue().submit([encoder.finish()]);
                })
            })
            .map_err(py_err)?;
            for (a, to) in moves {
                *a.slot() = to;
            }
        }
        let cached = self.weights.first().and_then(|w| lock(&w.get().set).take());
        if let Some(c) = cached {
            if c.buffers == buffers && c.set.precision() == precision && c.set.lens() == lens {
                return Ok((c.buffers, c.set));
            }
        }
        let roles = buffers.clone();
        let mut buffers = buffers.into_iter();
        let mut next = || {
            buffers
                .next()
                .ok_or_else(|| PyRuntimeError::new_err("internal: a role without a buffer"))
        };
        let weight = next()?;
        let grad = next()?;
        let master = match precision {
            Precision::F32 => None,
            Precision::F16Master => Some(next()?),
        };
        let states = (0..per).map(|_| next()).collect::<PyResult<Vec<_>>>()?;
        let set = ParamSet::from_buffers(precision, &lens, weight, grad, master, states)
            .map_err(py_err)?;
        Ok((roles, set))
    }

    /// Builds every tensor's rule (refusing bad scalars before anything moves), then
    /// runs them in one dispatch without the GIL.
    fn step<K, const N: usize>(
        &self,
        py: Python<'_>,
        at: impl Fn(Step) -> crate::Result<K>,
    ) -> PyResult<()>
    where
        K: GpuKernel<N> + Send + Sync,
    {
        self.step_each::<K, N>(py, |_, s| at(s))
    }

    /// [`Call::step`] with rules that also depend on the tensor's position in the list
    /// (SGLD's noise keys).
    fn step_each<K, const N: usize>(
        &self,
        py: Python<'_>,
        at: impl Fn(usize, Step) -> crate::Result<K>,
    ) -> PyResult<()>
    where
        K: GpuKernel<N> + Send + Sync,
    {
        self.expect_states(N, "this kernel keeps")?;
        let rules = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, &s)| at(i, s))
            .collect::<crate::Result<Vec<K>>>()?;
        self.with_set(py, |ctx, set| ctx.step(set, &rules))
    }
}

/// One step of `kernel` over lists of device arrays, in one dispatch (the GPU twin of
/// `step_many`): `states` is flat, the kernel's states of the first weight, then of the
/// second, ...; `masters` (float32) make the call multi-precision over float16 weights.
#[pyfunction]
#[pyo3(signature = (device, kernel, weights, grads, states, lrs, wds, ts, masters = None, schedules = None))]
#[allow(clippy::too_many_arguments)]
fn gpu_step(
    py: Python<'_>,
    device: &GpuDevice,
    kernel: &Kernel,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    lrs: Vec<f64>,
    wds: Vec<f64>,
    ts: Vec<i64>,
    masters: Option<Vec<Bound<'_, PyAny>>>,
    schedules: Option<Vec<f64>>,
) -> PyResult<()> {
    let steps = steps_of(weights.len(), lrs, wds, ts, schedules)?;
    let call = Call::new(
        device,
        weights,
        grads,
        states,
        masters,
        steps,
        StateShape::Weight,
    )?;
    // The kernels with a WGSL form (`crate::gpu::Kernel`), with their state counts.
    match kernel.rule {
        AnyRule::Sgd(h) => call.step::<_, 0>(py, |s| h.single_at::<f32>(s)),
        AnyRule::MultiSgd(h) => call.step::<_, 0>(py, |s| h.multi_at::<f32>(s)),
        AnyRule::SgdMom(h) => call.step::<_, 1>(py, |s| h.mom_at::<f32>(s)),
        AnyRule::MultiSgdMom(h) => call.step::<_, 1>(py, |s| h.multi_mom_at::<f32>(s)),
        AnyRule::NagMom(h) => call.step::<_, 1>(py, |s| h.at::<f32>(s)),
        AnyRule::Adam(h) => call.step::<_, 2>(py, |s| h.at::<f32>(s)),
        AnyRule::Adamax(h) => call.step::<_, 2>(py, |s| h.at::<f32>(s)),
        AnyRule::Nadam(h) => call.step::<_, 2>(py, |s| h.at::<f32>(s)),
        AnyRule::AdaGrad(h) => call.step::<_, 1>(py, |s| h.at::<f32>(s)),
        AnyRule::AdaDelta(h) => call.step::<_, 2>(py, |s| h.at::<f32>(s)),
        AnyRule::RmsProp(h) => call.step::<_, 1>(py, |s| h.at::<f32>(s)),
        AnyRule::RmsPropAlex(h) => call.step::<_, 3>(py, |s| h.centered_at::<f32>(s)),
        AnyRule::Ftml(h) => call.step::<_, 3>(py, |s| h.at::<f32>(s)),
        AnyRule::Ftrl(h) => call.step::<_, 2>(py, |s| h.at::<f32>(s)),
        AnyRule::Signum(h) => call.step::<_, 1>(py, |s| h.at::<f32>(s)),
        AnyRule::SignSgd(h) => call.step::<_, 0>(py, |s| h.sign_at::<f32>(s)),
        AnyRule::Dcasgd(h) => call.step::<_, 1>(py, |s| h.at::<f32>(s)),
        AnyRule::Sgld(h) => call.step::<_, 0>(py, |s| h.at::<f32>(s)),
        AnyRule::SgdStd(_)
        | AnyRule::AdamLazy(_)
        | AnyRule::AdamStd(_)
        | AnyRule::AdaGradRows(_) => Err(PyValueError::new_err(format!(
            "kernel: {:?} is a row-sparse kernel; the GPU path runs dense gradients only",
            kernel.rule
        ))),
    }
}

/// SGLD with its Langevin noise drawn on the device (the GPU twin of `step_noisy`): tensor
/// `i` receives `N(0, scales[i]²)` from the keystream `(seeds[i], streams[i])` through
/// Threefry on the device — deterministic in the key, but not the values `fill_normal`
/// draws on the host. `kernel` must be `sgld`, which keeps no state.
#[pyfunction]
#[pyo3(signature = (device, kernel, weights, grads, states, lrs, wds, ts, scales, seeds, streams, masters = None))]
#[allow(clippy::too_many_arguments)]
fn gpu_step_noisy(
    py: Python<'_>,
    device: &GpuDevice,
    kernel: &Kernel,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    lrs: Vec<f64>,
    wds: Vec<f64>,
    ts: Vec<i64>,
    scales: Vec<f64>,
    seeds: Vec<u64>,
    streams: Vec<u64>,
    masters: Option<Vec<Bound<'_, PyAny>>>,
) -> PyResult<()> {
    let AnyRule::Sgld(sgld) = kernel.rule else {
        return Err(PyValueError::new_err(format!(
            "kernel: only sgld draws its noise on the device, got {:?}",
            kernel.rule
        )));
    };
    let n = weights.len();
    let scales = per_tensor("scales", scales, n)?;
    let seeds = per_tensor("seeds", seeds, n)?;
    let streams = per_tensor("streams", streams, n)?;
    let steps = steps_of(n, lrs, wds, ts, None)?;
    let call = Call::new(
        device,
        weights,
        grads,
        states,
        masters,
        steps,
        StateShape::Weight,
    )?;
    call.step_each::<_, 0>(py, |i, s| {
        DeviceNoisySgld::new(sgld.at::<f32>(s)?, seeds[i], streams[i], scales[i])
    })
}

/// MXNet's `Test` optimizer over lists of device arrays: `w ← w + rescale_grad·g`, and the
/// one state per weight becomes the new weight (the new master copy with `masters`).
#[pyfunction]
#[pyo3(signature = (device, weights, grads, states, rescale_grad, masters = None))]
fn gpu_test(
    py: Python<'_>,
    device: &GpuDevice,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    rescale_grad: f64,
    masters: Option<Vec<Bound<'_, PyAny>>>,
) -> PyResult<()> {
    let rule = Test { rescale_grad }.at::<f32>()?;
    // Test takes no step: its rule reads neither learning rate nor count.
    let steps = vec![Step::new(0.0, 0.0, 1); weights.len()];
    let call = Call::new(
        device,
        weights,
        grads,
        states,
        masters,
        steps,
        StateShape::Weight,
    )?;
    call.step::<_, 1>(py, |_| Ok(rule))
}

/// LARS over lists of device arrays (norms, trust ratios and the SGD update in one
/// submission): one momentum state per weight, or none.
#[pyfunction]
#[pyo3(signature = (device, weights, grads, states, lrs, wds, ts, scaled, masters = None, **hyper))]
#[allow(clippy::too_many_arguments)]
fn gpu_lars(
    py: Python<'_>,
    device: &GpuDevice,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    lrs: Vec<f64>,
    wds: Vec<f64>,
    ts: Vec<i64>,
    scaled: Vec<bool>,
    masters: Option<Vec<Bound<'_, PyAny>>>,
    hyper: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let lars: Lars = hyper_from_kwargs("lars", hyper)?;
    let n = weights.len();
    let scaled = per_tensor("scaled", scaled, n)?;
    let steps = steps_of(n, lrs, wds, ts, None)?;
    let call = Call::new(
        device,
        weights,
        grads,
        states,
        masters,
        steps,
        StateShape::Weight,
    )?;
    if !call.states.is_empty() {
        call.expect_states(1, "LARS keeps its momentum (or no state)")?;
    }
    // Scalars the kernels refuse are refused before anything moves on the device.
    lars.trust()?;
    for &s in &call.steps {
        lars.update_mom_at::<f32>(s)?;
    }
    call.with_set(py, |ctx, set| {
        ctx.lars_step(set, &lars, &call.steps, &scaled)
    })
}

/// LAMB over lists of device arrays (both phases and the norms in one submission): two
/// states (mean, var) per weight. `write_master=False` keeps MXNet 1.6's multi-precision
/// behaviour (the master copy is not written).
#[pyfunction]
#[pyo3(signature = (device, weights, grads, states, lrs, wds, ts, masters = None, write_master = false, **hyper))]
#[allow(clippy::too_many_arguments)]
fn gpu_lamb(
    py: Python<'_>,
    device: &GpuDevice,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    lrs: Vec<f64>,
    wds: Vec<f64>,
    ts: Vec<i64>,
    masters: Option<Vec<Bound<'_, PyAny>>>,
    write_master: bool,
    hyper: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let lamb: Lamb = hyper_from_kwargs("lamb", hyper)?;
    let n = weights.len();
    let steps = steps_of(n, lrs, wds, ts, None)?;
    let call = Call::new(
        device,
        weights,
        grads,
        states,
        masters,
        steps,
        StateShape::Weight,
    )?;
    call.expect_states(2, "LAMB keeps (mean, var)")?;
    let mixed = call.masters.is_some();
    for &s in &call.steps {
        let direction = lamb.direction_at(s, mixed)?;
        lamb.step_at(s, direction, 1.0, 1.0)?;
    }
    call.with_set(py, |ctx, set| {
        ctx.lamb_step(set, &lamb, &call.steps, write_master)
    })
}

/// GroupAdaGrad over lists of 2-d device arrays (one row per thread, the CPU's Kahan
/// order): `states` holds each weight's `(rows, 1)` history; float16 weights take float32
/// `masters`, which the update runs on before rounding them into the weights.
#[pyfunction]
#[pyo3(signature = (device, weights, grads, states, lrs, epsilon, rescale_grad, clip_gradient = None, masters = None))]
#[allow(clippy::too_many_arguments)]
fn gpu_group_adagrad(
    py: Python<'_>,
    device: &GpuDevice,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    lrs: Vec<f64>,
    epsilon: f64,
    rescale_grad: f64,
    clip_gradient: Option<f64>,
    masters: Option<Vec<Bound<'_, PyAny>>>,
) -> PyResult<()> {
    let hyper = GroupAdaGrad {
        epsilon,
        rescale_grad,
        clip_gradient,
    };
    let n = weights.len();
    let steps: Vec<Step> = per_tensor("lrs", lrs, n)?
        .into_iter()
        .map(|lr| Step::new(lr, 0.0, 1))
        .collect();
    let call = Call::new(
        device,
        weights,
        grads,
        states,
        masters,
        steps,
        StateShape::Rows,
    )?;
    call.expect_states(1, "GroupAdaGrad keeps one history")?;
    for &s in &call.steps {
        hyper.dense_at::<f32>(s)?;
    }
    let rows: Vec<usize> = call.weights.iter().map(|w| w.get().shape[0]).collect();
    call.with_set(py, |ctx, set| {
        ctx.group_adagrad_step(set, &hyper, &call.steps, &rows)
    })
}

/// LBSGD over lists of device arrays, in one dispatch (the `lars` warm-up: norms and
/// update in one submission). Each weight's states are its momentum (when
/// `momentum != 0`), then its accumulator (when `batch_scale > 1`); `fresh[i]`,
/// `finishes[i]` and `multipliers[i]` place weight `i` in its accumulation.
#[pyfunction]
#[pyo3(signature = (
    device, weights, grads, states, lrs, wds, ts, fresh, finishes, multipliers,
    masters = None, *, momentum, rescale_grad, batch_scale, lars_warmup,
    clip_gradient = None,
))]
#[allow(clippy::too_many_arguments)]
fn gpu_lbsgd(
    py: Python<'_>,
    device: &GpuDevice,
    weights: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    states: Vec<Bound<'_, PyAny>>,
    lrs: Vec<f64>,
    wds: Vec<f64>,
    ts: Vec<i64>,
    fresh: Vec<bool>,
    finishes: Vec<bool>,
    multipliers: Vec<f64>,
    masters: Option<Vec<Bound<'_, PyAny>>>,
    momentum: f64,
    rescale_grad: f64,
    batch_scale: u64,
    lars_warmup: bool,
    clip_gradient: Option<f64>,
) -> PyResult<()> {
    let hyper = Lbsgd {
        momentum,
        rescale_grad,
        clip_gradient,
        batch_scale,
        // The other strategies' multipliers come from the caller.
        warmup_strategy: if lars_warmup {
            WarmupStrategy::Lars
        } else {
            WarmupStrategy::Constant
        },
        ..Lbsgd::default()
    };
    let n = weights.len();
    let fresh = per_tensor("fresh", fresh, n)?;
    let finishes = per_tensor("finishes", finishes, n)?;
    let multipliers = per_tensor("multipliers", multipliers, n)?;
    let steps = steps_of(n, lrs, wds, ts, None)?;
    let call = Call::new(
        device,
        weights,
        grads,
        states,
        masters,
        steps,
        StateShape::Weight,
    )?;
    let per = usize::from(momentum != 0.0) + usize::from(batch_scale > 1);
    call.expect_states(
        per,
        "LBSGD keeps a momentum when momentum != 0, then an accumulator when batch_scale > 1",
    )?;
    hyper.check()?;
    let phases: Vec<Phase> = (0..n)
        .map(|i| Phase {
            fresh: fresh[i],
            finishes: finishes[i],
            multiplier: multipliers[i],
        })
        .collect();
    // What the kernels refuse is refused before anything moves on the device.
    for (&step, &phase) in call.steps.iter().zip(&phases) {
        hyper.gpu_hyper(step, phase)?;
    }
    call.with_set(py, |ctx, set| {
        ctx.lbsgd_step(set, &hyper, &call.steps, &phases)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<GpuDevice>()?;
    m.add_class::<GpuArray>()?;
    m.add_function(wrap_pyfunction!(gpu_step, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_step_noisy, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_test, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_lars, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_lamb, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_group_adagrad, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_lbsgd, m)?)?;
    Ok(())
}
