//! Instruction-set selection. The only place (with its submodules) where `std::arch` appears.
//!
//! The ISA is detected once at run time — never from the build machine's CPU — and can be
//! forced with the environment variable `IQRS_ISA=scalar|avx2|avx512` (read once) or
//! [`set_isa`]. Asking for an ISA the CPU lacks falls back to the best one it has.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::quants::{scalar_kernels, Kernels};
use crate::registry::QType;

#[cfg(target_arch = "x86_64")]
pub mod x86_64;

/// Instruction sets with kernels of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust; the reference every other path is tested against.
    Scalar,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL (+ VNNI where present).
    Avx512,
}

impl Isa {
    /// Every ISA, weakest first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// Lower-case name as accepted by `IQRS_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a name as accepted by `IQRS_ISA`.
    pub fn from_name(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name() == s.trim().to_ascii_lowercase())
    }

    /// Whether this CPU can run the ISA's kernels.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86_64::avx2_available(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86_64::avx512_available(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// Every ISA this CPU can run, weakest first.
pub fn available_isas() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
}

/// Whether the CPU is x86-64-v3 (AVX2, FMA, POPCNT, BMI1/2, LZCNT): the quantizers' fast path.
#[inline]
pub fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        has!("fma") && has!("avx2") && has!("popcnt") && has!("bmi1") && has!("bmi2") && has!("lzcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

const UNSET: u8 = u8::MAX;
static CURRENT: AtomicU8 = AtomicU8::new(UNSET);

fn best_available() -> Isa {
    *available_isas().last().unwrap_or(&Isa::Scalar)
}

fn clamp_to_available(want: Isa) -> Isa {
    available_isas().into_iter().filter(|&i| i <= want).last().unwrap_or(Isa::Scalar)
}

/// The ISA in use: `IQRS_ISA` if set (clamped to what the CPU has), else the best available.
pub fn current_isa() -> Isa {
    let v = CURRENT.load(Ordering::Relaxed);
    if v != UNSET {
        return Isa::ALL[v as usize];
    }
    let isa = match std::env::var("IQRS_ISA").ok().and_then(|s| Isa::from_name(&s)) {
        Some(want) => clamp_to_available(want),
        None => best_available(),
    };
    CURRENT.store(isa as u8, Ordering::Relaxed);
    isa
}

/// Forces an ISA for all later calls (clamped to what the CPU has); returns the one in force.
pub fn set_isa(want: Isa) -> Isa {
    let isa = clamp_to_available(want);
    CURRENT.store(isa as u8, Ordering::Relaxed);
    isa
}

/// The kernels of `t` for the ISA in use.
pub fn kernels(t: QType) -> Kernels {
    kernels_for(t, current_isa())
}

/// The kernels of `t` for a given ISA (clamped to what the CPU has); types or operations without
/// a kernel of that ISA use the scalar one.
pub fn kernels_for(t: QType, isa: Isa) -> Kernels {
    let isa = clamp_to_available(isa);
    let scalar = scalar_kernels(t);
    match isa {
        Isa::Scalar => scalar,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => x86_64::kernels(t, isa, scalar),
        #[cfg(not(target_arch = "x86_64"))]
        _ => scalar,
    }
}

/// `out[c] = (Σwxq, Σwq², Σwxq', Σwq'²)` for each candidate inverse scale `ids[c]` (at most 16),
/// `q`/`q'` the nearest values of an `n`-entry grid (`values`, midpoints `mids`) to `id·x`/`-id·x`:
/// the quantizers' scale search, one candidate per SIMD lane, bit for bit the scalar sums.
pub type PmSumsFn = fn(values: &[f32], mids: &[f32], n: usize, ids: &[f32], x: &[f32], w: &[f32], out: &mut [[f32; 4]]);

/// The lane-parallel scale-search kernel of the ISA in use, if it has one (AVX-512); without one
/// the quantizers evaluate candidates one by one (same results).
#[inline]
pub fn pm_sums_kernel() -> Option<PmSumsFn> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::pm_sums_kernel(current_isa())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// IQ2_K's 3-threshold search (`quants::k::threshold4_search`, its scalar oracle) over the
/// prefix sums `sx`, `sw` of `w·x` and `w` of 16 sorted weights and four value orders:
/// `(scale, order)`, the same bits. `sxx` (the prefix sums of `w·x²`) lets a kernel skip
/// candidates that provably cannot win.
pub type Threshold4Fn = fn(sx: &[f32; 17], sw: &[f32; 17], sxx: &[f32; 17], vals: &[[f32; 4]; 4]) -> (f32, usize);

/// The vectorized IQ2_K threshold search of the ISA in use, if it has one (AVX-512).
#[inline]
pub fn threshold4_kernel() -> Option<Threshold4Fn> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::threshold4_kernel(current_isa())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// IQ2_KS's exhaustive split search (`quants::iq2_ks::split_search_sums`, its scalar oracle)
/// over the prefix sums of 32 sorted weights and four value orders: `(scale, order)`, the same bits.
pub type Split32Fn = fn(sx: &[f32; 33], sw: &[f32; 33], vals: &[[f32; 4]; 4]) -> (f32, usize);

/// The vectorized IQ2_KS split search of the ISA in use, if it has one (AVX-512).
#[inline]
pub fn split32_kernel() -> Option<Split32Fn> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::split32_kernel(current_isa())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// IQ2_KL's pair search on SIMD lanes, one pair per lane (the same bits as the scalar code):
/// `sums` = `quants::iq2_kl::candidate_sums` (the scale search's `(Σwxq, Σwq²)` of both signs
/// for each candidate inverse scale), `assign` = `quants::iq2_kl::assign` (the grid
/// points at one inverse scale).
#[derive(Clone, Copy)]
pub struct Iq2klKernels {
    pub sums: fn(ids: &[f32], x: &[f32; 32], w: &[f32; 32], out: &mut [[f32; 4]]),
    pub assign: fn(id: f32, x: &[f32; 32], w: &[f32; 32], points: &mut [u8; 16]),
}

/// IQ2_KL's vectorized pair search for the ISA in use, if it has one (AVX-512).
#[inline]
pub fn iq2kl_kernels() -> Option<Iq2klKernels> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::iq2kl_kernels(current_isa())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// IQ4_KSS's scale search, one candidate per lane: for each `ids[c]` (at most 16) on a 16-entry
/// grid (`values`, `mids`), the least-squares sums of its pruned index groups (`plain`: the plain
/// grid the pruning measures against), bit for bit those of the scalar search.
pub type KssSumsFn = fn(values: &[f32; 16], mids: &[f32], plain: &[f32; 16], ids: &[f32], x: &[f32; 32], w: &[f32; 32], out: &mut [[f32; 4]]);

/// The lane-parallel IQ4_KSS candidate kernel of the ISA in use, if it has one (AVX-512).
#[inline]
pub fn kss_sums_kernel() -> Option<KssSumsFn> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::kss_sums_kernel(current_isa())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// The SIMD matrix-multiply microkernel of an ISA (clamped to what the CPU has), if it has one;
/// without one, products go row by row through the dot kernels.
pub fn gemm_tile(isa: Isa) -> Option<crate::gemm::TileFn> {
    let isa = clamp_to_available(isa);
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::gemm_tile(isa)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        None
    }
}

/// How far ahead (bytes) of the block being dotted the SIMD mat-vec kernels prefetch the weights:
/// more than a memory latency's worth of compute at 10–30 GB/s. On an Intel Xeon (the anchors'
/// machine kind) the one-row types' cold mat-vec went from 49–61% of the read bandwidth without it
/// to 70–97% with it (2 KiB: 67–91%, 8 KiB as 4 KiB); for IQ5_K_R4 2 KiB measured 12.4 GB/s cold
/// on an AMD EPYC and 4 KiB 20.6–24.3 (BENCHMARKS.md).
pub const PREFETCH_AHEAD: usize = 4096;

/// Asks the CPU to start loading the `len` bytes [`PREFETCH_AHEAD`] beyond offset `off` of
/// `src` (the block a mat-vec dots now) into its caches, the weights it reads next while it
/// computes the current ones: streamed from cold memory they arrive before they are needed,
/// which the hardware prefetchers alone do not achieve (on Intel for any type, on AMD for the R4
/// blocks' far-apart fields). The range may extend past the end of `src` (into whatever
/// follows, or nothing): a prefetch reads nothing architecturally and never faults. A no-op on
/// other CPUs.
#[inline(always)]
pub fn prefetch_ahead(src: &[u8], off: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = src.as_ptr().wrapping_add(off + PREFETCH_AHEAD);
        let mut o = 0;
        while o < len {
            // SAFETY: SSE is part of x86-64, and a prefetch dereferences nothing.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(o).cast()) };
            o += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (src, off, len);
    }
}

/// Whether every value of `x` is finite (neither infinite nor NaN); the check every quantizer
/// input passes, so it runs at the speed of the L1 cache rather than a scalar loop's.
pub fn all_finite(x: &[f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if x86_64::avx2_available() {
        return x86_64::all_finite_avx2(x);
    }
    all_finite_scalar(x)
}

/// [`all_finite`] in portable code (branch-free, so the compiler vectorizes it for its target).
pub fn all_finite_scalar(x: &[f32]) -> bool {
    const EXP: u32 = 0x7f80_0000;
    x.iter().fold(0u32, |acc, v| acc | ((v.to_bits() & EXP) == EXP) as u32) == 0
}

/// The wrapping sum of all bytes of `b`, read with the widest loads the CPU has: a memory-read
/// probe (the benchmark's measure of read bandwidth), not a kernel of any format.
pub fn byte_sum(b: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if x86_64::avx2_available() {
        return x86_64::byte_sum_avx2(b);
    }
    b.iter().map(|&v| v as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_finite_finds_every_inf_and_nan() {
        let base: Vec<f32> = (0..300).map(|i| (i as f32 - 150.0) * 1e35).collect();
        assert!(all_finite(&base) && all_finite_scalar(&base), "finite values up to 1.5e37");
        assert!(all_finite(&[f32::MAX, -f32::MAX, f32::MIN_POSITIVE, -0.0, 1e-45]));
        assert!(all_finite(&[]));
        // every position: in the 32-value chunks and in the remainder
        for pos in [0, 7, 8, 31, 32, 63, 255, 256, 299] {
            for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN, f32::from_bits(0x7f80_0001)] {
                let mut x = base.clone();
                x[pos] = bad;
                assert!(!all_finite(&x), "{bad} at {pos}");
                assert!(!all_finite_scalar(&x), "{bad} at {pos} (scalar)");
            }
        }
    }
}
