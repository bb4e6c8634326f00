//! The peak FLOP/s that MFU divides by, for a run trained on this machine's CPU.
//!
//! Unless `--peak-flops` says otherwise, the peak is **measured** when training starts
//! ([`measured`]): the training threads run independent vector FMAs for about 100 ms
//! (`trainconsole_trainer::peak`). The clock a virtual machine reports is often not the clock
//! its cores run at (here 2.6 GHz reported, about 4.2 GHz real), so a computed peak can be
//! far too low and put MFU above 100%.
//!
//! Where it cannot be measured (a CPU without AVX2/FMA or AVX-512), it is estimated
//! ([`estimate_cpu`]) as `threads × clock × f32 FLOPs per cycle per core`, the textbook
//! dense peak:
//!
//! * threads: `std::thread::available_parallelism()`;
//! * clock: the highest `cpu MHz` in `/proc/cpuinfo` (the current clock, so a turbo peak may
//!   be higher), else [`FALLBACK_CLOCK_HZ`];
//! * FLOPs per cycle: 2 FMA units × SIMD lanes × 2 (a fused multiply-add is two FLOPs):
//!   64 with AVX-512, 32 with AVX2 and FMA (and with AVX-512 on AMD Zen 4, `cpu family` 25,
//!   which runs it on 256-bit units), 16 with NEON on aarch64, else 8 (SSE, no FMA).
//!
//! The estimate and how it was made travel in `run_start` (`peak_flops_per_sec`,
//! `peak_flops_source`), so every viewer shows the same MFU and says what it is relative to.

/// Clock assumed when `/proc/cpuinfo` gives none, in Hz.
pub const FALLBACK_CLOCK_HZ: f64 = 3.0e9;

/// A peak FLOP/s and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    /// FLOP/s.
    pub flops_per_sec: f64,
    /// How it was obtained, for people.
    pub source: String,
}

/// The peak given with `--peak-flops`.
pub fn given(flops_per_sec: f64) -> Peak {
    Peak { flops_per_sec, source: "set with --peak-flops".to_string() }
}

/// The f32 peak of `threads` training threads on this CPU, measured (see the module docs);
/// the [`estimate_cpu`] figure where it cannot be measured.
pub fn measured(threads: usize) -> Peak {
    match trainconsole_trainer::peak::measure_fp32_peak(threads) {
        Some(peak) => Peak {
            flops_per_sec: peak.flops_per_sec,
            source: format!(
                "measured: {} thread{} running independent {} FMAs; set --peak-flops for another figure",
                peak.threads,
                if peak.threads == 1 { "" } else { "s" },
                peak.simd
            ),
        },
        None => estimate_cpu(),
    }
}

/// The estimated f32 peak of this machine's CPU (see the module docs).
pub fn estimate_cpu() -> Peak {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let (clock_hz, clock_source) = match max_cpu_mhz(&cpuinfo) {
        Some(mhz) => (mhz * 1e6, "/proc/cpuinfo"),
        None => (FALLBACK_CLOCK_HZ, "assumed"),
    };
    let (flops_per_cycle, simd) = f32_flops_per_cycle(is_amd_zen4(&cpuinfo));
    Peak {
        flops_per_sec: threads as f64 * clock_hz * flops_per_cycle,
        source: format!(
            "estimated: {threads} threads × {:.2} GHz ({clock_source}) × {flops_per_cycle} f32 FLOP/cycle ({simd}); set --peak-flops for the true figure",
            clock_hz / 1e9
        ),
    }
}

/// The highest `cpu MHz` line of a `/proc/cpuinfo` text.
fn max_cpu_mhz(cpuinfo: &str) -> Option<f64> {
    cpuinfo
        .lines()
        .filter(|line| line.starts_with("cpu MHz"))
        .filter_map(|line| line.split(':').nth(1)?.trim().parse::<f64>().ok())
        .filter(|mhz| mhz.is_finite() && *mhz > 0.0)
        .reduce(f64::max)
}

/// Whether a `/proc/cpuinfo` text is of an AMD family 25 CPU (Zen 3 and Zen 4), whose
/// AVX-512 (Zen 4) executes on 256-bit units.
fn is_amd_zen4(cpuinfo: &str) -> bool {
    let field = |name: &str| {
        cpuinfo.lines().find(|line| line.split(':').next().is_some_and(|key| key.trim() == name)).and_then(|line| line.split(':').nth(1)).map(str::trim)
    };
    field("vendor_id") == Some("AuthenticAMD") && field("cpu family") == Some("25")
}

/// f32 FLOPs per cycle per core: 2 FMA units × lanes × 2, and the instruction set it assumes.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn f32_flops_per_cycle(amd_zen4: bool) -> (f64, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && amd_zen4 {
            return (32.0, "AVX-512 on AMD Zen 4's 256-bit units: 2 FMA units × 8 lanes × 2");
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            return (64.0, "AVX-512: 2 FMA units × 16 lanes × 2");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return (32.0, "AVX2: 2 FMA units × 8 lanes × 2");
        }
        (8.0, "SSE: 4 lanes × (1 add + 1 multiply)")
    }
    #[cfg(target_arch = "aarch64")]
    {
        (16.0, "NEON: 2 FMA units × 4 lanes × 2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        (2.0, "scalar: 1 FMA")
    }
}

/// Parse a `--peak-flops` value: a positive number of FLOP/s such as `3e11` or `312e12`.
pub fn parse_flops(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a positive number of FLOP/s (for example 3e11)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_clock_of_cpuinfo() {
        let text = "processor\t: 0\ncpu MHz\t\t: 2596.096\nprocessor\t: 1\ncpu MHz\t\t: 3400.5\n";
        assert_eq!(max_cpu_mhz(text), Some(3400.5));
        assert_eq!(max_cpu_mhz("model name: x\n"), None);
    }

    #[test]
    fn zen4_is_told_by_vendor_and_family() {
        assert!(is_amd_zen4("vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"));
        assert!(!is_amd_zen4("vendor_id\t: AuthenticAMD\ncpu family\t: 26\n"));
        assert!(!is_amd_zen4("vendor_id\t: GenuineIntel\ncpu family\t: 6\n"));
    }

    #[test]
    fn measured_peak_names_how_and_lies_near_the_estimate() {
        let peak = measured(1);
        assert!(peak.flops_per_sec.is_finite() && peak.flops_per_sec > 1e9, "{peak:?}");
        if peak.source.starts_with("measured: 1 thread running independent ") {
            // One thread's FMA peak: between a quarter and four times the textbook figure for
            // one core at the reported clock (turbo and virtual clocks stay well inside).
            let per_core = estimate_cpu().flops_per_sec / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            assert!(peak.flops_per_sec > per_core / 4.0 && peak.flops_per_sec < per_core * 4.0, "{peak:?} vs {per_core}");
        } else {
            assert!(peak.source.starts_with("estimated: "), "{}", peak.source);
        }
    }

    #[test]
    fn estimate_names_its_factors() {
        let peak = estimate_cpu();
        assert!(peak.flops_per_sec.is_finite() && peak.flops_per_sec > 1e9, "{peak:?}");
        assert!(peak.source.starts_with("estimated: ") && peak.source.contains("FLOP/cycle"), "{}", peak.source);
    }

    #[test]
    fn peak_flag_values() {
        assert_eq!(parse_flops("3e11"), Ok(3e11));
        assert_eq!(parse_flops(" 312000000000000 "), Ok(312e12));
        for bad in ["0", "-1", "fast", "inf", "NaN"] {
            assert!(parse_flops(bad).unwrap_err().contains("positive number of FLOP/s"), "{bad}");
        }
    }
}
