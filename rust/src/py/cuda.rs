//! The GPU functions of `iqrs._iqrs` (wrapped by `python/iqrs/cuda.py`). Device memory arrives
//! as raw addresses of PyTorch tensors (`data_ptr()`) and the stream as PyTorch's current one
//! (`cuda_stream`); the core checks every address against its allocation before queueing work.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{detached, qtype, to_py};
use crate::cuda::{self, Dtype, Method, QMatrix};

fn qmatrix(qtype_name: &str, rows: usize, cols: usize, ptr: u64, device: usize) -> PyResult<QMatrix> {
    Ok(QMatrix { qtype: qtype(qtype_name)?, rows, cols, ptr, device })
}

/// `(True, "")` if a GPU can be used, else `(False, why not)`.
#[pyfunction]
fn cuda_status() -> (bool, String) {
    match cuda::device_count() {
        Ok(_) => (true, String::new()),
        Err(e) => (false, e.to_string()),
    }
}

/// Number of usable GPUs (0 if none, or no CUDA support in this build).
#[pyfunction]
fn cuda_device_count() -> usize {
    cuda::device_count().unwrap_or(0)
}

/// Facts about a GPU as a dict.
#[pyfunction]
fn cuda_device_info(py: Python<'_>, device: usize) -> PyResult<Bound<'_, PyDict>> {
    let i = detached(py, || cuda::device_info(device))?;
    let d = PyDict::new(py);
    d.set_item("device", i.ordinal)?;
    d.set_item("name", i.name)?;
    d.set_item("compute_capability", i.compute_capability)?;
    d.set_item("total_memory", i.total_memory)?;
    d.set_item("multiprocessors", i.multiprocessors)?;
    d.set_item("l2_cache_bytes", i.l2_cache_bytes)?;
    d.set_item("driver_version", i.driver_version)?;
    d.set_item("kernels", i.kernels)?;
    Ok(d)
}

/// `(compiled, (nvcc major, minor), [sm architectures with cubins])`.
#[pyfunction]
fn cuda_build_info() -> (bool, (u32, u32), Vec<u32>) {
    let (nvcc, archs) = cuda::build_info();
    (cuda::COMPILED, nvcc, archs.to_vec())
}

/// Decodes the quantized matrix at `w_ptr` into the `rows x cols` array at `out_ptr`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn cuda_dequantize(py: Python<'_>, qtype_name: &str, rows: usize, cols: usize, w_ptr: u64, device: usize, out_ptr: u64, dtype: &str, stream: u64) -> PyResult<()> {
    let w = qmatrix(qtype_name, rows, cols, w_ptr, device)?;
    let dtype = Dtype::from_name(dtype).map_err(to_py)?;
    // SAFETY: the Python wrapper passes live PyTorch tensors it keeps referenced until after the
    // call returns, and PyTorch's caching allocator orders their reuse after work queued on
    // their stream, which is the stream passed here; the core range-checks every address.
    detached(py, || unsafe { cuda::dequantize(&w, out_ptr, dtype, stream) })
}

/// `out = x · Wᵀ` for `n` activation vectors (`method`: auto, mmv, mmq, fused, gemm_bf16 or gemm_f16).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn cuda_linear(
    py: Python<'_>,
    qtype_name: &str,
    rows: usize,
    cols: usize,
    w_ptr: u64,
    device: usize,
    x_ptr: u64,
    x_dtype: &str,
    n: usize,
    out_ptr: u64,
    stream: u64,
    method: &str,
) -> PyResult<()> {
    let w = qmatrix(qtype_name, rows, cols, w_ptr, device)?;
    let x_dtype = Dtype::from_name(x_dtype).map_err(to_py)?;
    let method = Method::from_name(method).map_err(to_py)?;
    // SAFETY: as in cuda_dequantize.
    detached(py, || unsafe { cuda::linear(&w, x_ptr, x_dtype, n, out_ptr, stream, method) })
}

/// The path `method="auto"` takes for `n` activation vectors of a type on a `rows x cols`
/// matrix on GPU `device` (None: a GPU without warpgroup MMA): mmv, mmq, fused or gemm_bf16.
#[pyfunction]
#[pyo3(signature = (qtype_name, n, rows, cols, device=None))]
fn cuda_auto_method(qtype_name: &str, n: usize, rows: usize, cols: usize, device: Option<usize>) -> PyResult<&'static str> {
    let t = qtype(qtype_name)?;
    let wgmma = match device {
        Some(d) => cuda::runs_warpgroup_mma(d).map_err(to_py)?,
        None => false,
    };
    Ok(Method::Auto.resolve(t, n, rows, cols, wgmma).name())
}

/// Adds the GPU functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cuda_status, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_device_count, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_device_info, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_build_info, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_dequantize, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_linear, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_auto_method, m)?)?;
    Ok(())
}
