//! How the GPU `linear` computes, and which path [`Method::Auto`] takes for a type and a number
//! of activation vectors. Plain logic, compiled into the `cuda` build and the CPU-only one
//! alike (which names the methods but runs none).

use super::Dtype;
use crate::error::{IqError, Result};
use crate::registry::QType;

/// How `linear` computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Mat-vec kernels for up to [`matvec_max_auto`] activation vectors (5 to 8 by type), the
    /// quantized matrix multiply up to [`MMQ_MAX_AUTO`], else bf16 GEMM (the bf16 fused kernel
    /// measured no faster than dequantize + cuBLAS on an H200: see cuda/NOTES.md).
    Auto,
    /// Activations quantized to Q8_1, integer dot products (dp4a), 8 vectors per launch.
    MatVec,
    /// Activations quantized to int8 with one scale per 128 values, W decoded to int8 in
    /// registers, int8 tensor-core MMA (mmq.cuh): no dequantized copy of W anywhere.
    Mmq,
    /// The fused matrix multiply: W decoded to bf16 in shared memory tile by tile (no
    /// dequantized copy of W in GPU memory), x in bf16, tensor-core MMA with f32 accumulation;
    /// the same products as `Gemm(BF16)` up to f32 summation order.
    Fused,
    /// W dequantized to this type (bf16 or f16) in slabs, x converted to it, cuBLAS GEMM with f32 accumulation.
    Gemm(Dtype),
}

/// The names [`Method::from_name`] takes and [`Method::name`] gives.
pub const METHOD_NAMES: [&str; 6] = ["auto", "mmv", "mmq", "fused", "gemm_bf16", "gemm_f16"];

impl Method {
    /// `"auto"`, `"mmv"`, `"mmq"`, `"fused"`, `"gemm_bf16"` or `"gemm_f16"`.
    pub fn from_name(name: &str) -> Result<Method> {
        Ok(match name {
            "auto" => Method::Auto,
            "mmv" => Method::MatVec,
            "mmq" => Method::Mmq,
            "fused" => Method::Fused,
            "gemm_bf16" => Method::Gemm(Dtype::BF16),
            "gemm_f16" => Method::Gemm(Dtype::F16),
            _ => return Err(IqError::Invalid(format!("unknown method {name:?}: expected one of {}", METHOD_NAMES.join(", ")))),
        })
    }

    /// The method's name (as [`Method::from_name`] takes it).
    pub fn name(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::MatVec => "mmv",
            Method::Mmq => "mmq",
            Method::Fused => "fused",
            Method::Gemm(Dtype::F16) => "gemm_f16",
            Method::Gemm(_) => "gemm_bf16",
        }
    }

    /// The path this method takes for `n` vectors of type `t`: [`Method::Auto`] resolved to
    /// the mat-vec, the quantized matrix multiply or bf16 GEMM; any other method itself.
    pub fn resolve(self, t: QType, n: usize) -> Method {
        match self {
            Method::Auto if n <= matvec_max_auto(t) => Method::MatVec,
            Method::Auto if n <= MMQ_MAX_AUTO => Method::Mmq,
            Method::Auto => Method::Gemm(Dtype::BF16),
            m => m,
        }
    }
}

/// Most activation vectors [`Method::Auto`] gives the mat-vec kernels (one launch of up to 8);
/// beyond, the quantized matrix multiply, whose time hardly grows with the vectors up to 8.
/// Measured kernel against kernel on both benchmark shapes (`scripts/cuda_lab.py time --nc 3..8`
/// with and without `--mmq`; cuda/NOTES.md): on an H100 on 2026-12-05 for the types whose
/// kernels changed that day (IQ2_K, IQ3_K, IQ4_K, IQ5_K, IQ4_KS, IQ4_KSS, IQ2_KS, IQ3_KS,
/// IQ2_KL), on an H200 on 2026-12-04 for the others.
pub fn matvec_max_auto(t: QType) -> usize {
    use QType::*;
    match t {
        Q8K | IQ6K | IQ5KR4 | IQ5KSR4 => 8,
        IQ2K | IQ2KR4 | IQ3KR4 | IQ4KR4 | IQ4KSR4 => 7,
        IQ3KS => 6,
        IQ3K | IQ5K | IQ2KS | IQ5KS | IQ2KL => 5,
        IQ4K | IQ4KS | IQ4KSS => 4,
    }
}

/// Most activation vectors [`Method::Auto`] gives the quantized matrix multiply: measured on an
/// H200 against dequantize + cuBLAS (BENCHMARKS.md, 2026-12-05), it is faster up to 32 vectors
/// for every type (1.16-1.99x at 32), and at 64 from 0.67x to 1.17x by type.
pub const MMQ_MAX_AUTO: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_auto_resolves_to_a_concrete_path() {
        for name in METHOD_NAMES {
            assert_eq!(Method::from_name(name).unwrap().name(), name);
        }
        assert!(Method::from_name("cublas").is_err());
        for &t in QType::ALL {
            for n in 1..=100 {
                let m = Method::Auto.resolve(t, n);
                assert_ne!(m, Method::Auto);
                assert_eq!(m == Method::MatVec, n <= matvec_max_auto(t));
                assert_eq!(Method::Mmq.resolve(t, n), Method::Mmq);
            }
        }
    }
}
