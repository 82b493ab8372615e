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
use super::{sum_blocks, transpose_sum4};
use super::tile::{fill_rows, RowBlock};
use crate::gemm::PackedRows;
use crate::quants::common::{read_f32, read_u16};
use crate::quants::k::{self, Format, High, Layout, Low};
use crate::quants::q8k;
use crate::registry::{QType, QK_K};
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

/// The plain half of a grid + 128 as one 64-byte `vpermb` table (a 32-entry half repeated).
/// Used for IQ6_K (64 entries: one `vpermb` for four `vpshufb` and three blends, the dot 1.5x
/// faster); IQ5_K measured no faster with it (one `vpermb` for two `vpshufb` and a blend).
const fn flat_biased(values: &[i8]) -> [u8; 64] {
    let half = values.len() / 2;
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = (values[i % half] as i32 + 128) as u8;
        i += 1;
    }
    t
}
static IQ6_FLAT: [u8; 64] = flat_biased(&IQ6NL_VALUES);

/// `vpermb` tables of the 2-bit crumbs of IQ2_K's index bytes, + 128: table `j` maps the low 6
/// bits of a byte to the value of its crumb `j` (bits 2j..2j+1) for j = 0, 1, 2, and table 3
/// the low 6 bits of the byte shifted right by 2 (whose crumb 2 is the byte's crumb 3). So the
/// four vectors of a block need no shifts or masks but one shift.
const fn crumb_tables(values: &[i8]) -> [[u8; 64]; 4] {
    crumb_tables_biased(values, 128)
}

const fn crumb_tables_biased(values: &[i8], bias: i32) -> [[u8; 64]; 4] {
    let mut t = [[0u8; 64]; 4];
    let mut i = 0;
    while i < 64 {
        let mut j = 0;
        while j < 4 {
            let crumb = if j < 3 { (i >> (2 * j)) & 3 } else { (i >> 4) & 3 };
            t[j][i] = (values[crumb] as i32 + bias) as u8;
            j += 1;
        }
        i += 1;
    }
    t
}
pub(crate) static IQ2_CRUMBS: [[u8; 64]; 4] = crumb_tables(&IQ2NL_VALUES);
/// IQ2_K's crumb tables + 32 (plain half 1..=49), for [`Lookup::Crumbs16`].
static IQ2_CRUMBS32: [[u8; 64]; 4] = crumb_tables_biased(&IQ2NL_VALUES, 32);
/// IQ3_K's (and IQ3_KS's, the same iq3nl grid): without and with the high index bit (grid
/// entries 0..3 and 4..7).
pub(crate) static IQ3_CRUMBS: [[[u8; 64]; 4]; 2] = [crumb_tables(&IQ3NL_VALUES), crumb_tables(IQ3NL_VALUES.split_at(4).1)];

/// How a dot looks grid values up (the VBMI forms need AVX-512 VBMI).
#[derive(Clone, Copy)]
enum Lookup {
    /// 16-entry `vpshufb` quarters, blended by the high index bits.
    Quarters,
    /// One `vpermb` on the 64-entry plain half (IQ6_K).
    Grid64(&'static [u8; 64]),
    /// The 2-bit layout with a `High::Bit`, crumbs looked up straight from the index bytes, the
    /// high bit picking the second table by a masked `vpermb` (IQ3_K).
    CrumbsHigh(&'static [[[u8; 64]; 4]; 2]),
    /// The 2-bit layout without `High` bits, crumbs looked up straight from the index bytes, the
    /// values + 32 instead of + 128 (IQ2_K, whose plain half + 32 lies in 1..=49): each dword of
    /// a `vpdpbusd` (four products, |Σ| ≤ 4 · 49 · 127) fits 16 bits, so two vectors pack into
    /// one by `vpackssdw` and `vpdpwssd` applies the half-blocks' scales. That replaces the
    /// transposed reduction and the 32-bit multiply: on an Intel Xeon the dot is bound by its
    /// 512-bit µops, of which this has fewer and fewer shuffles. (IQ3_K the same way, + 64 with
    /// `vpmaddubsw` pair sums, measured 2% faster and was not kept.)
    Crumbs16(&'static [[u8; 64]; 4]),
}

/// `vpermw` indices spreading the 16 half-block scales (words of a `vpmovsxbw` of `levels16`)
/// over a `vpackssdw` of vectors `2k` and `2k + 1`: word `w` of lane `i` takes half
/// `perm[4 · (2k + w / 4) + i]`.
const fn pack_pick(perm: [u8; 16], k: usize) -> [u16; 32] {
    let mut t = [0u16; 32];
    let mut x = 0;
    while x < 32 {
        let (i, w) = (x / 8, x % 8);
        t[x] = perm[4 * (2 * k + w / 4) + i] as u16;
        x += 1;
    }
    t
}
static CRUMBS_PACK_PICK: [[u16; 32]; 2] = [pack_pick(CRUMBS_PERM, 0), pack_pick(CRUMBS_PERM, 1)];

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

/// The lane order of the dot kernel for one low-bit layout: vector `j` of a block holds the
/// 16-weight halves `perm[4j..4j + 4]` (one per 128-bit lane), the order in which they come
/// out of one 64-byte load of the block's low bits with a shift and a mask. The activations are
/// permuted to match once per vector (`Kernels::act_perm`), so no index bytes move.
struct Order {
    perm: [u8; 16],
    /// `vptestmb` masks for `High::Bit`: byte `k` = `1 << ib32` of lane `k / 16`'s half.
    hbit: [[u8; 64]; 4],
    /// `vpsllvw` counts for `High::Bit`: word `w` = `7 - ib32` of lane `w / 8`'s half, which
    /// moves bit `ib32` of both bytes of the word to their sign bits.
    hsll: [[u16; 32]; 4],
    /// `vpsrlvw` counts for `High::Crumb`: word `w` = `2 · (ib32 % 4)` of lane `w / 8`'s half.
    hshift: [[u16; 32]; 4],
    /// `vpshufb` control putting `L` of half `perm[4j + i]` at byte `4i + j`.
    lpick: [u8; 16],
}

const fn order(perm: [u8; 16]) -> Order {
    let mut o = Order { perm, hbit: [[0; 64]; 4], hsll: [[0; 32]; 4], hshift: [[0; 32]; 4], lpick: [0; 16] };
    let mut j = 0;
    while j < 4 {
        let mut i = 0;
        while i < 4 {
            o.lpick[4 * i + j] = perm[4 * j + i];
            i += 1;
        }
        let mut k = 0;
        while k < 64 {
            let ib32 = perm[4 * j + k / 16] / 2;
            o.hbit[j][k] = 1 << ib32;
            if k < 32 {
                o.hsll[j][k] = 7 - perm[4 * j + k / 8] as u16 / 2;
                o.hshift[j][k] = 2 * (perm[4 * j + k / 8] as u16 / 2 % 4);
            }
            k += 1;
        }
        j += 1;
    }
    o
}

/// `Low::Crumbs`: vector `j` = 2-bit field `j` of the 64 bytes (sub-blocks `j` and `4 + j`).
pub(crate) const CRUMBS_PERM: [u8; 16] = [0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15];
/// `Low::NibblesSplit`: vector `j` = nibble `j % 2` of bytes `64·(j/2)..` (one half of 4 sub-blocks).
pub(crate) const SPLIT_PERM: [u8; 16] = [0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15];
/// `Low::NibblesPaired`: vector `j` = nibble `j % 2` of bytes `64·(j/2)..` (2 sub-blocks).
pub(crate) const PAIRED_PERM: [u8; 16] = [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15];
/// A permutation of 16-byte groups as one of the 256 quants.
const fn expand(groups: [u8; 16]) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut p = 0;
    while p < 256 {
        t[p] = 16 * groups[p / 16] + (p % 16) as u8;
        p += 1;
    }
    t
}
/// The activation orders of the three layouts, as `Kernels::act_perm` takes them.
pub(crate) static CRUMBS_ACT: [u8; 256] = expand(CRUMBS_PERM);
pub(crate) static SPLIT_ACT: [u8; 256] = expand(SPLIT_PERM);
pub(crate) static PAIRED_ACT: [u8; 256] = expand(PAIRED_PERM);
static CRUMBS_ORDER: Order = order(CRUMBS_PERM);
static SPLIT_ORDER: Order = order(SPLIT_PERM);
static PAIRED_ORDER: Order = order(PAIRED_PERM);

#[inline(always)]
fn order_of(l: &Layout) -> &'static Order {
    match l.low {
        Low::Crumbs { .. } => &CRUMBS_ORDER,
        Low::NibblesSplit { .. } => &SPLIT_ORDER,
        Low::NibblesPaired { .. } => &PAIRED_ORDER,
    }
}

/// The activation order of the AVX-512 dot of a K type (the halves' permutation, see [`Order`]);
/// IQ4_KS and IQ4_KSS, whose dots work on the split nibble layout the same way, share IQ4_K's.
pub fn act_perm(t: QType) -> &'static [u8; 256] {
    let f = match t {
        QType::IQ4KS | QType::IQ4KSS => &k::IQ4K,
        QType::IQ2K => &k::IQ2K,
        QType::IQ3K => &k::IQ3K,
        QType::IQ4K => &k::IQ4K,
        QType::IQ5K => &k::IQ5K,
        _ => &k::IQ6K,
    };
    match f.layout.low {
        Low::Crumbs { .. } => &CRUMBS_ACT,
        Low::NibblesSplit { .. } => &SPLIT_ACT,
        Low::NibblesPaired { .. } => &PAIRED_ACT,
    }
}

/// 64 bytes whose four 128-bit lanes are the 16-byte pieces of `b` at `off[i]`, with single
/// broadcasts where the pieces repeat (as they do for every layout of the K family).
#[inline(always)]
unsafe fn lanes_at(b: &[u8], off: [usize; 4]) -> __m512i {
    if off[2] == off[0] && off[3] == off[1] && off[1] == off[0] + 16 {
        _mm512_broadcast_i64x4(_mm256_loadu_si256(b[off[0]..off[0] + 32].as_ptr().cast()))
    } else if off[1] == off[0] && off[2] == off[0] && off[3] == off[0] {
        _mm512_broadcast_i32x4(_mm_loadu_si128(b[off[0]..off[0] + 16].as_ptr().cast()))
    } else {
        let mut v = [_mm_setzero_si128(); 4];
        for (vi, &o) in v.iter_mut().zip(&off) {
            *vi = _mm_loadu_si128(b[o..o + 16].as_ptr().cast());
        }
        let lo = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(v[0]), v[1]);
        let hi = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(v[2]), v[3]);
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
    }
}

/// `High::Bit`: which of the 64 weights of vector `j` (lane order `o`) have their high index bit
/// set in the `qh` bytes of block `b`. `by_shift`: the mask by a shift and the sign bits
/// (`vpsllvw`, `vpmovb2m`) rather than a `vptestmb`, which takes Intel's shuffle port: IQ5_K's
/// dot 13.3-15.4 -> 12.3 µs on an Intel Xeon; IQ3_K's, whose masked `vpermb` is on that port
/// anyway, lost 8% that way and keeps the test.
#[inline(always)]
unsafe fn high_bits(o: &Order, b: &[u8], qh: usize, j: usize, by_shift: bool) -> __mmask64 {
    let h = lanes_at(b, std::array::from_fn(|i| qh + 16 * (o.perm[4 * j + i] as usize % 2)));
    if by_shift {
        _mm512_movepi8_mask(_mm512_sllv_epi16(h, _mm512_loadu_si512(o.hsll[j].as_ptr().cast())))
    } else {
        _mm512_test_epi8_mask(h, _mm512_loadu_si512(o.hbit[j].as_ptr().cast()))
    }
}

/// The 64 grid indices of vector `j` of block `b` in the lane order `o`.
#[inline(always)]
unsafe fn lanes64(f: &Format, o: &Order, b: &[u8], j: usize) -> __m512i {
    let (off, shift, mask) = match f.layout.low {
        Low::Crumbs { qs } => (qs, 2 * j, 3),
        Low::NibblesSplit { qs } | Low::NibblesPaired { qs } => (qs + 64 * (j / 2), 4 * (j % 2), 15),
    };
    let q = _mm512_loadu_si512(b[off..off + 64].as_ptr().cast());
    let idx = _mm512_and_si512(_mm512_srl_epi16(q, _mm_cvtsi32_si128(shift as i32)), _mm512_set1_epi8(mask));
    let half = |i: usize| o.perm[4 * j + i] as usize;
    match f.layout.high {
        High::None => idx,
        High::Bit { qh, bit } => _mm512_mask_add_epi8(idx, high_bits(o, b, qh, j, true), idx, _mm512_set1_epi8(1 << bit)),
        High::Crumb { qh } => {
            let h = lanes_at(b, std::array::from_fn(|i| qh + 32 * (half(i) / 8) + 16 * (half(i) % 2)));
            let t = _mm512_srlv_epi16(h, _mm512_loadu_si512(o.hshift[j].as_ptr().cast()));
            // idx | ((t << 4) & 0x30)
            _mm512_ternarylogic_epi32::<0xF8>(idx, _mm512_slli_epi16::<4>(t), _mm512_set1_epi8(0x30))
        }
    }
}

/// The dot product takes its activations in the lane order of [`Order`] and looks every weight
/// up in the plain table half (+ 128); it accounts for the shifted half through the Q8_K block
/// sums: the shifted half is the plain one + `δ` (FORMATS.md §3), so a half-block with its
/// `extra` bit set adds `δ · L · Σy` — together with the bias, `Σ_h L_h · (128 − δ·s_h) · Σy_h`
/// comes off the VNNI sums (the block sums and `extra` stay in Q8_K order).
///
///
/// `lookup` picks how the grid values are looked up ([`Lookup`]); the values are the same.
#[inline(always)]
unsafe fn dot<const C: usize>(f: &Format, t: &Tables<C>, lookup: Lookup, src: &[u8], y: &[u8]) -> f32 {
    let o = order_of(&f.layout);
    let half = f.values.len() / 2;
    let delta = (f.values[half] as i16) - (f.values[0] as i16);
    let tab: [__m512i; C] = std::array::from_fn(|c| _mm512_loadu_si512(t.biased[0][c].as_ptr().cast()));
    let vt: [__m512i; 4] = match lookup {
        Lookup::Quarters => [_mm512_setzero_si512(); 4],
        Lookup::Grid64(g) => [_mm512_loadu_si512(g.as_ptr().cast()); 4],
        Lookup::CrumbsHigh([c, _]) | Lookup::Crumbs16(c) => std::array::from_fn(|j| _mm512_loadu_si512(c[j].as_ptr().cast())),
    };
    let small = matches!(lookup, Lookup::Crumbs16(_));
    let bias = if small { 32 } else { 128 };
    let pick: [__m512i; 2] = std::array::from_fn(|k| _mm512_loadu_si512(CRUMBS_PACK_PICK[k].as_ptr().cast()));
    let vt_high: [__m512i; 4] = match lookup {
        Lookup::CrumbsHigh([_, c]) => std::array::from_fn(|j| _mm512_loadu_si512(c[j].as_ptr().cast())),
        _ => [_mm512_setzero_si512(); 4],
    };
    let lpick = _mm_loadu_si128(o.lpick.as_ptr().cast());
    let (off_plain, off_shifted) = (_mm256_set1_epi16(bias), _mm256_set1_epi16(bias - delta));
    sum_blocks!(src, f.layout.bytes, y, |b, yb| {
        let extra = read_u16(b, 2);
        let l = levels16(f, b);
        // (a loop, not a closure: closures do not inherit the target features)
        let mut p = [_mm512_setzero_si512(); 4];
        for (j, pj) in p.iter_mut().enumerate() {
            let v = match lookup {
                Lookup::Quarters => plain64(&tab, lanes64(f, o, b, j)),
                Lookup::Grid64(_) => _mm512_permutexvar_epi8(lanes64(f, o, b, j), vt[0]),
                Lookup::CrumbsHigh(_) | Lookup::Crumbs16(_) => {
                    let Low::Crumbs { qs } = f.layout.low else { unreachable!() };
                    let q = _mm512_loadu_si512(b[qs..qs + 64].as_ptr().cast());
                    let q = if j < 3 { q } else { _mm512_srli_epi16::<2>(q) };
                    let v = _mm512_permutexvar_epi8(q, vt[j]);
                    match (lookup, f.layout.high) {
                        (Lookup::CrumbsHigh(_), High::Bit { qh, .. }) => _mm512_mask_permutexvar_epi8(v, high_bits(o, b, qh, j, false), q, vt_high[j]),
                        _ => v,
                    }
                }
            };
            let yv = _mm512_loadu_si512(yb[q8k::QS + 64 * j..q8k::QS + 64 * j + 64].as_ptr().cast());
            *pj = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, yv);
        }
        // Σ_h L_h · (bias − δ·s_h) · Σy_h from the 16 block sums
        let off = _mm256_mask_blend_epi16(extra, off_plain, off_shifted);
        let bs = _mm256_loadu_si256(yb[q8k::BSUMS..q8k::BSUMS + 32].as_ptr().cast());
        let l16 = _mm256_cvtepi8_epi16(l);
        let corr = _mm512_zextsi256_si512(_mm256_madd_epi16(_mm256_mullo_epi16(l16, off), bs));
        let s = if small {
            // the sums start at -corr; each word of a pack is a dword of p[2k] or p[2k + 1]
            let l16 = _mm512_castsi256_si512(l16);
            let mut s = _mm512_sub_epi32(_mm512_setzero_si512(), corr);
            for k in 0..2 {
                let x = _mm512_packs_epi32(p[2 * k], p[2 * k + 1]);
                s = _mm512_dpwssd_epi32(s, x, _mm512_permutexvar_epi16(pick[k], l16));
            }
            s
        } else {
            // the 4 dwords of each half summed, transposed: lane i, dword j = half `perm[4j + i]`
            let h = transpose_sum4(&p);
            _mm512_sub_epi32(_mm512_mullo_epi32(h, _mm512_cvtepi8_epi32(_mm_shuffle_epi8(l, lpick))), corr)
        };
        (s, block_d(b) * read_f32(yb, 0))
    })
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
                dot(&$fmt, &$tables, Lookup::Quarters, src, y)
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

/// Declares the dot of a type that looks its grid up by `vpermb` (IQ6_K: the 64-entry half;
/// IQ2_K and IQ3_K: their crumbs straight from the index bytes; cargo bench dot/…: see
/// BENCHMARKS.md).
macro_rules! vbmi_dot {
    ($fmt:path, $tables:ident, $lookup:expr, $dot:ident, $name:literal) => {
        #[doc = concat!($name, " · Q8_K with one `vpermb` a lookup (needs VNNI and VBMI).")]
        pub fn $dot(src: &[u8], y: &[u8]) -> f32 {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
            unsafe fn imp(src: &[u8], y: &[u8]) -> f32 {
                dot(&$fmt, &$tables, $lookup, src, y)
            }
            // SAFETY: handed out only when AVX-512 F/BW/VL, VNNI, VBMI and F16C are present.
            unsafe { imp(src, y) }
        }
    };
}

vbmi_dot!(k::IQ6K, IQ6_T, Lookup::Grid64(&IQ6_FLAT), iq6_k_dot_vbmi, "IQ6_K");
vbmi_dot!(k::IQ2K, IQ2_T, Lookup::Crumbs16(&IQ2_CRUMBS32), iq2_k_dot_vbmi, "IQ2_K");
vbmi_dot!(k::IQ3K, IQ3_T, Lookup::CrumbsHigh(&IQ3_CRUMBS), iq3_k_dot_vbmi, "IQ3_K");
