//! AVX2 kernels of the IQ2_K … IQ6_K family (FORMATS.md §7), one generic decoder driven by the
//! type's [`Format`](crate::quants::k::Format): per 32-weight sub-block, the 32 grid indices are
//! gathered into one register from the type's index layout, turned into grid values with
//! `pshufb` (16 entries per look-up; 32- and 64-entry grids blend 2 or 4 look-ups by the high
//! index bits), the two 16-weight halves of the register taking their own table half (shift).
//!
//! The integer block sums are exact — `maddubs(|y|, sign(t, y))` pairs stay below 2^15 as
//! |t| ≤ 127 — and the float accumulation runs in the scalar code's order, so every result
//! equals the scalar kernel's bit for bit. Every `unsafe fn` requires AVX2, FMA and F16C at run
//! time.

use std::arch::x86_64::*;

use super::{hsum_i32, load16, load32};
use crate::quants::common::{read_f32, read_u16};
use crate::quants::k::{self, Format, High, Layout, Low, Scales};
use crate::quants::q8k;
use crate::registry::QK_K;
use crate::tables::{IQ2NL_VALUES, IQ3NL_VALUES, IQ4K_VALUES, IQ5NL_VALUES, IQ6NL_VALUES};

/// A grid in 16-entry chunks for `pshufb`, ready for both halves of a register:
/// `[s0 + 2·s1][chunk]` = chunk of table half `s0` (bytes 0..16) and of half `s1` (bytes 16..32).
pub(crate) type Chunks<const C: usize> = [[[i8; 32]; C]; 4];

/// Splits a grid (plain half, then shifted half) into 16-entry chunks for every pair of halves.
pub(crate) const fn chunks<const C: usize>(values: &[i8]) -> Chunks<C> {
    let half = values.len() / 2;
    let mut t = [[[0i8; 32]; C]; 4];
    let mut sel = 0;
    while sel < 4 {
        let (s0, s1) = (sel % 2, sel / 2);
        let mut i = 0;
        while i < half {
            t[sel][i / 16][i % 16] = values[s0 * half + i];
            t[sel][i / 16][16 + i % 16] = values[s1 * half + i];
            i += 1;
        }
        sel += 1;
    }
    t
}

pub(crate) static IQ2_CHUNKS: Chunks<1> = chunks(&IQ2NL_VALUES);
pub(crate) static IQ3_CHUNKS: Chunks<1> = chunks(&IQ3NL_VALUES);
pub(crate) static IQ4_CHUNKS: Chunks<1> = chunks(&IQ4K_VALUES);
pub(crate) static IQ5_CHUNKS: Chunks<2> = chunks(&IQ5NL_VALUES);
pub(crate) static IQ6_CHUNKS: Chunks<4> = chunks(&IQ6NL_VALUES);

/// Whether the CPU converts half floats (F16C, which every AVX2 CPU has in practice).
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("f16c")
}

/// The block scale `d` (f16 at offset 0) as f32.
#[inline(always)]
pub(crate) unsafe fn block_d(b: &[u8]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(read_u16(b, 0) as i32)))
}

/// Spreads the low 8 2-bit fields of `x` to the low 2 bits of 8 bytes.
#[inline(always)]
fn spread2(x: u64) -> u64 {
    let x = x & 0xFFFF;
    let x = (x | x << 24) & 0x0000_00FF_0000_00FF;
    let x = (x | x << 12) & 0x000F_000F_000F_000F;
    (x | x << 6) & 0x0303_0303_0303_0303
}

/// Spreads the low 8 bits of `x` to bit 0 of 8 bytes.
#[inline(always)]
fn spread1(x: u64) -> u64 {
    let x = x & 0xFF;
    let x = (x | x << 28) & 0x0000_000F_0000_000F;
    let x = (x | x << 14) & 0x0003_0003_0003_0003;
    (x | x << 7) & 0x0101_0101_0101_0101
}

/// The 16 nibbles of the 8 bytes at `lo`, in order (low nibble first).
#[inline(always)]
unsafe fn nibbles16(b: &[u8], lo: usize) -> __m128i {
    let v = _mm_loadl_epi64(b[lo..lo + 8].as_ptr().cast());
    let m = _mm_set1_epi8(15);
    _mm_unpacklo_epi8(_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16::<4>(v), m))
}

/// The 16 integer scales `L` of block `b` as signed bytes (FORMATS.md §7).
#[inline(always)]
pub(crate) unsafe fn levels16(f: &Format, b: &[u8]) -> __m128i {
    match f.layout.scales {
        Scales::Nibbles { lo } => _mm_sub_epi8(nibbles16(b, lo), _mm_set1_epi8(8)),
        Scales::NibblesSign { lo, sign } => {
            let n = nibbles16(b, lo);
            let m = _mm_add_epi8(_mm_add_epi8(n, n), _mm_set1_epi8(1));
            let s = read_u16(b, sign) as u64;
            let neg = _mm_sub_epi8(_mm_setzero_si128(), _mm_set_epi64x(spread1(s >> 8) as i64, spread1(s) as i64));
            _mm_sub_epi8(_mm_xor_si128(m, neg), neg)
        }
        Scales::NibblesHigh { lo, hi } => {
            let h = u32::from_le_bytes(b[hi..hi + 4].try_into().unwrap()) as u64;
            let high = _mm_slli_epi16::<4>(_mm_set_epi64x(spread2(h >> 16) as i64, spread2(h) as i64));
            _mm_sub_epi8(_mm_or_si128(nibbles16(b, lo), high), _mm_set1_epi8(32))
        }
        Scales::Bytes { off, .. } => load16(b, off),
    }
}

/// `pshufb` controls that put byte `2·ib32` of a 16-byte vector into every byte of the low
/// 128-bit lane and byte `2·ib32 + 1` into the high one.
static SCALE_PICK: [[u8; 32]; 8] = {
    let mut t = [[0u8; 32]; 8];
    let mut i = 0;
    while i < 8 {
        let mut j = 0;
        while j < 16 {
            t[i][j] = 2 * i as u8;
            t[i][16 + j] = 2 * i as u8 + 1;
            j += 1;
        }
        i += 1;
    }
    t
};

/// The i16 scale vector of sub-block `ib32`: `L[2·ib32]` in the low lane, `L[2·ib32 + 1]` in the
/// high one, from the 16 levels as bytes in both lanes of `l2`.
#[inline(always)]
unsafe fn scales_of(l2: __m256i, ib32: usize) -> __m256i {
    let picked = _mm256_shuffle_epi8(l2, _mm256_loadu_si256(SCALE_PICK[ib32].as_ptr().cast()));
    _mm256_srai_epi16::<8>(picked)
}

/// `(v >> n) & mask` on every byte (`n` < 8; the 16-bit shift only moves bits the mask drops).
#[inline(always)]
unsafe fn bits(v: __m256i, n: usize, mask: i8) -> __m256i {
    _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(n as i32)), _mm256_set1_epi8(mask))
}

/// The 32 grid indices (without the shift) of 32-weight sub-block `ib32` of block `b`, byte `t`
/// = weight `t`.
#[inline(always)]
pub(crate) unsafe fn indices32(l: &Layout, b: &[u8], ib32: usize) -> __m256i {
    let idx = match l.low {
        Low::Crumbs { qs } => bits(load32(b, qs + 32 * (ib32 / 4)), 2 * (ib32 % 4), 3),
        Low::NibblesSplit { qs } => {
            let p = load16(b, qs + 16 * ib32);
            _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16::<4>(p), p), _mm256_set1_epi8(15))
        }
        Low::NibblesPaired { qs } => bits(load32(b, qs + 32 * (ib32 / 2)), 4 * (ib32 % 2), 15),
    };
    match l.high {
        High::None => idx,
        High::Bit { qh, bit } => {
            let m = _mm256_set1_epi8((1u8 << ib32) as i8);
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(load32(b, qh), m), m);
            _mm256_or_si256(idx, _mm256_and_si256(set, _mm256_set1_epi8(1 << bit)))
        }
        High::Crumb { qh } => _mm256_or_si256(idx, _mm256_slli_epi16::<4>(bits(load32(b, qh + 32 * (ib32 / 4)), 2 * (ib32 % 4), 3))),
    }
}

/// Grid values of 32 indices; the low 16 take table half `s0`, the high 16 half `s1`
/// (`sel` = `s0 + 2·s1`).
#[inline(always)]
pub(crate) unsafe fn values32<const C: usize>(t: &Chunks<C>, idx: __m256i, sel: usize) -> __m256i {
    let tab = &t[sel];
    let chunk = |c: usize| -> *const __m256i { tab[c].as_ptr().cast() };
    let lo = _mm256_and_si256(idx, _mm256_set1_epi8(15));
    let v0 = _mm256_shuffle_epi8(_mm256_loadu_si256(chunk(0)), lo);
    if C == 1 {
        return v0;
    }
    let b4 = _mm256_cmpeq_epi8(_mm256_and_si256(idx, _mm256_set1_epi8(16)), _mm256_set1_epi8(16));
    let v01 = _mm256_blendv_epi8(v0, _mm256_shuffle_epi8(_mm256_loadu_si256(chunk(1)), lo), b4);
    if C == 2 {
        return v01;
    }
    let v2 = _mm256_shuffle_epi8(_mm256_loadu_si256(chunk(2)), lo);
    let v23 = _mm256_blendv_epi8(v2, _mm256_shuffle_epi8(_mm256_loadu_si256(chunk(3)), lo), b4);
    let b5 = _mm256_cmpeq_epi8(_mm256_and_si256(idx, _mm256_set1_epi8(32)), _mm256_set1_epi8(32));
    _mm256_blendv_epi8(v01, v23, b5)
}

/// Table selector `s0 + 2·s1` of the two halves of sub-block `ib32`.
#[inline(always)]
fn shifts(extra: u16, ib32: usize) -> usize {
    ((extra >> (2 * ib32)) & 3) as usize
}

#[inline(always)]
unsafe fn dot<const C: usize>(f: &Format, t: &Chunks<C>, src: &[u8], y: &[u8]) -> f32 {
    let mut acc = 0f32;
    for (i, (b, yb)) in src.chunks_exact(f.layout.bytes).zip(y.chunks_exact(q8k::BLOCK_BYTES)).enumerate() {
        crate::arch::prefetch_ahead(src, f.layout.bytes * i, f.layout.bytes);
        let extra = read_u16(b, 2);
        let l2 = _mm256_broadcastsi128_si256(levels16(f, b));
        let mut s = _mm256_setzero_si256();
        for ib32 in 0..8 {
            let v = values32(t, indices32(&f.layout, b, ib32), shifts(extra, ib32));
            let yv = load32(yb, q8k::QS + 32 * ib32);
            let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(yv), _mm256_sign_epi8(v, yv));
            s = _mm256_add_epi32(s, _mm256_madd_epi16(pairs, scales_of(l2, ib32)));
        }
        acc += (block_d(b) * read_f32(yb, 0)) * hsum_i32(s) as f32;
    }
    acc
}

/// Writes `dl · v` for the 16 signed bytes of `v` to `out[..16]`.
#[inline(always)]
unsafe fn store_scaled16(v: __m128i, dl: __m256, out: &mut [f32]) {
    let out = &mut out[..16];
    let lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
    let hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v)));
    _mm256_storeu_ps(out.as_mut_ptr(), _mm256_mul_ps(dl, lo));
    _mm256_storeu_ps(out.as_mut_ptr().add(8), _mm256_mul_ps(dl, hi));
}

#[inline(always)]
unsafe fn dequantize<const C: usize>(f: &Format, t: &Chunks<C>, src: &[u8], out: &mut [f32]) {
    for (b, ob) in src.chunks_exact(f.layout.bytes).zip(out.chunks_exact_mut(QK_K)) {
        let extra = read_u16(b, 2);
        // d·L of the 16 sub-blocks (one rounding each, as the scalar decoder)
        let l = levels16(f, b);
        let d = _mm256_set1_ps(block_d(b));
        let mut dl = [0f32; 16];
        _mm256_storeu_ps(dl.as_mut_ptr(), _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(l))));
        _mm256_storeu_ps(dl.as_mut_ptr().add(8), _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(l, l)))));
        for ib32 in 0..8 {
            let v = values32(t, indices32(&f.layout, b, ib32), shifts(extra, ib32));
            store_scaled16(_mm256_castsi256_si128(v), _mm256_set1_ps(dl[2 * ib32]), &mut ob[32 * ib32..]);
            store_scaled16(_mm256_extracti128_si256::<1>(v), _mm256_set1_ps(dl[2 * ib32 + 1]), &mut ob[32 * ib32 + 16..]);
        }
    }
}

/// Declares the safe dot and decode entry points of one type.
macro_rules! entry_points {
    ($fmt:path, $chunks:ident, $dot:ident, $dq:ident, $name:literal) => {
        #[doc = concat!($name, " · Q8_K.")]
        pub fn $dot(src: &[u8], y: &[u8]) -> f32 {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn imp(src: &[u8], y: &[u8]) -> f32 {
                dot(&$fmt, &$chunks, src, y)
            }
            // SAFETY: handed out only when AVX2, FMA and F16C are present (`super::super::kernels`).
            unsafe { imp(src, y) }
        }

        #[doc = concat!($name, " row decode.")]
        pub fn $dq(src: &[u8], out: &mut [f32]) {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn imp(src: &[u8], out: &mut [f32]) {
                dequantize(&$fmt, &$chunks, src, out)
            }
            // SAFETY: as above.
            unsafe { imp(src, out) }
        }
    };
}

entry_points!(k::IQ2K, IQ2_CHUNKS, iq2_k_dot, iq2_k_dequantize, "IQ2_K");
entry_points!(k::IQ3K, IQ3_CHUNKS, iq3_k_dot, iq3_k_dequantize, "IQ3_K");
entry_points!(k::IQ4K, IQ4_CHUNKS, iq4_k_dot, iq4_k_dequantize, "IQ4_K");
entry_points!(k::IQ5K, IQ5_CHUNKS, iq5_k_dot, iq5_k_dequantize, "IQ5_K");
entry_points!(k::IQ6K, IQ6_CHUNKS, iq6_k_dot, iq6_k_dequantize, "IQ6_K");
