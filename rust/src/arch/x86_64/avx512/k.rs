//! AVX-512 kernels of the IQ2_K … IQ6_K family: two 32-weight sub-blocks (four 16-weight
//! halves, each with its own table half in its 128-bit lane) per register. The indices come
//! from the AVX2 module's layout-driven gather; grid values from `vpshufb` on 64-byte tables,
//! blended by mask registers for the 32- and 64-entry grids.
//!
//! Dot products use VNNI (`vpdpbusd`, unsigned × signed): the table values are looked up with
//! an offset of 128 (`t + 128 ∈ [1, 255]`), the per-half sums multiplied by `L`, and
//! `128 · Σ_b L_b · Σy_b` removed with the Q8_K block sums (which the kernels trust to match the
//! quants, as every Q8_K row made by this crate does). The block sums are exact and the float
//! accumulation runs in the scalar code's order, so every result equals the scalar kernel's bit
//! for bit. Every `unsafe fn` requires its target features at run time.

use std::arch::x86_64::*;

use super::super::avx2::k::{block_d, indices32, levels16};
use super::tile::{fill_rows, RowBlock};
use crate::gemm::PackedRows;
use crate::quants::common::{read_f32, read_u16};
use crate::quants::k::{self, Format};
use crate::quants::q8k;
use crate::registry::QK_K;
use crate::tables::{IQ2NL_VALUES, IQ3NL_VALUES, IQ4K_VALUES, IQ5NL_VALUES, IQ6NL_VALUES};

/// A grid in 16-entry chunks for `vpshufb` on all four 128-bit lanes, offset by `bias`:
/// `[sel][chunk]`, lane `i` holding the chunk of table half `(sel >> i) & 1`.
type Chunks<const C: usize> = [[[u8; 64]; C]; 16];

const fn chunks<const C: usize>(values: &[i8], bias: i32) -> Chunks<C> {
    let half = values.len() / 2;
    let mut t = [[[0u8; 64]; C]; 16];
    let mut sel = 0;
    while sel < 16 {
        let mut lane = 0;
        while lane < 4 {
            let s = (sel >> lane) & 1;
            let mut i = 0;
            while i < half {
                t[sel][i / 16][16 * lane + i % 16] = (values[s * half + i] as i32 + bias) as u8;
                i += 1;
            }
            lane += 1;
        }
        sel += 1;
    }
    t
}

/// Tables of a type: plain values (decode) and values + 128 (dot products).
struct Tables<const C: usize> {
    plain: Chunks<C>,
    biased: Chunks<C>,
}

static IQ2_T: Tables<1> = Tables { plain: chunks(&IQ2NL_VALUES, 0), biased: chunks(&IQ2NL_VALUES, 128) };
static IQ3_T: Tables<1> = Tables { plain: chunks(&IQ3NL_VALUES, 0), biased: chunks(&IQ3NL_VALUES, 128) };
static IQ4_T: Tables<1> = Tables { plain: chunks(&IQ4K_VALUES, 0), biased: chunks(&IQ4K_VALUES, 128) };
static IQ5_T: Tables<2> = Tables { plain: chunks(&IQ5NL_VALUES, 0), biased: chunks(&IQ5NL_VALUES, 128) };
static IQ6_T: Tables<4> = Tables { plain: chunks(&IQ6NL_VALUES, 0), biased: chunks(&IQ6NL_VALUES, 128) };

/// The 64 grid indices of sub-blocks `2j` and `2j + 1`.
#[inline(always)]
unsafe fn indices64(f: &Format, b: &[u8], j: usize) -> __m512i {
    let a = indices32(&f.layout, b, 2 * j);
    let c = indices32(&f.layout, b, 2 * j + 1);
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), c)
}

/// Table values of 64 indices; lane `i` (16-weight half `4j + i`) uses half `(sel >> i) & 1`.
#[inline(always)]
unsafe fn values64<const C: usize>(t: &Chunks<C>, idx: __m512i, sel: usize) -> __m512i {
    let tab = &t[sel];
    let lo = _mm512_and_si512(idx, _mm512_set1_epi8(15));
    let v0 = _mm512_shuffle_epi8(_mm512_loadu_si512(tab[0].as_ptr().cast()), lo);
    if C == 1 {
        return v0;
    }
    let b4 = _mm512_test_epi8_mask(idx, _mm512_set1_epi8(16));
    let v01 = _mm512_mask_blend_epi8(b4, v0, _mm512_shuffle_epi8(_mm512_loadu_si512(tab[1].as_ptr().cast()), lo));
    if C == 2 {
        return v01;
    }
    let v2 = _mm512_shuffle_epi8(_mm512_loadu_si512(tab[2].as_ptr().cast()), lo);
    let v23 = _mm512_mask_blend_epi8(b4, v2, _mm512_shuffle_epi8(_mm512_loadu_si512(tab[3].as_ptr().cast()), lo));
    _mm512_mask_blend_epi8(_mm512_test_epi8_mask(idx, _mm512_set1_epi8(32)), v01, v23)
}

/// `vpermd` controls that spread `L` of halves `4j..4j+4` (as 16 dwords) over 4 dwords each.
static L_PICK: [[u32; 16]; 4] = {
    let mut t = [[0u32; 16]; 4];
    let mut j = 0;
    while j < 4 {
        let mut k = 0;
        while k < 16 {
            t[j][k] = (4 * j + k / 4) as u32;
            k += 1;
        }
        j += 1;
    }
    t
};

/// Grid values + 128 of the plain half for 64 indices below `16 · C`.
#[inline(always)]
unsafe fn plain64<const C: usize>(tab: &[__m512i; C], idx: __m512i) -> __m512i {
    let v0 = _mm512_shuffle_epi8(tab[0], idx);
    if C == 1 {
        return v0;
    }
    let b4 = _mm512_test_epi8_mask(idx, _mm512_set1_epi8(16));
    let v01 = _mm512_mask_blend_epi8(b4, v0, _mm512_shuffle_epi8(tab[1], idx));
    if C == 2 {
        return v01;
    }
    let v23 = _mm512_mask_blend_epi8(b4, _mm512_shuffle_epi8(tab[2], idx), _mm512_shuffle_epi8(tab[3], idx));
    _mm512_mask_blend_epi8(_mm512_test_epi8_mask(idx, _mm512_set1_epi8(32)), v01, v23)
}

/// The dot product looks every weight up in the plain table half (+ 128) and accounts for the
/// shifted half through the Q8_K block sums: the shifted half is the plain one + `δ` (FORMATS.md
/// §3), so a half-block with its `extra` bit set adds `δ · L · Σy` — together with the bias,
/// `Σ_h L_h · (128 − δ·s_h) · Σy_h` comes off the VNNI sums.
#[inline(always)]
unsafe fn dot<const C: usize>(f: &Format, t: &Tables<C>, src: &[u8], y: &[u8]) -> f32 {
    let half = f.values.len() / 2;
    let delta = (f.values[half] as i16) - (f.values[0] as i16);
    let tab: [__m512i; C] = std::array::from_fn(|c| _mm512_loadu_si512(t.biased[0][c].as_ptr().cast()));
    let pick: [__m512i; 4] = std::array::from_fn(|j| _mm512_loadu_si512(L_PICK[j].as_ptr().cast()));
    let (off_plain, off_shifted) = (_mm256_set1_epi16(128), _mm256_set1_epi16(128 - delta));
    let mut acc = 0f32;
    for (b, yb) in src.chunks_exact(f.layout.bytes).zip(y.chunks_exact(q8k::BLOCK_BYTES)) {
        let extra = read_u16(b, 2);
        let l = levels16(f, b);
        let ld = _mm512_cvtepi8_epi32(l);
        let mut s = _mm512_setzero_si512();
        for j in 0..4 {
            let v = plain64(&tab, indices64(f, b, j));
            let yv = _mm512_loadu_si512(yb[q8k::QS + 64 * j..q8k::QS + 64 * j + 64].as_ptr().cast());
            let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, yv);
            s = _mm512_add_epi32(s, _mm512_mullo_epi32(p, _mm512_permutexvar_epi32(pick[j], ld)));
        }
        // Σ_h L_h · (128 − δ·s_h) · Σy_h from the 16 block sums
        let off = _mm256_mask_blend_epi16(extra, off_plain, off_shifted);
        let bs = _mm256_loadu_si256(yb[q8k::BSUMS..q8k::BSUMS + 32].as_ptr().cast());
        let corr = _mm256_madd_epi16(_mm256_mullo_epi16(_mm256_cvtepi8_epi16(l), off), bs);
        let s = _mm512_sub_epi32(s, _mm512_zextsi256_si512(corr));
        acc += (block_d(b) * read_f32(yb, 0)) * _mm512_reduce_add_epi32(s) as f32;
    }
    acc
}

#[inline(always)]
unsafe fn dequantize<const C: usize>(f: &Format, t: &Tables<C>, src: &[u8], out: &mut [f32]) {
    for (b, ob) in src.chunks_exact(f.layout.bytes).zip(out.chunks_exact_mut(QK_K)) {
        let extra = read_u16(b, 2) as usize;
        let l = levels16(f, b);
        let dl = _mm512_mul_ps(_mm512_set1_ps(block_d(b)), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(l)));
        let mut dls = [0f32; 16];
        _mm512_storeu_ps(dls.as_mut_ptr(), dl);
        for j in 0..4 {
            let v = values64(&t.plain, indices64(f, b, j), (extra >> (4 * j)) & 15);
            let lanes = [_mm512_castsi512_si128(v), _mm512_extracti32x4_epi32::<1>(v), _mm512_extracti32x4_epi32::<2>(v), _mm512_extracti32x4_epi32::<3>(v)];
            for (i, p) in lanes.into_iter().enumerate() {
                let vals = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(p));
                let o = &mut ob[64 * j + 16 * i..64 * j + 16 * i + 16];
                _mm512_storeu_ps(o.as_mut_ptr(), _mm512_mul_ps(_mm512_set1_ps(dls[4 * j + i]), vals));
            }
        }
    }
}

/// Super-block `b` of one row in registers, for the tile decoder.
#[inline(always)]
unsafe fn row_block<const C: usize>(f: &Format, t: &Tables<C>, row: &[u8], b: usize) -> RowBlock {
    let blk = &row[f.layout.bytes * b..f.layout.bytes * (b + 1)];
    let extra = read_u16(blk, 2) as usize;
    // (no closures here: they would not inherit the caller's target features)
    let mut v = [_mm512_setzero_si512(); 4];
    for (j, vj) in v.iter_mut().enumerate() {
        *vj = values64(&t.plain, indices64(f, blk, j), (extra >> (4 * j)) & 15);
    }
    RowBlock { v, l: _mm512_cvtepi8_epi32(levels16(f, blk)), d: block_d(blk) }
}

/// Declares the safe dot and decode entry points of one type.
macro_rules! entry_points {
    ($fmt:path, $tables:ident, $dot:ident, $dq:ident, $fill:ident, $name:literal) => {
        #[doc = concat!($name, " · Q8_K (needs VNNI).")]
        pub fn $dot(src: &[u8], y: &[u8]) -> f32 {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            unsafe fn imp(src: &[u8], y: &[u8]) -> f32 {
                dot(&$fmt, &$tables, src, y)
            }
            // SAFETY: handed out only when AVX-512 F/BW/VL, VNNI and F16C are present.
            unsafe { imp(src, y) }
        }

        #[doc = concat!($name, " matrix-multiply tile decode (needs VNNI).")]
        pub fn $fill(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            unsafe fn imp(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
                fill_rows(w, src, $fmt.layout.bytes * (cols / QK_K), nrows, |row, b| row_block(&$fmt, &$tables, row, b))
            }
            // SAFETY: handed out only when AVX-512 F/BW/VL, VNNI and F16C are present.
            unsafe { imp(w, src, cols, nrows) }
        }

        #[doc = concat!($name, " row decode.")]
        pub fn $dq(src: &[u8], out: &mut [f32]) {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
            unsafe fn imp(src: &[u8], out: &mut [f32]) {
                dequantize(&$fmt, &$tables, src, out)
            }
            // SAFETY: handed out only when AVX-512 F/BW/VL and F16C are present.
            unsafe { imp(src, out) }
        }
    };
}

entry_points!(k::IQ2K, IQ2_T, iq2_k_dot, iq2_k_dequantize, iq2_k_fill_tile, "IQ2_K");
entry_points!(k::IQ3K, IQ3_T, iq3_k_dot, iq3_k_dequantize, iq3_k_fill_tile, "IQ3_K");
entry_points!(k::IQ4K, IQ4_T, iq4_k_dot, iq4_k_dequantize, iq4_k_fill_tile, "IQ4_K");
entry_points!(k::IQ5K, IQ5_T, iq5_k_dot, iq5_k_dequantize, iq5_k_fill_tile, "IQ5_K");
entry_points!(k::IQ6K, IQ6_T, iq6_k_dot, iq6_k_dequantize, iq6_k_fill_tile, "IQ6_K");
