//! AVX2 and AVX-512 kernels of the row-scale types IQ5_KS, IQ3_KS, IQ2_KS and IQ2_KL (IQ4_KS and
//! IQ4_KSS are in `avx2`/`avx512`).
//!
//! Every one of them is, per 32-weight sub-block, an integer scale times values from a small
//! table. Each type below only says how to turn its bytes into those table values with byte
//! shuffles (`pshufb`; on AVX-512 `vpermb`: the 32-entry tables of IQ5_KS and of IQ2_KL's grid
//! pairs, and for IQ2_KS and IQ3_KS the K family's crumb tables, indexed by the raw index
//! bytes), and shares the loops:
//! * AVX2: `maddubs(|y|, sign(t, y))` (|t| ≤ 127, so the pair sums cannot saturate), times the
//!   sub-block scale with `madd`;
//! * AVX-512 (VNNI): `vpdpbusd` of the plain-half values offset by +128 (unsigned) with the
//!   activations; the offset, and the shift of a shifted sub-block (the shifted half of each
//!   table is the plain one plus a constant `c`), are settled with the Q8_K block sums:
//!   `S = Σ_s L_s·(Σ (t+128)·y - (128 - c·shift_s)·Σy_s)`.
//!
//! The block sums are exact and the float accumulation runs in the scalar code's order, so every
//! result equals the scalar kernel's bit for bit. Every `unsafe fn` here requires its target
//! features at run time; the safe wrappers are only handed out by [`super::kernels`] after the
//! CPU reported them.

use std::arch::x86_64::*;

use super::avx2::{hsum_i32, load16, load32, scaled_dot32, store_scaled32};
use super::avx512::k::{IQ2_CRUMBS, IQ3_CRUMBS};
use super::avx512::{load64, sum_blocks, transpose_sum4};
use super::avx512::tile::{fill_rows, RowBlock};
use crate::gemm::PackedRows;
use crate::quants::common::read_f32;
use crate::quants::{iq2_kl, iq2_ks, iq3_ks, iq5_ks, q8k};
use crate::registry::{QType, QK_K};
use crate::tables::{IQ2NL_VALUES, IQ3NL_VALUES, IQ5NL_VALUES};

/// A row-scale type as the SIMD loops see it.
trait RowScale {
    const ROW_META: usize;
    const BLOCK: usize;
    fn row_scale(src: &[u8]) -> f32;
    /// Integer scale of sub-block `ib` of block `b`.
    fn scale(b: &[u8], ib: usize) -> i32;
    /// The integer scales of the 8 sub-blocks as i32 lanes (needs AVX2).
    unsafe fn scales8(b: &[u8]) -> __m256i;
    /// The 32 table values (signed) of sub-block `2j` and of sub-block `2j + 1` (needs AVX2).
    unsafe fn values_pair(b: &[u8], j: usize) -> [__m256i; 2];
    /// The 64 plain-half table values + 128 (unsigned) of sub-blocks `2j` and `2j + 1`, with the
    /// shift left out (needs AVX-512 F/BW and VBMI).
    unsafe fn offset_values64(b: &[u8], j: usize) -> __m512i;
    /// What the dot product must take off per unit of `Σy` of each sub-block: `128 - c·shift`
    /// (the shifted half is the plain one plus `c`), as i32 lanes (needs AVX2).
    unsafe fn offsets8(_b: &[u8]) -> __m256i {
        _mm256_set1_epi32(128)
    }
    /// The activation order `offset_values64` works in (`Kernels::act_perm`): byte `k` of
    /// vector `j` pairs with quant `ACT[64j + k]`, so 128-bit lane `i` of vector `j` belongs to
    /// sub-block `ACT[64j + 16i] / 32`; `None`: Q8_K order (sub-blocks `2j`, `2j + 1`).
    const ACT: Option<&'static [u8; 256]> = None;
    /// How the dot reduces the four VNNI sums: a 4×4 transpose and one multiply by the scales
    /// (fewer multiplies), or a scale multiply per vector (fewer shuffles: better where the
    /// lookups are `vpermb`, which competes for the same ports). Both exact; chosen by measurement.
    const TRANSPOSE_SUMS: bool = true;
}

/// The activation order of a row-scale type's AVX-512 dot (`Kernels::act_perm`).
pub fn act_perm(t: QType) -> Option<&'static [u8; 256]> {
    match t {
        QType::IQ5KS => Iq5Ks::ACT,
        QType::IQ3KS => Iq3Ks::ACT,
        QType::IQ2KS => Iq2Ks::ACT,
        _ => Iq2Kl::ACT,
    }
}

/// A table of up to 16 signed values as 16 bytes.
const fn table16(v: &[i8]) -> [u8; 16] {
    let mut t = [0u8; 16];
    let mut i = 0;
    while i < v.len() {
        t[i] = v[i] as u8;
        i += 1;
    }
    t
}

/// A 16-byte table in both 128-bit lanes.
#[inline(always)]
unsafe fn bcast2(t: &[u8; 16]) -> __m256i {
    _mm256_broadcastsi128_si256(_mm_loadu_si128(t.as_ptr().cast()))
}

/// `lo` in the low 256 bits, `hi` in the high 256 bits.
#[inline(always)]
unsafe fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// The same 256 bits twice.
#[inline(always)]
unsafe fn twice(v: __m256i) -> __m512i {
    join(v, v)
}

/// `(v >> n) & mask` on 16 bytes, `n` the same for all bytes (a run-time count).
#[inline(always)]
unsafe fn bits128(v: __m128i, n: usize, mask: i8) -> __m128i {
    _mm_and_si128(_mm_srl_epi16(v, _mm_cvtsi32_si128(n as i32)), _mm_set1_epi8(mask))
}

/// `(v >> n) & mask` on bytes, `n` the same for all bytes (a run-time count).
#[inline(always)]
unsafe fn bits256(v: __m256i, n: usize, mask: i8) -> __m256i {
    _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(n as i32)), _mm256_set1_epi8(mask))
}

/// `(v >> n) & mask` on bytes, `n0` for the low 256 bits and `n1` for the high ones.
#[inline(always)]
unsafe fn bits512(v: __m512i, n0: usize, n1: usize, mask: i8) -> __m512i {
    let n = join(_mm256_set1_epi16(n0 as i16), _mm256_set1_epi16(n1 as i16));
    _mm512_and_si512(_mm512_srlv_epi16(v, n), _mm512_set1_epi8(mask))
}

#[inline(always)]
unsafe fn lanes(v: __m256i, n: __m256i, mask: i32) -> __m256i {
    _mm256_and_si256(_mm256_srlv_epi32(v, n), _mm256_set1_epi32(mask))
}

/// Eight 4-bit fields of the 4 bytes at `off` read as one little-endian word: lane `k` = bits
/// `shifts[k]..shifts[k] + 4` (one broadcast and a per-lane shift, not eight byte gathers).
#[inline(always)]
unsafe fn word_nibbles(b: &[u8], off: usize, shifts: __m256i) -> __m256i {
    lanes(_mm256_set1_epi32(u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as i32), shifts, 0x0F)
}

/// Lane `k` = nibble `k / 4` of byte `k % 4` (IQ3_KS, IQ2_KL: low nibbles of the 4 bytes, then the high ones).
#[inline(always)]
unsafe fn nibbles_low_then_high() -> __m256i {
    _mm256_setr_epi32(0, 8, 16, 24, 4, 12, 20, 28)
}

/// Eight bytes zero-extended to i32 lanes, byte `k` in lane `k`.
#[inline(always)]
unsafe fn bytes8(v: [u8; 8]) -> __m256i {
    _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(i64::from_le_bytes(v)))
}

// ---------------------------------------------------------------------------------------------
// The shared loops

#[inline(always)]
unsafe fn dot_avx2<T: RowScale>(src: &[u8], y: &[u8]) -> f32 {
    let d = T::row_scale(src);
    let mut acc = 0f32;
    for (i, (b, yb)) in src[T::ROW_META..].chunks_exact(T::BLOCK).zip(y.chunks_exact(q8k::BLOCK_BYTES)).enumerate() {
        crate::arch::prefetch_ahead(src, T::ROW_META + T::BLOCK * i, T::BLOCK);
        let mut s = _mm256_setzero_si256();
        for j in 0..4 {
            let [t0, t1] = T::values_pair(b, j);
            s = _mm256_add_epi32(s, scaled_dot32(t0, load32(yb, q8k::QS + 64 * j), T::scale(b, 2 * j)));
            s = _mm256_add_epi32(s, scaled_dot32(t1, load32(yb, q8k::QS + 64 * j + 32), T::scale(b, 2 * j + 1)));
        }
        acc += (d * read_f32(yb, 0)) * hsum_i32(s) as f32;
    }
    acc
}

#[inline(always)]
unsafe fn dequantize_avx2<T: RowScale>(src: &[u8], out: &mut [f32]) {
    let d = T::row_scale(src);
    for (b, ob) in src[T::ROW_META..].chunks_exact(T::BLOCK).zip(out.chunks_exact_mut(QK_K)) {
        for j in 0..4 {
            let [t0, t1] = T::values_pair(b, j);
            store_scaled32(t0, d * T::scale(b, 2 * j) as f32, &mut ob[64 * j..]);
            store_scaled32(t1, d * T::scale(b, 2 * j + 1) as f32, &mut ob[64 * j + 32..]);
        }
    }
}

#[inline(always)]
unsafe fn dot_avx512<T: RowScale>(src: &[u8], y: &[u8]) -> f32 {
    let d = T::row_scale(src);
    // after the transposed reduction below, dword 4i + j holds the half in lane i of vector j:
    // its sub-block's scale goes there
    let mut pick = [0i32; 16];
    for (k, pk) in pick.iter_mut().enumerate() {
        let (i, j) = (k / 4, k % 4);
        *pk = match T::ACT {
            Some(a) => a[64 * j + 16 * i] as i32 / 32,
            None => (4 * j + i) as i32 / 2,
        };
    }
    let pick = _mm512_loadu_si512(pick.as_ptr().cast());
    // without the transpose: per vector j, lane i's scale in its 4 dwords
    let mut spread = [_mm512_setzero_si512(); 4];
    for (j, sj) in spread.iter_mut().enumerate() {
        let mut idx = [0i32; 16];
        for (k, ik) in idx.iter_mut().enumerate() {
            *ik = match T::ACT {
                Some(a) => a[64 * j + 16 * (k / 4)] as i32 / 32,
                None => (4 * j + k / 4) as i32 / 2,
            };
        }
        *sj = _mm512_loadu_si512(idx.as_ptr().cast());
    }
    sum_blocks!(&src[T::ROW_META..], T::BLOCK, y, |b, yb| {
        let l8 = T::scales8(b);
        let lz = _mm512_castsi256_si512(l8);
        let mut p = [_mm512_setzero_si512(); 4];
        for (j, pj) in p.iter_mut().enumerate() {
            *pj = _mm512_dpbusd_epi32(_mm512_setzero_si512(), T::offset_values64(b, j), load64(yb, q8k::QS + 64 * j));
        }
        let s = if T::TRANSPOSE_SUMS {
            // the 4 dwords of each 16-weight half summed, transposed (lane i, dword j: lane i of p[j])
            _mm512_mullo_epi32(transpose_sum4(&p), _mm512_permutexvar_epi32(pick, lz))
        } else {
            let mut s = _mm512_setzero_si512();
            for j in 0..4 {
                s = _mm512_add_epi32(s, _mm512_mullo_epi32(p[j], _mm512_permutexvar_epi32(spread[j], lz)));
            }
            s
        };
        // Σ_s L_s · (128 - c·shift_s) · Σy_s from the block sums of the activations (two per
        // sub-block): the offset, and the shift the table values left out
        let ys = _mm256_madd_epi16(load32(yb, q8k::BSUMS), _mm256_set1_epi16(1));
        let corr = _mm256_mullo_epi32(_mm256_mullo_epi32(ys, l8), T::offsets8(b));
        (_mm512_sub_epi32(s, _mm512_zextsi256_si512(corr)), d * read_f32(yb, 0))
    })
}

// ---------------------------------------------------------------------------------------------
// IQ5_KS: AVX2 looks the 32-entry half up as two 16-byte quarters chosen by index bit 4;
// AVX-512 the whole 64-entry table (both halves) with `vpermb`

/// The iq5nl table in four 16-byte quarters: `[plain 0..16, plain 16..32, shifted 0..16,
/// shifted 16..32]`.
static IQ5_TABLES: [[u8; 16]; 4] = {
    let mut t = [[0u8; 16]; 4];
    let mut k = 0;
    while k < 4 {
        let mut v = [0i8; 16];
        let mut i = 0;
        while i < 16 {
            v[i] = IQ5NL_VALUES[16 * k + i];
            i += 1;
        }
        t[k] = table16(&v);
        k += 1;
    }
    t
};

/// The plain iq5nl half offset by +128.
static IQ5_OFFSET: [u8; 32] = {
    let mut t = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        t[i] = (IQ5NL_VALUES[i] as i32 + 128) as u8;
        i += 1;
    }
    t
};

struct Iq5Ks;

impl Iq5Ks {
    /// The 32 table values (signed) of sub-block `ib`.
    #[inline(always)]
    unsafe fn values32(b: &[u8], ib: usize) -> __m256i {
        let nib = bits256(load32(b, iq5_ks::QS + 32 * (ib / 2)), 4 * (ib % 2), 0x0F);
        let bit = _mm256_set1_epi8((1u8 << ib) as i8);
        let high = _mm256_cmpeq_epi8(_mm256_and_si256(load32(b, iq5_ks::QH), bit), bit);
        let t = &IQ5_TABLES[2 * (b[ib] & 1) as usize..];
        _mm256_blendv_epi8(_mm256_shuffle_epi8(bcast2(&t[0]), nib), _mm256_shuffle_epi8(bcast2(&t[1]), nib), high)
    }
}

impl RowScale for Iq5Ks {
    const ROW_META: usize = iq5_ks::ROW_META;
    const BLOCK: usize = iq5_ks::BLOCK;

    #[inline(always)]
    fn row_scale(src: &[u8]) -> f32 {
        iq5_ks::row_scale(src)
    }

    #[inline(always)]
    fn scale(b: &[u8], ib: usize) -> i32 {
        iq5_ks::scale_of(b, ib)
    }

    #[inline(always)]
    unsafe fn scales8(b: &[u8]) -> __m256i {
        _mm256_sub_epi32(_mm256_and_si256(bytes8(b[..8].try_into().unwrap()), _mm256_set1_epi32(0xFE)), _mm256_set1_epi32(127))
    }

    #[inline(always)]
    unsafe fn values_pair(b: &[u8], j: usize) -> [__m256i; 2] {
        [Self::values32(b, 2 * j), Self::values32(b, 2 * j + 1)]
    }

    /// Index `nibble | bit 4` into the 32-entry plain half, with `vpermb`; in the paired nibble
    /// order (sub-blocks `2·(j/2)·2 + j%2` and that + 2, nibble `j % 2` of one 64-byte load).
    #[inline(always)]
    unsafe fn offset_values64(b: &[u8], j: usize) -> __m512i {
        let nib = bits512(load64(b, iq5_ks::QS + 64 * (j / 2)), 4 * (j % 2), 4 * (j % 2), 0x0F);
        let (s0, s1) = (4 * (j / 2) + j % 2, 4 * (j / 2) + j % 2 + 2);
        let high = _mm512_slli_epi16::<4>(bits512(twice(load32(b, iq5_ks::QH)), s0, s1, 1));
        let table = _mm512_castsi256_si512(_mm256_loadu_si256(IQ5_OFFSET.as_ptr().cast()));
        _mm512_permutexvar_epi8(_mm512_or_si512(nib, high), table)
    }

    /// Shifted half = plain + 2; the shift is bit 0 of the scale byte.
    #[inline(always)]
    unsafe fn offsets8(b: &[u8]) -> __m256i {
        let sh = _mm256_and_si256(bytes8(b[..8].try_into().unwrap()), _mm256_set1_epi32(1));
        _mm256_sub_epi32(_mm256_set1_epi32(128), _mm256_slli_epi32::<1>(sh))
    }

    const ACT: Option<&'static [u8; 256]> = Some(&super::avx512::k::PAIRED_ACT);
    const TRANSPOSE_SUMS: bool = false;
}

// ---------------------------------------------------------------------------------------------
// IQ3_KS: the whole iq3nl table (both halves) is 16 bytes; index = 2 low bits | bit 2 | shift·8
// (AVX2); the AVX-512 dot looks the crumbs up by `vpermb` in IQ3_K's tables.

static IQ3_TABLE: [u8; 16] = table16(&IQ3NL_VALUES);

struct Iq3Ks;

impl Iq3Ks {
    /// The shift bit of sub-block `ib` (bit `8 + ib` of `extra`), times 8.
    #[inline(always)]
    fn shift8(b: &[u8], ib: usize) -> u8 {
        ((b[1] >> ib) & 1) << 3
    }

    /// The 32 table values (signed) of sub-block `ib`.
    #[inline(always)]
    unsafe fn values32(b: &[u8], ib: usize) -> __m256i {
        let lo = bits256(load32(b, iq3_ks::QS + 32 * (ib / 4)), 2 * (ib % 4), 3);
        let hi = _mm256_slli_epi16::<2>(bits256(load32(b, iq3_ks::QH), ib, 1));
        let idx = _mm256_or_si256(_mm256_or_si256(lo, hi), _mm256_set1_epi8(Self::shift8(b, ib) as i8));
        _mm256_shuffle_epi8(bcast2(&IQ3_TABLE), idx)
    }
}

impl RowScale for Iq3Ks {
    const ROW_META: usize = iq3_ks::ROW_META;
    const BLOCK: usize = iq3_ks::BLOCK;

    #[inline(always)]
    fn row_scale(src: &[u8]) -> f32 {
        iq3_ks::row_scale(src)
    }

    #[inline(always)]
    fn scale(b: &[u8], ib: usize) -> i32 {
        iq3_ks::scale_of(b, ib)
    }

    /// `L + 16` = nibble `ib / 4` of `scales[ib % 4]` | bit `ib` of `extra` · 16.
    #[inline(always)]
    unsafe fn scales8(b: &[u8]) -> __m256i {
        let lo = word_nibbles(b, 2, nibbles_low_then_high());
        let hi = lanes(_mm256_set1_epi32(b[0] as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), 1);
        _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32::<4>(hi)), _mm256_set1_epi32(16))
    }

    #[inline(always)]
    unsafe fn values_pair(b: &[u8], j: usize) -> [__m256i; 2] {
        [Self::values32(b, 2 * j), Self::values32(b, 2 * j + 1)]
    }

    #[inline(always)]
    /// In the crumb order: sub-blocks `j` and `4 + j`, 2-bit field `j` of one 64-byte load,
    /// looked up straight from the index bytes in IQ3_K's `vpermb` crumb tables, the high bit
    /// choosing the upper table by a masked `vpermb` (BENCHMARKS.md, 2026-12-05: 5% faster than
    /// shifts, masks and a `vpshufb`).
    unsafe fn offset_values64(b: &[u8], j: usize) -> __m512i {
        let q = load64(b, iq3_ks::QS);
        let q = if j < 3 { q } else { _mm512_srli_epi16::<2>(q) };
        let high = _mm512_test_epi8_mask(twice(load32(b, iq3_ks::QH)), join(_mm256_set1_epi8(1 << j), _mm256_set1_epi8((1u8 << (4 + j)) as i8)));
        let v = _mm512_permutexvar_epi8(q, _mm512_loadu_si512(IQ3_CRUMBS[0][j].as_ptr().cast()));
        _mm512_mask_permutexvar_epi8(v, high, q, _mm512_loadu_si512(IQ3_CRUMBS[1][j].as_ptr().cast()))
    }

    /// Shifted half = plain + 4; the shift is bit `8 + ib` of `extra`.
    #[inline(always)]
    unsafe fn offsets8(b: &[u8]) -> __m256i {
        let sh = lanes(_mm256_set1_epi32(b[1] as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), 1);
        _mm256_sub_epi32(_mm256_set1_epi32(128), _mm256_slli_epi32::<2>(sh))
    }

    const ACT: Option<&'static [u8; 256]> = Some(&super::avx512::k::CRUMBS_ACT);
}

// ---------------------------------------------------------------------------------------------
// IQ2_KS: the whole iq2nl table is 8 bytes; index = 2 bits | shift·4 (AVX2); the AVX-512 dot
// looks the plain half up by the IQ2_K dot's `vpermb` crumb tables

static IQ2_TABLE: [u8; 16] = table16(&IQ2NL_VALUES);

struct Iq2Ks;

impl Iq2Ks {
    /// The shift bit of sub-block `ib` (bit `ib` of `extra`), times 4.
    #[inline(always)]
    fn shift4(b: &[u8], ib: usize) -> u8 {
        ((b[0] >> ib) & 1) << 2
    }

    /// The 32 table values (signed) of sub-block `ib`.
    #[inline(always)]
    unsafe fn values32(b: &[u8], ib: usize) -> __m256i {
        let q = bits256(load32(b, iq2_ks::QS + 32 * (ib / 4)), 2 * (ib % 4), 3);
        let idx = _mm256_or_si256(q, _mm256_set1_epi8(Self::shift4(b, ib) as i8));
        _mm256_shuffle_epi8(bcast2(&IQ2_TABLE), idx)
    }
}

impl RowScale for Iq2Ks {
    const ROW_META: usize = iq2_ks::ROW_META;
    const BLOCK: usize = iq2_ks::BLOCK;

    #[inline(always)]
    fn row_scale(src: &[u8]) -> f32 {
        iq2_ks::row_scale(src)
    }

    #[inline(always)]
    fn scale(b: &[u8], ib: usize) -> i32 {
        iq2_ks::scale_of(b, ib)
    }

    /// `L + 16` = nibble `ib % 2` of `scales[ib / 2]` (bits `4·ib` of the 4 scale bytes as one
    /// word) | bit `8 + ib` of `extra` · 16.
    #[inline(always)]
    unsafe fn scales8(b: &[u8]) -> __m256i {
        let lo = word_nibbles(b, 2, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
        let hi = lanes(_mm256_set1_epi32(b[1] as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), 1);
        _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32::<4>(hi)), _mm256_set1_epi32(16))
    }

    #[inline(always)]
    unsafe fn values_pair(b: &[u8], j: usize) -> [__m256i; 2] {
        [Self::values32(b, 2 * j), Self::values32(b, 2 * j + 1)]
    }

    #[inline(always)]
    /// In the crumb order: sub-blocks `j` and `4 + j`, 2-bit field `j` of one 64-byte load,
    /// looked up straight from the index bytes by the IQ2_K dot's `vpermb` crumb tables.
    unsafe fn offset_values64(b: &[u8], j: usize) -> __m512i {
        let q = load64(b, iq2_ks::QS);
        let q = if j < 3 { q } else { _mm512_srli_epi16::<2>(q) };
        _mm512_permutexvar_epi8(q, load64(&IQ2_CRUMBS[j], 0))
    }

    /// Shifted half = plain + 5; the shift is bit `ib` of `extra`.
    #[inline(always)]
    unsafe fn offsets8(b: &[u8]) -> __m256i {
        let sh = lanes(_mm256_set1_epi32(b[0] as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), 1);
        _mm256_sub_epi32(_mm256_set1_epi32(128), _mm256_add_epi32(sh, _mm256_slli_epi32::<2>(sh)))
    }

    const ACT: Option<&'static [u8; 256]> = Some(&super::avx512::k::CRUMBS_ACT);
}

// ---------------------------------------------------------------------------------------------
// IQ2_KL: 32 grid pairs = 64 bytes (first coordinate at byte 2g, second at 2g + 1)

/// The first (`[0]`, `[1]`: points 0..16, 16..32) and second (`[2]`, `[3]`) coordinates of the
/// grid points, for 16-byte shuffles.
static IQ2KL_COORDS: [[u8; 16]; 4] = {
    let mut t = [[0u8; 16]; 4];
    let mut g = 0;
    while g < 32 {
        let (v0, v1) = iq2_kl::grid_point(g);
        t[g / 16][g % 16] = v0 as u8;
        t[2 + g / 16][g % 16] = v1 as u8;
        g += 1;
    }
    t
};

struct Iq2Kl;

impl Iq2Kl {
    /// The 5-bit grid indices of the 16 pairs of sub-block `ib`.
    #[inline(always)]
    unsafe fn points(b: &[u8], ib: usize) -> __m128i {
        let lo = bits128(load16(b, iq2_kl::QS + 16 * (ib / 2)), 4 * (ib % 2), 0x0F);
        let hi = bits128(load16(b, iq2_kl::QH), ib, 1);
        _mm_or_si128(lo, _mm_slli_epi16::<4>(hi))
    }
}

impl RowScale for Iq2Kl {
    const ROW_META: usize = iq2_kl::ROW_META;
    const BLOCK: usize = iq2_kl::BLOCK;
    const TRANSPOSE_SUMS: bool = false;

    #[inline(always)]
    fn row_scale(src: &[u8]) -> f32 {
        iq2_kl::row_scale(src)
    }

    #[inline(always)]
    fn scale(b: &[u8], ib: usize) -> i32 {
        iq2_kl::scale_of(b, ib)
    }

    /// `L + 32` = nibble `ib / 4` of `scales_l[ib % 4]` | bits `2·ib..` of `scales_h` · 16.
    #[inline(always)]
    unsafe fn scales8(b: &[u8]) -> __m256i {
        let lo = word_nibbles(b, 2, nibbles_low_then_high());
        let sh = u16::from_le_bytes([b[0], b[1]]) as i32;
        let hi = lanes(_mm256_set1_epi32(sh), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), 3);
        _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32::<4>(hi)), _mm256_set1_epi32(32))
    }

    /// Two sub-blocks at once: each coordinate looked up for 32 pairs (two 16-entry shuffles and
    /// a blend on bit 4), then the two coordinates interleaved.
    #[inline(always)]
    unsafe fn values_pair(b: &[u8], j: usize) -> [__m256i; 2] {
        let g = _mm256_set_m128i(Self::points(b, 2 * j + 1), Self::points(b, 2 * j));
        let high = _mm256_slli_epi16::<3>(g); // bit 4 of g to bit 7
        let (x0, x1) = (bcast2(&IQ2KL_COORDS[0]), bcast2(&IQ2KL_COORDS[1]));
        let (y0, y1) = (bcast2(&IQ2KL_COORDS[2]), bcast2(&IQ2KL_COORDS[3]));
        let x = _mm256_blendv_epi8(_mm256_shuffle_epi8(x0, g), _mm256_shuffle_epi8(x1, g), high);
        let y = _mm256_blendv_epi8(_mm256_shuffle_epi8(y0, g), _mm256_shuffle_epi8(y1, g), high);
        let (lo, hi) = (_mm256_unpacklo_epi8(x, y), _mm256_unpackhi_epi8(x, y));
        [_mm256_permute2x128_si256::<0x20>(lo, hi), _mm256_permute2x128_si256::<0x31>(lo, hi)]
    }

    /// One coordinate (`j % 2`) of the 64 grid points of sub-blocks `2i + j/2` (lane `i`): the
    /// nibbles `j/2` of one 64-byte load, bit 4 from `qh` by a mask test, looked up with `vpermb`
    /// (needs VBMI). The activations come split by coordinate to match ([`IQ2KL_ACT`]).
    #[inline(always)]
    unsafe fn offset_values64(b: &[u8], j: usize) -> __m512i {
        let v = j / 2;
        let lo = bits512(load64(b, iq2_kl::QS), 4 * v, 4 * v, 0x0F);
        let qh = _mm512_broadcast_i32x4(load16(b, iq2_kl::QH));
        let high = _mm512_test_epi8_mask(qh, _mm512_loadu_si512(IQ2KL_HBIT[v].as_ptr().cast()));
        let g = _mm512_mask_add_epi8(lo, high, lo, _mm512_set1_epi8(16));
        _mm512_permutexvar_epi8(g, _mm512_loadu_si512(IQ2KL_COORD_OFFSET[j % 2].as_ptr().cast()))
    }

    const ACT: Option<&'static [u8; 256]> = Some(&IQ2KL_ACT);
}

/// Each coordinate of the 32 grid points offset by +128 (`[0]` first, `[1]` second; bytes
/// 32..64 unused), for `vpermb`.
static IQ2KL_COORD_OFFSET: [[u8; 64]; 2] = {
    let mut t = [[0u8; 64]; 2];
    let mut g = 0;
    while g < 32 {
        let (v0, v1) = iq2_kl::grid_point(g);
        t[0][g] = (v0 as i32 + 128) as u8;
        t[1][g] = (v1 as i32 + 128) as u8;
        g += 1;
    }
    t
};

/// `vptestmb` masks for bit 4 of the grid indices: byte `k` = `1 << (2·(k/16) + v)` (the
/// sub-block of lane `k / 16` for nibble `v`).
static IQ2KL_HBIT: [[u8; 64]; 2] = {
    let mut t = [[0u8; 64]; 2];
    let mut v = 0;
    while v < 2 {
        let mut k = 0;
        while k < 64 {
            t[v][k] = 1 << (2 * (k / 16) + v);
            k += 1;
        }
        v += 1;
    }
    t
};

/// IQ2_KL's activation order: vector `j` = coordinate `j % 2` of the pairs of sub-blocks
/// `2i + j/2` (lane `i`): byte `64j + 16i + p` is quant `32·(2i + j/2) + 2p + j%2`.
static IQ2KL_ACT: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut k = 0;
    while k < 256 {
        let (j, i, p) = (k / 64, k % 64 / 16, k % 16);
        t[k] = (32 * (2 * i + j / 2) + 2 * p + j % 2) as u8;
        k += 1;
    }
    t
};

/// Dword `2i`, `2i + 1` = `i`: the scale of each 16-weight half from the 32-weight sub-blocks'.
static HALVES: [i32; 16] = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7];

/// Super-block `b` of one row in registers, for the matrix multiply's tile decoder (needs
/// AVX-512 F/BW/VL and AVX2).
#[inline(always)]
unsafe fn row_block<T: RowScale>(row: &[u8], b: usize) -> RowBlock {
    let blk = &row[T::ROW_META + T::BLOCK * b..T::ROW_META + T::BLOCK * (b + 1)];
    let mut v = [_mm512_setzero_si512(); 4];
    for (j, vj) in v.iter_mut().enumerate() {
        let [t0, t1] = T::values_pair(blk, j);
        *vj = join(t0, t1);
    }
    let l = _mm512_permutexvar_epi32(_mm512_loadu_si512(HALVES.as_ptr().cast()), _mm512_castsi256_si512(T::scales8(blk)));
    RowBlock { v, l, d: T::row_scale(row) }
}

// ---------------------------------------------------------------------------------------------
// Entry points

macro_rules! entry_points {
    ($t:ty, $dot2:ident, $deq2:ident, $dot512:ident, $fill:ident, $f512:literal) => {
        /// Dot product with a Q8_K row (AVX2).
        pub fn $dot2(src: &[u8], y: &[u8]) -> f32 {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn imp(src: &[u8], y: &[u8]) -> f32 {
                dot_avx2::<$t>(src, y)
            }
            // SAFETY: handed out only when AVX2 and FMA are present.
            unsafe { imp(src, y) }
        }

        /// Row decode (AVX2).
        pub fn $deq2(src: &[u8], out: &mut [f32]) {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn imp(src: &[u8], out: &mut [f32]) {
                dequantize_avx2::<$t>(src, out)
            }
            // SAFETY: handed out only when AVX2 and FMA are present.
            unsafe { imp(src, out) }
        }

        /// Dot product with a Q8_K row (AVX-512 with VNNI).
        pub fn $dot512(src: &[u8], y: &[u8]) -> f32 {
            #[target_feature(enable = $f512)]
            unsafe fn imp(src: &[u8], y: &[u8]) -> f32 {
                dot_avx512::<$t>(src, y)
            }
            // SAFETY: handed out only when the features enabled above are present.
            unsafe { imp(src, y) }
        }

        /// Matrix-multiply tile decode (AVX-512 with VNNI).
        pub fn $fill(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
            unsafe fn imp(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
                fill_rows(w, src, <$t>::ROW_META + <$t>::BLOCK * (cols / QK_K), nrows, |row, b| row_block::<$t>(row, b))
            }
            // SAFETY: handed out only when AVX-512 F/BW/VL, VNNI and AVX2 are present.
            unsafe { imp(w, src, cols, nrows) }
        }
    };
}

entry_points!(Iq5Ks, iq5_ks_dot_avx2, iq5_ks_dequantize_avx2, iq5_ks_dot_avx512, iq5_ks_fill_tile, "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma");
entry_points!(Iq3Ks, iq3_ks_dot_avx2, iq3_ks_dequantize_avx2, iq3_ks_dot_avx512, iq3_ks_fill_tile, "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma");
entry_points!(Iq2Ks, iq2_ks_dot_avx2, iq2_ks_dequantize_avx2, iq2_ks_dot_avx512, iq2_ks_fill_tile, "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma");
entry_points!(Iq2Kl, iq2_kl_dot_avx2, iq2_kl_dequantize_avx2, iq2_kl_dot_avx512, iq2_kl_fill_tile, "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma");
