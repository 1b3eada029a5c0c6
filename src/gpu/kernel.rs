//! The contract between an optimizer's per-element maths in WGSL and the one loop that
//! walks device arrays: the GPU twin of [`crate::rule::Rule`].
//!
//! A kernel is the CPU rule's own constants — computed by the same constructor
//! (`Adam::at::<f32>`, ...), so every host-side scalar (bias corrections, `lr·wd`, `1 − β`)
//! has the CPU's bits — plus a WGSL function that mirrors the CPU rule's `apply`, operation
//! for operation. The constants travel per tensor in the dispatch's table, so one dispatch
//! updates a list whose tensors have different learning rates, weight decays and counts.

/// The WGSL side of a kernel: the names of its scalars and its per-element function.
///
/// `rule` defines `fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32`,
/// reading the scalars as `h.<field>` (`NS` is the state count, at least 1), updating the
/// states in place and returning the new weight. It may use the helpers of the prelude
/// (the shader prelude: `kclip`, `clip_if`, `sgn`, `maximum`) and set `sq` (the squares a
/// reducing pass sums). `prepare`, when present, is a WGSL statement list run once per
/// tensor after the scalars are loaded; it may read `norms[tensor]` (the sums of squares
/// of an earlier reducing pass) and rewrite `h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    /// A name unique among kernels (the pipeline cache's key).
    pub name: &'static str,
    /// The scalar fields, in the order of [`Kernel::hyper`].
    pub fields: &'static [&'static str],
    /// WGSL pieces, concatenated (kernels that share helper functions list them first).
    pub rule: &'static [&'static str],
    /// Statements run once per tensor before its elements (see above).
    pub prepare: Option<&'static str>,
    /// Whether the pass sums `sq` (per tensor, deterministically) instead of only updating.
    pub reduces: bool,
    /// Whether the weight (and master copy) is written; a pure reducing pass leaves it.
    pub writes_weight: bool,
}

impl Source {
    /// The common kind of pass, to complete with `..Source::ELEMENTWISE`: an update of
    /// each element on its own (no per-tensor preparation, no reduction).
    pub const ELEMENTWISE: Source = Source {
        name: "",
        fields: &[],
        rule: &[],
        prepare: None,
        reduces: false,
        writes_weight: true,
    };
}

/// A per-tensor, per-step rule runnable on the GPU, with `N` `f32` state buffers.
pub trait Kernel<const N: usize> {
    /// The WGSL side.
    const SOURCE: Source;
    /// This tensor's scalars, in the order of [`Source::fields`].
    fn hyper(&self) -> Vec<f32>;
}

/// `1.0` when a bound is present (then its value), `0.0` otherwise: how an optional clip
/// reaches WGSL.
#[must_use]
pub fn flag(bound: Option<f32>) -> [f32; 2] {
    match bound {
        Some(c) => [1.0, c],
        None => [0.0, 0.0],
    }
}

/// Threads per workgroup.
pub const WORKGROUP: u32 = 256;
/// Units (elements, or `f16` pairs) each thread handles per chunk.
pub const ITEMS: u32 = 4;
/// Units per chunk: one workgroup updates one chunk of one tensor.
pub const CHUNK: u32 = WORKGROUP * ITEMS;
/// Words of a tensor's entry in the table before its scalars.
pub const HEADER: usize = 8;

/// How weights and gradients are stored on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// `f32` weights, gradients and states.
    F32,
    /// `f16` weights and gradients packed two per `u32`, an `f32` master copy and `f32`
    /// states; the rule runs on the master copy.
    F16Master,
}

/// What a pipeline is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Variant {
    pub source: Source,
    pub states: usize,
    pub precision: Precision,
    /// `false`: the `f16` weight receives the result but the master copy is left as it
    /// was (MXNet 1.6's `mp_lamb_update_phase2`).
    pub write_master: bool,
}

/// Helpers every kernel may call. Clips mirror `crate::real::kclip`/`pyclip` (both test
/// `x > c` first), `sgn` and `maximum` mirror `Elem::sgn`/`Elem::max` including their NaN
/// behaviour (WGSL's own `sign`/`max` leave NaN unspecified).
pub(crate) const PRELUDE: &str = r"
fn kclip(x: f32, c: f32) -> f32 {
    if (x > c) { return c; }
    if (x < -c) { return -c; }
    return x;
}
fn clip_if(x: f32, on: f32, c: f32) -> f32 {
    if (on != 0.0) { return kclip(x, c); }
    return x;
}
fn sgn(x: f32) -> f32 {
    if (x > 0.0) { return 1.0; }
    if (x < 0.0) { return -1.0; }
    return 0.0;
}
fn maximum(a: f32, b: f32) -> f32 {
    if (a > b) { return a; }
    return b;
}
";

/// A standard normal per (key, element index), for noise drawn on the device:
/// Threefry-4×32-20 (Salmon et al., *Parallel random numbers: as easy as 1, 2, 3*, 2011;
/// only 32-bit adds, rotations and xors, so it runs where WGSL has no 64-bit integers) of
/// the counter `(index, 0, 0, 0)` under the 128-bit key, then Box–Muller in `f32` on the
/// first two words (24 bits each; `u1` in `(0, 1]`, so the logarithm is finite).
/// `join16` rebuilds a key word from the two exact 16-bit halves a table carries.
pub const NORMAL_WGSL: &str = r"
const ROT_A = array<u32, 8>(10u, 11u, 13u, 23u, 6u, 17u, 25u, 18u);
const ROT_B = array<u32, 8>(26u, 21u, 27u, 5u, 20u, 11u, 10u, 20u);
fn join16(lo: f32, hi: f32) -> u32 {
    return u32(lo) | (u32(hi) << 16u);
}
fn rotl(x: u32, r: u32) -> u32 {
    return (x << r) | (x >> (32u - r));
}
fn threefry(key: vec4<u32>, counter: vec4<u32>) -> vec4<u32> {
    var ks = array<u32, 5>(key.x, key.y, key.z, key.w,
                           0x1BD11BDAu ^ key.x ^ key.y ^ key.z ^ key.w);
    var x = counter + key;
    for (var r = 0u; r < 20u; r++) {
        let a = ROT_A[r % 8u];
        let b = ROT_B[r % 8u];
        if (r % 2u == 0u) {
            x.x += x.y; x.y = rotl(x.y, a) ^ x.x;
            x.z += x.w; x.w = rotl(x.w, b) ^ x.z;
        } else {
            x.x += x.w; x.w = rotl(x.w, a) ^ x.x;
            x.z += x.y; x.y = rotl(x.y, b) ^ x.z;
        }
        if (r % 4u == 3u) {
            let s = (r + 1u) / 4u;
            x += vec4<u32>(ks[s % 5u], ks[(s + 1u) % 5u], ks[(s + 2u) % 5u], ks[(s + 3u) % 5u] + s);
        }
    }
    return x;
}
fn normal(key: vec4<u32>, index: u32) -> f32 {
    let bits = threefry(key, vec4<u32>(index, 0u, 0u, 0u));
    let u1 = (f32(bits.x >> 8u) + 1.0) * 5.9604645e-8;
    let u2 = f32(bits.y >> 8u) * 5.9604645e-8;
    return sqrt(-2.0 * log(u1)) * cos(6.2831855 * u2);
}
";

/// The loop, written once: chunk → tensor (binary search of the table), the tensor's
/// scalars into `h`, then `ITEMS` coalesced units per thread. `LOAD_STORE` is the
/// precision's unit update, `REDUCE` the optional workgroup reduction.
const MAIN: &str = r"
fn tensor_of(chunk: u32) -> u32 {
    var lo = 0u;
    var hi = table[0] - 1u;
    while (lo < hi) {
        let mid = (lo + hi + 1u) / 2u;
        if (table[2u + mid * STRIDE] <= chunk) { lo = mid; } else { hi = mid - 1u; }
    }
    return lo;
}

@compute @workgroup_size(WORKGROUP)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let chunk = wid.x + wid.y * groups.x;
    if (chunk >= table[1]) { return; }
    let tensor = tensor_of(chunk);
    let e = 2u + tensor * STRIDE;
    let len = table[e + 1u];
    let w_off = table[e + 2u];
    let g_off = table[e + 3u];
    let s_off = table[e + 4u];
    h = LOAD_HYPER;
    PREPARE
    let base = (chunk - table[e]) * WORKGROUP * ITEMS;
    var acc = vec2<f32>(0.0, 0.0);
    for (var k = 0u; k < ITEMS; k++) {
        let u = base + k * WORKGROUP + lid;
        UNIT
    }
    REDUCE
}
";

/// One `f32` element `u`.
const UNIT_F32: &str = r"
        if (u < len) {
            var s: array<f32, NS>;
            LOAD_STATES
            let w = weight[w_off + u];
            w_stored = w;
            elem = u;
            let w_new = rule(w, grad[g_off + u], &s);
            WRITE_WEIGHT
            STORE_STATES
            acc += sq;
        }
";

/// One `f16` pair `u` (elements `2u`, `2u + 1`); the second half of a tensor's last word
/// is written back untouched when the length is odd.
const UNIT_F16: &str = r"
        if (2u * u < len) {
            let ww = weight[w_off / 2u + u];
            let gg = unpack2x16float(grad[g_off / 2u + u]);
            let wf = unpack2x16float(ww);
            elem = 2u * u;
            let lo = lane(s_off + 2u * u, wf.x, gg.x);
            acc += sq;
            var word: u32;
            if (2u * u + 1u < len) {
                elem = 2u * u + 1u;
                let hi = lane(s_off + 2u * u + 1u, wf.y, gg.y);
                acc += sq;
                word = pack2x16float(vec2<f32>(lo, hi));
            } else {
                word = (ww & 0xffff0000u) | (pack2x16float(vec2<f32>(lo, 0.0)) & 0xffffu);
            }
            WRITE_WEIGHT
        }
";

/// The master-copy update of one `f16` element (`at`: its index in master and states).
const LANE_F16: &str = r"
fn lane(at: u32, stored: f32, g: f32) -> f32 {
    var s: array<f32, NS>;
    LOAD_STATES
    w_stored = stored;
    let w_new = rule(master[at], g, &s);
    WRITE_MASTER
    STORE_STATES
    return w_new;
}
";

/// Fixed-order workgroup sum of the threads' `acc` (thread order, then a halving tree),
/// written to `partials[chunk]`: the same bits on every run.
const REDUCE_WG: &str = r"
    shared_acc[lid] = acc;
    workgroupBarrier();
    for (var width = WORKGROUP / 2u; width > 0u; width /= 2u) {
        if (lid < width) { shared_acc[lid] += shared_acc[lid + width]; }
        workgroupBarrier();
    }
    if (lid == 0u) { partials[chunk] = shared_acc[0]; }
";

/// The WGSL of a pipeline: prelude, bindings, the kernel's rule and the loop.
pub(crate) fn shader(v: &Variant) -> String {
    let f16 = v.precision == Precision::F16Master;
    let word = if f16 { "u32" } else { "f32" };
    let mut out = String::new();
    let fields = v.source.fields;
    out.push_str(&format!(
        "const WORKGROUP: u32 = {WORKGROUP}u;\nconst ITEMS: u32 = {ITEMS}u;\n\
         const STRIDE: u32 = {}u;\nconst NS: u32 = {}u;\n",
        HEADER + fields.len(),
        v.states.max(1)
    ));
    out.push_str("struct Hyper {\n");
    for f in fields {
        out.push_str(&format!("    {f}: f32,\n"));
    }
    if fields.is_empty() {
        out.push_str("    unused: f32,\n");
    }
    out.push_str(
        "}\nvar<private> h: Hyper;\nvar<private> sq: vec2<f32>;\nvar<private> w_stored: f32;\n\
         var<private> elem: u32;\n",
    );
    out.push_str("@group(0) @binding(0) var<storage, read> table: array<u32>;\n");
    let weight_access = if v.source.writes_weight {
        "read_write"
    } else {
        "read"
    };
    out.push_str(&format!(
        "@group(0) @binding(1) var<storage, {weight_access}> weight: array<{word}>;\n\
         @group(0) @binding(2) var<storage, read> grad: array<{word}>;\n"
    ));
    if f16 {
        let access = if v.source.writes_weight && v.write_master {
            "read_write"
        } else {
            "read"
        };
        out.push_str(&format!(
            "@group(0) @binding(3) var<storage, {access}> master: array<f32>;\n"
        ));
    }
    for k in 0..v.states {
        out.push_str(&format!(
            "@group(0) @binding({}) var<storage, read_write> s{k}: array<f32>;\n",
            4 + k
        ));
    }
    if v.source.reduces {
        out.push_str(
            "@group(0) @binding(8) var<storage, read_write> partials: array<vec2<f32>>;\n\
             var<workgroup> shared_acc: array<vec2<f32>, WORKGROUP>;\n",
        );
    }
    if v.source.prepare.is_some() {
        out.push_str("@group(0) @binding(9) var<storage, read> norms: array<vec2<f32>>;\n");
    }
    out.push_str(PRELUDE);
    for piece in v.source.rule {
        out.push_str(piece);
    }
    let at = if f16 { "at" } else { "s_off + u" };
    let load_states: String = (0..v.states)
        .map(|k| format!("s[{k}] = s{k}[{at}];\n"))
        .collect();
    let store_states: String = (0..v.states)
        .map(|k| format!("s{k}[{at}] = s[{k}];\n"))
        .collect();
    let load_hyper = if fields.is_empty() {
        "Hyper(0.0)".to_owned()
    } else {
        let args: Vec<String> = (0..fields.len())
            .map(|i| format!("bitcast<f32>(table[e + {}u])", HEADER + i))
            .collect();
        format!("Hyper({})", args.join(", "))
    };
    let (unit, write_weight) = if f16 {
        (UNIT_F16, "weight[w_off / 2u + u] = word;")
    } else {
        (UNIT_F32, "weight[w_off + u] = w_new;")
    };
    let write_weight = if v.source.writes_weight {
        write_weight
    } else {
        ""
    };
    let main = MAIN
        .replace("UNIT", unit)
        .replace("WRITE_WEIGHT", write_weight)
        .replace("LOAD_HYPER", &load_hyper)
        .replace("PREPARE", v.source.prepare.unwrap_or(""))
        .replace("REDUCE", if v.source.reduces { REDUCE_WG } else { "" });
    if f16 {
        let write_master = if v.source.writes_weight && v.write_master {
            "master[at] = w_new;"
        } else {
            ""
        };
        out.push_str(
            &LANE_F16
                .replace("WRITE_MASTER", write_master)
                .replace("LOAD_STATES", &load_states)
                .replace("STORE_STATES", &store_states),
        );
        out.push_str(&main);
    } else {
        out.push_str(
            &main
                .replace("LOAD_STATES", &load_states)
                .replace("STORE_STATES", &store_states),
        );
    }
    out
}

/// Sums each tensor's chunk partials in a fixed order into `norms[tensor]`: one workgroup
/// per tensor, thread `j` adding partials `j, j + 256, ...` in order, then a halving tree.
/// `spans` holds each tensor's first chunk and chunk count.
pub(crate) const SUM_PARTIALS: &str = r"
@group(0) @binding(0) var<storage, read> spans: array<u32>;
@group(0) @binding(1) var<storage, read> partials: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> norms: array<vec2<f32>>;
var<workgroup> shared_acc: array<vec2<f32>, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tensor = wid.x;
    let first = spans[2u * tensor];
    let count = spans[2u * tensor + 1u];
    var acc = vec2<f32>(0.0, 0.0);
    for (var j = lid; j < count; j += 256u) {
        acc += partials[first + j];
    }
    shared_acc[lid] = acc;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width /= 2u) {
        if (lid < width) { shared_acc[lid] += shared_acc[lid + width]; }
        workgroupBarrier();
    }
    if (lid == 0u) { norms[tensor] = shared_acc[0]; }
}
";
