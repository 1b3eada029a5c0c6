//! GroupAdaGrad on the device: one state per row, the row's Kahan mean of `ĝ²` (the walk
//! of [`crate::engine::RowWise`], in its element order), then the row's elements.
//! One thread walks one row, so the sum has the CPU's order. For `f16` sets the rows
//! update the `f32` master copy (the gradient widened), then a second pass rounds the
//! master copies into the packed weights word by word: rows of odd length share words,
//! which one thread per row could not write without racing.

use super::{check, gpu_error, Context, ParamSet, Pass, Precision, Source};
use crate::optim::group_adagrad::{self, GroupAdaGrad};
use crate::rule::Step;
use crate::Result;

/// Words of a tensor's entry before its scalars: first row, rows, row length, weight,
/// gradient and state offsets, and `zero` (a 0 the compiler cannot see, see below).
const ROW_HEADER: usize = 8;

/// `opaque` keeps Kahan's compensation `(t − sum) − y` from being simplified to 0: the
/// OR with a runtime zero hides that `t = sum + y` (shader compilers may reassociate
/// inexact additions).
const ROWS_MAIN: &str = r"
@group(0) @binding(0) var<storage, read> table: array<u32>;
BINDINGS
@group(0) @binding(4) var<storage, read_write> s0: array<f32>;
var<private> zero: u32;

fn opaque(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) | zero);
}
fn is_infinite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}
fn tensor_of(row: u32) -> u32 {
    var lo = 0u;
    var hi = table[0] - 1u;
    while (lo < hi) {
        let mid = (lo + hi + 1u) / 2u;
        if (table[2u + mid * STRIDE] <= row) { lo = mid; } else { hi = mid - 1u; }
    }
    return lo;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = id.x + id.y * groups.x * 64u;
    if (r >= table[1]) { return; }
    let e = 2u + tensor_of(r) * STRIDE;
    let row = r - table[e];
    let row_len = table[e + 2u];
    let w_at = table[e + 3u] + row * row_len;
    let g_at = table[e + 4u] + row * row_len;
    let s_at = table[e + 5u] + row;
    zero = table[e + 6u];
    h = LOAD_HYPER;
    var sum = 0.0;
    var residual = 0.0;
    for (var j = 0u; j < row_len; j++) {
        let x = row_grad(grad_at(g_at + j));
        let y = x * x - residual;
        let t = opaque(sum + y);
        if (is_infinite(t)) { residual = 0.0; } else { residual = (t - sum) - y; }
        sum = t;
    }
    let hist = s0[s_at] + sum / f32(row_len);
    s0[s_at] = hist;
    for (var j = 0u; j < row_len; j++) {
        walked[w_at + j] = row_apply(walked[w_at + j], row_grad(grad_at(g_at + j)), hist);
    }
}
";

/// The `f32` weights and gradients of an `f32` set.
const F32_BINDINGS: &str = r"
@group(0) @binding(1) var<storage, read_write> walked: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
fn grad_at(i: u32) -> f32 {
    return grad[i];
}
";

/// The master copies and packed `f16` gradients of an `f16` set.
const F16_BINDINGS: &str = r"
@group(0) @binding(3) var<storage, read_write> walked: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<u32>;
fn grad_at(i: u32) -> f32 {
    let pair = unpack2x16float(grad[i / 2u]);
    if (i % 2u == 0u) { return pair.x; }
    return pair.y;
}
";

/// The second pass of `f16` sets: each weight becomes its master copy, rounded (the
/// element loop's `f16` unit, which keeps the padding half of a tensor's last word).
const MASTER_TO_WEIGHT: Source = Source {
    name: "master_to_weight",
    fields: &[],
    rule: &["
fn rule(w: f32, g: f32, s: ptr<function, array<f32, NS>>) -> f32 {
    return w;
}
"],
    ..Source::ELEMENTWISE
};

fn shader(precision: Precision) -> String {
    let fields = group_adagrad::FIELDS;
    let mut out = format!(
        "const STRIDE: u32 = {}u;\nstruct Hyper {{\n",
        ROW_HEADER + fields.len()
    );
    for f in fields {
        out.push_str(&format!("    {f}: f32,\n"));
    }
    out.push_str("}\nvar<private> h: Hyper;\n");
    out.push_str(super::kernel::PRELUDE);
    out.push_str(group_adagrad::GRAD_WGSL);
    let args: Vec<String> = (0..fields.len())
        .map(|i| format!("bitcast<f32>(table[e + {}u])", ROW_HEADER + i))
        .collect();
    let bindings = match precision {
        Precision::F32 => F32_BINDINGS,
        Precision::F16Master => F16_BINDINGS,
    };
    out.push_str(
        &ROWS_MAIN
            .replace("BINDINGS", bindings)
            .replace("LOAD_HYPER", &format!("Hyper({})", args.join(", "))),
    );
    out
}

impl Context {
    /// GroupAdaGrad's dense update (MXNet's Python-side `GroupAdaGrad` with a dense
    /// gradient) of a set with one state: tensor `i` has `rows[i]` rows, and its per-row
    /// history is the first `rows[i]` values of its state 0. An `f16` set updates its
    /// master copies (as the CPU optimizer's multi-precision path) and rounds them into
    /// the weights, in the same submission.
    ///
    /// # Errors
    /// [`crate::Error::Length`] for `steps`/`rows` of the wrong length, a tensor whose length is
    /// not a multiple of its row count, or a set without exactly one state;
    /// [`crate::Error::NotFinite`] for bad scalars; [`crate::Error::Gpu`] for a device error.
    pub fn group_adagrad_step(
        &self,
        set: &mut ParamSet,
        hyper: &GroupAdaGrad,
        steps: &[Step],
        rows: &[usize],
    ) -> Result<()> {
        check("steps", set.len(), steps.len())?;
        check("rows", set.len(), rows.len())?;
        check("optimizer states", 1, set.num_states())?;
        let stride = ROW_HEADER + group_adagrad::FIELDS.len();
        let mut table = vec![0_u32, 0];
        let (mut entries, mut total) = (0_u32, 0_u32);
        let words = |x: usize| u32::try_from(x).map_err(|_| super::too_large());
        for (i, (&step, &n)) in steps.iter().zip(rows).enumerate() {
            let len = set.lens()[i];
            let row_len = len.checked_div(n).unwrap_or(0);
            check("weight", n * row_len, len)?;
            let rule = hyper.dense_at::<f32>(step)?;
            if len == 0 {
                continue;
            }
            let at = words(set.offsets[i])?;
            table.extend_from_slice(&[total, words(n)?, words(row_len)?, at, at, at, 0, 0]);
            table.extend(rule.gpu_hyper().iter().map(|x| x.to_bits()));
            entries += 1;
            total = total.checked_add(words(n)?).ok_or_else(super::too_large)?;
        }
        debug_assert!(table.len() == 2 + entries as usize * stride);
        if entries == 0 {
            return Ok(());
        }
        table[0] = entries;
        table[1] = total;
        let (name, target) = match &set.master {
            None => ("group_adagrad_rows", (1, &set.weight)),
            Some(master) => ("group_adagrad_rows_f16", (3, master)),
        };
        let pipeline = self.fixed(name, &shader(set.precision()))?;
        let table = self.words("table", &table)?;
        let bind = self.scoped(|| {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(name),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[
                    super::entry(0, &table),
                    super::entry(target.0, target.1),
                    super::entry(2, &set.grad),
                    super::entry(4, &set.states[0]),
                ],
            })
        })?;
        let rounding = match set.precision() {
            Precision::F32 => None,
            Precision::F16Master => Some(Pass::new(
                set,
                MASTER_TO_WEIGHT,
                0,
                &vec![Vec::new(); set.len()],
                false,
            )?),
        };
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            let (x, y) = super::grid(total.div_ceil(64));
            pass.dispatch_workgroups(x, y, 1);
        }
        if let Some(rounding) = &rounding {
            self.encode(&mut encoder, set, rounding)?;
        }
        self.scoped(|| {
            self.queue.submit([encoder.finish()]);
        })
        .map_err(|e| gpu_error(format!("group_adagrad: {e}")))
    }
}
