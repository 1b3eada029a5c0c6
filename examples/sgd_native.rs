//! Least squares solved with mxopt's SGD-with-momentum kernel from plain Rust slices.
//!
//! Run with `cargo run --example sgd_native`. No Python is involved: the weight, gradient
//! and momentum are `Vec<f32>`s, and each step builds the kernel's rule for that step's
//! learning rate and runs it over the buffers.

use mxopt::engine::{self, Dense};
use mxopt::optim::sgd::Sgd;
use mxopt::rule::Step;

const ROWS: usize = 64;
const COLS: usize = 8;

/// `A·w`, for `A` stored row by row.
fn matvec(a: &[f32], w: &[f32]) -> Vec<f32> {
    a.chunks_exact(COLS)
        .map(|row| row.iter().zip(w).map(|(x, wj)| x * wj).sum())
        .collect()
}

/// The loss `½·mean(r²)` and its gradient `Aᵀr / ROWS` written into `grad`.
fn loss_and_grad(a: &[f32], b: &[f32], w: &[f32], grad: &mut [f32]) -> f32 {
    let r: Vec<f32> = matvec(a, w).iter().zip(b).map(|(p, bi)| p - bi).collect();
    grad.fill(0.0);
    for (row, ri) in a.chunks_exact(COLS).zip(&r) {
        for (g, x) in grad.iter_mut().zip(row) {
            *g += x * ri / ROWS as f32;
        }
    }
    0.5 * r.iter().map(|ri| ri * ri).sum::<f32>() / ROWS as f32
}

fn main() -> Result<(), mxopt::Error> {
    // A pseudo-random design matrix with entries in [-1, 1) (xorshift, fixed seed), and
    // targets from a known solution.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let a: Vec<f32> = (0..ROWS * COLS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let w_true: Vec<f32> = (0..COLS).map(|j| j as f32 - 3.5).collect();
    let b = matvec(&a, &w_true);

    let mut w = vec![0.0_f32; COLS];
    let mut grad = vec![0.0_f32; COLS];
    let mut momentum = vec![0.0_f32; COLS];
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };

    for t in 1..=200 {
        let loss = loss_and_grad(&a, &b, &w, &mut grad);
        if t == 1 || t % 20 == 0 {
            println!("step {t:3}  loss {loss:.6e}");
        }
        let rule = sgd.multi_mom_at::<f32>(Step::new(0.1, 0.0, t))?;
        engine::run(&rule, Dense::new(&mut w, &grad, [&mut momentum])?);
    }
    println!("solution {w:.3?}");
    println!("expected {w_true:.3?}");
    Ok(())
}
