//! AVX2 kernels. Integer block sums are exact (no 16-bit saturation: products of a 7-bit table
//! value and an 8-bit activation are formed as `|y| · sign(t, y)`, whose pair sums stay below
//! 2^15), and the float accumulation over blocks runs in the scalar code's order, so every
//! result equals the scalar kernel's bit for bit.
//!
//! Every `unsafe fn` here requires AVX2 (+FMA) at run time; the safe wrappers are only handed
//! out by [`super::kernels`] after the CPU reported those features.

use std::arch::x86_64::*;
use std::ops::Range;

pub mod k;
pub mod r4;

use crate::gemm::{tile_scalar, PackedCols, PackedRows, TILE_ROWS};
use crate::quants::common::read_f32;
use crate::quants::ks::{IQ4KSS_BLOCK, IQ4KS_BLOCK, ROW_META};
use crate::quants::q8k;
use crate::registry::QK_K;
use crate::tables::IQ4K_VALUES;

/// Horizontal sum of eight i32 lanes.
#[inline(always)]
pub(super) unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// The iq4k table half selected by bit 0 of a scale byte, in both 128-bit lanes.
#[inline(always)]
unsafe fn iq4k_table(shift: u8) -> __m256i {
    let t = _mm_loadu_si128(IQ4K_VALUES.as_ptr().add(16 * (shift & 1) as usize).cast());
    _mm256_broadcastsi128_si256(t)
}

/// The 32 table values of one 32-weight sub-block from its 16 nibble-packed bytes (weight `t` in
/// the low nibble of byte `t` for t < 16, in the high nibble of byte `t - 16` otherwise).
#[inline(always)]
unsafe fn iq4_values(packed: __m128i, table: __m256i) -> __m256i {
    let idx = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
    _mm256_shuffle_epi8(table, _mm256_and_si256(idx, _mm256_set1_epi8(0x0F)))
}

/// `Σ t·y` of 32 signed bytes each, as eight i32 lanes multiplied by `scale`; exact.
#[inline(always)]
pub(super) unsafe fn scaled_dot32(t: __m256i, y: __m256i, scale: i32) -> __m256i {
    let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(y), _mm256_sign_epi8(t, y));
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(scale as i16))
}

/// 16 bytes of a slice at `off` (bounds-checked).
#[inline(always)]
pub(super) unsafe fn load16(b: &[u8], off: usize) -> __m128i {
    _mm_loadu_si128(b[off..off + 16].as_ptr().cast())
}

/// 32 bytes of a slice at `off` (bounds-checked).
#[inline(always)]
pub(super) unsafe fn load32(b: &[u8], off: usize) -> __m256i {
    _mm256_loadu_si256(b[off..off + 32].as_ptr().cast())
}

/// Writes `d · v` for 32 signed bytes `v` to `out[..32]`.
#[inline(always)]
pub(super) unsafe fn store_scaled32(v: __m256i, d: f32, out: &mut [f32]) {
    let out = &mut out[..32];
    let dv = _mm256_set1_ps(d);
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    let parts = [lo, _mm_unpackhi_epi64(lo, lo), hi, _mm_unpackhi_epi64(hi, hi)];
    for (k, p) in parts.into_iter().enumerate() {
        let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(p));
        _mm256_storeu_ps(out.as_mut_ptr().add(8 * k), _mm256_mul_ps(dv, f));
    }
}

/// Scale byte and nibble-packed bytes of the 8 IQ4_KSS words of one sub-block: bit 0 of word
/// `k` is bit `k` of the scale byte; bits 1..15 hold the prefix-XOR code of the index group.
#[inline(always)]
unsafe fn kss_decode8(words: __m128i) -> (u8, __m128i) {
    let bits = _mm_packs_epi16(_mm_slli_epi16::<15>(words), _mm_setzero_si128());
    let sbyte = _mm_movemask_epi8(bits) as u8;
    let a = _mm_and_si128(words, _mm_set1_epi16(-2));
    (sbyte, _mm_xor_si128(a, _mm_srli_epi16::<1>(a)))
}

#[inline(always)]
fn l_of(sbyte: u8) -> i32 {
    (sbyte & 0xFE) as i32 - 127
}

// ---------------------------------------------------------------------------------------------
// IQ4_KS

#[target_feature(enable = "avx2,fma")]
unsafe fn iq4_ks_dot_impl(src: &[u8], y: &[u8]) -> f32 {
    let d = read_f32(src, 0);
    let mut acc = 0f32;
    for (i, (b, yb)) in src[ROW_META..].chunks_exact(IQ4KS_BLOCK).zip(y.chunks_exact(q8k::BLOCK_BYTES)).enumerate() {
        crate::arch::prefetch_ahead(src, ROW_META + IQ4KS_BLOCK * i, IQ4KS_BLOCK);
        let mut s = _mm256_setzero_si256();
        for ib in 0..8 {
            let t = iq4_values(load16(b, 8 + 16 * ib), iq4k_table(b[ib]));
            s = _mm256_add_epi32(s, scaled_dot32(t, load32(yb, q8k::QS + 32 * ib), l_of(b[ib])));
        }
        acc += (d * read_f32(yb, 0)) * hsum_i32(s) as f32;
    }
    acc
}

#[target_feature(enable = "avx2,fma")]
unsafe fn iq4_ks_dequantize_impl(src: &[u8], out: &mut [f32]) {
    let d = read_f32(src, 0);
    for (b, ob) in src[ROW_META..].chunks_exact(IQ4KS_BLOCK).zip(out.chunks_exact_mut(QK_K)) {
        for ib in 0..8 {
            let t = iq4_values(load16(b, 8 + 16 * ib), iq4k_table(b[ib]));
            store_scaled32(t, d * l_of(b[ib]) as f32, &mut ob[32 * ib..]);
        }
    }
}

/// IQ4_KS · Q8_K.
pub fn iq4_ks_dot(src: &[u8], y: &[u8]) -> f32 {
    // SAFETY: handed out only when AVX2 and FMA are present (see the module docs).
    unsafe { iq4_ks_dot_impl(src, y) }
}

/// IQ4_KS row decode.
pub fn iq4_ks_dequantize(src: &[u8], out: &mut [f32]) {
    // SAFETY: as above.
    unsafe { iq4_ks_dequantize_impl(src, out) }
}

// ---------------------------------------------------------------------------------------------
// IQ4_KSS

#[target_feature(enable = "avx2,fma")]
unsafe fn iq4_kss_dot_impl(src: &[u8], y: &[u8]) -> f32 {
    let d = read_f32(src, 0);
    let mut acc = 0f32;
    for (i, (b, yb)) in src[ROW_META..].chunks_exact(IQ4KSS_BLOCK).zip(y.chunks_exact(q8k::BLOCK_BYTES)).enumerate() {
        crate::arch::prefetch_ahead(src, ROW_META + IQ4KSS_BLOCK * i, IQ4KSS_BLOCK);
        let mut s = _mm256_setzero_si256();
        for ib in 0..8 {
            let (sbyte, packed) = kss_decode8(load16(b, 16 * ib));
            let t = iq4_values(packed, iq4k_table(sbyte));
            s = _mm256_add_epi32(s, scaled_dot32(t, load32(yb, q8k::QS + 32 * ib), l_of(sbyte)));
        }
        acc += (d * read_f32(yb, 0)) * hsum_i32(s) as f32;
    }
    acc
}

#[target_feature(enable = "avx2,fma")]
unsafe fn iq4_kss_dequantize_impl(src: &[u8], out: &mut [f32]) {
    let d = read_f32(src, 0);
    for (b, ob) in src[ROW_META..].chunks_exact(IQ4KSS_BLOCK).zip(out.chunks_exact_mut(QK_K)) {
        for ib in 0..8 {
            let (sbyte, packed) = kss_decode8(load16(b, 16 * ib));
            let t = iq4_values(packed, iq4k_table(sbyte));
            store_scaled32(t, d * l_of(sbyte) as f32, &mut ob[32 * ib..]);
        }
    }
}

/// IQ4_KSS · Q8_K.
pub fn iq4_kss_dot(src: &[u8], y: &[u8]) -> f32 {
    // SAFETY: handed out only when AVX2 and FMA are present.
    unsafe { iq4_kss_dot_impl(src, y) }
}

/// IQ4_KSS row decode.
pub fn iq4_kss_dequantize(src: &[u8], out: &mut [f32]) {
    // SAFETY: as above.
    unsafe { iq4_kss_dequantize_impl(src, out) }
}

// ---------------------------------------------------------------------------------------------
// Q8_K as a weight type

#[target_feature(enable = "avx2,fma")]
unsafe fn q8_k_dot_impl(src: &[u8], y: &[u8]) -> f32 {
    let mut acc = 0f32;
    for (i, (b, yb)) in src.chunks_exact(q8k::BLOCK_BYTES).zip(y.chunks_exact(q8k::BLOCK_BYTES)).enumerate() {
        crate::arch::prefetch_ahead(src, q8k::BLOCK_BYTES * i, q8k::BLOCK_BYTES);
        // Both operands span all of i8 (-128·-128 included): widen to i16, then pair sums.
        let mut s = _mm256_setzero_si256();
        for k in 0..16 {
            let w = _mm256_cvtepi8_epi16(load16(b, q8k::QS + 16 * k));
            let a = _mm256_cvtepi8_epi16(load16(yb, q8k::QS + 16 * k));
            s = _mm256_add_epi32(s, _mm256_madd_epi16(w, a));
        }
        acc += (read_f32(b, 0) * read_f32(yb, 0)) * hsum_i32(s) as f32;
    }
    acc
}

#[target_feature(enable = "avx2,fma")]
unsafe fn q8_k_dequantize_impl(src: &[u8], out: &mut [f32]) {
    for (b, ob) in src.chunks_exact(q8k::BLOCK_BYTES).zip(out.chunks_exact_mut(QK_K)) {
        let d = read_f32(b, 0);
        for k in 0..8 {
            store_scaled32(load32(b, q8k::QS + 32 * k), d, &mut ob[32 * k..]);
        }
    }
}

/// Q8_K · Q8_K.
pub fn q8_k_dot(src: &[u8], y: &[u8]) -> f32 {
    // SAFETY: handed out only when AVX2 and FMA are present.
    unsafe { q8_k_dot_impl(src, y) }
}

/// Q8_K row decode.
pub fn q8_k_dequantize(src: &[u8], out: &mut [f32]) {
    // SAFETY: as above.
    unsafe { q8_k_dequantize_impl(src, out) }
}

/// `clamp(round_half_even(x[..8] · id), lo, hi)` as i32 lanes.
#[inline(always)]
unsafe fn quant8(x: &[f32], id: __m256, lo: __m256i, hi: __m256i) -> __m256i {
    let q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x[..8].as_ptr()), id));
    _mm256_max_epi32(_mm256_min_epi32(q, hi), lo)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn q8_k_quantize_impl(x: &[f32], out: &mut [u8]) {
    let sign = _mm256_set1_ps(-0.0);
    for (xb, ob) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(q8k::BLOCK_BYTES)) {
        let xb = &xb[..QK_K];
        let mut m = _mm256_setzero_ps();
        for k in 0..32 {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb.as_ptr().add(8 * k))));
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let (lo, hi) = (_mm256_set1_epi32(-128), _mm256_set1_epi32(127));
        let mut total = 0i32;
        for k in 0..16 {
            // round half to even (the default MXCSR mode), then clamp like the scalar code
            let a = quant8(&xb[16 * k..], id, lo, hi);
            let b = quant8(&xb[16 * k + 8..], id, lo, hi);
            let p16 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(a, b));
            let p8 = _mm_packs_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256::<1>(p16));
            _mm_storeu_si128(ob[q8k::QS + 16 * k..q8k::QS + 16 * k + 16].as_mut_ptr().cast(), p8);
            let bsum = hsum_i32(_mm256_add_epi32(a, b));
            ob[q8k::BSUMS + 2 * k..q8k::BSUMS + 2 * k + 2].copy_from_slice(&(bsum as i16).to_le_bytes());
            total += bsum;
        }
        ob[0..4].copy_from_slice(&d.to_le_bytes());
        ob[4..8].copy_from_slice(&(d * total as f32).to_le_bytes());
    }
}

/// Q8_K quantization of a row (activations, or Q8_K weights).
pub fn q8_k_quantize(x: &[f32], out: &mut [u8]) {
    // SAFETY: handed out only when AVX2 and FMA are present.
    unsafe { q8_k_quantize_impl(x, out) }
}

// ---------------------------------------------------------------------------------------------
// Matrix multiply microkernel

/// Activation vectors per register block.
const GEMM_NC: usize = 4;

/// Eight rows (`half` 0: rows 0..8 of the tile, 1: rows 8..16) of one tile for the `NC` vectors
/// starting at `j0`: rows in the lanes, one i32 block sum per vector. A sub-block's products are
/// `|w| · sign(y, w)` by `vpmaddubsw` (|w| <= 128 unsigned, y·sign(w) within -127..=127 since no
/// quant is -128: pair sums below 2^15, exact), then `vpmaddwd` by ones, so the block sums are the
/// integers of [`tile_scalar`] (which offsets y by 128 and takes the correction off: the same
/// totals), scaled and summed over blocks in its order without FMA: the same bits.
#[inline(always)]
unsafe fn gemm_half<const NC: usize>(w: &PackedRows, y: &PackedCols, j0: usize, half: usize, nrows: usize, out: &mut [f32], ldo: usize) {
    let blocks = w.blocks;
    assert!(j0 + NC <= y.n && y.yu.len() >= y.n * y.cols && y.d8.len() >= y.n * blocks && y.cols == blocks * QK_K);
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(-128);
    let mut acc = [_mm256_setzero_ps(); NC];
    for b in 0..blocks {
        let wb = w.w[b].as_ptr().add(32 * half);
        let mut s = [_mm256_setzero_si256(); NC];
        for sb in 0..16 {
            let l = _mm256_loadu_si256(w.scales[b].as_ptr().add(sb * TILE_ROWS + 8 * half).cast());
            // group g: rows' weights 16·sb + 4g .. + 4, 4 bytes a row
            let wv: [__m256i; 4] = std::array::from_fn(|g| _mm256_loadu_si256(wb.add((4 * sb + g) * 64).cast()));
            let wa: [__m256i; 4] = std::array::from_fn(|g| _mm256_abs_epi8(wv[g]));
            for (j, sj) in s.iter_mut().enumerate() {
                let yp = y.yu.as_ptr().add((j0 + j) * y.cols + b * QK_K + 16 * sb).cast::<i32>();
                let mut p = _mm256_setzero_si256();
                for g in 0..4 {
                    let yb = _mm256_xor_si256(_mm256_set1_epi32(yp.add(g).read_unaligned()), flip);
                    let t = _mm256_maddubs_epi16(wa[g], _mm256_sign_epi8(yb, wv[g]));
                    p = _mm256_add_epi32(p, _mm256_madd_epi16(t, ones));
                }
                *sj = _mm256_add_epi32(*sj, _mm256_mullo_epi32(p, l));
            }
        }
        let dv = _mm256_loadu_ps(w.d[b].as_ptr().add(8 * half));
        for j in 0..NC {
            let dd = _mm256_mul_ps(dv, _mm256_set1_ps(y.d8[(j0 + j) * blocks + b]));
            acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(dd, _mm256_cvtepi32_ps(s[j])));
        }
    }
    let mut col = [0f32; 8];
    for j in 0..NC {
        _mm256_storeu_ps(col.as_mut_ptr(), acc[j]);
        for (r, &v) in col.iter().enumerate().take(nrows.saturating_sub(8 * half).min(8)) {
            out[(8 * half + r) * ldo + j0 + j] = v;
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_tile_impl(w: &PackedRows, y: &PackedCols, vecs: Range<usize>, nrows: usize, out: &mut [f32], ldo: usize) {
    for half in 0..nrows.div_ceil(8) {
        let mut j0 = vecs.start;
        while j0 < vecs.end {
            let nc = (vecs.end - j0).min(GEMM_NC);
            match nc {
                1 => gemm_half::<1>(w, y, j0, half, nrows, out, ldo),
                2 => gemm_half::<2>(w, y, j0, half, nrows, out, ldo),
                3 => gemm_half::<3>(w, y, j0, half, nrows, out, ldo),
                _ => gemm_half::<4>(w, y, j0, half, nrows, out, ldo),
            }
            j0 += nc;
        }
    }
}

/// Matrix-multiply tile (see [`crate::gemm`]) on AVX2: activations with a -128 quant (never
/// ours) go through [`tile_scalar`].
pub fn gemm_tile(w: &PackedRows, y: &PackedCols, vecs: Range<usize>, nrows: usize, out: &mut [f32], ldo: usize) {
    assert!(nrows <= TILE_ROWS && vecs.end <= y.n && out.len() >= (nrows.max(1) - 1) * ldo + vecs.end);
    if y.has_min {
        return tile_scalar(w, y, vecs, nrows, out, ldo);
    }
    // SAFETY: handed out only when AVX2 and FMA are present; memory accesses are within the
    // asserted bounds.
    unsafe { gemm_tile_impl(w, y, vecs, nrows, out, ldo) }
}
