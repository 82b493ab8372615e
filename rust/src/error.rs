//! The error type of the core. Every user mistake is a value of [`IqError`], never a panic; the
//! Python binding maps each variant to a `ValueError` (bad input) or a `RuntimeError` (the GPU
//! side: no CUDA, a failed driver call) with the same message.

use thiserror::Error;

/// Everything that can go wrong when a caller hands the core bad input.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IqError {
    /// A type name that is not in the registry.
    #[error("unknown quantization type {name:?}; known types: {known}")]
    UnknownType { name: String, known: String },
    /// A row length that is not a whole number of blocks.
    #[error("{what}: the number of columns ({cols}) must be a positive multiple of {block}")]
    NotBlockAligned { what: &'static str, cols: usize, block: usize },
    /// Row-interleaved types need the row count to be a multiple of the group size.
    #[error("{what}: type {qtype} interleaves {group} rows, but the number of rows ({rows}) is not a positive multiple of {group}")]
    RowsNotGrouped { what: &'static str, qtype: &'static str, rows: usize, group: usize },
    /// A NaN or infinity in the input.
    #[error("{what} contains a non-finite value ({value}) at {position}")]
    NonFinite { what: &'static str, position: String, value: f32 },
    /// An importance matrix entry that is negative.
    #[error("imatrix contains a negative value ({value}) at index {index}; importance weights must be >= 0")]
    NegativeImatrix { index: usize, value: f32 },
    /// Two sizes that must agree do not.
    #[error("{what}: expected {expected}, got {got}")]
    SizeMismatch { what: &'static str, expected: usize, got: usize },
    /// Anything else the caller got wrong, with a message.
    #[error("{0}")]
    Invalid(String),
    /// A GPU operation in a build without the `cuda` feature.
    #[error("this build of iqrs has no CUDA support: rebuild with the `cuda` feature (scripts/setup.sh does, with nvcc from PyPI)")]
    CudaNotCompiled,
    /// No usable GPU: no driver library, no device, or a device that cannot run the kernels.
    #[error("CUDA is not available: {0}")]
    CudaUnavailable(String),
    /// A CUDA driver or cuBLAS call failed.
    #[error("CUDA error in {what}: {msg}")]
    Cuda { what: &'static str, msg: String },
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, IqError>;
