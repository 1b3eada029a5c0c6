//! Recursive halving across rayon threads (ndarray's `par_for_each` shape).

use super::Walk;

/// Elements below which a walk runs on one thread: large enough that rayon's overhead is
/// noise, small enough that a 1M-element tensor still uses every core.
pub const MIN_PARALLEL_LEN: usize = 1 << 15;

/// Halves `walk` until pieces are small, running the halves with `rayon::join`. Cut points
/// depend only on the length, never on the number of threads.
pub(super) fn par_for<R, W: Walk<R>>(walk: W, leaf: &(impl Fn(W) + Sync)) {
    let units = walk.units();
    if units < 2 * walk.min_units() {
        leaf(walk);
    } else {
        let (left, right) = walk.split_at(units / 2);
        rayon::join(|| par_for(left, leaf), || par_for(right, leaf));
    }
}
