//! The fp32 peak FLOP/s of this CPU, measured: what MFU divides by for a run trained here.
//!
//! A textbook peak (`cores × clock × FLOPs per cycle`) needs the clock the cores really run
//! at, which a virtual machine's `/proc/cpuinfo` does not give: on the machine this project is
//! developed on it reports 2.6 GHz while the cores run FMAs at about 4.2 GHz, so a computed
//! peak would be 40% low and MFU would read above 100%. So the peak is measured instead, the
//! way peak-FLOPs microbenchmarks do it: each thread runs [`FMA_CHAINS`] independent chains
//! of fused multiply-adds in the widest vector registers the engine uses (AVX-512: 16 f32
//! lanes; AVX2: 8), enough chains to cover the FMA latency on every FMA unit, and the FLOPs
//! (2 per lane per FMA) are divided by the wall time. Each thread's figure is the best of a
//! few short rounds, so a round that the OS interrupted does not lower it. At most one thread
//! per core is measured: threads beyond the cores share their FMA units.
//!
//! The measured figure is a hardware ceiling: the engine's matrix products reach about 90%
//! of it on large shapes (docs/performance.md).

use std::time::{Duration, Instant};

use crate::kernels::{SimdLevel, detected_simd_level};

/// Independent FMA chains per thread: with 4-cycle latency and 2 FMA units, 8 chains keep
/// the units busy; 16 leave a margin for wider machines.
pub const FMA_CHAINS: usize = 16;

/// Wall time spent measuring, per round.
pub const ROUND_DURATION: Duration = Duration::from_millis(20);

/// Rounds per thread; the best one counts.
pub const ROUNDS: usize = 5;

/// A measured peak: FLOP/s and how it was measured, for people.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredPeak {
    /// f32 FLOP/s of all `threads` together.
    pub flops_per_sec: f64,
    /// Threads that ran at once.
    pub threads: usize,
    /// The instructions used (`"AVX-512"`, `"AVX2"`).
    pub simd: &'static str,
}

/// Measure the f32 FMA peak of `threads` threads running at once (about
/// `ROUNDS × ROUND_DURATION`, 100 ms). `None` when this CPU has neither AVX-512 nor AVX2 with
/// FMA (the engine's vector levels), or `threads` is 0 or cannot be started.
///
/// More threads than cores share the cores' FMA units, so at most as many threads as the
/// process has cores are measured (`threads` in the answer says how many). The instructions
/// are the widest the CPU has, whatever `TRAINCONSOLE_SIMD` says: the matrix products, which
/// do most of the FLOPs, use them regardless. Other processes busy on the cores lower the
/// figure (and the training throughput with it).
pub fn measure_fp32_peak(threads: usize) -> Option<MeasuredPeak> {
    let threads = threads.min(std::thread::available_parallelism().map_or(threads, std::num::NonZeroUsize::get));
    let simd = match detected_simd_level() {
        SimdLevel::Avx512 => "AVX-512",
        SimdLevel::Avx2 => "AVX2",
        SimdLevel::Portable => return None,
    };
    if threads == 0 {
        return None;
    }
    let per_thread: Vec<Option<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(best_thread_flops)).collect();
        handles.into_iter().map(|handle| handle.join().ok().flatten()).collect()
    });
    let flops_per_sec = per_thread.into_iter().sum::<Option<f64>>()?;
    (flops_per_sec.is_finite() && flops_per_sec > 0.0).then_some(MeasuredPeak { flops_per_sec, threads, simd })
}

/// The best FLOP/s of one thread over [`ROUNDS`] rounds.
fn best_thread_flops() -> Option<f64> {
    // Calibrate the iteration count so that a round takes about ROUND_DURATION.
    let mut iters = 1u64 << 14;
    loop {
        let started = Instant::now();
        std::hint::black_box(fma_round(iters)?);
        let secs = started.elapsed().as_secs_f64();
        if secs >= ROUND_DURATION.as_secs_f64() / 4.0 || iters >= 1 << 32 {
            let scale = ROUND_DURATION.as_secs_f64() / secs.max(1e-9);
            iters = ((iters as f64 * scale) as u64).max(1);
            break;
        }
        iters *= 4;
    }
    let mut best = 0f64;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let (flops, sink) = fma_round(iters)?;
        std::hint::black_box(sink);
        best = best.max(flops / started.elapsed().as_secs_f64().max(1e-9));
    }
    Some(best)
}

/// Run `iters` iterations of [`FMA_CHAINS`] independent vector FMAs; returns the FLOPs done
/// and a value that depends on every chain (so the work cannot be optimised away).
fn fma_round(iters: u64) -> Option<(f64, f32)> {
    #[cfg(target_arch = "x86_64")]
    {
        match detected_simd_level() {
            // SAFETY: detected_simd_level() reports AVX-512 F only when the CPU has it.
            SimdLevel::Avx512 => return Some((flops(iters, 16), unsafe { x86::chains_avx512(iters) })),
            // SAFETY: detected_simd_level() reports AVX2 only when the CPU has AVX2 and FMA.
            SimdLevel::Avx2 => return Some((flops(iters, 8), unsafe { x86::chains_avx2(iters) })),
            SimdLevel::Portable => {}
        }
    }
    let _ = iters;
    None
}

/// FLOPs of `iters` iterations of [`FMA_CHAINS`] FMAs on `lanes` lanes: 2 per lane.
fn flops(iters: u64, lanes: u64) -> f64 {
    iters as f64 * (FMA_CHAINS as u64 * lanes * 2) as f64
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Sixteen independent chains `a ← a·x + y` of 16-lane FMAs. The accumulators are
    /// separate locals so that they stay in registers.
    #[target_feature(enable = "avx512f")]
    pub(super) fn chains_avx512(iters: u64) -> f32 {
        let x = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let y = _mm512_set1_ps(std::hint::black_box(1e-7));
        let mut a = [_mm512_set1_ps(1.0); super::FMA_CHAINS];
        let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7, mut a8, mut a9, mut a10, mut a11, mut a12, mut a13, mut a14, mut a15] = a;
        for _ in 0..iters {
            a0 = _mm512_fmadd_ps(a0, x, y);
            a1 = _mm512_fmadd_ps(a1, x, y);
            a2 = _mm512_fmadd_ps(a2, x, y);
            a3 = _mm512_fmadd_ps(a3, x, y);
            a4 = _mm512_fmadd_ps(a4, x, y);
            a5 = _mm512_fmadd_ps(a5, x, y);
            a6 = _mm512_fmadd_ps(a6, x, y);
            a7 = _mm512_fmadd_ps(a7, x, y);
            a8 = _mm512_fmadd_ps(a8, x, y);
            a9 = _mm512_fmadd_ps(a9, x, y);
            a10 = _mm512_fmadd_ps(a10, x, y);
            a11 = _mm512_fmadd_ps(a11, x, y);
            a12 = _mm512_fmadd_ps(a12, x, y);
            a13 = _mm512_fmadd_ps(a13, x, y);
            a14 = _mm512_fmadd_ps(a14, x, y);
            a15 = _mm512_fmadd_ps(a15, x, y);
        }
        a = [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15];
        a.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    /// As [`chains_avx512`] with 8-lane AVX2 FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn chains_avx2(iters: u64) -> f32 {
        let x = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let y = _mm256_set1_ps(std::hint::black_box(1e-7));
        let mut a = [_mm256_set1_ps(1.0); super::FMA_CHAINS];
        let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7, mut a8, mut a9, mut a10, mut a11, mut a12, mut a13, mut a14, mut a15] = a;
        for _ in 0..iters {
            a0 = _mm256_fmadd_ps(a0, x, y);
            a1 = _mm256_fmadd_ps(a1, x, y);
            a2 = _mm256_fmadd_ps(a2, x, y);
            a3 = _mm256_fmadd_ps(a3, x, y);
            a4 = _mm256_fmadd_ps(a4, x, y);
            a5 = _mm256_fmadd_ps(a5, x, y);
            a6 = _mm256_fmadd_ps(a6, x, y);
            a7 = _mm256_fmadd_ps(a7, x, y);
            a8 = _mm256_fmadd_ps(a8, x, y);
            a9 = _mm256_fmadd_ps(a9, x, y);
            a10 = _mm256_fmadd_ps(a10, x, y);
            a11 = _mm256_fmadd_ps(a11, x, y);
            a12 = _mm256_fmadd_ps(a12, x, y);
            a13 = _mm256_fmadd_ps(a13, x, y);
            a14 = _mm256_fmadd_ps(a14, x, y);
            a15 = _mm256_fmadd_ps(a15, x, y);
        }
        a = [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15];
        let mut out = [0f32; 8];
        let mut sum = 0.0;
        for v in a {
            // SAFETY: out holds 8 f32, the width of one __m256.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
            sum += out.iter().sum::<f32>();
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_count_of_a_round() {
        // 16 chains × 16 lanes × 2 FLOPs × 1000 iterations.
        assert_eq!(flops(1000, 16), 512_000.0);
        assert_eq!(flops(1000, 8), 256_000.0);
    }

    #[test]
    fn the_chains_compute_the_recurrence() {
        // a ← a·x + y from a = 1 with x = 0.999999, y = 1e-7, in f32, summed over all lanes
        // and chains; compared with the same recurrence in scalar f32 (FMA rounds once, so
        // use mul_add).
        let iters = 1000;
        let mut a = 1.0f32;
        for _ in 0..iters {
            a = a.mul_add(0.999_999, 1e-7);
        }
        if let Some((_, sum)) = fma_round(iters) {
            let lanes = if detected_simd_level() == SimdLevel::Avx512 { 16.0 } else { 8.0 };
            let want = a * lanes * FMA_CHAINS as f32;
            assert!((sum - want).abs() <= want * 1e-5, "{sum} vs {want}");
        }
    }

    #[test]
    fn zero_threads_measure_nothing() {
        assert_eq!(measure_fp32_peak(0), None);
    }

    #[test]
    fn no_more_threads_than_cores_are_measured() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        if let Some(peak) = measure_fp32_peak(cores + 1) {
            assert_eq!(peak.threads, cores);
        }
    }
}
