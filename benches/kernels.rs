//! Criterion benchmarks of the update kernels.
fn main() {}
