//! Resume training from an optimizer checkpoint — written by this crate or by the Python
//! package's `Updater.save` — then save the optimizer again.
//!
//! ```text
//! cargo run --example checkpoint_resume -- CKPT_IN WEIGHTS_IN FIRST_STEP STEPS CKPT_OUT WEIGHTS_OUT [rows]
//! ```
//!
//! `CKPT_IN` may instead be `new:<MXNet name>` to start a fresh optimizer of that name
//! (MXNet's defaults, weight decay 0.01, a Factor schedule: step 2, factor 0.8, base
//! rate 0.02).
//!
//! The weights travel in a checkpoint container too (each parameter's weight as its one
//! state tensor; `f16` weights with their `f32` master copy in the optimizer's file). Each
//! step updates every parameter, in name order, with the gradient
//! `g[i] = ((7·i + 13·step) mod 11) / 11 − 0.4` (computed in `f64`, rounded to the
//! weight's type), so that another program can run the same steps and compare. A weight
//! is a matrix of as many rows as the first dimension of its stored shape (GroupAdaGrad
//! keeps one state value per row). With `rows`, the gradients are row-sparse: the rows
//! `r` with `r + step` even, of the same values.

use mxopt::half::f16;
use mxopt::optimizer::checkpoint::{self, Record, Values};
use mxopt::optimizer::{Algorithm, Config, Grad, Optimizer, Param};
use mxopt::schedule::Factor;
use std::path::Path;

/// The gradient of `step` for a weight of `len` elements.
fn gradient(len: usize, step: u64) -> Vec<f64> {
    (0..len as u64)
        .map(|i| ((7 * i + 13 * step) % 11) as f64 / 11.0 - 0.4)
        .collect()
}

/// One update of `w`, a matrix of `rows` rows, with the gradient of `step`.
fn update<T: Param>(
    opt: &mut Optimizer,
    name: &str,
    w: &mut [T],
    rows: usize,
    step: u64,
    sparse: bool,
    of: fn(f64) -> T,
) -> mxopt::Result<()> {
    let g: Vec<T> = gradient(w.len(), step).into_iter().map(of).collect();
    if !sparse {
        return opt.update_many(&mut [(name, w, Grad::Matrix { rows, values: &g })]);
    }
    let row_len = w.len().checked_div(rows).unwrap_or(0);
    let kept: Vec<usize> = (0..rows).filter(|r| (*r as u64 + step) % 2 == 0).collect();
    let values: Vec<T> = kept
        .iter()
        .flat_map(|r| g[r * row_len..(r + 1) * row_len].iter().copied())
        .collect();
    let indices: Vec<i64> = kept.iter().map(|&r| r as i64).collect();
    opt.update_rows(name, w, rows, &indices, &values)
}

fn train(
    opt: &mut Optimizer,
    weights: &mut Record,
    first: u64,
    steps: u64,
    sparse: bool,
) -> mxopt::Result<()> {
    for step in first..first + steps {
        for (name, param) in &mut weights.params {
            let weight = param
                .states
                .first_mut()
                .ok_or_else(|| mxopt::Error::Checkpoint(format!("no weight for {name:?}")))?;
            let rows = weight.shape.first().copied().unwrap_or(1);
            match &mut weight.values {
                Values::F32(w) => update(opt, name, w, rows, step, sparse, |x| x as f32)?,
                Values::F64(w) => update(opt, name, w, rows, step, sparse, |x| x)?,
                Values::F16(w) => update(opt, name, w, rows, step, sparse, f16::from_f64)?,
            }
        }
    }
    Ok(())
}

fn main() -> mxopt::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (args, sparse) = match args.split_last() {
        Some((last, rest)) if last == "rows" => (rest, true),
        _ => (args.as_slice(), false),
    };
    let [ckpt_in, weights_in, first, steps, ckpt_out, weights_out] = args else {
        eprintln!(
            "usage: checkpoint_resume CKPT_IN WEIGHTS_IN FIRST_STEP STEPS CKPT_OUT WEIGHTS_OUT [rows]"
        );
        std::process::exit(2);
    };
    let number = |s: &str| {
        s.parse::<u64>()
            .map_err(|e| mxopt::Error::Checkpoint(format!("{s:?} is not a step count: {e}")))
    };
    let mut opt = match ckpt_in.strip_prefix("new:") {
        Some(name) => {
            let schedule = Factor {
                factor: 0.8,
                base_lr: 0.02,
                ..Factor::new(2)
            };
            let config = Config {
                // GroupAdaGrad has no weight decay.
                wd: if name == "groupadagrad" { 0.0 } else { 0.01 },
                lr_scheduler: Some(schedule.build()?),
                ..Config::default()
            };
            Optimizer::new(Algorithm::from_name(name)?, config)?
        }
        None => Optimizer::load(ckpt_in)?,
    };
    let mut weights = Record::from_bytes(&checkpoint::read(Path::new(weights_in))?)?;
    train(
        &mut opt,
        &mut weights,
        number(first)?,
        number(steps)?,
        sparse,
    )?;
    opt.save(ckpt_out)?;
    checkpoint::write_atomically(Path::new(weights_out), &weights.to_bytes()?)?;
    println!("resumed {} parameters", weights.params.len());
    Ok(())
}
