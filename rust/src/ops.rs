//! Whole-tensor operations: input checks, then the type's kernels over row groups in parallel.
//! A tensor is `rows` rows of `cols` weights, stored as ggml lays it out: rows back to back, each
//! `QType::row_size(cols)` bytes (row groups of `_R4` types interleave 4 such rows).

use rayon::prelude::*;

use crate::arch::{self, all_finite};
use crate::error::{IqError, Result};
use crate::quants::r4;
use crate::registry::{QType, QK_K};
use crate::threads;

// Work below which an operation runs on the calling thread. Handing work to the pool costs
// ~15-20 µs on this kind of machine (2 vCPUs: waking the idle thread), so a second thread pays
// only past ~25-40 µs of one thread's work. Crossovers measured (2026-12-04, AMD EPYC 2 vCPUs,
// 4096 columns, best of 3 x 200 calls, 1 vs 2 threads; BENCHMARKS.md):
// * dequantize: 256 K weights (iq4_k: 25.5 vs 25.3 µs);
// * mat-vec: 0.5-1 M weights (iq2_k 512 K: 26.8 vs 25.1 µs, iq4_k 1 M: 41.4 vs 41.1 µs; with
//   the old threshold of 64 K weights a 16-row mat-vec took 22 µs on two threads, 9 on one);
// * mat-mat of 4 vectors: 1-2 M weights x vectors (1 M: 38.2 vs 35.0 µs and 38.3 vs 49.7 in
//   two runs; 2 M: 67.3 vs 55.6 and 81.9 vs 65.5).

/// Decoded weights (dequantize), or bytes moved (repack), from which two threads are used.
pub const PARALLEL_MIN_DECODE: usize = 1 << 18;
/// Weights x activation vectors from which row-by-row dot products (mat-vec) use two threads.
pub const PARALLEL_MIN_DOTS: usize = 1 << 20;
/// Weights x activation vectors from which the tiled matrix multiply uses two threads.
pub const PARALLEL_MIN_GEMM: usize = 1 << 21;
/// Activation values quantized to Q8_K from which two threads are used (~4 G values/s a thread).
pub const PARALLEL_MIN_ACTIVATIONS: usize = 1 << 17;

fn check_finite(what: &'static str, x: &[f32], cols: usize) -> Result<()> {
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        let position = if cols > 0 && x.len() > cols { format!("row {}, column {}", i / cols, i % cols) } else { format!("index {i}") };
        return Err(IqError::NonFinite { what, position, value: x[i] });
    }
    Ok(())
}

/// Checks an importance matrix: one finite, non-negative value per column.
pub fn check_imatrix(imatrix: &[f32], cols: usize) -> Result<()> {
    if imatrix.len() != cols {
        return Err(IqError::SizeMismatch { what: "imatrix length (one weight per column)", expected: cols, got: imatrix.len() });
    }
    check_finite("imatrix", imatrix, 0)?;
    if let Some(i) = imatrix.iter().position(|&v| v < 0.0) {
        return Err(IqError::NegativeImatrix { index: i, value: imatrix[i] });
    }
    Ok(())
}

/// Checks that `data` holds exactly a `rows x cols` tensor of type `t`.
pub fn check_data(t: QType, data: &[u8], rows: usize, cols: usize) -> Result<()> {
    t.check_shape("tensor shape", rows, cols)?;
    let expected = rows * t.row_size(cols);
    if data.len() != expected {
        return Err(IqError::SizeMismatch { what: "buffer size in bytes for this type and shape", expected, got: data.len() });
    }
    Ok(())
}

/// Runs `f` over matching chunks of `a` and `b`, in parallel when the work reaches `min_work`.
fn for_each_chunk<A: Sync, B: Send>(a: &[A], ca: usize, b: &mut [B], cb: usize, work: usize, min_work: usize, f: impl Fn(&[A], &mut [B]) + Sync + Send) {
    if work < min_work || threads::num_threads() == 1 {
        a.chunks(ca).zip(b.chunks_mut(cb)).for_each(|(x, y)| f(x, y));
    } else {
        threads::pool().install(|| a.par_chunks(ca).zip(b.par_chunks_mut(cb)).for_each(|(x, y)| f(x, y)));
    }
}

/// Quantizes a row-major `rows x cols` matrix to type `t`.
pub fn quantize(t: QType, x: &[f32], rows: usize, cols: usize, imatrix: Option<&[f32]>) -> Result<Vec<u8>> {
    let mut out = vec![0u8; rows * t.row_size(cols)];
    quantize_into(t, x, rows, cols, imatrix, &mut out)?;
    Ok(out)
}

/// Quantizes into a caller's buffer of exactly `rows * row_size(cols)` bytes. On an error
/// (non-finite input) the buffer's content is unspecified.
pub fn quantize_into(t: QType, x: &[f32], rows: usize, cols: usize, imatrix: Option<&[f32]>, out: &mut [u8]) -> Result<()> {
    t.check_shape("x", rows, cols)?;
    if x.len() != rows * cols {
        return Err(IqError::SizeMismatch { what: "x length (rows * cols)", expected: rows * cols, got: x.len() });
    }
    if out.len() != rows * t.row_size(cols) {
        return Err(IqError::SizeMismatch { what: "output buffer size in bytes", expected: rows * t.row_size(cols), got: out.len() });
    }
    if let Some(im) = imatrix {
        check_imatrix(im, cols)?;
    }
    let g = t.info().rows_per_group;
    let k = arch::kernels(t);
    // Each group is checked for non-finite values right before it is quantized, on its thread
    // and while it is in cache; if any is bad, the first bad value is located and reported.
    // Types with 16-bit float scales cannot represent every finite tensor: each quantized group
    // is decoded again (a small fraction of the quantizing time) to catch a scale that overflowed.
    // Magnitudes beyond MAX_ABS are refused outright: the quantizers' weights square the values.
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let (bad, overflow) = (AtomicBool::new(false), AtomicBool::new(false));
    let verify = t != QType::Q8K;
    // Quantizing costs far more per weight than anything else: parallelise per group always,
    // except Q8_K, which quantizes as fast as activations are.
    let min_work = if t == QType::Q8K { PARALLEL_MIN_ACTIVATIONS } else { 0 };
    for_each_chunk(x, g * cols, out, g * t.row_size(cols), x.len(), min_work, |xs, o| {
        if !all_finite(xs) {
            bad.store(true, Relaxed);
            return;
        }
        if verify && xs.iter().fold(0f32, |m, v| m.max(v.abs())) > MAX_ABS {
            overflow.store(true, Relaxed);
            return;
        }
        (k.quantize)(xs, cols, imatrix, o);
        if verify {
            let mut back = vec![0f32; xs.len()];
            (k.dequantize)(o, cols, &mut back);
            // inf/nan, or everything lost although the values are far above any format's
            // resolution (an overflowed scale the quantizer zeroed)
            let lost = back.iter().all(|&v| v == 0.0) && xs.iter().any(|v| v.abs() >= 1.0);
            if !all_finite(&back) || lost {
                overflow.store(true, Relaxed);
            }
        }
    });
    if bad.load(Relaxed) {
        check_finite("x", x, cols)?;
    }
    if overflow.load(Relaxed) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        return Err(IqError::Invalid(format!(
            "x: values too large for {t} (largest |x| = {amax:e}): its scales overflow their float format or the values exceed {MAX_ABS:e}; scale the tensor down (or use a type with 32-bit row scales)"
        )));
    }
    Ok(())
}

/// The largest magnitude the weight quantizers accept (their importance weights square the
/// values, and sums of squares must stay finite); Q8_K takes any finite value.
pub const MAX_ABS: f32 = 1e15;

/// Decodes a tensor to row-major f32.
pub fn dequantize(t: QType, data: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>> {
    check_data(t, data, rows, cols)?;
    let mut out = vec![0f32; rows * cols];
    dequantize_into(t, data, cols, &mut out);
    Ok(out)
}

/// Decodes a checked tensor into `out` (`rows * cols` floats).
pub fn dequantize_into(t: QType, data: &[u8], cols: usize, out: &mut [f32]) {
    let g = t.info().rows_per_group;
    let k = arch::kernels(t);
    for_each_chunk(data, g * t.row_size(cols), out, g * cols, out.len(), PARALLEL_MIN_DECODE, |src, o| (k.dequantize)(src, cols, o));
}

/// Converts a tensor between a type and its row-interleaved `_R4` form, in either direction: a
/// pure byte shuffle, exact both ways (FORMATS.md §8). Converting to the same type copies.
pub fn repack(from: QType, to: QType, data: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>> {
    check_data(from, data, rows, cols)?;
    if from == to {
        return Ok(data.to_vec());
    }
    let (spec, forward) = match (r4::spec_of(to), r4::spec_of(from)) {
        (Some(s), _) if s.base == from => (s, true),
        (_, Some(s)) if s.base == to => (s, false),
        _ => {
            let pairs = r4::SPECS.iter().map(|s| format!("{} <-> {}", s.base, s.r4)).collect::<Vec<_>>().join(", ");
            return Err(IqError::Invalid(format!("cannot repack {from} as {to}: repack converts between a type and its _r4 form ({pairs})")));
        }
    };
    to.check_shape("tensor shape", rows, cols)?;
    let group = 4 * from.row_size(cols);
    let mut out = vec![0u8; data.len()];
    for_each_chunk(data, group, &mut out, group, data.len(), PARALLEL_MIN_DECODE, |src, o| {
        if forward {
            r4::interleave(spec, cols, src, o)
        } else {
            r4::deinterleave(spec, cols, src, o)
        }
    });
    Ok(out)
}

/// Quantizes activation vectors to Q8_K: `x` holds `n` vectors of `cols` values back to back.
pub fn quantize_q8k(x: &[f32], cols: usize) -> Result<Vec<u8>> {
    if cols == 0 || cols % QK_K != 0 {
        return Err(IqError::NotBlockAligned { what: "activation length", cols, block: QK_K });
    }
    if x.len() % cols != 0 {
        return Err(IqError::SizeMismatch { what: "activation length (a multiple of cols)", expected: cols, got: x.len() });
    }
    check_finite("x", x, cols)?;
    let rs = QType::Q8K.row_size(cols);
    let mut out = vec![0u8; x.len() / cols * rs];
    let k = arch::kernels(QType::Q8K);
    for_each_chunk(x, cols, &mut out, rs, x.len(), PARALLEL_MIN_ACTIVATIONS, |xs, o| (k.quantize)(xs, cols, None, o));
    Ok(out)
}

/// `W · xᵀ` for `n` activation vectors: `x` holds `n` vectors of `cols` floats back to back;
/// the result is row-major `rows x n`. Each vector is quantized to Q8_K and every weight row is
/// dotted with it exactly as the reference defines the product (FORMATS.md §5).
pub fn matmul(t: QType, data: &[u8], rows: usize, cols: usize, x: &[f32], n: usize) -> Result<Vec<f32>> {
    check_data(t, data, rows, cols)?;
    if n == 0 || x.len() != n * cols {
        return Err(IqError::SizeMismatch { what: "activations (n vectors of cols values)", expected: n.max(1) * cols, got: x.len() });
    }
    let y = quantize_q8k(x, cols)?;
    let mut out = vec![0f32; rows * n];
    matmul_q8k(t, data, cols, &y, n, &mut out);
    Ok(out)
}

/// Activation vectors from which a product of a type with `rows_per_group` rows a group goes
/// through the tiled matrix multiply (where the ISA has one) instead of row-by-row dot products:
/// 2 where the tiles are decoded by SIMD (AVX-512). On AVX2 the tiles are decoded block by
/// block through `decode_int` (14-21 ms for 4096x4096 on an AVX2 EPYC, 2026-12-06, BENCHMARKS.md),
/// so the tile pays from more vectors: at 32, IQ4_KS 34.4 ms by dots against 24.9 tiled, IQ2_K
/// 35.9 / 25.1, but IQ4_K_R4 30.8 / 35.5 (its dots decode a row group at once); at 48 and 64
/// the tile is ahead for all three.
pub fn gemm_min_n(isa: arch::Isa, rows_per_group: usize) -> usize {
    match isa {
        arch::Isa::Avx2 if rows_per_group > 1 => 48,
        arch::Isa::Avx2 => 24,
        _ => 2,
    }
}

/// `W · yᵀ` with already-quantized Q8_K activations (`n` rows of `cols`); `out` is `rows x n`.
/// Both paths give the same bits.
pub fn matmul_q8k(t: QType, data: &[u8], cols: usize, y: &[u8], n: usize, out: &mut [f32]) {
    let g = t.info().rows_per_group;
    let rs = t.row_size(cols);
    let ys = QType::Q8K.row_size(cols);
    let k = arch::kernels(t);
    let rows = out.len() / n;
    let work = rows * cols * n;
    if n >= gemm_min_n(arch::current_isa(), g) {
        if let Some(tile) = arch::gemm_tile(arch::current_isa()) {
            let parallel = work >= PARALLEL_MIN_GEMM && threads::num_threads() > 1;
            return crate::gemm::matmul(&k, tile, g, rs, data, cols, y, n, out, parallel);
        }
    }
    let y = k.activations(y);
    // The SIMD dots prefetch the weights `arch::PREFETCH_AHEAD` bytes on, block by block, past
    // the end of their row into the next ones. (A prefetch of the whole next row here, before
    // each dot, measured 4-35% slower on an AMD EPYC: BENCHMARKS.md, 2026-12-05.)
    for_each_chunk(data, g * rs, out, g * n, work, PARALLEL_MIN_DOTS, |src, o| {
        let mut tmp = [0f32; 8];
        for j in 0..n {
            (k.dot)(src, cols, &y[j * ys..(j + 1) * ys], &mut tmp[..g]);
            for r in 0..g {
                o[r * n + j] = tmp[r];
            }
        }
    });
}

/// The sum of all bytes of `b`, read in 1 MiB pieces on the pool's threads: the benchmark's
/// read-bandwidth probe (time it on a buffer much larger than the last-level cache).
pub fn byte_sum(b: &[u8]) -> u64 {
    use rayon::prelude::*;
    if threads::num_threads() == 1 {
        return arch::byte_sum(b);
    }
    threads::pool().install(|| b.par_chunks(1 << 20).map(arch::byte_sum).sum())
}

/// Imatrix-weighted RMSE `sqrt(Σ w_j (x_ij - q_ij)² / Σ w_j)` (w = 1 without an imatrix).
pub fn weighted_rmse(x: &[f32], q: &[f32], cols: usize, imatrix: Option<&[f32]>) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (xr, qr) in x.chunks(cols).zip(q.chunks(cols)) {
        for j in 0..cols {
            let w = imatrix.map_or(1.0, |im| im[j] as f64);
            let e = xr[j] as f64 - qr[j] as f64;
            num += w * e * e;
            den += w;
        }
    }
    if den > 0.0 { (num / den).sqrt() } else { 0.0 }
}
