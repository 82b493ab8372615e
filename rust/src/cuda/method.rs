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
    /// quantized matrix multiply up to [`mmq_max_auto`], on a GPU with warpgroup MMA the fused
    /// kernel up to [`fused_max_auto`], else bf16 GEMM: see [`Method::resolve`].
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

    /// The path this method takes for `n` vectors of type `t` on a `rows x cols` matrix, on a GPU
    /// that runs the warpgroup fused kernel (`wgmma`: compute capability 9.0) or not:
    /// [`Method::Auto`] resolved to the mat-vec, the quantized matrix multiply, the fused kernel
    /// or bf16 GEMM; any other method itself.
    pub fn resolve(self, t: QType, n: usize, rows: usize, cols: usize, wgmma: bool) -> Method {
        match self {
            Method::Auto if n <= matvec_max_auto(t) => Method::MatVec,
            Method::Auto if n <= mmq_max_auto(t, wgmma) => Method::Mmq,
            Method::Auto if wgmma && n <= fused_max_auto(rows, cols) => Method::Fused,
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

/// Most activation vectors [`Method::Auto`] gives the quantized matrix multiply. Against
/// dequantize + cuBLAS (H200, BENCHMARKS.md, 2026-12-05) it is faster up to 32 vectors for every
/// type (1.16-1.99x at 32). Where the warpgroup fused kernel runs, the row-scale types (IQ4_KS,
/// IQ4_KSS, IQ2_KS, IQ3_KS, IQ2_KL, IQ4_KS_R4) keep it up to 64: there it beat the fused kernel
/// at 48 and 64 vectors on both benchmark shapes (H100, 2026-12-06), the other types not.
pub fn mmq_max_auto(t: QType, wgmma: bool) -> usize {
    use QType::*;
    match t {
        IQ4KS | IQ4KSS | IQ2KS | IQ3KS | IQ2KL | IQ4KSR4 if wgmma => 64,
        _ => 32,
    }
}

/// Most activation vectors [`Method::Auto`] gives the warpgroup fused kernel on a `rows x cols`
/// matrix (H100, 2026-12-06, BENCHMARKS.md): up to 128 it beat dequantize + cuBLAS for every type
/// on both benchmark shapes (1.09-1.69x); up to 256 on the 28672x8192 one (1.06-1.46x) but not
/// always on 14336x4096 (0.88-1.11x), so only matrices of 2^27 weights or more take it there;
/// beyond 256, dequantize + cuBLAS (0.73-1.01x of it at 512).
pub fn fused_max_auto(rows: usize, cols: usize) -> usize {
    if rows.saturating_mul(cols) >= 1 << 27 {
        256
    } else {
        128
    }
}

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
            for wgmma in [false, true] {
                for (rows, cols) in [(4096, 4096), (28672, 8192)] {
                    let paths: Vec<Method> = (1..=600).map(|n| Method::Auto.resolve(t, n, rows, cols, wgmma)).collect();
                    for (i, &m) in paths.iter().enumerate() {
                        assert_ne!(m, Method::Auto);
                        assert_eq!(m == Method::MatVec, i < matvec_max_auto(t));
                        assert_eq!(Method::Mmq.resolve(t, i + 1, rows, cols, wgmma), Method::Mmq);
                    }
                    // One hand-over each, in this order; the fused kernel only with warpgroup MMA.
                    let order = [Method::MatVec, Method::Mmq, Method::Fused, Method::Gemm(Dtype::BF16)];
                    let rank = |m: &Method| order.iter().position(|o| o == m).unwrap();
                    assert!(paths.windows(2).all(|p| rank(&p[0]) <= rank(&p[1])));
                    assert_eq!(paths.contains(&Method::Fused), wgmma);
                    assert_eq!(*paths.last().unwrap(), Method::Gemm(Dtype::BF16));
                }
            }
        }
        assert_eq!(Method::Auto.resolve(QType::IQ4K, 200, 4096, 4096, true), Method::Gemm(Dtype::BF16));
        assert_eq!(Method::Auto.resolve(QType::IQ4K, 200, 28672, 8192, true), Method::Fused);
        assert_eq!(Method::Auto.resolve(QType::IQ4KS, 64, 28672, 8192, true), Method::Mmq);
        assert_eq!(Method::Auto.resolve(QType::IQ4KS, 64, 28672, 8192, false), Method::Gemm(Dtype::BF16));
    }
}
