//! The Python extension module `iqrs._iqrs` — the only place PyO3 and numpy appear.
//!
//! Every function has the same shape: parse arguments, borrow numpy buffers (zero copy), release
//! the GIL and call the core (catching any panic so none crosses into Python), hand the result
//! back as a numpy array that owns the Rust allocation. Core errors map to `ValueError`, the
//! GPU side's (no CUDA, a failed driver call) to `RuntimeError`. The GPU functions are in `cuda.rs`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

mod cuda;

use crate::arch::{self, Isa};
use crate::error::IqError;
use crate::{ops, threads, QType};

fn to_py(e: IqError) -> PyErr {
    match e {
        IqError::CudaNotCompiled | IqError::CudaUnavailable(_) | IqError::Cuda { .. } => PyRuntimeError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// Runs `f` without the GIL; a Rust panic becomes a RuntimeError instead of unwinding into Python.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, IqError> + Send) -> PyResult<T> {
    let r = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    match r {
        Ok(v) => v.map_err(to_py),
        Err(p) => {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            Err(PyRuntimeError::new_err(format!("iqrs internal error (please report): {msg}")))
        }
    }
}

fn qtype(name: &str) -> PyResult<QType> {
    QType::from_name(name).map_err(to_py)
}

fn contiguous<'a, T: numpy::Element>(a: &'a PyReadonlyArray2<'_, T>, what: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{what} must be C-contiguous")))
}

/// Facts of every registered type: (name, ggml_id, block_size, block_bytes, row_meta_bytes, rows_per_group, bpw).
#[pyfunction]
fn types() -> Vec<(&'static str, u32, usize, usize, usize, usize, f64)> {
    QType::ALL
        .iter()
        .map(|t| {
            let i = t.info();
            (i.name, i.ggml_id, i.block_size, i.block_bytes, i.row_meta_bytes, i.rows_per_group, t.bpw())
        })
        .collect()
}

/// Bytes of one row of `cols` weights of type `qtype` (row metadata included).
#[pyfunction]
fn row_size(qtype_name: &str, cols: usize) -> PyResult<usize> {
    let t = qtype(qtype_name)?;
    t.check_shape("cols", t.info().rows_per_group, cols).map_err(to_py)?;
    Ok(t.row_size(cols))
}

/// Quantizes a C-contiguous float32 matrix; returns the tensor's bytes.
#[pyfunction]
#[pyo3(signature = (x, qtype_name, imatrix=None))]
fn quantize<'py>(py: Python<'py>, x: PyReadonlyArray2<'py, f32>, qtype_name: &str, imatrix: Option<PyReadonlyArray1<'py, f32>>) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let t = qtype(qtype_name)?;
    let [rows, cols] = [x.shape()[0], x.shape()[1]];
    let xs = contiguous(&x, "x")?;
    let im = match &imatrix {
        Some(a) => Some(a.as_slice().map_err(|_| PyValueError::new_err("imatrix must be contiguous"))?),
        None => None,
    };
    let out = detached(py, || ops::quantize(t, xs, rows, cols, im))?;
    Ok(out.into_pyarray(py))
}

/// Quantizes into a caller's C-contiguous uint8 array of exactly the tensor's size (no
/// allocation: what the benchmark measures, as the reference quantizes into a ready buffer).
#[pyfunction]
fn quantize_into<'py>(py: Python<'py>, x: PyReadonlyArray2<'py, f32>, qtype_name: &str, imatrix: Option<PyReadonlyArray1<'py, f32>>, mut out: PyReadwriteArrayDyn<'py, u8>) -> PyResult<()> {
    let t = qtype(qtype_name)?;
    let [rows, cols] = [x.shape()[0], x.shape()[1]];
    let xs = contiguous(&x, "x")?;
    let im = match &imatrix {
        Some(a) => Some(a.as_slice().map_err(|_| PyValueError::new_err("imatrix must be contiguous"))?),
        None => None,
    };
    let o = out.as_slice_mut().map_err(|_| PyValueError::new_err("out must be a C-contiguous uint8 array"))?;
    detached(py, || ops::quantize_into(t, xs, rows, cols, im, o))
}

/// Decodes a tensor's bytes to a float32 `(rows, cols)` matrix.
#[pyfunction]
fn dequantize<'py>(py: Python<'py>, data: PyReadonlyArray1<'py, u8>, qtype_name: &str, rows: usize, cols: usize) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let t = qtype(qtype_name)?;
    let d = data.as_slice().map_err(|_| PyValueError::new_err("data must be contiguous"))?;
    let out = detached(py, || ops::dequantize(t, d, rows, cols))?;
    out.into_pyarray(py).reshape([rows, cols])
}

/// Decodes a tensor's bytes into a caller's C-contiguous float32 array of `rows * cols` values.
#[pyfunction]
fn dequantize_into<'py>(py: Python<'py>, data: PyReadonlyArray1<'py, u8>, qtype_name: &str, rows: usize, cols: usize, mut out: PyReadwriteArrayDyn<'py, f32>) -> PyResult<()> {
    let t = qtype(qtype_name)?;
    let d = data.as_slice().map_err(|_| PyValueError::new_err("data must be contiguous"))?;
    let o = out.as_slice_mut().map_err(|_| PyValueError::new_err("out must be a C-contiguous float32 array"))?;
    if o.len() != rows * cols {
        return Err(PyValueError::new_err(format!("out has {} elements, expected {rows} x {cols} = {}", o.len(), rows * cols)));
    }
    detached(py, || {
        ops::check_data(t, d, rows, cols)?;
        ops::dequantize_into(t, d, cols, o);
        Ok(())
    })
}

/// Converts a tensor's bytes between a type and its `_r4` form (either direction, byte-exact).
#[pyfunction]
fn repack<'py>(py: Python<'py>, data: PyReadonlyArray1<'py, u8>, from_name: &str, to_name: &str, rows: usize, cols: usize) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let (from, to) = (qtype(from_name)?, qtype(to_name)?);
    let d = data.as_slice().map_err(|_| PyValueError::new_err("data must be contiguous"))?;
    let out = detached(py, || ops::repack(from, to, d, rows, cols))?;
    Ok(out.into_pyarray(py))
}

/// `W @ xᵀ`: `x` is `(n, cols)` float32 (n activation vectors), the result `(rows, n)`.
#[pyfunction]
fn matmul<'py>(py: Python<'py>, data: PyReadonlyArray1<'py, u8>, qtype_name: &str, rows: usize, cols: usize, x: PyReadonlyArray2<'py, f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let t = qtype(qtype_name)?;
    let d = data.as_slice().map_err(|_| PyValueError::new_err("data must be contiguous"))?;
    let n = x.shape()[0];
    if x.shape()[1] != cols {
        return Err(PyValueError::new_err(format!("matmul: x has {} values per vector but the matrix has {cols} columns", x.shape()[1])));
    }
    let xs = contiguous(&x, "x")?;
    let out = detached(py, || ops::matmul(t, d, rows, cols, xs, n))?;
    out.into_pyarray(py).reshape([rows, n])
}

/// Number of threads the operations use.
#[pyfunction]
fn get_num_threads() -> usize {
    threads::num_threads()
}

/// Sets the number of threads (≥ 1) for all later operations.
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    if n == 0 {
        return Err(PyValueError::new_err("set_num_threads: n must be >= 1"));
    }
    threads::set_num_threads(n);
    Ok(())
}

/// The instruction set in use: "scalar", "avx2" or "avx512".
#[pyfunction]
fn get_isa() -> &'static str {
    arch::current_isa().name()
}

/// Forces an instruction set (clamped to what the CPU has); returns the one in force.
#[pyfunction]
fn set_isa(name: &str) -> PyResult<&'static str> {
    let isa = Isa::from_name(name).ok_or_else(|| PyValueError::new_err(format!("unknown ISA {name:?}; known: scalar, avx2, avx512")))?;
    Ok(arch::set_isa(isa).name())
}

/// Instruction sets this CPU can run, weakest first.
#[pyfunction]
fn available_isas() -> Vec<&'static str> {
    arch::available_isas().into_iter().map(|i| i.name()).collect()
}

/// Sum of all bytes of a contiguous uint8 array, on the pool's threads (the benchmark's
/// read-bandwidth probe).
#[pyfunction]
fn byte_sum<'py>(py: Python<'py>, data: PyReadonlyArray1<'py, u8>) -> PyResult<u64> {
    let d = data.as_slice().map_err(|_| PyValueError::new_err("data must be contiguous"))?;
    detached(py, || -> Result<u64, IqError> { Ok(ops::byte_sum(d)) })
}

/// Test hook: panics inside the core, to prove the panic becomes a RuntimeError.
#[pyfunction]
fn _panic_for_test(py: Python<'_>) -> PyResult<()> {
    detached(py, || -> Result<(), IqError> { panic!("deliberate panic from _panic_for_test") })
}

#[pymodule(gil_used = false)]
fn _iqrs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(types, m)?)?;
    m.add_function(wrap_pyfunction!(row_size, m)?)?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(quantize_into, m)?)?;
    m.add_function(wrap_pyfunction!(dequantize, m)?)?;
    m.add_function(wrap_pyfunction!(dequantize_into, m)?)?;
    m.add_function(wrap_pyfunction!(matmul, m)?)?;
    m.add_function(wrap_pyfunction!(repack, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_isa, m)?)?;
    m.add_function(wrap_pyfunction!(set_isa, m)?)?;
    m.add_function(wrap_pyfunction!(available_isas, m)?)?;
    m.add_function(wrap_pyfunction!(byte_sum, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    cuda::register(m)?;
    Ok(())
}
