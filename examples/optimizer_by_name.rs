//! Any optimizer of the Python package by its MXNet name, on an embedding table trained
//! with row-sparse gradients and a dense projection, both `f16` with `f32` master copies.
//! The table starts from the `Orthogonal` initializer and the noise of SGLD comes from the
//! same seeded generator, so a Python program doing the same gets the same numbers.
//!
//! Run with `cargo run --example optimizer_by_name -- adam` (or sgd, lars, lbsgd, sgld,
//! groupadagrad, ...; default `lars`). `lamb` does not learn here: with multi-precision,
//! MXNet 1.6's LAMB never writes its master copy back, and that is reproduced (set
//! `update_master_copy: true` in `Algorithm::Lamb` for the corrected update); `test` only
//! adds the gradient.

use mxopt::half::f16;
use mxopt::init::{Generator, Initializer};
use mxopt::optimizer::{Algorithm, Config, Grad, Optimizer};

/// Mean over the rows of `(row·proj − r/rows)²`.
fn loss(table: &[f16], proj: &[f16]) -> f32 {
    let rows = table.len() / proj.len();
    let total: f32 = table
        .chunks(proj.len())
        .enumerate()
        .map(|(r, row)| {
            let out: f32 = row
                .iter()
                .zip(proj)
                .map(|(a, b)| a.to_f32() * b.to_f32())
                .sum();
            (out - r as f32 / rows as f32).powi(2)
        })
        .sum();
    total / rows as f32
}

fn main() -> mxopt::Result<()> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "lars".to_owned());
    let (rows, dim) = (8, 4);
    let mut gen = Generator::new(7);
    let mut table32 = vec![0.0_f32; rows * dim];
    Initializer::ORTHOGONAL.init(&mut gen, &[rows, dim], &mut table32)?;
    let mut table: Vec<f16> = table32.iter().map(|&x| f16::from_f32(x)).collect();
    let mut proj32 = vec![0.0_f32; dim];
    Initializer::Uniform { scale: 0.5 }.init(&mut gen, &[dim], &mut proj32)?;
    let mut proj: Vec<f16> = proj32.iter().map(|&x| f16::from_f32(x)).collect();

    let config = Config {
        learning_rate: Some(0.05),
        multi_precision: true,
        ..Config::default()
    };
    let mut opt = Optimizer::new(Algorithm::from_name(&name)?, config)?;
    opt.set_generator(gen); // SGLD draws its noise after the initializers' draws

    // Target: row r of the table projected onto `proj` should give r / rows.
    for step in 1..=300 {
        let r = step % rows;
        let row = &table[r * dim..(r + 1) * dim];
        let out: f32 = row
            .iter()
            .zip(&proj)
            .map(|(a, b)| a.to_f32() * b.to_f32())
            .sum();
        let err = out - r as f32 / rows as f32;
        let g_row: Vec<f16> = proj
            .iter()
            .map(|p| f16::from_f32(err * p.to_f32()))
            .collect();
        let g_proj: Vec<f16> = row
            .iter()
            .map(|a| f16::from_f32(err * a.to_f32()))
            .collect();
        let indices = [r as i64];
        let table_grad = Grad::Rows {
            rows,
            indices: &indices,
            values: &g_row,
        };
        // GroupAdaGrad takes no weight decay and a matrix: the projection is one row.
        let proj_grad = Grad::Matrix {
            rows: 1,
            values: &g_proj,
        };
        opt.update_many(&mut [
            ("embed_weight", &mut table, table_grad),
            ("proj_weight", &mut proj, proj_grad),
        ])?;
        if step % 100 == 0 {
            println!(
                "{name}: step {step:3}  mean squared error {:.3e}",
                loss(&table, &proj)
            );
        }
    }
    Ok(())
}
