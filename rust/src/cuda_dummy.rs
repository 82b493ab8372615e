//! The GPU API of a build without the `cuda` feature: the same names as `cuda/mod.rs`, every
//! operation answering [`IqError::CudaNotCompiled`].

use crate::error::{IqError, Result};
use crate::registry::QType;

/// Whether the library was built with GPU kernels.
pub const COMPILED: bool = false;

/// Element type of activations, outputs and dequantized weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32 = 0,
    F16 = 1,
    BF16 = 2,
}

impl Dtype {
    /// `"float32"`, `"float16"` or `"bfloat16"`.
    pub fn from_name(_name: &str) -> Result<Dtype> {
        Err(IqError::CudaNotCompiled)
    }
}

#[path = "cuda/method.rs"]
pub mod method;
pub use method::Method;

/// A quantized matrix in device memory (see the `cuda` build).
#[derive(Clone, Copy, Debug)]
pub struct QMatrix {
    pub qtype: QType,
    pub rows: usize,
    pub cols: usize,
    pub ptr: u64,
    pub device: usize,
}

/// Facts about a device (never made without the `cuda` feature).
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub total_memory: usize,
    pub multiprocessors: i32,
    pub l2_cache_bytes: i32,
    pub driver_version: i32,
    pub kernels: String,
}

/// Always [`IqError::CudaNotCompiled`].
pub fn device_count() -> Result<usize> {
    Err(IqError::CudaNotCompiled)
}

/// Always [`IqError::CudaNotCompiled`].
pub fn device_info(_ordinal: usize) -> Result<DeviceInfo> {
    Err(IqError::CudaNotCompiled)
}

/// Always [`IqError::CudaNotCompiled`].
pub fn runs_warpgroup_mma(_ordinal: usize) -> Result<bool> {
    Err(IqError::CudaNotCompiled)
}

/// No kernels: no nvcc version, no architectures.
pub fn build_info() -> ((u32, u32), &'static [u32]) {
    ((0, 0), &[])
}

/// Always [`IqError::CudaNotCompiled`].
///
/// # Safety
/// None needed; the signature matches the `cuda` build.
pub unsafe fn dequantize(_w: &QMatrix, _out: u64, _dtype: Dtype, _stream: u64) -> Result<()> {
    Err(IqError::CudaNotCompiled)
}

/// Always [`IqError::CudaNotCompiled`].
///
/// # Safety
/// None needed; the signature matches the `cuda` build.
pub unsafe fn linear(_w: &QMatrix, _x: u64, _x_dtype: Dtype, _n: usize, _out: u64, _stream: u64, _method: Method) -> Result<()> {
    Err(IqError::CudaNotCompiled)
}
