//! The high-level optimizer with `ndarray`: parameters are `Array`s, updated through their
//! contiguous slices (`as_slice_mut`); one call updates the whole list in parallel. SGD
//! with momentum, a Factor schedule and `f16` parameters with `f32` master copies
//! (multi-precision).
//!
//! Run with `cargo run --example optimizer_ndarray`.

use mxopt::half::f16;
use mxopt::optim::sgd::Sgd;
use mxopt::optimizer::{Algorithm, Config, Grad, Optimizer};
use mxopt::schedule::Factor;
use ndarray::{Array1, Array2};

fn main() -> mxopt::Result<()> {
    let sgd = Sgd {
        momentum: 0.9,
        ..Sgd::default()
    };
    let config = Config {
        learning_rate: Some(0.05),
        multi_precision: true,
        lr_scheduler: Some(
            Factor {
                factor: 0.5,
                ..Factor::new(50)
            }
            .build()?,
        ),
        ..Config::default()
    };
    let mut opt = Optimizer::new(Algorithm::Sgd(sgd), config)?;

    // Minimise ½‖p − target‖² for two parameters.
    let mut weight = Array2::<f16>::from_elem((4, 3), f16::from_f32(1.0));
    let mut bias = Array1::<f16>::from_elem(3, f16::ZERO);
    let target_w = Array2::<f32>::from_shape_fn((4, 3), |(i, j)| (i as f32 - j as f32) / 4.0);
    let target_b = Array1::<f32>::from_vec(vec![0.25, -0.5, 1.0]);

    for step in 1..=200 {
        let gw = Array2::from_shape_fn((4, 3), |ij| {
            f16::from_f32(weight[ij].to_f32() - target_w[ij])
        });
        let gb = Array1::from_shape_fn(3, |i| f16::from_f32(bias[i].to_f32() - target_b[i]));
        let (Some(w), Some(b), Some(gw), Some(gb)) = (
            weight.as_slice_mut(),
            bias.as_slice_mut(),
            gw.as_slice(),
            gb.as_slice(),
        ) else {
            unreachable!("freshly built arrays are contiguous");
        };
        opt.update_many(&mut [
            ("fc_weight", w, Grad::Dense(gw)),
            ("fc_bias", b, Grad::Dense(gb)),
        ])?;
        if step % 50 == 0 {
            println!(
                "step {step:3}  num_update {}  bias {bias:.3}",
                opt.num_update()
            );
        }
    }
    println!("weight\n{weight:.3}");
    Ok(())
}
