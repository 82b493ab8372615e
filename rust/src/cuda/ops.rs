//! GPU operations on device memory the caller owns (PyTorch tensors, in the Python API): decode a
//! quantized matrix, and `out = x · Wᵀ`: by mat-vec kernels on Q8_1 activations (a few
//! activation vectors), by the quantized matrix multiply (W decoded to int8, int8 tensor-core
//! MMA), by the fused matrix multiply (W decoded tile by tile into shared memory, bf16
//! tensor-core MMA), or by dequantizing W to bf16 (or f16) and cuBLAS ([`Method`]). Every pointer is
//! checked against its allocation first, and all work is queued on the caller's stream.

use std::ffi::c_void;

use cudarc::cublas::sys as cb;
use cudarc::driver::sys::{self, CUstream};

use super::device::{cublas_err, device, driver_err, Device, Scratch};
use super::kernels;
use crate::error::{IqError, Result};
use crate::registry::{QType, QK_K};

pub use super::method::Method;

/// Element type of activations, outputs and dequantized weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32 = 0,
    F16 = 1,
    BF16 = 2,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
        }
    }

    /// `"float32"`, `"float16"` or `"bfloat16"` (PyTorch's names; `f32`/`f16`/`bf16` too).
    pub fn from_name(name: &str) -> Result<Dtype> {
        match name {
            "float32" | "f32" => Ok(Dtype::F32),
            "float16" | "f16" => Ok(Dtype::F16),
            "bfloat16" | "bf16" => Ok(Dtype::BF16),
            _ => Err(IqError::Invalid(format!("unsupported element type {name:?}: expected float32, float16 or bfloat16"))),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::BF16 => "bf16",
        }
    }

    fn cublas(self) -> cb::cudaDataType {
        match self {
            Dtype::F32 => cb::cudaDataType::CUDA_R_32F,
            Dtype::F16 => cb::cudaDataType::CUDA_R_16F,
            Dtype::BF16 => cb::cudaDataType::CUDA_R_16BF,
        }
    }
}

/// A quantized `rows x cols` matrix in device memory, in ggml's layout.
#[derive(Clone, Copy, Debug)]
pub struct QMatrix {
    pub qtype: QType,
    pub rows: usize,
    pub cols: usize,
    /// Device address of the first byte.
    pub ptr: u64,
    /// CUDA device ordinal the memory lives on.
    pub device: usize,
}

impl QMatrix {
    fn row_bytes(&self) -> usize {
        self.qtype.row_size(self.cols)
    }

    fn units(&self) -> usize {
        self.cols / 32
    }

    /// Checks the shape, the allocation, and the limits of the kernels' 32-bit indices; returns
    /// the device, its context made current.
    fn open(&self) -> Result<std::sync::Arc<Device>> {
        self.qtype.check_shape("weights", self.rows, self.cols)?;
        if self.rows > i32::MAX as usize / 2 || self.cols > i32::MAX as usize / 2 {
            return Err(IqError::Invalid(format!("matrix of {}x{} is too large for the GPU kernels", self.rows, self.cols)));
        }
        check_aligned("weights", self.ptr, kernels::weight_align(self.qtype))?;
        let dev = device(self.device)?;
        dev.bind()?;
        dev.check_range("weights", self.ptr, self.rows * self.row_bytes())?;
        Ok(dev)
    }
}

/// Most bytes of dequantized weights held at once by the GEMM path (larger matrices go in slabs).
pub const GEMM_SLAB_BYTES: usize = 512 << 20;

/// The kernels read weights in 4-byte words and write dequantized units in 16-byte vectors.
fn check_aligned(what: &str, ptr: u64, align: u64) -> Result<()> {
    if ptr % align != 0 {
        return Err(IqError::Invalid(format!("{what}: address 0x{ptr:x} is not {align}-byte aligned (a sliced tensor? use a fresh one)")));
    }
    Ok(())
}

fn stream_of(stream: u64) -> CUstream {
    stream as usize as CUstream
}

fn grid_1d(items: usize, per_block: u32) -> Result<(u32, u32, u32)> {
    let blocks = items.div_ceil(per_block as usize);
    u32::try_from(blocks).ok().filter(|&b| b < i32::MAX as u32).map(|b| (b, 1, 1)).ok_or_else(|| IqError::Invalid(format!("{items} items exceed the GPU kernels' grid")))
}

/// Pointers to kernel arguments, in order (each argument is copied into a local first).
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$(&$a as *const _ as *mut c_void),*] };
}

/// Decodes `w` into `out`: a row-major `rows x cols` array of `dtype` on the same device. The
/// f32 values are bit-identical to the CPU's [`crate::ops::dequantize`].
///
/// # Safety
/// `w.ptr` and `out` must stay allocated, and `out` unused by other work, until the work queued
/// on `stream` (a CUstream of the device's primary context, 0 for the legacy default) completes.
pub unsafe fn dequantize(w: &QMatrix, out: u64, dtype: Dtype, stream: u64) -> Result<()> {
    check_aligned("output", out, 16)?;
    let dev = w.open()?;
    dev.check_range("output", out, w.rows * w.cols * dtype.size())?;
    dequantize_rows(&dev, w, 0, w.rows, out, dtype, stream_of(stream))
}

/// Decodes rows `r0 .. r0 + nrows` of `w` into `out` (`nrows x cols`).
unsafe fn dequantize_rows(dev: &Device, w: &QMatrix, r0: usize, nrows: usize, out: u64, dtype: Dtype, stream: CUstream) -> Result<()> {
    let f = dev.function(kernels::module_of(w.qtype)?, &kernels::dequant_name(w.qtype, dtype.suffix()))?;
    let (src, row_bytes, rows, units) = (w.ptr + (r0 * w.row_bytes()) as u64, w.row_bytes() as u64, nrows as i32, w.units() as i32);
    let grid = grid_1d(nrows * w.units(), kernels::DEQUANT_THREADS)?;
    dev.launch(f, grid, (kernels::DEQUANT_THREADS, 1, 1), stream, &mut args![src, row_bytes, rows, units, out])
}

/// `out = x · Wᵀ`: `x` is `n x cols` row-major of `x_dtype`, `out` is `n x rows` row-major of
/// the same type, both on `w`'s device. `n = 0` does nothing.
///
/// # Safety
/// As for [`dequantize`]: `x` and `out` must stay allocated until the queued work completes.
pub unsafe fn linear(w: &QMatrix, x: u64, x_dtype: Dtype, n: usize, out: u64, stream: u64, method: Method) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    if n > i32::MAX as usize {
        return Err(IqError::Invalid(format!("{n} activation vectors exceed the GPU kernels' 32-bit sizes")));
    }
    let dev = w.open()?;
    dev.check_range("activations", x, n * w.cols * x_dtype.size())?;
    dev.check_range("output", out, n * w.rows * x_dtype.size())?;
    let stream = stream_of(stream);
    match method.resolve(w.qtype, n, w.rows, w.cols, dev.runs(kernels::MMW)) {
        Method::MatVec => matvec(&dev, w, x, x_dtype, n, out, stream),
        Method::Mmq => mmq(&dev, w, x, x_dtype, n, out, stream),
        Method::Fused => fused(&dev, w, x, x_dtype, n, out, stream),
        Method::Gemm(Dtype::F32) => Err(IqError::Invalid("the GEMM path computes in bfloat16 or float16, not float32".into())),
        Method::Gemm(g) => gemm(&dev, w, x, x_dtype, n, out, g, stream),
        Method::Auto => unreachable!("resolve gives a concrete path"),
    }
}

/// Converts `count` elements from `src` (of `from`) to `dst` (of `to`).
unsafe fn convert(dev: &Device, src: u64, from: Dtype, dst: u64, to: Dtype, count: usize, stream: CUstream) -> Result<()> {
    let f = dev.function(kernels::ACTIVATIONS, "iqrs_convert")?;
    let grid = grid_1d(count, 256)?.0.min(1 << 16);
    let (from, to, count) = (from as i32, to as i32, count as u64);
    dev.launch(f, (grid, 1, 1), (256, 1, 1), stream, &mut args![src, from, dst, to, count])
}

/// `count` activations of `from` at `x` as `to`: `x` itself when they already are (and no copy
/// is asked for), else a converted copy in scratch memory, returned so that it lives as long as
/// the caller needs its address.
unsafe fn activations_as(dev: &Device, x: u64, from: Dtype, to: Dtype, count: usize, copy: bool, stream: CUstream) -> Result<(u64, Option<Scratch>)> {
    if from == to && !copy {
        return Ok((x, None));
    }
    let s = dev.scratch(count * to.size(), stream)?;
    convert(dev, x, from, s.ptr(), to, count, stream)?;
    Ok((s.ptr(), Some(s)))
}

/// How the activations are quantized to int8: Q8_1 for the mat-vec (one scale per 32 values,
/// each unit's values in an order, `kernels::mmv_activation_order`), or the quantized matrix
/// multiply's layout (one scale per 128).
enum Int8Layout {
    Q8_1 { order: i32 },
    Mmq128,
}

/// `n` activation vectors quantized to int8 in `layout` into scratch memory, returned with the
/// addresses of the `n·cols` int8 values and the f32 scales that follow them (16-byte aligned:
/// cols % 256 == 0).
unsafe fn quantize_activations(dev: &Device, w: &QMatrix, x: u64, x_dtype: Dtype, n: usize, layout: Int8Layout, stream: CUstream) -> Result<(Scratch, u64, u64)> {
    let (cols, units) = (w.cols, w.units());
    debug_assert_eq!(cols % QK_K, 0);
    let scratch = dev.scratch(n * cols + n * units * 4, stream)?;  // (the most scales: one per 32)
    let (yq, yd) = (scratch.ptr(), scratch.ptr() + (n * cols) as u64);
    let (xd, total, grid) = (x_dtype as i32, (n * cols) as u64, grid_1d(n * cols, 256)?);
    match layout {
        Int8Layout::Q8_1 { order } => {
            let f = dev.function(kernels::ACTIVATIONS, "iqrs_quantize_q8_1")?;
            dev.launch(f, grid, (256, 1, 1), stream, &mut args![x, xd, total, yq, yd, order])?
        }
        Int8Layout::Mmq128 => {
            let f = dev.function(kernels::ACTIVATIONS, "iqrs_quantize_q8_mmq128")?;
            dev.launch(f, grid, (256, 1, 1), stream, &mut args![x, xd, total, yq, yd])?
        }
    }
    Ok((scratch, yq, yd))
}

unsafe fn matvec(dev: &Device, w: &QMatrix, x: u64, x_dtype: Dtype, n: usize, out: u64, stream: CUstream) -> Result<()> {
    let (cols, units) = (w.cols, w.units());
    let (_scratch, yq, yd) = quantize_activations(dev, w, x, x_dtype, n, Int8Layout::Q8_1 { order: kernels::mmv_activation_order(w.qtype) }, stream)?;
    let (row_bytes, rows, units_i, xd) = (w.row_bytes() as u64, w.rows as i32, units as i32, x_dtype as i32);
    let mut c0 = 0;
    while c0 < n {
        let nc = (n - c0).min(kernels::MMV_MAX_COLS);
        let f = dev.function(kernels::module_of(w.qtype)?, &kernels::mmv_name(w.qtype, nc))?;
        let grid = (w.rows.div_ceil(kernels::MMV_WARPS as usize * kernels::mmv_rows_per_warp(w.qtype, nc)) as u32, 1, 1);
        let (q, d, o) = (yq + (c0 * cols) as u64, yd + (c0 * units * 4) as u64, out + (c0 * w.rows * x_dtype.size()) as u64);
        // A programmatic dependent of the quantization (sm_90): scheduled while it runs, the
        // kernel waits for its output before the loop (kernels.cuh `mmv`).
        dev.launch_dependent(f, grid, (32, kernels::MMV_WARPS, 1), stream, &mut args![w.ptr, row_bytes, rows, units_i, q, d, o, xd])?;
        c0 += nc;
    }
    Ok(())
}

/// The quantized matrix multiply (mmq.cuh) on int8 activations in its layout, one scale per 128.
unsafe fn mmq(dev: &Device, w: &QMatrix, x: u64, x_dtype: Dtype, n: usize, out: u64, stream: CUstream) -> Result<()> {
    let row_tiles = w.rows.div_ceil(kernels::MMQ_ROWS);
    if row_tiles > 65535 {
        return Err(IqError::Invalid(format!("{} rows exceed the quantized matrix multiply's grid", w.rows)));
    }
    let (_scratch, yq, yd) = quantize_activations(dev, w, x, x_dtype, n, Int8Layout::Mmq128, stream)?;
    let tiles = kernels::mmq_tiles(n);
    let f = dev.function(kernels::mmq_module(w.qtype, tiles)?, &kernels::mmq_name(w.qtype, tiles))?;
    let grid = (n.div_ceil(8 * tiles) as u32, row_tiles as u32, 1);
    let (row_bytes, rows, units_i, n_i, xd) = (w.row_bytes() as u64, w.rows as i32, w.units() as i32, n as i32, x_dtype as i32);
    dev.launch(f, grid, (32, kernels::MMQ_WARPS, 1), stream, &mut args![w.ptr, row_bytes, rows, units_i, yq, yd, n_i, out, xd])
}

/// The fused matrix multiply on bf16 activations: the warpgroup kernel (mmw.cuh) where it runs
/// (compute capability 9.0), else mm.cuh's. Its columns are split over several blocks (f32
/// partial sums, then `iqrs_sum_partials`) when the row tiles alone would leave SMs idle.
unsafe fn fused(dev: &Device, w: &QMatrix, x: u64, x_dtype: Dtype, n: usize, out: u64, stream: CUstream) -> Result<()> {
    let cols = w.cols;
    // bf16 activations, 16-byte aligned (the kernel reads them with cp.async).
    let (xb, _x_conv) = activations_as(dev, x, x_dtype, Dtype::BF16, n * cols, x % 16 != 0, stream)?;
    let wgmma = dev.runs(kernels::MMW);
    let (f, bn, bm, per_sm, threads, shared) = if wgmma {
        let bn = kernels::mmw_vectors_per_block(n);
        (dev.function(kernels::MMW, &kernels::mmw_name(w.qtype, bn))?, bn, kernels::MMW_ROWS, 1, kernels::MMW_THREADS, kernels::MMW_SHARED_BYTES)
    } else {
        let bn = kernels::mm_vectors_per_block(n);
        (dev.function(kernels::module_of(w.qtype)?, &kernels::mm_name(w.qtype, bn))?, bn, kernels::MM_ROWS, kernels::MM_BLOCKS_PER_SM, kernels::MM_THREADS, 0)
    };
    let (gx, gy) = (n.div_ceil(bn), w.rows.div_ceil(bm));
    if gy > 65535 {
        return Err(IqError::Invalid(format!("{} rows exceed the fused kernel's grid", w.rows)));
    }
    // Split the columns (in whole 256-weight blocks) until the blocks fill the SMs once.
    let blocks_per_row = cols / QK_K;
    let resident = dev.multiprocessors()? * per_sm;
    let mut splits = resident.div_ceil(gx * gy).clamp(1, blocks_per_row.min(kernels::MM_MAX_SPLITS));
    let split_units = blocks_per_row.div_ceil(splits) * (QK_K / 32);
    splits = w.units().div_ceil(split_units);
    let part = if splits > 1 { Some(dev.scratch(splits * n * w.rows * 4, stream)?) } else { None };
    let dst = part.as_ref().map_or(out, |p| p.ptr());
    let grid = (gx as u32, gy as u32, splits as u32);
    let (row_bytes, rows, units, n_i, xd, su) = (w.row_bytes() as u64, w.rows as i32, w.units() as i32, n as i32, x_dtype as i32, split_units as i32);
    if wgmma {
        // The warpgroup kernel reads x through the tensor-memory accelerator.
        let x_map = x_tensor_map(xb, cols, n, bn)?;
        dev.launch_shared(f, grid, (threads, 1, 1), shared, stream, &mut args![w.ptr, row_bytes, rows, units, x_map, n_i, dst, xd, su])?;
    } else {
        dev.launch_shared(f, grid, (threads, 1, 1), shared, stream, &mut args![w.ptr, row_bytes, rows, units, xb, n_i, dst, xd, su])?;
    }
    if let Some(p) = &part {
        let sum = dev.function(kernels::ACTIVATIONS, "iqrs_sum_partials")?;
        let count = n * w.rows;
        let (pp, sp, cnt) = (p.ptr(), splits as i32, count as u64);
        dev.launch(sum, (grid_1d(count, 256)?.0.min(1 << 16), 1, 1), (256, 1, 1), stream, &mut args![pp, sp, cnt, out, xd])?;
    }
    Ok(())
}

/// The tensor map of bf16 activations `x` (n vectors of `cols`, 16-byte aligned) in boxes of
/// `MMW_STAGE_K` weights x `width` vectors, in the 128-byte swizzle the warpgroup kernel reads
/// (zeros past the last vector).
fn x_tensor_map(x: u64, cols: usize, n: usize, width: usize) -> Result<sys::CUtensorMap> {
    let dims: [sys::cuuint64_t; 2] = [cols as u64, n as u64];
    let strides: [sys::cuuint64_t; 1] = [(cols * 2) as u64];
    let boxes: [sys::cuuint32_t; 2] = [kernels::MMW_STAGE_K as u32, width as u32];
    let elem: [sys::cuuint32_t; 2] = [1, 1];
    // SAFETY: a plain struct the driver fills; every array has the rank's length.
    unsafe {
        let mut map: sys::CUtensorMap = std::mem::zeroed();
        sys::cuTensorMapEncodeTiled(
            &mut map,
            sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            2,
            x as usize as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            elem.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
        .result()
        .map_err(driver_err("describing the activations to the tensor-memory accelerator"))?;
        Ok(map)
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn gemm(dev: &Device, w: &QMatrix, x: u64, x_dtype: Dtype, n: usize, out: u64, g: Dtype, stream: CUstream) -> Result<()> {
    let (rows, cols) = (w.rows, w.cols);
    // Activations in the GEMM type.
    let (xg, _x_conv) = activations_as(dev, x, x_dtype, g, n * cols, false, stream)?;
    // cuBLAS writes f32 or the GEMM type; f16 output from bf16 operands (or the reverse) goes through f32.
    let (c_type, c_tmp) = if x_dtype == Dtype::F32 || x_dtype == g { (x_dtype, None) } else { (Dtype::F32, Some(dev.scratch(n * rows * 4, stream)?)) };
    let c = c_tmp.as_ref().map_or(out, |s| s.ptr());
    // Weights in slabs of at most GEMM_SLAB_BYTES, whole row groups and multiples of 16 rows
    // (cuBLAS slows down several-fold on output columns that are not 16-byte aligned). Decoding
    // the next slab on a second stream while cuBLAS multiplies this one was measured: no gain.
    let max_rows = (GEMM_SLAB_BYTES / (cols * g.size()) / 16 * 16).max(16);
    let slab = max_rows.min(rows);
    let wbuf = dev.scratch(slab * cols * g.size(), stream)?;
    let (alpha, beta) = (1.0f32, 0.0f32);
    for r0 in (0..rows).step_by(slab) {
        let r = slab.min(rows - r0);
        dequantize_rows(dev, w, r0, r, wbuf.ptr(), g, stream)?;
        dev.with_cublas(stream, |h| {
            // Column-major view: C (r x n, ldc = rows) = W_slabᵀ (r x cols) · X (cols x n).
            cudarc::cublas::result::gemm_ex(
                h,
                cb::cublasOperation_t::CUBLAS_OP_T,
                cb::cublasOperation_t::CUBLAS_OP_N,
                r as i32,
                n as i32,
                cols as i32,
                &alpha as *const f32 as *const c_void,
                wbuf.ptr() as usize as *const c_void,
                g.cublas(),
                cols as i32,
                xg as usize as *const c_void,
                g.cublas(),
                cols as i32,
                &beta as *const f32 as *const c_void,
                (c + (r0 * c_type.size()) as u64) as usize as *mut c_void,
                c_type.cublas(),
                rows as i32,
                cb::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cb::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
            .map_err(cublas_err("cublasGemmEx"))
        })?;
    }
    if let Some(tmp) = &c_tmp {
        convert(dev, tmp.ptr(), Dtype::F32, out, x_dtype, n * rows, stream)?;
    }
    Ok(())
}
