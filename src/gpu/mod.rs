//! The GPU path (cargo feature `wgpu`): every optimizer of [`crate::optim`] as a WGSL
//! compute shader, run through [wgpu](https://wgpu.rs) on the device's own arrays.
//!
//! * [`Context`] — adapter, device and queue (found, or the application's own), with the
//!   compiled pipelines cached per (kernel, precision).
//! * [`ParamSet`] — a list of parameters resident on the device: weights, gradients,
//!   `f32` states and, for `f16` weights, `f32` master copies, each kind in one buffer
//!   (tensor `i` at [`ParamSet::offsets`]); from host slices or the application's buffers.
//! * [`Context::step`] — one dispatch updates every tensor of a set with the CPU rule of
//!   each ([`Kernel`]: the rule's constants are computed by the CPU constructor, so the
//!   scalars have the CPU's bits); [`Context::lars_step`], [`Context::lamb_step`] and
//!   [`Context::lbsgd_step`] (its `lars` warm-up) add the per-tensor norms (a fixed-order
//!   reduction) in the same command buffer.
//! * [`GpuOptimizer`] — the high-level [`crate::optimizer::Optimizer`]'s algorithms,
//!   config and step semantics, with the states on the device; SGLD's noise
//!   drawn on the device ([`NORMAL_WGSL`]); checkpoints through the CPU optimizer
//!   ([`GpuOptimizer::to_optimizer`], [`GpuOptimizer::from_optimizer`]).
//!
//! ```no_run
//! use mxopt::gpu::{Context, ParamSet, Precision};
//! use mxopt::{optim::adam::Adam, rule::Step};
//!
//! let ctx = Context::new()?; // Err names what is missing when there is no adapter
//! let mut set = ParamSet::new(&ctx, Precision::F32, &[1000, 10], 2)?;
//! set.write_weight_f32(&ctx, 0, &vec![1.0; 1000])?;
//! set.write_grad_f32(&ctx, 0, &vec![0.1; 1000])?;
//! // One rule per tensor, each with its own step (lr, wd, t after multipliers).
//! let rules = [Step::new(0.01, 0.0, 1), Step::new(0.02, 1e-4, 1)]
//!     .iter()
//!     .map(|&s| Adam::default().at::<f32>(s))
//!     .collect::<mxopt::Result<Vec<_>>>()?;
//! ctx.step(&mut set, &rules)?; // one dispatch for both tensors
//! let w = set.read_weight_f32(&ctx, 0)?;
//! # Ok::<(), mxopt::Error>(())
//! ```
//!
//! Numbers: every operation of a rule is the CPU's, in the same order and in `f32`. The
//! results match the CPU kernels within a few `f32` ulp, not bit for bit, because a
//! Vulkan driver may contract `a·b + c` into a fused multiply-add and need not round
//! `x/y` and `sqrt` correctly (Vulkan allows 2.5 ulp and 3 ulp); the norms of LARS/LAMB
//! are summed in `f32` in a fixed tree order (deterministic, not the CPU's order).

mod kernel;
mod layerwise;
mod lbsgd;
mod optimizer;
mod rows;

pub use kernel::{flag, Kernel, Precision, Source, CHUNK, ITEMS, NORMAL_WGSL, WORKGROUP};
pub use optimizer::GpuOptimizer;
/// The wgpu crate this module is built on (for [`Context::from_device`] and
/// [`ParamSet::from_buffers`]).
pub use wgpu;

use crate::{Error, Result};
use half::f16;
use kernel::{Variant, HEADER};
use std::collections::HashMap;
use std::sync::Mutex;

fn gpu_error(what: impl std::fmt::Display) -> Error {
    Error::Gpu(what.to_string())
}

/// A wgpu device and queue with the compiled update pipelines.
pub struct Context {
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// The adapter [`Context::new`] opened (unknown for an application's own device).
    adapter: Option<wgpu::AdapterInfo>,
    pipelines: Mutex<HashMap<Variant, wgpu::ComputePipeline>>,
    /// Pipelines of the fixed shaders (the norms' sums, the row walk), by name.
    fixed: Mutex<HashMap<&'static str, wgpu::ComputePipeline>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// Finds an adapter (a GPU, or a software driver such as Mesa's lavapipe) through
    /// Vulkan and opens a device with the adapter's own limits (large buffers).
    ///
    /// # Errors
    /// [`Error::Gpu`] naming what is missing when no Vulkan adapter exists (install a
    /// Vulkan driver, e.g. Debian's `mesa-vulkan-drivers`), or when the device cannot be
    /// opened.
    pub fn new() -> Result<Context> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = wgpu::Backends::VULKAN;
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| {
            gpu_error(format!(
                "no Vulkan adapter found ({e}); a GPU driver or Mesa's software driver \
                 (Debian package mesa-vulkan-drivers) is needed"
            ))
        })?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("mxopt"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| gpu_error(format!("cannot open the device: {e}")))?;
        Ok(Context {
            adapter: Some(adapter.get_info()),
            ..Context::from_device(device, queue)
        })
    }

    /// Runs on the application's own device and queue (a wgpu training loop, burn's wgpu
    /// backend), so that [`ParamSet::from_buffers`] can update its buffers in place.
    #[must_use]
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Context {
        Context {
            device,
            queue,
            adapter: None,
            pipelines: Mutex::new(HashMap::new()),
            fixed: Mutex::new(HashMap::new()),
        }
    }

    /// The device.
    #[must_use]
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue.
    #[must_use]
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter's name, type, backend and driver, when this context opened it
    /// ([`Context::new`]); `None` for a device passed to [`Context::from_device`].
    #[must_use]
    pub fn adapter_info(&self) -> Option<&wgpu::AdapterInfo> {
        self.adapter.as_ref()
    }

    /// Runs `f`, turning the device's validation and out-of-memory errors into
    /// [`Error::Gpu`] (wgpu's default is to panic on them).
    ///
    /// # Errors
    /// [`Error::Gpu`] with the device's message when `f` caused a validation or
    /// out-of-memory error.
    pub fn scoped<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let v = pollster::block_on(validation.pop());
        let m = pollster::block_on(memory.pop());
        match v.or(m) {
            Some(e) => Err(gpu_error(e)),
            None => Ok(value),
        }
    }

    fn compile(&self, label: &str, wgsl: &str) -> Result<wgpu::ComputePipeline> {
        self.scoped(|| {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(label),
                    source: wgpu::ShaderSource::Wgsl(wgsl.into()),
                });
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(label),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    cache: None,
                })
        })
    }

    fn pipeline(&self, variant: &Variant) -> Result<wgpu::ComputePipeline> {
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| gpu_error("pipeline cache poisoned"))?;
        if let Some(p) = cache.get(variant) {
            return Ok(p.clone());
        }
        let p = self.compile(variant.source.name, &kernel::shader(variant))?;
        cache.insert(*variant, p.clone());
        Ok(p)
    }

    fn fixed(&self, name: &'static str, wgsl: &str) -> Result<wgpu::ComputePipeline> {
        let mut cache = self
            .fixed
            .lock()
            .map_err(|_| gpu_error("pipeline cache poisoned"))?;
        if let Some(p) = cache.get(name) {
            return Ok(p.clone());
        }
        let p = self.compile(name, wgsl)?;
        cache.insert(name, p.clone());
        Ok(p)
    }

    /// A new buffer of at least `bytes` bytes (at least 16, a multiple of 4) for `usage`,
    /// zero-filled by wgpu.
    ///
    /// # Errors
    /// [`Error::Gpu`] when `bytes` exceed the device's largest storage buffer or the
    /// device is out of memory.
    pub fn storage(
        &self,
        label: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        let limits = self.device.limits();
        let largest = limits
            .max_buffer_size
            .min(limits.max_storage_buffer_binding_size);
        if bytes > largest {
            return Err(gpu_error(format!(
                "{label}: {bytes} bytes exceed the device's largest storage buffer \
                 ({largest} bytes)"
            )));
        }
        self.scoped(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(16).next_multiple_of(4),
                usage,
                mapped_at_creation: false,
            })
        })
    }

    fn words(&self, label: &str, words: &[u32]) -> Result<wgpu::Buffer> {
        let buffer = self.storage(
            label,
            (words.len() * 4) as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        )?;
        self.scoped(|| {
            self.queue
                .write_buffer(&buffer, 0, bytemuck::cast_slice(words));
        })?;
        Ok(buffer)
    }

    /// Copies `bytes` bytes of `buffer` from `offset` (both multiples of 4) to the host,
    /// waiting for the work submitted before.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the range lies outside `buffer`, or the device fails or is lost.
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.storage(
            "download",
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        self.scoped(|| {
            let mut encoder = self.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, bytes);
            self.queue.submit([encoder.finish()]);
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            // The receiver waits below; a send can fail only if it is gone.
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| gpu_error("the download was dropped"))?
            .map_err(gpu_error)?;
        let view = staging
            .slice(0..bytes)
            .get_mapped_range()
            .map_err(gpu_error)?;
        let data = view.to_vec();
        drop(view);
        staging.unmap();
        Ok(data)
    }

    /// Queues `data` for `buffer` from element `at` (`f32` elements: byte `4 * at`).
    ///
    /// # Errors
    /// [`Error::Gpu`] when the range lies outside `buffer`.
    pub fn write_f32(&self, buffer: &wgpu::Buffer, at: usize, data: &[f32]) -> Result<()> {
        if !data.is_empty() {
            self.scoped(|| {
                self.queue
                    .write_buffer(buffer, at as u64 * 4, bytemuck::cast_slice(data));
            })?;
        }
        Ok(())
    }

    /// Queues `data` for `buffer` from `f16` element `at` (even: halves are packed in
    /// pairs into 4-byte words; an odd length's last word is padded with a zero half).
    ///
    /// # Errors
    /// [`Error::Gpu`] when `at` is odd or the range lies outside `buffer`.
    pub fn write_f16(&self, buffer: &wgpu::Buffer, at: usize, data: &[f16]) -> Result<()> {
        if !at.is_multiple_of(2) {
            return Err(gpu_error(format!("f16 element {at} does not start a word")));
        }
        let words: Vec<u32> = data
            .chunks(2)
            .map(|p| {
                u32::from(p[0].to_bits()) | (u32::from(p.get(1).map_or(0, |x| x.to_bits())) << 16)
            })
            .collect();
        if !words.is_empty() {
            self.scoped(|| {
                self.queue
                    .write_buffer(buffer, at as u64 * 2, bytemuck::cast_slice(&words));
            })?;
        }
        Ok(())
    }

    /// Downloads `len` `f32` elements of `buffer` from element `at`.
    ///
    /// # Errors
    /// As [`Context::read_bytes`].
    pub fn read_f32(&self, buffer: &wgpu::Buffer, at: usize, len: usize) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(buffer, at as u64 * 4, len as u64 * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Downloads `len` `f16` elements of `buffer` from element `at` (even, as in
    /// [`Context::write_f16`]).
    ///
    /// # Errors
    /// [`Error::Gpu`] when `at` is odd; otherwise as [`Context::read_bytes`].
    pub fn read_f16(&self, buffer: &wgpu::Buffer, at: usize, len: usize) -> Result<Vec<f16>> {
        if !at.is_multiple_of(2) {
            return Err(gpu_error(format!("f16 element {at} does not start a word")));
        }
        let bytes = self.read_bytes(buffer, at as u64 * 2, len.div_ceil(2) as u64 * 4)?;
        let halves: Vec<u16> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(halves[..len].iter().map(|&b| f16::from_bits(b)).collect())
    }

    /// Blocks until the queue's work is done.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the device is lost or times out.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map(|_| ())
            .map_err(gpu_error)
    }

    /// Updates every tensor of `set` with its rule (`rules[i]` for tensor `i`, built by
    /// the CPU constructor for that tensor's step) in one dispatch.
    ///
    /// # Errors
    /// [`Error::Length`] when `rules` does not have one rule per tensor or the set does
    /// not hold `N` states; [`Error::Gpu`] when the device rejects the work.
    pub fn step<K: Kernel<N>, const N: usize>(
        &self,
        set: &mut ParamSet,
        rules: &[K],
    ) -> Result<()> {
        let hyper: Vec<Vec<f32>> = rules.iter().map(Kernel::hyper).collect();
        self.step_with(set, K::SOURCE, N, &hyper)
    }

    /// One dispatch of `source` over a set holding `states` states, with tensor `i`'s
    /// scalars `hyper[i]`.
    fn step_with(
        &self,
        set: &mut ParamSet,
        source: Source,
        states: usize,
        hyper: &[Vec<f32>],
    ) -> Result<()> {
        check("optimizer states", states, set.states.len())?;
        let pass = Pass::new(set, source, states, hyper, true)?;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, set, &pass)?;
        self.scoped(|| {
            self.queue.submit([encoder.finish()]);
        })
    }

    /// Records one pass (a reducing pass: and the sum of its partials into the set's
    /// norms). The set keeps each pass's table buffer and bind groups from the previous
    /// call, so a step only rewrites the scalars: no allocation per step.
    fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        set: &mut ParamSet,
        pass: &Pass,
    ) -> Result<()> {
        if pass.chunks == 0 {
            return Ok(());
        }
        let pipeline = self.pipeline(&pass.variant)?;
        let bytes = (pass.table.len() * 4) as u64;
        let reusable =
            matches!(set.bindings.get(&pass.variant), Some(b) if b.table.size() >= bytes);
        if !reusable {
            let bound = self.bind(set, pass, &pipeline)?;
            set.bindings.insert(pass.variant, bound);
        }
        let bound = set
            .bindings
            .get(&pass.variant)
            .ok_or_else(|| gpu_error("a pass lost its bindings"))?;
        if reusable {
            self.scoped(|| {
                self.queue
                    .write_buffer(&bound.table, 0, bytemuck::cast_slice(&pass.table));
            })?;
        }
        {
            let mut cpass = encoder.begin_compute_pass(&Default::default());
            cpass.set_pipeline(&pipeline);
            cpass.set_bind_group(0, &bound.bind, &[]);
            let (x, y) = grid(pass.chunks);
            cpass.dispatch_workgroups(x, y, 1);
        }
        if let Some(sum) = &bound.sum {
            let pipeline = self.fixed("sum_partials", kernel::SUM_PARTIALS)?;
            let mut cpass = encoder.begin_compute_pass(&Default::default());
            cpass.set_pipeline(&pipeline);
            cpass.set_bind_group(0, sum, &[]);
            cpass.dispatch_workgroups((pass.spans.len() / 2) as u32, 1, 1);
        }
        Ok(())
    }

    /// The buffers and bind groups of `pass` on `set` (and the set's norms buffer, the
    /// first time a layer-wise pass runs on it).
    fn bind(
        &self,
        set: &mut ParamSet,
        pass: &Pass,
        pipeline: &wgpu::ComputePipeline,
    ) -> Result<Bound> {
        let source = pass.variant.source;
        if (source.reduces || source.prepare.is_some()) && set.norms.is_none() {
            // One sum pair per tensor at most (empty tensors have none).
            let bytes = set.len() as u64 * 8;
            set.norms = Some(self.storage("norms", bytes, wgpu::BufferUsages::STORAGE)?);
        }
        let table = self.words("table", &pass.table)?;
        let partials = if source.reduces {
            let bytes = u64::from(pass.chunks) * 8;
            Some(self.storage("partials", bytes, wgpu::BufferUsages::STORAGE)?)
        } else {
            None
        };
        let mut entries = vec![entry(0, &table), entry(1, &set.weight), entry(2, &set.grad)];
        if let Some(master) = &set.master {
            entries.push(entry(3, master));
        }
        for (k, s) in set.states.iter().enumerate().take(pass.variant.states) {
            entries.push(entry(4 + k as u32, s));
        }
        if let Some(p) = &partials {
            entries.push(entry(8, p));
        }
        if let (Some(norms), Some(_)) = (&set.norms, source.prepare) {
            entries.push(entry(9, norms));
        }
        let bind = self.scoped(|| {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(source.name),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        })?;
        let sum = match (partials, &set.norms) {
            (Some(partials), Some(norms)) => {
                // The spans depend only on the set's lengths: written once.
                let spans = self.words("spans", &pass.spans)?;
                let pipeline = self.fixed("sum_partials", kernel::SUM_PARTIALS)?;
                Some(self.scoped(|| {
                    self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("sum_partials"),
                        layout: &pipeline.get_bind_group_layout(0),
                        entries: &[entry(0, &spans), entry(1, &partials), entry(2, norms)],
                    })
                })?)
            }
            _ => None,
        };
        Ok(Bound { table, bind, sum })
    }
}

/// A pass's table buffer and bind groups, kept by its set between calls (bind groups keep
/// the buffers they bind alive).
#[derive(Debug)]
struct Bound {
    table: wgpu::Buffer,
    bind: wgpu::BindGroup,
    /// A reducing pass's second stage: its partials summed into the set's norms.
    sum: Option<wgpu::BindGroup>,
}

fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// Workgroups per dimension: WebGPU's limit is 65535.
fn grid(chunks: u32) -> (u32, u32) {
    const MAX: u32 = 65535;
    (chunks.min(MAX), chunks.div_ceil(MAX))
}

/// One pass over a set: the pipeline variant and its table.
struct Pass {
    variant: Variant,
    /// `[tensors, chunks]`, then per non-empty tensor `[first chunk, len, weight offset,
    /// grad offset, state offset, 0, 0, 0, scalars...]`.
    table: Vec<u32>,
    chunks: u32,
    /// Per non-empty tensor `[first chunk, chunk count]` (the norms' reduction).
    spans: Vec<u32>,
}

impl Pass {
    fn new(
        set: &ParamSet,
        source: Source,
        states: usize,
        hyper: &[Vec<f32>],
        write_master: bool,
    ) -> Result<Pass> {
        check("rules", set.lens.len(), hyper.len())?;
        if states > set.states.len() {
            check("optimizer states", states, set.states.len())?;
        }
        let mut table = vec![0, 0];
        let mut spans = Vec::new();
        let mut entries: u32 = 0;
        let mut chunks: u32 = 0;
        for ((&len, &offset), h) in set.lens.iter().zip(&set.offsets).zip(hyper) {
            check("kernel scalars", source.fields.len(), h.len())?;
            if len == 0 {
                continue;
            }
            let units = match set.precision {
                Precision::F32 => len,
                Precision::F16Master => len.div_ceil(2),
            };
            let n = u32::try_from(units.div_ceil(CHUNK as usize)).map_err(|_| too_large())?;
            let (len, offset) = (
                u32::try_from(len).map_err(|_| too_large())?,
                u32::try_from(offset).map_err(|_| too_large())?,
            );
            table.extend_from_slice(&[chunks, len, offset, offset, offset, 0, 0, 0]);
            table.extend(h.iter().map(|x| x.to_bits()));
            spans.extend_from_slice(&[chunks, n]);
            entries += 1;
            chunks = chunks.checked_add(n).ok_or_else(too_large)?;
        }
        debug_assert!(table.len() == 2 + entries as usize * (HEADER + source.fields.len()));
        table[0] = entries;
        table[1] = chunks;
        Ok(Pass {
            variant: Variant {
                source,
                states,
                precision: set.precision,
                write_master,
            },
            table,
            chunks,
            spans,
        })
    }
}

fn too_large() -> Error {
    gpu_error("the parameter set is too large for 32-bit offsets")
}

fn check(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Length {
            what,
            expected,
            got,
        })
    }
}

/// A list of parameters on the device: weights, gradients, `f32` states and (for
/// [`Precision::F16Master`]) `f32` master copies, each kind in one buffer with tensor `i`
/// at element offset [`ParamSet::offsets`]`[i]` (even for `f16`, so each tensor's data
/// starts at a `u32` boundary; the odd tail half of a word is padding).
#[derive(Debug)]
pub struct ParamSet {
    precision: Precision,
    lens: Vec<usize>,
    offsets: Vec<usize>,
    total: usize,
    weight: wgpu::Buffer,
    grad: wgpu::Buffer,
    master: Option<wgpu::Buffer>,
    states: Vec<wgpu::Buffer>,
    /// Table buffer and bind groups of each pass run on this set.
    bindings: HashMap<Variant, Bound>,
    /// The per-tensor sums of squares of the layer-wise passes (made at the first).
    norms: Option<wgpu::Buffer>,
}

/// Usage flags of the set's buffers.
const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

impl ParamSet {
    /// Where each tensor of `lens` starts (in elements) in a set of this precision, and
    /// the elements the buffers span.
    #[must_use]
    pub fn offsets(precision: Precision, lens: &[usize]) -> (Vec<usize>, usize) {
        let align = match precision {
            Precision::F32 => 1,
            Precision::F16Master => 2,
        };
        let mut at: usize = 0;
        let offsets = lens
            .iter()
            .map(|&len| {
                let start = at;
                // Saturates: a set this large is refused by the callers' 32-bit check.
                at = at.saturating_add(len);
                at = at.saturating_add(at % align);
                start
            })
            .collect();
        (offsets, at)
    }

    fn bytes(precision: Precision, elements: usize) -> u64 {
        match precision {
            Precision::F32 => elements as u64 * 4,
            Precision::F16Master => elements.div_ceil(2) as u64 * 4,
        }
    }

    /// A set of tensors of lengths `lens` with `states` zeroed `f32` state buffers; the
    /// weights, gradients and master copies start at zero.
    ///
    /// # Errors
    /// [`Error::Gpu`] when a buffer exceeds the device's limits or cannot be allocated;
    /// [`Error::Length`] for more than 4 states.
    pub fn new(
        ctx: &Context,
        precision: Precision,
        lens: &[usize],
        states: usize,
    ) -> Result<ParamSet> {
        if states > 4 {
            return Err(Error::Length {
                what: "optimizer states",
                expected: 4,
                got: states,
            });
        }
        let (offsets, total) = ParamSet::offsets(precision, lens);
        u32::try_from(total).map_err(|_| too_large())?;
        let packed = ParamSet::bytes(precision, total);
        let full = total as u64 * 4;
        let master = match precision {
            Precision::F32 => None,
            Precision::F16Master => Some(ctx.storage("master", full, USAGE)?),
        };
        let states = (0..states)
            .map(|_| ctx.storage("state", full, USAGE))
            .collect::<Result<Vec<_>>>()?;
        Ok(ParamSet {
            precision,
            lens: lens.to_vec(),
            offsets,
            total,
            weight: ctx.storage("weight", packed, USAGE)?,
            grad: ctx.storage("grad", packed, USAGE)?,
            master,
            states,
            bindings: HashMap::new(),
            norms: None,
        })
    }

    /// A set over the application's buffers, laid out as [`ParamSet::offsets`] says:
    /// `weight` and `grad` hold `f32` (or packed `f16`) elements, `master` (required for
    /// `f16`, refused for `f32`) and each of `states` hold `f32` elements. Each buffer needs
    /// `STORAGE`, `COPY_SRC` and `COPY_DST` usage.
    ///
    /// # Errors
    /// [`Error::Gpu`] for a buffer too small, without the usages, or a master copy that is
    /// missing or superfluous.
    pub fn from_buffers(
        precision: Precision,
        lens: &[usize],
        weight: wgpu::Buffer,
        grad: wgpu::Buffer,
        master: Option<wgpu::Buffer>,
        states: Vec<wgpu::Buffer>,
    ) -> Result<ParamSet> {
        let (offsets, total) = ParamSet::offsets(precision, lens);
        u32::try_from(total).map_err(|_| too_large())?;
        let packed = ParamSet::bytes(precision, total);
        let full = total as u64 * 4;
        let fits = |what: &str, b: &wgpu::Buffer, need: u64| {
            if b.size() < need {
                Err(gpu_error(format!(
                    "{what}: buffer has {} bytes, needs {need}",
                    b.size()
                )))
            } else if !b.usage().contains(USAGE) {
                Err(gpu_error(format!(
                    "{what}: buffer needs STORAGE | COPY_SRC | COPY_DST usage"
                )))
            } else {
                Ok(())
            }
        };
        fits("weight", &weight, packed)?;
        fits("grad", &grad, packed)?;
        match (precision, &master) {
            (Precision::F32, None) => {}
            (Precision::F16Master, Some(m)) => fits("master", m, full)?,
            (Precision::F32, Some(_)) => {
                return Err(gpu_error("master: f32 weights have no master copy"))
            }
            (Precision::F16Master, None) => {
                return Err(gpu_error("master: f16 weights need an f32 master copy"))
            }
        }
        if states.len() > 4 {
            return Err(Error::Length {
                what: "optimizer states",
                expected: 4,
                got: states.len(),
            });
        }
        for s in &states {
            fits("state", s, full)?;
        }
        Ok(ParamSet {
            precision,
            lens: lens.to_vec(),
            offsets,
            total,
            weight,
            grad,
            master,
            states,
            bindings: HashMap::new(),
            norms: None,
        })
    }

    /// The number of tensors.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether the set has no tensor.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Each tensor's length.
    #[must_use]
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// The precision.
    #[must_use]
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The number of state buffers.
    #[must_use]
    pub fn num_states(&self) -> usize {
        self.states.len()
    }

    /// The weight buffer (for the application to read or write on the device).
    #[must_use]
    pub fn weight_buffer(&self) -> &wgpu::Buffer {
        &self.weight
    }

    /// The gradient buffer (the application's backward pass writes it on the device).
    #[must_use]
    pub fn grad_buffer(&self) -> &wgpu::Buffer {
        &self.grad
    }

    /// Element range of tensor `i`, checked against `len` and the precision.
    fn span(&self, i: usize, len: usize, precision: Option<Precision>) -> Result<usize> {
        let Some(&expected) = self.lens.get(i) else {
            return Err(Error::Length {
                what: "tensor index",
                expected: self.lens.len(),
                got: i,
            });
        };
        if let Some(p) = precision {
            if p != self.precision {
                return Err(gpu_error(format!(
                    "the set holds {:?} weights, not {p:?}",
                    self.precision
                )));
            }
        }
        check("host data", expected, len)?;
        Ok(self.offsets[i])
    }

    fn read_f32(&self, ctx: &Context, buffer: &wgpu::Buffer, i: usize) -> Result<Vec<f32>> {
        let at = self.span(i, self.lens.get(i).copied().unwrap_or(0), None)?;
        ctx.read_f32(buffer, at, self.lens[i])
    }

    fn read_f16(&self, ctx: &Context, buffer: &wgpu::Buffer, i: usize) -> Result<Vec<f16>> {
        let len = self.lens.get(i).copied().unwrap_or(0);
        let at = self.span(i, len, Some(Precision::F16Master))?;
        ctx.read_f16(buffer, at, len)
    }

    /// Uploads tensor `i`'s `f32` weight.
    ///
    /// # Errors
    /// [`Error::Length`] for a wrong length or index, [`Error::Gpu`] for an `f16` set.
    pub fn write_weight_f32(&mut self, ctx: &Context, i: usize, data: &[f32]) -> Result<()> {
        let at = self.span(i, data.len(), Some(Precision::F32))?;
        ctx.write_f32(&self.weight, at, data)
    }

    /// Uploads tensor `i`'s `f16` weight and sets its master copy to the same values (as
    /// the CPU optimizer does when it creates the state).
    ///
    /// # Errors
    /// [`Error::Length`] for a wrong length or index, [`Error::Gpu`] for an `f32` set.
    pub fn write_weight_f16(&mut self, ctx: &Context, i: usize, data: &[f16]) -> Result<()> {
        let at = self.span(i, data.len(), Some(Precision::F16Master))?;
        ctx.write_f16(&self.weight, at, data)?;
        let master: Vec<f32> = data.iter().map(|x| x.to_f32()).collect();
        match &self.master {
            Some(m) => ctx.write_f32(m, at, &master),
            None => Err(gpu_error("the set has no master copy")),
        }
    }

    /// Uploads tensor `i`'s `f16` weight and leaves its master copy as it is (resuming
    /// from a checkpoint whose master copy is already on the device).
    ///
    /// # Errors
    /// As [`ParamSet::write_weight_f16`].
    pub fn write_weight_f16_keeping_master(
        &mut self,
        ctx: &Context,
        i: usize,
        data: &[f16],
    ) -> Result<()> {
        let at = self.span(i, data.len(), Some(Precision::F16Master))?;
        ctx.write_f16(&self.weight, at, data)
    }

    /// Copies every weight (the master copies of an `f16` set) into state `k`: a state
    /// that starts as the weight (DCASGD's previous weight).
    pub(crate) fn copy_weight_into_state(&mut self, ctx: &Context, k: usize) -> Result<()> {
        let source = self.master.as_ref().unwrap_or(&self.weight);
        let state = self.states.get(k).ok_or(Error::Length {
            what: "state index",
            expected: self.states.len(),
            got: k,
        })?;
        let bytes = self.total as u64 * 4;
        if bytes == 0 {
            return Ok(());
        }
        ctx.scoped(|| {
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(source, 0, state, 0, bytes);
            ctx.queue.submit([encoder.finish()]);
        })
    }

    /// Uploads tensor `i`'s `f32` gradient.
    ///
    /// # Errors
    /// As [`ParamSet::write_weight_f32`].
    pub fn write_grad_f32(&mut self, ctx: &Context, i: usize, data: &[f32]) -> Result<()> {
        let at = self.span(i, data.len(), Some(Precision::F32))?;
        ctx.write_f32(&self.grad, at, data)
    }

    /// Uploads tensor `i`'s `f16` gradient.
    ///
    /// # Errors
    /// As [`ParamSet::write_weight_f16`].
    pub fn write_grad_f16(&mut self, ctx: &Context, i: usize, data: &[f16]) -> Result<()> {
        let at = self.span(i, data.len(), Some(Precision::F16Master))?;
        ctx.write_f16(&self.grad, at, data)
    }

    /// Uploads state `k` of tensor `i`.
    ///
    /// # Errors
    /// [`Error::Length`] for a wrong length, index or state number.
    pub fn write_state(&mut self, ctx: &Context, k: usize, i: usize, data: &[f32]) -> Result<()> {
        let at = self.span(i, data.len(), None)?;
        let buffer = self.states.get(k).ok_or(Error::Length {
            what: "state index",
            expected: self.states.len(),
            got: k,
        })?;
        ctx.write_f32(buffer, at, data)
    }

    /// Uploads tensor `i`'s master copy.
    ///
    /// # Errors
    /// [`Error::Length`] for a wrong length or index, [`Error::Gpu`] for an `f32` set.
    pub fn write_master(&mut self, ctx: &Context, i: usize, data: &[f32]) -> Result<()> {
        let at = self.span(i, data.len(), Some(Precision::F16Master))?;
        match &self.master {
            Some(m) => ctx.write_f32(m, at, data),
            None => Err(gpu_error("the set has no master copy")),
        }
    }

    /// Downloads tensor `i`'s `f32` weight.
    ///
    /// # Errors
    /// [`Error::Length`] for a wrong index, [`Error::Gpu`] for an `f16` set or a device
    /// error.
    pub fn read_weight_f32(&self, ctx: &Context, i: usize) -> Result<Vec<f32>> {
        self.span(
            i,
            self.lens.get(i).copied().unwrap_or(0),
            Some(Precision::F32),
        )?;
        self.read_f32(ctx, &self.weight, i)
    }

    /// Downloads tensor `i`'s `f16` weight.
    ///
    /// # Errors
    /// As [`ParamSet::read_weight_f32`], for an `f32` set.
    pub fn read_weight_f16(&self, ctx: &Context, i: usize) -> Result<Vec<f16>> {
        self.read_f16(ctx, &self.weight, i)
    }

    /// Downloads state `k` of tensor `i` (the layout of the CPU optimizer's state buffers,
    /// so checkpoints can go through the CPU format).
    ///
    /// # Errors
    /// [`Error::Length`] for a wrong index or state number, [`Error::Gpu`] for a device
    /// error.
    pub fn read_state(&self, ctx: &Context, k: usize, i: usize) -> Result<Vec<f32>> {
        let buffer = self.states.get(k).ok_or(Error::Length {
            what: "state index",
            expected: self.states.len(),
            got: k,
        })?;
        self.read_f32(ctx, buffer, i)
    }

    /// Downloads tensor `i`'s master copy.
    ///
    /// # Errors
    /// As [`ParamSet::read_weight_f16`].
    pub fn read_master(&self, ctx: &Context, i: usize) -> Result<Vec<f32>> {
        self.span(
            i,
            self.lens.get(i).copied().unwrap_or(0),
            Some(Precision::F16Master),
        )?;
        match &self.master {
            Some(m) => self.read_f32(ctx, m, i),
            None => Err(gpu_error("the set has no master copy")),
        }
    }

    /// Elements the buffers span (padding included).
    #[must_use]
    pub fn total(&self) -> usize {
        self.total
    }
}
