//! The GPU side (the `cuda` feature): kernels compiled from `cuda/*.cu` and embedded in the
//! library, run through the CUDA driver API and cuBLAS, both loaded at run time with cudarc — a
//! library built with this feature still loads, and reports "not available", on a machine
//! without a GPU or CUDA libraries.
//!
//! * [`device`] — per-GPU state: context, modules, cuBLAS handle, scratch memory;
//! * [`kernels`] — the embedded fatbins and the entry-point names of every type;
//! * [`method`] — the computation paths of `linear`, and which one `Auto` takes;
//! * [`ops`] — the operations, on caller-owned device memory, range-checked.
//!
//! A build without the feature has the same API (`cuda_dummy.rs`), answering
//! [`IqError::CudaNotCompiled`](crate::IqError::CudaNotCompiled).

pub mod device;
pub mod kernels;
pub mod method;
pub mod ops;

pub use device::DeviceInfo;
pub use ops::{dequantize, linear, Dtype, Method, QMatrix};

use crate::error::Result;

/// Whether the library was built with GPU kernels.
pub const COMPILED: bool = true;

/// Number of usable CUDA devices, or why there are none.
pub fn device_count() -> Result<usize> {
    device::availability()
}

/// Facts about a device (name, compute capability, memory, which kernels it runs).
pub fn device_info(ordinal: usize) -> Result<DeviceInfo> {
    device::device(ordinal)?.info()
}

/// Whether device `ordinal` runs the warpgroup fused kernel (compute capability 9.0), which
/// `Method::Auto` then takes for some vector counts.
pub fn runs_warpgroup_mma(ordinal: usize) -> Result<bool> {
    Ok(device::device(ordinal)?.runs(kernels::MMW))
}

/// The nvcc release and the real architectures the embedded kernels were built for.
pub fn build_info() -> ((u32, u32), &'static [u32]) {
    (kernels::NVCC_VERSION, kernels::ARCHS)
}
