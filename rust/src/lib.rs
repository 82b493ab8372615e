//! # iqrs
//!
//! ik_llama.cpp's IQK weight-quantization formats in Rust, bit-compatible with the reference:
//! the same bytes, the same GGML type ids, the same decoded floats.
//!
//! * [`registry`] — the types, their ids and sizes (the single source of truth);
//! * [`quants`] — scalar reference code, one module per format family;
//! * [`arch`] — SIMD kernels chosen once at run time, each tested against the scalar code;
//! * [`gemm`] — the matrix multiply shared by every type (weights decoded to int8 tiles);
//! * [`ops`] — whole-tensor operations (quantize, dequantize, mat-vec, mat-mat) over threads;
//! * [`cuda`] — the same on NVIDIA GPUs (the `cuda` feature; without it, the API answers
//!   [`IqError::CudaNotCompiled`]).
//!
//! ```
//! use iqrs::{ops, QType};
//! let x: Vec<f32> = (0..2 * 256).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
//! let q = ops::quantize(QType::IQ4KS, &x, 2, 256, None).unwrap();
//! assert_eq!(q.len(), 2 * QType::IQ4KS.row_size(256));
//! let back = ops::dequantize(QType::IQ4KS, &q, 2, 256).unwrap();
//! assert!(ops::weighted_rmse(&x, &back, 256, None) < 0.05);
//! ```

pub mod arch;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_dummy.rs"]
pub mod cuda;
pub mod error;
pub mod gemm;
pub mod ops;
pub mod quants;
pub mod registry;
pub mod tables;
pub mod threads;

#[cfg(feature = "python")]
mod py;

pub use error::{IqError, Result};
pub use registry::{QType, TypeInfo, QK_K};
