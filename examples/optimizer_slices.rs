//! The high-level optimizer on plain `Vec`s: Adam with a cosine schedule and warmup over a
//! tiny linear regression `y = X·w`, an `f32` weight and a bias that gets no weight decay
//! (MXNet's rule for names not ending in `_weight`/`_gamma`).
//!
//! Run with `cargo run --example optimizer_slices`.

use mxopt::optimizer::{Algorithm, Config, Optimizer};
use mxopt::schedule::{Cosine, Warmup, WarmupMode};

fn main() -> mxopt::Result<()> {
    let x = [[1.0_f32, 2.0], [3.0, -1.0], [0.5, 0.5], [-2.0, 1.0]];
    let y = [6.0_f32, 3.0, 2.25, -0.5]; // w = (1.5, 2.0), b = 0.5
    let mut w = vec![0.0_f32; 2];
    let mut b = vec![0.0_f32; 1];

    let schedule = Cosine {
        base_lr: 0.1,
        final_lr: 0.001,
        warmup: Warmup {
            steps: 20,
            begin_lr: 0.0,
            mode: WarmupMode::Linear,
        },
        ..Cosine::new(500)
    }
    .build()?;
    let config = Config {
        wd: 1e-4,
        lr_scheduler: Some(schedule),
        ..Config::default()
    };
    let mut opt = Optimizer::new(Algorithm::from_name("adam")?, config)?;

    for step in 1..=500 {
        let (mut gw, mut gb, mut loss) = (vec![0.0_f32; 2], vec![0.0_f32; 1], 0.0_f32);
        for (xi, yi) in x.iter().zip(y) {
            let err = xi[0] * w[0] + xi[1] * w[1] + b[0] - yi;
            loss += err * err / 4.0;
            gw[0] += err * xi[0] / 2.0;
            gw[1] += err * xi[1] / 2.0;
            gb[0] += err / 2.0;
        }
        opt.update("linear_weight", &mut w, &gw)?;
        opt.update("linear_bias", &mut b, &gb)?;
        if step % 100 == 0 {
            println!("step {step:3}  loss {loss:.3e}  w {w:.3?}  b {b:.3?}");
        }
    }
    Ok(())
}
