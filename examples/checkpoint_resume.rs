//! Resume training from an optimizer checkpoint — written by this crate or by the Python
//! package's `Updater.save` — then save the optimizer again.
//!
//! ```text
//! cargo run --example checkpoint_resume -- CKPT_IN WEIGHTS_IN FIRST_STEP STEPS CKPT_OUT WEIGHTS_OUT
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
//! weight's type), so that another program can run the same steps and compare.

use mxopt::half::f16;
use mxopt::optimizer::checkpoint::{self, Record, Values};
use mxopt::optimizer::{Algorithm, Config, Optimizer};
use mxopt::schedule::Factor;
use std::path::Path;

/// The gradient of `step` for a weight of `len` elements.
fn gradient(len: usize, step: u64) -> Vec<f64> {
    (0..len as u64)
        .map(|i| ((7 * i + 13 * step) % 11) as f64 / 11.0 - 0.4)
        .collect()
}

fn train(opt: &mut Optimizer, weights: &mut Record, first: u64, steps: u64) -> mxopt::Result<()> {
    for step in first..first + steps {
        for (name, param) in &mut weights.params {
            let weight = param
                .states
                .first_mut()
                .ok_or_else(|| mxopt::Error::Checkpoint(format!("no weight for {name:?}")))?;
            let g = gradient(weight.values.len(), step);
            match &mut weight.values {
                Values::F32(w) => {
                    let g: Vec<f32> = g.iter().map(|&x| x as f32).collect();
                    opt.update(name, w, &g)?;
                }
                Values::F64(w) => opt.update(name, w, &g)?,
                Values::F16(w) => {
                    let g: Vec<f16> = g.iter().map(|&x| f16::from_f64(x)).collect();
                    opt.update(name, w, &g)?;
                }
            }
        }
    }
    Ok(())
}

fn main() -> mxopt::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ckpt_in, weights_in, first, steps, ckpt_out, weights_out] = args.as_slice() else {
        eprintln!(
            "usage: checkpoint_resume CKPT_IN WEIGHTS_IN FIRST_STEP STEPS CKPT_OUT WEIGHTS_OUT"
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
                wd: 0.01,
                lr_scheduler: Some(schedule.build()?),
                ..Config::default()
            };
            Optimizer::new(Algorithm::from_name(name)?, config)?
        }
        None => Optimizer::load(ckpt_in)?,
    };
    let mut weights = Record::from_bytes(&checkpoint::read(Path::new(weights_in))?)?;
    train(&mut opt, &mut weights, number(first)?, number(steps)?)?;
    opt.save(ckpt_out)?;
    checkpoint::write_atomically(Path::new(weights_out), &weights.to_bytes()?)?;
    println!("resumed {} parameters", weights.params.len());
    Ok(())
}
