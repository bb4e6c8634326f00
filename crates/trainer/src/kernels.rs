//! Hand-written f32 operations of the GPT's fixed forward/backward ([`crate::engine`]), each
//! with its forward and its backward, working on plain row-major slices (as llm.c's
//! `train_gpt2.c`).
//!
//! * Matrix products go to the `gemm` crate (AVX-512 kernels with its `x86-v4` feature,
//!   chosen at run time; AVX2/FMA or scalar kernels elsewhere), one call per chunk of rows
//!   with `Parallelism::None`: the work is split across the current rayon pool here, so only
//!   one pool ever runs.
//! * Elementwise and row-wise operations (LayerNorm, GELU, softmax, cross-entropy, AdamW) are
//!   written so that the compiler vectorises them, and compiled three times by `multiversion!`:
//!   for AVX-512, for AVX2 + FMA, and portable; the widest the CPU has runs.
//! * Every parallel loop runs on the calling thread's rayon pool, so callers decide the thread
//!   count with `ThreadPool::install`.
//!
//! Shapes use B (batch), T (sequence), C (channels), NH (heads), HD = C / NH, V (vocabulary).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use rayon::prelude::*;

/// ε added to the variance in LayerNorm (PyTorch's default; the composed model's value).
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// Which vector instructions the multiversioned kernels use, from the narrowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Whatever the target's baseline is (SSE2 on x86-64).
    Portable,
    /// AVX2 with FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F/VL/BW/DQ with FMA (x86-64-v4).
    Avx512,
}

/// Cap on [`simd_level`] set by [`limit_simd_level`]: 0 portable, 1 AVX2, 2 and above none.
static SIMD_LIMIT: AtomicU8 = AtomicU8::new(u8::MAX);

/// The widest [`SimdLevel`] this CPU supports, lowered to the limit set by
/// [`limit_simd_level`] or by the environment variable `TRAINCONSOLE_SIMD` (`portable`, `avx2`
/// or `avx512`, read once). The detection is cached by std. The `gemm` crate's matrix products
/// choose their kernels themselves and are not affected.
pub fn simd_level() -> SimdLevel {
    static FROM_ENV: OnceLock<()> = OnceLock::new();
    FROM_ENV.get_or_init(|| match std::env::var("TRAINCONSOLE_SIMD").as_deref() {
        Ok("portable") => limit_simd_level(SimdLevel::Portable),
        Ok("avx2") => limit_simd_level(SimdLevel::Avx2),
        _ => {}
    });
    let limit = match SIMD_LIMIT.load(Ordering::Relaxed) {
        0 => SimdLevel::Portable,
        1 => SimdLevel::Avx2,
        _ => SimdLevel::Avx512,
    };
    detected_simd_level().min(limit)
}

/// Use at most `level` from now on, in every thread (for benchmarks and for testing the
/// narrower code paths on a wide CPU).
pub fn limit_simd_level(level: SimdLevel) {
    SIMD_LIMIT.store(level as u8, Ordering::Relaxed);
}

/// The widest [`SimdLevel`] this CPU supports, whatever limit is set: the level the matrix
/// products (the `gemm` crate, which detects it itself) run at.
pub fn detected_simd_level() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return SimdLevel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Portable
}

/// Define `fn name(args) -> ret { body }` compiled for AVX-512, AVX2 + FMA and the baseline,
/// dispatching on [`simd_level`] at each call. The body must call only `#[inline(always)]`
/// helpers so that they are compiled with the same instructions.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                fn v4($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn v3($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                match $crate::kernels::simd_level() {
                    // SAFETY: simd_level() checked that the CPU has these features.
                    $crate::kernels::SimdLevel::Avx512 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    $crate::kernels::SimdLevel::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::kernels::SimdLevel::Portable => {}
                }
            }
            imp($($arg),*)
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Scalar building blocks, written so that loops over them vectorise.
// ---------------------------------------------------------------------------------------------

/// Lanes of the accumulators in reductions: one AVX-512 register of f32.
const LANES: usize = 16;

/// `e^x` in f32 with a relative error below 2e-7 (Cephes' `expf`: Cody–Waite range reduction
/// `x = n ln 2 + r`, a degree-6 polynomial for `e^r`, and `2^n` built from its exponent bits).
/// Inputs are clamped to [-87.3, 88.3], so `-∞` gives about 1e-38 instead of 0; NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding it rounds to the nearest integer and leaves that integer in the low bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let t = x.mul_add(LOG2E, ROUND);
    let n = t - ROUND;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let e_r = p.mul_add(r * r, r) + 1.0;
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    e_r * two_n
}

/// The error function in f32, absolute error about 1e-7 (the rational approximation of
/// Eigen's `generic_fast_erf_float`, exact to f32 rounding beyond |x| = 4, where erf is ±1).
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p.mul_add(x2, 2.770_681_4e-8);
    p = p.mul_add(x2, -2.101_024e-6);
    p = p.mul_add(x2, -5.692_506_4e-5);
    p = p.mul_add(x2, -7.349_906_3e-4);
    p = p.mul_add(x2, -2.954_600_1e-3);
    p = p.mul_add(x2, -1.609_603_3e-2);
    let p = p * x;
    let mut q = -1.456_607_2e-5_f32;
    q = q.mul_add(x2, -2.133_740_6e-4);
    q = q.mul_add(x2, -1.682_827e-3);
    q = q.mul_add(x2, -7.373_329_2e-3);
    q = q.mul_add(x2, -1.426_474e-2);
    p / q
}

/// Σ a[i] · b[i] with 16 independent accumulators (so that it vectorises).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let mut a_chunks = a.chunks_exact(LANES);
    let mut b_chunks = b.chunks_exact(LANES);
    for (ca, cb) in (&mut a_chunks).zip(&mut b_chunks) {
        for i in 0..LANES {
            acc[i] = ca[i].mul_add(cb[i], acc[i]);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
        sum = x.mul_add(*y, sum);
    }
    sum
}

/// Σ a[i] with 16 independent accumulators.
#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = a.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// max a[i] (−∞ for an empty slice; NaN-ignoring like `f32::max`).
#[inline(always)]
fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = a.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    let m = acc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    chunks.remainder().iter().copied().fold(m, f32::max)
}

// ---------------------------------------------------------------------------------------------
// Parallel helpers.
// ---------------------------------------------------------------------------------------------

/// Chunks to split `n` independent items into on the current pool: one per thread, no more
/// than `n`, at least 1. (More chunks would cost more gemm calls and packing than they gain
/// in balance on the 2–16 cores this is for.)
fn chunk_len(n: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    n.div_ceil(threads).max(1)
}

/// A raw pointer that may be sent across threads: the kernels below hand each thread a
/// disjoint part of the memory behind it.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: only used for disjoint writes (each use site says why they are disjoint).
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so that closures capture the whole `SendPtr`, not its field).
    fn get(self) -> *mut T {
        self.0
    }
}

/// A strided read-only matrix view for [`gemm`]: element (i, j) is at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

/// `dst (m×n, row stride dst_rs, column stride 1) = [dst +] scale · lhs (m×k) · rhs (k×n)`,
/// single-threaded (AVX-512 where available).
///
/// # Safety
/// Every element addressed by the views and by dst must be inside live allocations; dst must
/// not overlap lhs or rhs, and no other thread may touch the part of dst written.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, accumulate: bool, lhs: View, rhs: View, scale: f32) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Linear layer.
// ---------------------------------------------------------------------------------------------

/// `out = inp · weightᵀ + bias + residual`: a linear layer with its bias and an optional
/// residual add fused in.
///
/// `inp`: `(rows, in_f)`, `weight`: `(out_f, in_f)` (PyTorch layout), `bias`: `(out_f,)`,
/// `residual`, `out`: `(rows, out_f)`. Rows are split across the pool's threads.
pub fn linear_forward(out: &mut [f32], inp: &[f32], weight: &[f32], bias: Option<&[f32]>, residual: Option<&[f32]>, in_f: usize, out_f: usize) {
    let rows = inp.len() / in_f;
    assert!(inp.len() == rows * in_f && out.len() == rows * out_f && weight.len() == out_f * in_f);
    assert!(bias.is_none_or(|b| b.len() == out_f) && residual.is_none_or(|r| r.len() == out.len()));
    let chunk = chunk_len(rows);
    out.par_chunks_mut(chunk * out_f).enumerate().for_each(|(i, out)| {
        let r0 = i * chunk;
        let n_rows = out.len() / out_f;
        let inp = &inp[r0 * in_f..(r0 + n_rows) * in_f];
        let accumulate = bias.is_some() || residual.is_some();
        if accumulate {
            for (r, row) in out.chunks_exact_mut(out_f).enumerate() {
                match (bias, residual) {
                    (Some(b), Some(res)) => add_into(row, b, &res[(r0 + r) * out_f..(r0 + r + 1) * out_f]),
                    (Some(b), None) => row.copy_from_slice(b),
                    (None, Some(res)) => row.copy_from_slice(&res[(r0 + r) * out_f..(r0 + r + 1) * out_f]),
                    (None, None) => {}
                }
            }
        }
        let lhs = View { ptr: inp.as_ptr(), rs: in_f as isize, cs: 1 };
        // weightᵀ: element (k, o) = weight[o · in_f + k].
        let rhs = View { ptr: weight.as_ptr(), rs: 1, cs: in_f as isize };
        // SAFETY: lhs covers n_rows × in_f of `inp`, rhs in_f × out_f of `weight`, dst is this
        // thread's own chunk of `out` (n_rows × out_f); `out` is a distinct &mut.
        unsafe { gemm(n_rows, out_f, in_f, out.as_mut_ptr(), out_f, accumulate, lhs, rhs, 1.0) };
    });
}

multiversion! {
    /// `out[i] = a[i] + b[i]`.
    fn add_into(out: &mut [f32], a: &[f32], b: &[f32]) {
        for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
            *o = x + y;
        }
    }
}

/// Backward of [`linear_forward`] given `dout = ∂loss/∂out` `(rows, out_f)`:
///
/// * `dinp = dout · weight` `(rows, in_f)`, added to `dinp` if `accumulate_dinp`, else written;
/// * `dweight = doutᵀ · inp` `(out_f, in_f)`, written (each weight is used once per step);
/// * `dbias = Σ_rows dout` `(out_f,)`, written.
///
/// The input gradient splits rows across threads, the weight gradient splits output features.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    dinp: &mut [f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    dout: &[f32],
    inp: &[f32],
    weight: &[f32],
    in_f: usize,
    out_f: usize,
    accumulate_dinp: bool,
) {
    let rows = inp.len() / in_f;
    assert!(inp.len() == rows * in_f && dinp.len() == inp.len() && dout.len() == rows * out_f);
    assert!(weight.len() == out_f * in_f && dweight.len() == weight.len());
    assert!(dbias.as_ref().is_none_or(|b| b.len() == out_f));
    // dinp = dout · weight.
    let chunk = chunk_len(rows);
    dinp.par_chunks_mut(chunk * in_f).enumerate().for_each(|(i, dinp)| {
        let r0 = i * chunk;
        let n_rows = dinp.len() / in_f;
        let lhs = View { ptr: dout[r0 * out_f..].as_ptr(), rs: out_f as isize, cs: 1 };
        let rhs = View { ptr: weight.as_ptr(), rs: in_f as isize, cs: 1 };
        // SAFETY: lhs covers rows r0..r0+n_rows of dout, rhs all of weight (out_f × in_f), dst
        // is this thread's chunk of dinp.
        unsafe { gemm(n_rows, in_f, out_f, dinp.as_mut_ptr(), in_f, accumulate_dinp, lhs, rhs, 1.0) };
    });
    // dweight = doutᵀ · inp, dbias = column sums of dout, split by output feature.
    let chunk = chunk_len(out_f);
    let dbias_ptr = dbias.map(|b| SendPtr(b.as_mut_ptr()));
    dweight.par_chunks_mut(chunk * in_f).enumerate().for_each(|(i, dweight)| {
        let o0 = i * chunk;
        let n_out = dweight.len() / in_f;
        // doutᵀ restricted to features o0..o0+n_out: element (o, r) = dout[r · out_f + o0 + o].
        let lhs = View { ptr: dout[o0..].as_ptr(), rs: 1, cs: out_f as isize };
        let rhs = View { ptr: inp.as_ptr(), rs: in_f as isize, cs: 1 };
        // SAFETY: lhs reads dout[(rows-1)·out_f + o0 + n_out - 1] at most, inside dout; rhs all
        // of inp; dst is this thread's chunk of dweight.
        unsafe { gemm(n_out, in_f, rows, dweight.as_mut_ptr(), in_f, false, lhs, rhs, 1.0) };
        if let Some(ptr) = dbias_ptr {
            // SAFETY: features o0..o0+n_out of dbias belong to this chunk only.
            let dbias = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(o0), n_out) };
            column_sums(dbias, dout, out_f, o0);
        }
    });
}

multiversion! {
    /// `out[j] = Σ_r m[r · cols + offset + j]` for `j < out.len()`.
    fn column_sums(out: &mut [f32], m: &[f32], cols: usize, offset: usize) {
        out.fill(0.0);
        let width = out.len();
        for row in m.chunks_exact(cols) {
            for (o, x) in out.iter_mut().zip(&row[offset..offset + width]) {
                *o += x;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm.
// ---------------------------------------------------------------------------------------------

/// LayerNorm over the last dimension (Ba et al. 2016), with the biased variance as PyTorch:
/// `out = (inp - mean) · rstd · weight + bias`, `rstd = 1 / sqrt(var + ε)`.
///
/// `inp`, `out`: `(rows, C)`; `weight`, `bias`: `(C,)`; `mean`, `rstd`: `(rows,)`, saved for
/// the backward.
pub fn layernorm_forward(out: &mut [f32], mean: &mut [f32], rstd: &mut [f32], inp: &[f32], weight: &[f32], bias: &[f32]) {
    let c = weight.len();
    let rows = inp.len() / c;
    assert!(inp.len() == rows * c && out.len() == inp.len() && mean.len() == rows && rstd.len() == rows && bias.len() == c);
    let chunk = chunk_len(rows);
    out.par_chunks_mut(chunk * c)
        .zip(mean.par_chunks_mut(chunk))
        .zip(rstd.par_chunks_mut(chunk))
        .zip(inp.par_chunks(chunk * c))
        .for_each(|(((out, mean), rstd), inp)| layernorm_rows(out, mean, rstd, inp, weight, bias));
}

multiversion! {
    fn layernorm_rows(out: &mut [f32], mean: &mut [f32], rstd: &mut [f32], inp: &[f32], weight: &[f32], bias: &[f32]) {
        let c = weight.len();
        for (((out, mean), rstd), x) in out.chunks_exact_mut(c).zip(mean).zip(rstd).zip(inp.chunks_exact(c)) {
            let m = sum(x) / c as f32;
            let mut acc = [0f32; LANES];
            let mut chunks = x.chunks_exact(LANES);
            for ch in &mut chunks {
                for i in 0..LANES {
                    let d = ch[i] - m;
                    acc[i] = d.mul_add(d, acc[i]);
                }
            }
            let var = (acc.iter().sum::<f32>() + chunks.remainder().iter().map(|v| (v - m) * (v - m)).sum::<f32>()) / c as f32;
            let s = 1.0 / (var + LAYER_NORM_EPS).sqrt();
            for (((o, v), w), b) in out.iter_mut().zip(x).zip(weight).zip(bias) {
                *o = ((v - m) * s).mul_add(*w, *b);
            }
            *mean = m;
            *rstd = s;
        }
    }
}

/// Backward of [`layernorm_forward`] (llm.c's `layernorm_backward`): with `n = (x - mean) · rstd`
/// and `g = dout · weight`, `dinp += (g - mean(g) - n · mean(g · n)) · rstd` (added if
/// `accumulate`, else written), `dweight = Σ_rows dout · n`, `dbias = Σ_rows dout` (written).
///
/// `scratch`: at least `2 · C · threads` floats for the per-thread partial sums.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    dinp: &mut [f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
    scratch: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    weight: &[f32],
    mean: &[f32],
    rstd: &[f32],
    accumulate: bool,
) {
    let c = weight.len();
    let rows = inp.len() / c;
    assert!(inp.len() == rows * c && dinp.len() == inp.len() && dout.len() == inp.len());
    assert!(dweight.len() == c && dbias.len() == c && mean.len() == rows && rstd.len() == rows);
    let chunk = chunk_len(rows);
    let chunks = rows.div_ceil(chunk);
    let partials = &mut scratch[..2 * c * chunks];
    dinp.par_chunks_mut(chunk * c)
        .zip(partials.par_chunks_mut(2 * c))
        .enumerate()
        .for_each(|(i, (dinp, partial))| {
            let r0 = i * chunk;
            let n_rows = dinp.len() / c;
            let (dw, db) = partial.split_at_mut(c);
            layernorm_backward_rows(
                dinp,
                dw,
                db,
                &dout[r0 * c..(r0 + n_rows) * c],
                &inp[r0 * c..(r0 + n_rows) * c],
                weight,
                &mean[r0..r0 + n_rows],
                &rstd[r0..r0 + n_rows],
                accumulate,
            );
        });
    dweight.fill(0.0);
    dbias.fill(0.0);
    for partial in partials.chunks_exact(2 * c) {
        let (dw, db) = partial.split_at(c);
        dweight.iter_mut().zip(dw).for_each(|(a, b)| *a += b);
        dbias.iter_mut().zip(db).for_each(|(a, b)| *a += b);
    }
}

multiversion! {
    #[allow(clippy::too_many_arguments)]
    fn layernorm_backward_rows(
        dinp: &mut [f32],
        dweight: &mut [f32],
        dbias: &mut [f32],
        dout: &[f32],
        inp: &[f32],
        weight: &[f32],
        mean: &[f32],
        rstd: &[f32],
        accumulate: bool,
    ) {
        let c = weight.len();
        dweight.fill(0.0);
        dbias.fill(0.0);
        // Per-row temporaries, allocated once per call (a few hundred floats).
        let mut norm = vec![0f32; c];
        let mut g = vec![0f32; c];
        for (((dinp, dout), x), (m, s)) in dinp.chunks_exact_mut(c).zip(dout.chunks_exact(c)).zip(inp.chunks_exact(c)).zip(mean.iter().zip(rstd)) {
            for (((n, gi), xi), (wi, di)) in norm.iter_mut().zip(g.iter_mut()).zip(x).zip(weight.iter().zip(dout)) {
                *n = (xi - m) * s;
                *gi = wi * di;
            }
            let g_mean = sum(&g) / c as f32;
            let gn_mean = dot(&g, &norm) / c as f32;
            for (((dw, db), di), n) in dweight.iter_mut().zip(dbias.iter_mut()).zip(dout).zip(&norm) {
                *dw = di.mul_add(*n, *dw);
                *db += di;
            }
            for ((d, gi), n) in dinp.iter_mut().zip(&g).zip(&norm) {
                let v = (gi - g_mean - n * gn_mean) * s;
                *d = if accumulate { *d + v } else { v };
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GELU.
// ---------------------------------------------------------------------------------------------

/// `out = x · Φ(x)` with the exact (erf) Φ, as PyTorch's `nn.GELU()` and candle's `gelu_erf`.
pub fn gelu_forward(out: &mut [f32], inp: &[f32]) {
    assert_eq!(out.len(), inp.len());
    let chunk = chunk_len(inp.len().div_ceil(LANES)) * LANES;
    out.par_chunks_mut(chunk).zip(inp.par_chunks(chunk)).for_each(|(out, inp)| gelu_chunk(out, inp));
}

multiversion! {
    fn gelu_chunk(out: &mut [f32], inp: &[f32]) {
        for (o, x) in out.iter_mut().zip(inp) {
            *o = 0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// Backward of [`gelu_forward`], in place: `dout ← dout · (Φ(x) + x · φ(x))`, with φ the
/// standard normal density.
pub fn gelu_backward(dout: &mut [f32], inp: &[f32]) {
    assert_eq!(dout.len(), inp.len());
    let chunk = chunk_len(inp.len().div_ceil(LANES)) * LANES;
    dout.par_chunks_mut(chunk).zip(inp.par_chunks(chunk)).for_each(|(d, x)| gelu_backward_chunk(d, x));
}

multiversion! {
    fn gelu_backward_chunk(dout: &mut [f32], inp: &[f32]) {
        // 1 / sqrt(2π).
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for (d, x) in dout.iter_mut().zip(inp) {
            let cdf = 0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * exp_f32(-0.5 * x * x);
            *d *= x.mul_add(pdf, cdf);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Causal self-attention over the packed q/k/v tensor.
// ---------------------------------------------------------------------------------------------

/// Shape of an attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Sequences.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Width C.
    pub channels: usize,
    /// Heads NH (dividing C).
    pub heads: usize,
}

impl AttentionShape {
    fn head_dim(&self) -> usize {
        self.channels / self.heads
    }
    /// Floats of the attention probabilities `(B, NH, T, T)`.
    pub fn att_len(&self) -> usize {
        self.batch * self.heads * self.seq * self.seq
    }
}

/// Causal multi-head attention (Vaswani et al. 2017, eq. 1):
/// `out = softmax(q kᵀ / sqrt(HD) + mask) v` for every sequence and head.
///
/// `qkv`: `(B, T, 3C)` with q, k and v side by side (heads contiguous inside each);
/// `out`: `(B, T, C)`; `att`: `(B, NH, T, T)`, the probabilities saved for the backward (zero
/// above the diagonal). Sequence-head pairs are split across threads.
pub fn attention_forward(out: &mut [f32], att: &mut [f32], qkv: &[f32], shape: AttentionShape) {
    let AttentionShape { batch, seq: t, channels: c, heads } = shape;
    let hd = shape.head_dim();
    assert!(qkv.len() == batch * t * 3 * c && out.len() == batch * t * c && att.len() == shape.att_len());
    let scale = 1.0 / (hd as f32).sqrt();
    let out_ptr = SendPtr(out.as_mut_ptr());
    att.par_chunks_mut(t * t).enumerate().for_each(|(pair, att)| {
        let (b, h) = (pair / heads, pair % heads);
        let base = b * t * 3 * c + h * hd;
        let q = View { ptr: qkv[base..].as_ptr(), rs: 3 * c as isize, cs: 1 };
        // kᵀ: element (d, j) = k[j, d].
        let kt = View { ptr: qkv[base + c..].as_ptr(), rs: 1, cs: 3 * c as isize };
        // SAFETY: q and k rows j < T of sequence b, columns of head h, lie inside qkv; dst is
        // this pair's own T×T block of att.
        unsafe { gemm(t, t, hd, att.as_mut_ptr(), t, false, q, kt, scale) };
        softmax_causal_rows(att, t);
        let p = View { ptr: att.as_ptr(), rs: t as isize, cs: 1 };
        let v = View { ptr: qkv[base + 2 * c..].as_ptr(), rs: 3 * c as isize, cs: 1 };
        // SAFETY: the output columns h·HD..(h+1)·HD of the T rows of sequence b are written by
        // this pair only; p and v lie inside att and qkv.
        unsafe {
            let dst = out_ptr.get().add(b * t * c + h * hd);
            gemm(t, hd, t, dst, c, false, p, v, 1.0);
        }
    });
}

multiversion! {
    /// Row t of the T×T `scores`: softmax over keys 0..=t, zeros after.
    fn softmax_causal_rows(scores: &mut [f32], t: usize) {
        for (i, row) in scores.chunks_exact_mut(t).enumerate() {
            let (live, masked) = row.split_at_mut(i + 1);
            let m = max(live);
            let mut acc = [0f32; LANES];
            let mut chunks = live.chunks_exact_mut(LANES);
            for ch in &mut chunks {
                for j in 0..LANES {
                    ch[j] = exp_f32(ch[j] - m);
                    acc[j] += ch[j];
                }
            }
            let mut total: f32 = acc.iter().sum();
            for x in chunks.into_remainder() {
                *x = exp_f32(*x - m);
                total += *x;
            }
            let inv = 1.0 / total;
            live.iter_mut().for_each(|x| *x *= inv);
            masked.fill(0.0);
        }
    }
}

/// Backward of [`attention_forward`] given `dout = ∂loss/∂out` `(B, T, C)`; writes `dqkv`
/// `(B, T, 3C)`. With P the saved probabilities and S the scaled scores:
/// `dV = Pᵀ dout`, `dP = dout Vᵀ`, `dS = P ⊙ (dP - rowsum(P ⊙ dP))`,
/// `dQ = dS K / sqrt(HD)`, `dK = dSᵀ Q / sqrt(HD)`.
///
/// `scratch`: `(B, NH, T, T)` floats for dP / dS.
pub fn attention_backward(dqkv: &mut [f32], scratch: &mut [f32], dout: &[f32], qkv: &[f32], att: &[f32], shape: AttentionShape) {
    let AttentionShape { batch, seq: t, channels: c, heads } = shape;
    let hd = shape.head_dim();
    assert!(qkv.len() == batch * t * 3 * c && dqkv.len() == qkv.len() && dout.len() == batch * t * c);
    assert!(att.len() == shape.att_len() && scratch.len() >= shape.att_len());
    let scale = 1.0 / (hd as f32).sqrt();
    let dqkv_ptr = SendPtr(dqkv.as_mut_ptr());
    scratch[..shape.att_len()].par_chunks_mut(t * t).enumerate().for_each(|(pair, dp)| {
        let (b, h) = (pair / heads, pair % heads);
        let base = b * t * 3 * c + h * hd;
        let att = &att[pair * t * t..(pair + 1) * t * t];
        let dy = View { ptr: dout[b * t * c + h * hd..].as_ptr(), rs: c as isize, cs: 1 };
        let q = View { ptr: qkv[base..].as_ptr(), rs: 3 * c as isize, cs: 1 };
        let k = View { ptr: qkv[base + c..].as_ptr(), rs: 3 * c as isize, cs: 1 };
        let vt = View { ptr: qkv[base + 2 * c..].as_ptr(), rs: 1, cs: 3 * c as isize };
        let pt = View { ptr: att.as_ptr(), rs: 1, cs: t as isize };
        // SAFETY (all four products): the views read head h of sequence b inside dout, qkv and
        // att; dp is this pair's own block of scratch; the dqkv destinations (q, k and v
        // columns of head h in the rows of sequence b) are written by this pair only.
        unsafe {
            let dq = dqkv_ptr.get().add(base);
            let dk = dq.add(c);
            let dv = dq.add(2 * c);
            // dV = Pᵀ · dY: (T×T) · (T×HD).
            gemm(t, hd, t, dv, 3 * c, false, pt, dy, 1.0);
            // dP = dY · Vᵀ: (T×HD) · (HD×T).
            gemm(t, t, hd, dp.as_mut_ptr(), t, false, dy, vt, 1.0);
            softmax_causal_backward_rows(dp, att, t);
            let ds = View { ptr: dp.as_ptr(), rs: t as isize, cs: 1 };
            let dst = View { ptr: dp.as_ptr(), rs: 1, cs: t as isize };
            // dQ = dS · K · scale, dK = dSᵀ · Q · scale.
            gemm(t, hd, t, dq, 3 * c, false, ds, k, scale);
            gemm(t, hd, t, dk, 3 * c, false, dst, q, scale);
        }
    });
}

multiversion! {
    /// In place over the T×T `dp`: `dS = P ⊙ (dP - Σ_j P dP)` on and below the diagonal, 0 above.
    fn softmax_causal_backward_rows(dp: &mut [f32], p: &[f32], t: usize) {
        for (i, (drow, prow)) in dp.chunks_exact_mut(t).zip(p.chunks_exact(t)).enumerate() {
            let (live, masked) = drow.split_at_mut(i + 1);
            let pl = &prow[..i + 1];
            let s = dot(live, pl);
            for (d, p) in live.iter_mut().zip(pl) {
                *d = p * (*d - s);
            }
            masked.fill(0.0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy over the vocabulary.
// ---------------------------------------------------------------------------------------------

/// Per-row cross-entropy `log Σ_v exp(logits_v) - logits_target` in nats (into `losses`), and,
/// if `grad_scale` is given, its gradient `(softmax(logits) - onehot(target)) · grad_scale`
/// written over `logits` (fused, as llm.c's `crossentropy_softmax_backward`).
///
/// `logits`: `(rows, V)`; `targets`, `losses`: `(rows,)`. A target `≥ V` is not checked here
/// (callers validate tokens).
pub fn cross_entropy(logits: &mut [f32], losses: &mut [f32], targets: &[u32], vocab: usize, grad_scale: Option<f32>) {
    let rows = targets.len();
    assert!(logits.len() == rows * vocab && losses.len() == rows);
    let chunk = chunk_len(rows);
    logits
        .par_chunks_mut(chunk * vocab)
        .zip(losses.par_chunks_mut(chunk))
        .zip(targets.par_chunks(chunk))
        .for_each(|((logits, losses), targets)| cross_entropy_rows(logits, losses, targets, vocab, grad_scale));
}

multiversion! {
    fn cross_entropy_rows(logits: &mut [f32], losses: &mut [f32], targets: &[u32], vocab: usize, grad_scale: Option<f32>) {
        for ((row, loss), &target) in logits.chunks_exact_mut(vocab).zip(losses).zip(targets) {
            let m = max(row);
            let target = target as usize;
            let target_logit = row[target];
            let mut acc = [0f32; LANES];
            let mut chunks = row.chunks_exact_mut(LANES);
            for ch in &mut chunks {
                for j in 0..LANES {
                    ch[j] = exp_f32(ch[j] - m);
                    acc[j] += ch[j];
                }
            }
            let mut total: f32 = acc.iter().sum();
            for x in chunks.into_remainder() {
                *x = exp_f32(*x - m);
                total += *x;
            }
            *loss = total.ln() + m - target_logit;
            // Without a gradient scale the caller asked only for the loss; the row is left
            // holding the exponentials.
            if let Some(scale) = grad_scale {
                let factor = scale / total;
                row.iter_mut().for_each(|x| *x *= factor);
                row[target] -= scale;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Embeddings.
// ---------------------------------------------------------------------------------------------

/// `out[b, t] = wte[tokens[b, t]] + wpe[t]`. `tokens`: `(B, T)`, `out`: `(B, T, C)`,
/// `wte`: `(V, C)`, `wpe`: `(≥T, C)`. Tokens must be `< V`.
pub fn embedding_forward(out: &mut [f32], tokens: &[u32], wte: &[f32], wpe: &[f32], seq: usize, c: usize) {
    assert_eq!(out.len(), tokens.len() * c);
    out.par_chunks_mut(seq * c).zip(tokens.par_chunks(seq)).for_each(|(out, tokens)| {
        for ((row, &token), pos) in out.chunks_exact_mut(c).zip(tokens).zip(wpe.chunks_exact(c)) {
            let token = token as usize;
            add_into(row, &wte[token * c..(token + 1) * c], pos);
        }
    });
}

/// Backward of [`embedding_forward`]: `dwte[token] += dout[b, t]` (added: `dwte` already holds
/// the tied head's gradient) and `dwpe[t] = Σ_b dout[b, t]` (written, rows ≥ T zeroed).
pub fn embedding_backward(dwte: &mut [f32], dwpe: &mut [f32], dout: &[f32], tokens: &[u32], seq: usize, c: usize) {
    assert_eq!(dout.len(), tokens.len() * c);
    rayon::join(
        || {
            for (row, &token) in dout.chunks_exact(c).zip(tokens) {
                let token = token as usize;
                add_assign(&mut dwte[token * c..(token + 1) * c], row);
            }
        },
        || {
            dwpe.fill(0.0);
            for seq_rows in dout.chunks_exact(seq * c) {
                add_assign(&mut dwpe[..seq * c], seq_rows);
            }
        },
    );
}

multiversion! {
    /// `a[i] += b[i]`.
    fn add_assign(a: &mut [f32], b: &[f32]) {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Optimizer.
// ---------------------------------------------------------------------------------------------

/// Σ x² in f64 (over f32 partial sums of chunks), split across threads.
pub fn sum_of_squares(x: &[f32]) -> f64 {
    const CHUNK: usize = 4096;
    x.par_chunks(CHUNK).map(|c| f64::from(sum_sq_chunk(c))).sum()
}

multiversion! {
    fn sum_sq_chunk(x: &[f32]) -> f32 {
        dot(x, x)
    }
}

/// The scalars of one fused AdamW update (see [`crate::optim::AdamW`] for the formula).
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    /// Learning rate.
    pub lr: f32,
    /// β1.
    pub beta1: f32,
    /// β2.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// `1 - lr · weight_decay` for decayed parameters, 1 for the others.
    pub decay_factor: f32,
    /// `1 / (1 - β1ᵗ)`.
    pub inv_bias_correction1: f32,
    /// `1 / (1 - β2ᵗ)`.
    pub inv_bias_correction2: f32,
    /// Gradient multiplier: the clipping factor, 1 without clipping.
    pub grad_scale: f32,
}

/// One AdamW update of `params` in place, reading the gradient once and updating both moments
/// in the same pass (PyTorch's `foreach`/fused AdamW do the same arithmetic):
/// `g = grad · grad_scale`, `m ← β1 m + (1-β1) g`, `v ← β2 v + (1-β2) g²`,
/// `θ ← θ · decay_factor - lr · (m / bc1) / (sqrt(v / bc2) + ε)`.
pub fn adamw_update(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], step: AdamWStep) {
    assert!(grads.len() == params.len() && m.len() == params.len() && v.len() == params.len());
    const CHUNK: usize = 8192;
    params
        .par_chunks_mut(CHUNK)
        .zip(grads.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| adamw_chunk(p, g, m, v, step));
}

multiversion! {
    fn adamw_chunk(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], s: AdamWStep) {
        for (((p, g), m), v) in params.iter_mut().zip(grads).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * s.grad_scale;
            *m = s.beta1 * *m + (1.0 - s.beta1) * g;
            *v = s.beta2 * *v + (1.0 - s.beta2) * (g * g);
            let m_hat = *m * s.inv_bias_correction1;
            let v_hat = *v * s.inv_bias_correction2;
            *p = *p * s.decay_factor - s.lr * (m_hat / (v_hat.sqrt() + s.eps));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use candle_core::{D, DType, Device, Tensor, Var};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Uniform values in [-scale, scale).
    fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    }

    /// An f64 candle variable holding `values` (the reference computes in f64).
    fn var(values: &[f32], shape: &[usize]) -> Var {
        let values: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
    }

    /// `got` equals the f64 reference `want` within 1e-5 of `want`'s largest magnitude.
    fn assert_close(what: &str, got: &[f32], want: &Tensor) {
        let want = values(want);
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{what}: the reference is all zeros");
        let diff = got.iter().zip(&want).fold(0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()));
        assert!(diff <= 1e-5 * scale, "{what}: max |diff| {diff:e}, max |reference| {scale:e}");
    }

    /// Run `f` on a pool of 3 threads, so that rows split unevenly into chunks.
    fn on_three_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(f)
    }

    /// The loss `Σ out ⊙ upstream`, whose gradient with respect to `out` is `upstream`.
    fn weighted_sum(out: &Tensor, upstream: &[f32]) -> Tensor {
        let w = var(upstream, out.dims());
        (out * w.as_tensor()).unwrap().sum_all().unwrap()
    }

    #[test]
    fn linear_forward_and_backward_match_candle() {
        let (rows, in_f, out_f) = (7, 20, 12);
        let x = random(rows * in_f, 1, 1.0);
        let w = random(out_f * in_f, 2, 0.5);
        let b = random(out_f, 3, 0.5);
        let r = random(rows * out_f, 4, 1.0);
        let up = random(rows * out_f, 5, 1.0);
        let (xv, wv, bv, rv) = (var(&x, &[rows, in_f]), var(&w, &[out_f, in_f]), var(&b, &[out_f]), var(&r, &[rows, out_f]));
        let out = xv.matmul(&wv.t().unwrap()).unwrap().broadcast_add(&bv).unwrap().add(&rv).unwrap();
        let grads = weighted_sum(&out, &up).backward().unwrap();

        let mut got = vec![0f32; rows * out_f];
        on_three_threads(|| linear_forward(&mut got, &x, &w, Some(&b), Some(&r), in_f, out_f));
        assert_close("out", &got, &out);
        let mut no_bias = vec![0f32; rows * out_f];
        on_three_threads(|| linear_forward(&mut no_bias, &x, &w, None, None, in_f, out_f));
        assert_close("out without bias", &no_bias, &xv.matmul(&wv.t().unwrap()).unwrap());

        // dinp accumulates onto what is there (here 1.0) when asked to.
        let mut dx = vec![1f32; rows * in_f];
        let (mut dw, mut db) = (vec![f32::NAN; out_f * in_f], vec![f32::NAN; out_f]);
        on_three_threads(|| linear_backward(&mut dx, &mut dw, Some(&mut db), &up, &x, &w, in_f, out_f, true));
        assert_close("dinp (accumulated)", &dx, &(grads.get(&xv).unwrap() + 1.0).unwrap());
        assert_close("dweight", &dw, grads.get(&wv).unwrap());
        assert_close("dbias", &db, grads.get(&bv).unwrap());
        on_three_threads(|| linear_backward(&mut dx, &mut dw, None, &up, &x, &w, in_f, out_f, false));
        assert_close("dinp (written)", &dx, grads.get(&xv).unwrap());
    }

    /// The composed LayerNorm of the model (biased variance, ε inside the square root).
    fn reference_layernorm(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        let mean = x.mean_keepdim(D::Minus1).unwrap();
        let centered = x.broadcast_sub(&mean).unwrap();
        let var = centered.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let normed = centered.broadcast_div(&(var + f64::from(LAYER_NORM_EPS)).unwrap().sqrt().unwrap()).unwrap();
        normed.broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
    }

    #[test]
    fn layernorm_forward_and_backward_match_candle() {
        let (rows, c) = (9, 40);
        // An offset and spread per row, so that mean and variance matter.
        let x: Vec<f32> = random(rows * c, 6, 2.0).iter().enumerate().map(|(i, v)| v * (1 + i / c) as f32 + 0.5).collect();
        let w = random(c, 7, 1.5);
        let b = random(c, 8, 0.5);
        let up = random(rows * c, 9, 1.0);
        let (xv, wv, bv) = (var(&x, &[rows, c]), var(&w, &[c]), var(&b, &[c]));
        let out = reference_layernorm(xv.as_tensor(), wv.as_tensor(), bv.as_tensor());
        let grads = weighted_sum(&out, &up).backward().unwrap();

        let (mut got, mut mean, mut rstd) = (vec![0f32; rows * c], vec![0f32; rows], vec![0f32; rows]);
        on_three_threads(|| layernorm_forward(&mut got, &mut mean, &mut rstd, &x, &w, &b));
        assert_close("out", &got, &out);
        let mut dx = vec![2f32; rows * c];
        let (mut dw, mut db, mut scratch) = (vec![0f32; c], vec![0f32; c], vec![0f32; 2 * c * 3]);
        on_three_threads(|| layernorm_backward(&mut dx, &mut dw, &mut db, &mut scratch, &up, &x, &w, &mean, &rstd, true));
        assert_close("dinp (accumulated)", &dx, &(grads.get(&xv).unwrap() + 2.0).unwrap());
        assert_close("dweight", &dw, grads.get(&wv).unwrap());
        assert_close("dbias", &db, grads.get(&bv).unwrap());
        on_three_threads(|| layernorm_backward(&mut dx, &mut dw, &mut db, &mut scratch, &up, &x, &w, &mean, &rstd, false));
        assert_close("dinp (written)", &dx, grads.get(&xv).unwrap());
    }

    #[test]
    fn gelu_forward_and_backward_match_candle() {
        // Beyond ±4 too, where erf saturates; 1001 values, not a multiple of 16.
        let x = random(1001, 10, 6.0);
        let up = random(1001, 11, 1.0);
        let xv = var(&x, &[1001]);
        let out = xv.gelu_erf().unwrap();
        let grads = weighted_sum(&out, &up).backward().unwrap();
        let mut got = vec![0f32; 1001];
        on_three_threads(|| gelu_forward(&mut got, &x));
        assert_close("out", &got, &out);
        let mut d = up.clone();
        on_three_threads(|| gelu_backward(&mut d, &x));
        assert_close("dinp", &d, grads.get(&xv).unwrap());
    }

    #[test]
    fn attention_forward_and_backward_match_candle() {
        let shape = AttentionShape { batch: 2, seq: 5, channels: 12, heads: 3 };
        let (b, t, c, nh) = (2, 5, 12, 3);
        let hd = c / nh;
        let qkv = random(b * t * 3 * c, 12, 2.0);
        let up = random(b * t * c, 13, 1.0);
        let qkv_v = var(&qkv, &[b, t, 3 * c]);
        // The composed attention of the model, in f64.
        let heads = qkv_v.reshape((b, t, 3, nh, hd)).unwrap().permute((2, 0, 3, 1, 4)).unwrap().contiguous().unwrap();
        let q = (heads.get(0).unwrap() * (1.0 / (hd as f64).sqrt())).unwrap();
        let (k, v) = (heads.get(1).unwrap(), heads.get(2).unwrap());
        let mask: Vec<f64> = (0..t).flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f64::NEG_INFINITY })).collect();
        let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
        let scores = q.matmul(&k.t().unwrap()).unwrap().broadcast_add(&mask).unwrap();
        let max = scores.max_keepdim(D::Minus1).unwrap().detach();
        let exp = scores.broadcast_sub(&max).unwrap().exp().unwrap();
        let probs = exp.broadcast_div(&exp.sum_keepdim(D::Minus1).unwrap()).unwrap();
        let out = probs.matmul(&v).unwrap().transpose(1, 2).unwrap().reshape((b, t, c)).unwrap();
        let grads = weighted_sum(&out, &up).backward().unwrap();

        let (mut got, mut att) = (vec![0f32; b * t * c], vec![f32::NAN; shape.att_len()]);
        on_three_threads(|| attention_forward(&mut got, &mut att, &qkv, shape));
        assert_close("out", &got, &out);
        assert_close("probabilities", &att, &probs);
        let (mut dqkv, mut scratch) = (vec![f32::NAN; qkv.len()], vec![f32::NAN; shape.att_len()]);
        on_three_threads(|| attention_backward(&mut dqkv, &mut scratch, &up, &qkv, &att, shape));
        assert_close("dqkv", &dqkv, grads.get(&qkv_v).unwrap());
    }

    #[test]
    fn cross_entropy_and_its_gradient_match_candle() {
        let (rows, vocab) = (6, 37);
        let logits = random(rows * vocab, 14, 4.0);
        let targets: Vec<u32> = vec![0, 36, 5, 5, 17, 1];
        let lv = var(&logits, &[rows, vocab]);
        let max = lv.max_keepdim(D::Minus1).unwrap().detach();
        let shifted = lv.broadcast_sub(&max).unwrap();
        let log_probs = shifted.broadcast_sub(&shifted.exp().unwrap().sum_keepdim(D::Minus1).unwrap().log().unwrap()).unwrap();
        let idx = Tensor::new(targets.as_slice(), &Device::Cpu).unwrap().unsqueeze(1).unwrap();
        let per_row = log_probs.gather(&idx, 1).unwrap().neg().unwrap().squeeze(1).unwrap();
        let grads = per_row.mean_all().unwrap().backward().unwrap();

        let mut buf = logits.clone();
        let mut losses = vec![0f32; rows];
        on_three_threads(|| cross_entropy(&mut buf, &mut losses, &targets, vocab, None));
        assert_close("losses", &losses, &per_row);
        let mut buf = logits.clone();
        on_three_threads(|| cross_entropy(&mut buf, &mut losses, &targets, vocab, Some(1.0 / rows as f32)));
        assert_close("losses (with gradient)", &losses, &per_row);
        assert_close("dlogits", &buf, grads.get(&lv).unwrap());
    }

    #[test]
    fn embedding_forward_and_backward_match_candle() {
        let (b, t, c, vocab) = (3, 4, 8, 10);
        let tokens: Vec<u32> = vec![1, 2, 3, 1, 9, 9, 0, 2, 5, 1, 1, 4];
        let wte = random(vocab * c, 15, 1.0);
        let wpe = random(t * c, 16, 1.0);
        let up = random(b * t * c, 17, 1.0);
        let (wte_v, wpe_v) = (var(&wte, &[vocab, c]), var(&wpe, &[t, c]));
        let idx = Tensor::new(tokens.as_slice(), &Device::Cpu).unwrap();
        let out = wte_v.index_select(&idx, 0).unwrap().reshape((b, t, c)).unwrap().broadcast_add(&wpe_v).unwrap();
        let grads = weighted_sum(&out, &up).backward().unwrap();

        let mut got = vec![0f32; b * t * c];
        on_three_threads(|| embedding_forward(&mut got, &tokens, &wte, &wpe, t, c));
        assert_close("out", &got, &out);
        // dwte adds to what is there (the tied head's gradient), dwpe is written.
        let (mut dwte, mut dwpe) = (vec![0.5f32; vocab * c], vec![f32::NAN; t * c]);
        on_three_threads(|| embedding_backward(&mut dwte, &mut dwpe, &up, &tokens, t, c));
        assert_close("dwte", &dwte, &(grads.get(&wte_v).unwrap() + 0.5).unwrap());
        assert_close("dwpe", &dwpe, grads.get(&wpe_v).unwrap());
    }

    #[test]
    fn adamw_update_matches_the_formula() {
        let n = 1000;
        let (params, grads) = (random(n, 18, 1.0), random(n, 19, 0.1));
        let (m0, v0) = (random(n, 20, 0.01), random(n, 21, 0.001).iter().map(|v| v.abs()).collect::<Vec<_>>());
        let step = AdamWStep {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            decay_factor: 1.0 - 1e-2 * 0.1,
            inv_bias_correction1: 1.0 / (1.0 - 0.9f32.powi(3)),
            inv_bias_correction2: 1.0 / (1.0 - 0.99f32.powi(3)),
            grad_scale: 0.5,
        };
        let (mut p, mut m, mut v) = (params.clone(), m0.clone(), v0.clone());
        on_three_threads(|| adamw_update(&mut p, &grads, &mut m, &mut v, step));
        for i in 0..n {
            let g = f64::from(grads[i]) * 0.5;
            let m1 = 0.9 * f64::from(m0[i]) + 0.1 * g;
            let v1 = 0.99 * f64::from(v0[i]) + 0.01 * g * g;
            let update = (m1 / (1.0 - 0.9f64.powi(3))) / ((v1 / (1.0 - 0.99f64.powi(3))).sqrt() + 1e-8);
            let p1 = f64::from(params[i]) * (1.0 - 1e-3) - 1e-2 * update;
            assert!((f64::from(m[i]) - m1).abs() < 1e-8, "m[{i}]");
            assert!((f64::from(v[i]) - v1).abs() < 1e-9, "v[{i}]");
            assert!((f64::from(p[i]) - p1).abs() < 1e-6, "param[{i}]: {} vs {p1}", p[i]);
        }
    }

    #[test]
    fn exp_matches_std_within_two_ulp_relative() {
        let mut worst = 0f64;
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let want = f64::from(x).exp();
            let got = f64::from(exp_f32(x));
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "{worst}");
        assert!(exp_f32(f32::NEG_INFINITY) < 1e-37);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0f64;
        for i in -600..=600 {
            let x = i as f32 * 0.01;
            let want = candle_core::cpu::erf::erf_f64(f64::from(x));
            worst = worst.max((f64::from(erf_f32(x)) - want).abs());
        }
        assert!(worst < 3e-7, "{worst}");
    }

    #[test]
    fn reductions_cover_the_remainder() {
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        // 0 + … + 36 = 666; Σ i² = 36·37·73/6 = 16,206.
        assert_eq!(sum(&a), 666.0);
        assert_eq!(dot(&a, &a), 16_206.0);
        assert_eq!(max(&a), 36.0);
        assert_eq!(sum_of_squares(&a), 16_206.0);
    }
}
