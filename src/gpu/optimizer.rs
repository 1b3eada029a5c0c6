//! The high-level optimizer on the device.

/// Placeholder.
#[derive(Debug)]
pub struct GpuOptimizer;
