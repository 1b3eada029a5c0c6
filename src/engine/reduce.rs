//! Per-tensor reductions: sums of squares and L2 norms, for the layer-wise optimizers.
//!
//! Two evaluation orders are offered ([`Reduction`]):
//! * [`Reduction::Exact`] follows MXNet 1.6's sequential recipes bit for bit:
//!   `multi_sum_sq` accumulates `v·v` (computed in the array's
//!   type) into an `f32`; `NDArray.norm()` keeps a scaled sum of squares in the array's
//!   type. Each tensor is one sequential loop (one core); tensors of a list run in
//!   parallel.
//! * [`Reduction::Fast`] sums squares in `f64` over fixed blocks of [`FAST_BLOCK`]
//!   elements, blocks in parallel, block sums added in block order. Block boundaries
//!   depend only on the length, so the result is the same at any thread count, but it is
//!   not MXNet's last bit.
//!
//! [`sweep`] runs a state-updating pass that also reduces: LAMB's first phase updates its
//! moments and yields the norms of the weight and of the update direction without storing
//! the direction.

use super::split_each;
use crate::real::{Elem, Storage};
use rayon::prelude::*;

/// Elements per block of a [`Reduction::Fast`] reduction.
pub const FAST_BLOCK: usize = 1 << 14;

/// Elements a [`sweep`] computes (vectorised) before handing them to the reduction, which
/// for [`Reduction::Exact`] is a sequential chain; a multiple of [`LANES`] dividing
/// [`FAST_BLOCK`].
const SWEEP_BLOCK: usize = 256;

/// How a reduction is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// MXNet's sequential recipe, bit for bit.
    Exact,
    /// Blocked `f64` sums in parallel; reproducible at any thread count, not bit-exact
    /// with MXNet.
    Fast,
}

/// MXNet's `multi_sum_sq` accumulator: `acc = acc + v·v` with `v·v` rounded to the
/// array's type and the sum rounded to `f32`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SumSq(f32);

impl SumSq {
    /// Adds `v·v`.
    #[inline(always)]
    pub fn push<E: Elem>(&mut self, v: E) {
        // f64 holds both operands exactly; a sum it cannot hold exactly is one whose
        // smaller term lies far below half an f32 ulp of the larger, so rounding to f32
        // gives the f32 sum (and MXNet's f64 recipe `f32(f64(acc) + v·v)` by construction).
        #[allow(clippy::cast_possible_truncation)]
        let acc = (f64::from(self.0) + (v * v).to_f64()) as f32;
        self.0 = acc;
    }
    /// The sum.
    #[must_use]
    pub fn value(self) -> f32 {
        self.0
    }
}

/// MXNet's `NDArray.norm()` accumulator: the scaled sum of squares `scale²·ssq`, in the
/// array's type, skipping zeros.
#[derive(Clone, Copy, Debug)]
pub struct Nrm2<E> {
    scale: E,
    ssq: E,
}

impl<E: Elem> Default for Nrm2<E> {
    fn default() -> Self {
        Nrm2 {
            scale: E::zero(),
            ssq: E::zero(),
        }
    }
}

impl<E: Elem> Nrm2<E> {
    /// Adds `v²`.
    #[inline(always)]
    pub fn push(&mut self, v: E) {
        if v == E::zero() {
            return;
        }
        let a = v.abs();
        if self.scale < a {
            let r = self.scale / a;
            self.ssq = E::one() + (self.ssq * r) * r;
            self.scale = a;
        } else {
            let r = a / self.scale;
            self.ssq = self.ssq + r * r;
        }
    }
    /// `scale·sqrt(ssq)`.
    #[must_use]
    pub fn value(self) -> E {
        self.scale * self.ssq.sqrt()
    }
}

/// Independent `f64` accumulators of a [`Reduction::Fast`] sum: element `i` of a block
/// goes to lane `i % LANES` and the lanes are added in order at the end, a fixed order
/// the compiler can vectorise (one running sum would be a chain of dependent additions).
const LANES: usize = 8;

/// Adds the squares of `values` (which start at a multiple of [`LANES`] in their block)
/// to `lanes`.
#[inline(always)]
fn add_squares<E: Elem>(lanes: &mut [f64; LANES], values: &[E]) {
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            let x = v.to_f64();
            *lane += x * x;
        }
    }
    for (lane, v) in lanes.iter_mut().zip(chunks.remainder()) {
        let x = v.to_f64();
        *lane += x * x;
    }
}

/// Sum of squares of a block in `f64`, for [`Reduction::Fast`].
fn block_sum_sq<T: Storage>(a: &[T]) -> f64 {
    let mut lanes = [0.0; LANES];
    let mut values = [<T::Elem as Elem>::zero(); SWEEP_BLOCK];
    for part in a.chunks(SWEEP_BLOCK) {
        let values = &mut values[..part.len()];
        values.iter_mut().zip(part).for_each(|(x, v)| *x = v.load());
        add_squares(&mut lanes, values);
    }
    lanes.iter().sum()
}

/// Block sums in parallel, added in block order.
fn fast_sum_sq<T: Storage>(a: &[T]) -> f64 {
    let blocks: Vec<f64> = a.par_chunks(FAST_BLOCK).map(block_sum_sq).collect();
    blocks.into_iter().sum()
}

/// `Σ v²` of one tensor, as MXNet's `multi_sum_sq` returns it (`f32`; `0` when empty).
pub fn sum_sq<T: Storage>(a: &[T], how: Reduction) -> f32 {
    match how {
        Reduction::Exact => {
            let mut acc = SumSq::default();
            a.iter().for_each(|v| acc.push(v.load()));
            acc.value()
        }
        #[allow(clippy::cast_possible_truncation)]
        Reduction::Fast => fast_sum_sq(a) as f32,
    }
}

/// `‖a‖₂` in the array's compute type, as `NDArray.norm()` computes it (`0` when empty,
/// where MXNet fails).
pub fn norm<T: Storage>(a: &[T], how: Reduction) -> T::Elem {
    match how {
        Reduction::Exact => {
            let mut acc = Nrm2::default();
            a.iter().for_each(|v| acc.push(v.load()));
            acc.value()
        }
        Reduction::Fast => <T::Elem as Elem>::from_f64(fast_sum_sq(a).sqrt()),
    }
}

/// `‖a‖₂` of the stored values of a row-sparse `f32` array, as MXNet 1.6 computes it:
/// `sqrtf` of the BLAS dot product `a·a` (MKL's `sdot`: products summed four at a time in
/// order, each group sum added to the running sum; the last `len % 4` products added one
/// by one), not the scaled recipe of dense arrays. Checked against MXNet for lengths up
/// to 513.
#[must_use]
pub fn row_sparse_norm(a: &[f32], how: Reduction) -> f32 {
    match how {
        Reduction::Exact => {
            let mut groups = a.chunks_exact(4);
            let mut acc = 0.0_f32;
            for g in &mut groups {
                acc += ((g[0] * g[0] + g[1] * g[1]) + g[2] * g[2]) + g[3] * g[3];
            }
            for v in groups.remainder() {
                acc += v * v;
            }
            acc.sqrt()
        }
        #[allow(clippy::cast_possible_truncation)]
        Reduction::Fast => fast_sum_sq(a).sqrt() as f32,
    }
}

/// Reduces every tensor of a list with `f` (results in list order), tensors in parallel
/// when the list holds enough `elements` in all to pay for waking the thread pool.
pub fn each<A: Sync, R: Send>(
    tensors: &[A],
    elements: usize,
    f: impl Fn(&A) -> R + Sync + Send,
) -> Vec<R> {
    if elements < 2 * super::MIN_PARALLEL_LEN {
        tensors.iter().map(f).collect()
    } else {
        tensors.par_iter().map(f).collect()
    }
}

/// One element of a pass that updates `N` states and yields a value whose norm is wanted.
pub trait Sweep<E: Elem, const N: usize>: Sync {
    /// Takes the weight, the gradient and the states; returns the new states and the
    /// value to reduce.
    fn sweep(&self, w: E, g: E, s: [E; N]) -> ([E; N], E);
}

/// The norms a [`sweep`] returns: of the weight and of the swept values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweptNorms<E> {
    /// `‖w‖₂`.
    pub weight: E,
    /// `‖u‖₂` of the values the sweep yielded.
    pub swept: E,
}

/// Runs `rule` over a tensor, writing its states, and returns the norms of the weight
/// and of the yielded values. The gradient may be stored narrower than the weight (a
/// float16 gradient of a float32 master copy); it is widened exactly.
pub fn sweep<T, G, S, const N: usize>(
    rule: &S,
    w: &[T],
    g: &[G],
    s: [&mut [T]; N],
    how: Reduction,
) -> SweptNorms<T::Elem>
where
    T: Storage,
    G: Storage,
    S: Sweep<T::Elem, N>,
{
    match how {
        Reduction::Exact => {
            let (mut wn, mut un) = (Nrm2::default(), Nrm2::default());
            sweep_block(rule, w, g, s, |w, u| {
                w.iter().for_each(|&x| wn.push(x));
                u.iter().for_each(|&x| un.push(x));
            });
            SweptNorms {
                weight: wn.value(),
                swept: un.value(),
            }
        }
        Reduction::Fast => {
            let mut jobs = Vec::with_capacity(w.len().div_ceil(FAST_BLOCK));
            let (mut w, mut g, mut s) = (w, g, s);
            while !w.is_empty() {
                let cut = FAST_BLOCK.min(w.len());
                let (w0, w1) = w.split_at(cut);
                let (g0, g1) = g.split_at(cut);
                let (s0, s1) = split_each(s, cut);
                jobs.push((w0, g0, s0));
                (w, g, s) = (w1, g1, s1);
            }
            let sums: Vec<(f64, f64)> = jobs
                .into_par_iter()
                .map(|(w, g, s)| {
                    let (mut ws, mut us) = ([0.0; LANES], [0.0; LANES]);
                    sweep_block(rule, w, g, s, |w, u| {
                        add_squares(&mut ws, w);
                        add_squares(&mut us, u);
                    });
                    (ws.iter().sum(), us.iter().sum())
                })
                .collect();
            let (ws, us) = sums
                .into_iter()
                .fold((0.0, 0.0), |(a, b): (f64, f64), (x, y)| (a + x, b + y));
            SweptNorms {
                weight: <T::Elem as Elem>::from_f64(ws.sqrt()),
                swept: <T::Elem as Elem>::from_f64(us.sqrt()),
            }
        }
    }
}

/// One [`sweep`] job: the rule, the weight, the gradient and the states of one tensor.
pub type SweepJob<'a, S, T, G, const N: usize> = (S, &'a [T], &'a [G], [&'a mut [T]; N]);

/// [`sweep`] over every tensor of a list (results in list order): exact reductions run
/// one tensor per core, fast ones cut each tensor into blocks.
pub fn sweep_each<T, G, S, const N: usize>(
    jobs: Vec<SweepJob<'_, S, T, G, N>>,
    how: Reduction,
) -> Vec<SweptNorms<T::Elem>>
where
    T: Storage,
    G: Storage,
    S: Sweep<T::Elem, N> + Send,
{
    let elements: usize = jobs.iter().map(|(_, w, _, _)| w.len()).sum();
    let one = |(rule, w, g, s): SweepJob<'_, S, T, G, N>| sweep(&rule, w, g, s, how);
    if how == Reduction::Exact && elements >= 2 * super::MIN_PARALLEL_LEN {
        jobs.into_par_iter().map(one).collect()
    } else {
        jobs.into_iter().map(one).collect()
    }
}

/// NumPy's buffer size: a contiguous reduction hands its inner loop this many elements
/// at a time.
const NUMPY_BUFFER: usize = 8192;

/// `Σ v²` as NumPy computes `np.multiply(a, a).sum()`: squares rounded to the array's
/// type; the reduction's inner loop gets 8192 elements (NumPy's buffer) at a time, sums them
/// with NumPy's pairwise summation (8 accumulators over blocks of up to 128 elements,
/// halves added recursively; in `f32` for `f16` arrays, else in the array's type) and adds
/// that to the result, which is stored in the array's type after each buffer. MXNet's
/// LBSGD takes its `'lars'` multiplier from it.
#[must_use]
pub fn numpy_sum_sq<T: Storage>(a: &[T]) -> f64 {
    fn pairwise(a: &[f64], round: &impl Fn(f64) -> f64) -> f64 {
        let n = a.len();
        if n < 8 {
            a.iter().fold(-0.0, |acc, &x| round(acc + x))
        } else if n <= 128 {
            let mut r = [0.0; 8];
            r.copy_from_slice(&a[..8]);
            let whole = n - n % 8;
            for block in a[8..whole].chunks_exact(8) {
                for (acc, &x) in r.iter_mut().zip(block) {
                    *acc = round(*acc + x);
                }
            }
            let pair = |i: usize| round(r[i] + r[i + 1]);
            let mut res = round(round(pair(0) + pair(2)) + round(pair(4) + pair(6)));
            for &x in &a[whole..] {
                res = round(res + x);
            }
            res
        } else {
            let mut half = n / 2;
            half -= half % 8;
            round(pairwise(&a[..half], round) + pairwise(&a[half..], round))
        }
    }
    let squares: Vec<f64> = a
        .iter()
        .map(|v| {
            let x = v.load();
            (x * x).to_f64()
        })
        .collect();
    // The accumulator's type: f64 for f64 arrays, f32 otherwise (NumPy sums f16 in f32).
    let wide = std::mem::size_of::<T>() == 8;
    let round = move |x: f64| if wide { x } else { f64::from(x as f32) };
    let stored = |x: f64| <T::Elem as Elem>::from_f64(x).to_f64();
    squares.chunks(NUMPY_BUFFER).fold(-0.0, |result, buffer| {
        stored(round(result + pairwise(buffer, &round)))
    })
}

/// The sweep loop: computes [`SWEEP_BLOCK`] elements at a time (a loop the compiler
/// vectorises), then hands the block's weights and yielded values, in order, to `seen`.
#[inline(always)]
fn sweep_block<T, G, S, const N: usize>(
    rule: &S,
    w: &[T],
    g: &[G],
    s: [&mut [T]; N],
    mut seen: impl FnMut(&[T::Elem], &[T::Elem]),
) where
    T: Storage,
    G: Storage,
    S: Sweep<T::Elem, N>,
{
    let zero = <T::Elem as Elem>::zero();
    let (mut wb, mut ub) = ([zero; SWEEP_BLOCK], [zero; SWEEP_BLOCK]);
    let mut start = 0;
    let mut s = s;
    while start < w.len() {
        let end = (start + SWEEP_BLOCK).min(w.len());
        let (wb, ub) = (&mut wb[..end - start], &mut ub[..end - start]);
        let (w, g) = (&w[start..end], &g[start..end]);
        let mut block = s.each_mut().map(|x| &mut x[start..end]);
        for i in 0..wb.len() {
            let states = std::array::from_fn(|k| block[k][i].load());
            let weight = w[i].load();
            // Exact: a narrower gradient widens without rounding.
            let grad = <T::Elem as Elem>::from_f64(g[i].load().to_f64());
            let (states, u) = rule.sweep(weight, grad, states);
            for (buf, value) in block.iter_mut().zip(states) {
                buf[i] = T::store(value);
            }
            wb[i] = weight;
            ub[i] = u;
        }
        seen(wb, ub);
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn exact_recipes_by_hand() {
        let a = [3.0_f32, 0.0, -4.0];
        assert_eq!(sum_sq(&a, Reduction::Exact), 25.0);
        assert_eq!(norm(&a, Reduction::Exact), 5.0);
        assert_eq!(norm::<f32>(&[], Reduction::Exact), 0.0);
        assert_eq!(sum_sq::<f64>(&[], Reduction::Exact), 0.0);
        // f16 products round to f16 before the f32 accumulation: 2049² is not an f16.
        let h = [f16::from_f32(45.0), f16::from_f32(0.5)];
        assert_eq!(sum_sq(&h, Reduction::Exact), 2025.0 + 0.25);
    }

    #[test]
    fn fast_matches_exact_closely_and_ignores_thread_count() {
        let a: Vec<f32> = (0..100_003)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let exact = sum_sq(&a, Reduction::Exact);
        let fast = sum_sq(&a, Reduction::Fast);
        assert!((exact - fast).abs() / exact < 1e-5);
        let at = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
            let pool = pool.expect("thread pool");
            pool.install(|| (sum_sq(&a, Reduction::Fast), norm(&a, Reduction::Fast)))
        };
        let one = at(1);
        assert_eq!(at(2), one);
        assert_eq!(at(7), one);
    }

    #[test]
    fn numpy_sum_sq_matches_numpy_across_buffers() {
        // `np.multiply(a, a).sum()` of `a = (x·scale).astype(dtype)` with
        // x = ((i·2654435761) mod 2³²)/2³² − 0.5, values printed by NumPy 2.2.
        let x = |n: u64, scale: f64| -> Vec<f64> {
            (0..n)
                .map(|i| (i.wrapping_mul(2_654_435_761) % (1 << 32)) as f64 / 4_294_967_296.0 - 0.5)
                .map(|v| v * scale)
                .collect()
        };
        let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<_>>();
        let f16s = |v: Vec<f64>| v.into_iter().map(f16::from_f64).collect::<Vec<_>>();
        assert_eq!(numpy_sum_sq(&f32s(x(129, 4.0))), 173.769_226_074_218_75);
        assert_eq!(numpy_sum_sq(&f32s(x(20_000, 4.0))), 26_668.781_25);
        assert_eq!(numpy_sum_sq(&x(9_000, 4.0)), 12_001.340_973_592_42);
        assert_eq!(numpy_sum_sq(&x(100_000, 4.0)), 133_334.608_950_795_17);
        assert_eq!(numpy_sum_sq(&f16s(x(8_193, 0.5))), 170.625);
        assert_eq!(numpy_sum_sq(&f16s(x(20_000, 0.5))), 416.5);
    }

    /// Doubles the state and yields `w + g`.
    struct Probe;
    impl Sweep<f32, 1> for Probe {
        fn sweep(&self, w: f32, g: f32, [s]: [f32; 1]) -> ([f32; 1], f32) {
            ([2.0 * s], w + g)
        }
    }

    #[test]
    fn sweep_writes_states_and_reduces_in_both_modes() {
        let n = 3 * FAST_BLOCK + 5;
        let w: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
        let g: Vec<f16> = (0..n).map(|i| f16::from_f32((i % 5) as f32)).collect();
        let u: Vec<f32> = w.iter().zip(&g).map(|(w, g)| w + g.to_f32()).collect();
        for how in [Reduction::Exact, Reduction::Fast] {
            let mut s = vec![1.0_f32; n];
            let at = |threads| {
                let mut s = s.clone();
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
                let norms = pool
                    .expect("pool")
                    .install(|| sweep(&Probe, &w, &g, [&mut s], how));
                (norms, s)
            };
            let (one, two, seven) = (at(1), at(2), at(7));
            assert_eq!(one, two);
            assert_eq!(one, seven);
            let norms = sweep(&Probe, &w, &g, [&mut s], how);
            assert!(s.iter().all(|&x| x == 2.0));
            assert_eq!(norms.weight, norm(&w, how));
            assert_eq!(norms.swept, norm(&u, how));
        }
    }
}
