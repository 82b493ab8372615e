//! AVX-512 (VNNI) kernels of the row-interleaved `_R4` types (FORMATS.md §8): the 4 rows of a
//! group from one pass over each R4 block, straight from the interleaved layout.
//!
//! In both index layouts, a 16-byte run of the R4 block holds 4 consecutive weights of each of
//! the 4 rows (`[r0 i0..3, r1 i0..3, r2 …, r3 …]`), so one 32-bit lane of `vpdpbusd` is one row:
//! the 4 activations of those weights are broadcast to all 4 rows of a 128-bit lane, and each
//! register holds 4 such runs (one per 128-bit lane). The shifted grid half is the plain half
//! plus a constant, added per row after the table look-up; the table carries an offset of 128
//! (unsigned operand), removed with the Q8_K block sums as in the base kernels. Integer sums
//! are exact and each row accumulates `(d_r · d8) · S_r` in block order, so the results equal
//! the scalar kernels' (the base types') bit for bit. Every `unsafe fn` requires its target
//! features at run time.

use std::arch::x86_64::*;

use super::{lane128, sum_lanes};
use crate::gemm::{PackedRows, TILE_ROWS};
use crate::quants::common::read_f32;
use crate::quants::q8k;
use crate::quants::r4::{self, R4High, R4Quants, R4Scales, R4Spec};
use crate::registry::QK_K;
use super::k::{IQ2_CRUMBS, IQ3_CRUMBS};
use crate::tables::{IQ2NL_VALUES, IQ3NL_VALUES, IQ4K_VALUES, IQ5NL_VALUES};

/// The plain half of a grid plus `bias`, in 16-entry chunks repeated in all four lanes.
type Table = [[u8; 64]; 2];

const fn table(values: &[i8], bias: i32) -> Table {
    let mut t = [[0u8; 64]; 2];
    let half = values.len() / 2;
    let mut i = 0;
    while i < half {
        let mut lane = 0;
        while lane < 4 {
            t[i / 16][16 * lane + i % 16] = (values[i] as i32 + bias) as u8;
            lane += 1;
        }
        i += 1;
    }
    t
}

/// Dword indices that broadcast the activations of each 16-byte run over its lane (4-bit layout:
/// low nibbles weights `i + (0, 16, 4, 20)[c]`, high nibbles `+ 8`; the 2-bit layout's runs are
/// arranged to match).
static Y_NIB_LO: [i32; 16] = [0, 0, 0, 0, 4, 4, 4, 4, 1, 1, 1, 1, 5, 5, 5, 5];
static Y_NIB_HI: [i32; 16] = [2, 2, 2, 2, 6, 6, 6, 6, 3, 3, 3, 3, 7, 7, 7, 7];

#[inline(always)]
unsafe fn load16(b: &[u8], off: usize) -> __m128i {
    _mm_loadu_si128(b[off..off + 16].as_ptr().cast())
}

#[inline(always)]
unsafe fn load8(b: &[u8], off: usize) -> __m128i {
    _mm_loadl_epi64(b[off..off + 8].as_ptr().cast())
}

/// 8 bytes at `off` in every qword.
#[inline(always)]
unsafe fn bcast8(b: &[u8], off: usize) -> __m512i {
    _mm512_set1_epi64(i64::from_le_bytes(b[off..off + 8].try_into().unwrap()))
}

#[inline(always)]
unsafe fn bcast16(b: &[u8], off: usize) -> __m512i {
    _mm512_broadcast_i32x4(load16(b, off))
}

/// The grid shifts and levels of the 8 sub-blocks of an R4 block, all decoded at once: byte
/// `8·ib + r + 4h` of `levels` is `L` of row `r`, 16-weight half `h` of 32-weight sub-block `ib`,
/// and the same bit of `shifts` says whether it uses the shifted grid half.
struct BlockScales {
    levels: [i8; 64],
    shifts: u64,
    /// `levels` in a register.
    lv: __m512i,
}

/// Byte `8·ib + j` = `1 << ib` (tests bit `ib` of byte `j` of 8 bytes broadcast to every qword).
static BIT_OF_IB: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut k = 0;
    while k < 64 {
        t[k] = 1 << (k / 8);
        k += 1;
    }
    t
};
/// 16-bit shift counts: 0 in the lower 256 bits, 4 in the upper (the two nibbles of `scales_l`).
static NIBBLE_SHIFT: [u16; 32] = {
    let mut t = [0u16; 32];
    let mut k = 16;
    while k < 32 {
        t[k] = 4;
        k += 1;
    }
    t
};
/// 16-bit shift counts `2·lane` (the bit pairs of `scales_h`, one sub-block pair per lane).
static PAIR_SHIFT: [u16; 32] = {
    let mut t = [0u16; 32];
    let mut k = 0;
    while k < 32 {
        t[k] = 2 * (k / 8) as u16;
        k += 1;
    }
    t
};
/// Dword `2i`, `2i + 1` = `i`: the 4 scale bytes of sub-block `ib` for both halves (IQ*_KS_R4).
static DUP_DWORDS: [i32; 16] = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7];

#[inline(always)]
unsafe fn block_scales(spec: &R4Spec, blk: &[u8]) -> BlockScales {
    let bits = _mm512_loadu_si512(BIT_OF_IB.as_ptr().cast());
    let (shifts, lv) = match spec.scales {
        R4Scales::Nibbles(high) => {
            let shifts = _mm512_test_epi8_mask(bcast8(blk, 8), bits);
            let sl = _mm256_loadu_si256(blk[spec.scales_l()..spec.scales_l() + 32].as_ptr().cast());
            let sl = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(sl), sl);
            let lo = _mm512_and_si512(_mm512_srlv_epi16(sl, _mm512_loadu_si512(NIBBLE_SHIFT.as_ptr().cast())), _mm512_set1_epi8(15));
            let l = match high {
                R4High::None => _mm512_sub_epi8(lo, _mm512_set1_epi8(8)),
                R4High::Sign => {
                    let odd = _mm512_add_epi8(_mm512_add_epi8(lo, lo), _mm512_set1_epi8(1));
                    let neg = _mm512_test_epi8_mask(bcast8(blk, 16), bits);
                    _mm512_mask_sub_epi8(odd, neg, _mm512_setzero_si512(), odd)
                }
                R4High::Two => {
                    let sh = _mm512_srlv_epi16(bcast16(blk, 16), _mm512_loadu_si512(PAIR_SHIFT.as_ptr().cast()));
                    let hi = _mm512_and_si512(sh, _mm512_set1_epi8(3));
                    _mm512_sub_epi8(_mm512_or_si512(lo, _mm512_slli_epi16::<4>(hi)), _mm512_set1_epi8(32))
                }
            };
            (shifts, l)
        }
        R4Scales::Bytes => {
            let sb = _mm512_castsi256_si512(_mm256_loadu_si256(blk[..32].as_ptr().cast()));
            let x = _mm512_permutexvar_epi32(_mm512_loadu_si512(DUP_DWORDS.as_ptr().cast()), sb);
            let shifts = _mm512_test_epi8_mask(x, _mm512_set1_epi8(1));
            (shifts, _mm512_sub_epi8(_mm512_and_si512(x, _mm512_set1_epi8(-2)), _mm512_set1_epi8(127)))
        }
    };
    let mut levels = [0i8; 64];
    _mm512_storeu_si512(levels.as_mut_ptr().cast(), lv);
    BlockScales { levels, shifts, lv }
}

/// Per lane (two sub-blocks), the byte order `(ib, r, h)` from `(ib, h, r)`: the two halves of a
/// row adjacent, for `vpmaddwd`.
static ROW_PAIRS: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut k = 0;
    while k < 64 {
        let (lane, ib2, r, h) = (k / 16, (k / 8) % 2, (k / 2) % 4, k % 2);
        t[k] = (16 * lane + 8 * ib2 + 4 * h + r) as u8;
        k += 1;
    }
    t
};
/// Word `(ib % 4, r, h)` of the block sums for sub-blocks `ib` = 0..3 (`[0]`) and 4..7 (`[1]`):
/// the sum of 16-weight half `2·ib + h`.
static BSUM_PAIRS: [[u16; 32]; 2] = {
    let mut t = [[0u16; 32]; 2];
    let mut q = 0;
    while q < 2 {
        let mut k = 0;
        while k < 32 {
            t[q][k] = (2 * (4 * q + k / 8) + k % 2) as u16;
            k += 1;
        }
        q += 1;
    }
    t
};

impl BlockScales {
    /// Per row, `Σ_{ib, h} L[8·ib + r + 4h] · bsums[2·ib + h]` (the table offset's correction
    /// before the factor 128) from a Q8_K block's 16 block sums.
    #[inline(always)]
    unsafe fn bsum_products(&self, bsums: __m256i) -> __m128i {
        let l = _mm512_shuffle_epi8(self.lv, _mm512_loadu_si512(ROW_PAIRS.as_ptr().cast()));
        let b = _mm512_castsi256_si512(bsums);
        let b0 = _mm512_permutexvar_epi16(_mm512_loadu_si512(BSUM_PAIRS[0].as_ptr().cast()), b);
        let b1 = _mm512_permutexvar_epi16(_mm512_loadu_si512(BSUM_PAIRS[1].as_ptr().cast()), b);
        let p0 = _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm512_castsi512_si256(l)), b0);
        let p1 = _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64::<1>(l)), b1);
        sum_lanes(_mm512_add_epi32(p0, p1))
    }

    /// Shift bits of sub-block `ib` (bit `r + 4h`) and its levels `L[r + 4h]` (8 bytes).
    #[inline(always)]
    unsafe fn of(&self, ib: usize) -> (u16, __m128i) {
        (((self.shifts >> (8 * ib)) & 0xFF) as u16, _mm_loadl_epi64(self.levels[8 * ib..8 * ib + 8].as_ptr().cast()))
    }
}

/// Per-lane byte patterns of the qh bits: 4-bit layout `1 << 2c` (lane c), `1 << (2c + 1)`;
/// 2-bit layout `1 << (4h + j)` for lane `(h, j)` of each register (see [`crumb_runs`]).
static QH_NIB: [[u8; 64]; 2] = lane_bytes([[1, 4, 16, 64], [2, 8, 32, 128]]);
static QH_CRUMB: [[u8; 64]; 2] = lane_bytes([[1, 16, 2, 32], [4, 64, 8, 128]]);
/// 16-bit shift counts of the crumbs of lane `(h, j)`: `2j`.
static CRUMB_SHIFT: [[u8; 64]; 2] = {
    let mut t = [[0u8; 64]; 2];
    let mut k = 0;
    while k < 64 {
        if k % 2 == 0 {
            t[0][k] = 2 * (k / 32) as u8;
            t[1][k] = 4 + 2 * (k / 32) as u8;
        }
        k += 1;
    }
    t
};

/// Two registers' worth of one byte per 128-bit lane.
const fn lane_bytes(v: [[u8; 4]; 2]) -> [[u8; 64]; 2] {
    let mut t = [[0u8; 64]; 2];
    let mut k = 0;
    while k < 64 {
        t[0][k] = v[0][k / 16];
        t[1][k] = v[1][k / 16];
        k += 1;
    }
    t
}

#[inline(always)]
unsafe fn load64(b: &[u8], off: usize) -> __m512i {
    _mm512_loadu_si512(b[off..off + 64].as_ptr().cast())
}

/// `delta` in every byte of the dwords whose bit is set in `mask` (the rows' grid shifts).
#[inline(always)]
unsafe fn row_shifts(mask: u16, delta: i8) -> __m512i {
    _mm512_maskz_set1_epi32(mask, i32::from_ne_bytes([delta as u8; 4]))
}

/// Grid values of indices `idx` (< 16) from a 16- or 32-entry table; `hi` selects the upper 16
/// entries of a 32-entry grid.
#[inline(always)]
unsafe fn lookup(t: &Table, idx: __m512i, hi: __mmask64, big: bool) -> __m512i {
    let v = _mm512_shuffle_epi8(load64(&t[0], 0), idx);
    if big {
        _mm512_mask_blend_epi8(hi, v, _mm512_shuffle_epi8(load64(&t[1], 0), idx))
    } else {
        v
    }
}

/// One register of runs: the grid values of 4 runs (one per 128-bit lane, 4 rows × 4 weights
/// each) and the dwords of the sub-block's activations each lane needs. In both layouts lanes
/// 0 and 2 hold the first 16-weight half of the sub-block, lanes 1 and 3 the second, so the rows'
/// levels per dword are `L[r + 4·(lane % 2)]`.
struct Runs {
    values: __m512i,
    y: &'static [i32; 16],
}

/// The two registers of runs of sub-block `ib` (4-bit layout: low and high nibbles; 2-bit
/// layout: the two `qs` halves). `shift` bit `r + 4h`: row `r` uses the shifted half in
/// 16-weight half `h`.
#[inline(always)]
unsafe fn runs(spec: &R4Spec, t: &Table, crumbs: Option<Crumbs>, blk: &[u8], ib: usize, shift: u16) -> [Runs; 2] {
    let delta = spec.shift_delta();
    let m15 = _mm512_set1_epi8(15);
    match spec.quants {
        R4Quants::Nibbles { high } => {
            let q = load64(blk, spec.qs() + 64 * ib);
            let lo = _mm512_and_si512(q, m15);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), m15);
            let (mlo, mhi) = if high {
                let h = bcast16(blk, spec.qh() + 16 * ib);
                (_mm512_test_epi8_mask(h, load64(&QH_NIB[0], 0)), _mm512_test_epi8_mask(h, load64(&QH_NIB[1], 0)))
            } else {
                (0, 0)
            };
            // lanes 0 and 2 hold weights of the first 16-weight half, lanes 1 and 3 of the second
            let sh = row_shifts(shift | shift << 8, delta);
            [
                Runs { values: _mm512_add_epi8(lookup(t, lo, mlo, high), sh), y: &Y_NIB_LO },
                Runs { values: _mm512_add_epi8(lookup(t, hi, mhi, high), sh), y: &Y_NIB_HI },
            ]
        }
        R4Quants::Crumbs { high } => {
            let q = _mm512_broadcast_i64x4(_mm256_loadu_si256(blk[spec.qs() + 32 * ib..spec.qs() + 32 * ib + 32].as_ptr().cast()));
            let h = if high { bcast16(blk, spec.qh() + 16 * ib) } else { _mm512_setzero_si512() };
            let sh = row_shifts(shift | shift << 8, delta);
            match crumbs {
                Some(c) => crumb_runs_vbmi(c, q, h, high, sh),
                None => [crumb_runs(t, q, h, 0, high, sh), crumb_runs(t, q, h, 1, high, sh)],
            }
        }
    }
}

/// Run `k` of a sub-block in the 2-bit layout, from its 32 `qs` bytes broadcast as `(half 0,
/// half 1, half 0, half 1)` and its 16 `qh` bytes in every lane: lane `(h, j)` (lanes 0..3 =
/// (0, 2k), (1, 2k), (0, 2k + 1), (1, 2k + 1)) holds crumb `j` of half `h`, i.e. weights
/// `16h + 4j + i` — the same dwords of activations and the same halves per lane as the 4-bit
/// layout's runs.
#[inline(always)]
unsafe fn crumb_runs(t: &Table, q: __m512i, h: __m512i, k: usize, high: bool, sh: __m512i) -> Runs {
    let mut x = _mm512_and_si512(_mm512_srlv_epi16(q, load64(&CRUMB_SHIFT[k], 0)), _mm512_set1_epi8(3));
    if high {
        let set = _mm512_test_epi8_mask(h, load64(&QH_CRUMB[k], 0));
        x = _mm512_or_si512(x, _mm512_maskz_set1_epi8(set, 4));
    }
    Runs { values: _mm512_add_epi8(lookup(t, x, 0, false), sh), y: if k == 0 { &Y_NIB_LO } else { &Y_NIB_HI } }
}

/// `vpermb` tables of the 2-bit layout (needs AVX-512 VBMI), + 128: per crumb position, the
/// value of that crumb of a byte's low 6 bits (`[0]`: bits 0..1, `[2]`: bits 4..5; the base
/// IQ2_K/IQ3_K dots' tables), and for a `High` bit the same from the grid's entries 4..7.
#[derive(Clone, Copy)]
struct Crumbs {
    plain: &'static [[u8; 64]; 4],
    high: &'static [[u8; 64]; 4],
}

/// [`crumb_runs`] for both runs at once by `vpermb`: shifting lanes 2 and 3 (crumbs 1 and 3)
/// right by 2 puts their crumbs where lanes 0 and 1 have crumbs 0 and 2, so one shift serves
/// both runs, each a look-up (two, the second masked, with a high bit) instead of a variable
/// shift, a mask and a `vpshufb`.
#[inline(always)]
unsafe fn crumb_runs_vbmi(c: Crumbs, q: __m512i, h: __m512i, high: bool, sh: __m512i) -> [Runs; 2] {
    let x = _mm512_mask_srli_epi16(q, 0xFFFF_0000, q, 2);
    // (a loop, not a closure: closures do not inherit the target features)
    let mut v = [_mm512_setzero_si512(); 2];
    for (k, vk) in v.iter_mut().enumerate() {
        *vk = _mm512_permutexvar_epi8(x, load64(&c.plain[2 * k], 0));
        if high {
            let set = _mm512_test_epi8_mask(h, load64(&QH_CRUMB[k], 0));
            *vk = _mm512_mask_permutexvar_epi8(*vk, set, x, load64(&c.high[2 * k], 0));
        }
    }
    [Runs { values: _mm512_add_epi8(v[0], sh), y: &Y_NIB_LO }, Runs { values: _mm512_add_epi8(v[1], sh), y: &Y_NIB_HI }]
}

/// The rows' block scales: the group header's f32 (IQ*_KS_R4) or the R4 block's f16 `d[4]`.
#[inline(always)]
unsafe fn row_scales(spec: &R4Spec, group: &[u8], blk: &[u8]) -> [f32; 4] {
    let mut d = [0f32; 4];
    match spec.scales {
        R4Scales::Bytes => {
            for (r, v) in d.iter_mut().enumerate() {
                *v = read_f32(group, 4 * r);
            }
        }
        R4Scales::Nibbles(_) => _mm_storeu_ps(d.as_mut_ptr(), _mm_cvtph_ps(load8(blk, 0))),
    }
    d
}

#[inline(always)]
unsafe fn dot(spec: &R4Spec, t: &Table, crumbs: Option<Crumbs>, src: &[u8], cols: usize, y: &[u8], out: &mut [f32]) {
    let (rm, bb) = (spec.meta(), spec.block_bytes());
    let mut acc = [0f32; 4];
    for ibl in 0..cols / QK_K {
        // the hardware prefetchers follow an R4 block's far-apart fields poorly from cold memory
        crate::arch::prefetch_ahead(src, 4 * rm + bb * ibl, bb);
        let blk = &src[4 * rm + bb * ibl..4 * rm + bb * (ibl + 1)];
        let yb = &y[q8k::BLOCK_BYTES * ibl..q8k::BLOCK_BYTES * (ibl + 1)];
        let sc = block_scales(spec, blk);
        let mut s = _mm512_setzero_si512();
        for ib in 0..8 {
            let (shift, l) = sc.of(ib);
            let y32 = _mm512_castsi256_si512(_mm256_loadu_si256(yb[q8k::QS + 32 * ib..q8k::QS + 32 * ib + 32].as_ptr().cast()));
            // both runs share the rows' levels per dword: one chain of sums, one multiply
            let mut p = _mm512_setzero_si512();
            for run in runs(spec, t, crumbs, blk, ib, shift) {
                let yv = _mm512_permutexvar_epi32(_mm512_loadu_si512(run.y.as_ptr().cast()), y32);
                p = _mm512_dpbusd_epi32(p, run.values, yv);
            }
            // the levels per dword: L[r + 4h] in lane pattern (h = 0, 1, 0, 1)
            let lv = _mm512_cvtepi8_epi32(_mm_unpacklo_epi64(l, l));
            s = _mm512_add_epi32(s, _mm512_mullo_epi32(p, lv));
        }
        // the table offset: 128 · Σ L[r + 4h] · Σy over each 16-weight half
        let bsums = _mm256_loadu_si256(yb[q8k::BSUMS..q8k::BSUMS + 32].as_ptr().cast());
        let c4 = _mm_slli_epi32::<7>(sc.bsum_products(bsums));
        let mut tot = [0i32; 4];
        _mm_storeu_si128(tot.as_mut_ptr().cast(), _mm_sub_epi32(sum_lanes(s), c4));
        let d = row_scales(spec, src, blk);
        let d8 = read_f32(yb, 0);
        for r in 0..4 {
            acc[r] += (d[r] * d8) * tot[r] as f32;
        }
    }
    out[..4].copy_from_slice(&acc);
}

#[inline(always)]
unsafe fn dequantize(spec: &R4Spec, t: &Table, src: &[u8], cols: usize, out: &mut [f32]) {
    let (rm, bb) = (spec.meta(), spec.block_bytes());
    for ibl in 0..cols / QK_K {
        let blk = &src[4 * rm + bb * ibl..4 * rm + bb * (ibl + 1)];
        let d = _mm_loadu_ps(row_scales(spec, src, blk).as_ptr());
        let sc = block_scales(spec, blk);
        for ib in 0..8 {
            let (shift, l) = sc.of(ib);
            // d_r · L[r + 4h] for the 8 (h, r), one rounding as the scalar decoder
            let dd = _mm256_set_m128(d, d);
            let mut dl = [0f32; 8];
            _mm256_storeu_ps(dl.as_mut_ptr(), _mm256_mul_ps(dd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(l))));
            for run in runs(spec, t, None, blk, ib, shift) {
                for lane in 0..4 {
                    // weights of this lane: `first + i` of every row (i = 0..3)
                    let first = 4 * run.y[4 * lane] as usize;
                    let v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lane128(run.values, lane)));
                    let mut vals = [0f32; 16];
                    _mm512_storeu_ps(vals.as_mut_ptr(), v);
                    for r in 0..4 {
                        let h = lane % 2;
                        let o = &mut out[cols * r + QK_K * ibl + 32 * ib + first..][..4];
                        let scaled = _mm_mul_ps(_mm_set1_ps(dl[r + 4 * h]), _mm_loadu_ps(vals[4 * r..].as_ptr()));
                        _mm_storeu_ps(o.as_mut_ptr(), scaled);
                    }
                }
            }
        }
    }
}

/// Decodes a matrix-multiply tile (`nrows` rows = `nrows / 4` groups) straight from the R4
/// layout: each 16-byte run of grid values (4 rows × 4 consecutive weights) is exactly one
/// `[row][4]` slot of [`PackedRows`], so it is stored as it comes out of the look-up; the rows'
/// levels are the sub-block scales, and their value sums (`vpdpbusd` with ones) give the
/// corrections. The same tile as `PackedRows::fill_blocks` through the scalar `decode_int`.
#[inline(always)]
unsafe fn fill_tile(spec: &R4Spec, t: &Table, w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
    let (rm, bb) = (spec.meta(), spec.block_bytes());
    let group_bytes = 4 * spec.r4.row_size(cols);
    let ones = _mm512_set1_epi8(1);
    for grp in 0..TILE_ROWS / 4 {
        let rows = 4 * grp..4 * grp + 4;
        if rows.start >= nrows {
            for b in 0..w.blocks {
                for slot in w.w[b].chunks_exact_mut(4 * TILE_ROWS) {
                    slot[16 * grp..16 * grp + 16].fill(0);
                }
                for s in 0..16 {
                    w.scales[b][s * TILE_ROWS + rows.start..][..4].fill(0);
                }
                w.corr[b][rows.clone()].fill(0);
                w.d[b][rows.clone()].fill(0.0);
            }
            continue;
        }
        let group = &src[grp * group_bytes..(grp + 1) * group_bytes];
        for b in 0..w.blocks {
            let blk = &group[4 * rm + bb * b..4 * rm + bb * (b + 1)];
            let (wb, sc) = (&mut w.w[b], &mut w.scales[b]);
            let bsc = block_scales(spec, blk);
            let mut corr = _mm512_setzero_si512();
            for ib in 0..8 {
                let (shift, l) = bsc.of(ib);
                let mut sums = _mm512_setzero_si512();
                for run in runs(spec, t, None, blk, ib, shift) {
                    for lane in 0..4 {
                        // weights k..k + 4 of the 4 rows: slot k / 4 of the tile
                        let k = 32 * ib + 4 * run.y[4 * lane] as usize;
                        let off = (k / 4) * 4 * TILE_ROWS + 16 * grp;
                        _mm_storeu_si128(wb[off..off + 16].as_mut_ptr().cast(), lane128(run.values, lane));
                    }
                    sums = _mm512_dpbusd_epi32(sums, ones, run.values);
                }
                let lv = _mm512_cvtepi8_epi32(_mm_unpacklo_epi64(l, l));
                corr = _mm512_add_epi32(corr, _mm512_mullo_epi32(sums, lv));
                // L[r + 4h] is the scale of 16-weight sub-block 2·ib + h of row r
                let l32 = _mm256_cvtepi8_epi32(l);
                let o = 2 * ib * TILE_ROWS + rows.start;
                _mm_storeu_si128(sc[o..o + 4].as_mut_ptr().cast(), _mm256_castsi256_si128(l32));
                _mm_storeu_si128(sc[o + TILE_ROWS..o + TILE_ROWS + 4].as_mut_ptr().cast(), _mm256_extracti128_si256::<1>(l32));
            }
            _mm_storeu_si128(w.corr[b][rows.clone()].as_mut_ptr().cast(), _mm_slli_epi32::<7>(sum_lanes(corr)));
            w.d[b][rows.clone()].copy_from_slice(&row_scales(spec, group, blk));
        }
    }
}

/// Declares the safe dot, decode and tile-decode entry points of one `_R4` type.
macro_rules! entry_points {
    ($spec:path, $values:path, $dot:ident, $dq:ident, $fill:ident, $name:literal) => {
        #[doc = concat!($name, " · Q8_K, the 4 rows of a group (needs VNNI).")]
        pub fn $dot(src: &[u8], cols: usize, y: &[u8], out: &mut [f32]) {
            static T: Table = table(&$values, 128);
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            unsafe fn imp(src: &[u8], cols: usize, y: &[u8], out: &mut [f32]) {
                dot(&$spec, &T, None, src, cols, y, out)
            }
            // SAFETY: handed out only when AVX-512 F/BW/VL, VNNI and F16C are present.
            unsafe { imp(src, cols, y, out) }
        }

        #[doc = concat!($name, " group decode (4 rows).")]
        pub fn $dq(src: &[u8], cols: usize, out: &mut [f32]) {
            static T: Table = table(&$values, 0);
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
            unsafe fn imp(src: &[u8], cols: usize, out: &mut [f32]) {
                dequantize(&$spec, &T, src, cols, out)
            }
            // SAFETY: handed out only when AVX-512 F/BW/VL and F16C are present.
            unsafe { imp(src, cols, out) }
        }

        #[doc = concat!($name, " matrix-multiply tile decode (needs VNNI).")]
        pub fn $fill(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
            static T: Table = table(&$values, 0);
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            unsafe fn imp(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize) {
                fill_tile(&$spec, &T, w, src, cols, nrows)
            }
            // SAFETY: handed out only when AVX-512 F/BW/VL, VNNI and F16C are present.
            unsafe { imp(w, src, cols, nrows) }
        }
    };
}

entry_points!(r4::IQ2_K_R4, IQ2NL_VALUES, iq2_k_r4_dot, iq2_k_r4_dequantize, iq2_k_r4_fill_tile, "IQ2_K_R4");
entry_points!(r4::IQ3_K_R4, IQ3NL_VALUES, iq3_k_r4_dot, iq3_k_r4_dequantize, iq3_k_r4_fill_tile, "IQ3_K_R4");
entry_points!(r4::IQ4_K_R4, IQ4K_VALUES, iq4_k_r4_dot, iq4_k_r4_dequantize, iq4_k_r4_fill_tile, "IQ4_K_R4");
entry_points!(r4::IQ5_K_R4, IQ5NL_VALUES, iq5_k_r4_dot, iq5_k_r4_dequantize, iq5_k_r4_fill_tile, "IQ5_K_R4");
entry_points!(r4::IQ4_KS_R4, IQ4K_VALUES, iq4_ks_r4_dot, iq4_ks_r4_dequantize, iq4_ks_r4_fill_tile, "IQ4_KS_R4");
entry_points!(r4::IQ5_KS_R4, IQ5NL_VALUES, iq5_ks_r4_dot, iq5_ks_r4_dequantize, iq5_ks_r4_fill_tile, "IQ5_KS_R4");

/// Declares the dot of a 2-bit-layout `_R4` type that looks its crumbs up by `vpermb`.
macro_rules! vbmi_dot {
    ($spec:path, $values:path, $crumbs:expr, $dot:ident, $name:literal) => {
        #[doc = concat!($name, " · Q8_K, the 4 rows of a group, crumbs by `vpermb` (needs VNNI and VBMI).")]
        pub fn $dot(src: &[u8], cols: usize, y: &[u8], out: &mut [f32]) {
            static T: Table = table(&$values, 128);
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
            unsafe fn imp(src: &[u8], cols: usize, y: &[u8], out: &mut [f32]) {
                dot(&$spec, &T, Some($crumbs), src, cols, y, out)
            }
            // SAFETY: handed out only when AVX-512 F/BW/VL, VNNI, VBMI and F16C are present.
            unsafe { imp(src, cols, y, out) }
        }
    };
}

vbmi_dot!(r4::IQ2_K_R4, IQ2NL_VALUES, Crumbs { plain: &IQ2_CRUMBS, high: &IQ2_CRUMBS }, iq2_k_r4_dot_vbmi, "IQ2_K_R4");
vbmi_dot!(r4::IQ3_K_R4, IQ3NL_VALUES, Crumbs { plain: &IQ3_CRUMBS[0], high: &IQ3_CRUMBS[1] }, iq3_k_r4_dot_vbmi, "IQ3_K_R4");
