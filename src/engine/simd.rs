//! Runtime dispatch of the element loops to builds for the running CPU's vector units.
//!
//! The crate is compiled for baseline x86-64 (SSE2), which keeps the wheel portable but
//! leaves AVX2's eight-wide arithmetic and F16C's hardware `f16` conversion unused: on an
//! AVX2 machine a compute-heavy rule (Adam's square root and division) or the
//! multi-precision walk (two `f16` conversions per element) runs up to twice as fast built
//! for AVX2 + F16C. The same generic loops are compiled a second time inside a
//! `#[target_feature]` function and chosen once per process when the CPU has the features.
//! Numbers do not change: Rust never contracts `a·b + c` into a fused multiply-add, and
//! every operation stays the same IEEE operation at any vector width (a test compares both
//! builds byte for byte, with `MXOPT_BASELINE_SIMD=1` forcing the baseline one).

#![allow(unsafe_code)]

use super::chunk;
use crate::real::Storage;
use crate::rule::Rule;
use half::f16;

/// Whether the AVX2 + F16C build may run: the CPU has both and `MXOPT_BASELINE_SIMD` is
/// not set.
#[cfg(target_arch = "x86_64")]
fn wide() -> bool {
    use std::sync::OnceLock;
    static WIDE: OnceLock<bool> = OnceLock::new();
    *WIDE.get_or_init(|| {
        std::env::var_os("MXOPT_BASELINE_SIMD").is_none()
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("f16c")
    })
}

/// [`chunk::dense`], in the widest build the CPU runs.
pub(super) fn dense<T: Storage, R: Rule<T::Elem, N>, const N: usize>(
    rule: &R,
    w: &mut [T],
    g: &[T],
    s: [&mut [T]; N],
) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: `wide()` checked that the CPU supports AVX2 and F16C.
        unsafe { dense_avx2(rule, w, g, s) };
        return;
    }
    chunk::dense(rule, w, g, s);
}

/// [`chunk::mixed`], in the widest build the CPU runs.
pub(super) fn mixed<R: Rule<f32, N>, const N: usize>(
    rule: &R,
    w: &mut [f16],
    g: &[f16],
    master: &mut [f32],
    s: [&mut [f32]; N],
    write_master: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: `wide()` checked that the CPU supports AVX2 and F16C.
        unsafe { mixed_avx2(rule, w, g, master, s, write_master) };
        return;
    }
    chunk::mixed(rule, w, g, master, s, write_master);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2,f16c")]
unsafe fn dense_avx2<T: Storage, R: Rule<T::Elem, N>, const N: usize>(
    rule: &R,
    w: &mut [T],
    g: &[T],
    s: [&mut [T]; N],
) {
    chunk::dense(rule, w, g, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2,f16c")]
unsafe fn mixed_avx2<R: Rule<f32, N>, const N: usize>(
    rule: &R,
    w: &mut [f16],
    g: &[f16],
    master: &mut [f32],
    s: [&mut [f32]; N],
    write_master: bool,
) {
    chunk::mixed(rule, w, g, master, s, write_master);
}
