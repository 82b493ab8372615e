//! AVX-512 kernels: decoding with F/BW/VL, dot products with VNNI (`vpdpbusd`).
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so table values `t` are looked up with an
//! offset of 128 (`t + 128 ∈ [1, 255]`) and `128 · Σ y` is subtracted again (taken from the Q8_K
//! block sums, which the dot kernels therefore trust to match the quants — as every Q8_K row made
//! by this crate does): the block sums are exact, the float accumulation runs in the scalar
//! code's order, and every result equals the scalar kernel's bit for bit.
//!
//! Every `unsafe fn` here requires its target features at run time; the safe wrappers are only
//! handed out by [`super::kernels`] after the CPU reported them.

use std::arch::x86_64::*;
use std::ops::Range;

pub mod k;
pub mod r4;
pub mod search;
pub mod tile;

use crate::gemm::{PackedCols, PackedRows, TILE_ROWS};
use crate::quants::common::read_f32;
use crate::quants::ks::{IQ4KSS_BLOCK, IQ4KS_BLOCK, ROW_META};
use crate::quants::q8k;
use crate::registry::QK_K;
use crate::tables::IQ4K_VALUES;

/// The iq4k table halves, plain values and values + 128 (as unsigned bytes).
static IQ4K_TABLES: [[u8; 16]; 4] = {
    let mut t = [[0u8; 16]; 4];
    let mut i = 0;
    while i < 16 {
        t[0][i] = IQ4K_VALUES[i] as u8;
        t[1][i] = IQ4K_VALUES[16 + i] as u8;
        t[2][i] = (IQ4K_VALUES[i] as i32 + 128) as u8;
        t[3][i] = (IQ4K_VALUES[16 + i] as i32 + 128) as u8;
        i += 1;
    }
    t
};

/// Lookup table for two sub-blocks in one register: lanes 0–1 hold the half chosen by bit 0 of
/// `s0`, lanes 2–3 the one chosen by `s1`.
#[inline(always)]
unsafe fn iq4k_table2(s0: u8, s1: u8) -> __m512i {
    let t0 = _mm256_broadcastsi128_si256(_mm_loadu_si128(IQ4K_TABLES[(s0 & 1) as usize].as_ptr().cast()));
    let t1 = _mm256_broadcastsi128_si256(_mm_loadu_si128(IQ4K_TABLES[(s1 & 1) as usize].as_ptr().cast()));
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(t0), t1)
}

/// The 64 table indices of two consecutive sub-blocks from their 32 nibble-packed bytes:
/// lane 0 = low nibbles of sub-block 0, lane 1 = its high nibbles, lanes 2–3 likewise.
#[inline(always)]
unsafe fn iq4_indices2(packed: __m256i) -> __m512i {
    let z = _mm512_zextsi256_si512(packed);
    let x = _mm512_shuffle_i64x2::<0b01_01_00_00>(z, z);
    let v = _mm512_mask_blend_epi64(0b1100_1100, x, _mm512_srli_epi16::<4>(x));
    _mm512_and_si512(v, _mm512_set1_epi8(0x0F))
}

/// Writes `d0 · v` (bytes 0..32) and `d1 · v` (bytes 32..64) for 64 signed bytes to `out[..64]`.
#[inline(always)]
unsafe fn store_scaled64(v: __m512i, d0: f32, d1: f32, out: &mut [f32]) {
    let out = &mut out[..64];
    let lanes = [_mm512_castsi512_si128(v), _mm512_extracti32x4_epi32::<1>(v), _mm512_extracti32x4_epi32::<2>(v), _mm512_extracti32x4_epi32::<3>(v)];
    for (k, p) in lanes.into_iter().enumerate() {
        let d = _mm512_set1_ps(if k < 2 { d0 } else { d1 });
        let f = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(p));
        _mm512_storeu_ps(out.as_mut_ptr().add(16 * k), _mm512_mul_ps(d, f));
    }
}

#[inline(always)]
unsafe fn load32(b: &[u8], off: usize) -> __m256i {
    _mm256_loadu_si256(b[off..off + 32].as_ptr().cast())
}

/// 128-bit lane `i` of a register.
#[inline(always)]
pub(super) unsafe fn lane128(v: __m512i, i: usize) -> __m128i {
    match i {
        0 => _mm512_castsi512_si128(v),
        1 => _mm512_extracti32x4_epi32::<1>(v),
        2 => _mm512_extracti32x4_epi32::<2>(v),
        _ => _mm512_extracti32x4_epi32::<3>(v),
    }
}

/// The sum of the four 128-bit lanes of a register, dword by dword.
#[inline(always)]
pub(super) unsafe fn sum_lanes(v: __m512i) -> __m128i {
    _mm_add_epi32(
        _mm_add_epi32(_mm512_castsi512_si128(v), _mm512_extracti32x4_epi32::<1>(v)),
        _mm_add_epi32(_mm512_extracti32x4_epi32::<2>(v), _mm512_extracti32x4_epi32::<3>(v)),
    )
}

/// The four dwords of each 128-bit lane of four registers summed, transposed: dword `j` of lane
/// `i` of the result is the sum of lane `i` of `v[j]`.
#[inline(always)]
pub(super) unsafe fn transpose_sum4(v: &[__m512i; 4]) -> __m512i {
    // per lane: a = [v0, v1, v0, v1] and c = [v2, v3, v2, v3] partial sums, then [v0, v1, v2, v3]
    let a = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0], v[1]), _mm512_unpackhi_epi32(v[0], v[1]));
    let c = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2], v[3]), _mm512_unpackhi_epi32(v[2], v[3]));
    _mm512_add_epi32(_mm512_unpacklo_epi64(a, c), _mm512_unpackhi_epi64(a, c))
}

/// The totals of four blocks' 16-dword integer sums, block by block: one transposed reduction
/// for the four instead of a horizontal reduction each (~6 instructions a block fewer).
#[inline(always)]
pub(super) unsafe fn sums4(s: &[__m512i; 4]) -> [i32; 4] {
    let mut out = [0i32; 4];
    _mm_storeu_si128(out.as_mut_ptr().cast(), sum_lanes(transpose_sum4(s)));
    out
}

/// `Σ_b c_b · Σ s_b` over the blocks of a row, where `$block` gives block `$b` (of `$bytes`
/// bytes, with its Q8_K activation block `$yb`) as its 16-dword exact integer sums `s_b` and f32
/// scale `c_b`. Four blocks' integers are reduced at once ([`sums4`]); the f32 accumulation
/// runs block by block as `acc += c_b · (f32) Σ s_b`, so the result is bit for bit that of a
/// loop reducing each block alone (and of the scalar kernels). The weights
/// [`PREFETCH_AHEAD`](crate::arch::PREFETCH_AHEAD) bytes on are prefetched quad by quad. A
/// macro rather than a function taking a closure: closures do not inherit the caller's target
/// features.
macro_rules! sum_blocks {
    ($src:expr, $bytes:expr, $y:expr, |$b:ident, $yb:ident| $block:expr) => {{
        let (src, bytes, y): (&[u8], usize, &[u8]) = ($src, $bytes, $y);
        let yq = $crate::quants::q8k::BLOCK_BYTES;
        let quads = src.len() / (4 * bytes);
        let mut acc = 0f32;
        for (q, (b4, y4)) in src.chunks_exact(4 * bytes).zip(y.chunks_exact(4 * yq)).enumerate() {
            // the next rows' weights (the range may run past this row: see `prefetch_ahead`)
            $crate::arch::prefetch_ahead(src, 4 * bytes * q, 4 * bytes);
            let mut s = [_mm512_setzero_si512(); 4];
            let mut c = [0f32; 4];
            for k in 0..4 {
                let ($b, $yb) = (&b4[k * bytes..(k + 1) * bytes], &y4[k * yq..(k + 1) * yq]);
                (s[k], c[k]) = $block;
            }
            let t = $crate::arch::x86_64::avx512::sums4(&s);
            for k in 0..4 {
                acc += c[k] * t[k] as f32;
            }
        }
        for ($b, $yb) in src[4 * bytes * quads..].chunks_exact(bytes).zip(y[4 * yq * quads..].chunks_exact(yq)) {
            let (s, c) = $block;
            acc += c * _mm512_reduce_add_epi32(s) as f32;
        }
        acc
    }};
}
pub(crate) use sum_blocks;

#[inline(always)]
pub(super) unsafe fn load64(b: &[u8], off: usize) -> __m512i {
    _mm512_loadu_si512(b[off..off + 64].as_ptr().cast())
}

/// Scale bytes and nibble-packed bytes of two IQ4_KSS sub-blocks (16 words).
#[inline(always)]
unsafe fn kss_decode16(words: __m256i) -> (u8, u8, __m256i) {
    let bits = _mm256_movepi16_mask(_mm256_slli_epi16::<15>(words));
    let a = _mm256_and_si256(words, _mm256_set1_epi16(-2));
    (bits as u8, (bits >> 8) as u8, _mm256_xor_si256(a, _mm256_srli_epi16::<1>(a)))
}

/// Scale bytes (4, little-endian) and nibble-packed bytes of four IQ4_KSS sub-blocks (32 words).
#[inline(always)]
unsafe fn kss_decode32(words: __m512i) -> (u32, __m512i) {
    let bits = _mm512_movepi16_mask(_mm512_slli_epi16::<15>(words));
    let a = _mm512_and_si512(words, _mm512_set1_epi16(-2));
    (bits, _mm512_xor_si512(a, _mm512_srli_epi16::<1>(a)))
}

#[inline(always)]
fn l_of(sbyte: u8) -> i32 {
    (sbyte & 0xFE) as i32 - 127
}

/// Exact block sum of a 4-bit iq4k super-block from its 8 scale bytes (little-endian in
/// `sbytes`) and its 128 nibble-packed bytes as two registers (128-bit lane `i` of `qa` = the 16
/// bytes of sub-block `i`, of `qb` = sub-block `4 + i`).
///
/// Lane `i` of the low-nibble vector pairs with activations `32i..32i+16`, of the high-nibble
/// vector with `32i+16..32i+32`: the activations come in that order (`k::act_perm`, the split
/// nibble order), so they are plain loads. The +128 offset of the table is removed with the
/// Q8_K block sums (`Σ_s L_s·128·Σy_s`).
#[inline(always)]
unsafe fn iq4_block_sum_fast(sbytes: u64, qa: __m512i, qb: __m512i, yb: &[u8]) -> __m512i {
    let m4 = _mm512_set1_epi8(0x0F);
    let plain = _mm512_broadcast_i32x4(_mm_loadu_si128(IQ4K_TABLES[2].as_ptr().cast()));
    let shifted = _mm512_broadcast_i32x4(_mm_loadu_si128(IQ4K_TABLES[3].as_ptr().cast()));
    let sc = _mm512_cvtepu8_epi32(_mm_cvtsi64_si128(sbytes as i64));
    let mut s = _mm512_setzero_si512();
    for (half, q) in [(0, qa), (1, qb)] {
        // per-lane scale byte of sub-block 4·half + lane/4
        let base = 4 * half;
        let sel = _mm512_set_epi32(base + 3, base + 3, base + 3, base + 3, base + 2, base + 2, base + 2, base + 2, base + 1, base + 1, base + 1, base + 1, base, base, base, base);
        let sl = _mm512_permutexvar_epi32(sel, sc);
        let table = _mm512_mask_blend_epi32(_mm512_test_epi32_mask(sl, _mm512_set1_epi32(1)), plain, shifted);
        let l = _mm512_sub_epi32(_mm512_and_si512(sl, _mm512_set1_epi32(0xFE)), _mm512_set1_epi32(127));
        let tlo = _mm512_shuffle_epi8(table, _mm512_and_si512(q, m4));
        let thi = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16::<4>(q), m4));
        let ylo = load64(yb, q8k::QS + 128 * half as usize);
        let yhi = load64(yb, q8k::QS + 128 * half as usize + 64);
        let p = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), tlo, ylo), thi, yhi);
        s = _mm512_add_epi32(s, _mm512_mullo_epi32(p, l));
    }
    // 128 · Σ_s L_s · Σy_s from the 16 block sums (two per 32-weight sub-block)
    let sc16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(_mm_cvtsi64_si128(sbytes as i64), _mm_cvtsi64_si128(sbytes as i64)));
    let l16 = _mm256_sub_epi16(_mm256_and_si256(sc16, _mm256_set1_epi16(0xFE)), _mm256_set1_epi16(127));
    let bs = _mm256_loadu_si256(yb[q8k::BSUMS..q8k::BSUMS + 32].as_ptr().cast());
    let corr = _mm256_slli_epi32::<7>(_mm256_madd_epi16(l16, bs));
    _mm512_sub_epi32(s, _mm512_zextsi256_si512(corr))
}

// ---------------------------------------------------------------------------------------------
// IQ4_KS

#[inline(always)]
unsafe fn iq4_ks_pairs(b: &[u8]) -> [(u8, u8, __m256i); 4] {
    // (no closures here: they would not inherit the caller's target features)
    let pair = |j: usize| (b[2 * j], b[2 * j + 1], b[8 + 32 * j..8 + 32 * j + 32].as_ptr());
    let p = [pair(0), pair(1), pair(2), pair(3)];
    [
        (p[0].0, p[0].1, _mm256_loadu_si256(p[0].2.cast())),
        (p[1].0, p[1].1, _mm256_loadu_si256(p[1].2.cast())),
        (p[2].0, p[2].1, _mm256_loadu_si256(p[2].2.cast())),
        (p[3].0, p[3].1, _mm256_loadu_si256(p[3].2.cast())),
    ]
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn iq4_ks_dot_impl(src: &[u8], y: &[u8]) -> f32 {
    let d = read_f32(src, 0);
    sum_blocks!(&src[ROW_META..], IQ4KS_BLOCK, y, |b, yb| {
        let sbytes = u64::from_le_bytes(b[..8].try_into().unwrap());
        let q = &b[8..8 + 128];
        let (qa, qb) = (_mm512_loadu_si512(q.as_ptr().cast()), _mm512_loadu_si512(q[64..].as_ptr().cast()));
        (iq4_block_sum_fast(sbytes, qa, qb, yb), d * read_f32(yb, 0))
    })
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn iq4_ks_dequantize_impl(src: &[u8], out: &mut [f32]) {
    let d = read_f32(src, 0);
    for (b, ob) in src[ROW_META..].chunks_exact(IQ4KS_BLOCK).zip(out.chunks_exact_mut(QK_K)) {
        for (j, (s0, s1, packed)) in iq4_ks_pairs(b).into_iter().enumerate() {
            let t = _mm512_shuffle_epi8(iq4k_table2(s0, s1), iq4_indices2(packed));
            store_scaled64(t, d * l_of(s0) as f32, d * l_of(s1) as f32, &mut ob[64 * j..]);
        }
    }
}

/// IQ4_KS · Q8_K (needs VNNI).
pub fn iq4_ks_dot(src: &[u8], y: &[u8]) -> f32 {
    // SAFETY: handed out only when AVX-512 F/BW/VL and VNNI are present.
    unsafe { iq4_ks_dot_impl(src, y) }
}

/// IQ4_KS row decode.
pub fn iq4_ks_dequantize(src: &[u8], out: &mut [f32]) {
    // SAFETY: handed out only when AVX-512 F/BW/VL are present.
    unsafe { iq4_ks_dequantize_impl(src, out) }
}

// ---------------------------------------------------------------------------------------------
// IQ4_KSS

#[inline(always)]
unsafe fn iq4_kss_pairs(b: &[u8]) -> [(u8, u8, __m256i); 4] {
    [kss_decode16(load32(b, 0)), kss_decode16(load32(b, 32)), kss_decode16(load32(b, 64)), kss_decode16(load32(b, 96))]
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn iq4_kss_dot_impl(src: &[u8], y: &[u8]) -> f32 {
    let d = read_f32(src, 0);
    sum_blocks!(&src[ROW_META..], IQ4KSS_BLOCK, y, |b, yb| {
        let (sa, qa) = kss_decode32(_mm512_loadu_si512(b[..64].as_ptr().cast()));
        let (sb, qb) = kss_decode32(_mm512_loadu_si512(b[64..128].as_ptr().cast()));
        (iq4_block_sum_fast(sa as u64 | (sb as u64) << 32, qa, qb, yb), d * read_f32(yb, 0))
    })
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn iq4_kss_dequantize_impl(src: &[u8], out: &mut [f32]) {
    let d = read_f32(src, 0);
    for (b, ob) in src[ROW_META..].chunks_exact(IQ4KSS_BLOCK).zip(out.chunks_exact_mut(QK_K)) {
        for (j, (s0, s1, packed)) in iq4_kss_pairs(b).into_iter().enumerate() {
            let t = _mm512_shuffle_epi8(iq4k_table2(s0, s1), iq4_indices2(packed));
            store_scaled64(t, d * l_of(s0) as f32, d * l_of(s1) as f32, &mut ob[64 * j..]);
        }
    }
}

/// IQ4_KSS · Q8_K (needs VNNI).
pub fn iq4_kss_dot(src: &[u8], y: &[u8]) -> f32 {
    // SAFETY: handed out only when AVX-512 F/BW/VL and VNNI are present.
    unsafe { iq4_kss_dot_impl(src, y) }
}

/// IQ4_KSS row decode.
pub fn iq4_kss_dequantize(src: &[u8], out: &mut [f32]) {
    // SAFETY: handed out only when AVX-512 F/BW/VL are present.
    unsafe { iq4_kss_dequantize_impl(src, out) }
}

// ---------------------------------------------------------------------------------------------
// The matrix multiply's tile decoders of IQ4_KS and IQ4_KSS

/// Scale dword `s` (16-weight sub-block) from the 8 scale bytes: `L` of byte `s / 2`.
#[inline(always)]
unsafe fn iq4_levels16(sbytes: u64) -> __m512i {
    let b = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(_mm_cvtsi64_si128(sbytes as i64), _mm_cvtsi64_si128(sbytes as i64)));
    _mm512_sub_epi32(_mm512_and_si512(b, _mm512_set1_epi32(0xFE)), _mm512_set1_epi32(127))
}

/// Super-block `b` of an IQ4_KS or IQ4_KSS row from its 4 sub-block pairs (scale bytes, packed
/// indices).
#[inline(always)]
unsafe fn iq4_row_block(row: &[u8], pairs: [(u8, u8, __m256i); 4]) -> tile::RowBlock {
    let mut v = [_mm512_setzero_si512(); 4];
    let mut sbytes = 0u64;
    for (j, (s0, s1, packed)) in pairs.into_iter().enumerate() {
        v[j] = _mm512_shuffle_epi8(iq4k_table2(s0, s1), iq4_indices2(packed));
        sbytes |= (s0 as u64) << (16 * j) | (s1 as u64) << (16 * j + 8);
    }
    tile::RowBlock { v, l: iq4_levels16(sbytes), d: read_f32(row, 0) }
}

/// IQ4_KS matrix-multiply tile decode (needs VNNI).
pub fn iq4_ks_fill_tile(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn imp(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
        let rs = ROW_META + IQ4KS_BLOCK * (cols / QK_K);
        tile::fill_rows(w, src, rs, nrows, |row, b| iq4_row_block(row, iq4_ks_pairs(&row[ROW_META + IQ4KS_BLOCK * b..])))
    }
    // SAFETY: handed out only when AVX-512 F/BW/VL and VNNI are present.
    unsafe { imp(w, src, cols, nrows) }
}

/// IQ4_KSS matrix-multiply tile decode (needs VNNI).
pub fn iq4_kss_fill_tile(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn imp(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
        let rs = ROW_META + IQ4KSS_BLOCK * (cols / QK_K);
        tile::fill_rows(w, src, rs, nrows, |row, b| iq4_row_block(row, iq4_kss_pairs(&row[ROW_META + IQ4KSS_BLOCK * b..])))
    }
    // SAFETY: handed out only when AVX-512 F/BW/VL and VNNI are present.
    unsafe { imp(w, src, cols, nrows) }
}

// ---------------------------------------------------------------------------------------------
// Q8_K as a weight type

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn q8_k_dot_impl(src: &[u8], y: &[u8]) -> f32 {
    sum_blocks!(src, q8k::BLOCK_BYTES, y, |b, yb| {
        // Both operands span all of i8: widen to i16, then pair sums.
        let mut s = _mm512_setzero_si512();
        for k in 0..8 {
            let w = _mm512_cvtepi8_epi16(load32(b, q8k::QS + 32 * k));
            let a = _mm512_cvtepi8_epi16(load32(yb, q8k::QS + 32 * k));
            s = _mm512_add_epi32(s, _mm512_madd_epi16(w, a));
        }
        (s, read_f32(b, 0) * read_f32(yb, 0))
    })
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn q8_k_dequantize_impl(src: &[u8], out: &mut [f32]) {
    for (b, ob) in src.chunks_exact(q8k::BLOCK_BYTES).zip(out.chunks_exact_mut(QK_K)) {
        let d = read_f32(b, 0);
        for k in 0..4 {
            store_scaled64(load64(b, q8k::QS + 64 * k), d, d, &mut ob[64 * k..]);
        }
    }
}

/// Q8_K · Q8_K.
pub fn q8_k_dot(src: &[u8], y: &[u8]) -> f32 {
    // SAFETY: handed out only when AVX-512 F/BW/VL are present.
    unsafe { q8_k_dot_impl(src, y) }
}

/// Q8_K row decode.
pub fn q8_k_dequantize(src: &[u8], out: &mut [f32]) {
    // SAFETY: as above.
    unsafe { q8_k_dequantize_impl(src, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn q8_k_quantize_impl(x: &[f32], out: &mut [u8]) {
    // bsums: the quants + 128 summed 8 at a time by `vpsadbw`, the two halves of each group of
    // 16 added, the groups put in order; 16 · 128 comes off again.
    let pairs = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    let bias = _mm_set1_epi16(16 * 128);
    let order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    for (xb, ob) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(q8k::BLOCK_BYTES)) {
        let xb = &xb[..QK_K];
        let mut v = [_mm512_setzero_ps(); 16];
        let mut m = _mm512_setzero_ps();
        for (k, vk) in v.iter_mut().enumerate() {
            *vk = _mm512_loadu_ps(xb.as_ptr().add(16 * k));
            m = _mm512_max_ps(m, _mm512_abs_ps(*vk));
        }
        let amax = _mm512_reduce_max_ps(m);
        let d = amax / 127.0;
        let id = _mm512_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let mut sums = [_mm512_setzero_si512(); 4];
        for (j, sj) in sums.iter_mut().enumerate() {
            // round half to even (the default MXCSR mode), then saturate to [-128, 127] as the
            // scalar code clamps: two saturating packs leave dword l of lane i holding quants
            // 4i..4i+3 of q[l]; one dword permute puts them in order
            let q: [__m512i; 4] = std::array::from_fn(|i| _mm512_cvtps_epi32(_mm512_mul_ps(v[4 * j + i], id)));
            let p = _mm512_packs_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3]));
            let z = _mm512_permutexvar_epi32(order, p);
            _mm512_storeu_si512(ob[q8k::QS + 64 * j..q8k::QS + 64 * j + 64].as_mut_ptr().cast(), z);
            let s = _mm512_sad_epu8(_mm512_xor_si512(z, _mm512_set1_epi8(-128)), _mm512_setzero_si512());
            *sj = _mm512_add_epi64(s, _mm512_shuffle_epi32::<0b01_00_11_10>(s));
        }
        let g0 = _mm512_permutex2var_epi64(sums[0], pairs, sums[1]);
        let g1 = _mm512_permutex2var_epi64(sums[2], pairs, sums[3]);
        let b0 = _mm_sub_epi16(_mm512_cvtepi64_epi16(g0), bias);
        let b1 = _mm_sub_epi16(_mm512_cvtepi64_epi16(g1), bias);
        _mm_storeu_si128(ob[q8k::BSUMS..q8k::BSUMS + 16].as_mut_ptr().cast(), b0);
        _mm_storeu_si128(ob[q8k::BSUMS + 16..q8k::BSUMS + 32].as_mut_ptr().cast(), b1);
        let total = _mm512_reduce_add_epi64(_mm512_add_epi64(g0, g1)) as i32 - 16 * 16 * 128;
        ob[0..4].copy_from_slice(&d.to_le_bytes());
        ob[4..8].copy_from_slice(&(d * total as f32).to_le_bytes());
    }
}

/// Q8_K quantization of a row (activations, or Q8_K weights).
pub fn q8_k_quantize(x: &[f32], out: &mut [u8]) {
    // SAFETY: handed out only when AVX-512 F/BW/VL are present.
    unsafe { q8_k_quantize_impl(x, out) }
}

// ---------------------------------------------------------------------------------------------
// Matrix multiply microkernel (VNNI)

/// Activation vectors per register block.
const GEMM_NC: usize = 8;

/// One tile for the `NC` vectors starting at `j0`: 16 rows in the lanes, one i32 block sum and
/// one f32 accumulator register per vector. `SB` sub-blocks (1, or 2 where the tile is
/// [`paired`](PackedRows::paired)) share one scale multiply: the loop is bound by the two vector
/// ports, where `vpmulld` costs two µops and the add one beside the four `vpdpbusd` of a
/// sub-block, so pairing makes it 12 µops for eight `vpdpbusd` instead of 14 (two chains of
/// four and an add: one chain of eight measured no faster and less steady; integer sums, exact
/// either way).
#[inline(always)]
unsafe fn gemm_tile_cols<const NC: usize, const SB: usize>(w: &PackedRows, y: &PackedCols, j0: usize, nrows: usize, out: &mut [f32], ldo: usize) {
    let blocks = w.blocks;
    assert!(j0 + NC <= y.n && y.yu.len() >= y.n * y.cols && y.d8.len() >= y.n * blocks && y.cols == blocks * QK_K);
    let mut acc = [_mm512_setzero_ps(); NC];
    for b in 0..blocks {
        let wb = w.w[b].as_ptr();
        // the sums start at -corr (integers wrap: the same totals as subtracting it at the end)
        let mut s = [_mm512_sub_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(w.corr[b].as_ptr().cast())); NC];
        for sb in (0..16).step_by(SB) {
            let l = _mm512_loadu_si512(w.scales[b].as_ptr().add(sb * TILE_ROWS).cast());
            let wv: [[__m512i; 4]; SB] = std::array::from_fn(|h| std::array::from_fn(|g| _mm512_loadu_si512(wb.add((4 * (sb + h) + g) * 64).cast())));
            for j in 0..NC {
                let yp = y.yu.as_ptr().add((j0 + j) * y.cols + b * QK_K + 16 * sb).cast::<i32>();
                let ph: [__m512i; SB] = std::array::from_fn(|h| {
                    let mut p = _mm512_setzero_si512();
                    for (g, &wg) in wv[h].iter().enumerate() {
                        p = _mm512_dpbusd_epi32(p, _mm512_set1_epi32(yp.add(4 * h + g).read_unaligned()), wg);
                    }
                    p
                });
                let p = if SB == 2 { _mm512_add_epi32(ph[0], ph[SB - 1]) } else { ph[0] };
                s[j] = _mm512_add_epi32(s[j], _mm512_mullo_epi32(p, l));
            }
        }
        let dv = _mm512_loadu_ps(w.d[b].as_ptr());
        for j in 0..NC {
            let sj = _mm512_cvtepi32_ps(s[j]);
            let dd = _mm512_mul_ps(dv, _mm512_set1_ps(y.d8[(j0 + j) * blocks + b]));
            acc[j] = _mm512_add_ps(acc[j], _mm512_mul_ps(dd, sj));
        }
    }
    let mut col = [0f32; TILE_ROWS];
    for j in 0..NC {
        _mm512_storeu_ps(col.as_mut_ptr(), acc[j]);
        for r in 0..nrows {
            out[r * ldo + j0 + j] = col[r];
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn gemm_tile_impl(w: &PackedRows, y: &PackedCols, vecs: Range<usize>, nrows: usize, out: &mut [f32], ldo: usize) {
    let mut j0 = vecs.start;
    while j0 < vecs.end {
        let nc = (vecs.end - j0).min(GEMM_NC);
        macro_rules! cols {
            ($($n:literal)*) => {
                match (nc, w.paired) {
                    $(($n, true) => gemm_tile_cols::<$n, 2>(w, y, j0, nrows, out, ldo),
                    ($n, false) => gemm_tile_cols::<$n, 1>(w, y, j0, nrows, out, ldo),)*
                    _ => unreachable!(),
                }
            };
        }
        cols!(1 2 3 4 5 6 7 8);
        j0 += nc;
    }
}

/// Matrix-multiply tile (see [`crate::gemm`]); needs VNNI.
pub fn gemm_tile(w: &PackedRows, y: &PackedCols, vecs: Range<usize>, nrows: usize, out: &mut [f32], ldo: usize) {
    assert!(nrows <= TILE_ROWS && vecs.end <= y.n && out.len() >= (nrows.max(1) - 1) * ldo + vecs.end);
    // SAFETY: handed out only when AVX-512 F/BW/VL and VNNI are present; memory accesses are
    // within the asserted bounds.
    unsafe { gemm_tile_impl(w, y, vecs, nrows, out, ldo) }
}
