//! x86-64 kernels: AVX2 (+FMA) and AVX-512 (F, BW, VL; dot products with VNNI where present).
//! The weight quantizers stay in `quants` (their hot loops are compiled for x86-64-v3 there);
//! this module replaces the decode and dot kernels and the Q8_K (activation) quantizer.

use super::Isa;
use crate::quants::Kernels;
use crate::registry::QType;

mod avx2;
mod avx512;
mod rowscale;

/// AVX2 and FMA are present.
pub fn avx2_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// AVX-512 F/BW/VL (and AVX2) are present.
pub fn avx512_available() -> bool {
    avx2_available()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

/// AVX-512 VNNI (`vpdpbusd`) is present as well.
pub fn avx512_vnni_available() -> bool {
    avx512_available() && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// AVX-512 VBMI (`vpermb`) is present as well (IQ2_KL's AVX-512 dot product uses it).
pub fn avx512_vbmi_available() -> bool {
    avx512_vnni_available() && std::arch::is_x86_feature_detected!("avx512vbmi")
}

/// Replaces the scalar decode/dot kernels of `t` by the ISA's where it has them. `isa` must be
/// available on this CPU (the caller clamps it); the AVX-512 dot kernels additionally need
/// VNNI (and those of the row-scale types VBMI) and fall back to AVX2 without it.
pub fn kernels(t: QType, isa: Isa, scalar: Kernels) -> Kernels {
    macro_rules! set {
        ($k:ident, $dq:path, $dot:path) => {{
            $k.dequantize = |src, _cols, out| $dq(src, out);
            $k.dot = |src, _cols, y, out| out[0] = $dot(src, y);
        }};
    }
    let mut k = scalar;
    match isa {
        Isa::Scalar => {}
        Isa::Avx2 | Isa::Avx512 => {
            match t {
                QType::Q8K => {
                    set!(k, avx2::q8_k_dequantize, avx2::q8_k_dot);
                    k.quantize = |x, _cols, _im, out| avx2::q8_k_quantize(x, out);
                }
                QType::IQ4KS => set!(k, avx2::iq4_ks_dequantize, avx2::iq4_ks_dot),
                QType::IQ4KSS => set!(k, avx2::iq4_kss_dequantize, avx2::iq4_kss_dot),
                QType::IQ2K if avx2::k::available() => set!(k, avx2::k::iq2_k_dequantize, avx2::k::iq2_k_dot),
                QType::IQ3K if avx2::k::available() => set!(k, avx2::k::iq3_k_dequantize, avx2::k::iq3_k_dot),
                QType::IQ4K if avx2::k::available() => set!(k, avx2::k::iq4_k_dequantize, avx2::k::iq4_k_dot),
                QType::IQ5K if avx2::k::available() => set!(k, avx2::k::iq5_k_dequantize, avx2::k::iq5_k_dot),
                QType::IQ6K if avx2::k::available() => set!(k, avx2::k::iq6_k_dequantize, avx2::k::iq6_k_dot),
                QType::IQ2KR4 if avx2::k::available() => (k.dequantize, k.dot) = (avx2::r4::iq2_k_r4_dequantize, avx2::r4::iq2_k_r4_dot),
                QType::IQ3KR4 if avx2::k::available() => (k.dequantize, k.dot) = (avx2::r4::iq3_k_r4_dequantize, avx2::r4::iq3_k_r4_dot),
                QType::IQ4KR4 if avx2::k::available() => (k.dequantize, k.dot) = (avx2::r4::iq4_k_r4_dequantize, avx2::r4::iq4_k_r4_dot),
                QType::IQ5KR4 if avx2::k::available() => (k.dequantize, k.dot) = (avx2::r4::iq5_k_r4_dequantize, avx2::r4::iq5_k_r4_dot),
                QType::IQ4KSR4 if avx2::k::available() => (k.dequantize, k.dot) = (avx2::r4::iq4_ks_r4_dequantize, avx2::r4::iq4_ks_r4_dot),
                QType::IQ5KSR4 if avx2::k::available() => (k.dequantize, k.dot) = (avx2::r4::iq5_ks_r4_dequantize, avx2::r4::iq5_ks_r4_dot),
                QType::IQ5KS => set!(k, rowscale::iq5_ks_dequantize_avx2, rowscale::iq5_ks_dot_avx2),
                QType::IQ3KS => set!(k, rowscale::iq3_ks_dequantize_avx2, rowscale::iq3_ks_dot_avx2),
                QType::IQ2KS => set!(k, rowscale::iq2_ks_dequantize_avx2, rowscale::iq2_ks_dot_avx2),
                QType::IQ2KL => set!(k, rowscale::iq2_kl_dequantize_avx2, rowscale::iq2_kl_dot_avx2),
                _ => {}
            }
            if isa == Isa::Avx512 {
                match t {
                    QType::Q8K => {
                        set!(k, avx512::q8_k_dequantize, avx512::q8_k_dot);
                        k.quantize = |x, _cols, _im, out| avx512::q8_k_quantize(x, out);
                    }
                    QType::IQ4KS => k.dequantize = |src, _cols, out| avx512::iq4_ks_dequantize(src, out),
                    QType::IQ4KSS => k.dequantize = |src, _cols, out| avx512::iq4_kss_dequantize(src, out),
                    QType::IQ2K if avx2::k::available() => k.dequantize = |src, _cols, out| avx512::k::iq2_k_dequantize(src, out),
                    QType::IQ3K if avx2::k::available() => k.dequantize = |src, _cols, out| avx512::k::iq3_k_dequantize(src, out),
                    QType::IQ4K if avx2::k::available() => k.dequantize = |src, _cols, out| avx512::k::iq4_k_dequantize(src, out),
                    QType::IQ5K if avx2::k::available() => k.dequantize = |src, _cols, out| avx512::k::iq5_k_dequantize(src, out),
                    QType::IQ6K if avx2::k::available() => k.dequantize = |src, _cols, out| avx512::k::iq6_k_dequantize(src, out),
                    QType::IQ2KR4 if avx2::k::available() => k.dequantize = avx512::r4::iq2_k_r4_dequantize,
                    QType::IQ3KR4 if avx2::k::available() => k.dequantize = avx512::r4::iq3_k_r4_dequantize,
                    QType::IQ4KR4 if avx2::k::available() => k.dequantize = avx512::r4::iq4_k_r4_dequantize,
                    QType::IQ5KR4 if avx2::k::available() => k.dequantize = avx512::r4::iq5_k_r4_dequantize,
                    QType::IQ4KSR4 if avx2::k::available() => k.dequantize = avx512::r4::iq4_ks_r4_dequantize,
                    QType::IQ5KSR4 if avx2::k::available() => k.dequantize = avx512::r4::iq5_ks_r4_dequantize,
                    // the row-scale types keep their AVX2 decoders
                    QType::IQ5KS | QType::IQ3KS | QType::IQ2KS | QType::IQ2KL => {}
                    _ => {}
                }
                if avx512_vnni_available() {
                    match t {
                        QType::IQ4KS => {
                            k.dot = |src, _cols, y, out| out[0] = avx512::iq4_ks_dot(src, y);
                            k.act_perm = Some(avx512::k::act_perm(t));
                        }
                        QType::IQ4KSS => {
                            k.dot = |src, _cols, y, out| out[0] = avx512::iq4_kss_dot(src, y);
                            k.act_perm = Some(avx512::k::act_perm(t));
                        }
                        QType::IQ2K if avx2::k::available() => {
                            k.dot = |src, _cols, y, out| out[0] = avx512::k::iq2_k_dot(src, y);
                            k.act_perm = Some(avx512::k::act_perm(t));
                        }
                        QType::IQ3K if avx2::k::available() => {
                            k.dot = |src, _cols, y, out| out[0] = avx512::k::iq3_k_dot(src, y);
                            k.act_perm = Some(avx512::k::act_perm(t));
                        }
                        QType::IQ4K if avx2::k::available() => {
                            k.dot = |src, _cols, y, out| out[0] = avx512::k::iq4_k_dot(src, y);
                            k.act_perm = Some(avx512::k::act_perm(t));
                        }
                        QType::IQ5K if avx2::k::available() => {
                            k.dot = |src, _cols, y, out| out[0] = avx512::k::iq5_k_dot(src, y);
                            k.act_perm = Some(avx512::k::act_perm(t));
                        }
                        QType::IQ6K if avx2::k::available() => {
                            k.dot = |src, _cols, y, out| out[0] = avx512::k::iq6_k_dot(src, y);
                            k.act_perm = Some(avx512::k::act_perm(t));
                        }
                        QType::IQ2KR4 if avx2::k::available() => k.dot = avx512::r4::iq2_k_r4_dot,
                        QType::IQ3KR4 if avx2::k::available() => k.dot = avx512::r4::iq3_k_r4_dot,
                        QType::IQ4KR4 if avx2::k::available() => k.dot = avx512::r4::iq4_k_r4_dot,
                        QType::IQ5KR4 if avx2::k::available() => k.dot = avx512::r4::iq5_k_r4_dot,
                        QType::IQ4KSR4 if avx2::k::available() => k.dot = avx512::r4::iq4_ks_r4_dot,
                        QType::IQ5KSR4 if avx2::k::available() => k.dot = avx512::r4::iq5_ks_r4_dot,
                        _ => {}
                    }
                    if avx2::k::available() {
                        k.fill_tile = match t {
                            QType::IQ4KS => Some(avx512::iq4_ks_fill_tile),
                            QType::IQ4KSS => Some(avx512::iq4_kss_fill_tile),
                            QType::IQ2K => Some(avx512::k::iq2_k_fill_tile),
                            QType::IQ3K => Some(avx512::k::iq3_k_fill_tile),
                            QType::IQ4K => Some(avx512::k::iq4_k_fill_tile),
                            QType::IQ5K => Some(avx512::k::iq5_k_fill_tile),
                            QType::IQ6K => Some(avx512::k::iq6_k_fill_tile),
                            QType::IQ2KR4 => Some(avx512::r4::iq2_k_r4_fill_tile),
                            QType::IQ3KR4 => Some(avx512::r4::iq3_k_r4_fill_tile),
                            QType::IQ4KR4 => Some(avx512::r4::iq4_k_r4_fill_tile),
                            QType::IQ5KR4 => Some(avx512::r4::iq5_k_r4_fill_tile),
                            QType::IQ4KSR4 => Some(avx512::r4::iq4_ks_r4_fill_tile),
                            QType::IQ5KSR4 => Some(avx512::r4::iq5_ks_r4_fill_tile),
                            QType::IQ5KS => Some(rowscale::iq5_ks_fill_tile),
                            QType::IQ3KS => Some(rowscale::iq3_ks_fill_tile),
                            QType::IQ2KS => Some(rowscale::iq2_ks_fill_tile),
                            QType::IQ2KL => Some(rowscale::iq2_kl_fill_tile),
                            _ => None,
                        };
                    }
                }
                if avx512_vbmi_available() {
                    match t {
                        QType::IQ6K if avx2::k::available() => k.dot = |src, _cols, y, out| out[0] = avx512::k::iq6_k_dot_vbmi(src, y),
                        QType::IQ2K if avx2::k::available() => k.dot = |src, _cols, y, out| out[0] = avx512::k::iq2_k_dot_vbmi(src, y),
                        QType::IQ3K if avx2::k::available() => k.dot = |src, _cols, y, out| out[0] = avx512::k::iq3_k_dot_vbmi(src, y),
                        QType::IQ2KR4 if avx2::k::available() => k.dot = avx512::r4::iq2_k_r4_dot_vbmi,
                        QType::IQ3KR4 if avx2::k::available() => k.dot = avx512::r4::iq3_k_r4_dot_vbmi,
                        QType::IQ5KS => {
                            k.dot = |src, _cols, y, out| out[0] = rowscale::iq5_ks_dot_avx512(src, y);
                            k.act_perm = rowscale::act_perm(t);
                        }
                        QType::IQ3KS => {
                            k.dot = |src, _cols, y, out| out[0] = rowscale::iq3_ks_dot_avx512(src, y);
                            k.act_perm = rowscale::act_perm(t);
                        }
                        QType::IQ2KS => {
                            k.dot = |src, _cols, y, out| out[0] = rowscale::iq2_ks_dot_avx512(src, y);
                            k.act_perm = rowscale::act_perm(t);
                        }
                        QType::IQ2KL => {
                            k.dot = |src, _cols, y, out| out[0] = rowscale::iq2_kl_dot_avx512(src, y);
                            k.act_perm = rowscale::act_perm(t);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    k
}

/// The sum of all bytes of `b` (needs AVX2): 4 × 32 bytes per step through `vpsadbw`.
pub fn byte_sum_avx2(b: &[u8]) -> u64 {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx2")]
    unsafe fn imp(b: &[u8]) -> u64 {
        let z = _mm256_setzero_si256();
        let mut acc = [z; 4];
        let mut chunks = b.chunks_exact(128);
        for c in &mut chunks {
            for (k, a) in acc.iter_mut().enumerate() {
                let v = _mm256_loadu_si256(c[32 * k..].as_ptr().cast());
                *a = _mm256_add_epi64(*a, _mm256_sad_epu8(v, z));
            }
        }
        let s = _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
        let mut l = [0u64; 4];
        _mm256_storeu_si256(l.as_mut_ptr().cast(), s);
        l.iter().sum::<u64>() + chunks.remainder().iter().map(|&v| v as u64).sum::<u64>()
    }
    // SAFETY: handed out only when AVX2 is present.
    unsafe { imp(b) }
}

/// [`super::all_finite`] with AVX2: the largest magnitude's bits, compared once at the end
/// (the bits of |x| order like its values, and every inf or NaN is above every finite value).
pub fn all_finite_avx2(x: &[f32]) -> bool {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx2")]
    unsafe fn imp(x: &[f32]) -> bool {
        let abs = _mm256_set1_epi32(0x7fff_ffff);
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut chunks = x.chunks_exact(32);
        for c in &mut chunks {
            for (k, a) in acc.iter_mut().enumerate() {
                let v = _mm256_loadu_si256(c[8 * k..].as_ptr().cast());
                *a = _mm256_max_epu32(*a, _mm256_and_si256(v, abs));
            }
        }
        let m = _mm256_max_epu32(_mm256_max_epu32(acc[0], acc[1]), _mm256_max_epu32(acc[2], acc[3]));
        let over = _mm256_cmpgt_epi32(m, _mm256_set1_epi32(0x7f7f_ffff));
        _mm256_testz_si256(over, over) == 1 && super::all_finite_scalar(chunks.remainder())
    }
    // SAFETY: handed out only when AVX2 is present.
    unsafe { imp(x) }
}

/// The quantizers' lane-parallel scale-search sums for an ISA (AVX-512).
pub fn pm_sums_kernel(isa: Isa) -> Option<super::PmSumsFn> {
    (isa == Isa::Avx512).then_some(avx512::search::pm_sums_checked as super::PmSumsFn)
}

/// IQ4_KSS's lane-parallel candidate evaluation for an ISA (AVX-512).
pub fn kss_sums_kernel(isa: Isa) -> Option<super::KssSumsFn> {
    (isa == Isa::Avx512).then_some(avx512::search::kss_sums_checked as super::KssSumsFn)
}

/// IQ2_K's vectorized threshold search for an ISA (AVX-512).
pub fn threshold4_kernel(isa: Isa) -> Option<super::Threshold4Fn> {
    (isa == Isa::Avx512).then_some(avx512::search::threshold4_checked as super::Threshold4Fn)
}

/// IQ2_KS's vectorized split search for an ISA (AVX-512).
pub fn split32_kernel(isa: Isa) -> Option<super::Split32Fn> {
    (isa == Isa::Avx512).then_some(avx512::search::split32_checked as super::Split32Fn)
}

/// IQ2_KL's vectorized pair search for an ISA (AVX-512).
pub fn iq2kl_kernels(isa: Isa) -> Option<super::Iq2klKernels> {
    (isa == Isa::Avx512).then_some(super::Iq2klKernels { sums: avx512::search::iq2kl_sums_checked, assign: avx512::search::iq2kl_assign_checked })
}

/// The matrix-multiply microkernel for an ISA: AVX-512 with VNNI, else AVX2 (AVX-512 without
/// VNNI takes the AVX2 one).
pub fn gemm_tile(isa: Isa) -> Option<crate::gemm::TileFn> {
    match isa {
        Isa::Avx512 if avx512_vnni_available() => Some(avx512::gemm_tile as crate::gemm::TileFn),
        Isa::Avx512 | Isa::Avx2 => Some(avx2::gemm_tile as crate::gemm::TileFn),
        _ => None,
    }
}
