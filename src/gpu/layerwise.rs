//! LARS and LAMB on the device: a reducing pass, the fixed-order per-tensor sums, and the
//! update, recorded in one command buffer.
