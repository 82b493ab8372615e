//! The matrix multiply's tile decoder for the one-row types on AVX-512: 4 rows at a time, each
//! row's super-block decoded to registers by the type's own decoder (grid values in weight
//! order, sub-block scales, block factor), then transposed 4 × 4 dwords per 128-bit lane into the
//! tile's `[slot][row][4 weights]` layout. It fills the same [`PackedRows`] as the block-by-block
//! path through the scalar `decode_int`, which tests it. Every `unsafe fn` requires AVX-512
//! F/BW/VL and VNNI at run time.

use std::arch::x86_64::*;

use super::{lane128, sum_lanes};
use crate::gemm::{PackedRows, TILE_ROWS};

/// One row's super-block in registers: `v[j]` = grid values of weights `64j..64j + 64`, `l` =
/// the 16 sub-block scales (i32), `d` = the block's float factor.
pub struct RowBlock {
    pub v: [__m512i; 4],
    pub l: __m512i,
    pub d: f32,
}

/// Per 128-bit lane, the 4 × 4 dword transpose of `a` (rows of the result: dword `i` of each of
/// `a[0..4]`).
#[inline(always)]
unsafe fn transpose4(a: [__m512i; 4]) -> [__m512i; 4] {
    let t0 = _mm512_unpacklo_epi32(a[0], a[1]);
    let t1 = _mm512_unpacklo_epi32(a[2], a[3]);
    let t2 = _mm512_unpackhi_epi32(a[0], a[1]);
    let t3 = _mm512_unpackhi_epi32(a[2], a[3]);
    [_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1), _mm512_unpacklo_epi64(t2, t3), _mm512_unpackhi_epi64(t2, t3)]
}

/// Stores 128-bit lane `lane` of `v` at `dst[..16]` (bytes).
#[inline(always)]
unsafe fn store_lane(v: __m512i, lane: usize, dst: *mut u8) {
    _mm_storeu_si128(dst.cast(), lane128(v, lane));
}

/// Dword indices `4j + m / 4`: the sub-block scale of each dword of `v[j]`.
static SCALE_OF_DWORD: [[i32; 16]; 4] = {
    let mut t = [[0i32; 16]; 4];
    let mut j = 0;
    while j < 4 {
        let mut m = 0;
        while m < 16 {
            t[j][m] = (4 * j + m / 4) as i32;
            m += 1;
        }
        j += 1;
    }
    t
};

/// Fills the tile from `nrows <= TILE_ROWS` consecutive rows of `rs` bytes at `src`;
/// `decode(row, b)` gives super-block `b` of a row (the row's bytes, metadata included).
#[inline(always)]
pub unsafe fn fill_rows(w: &mut PackedRows, src: &[u8], rs: usize, nrows: usize, decode: impl Fn(&[u8], usize) -> RowBlock) {
    let z = _mm512_setzero_si512();
    let ones = _mm512_set1_epi8(1);
    for grp in 0..TILE_ROWS / 4 {
        for b in 0..w.blocks {
            let none = || RowBlock { v: [z; 4], l: z, d: 0.0 };
            let mut rb = [none(), none(), none(), none()];
            for (r, x) in rb.iter_mut().enumerate() {
                let row = 4 * grp + r;
                if row < nrows {
                    *x = decode(&src[row * rs..(row + 1) * rs], b);
                }
            }
            let wb = w.w[b].as_mut_ptr().cast::<u8>();
            let mut corr = [z; 4];
            for j in 0..4 {
                let o = transpose4([rb[0].v[j], rb[1].v[j], rb[2].v[j], rb[3].v[j]]);
                for (i, oi) in o.into_iter().enumerate() {
                    for lane in 0..4 {
                        // weights 64j + 16·lane + 4i + 0..4 of the 4 rows: slot 16j + 4·lane + i
                        store_lane(oi, lane, wb.add((16 * j + 4 * lane + i) * 4 * TILE_ROWS + 16 * grp));
                    }
                }
                let pick = _mm512_loadu_si512(SCALE_OF_DWORD[j].as_ptr().cast());
                for (c, x) in corr.iter_mut().zip(&rb) {
                    let sums = _mm512_dpbusd_epi32(z, ones, x.v[j]);
                    *c = _mm512_add_epi32(*c, _mm512_mullo_epi32(sums, _mm512_permutexvar_epi32(pick, x.l)));
                }
            }
            // scales: dword s of each row's `l` to scales[s][row]
            let sc = w.scales[b].as_mut_ptr().cast::<u8>();
            let o = transpose4([rb[0].l, rb[1].l, rb[2].l, rb[3].l]);
            for (i, oi) in o.into_iter().enumerate() {
                for lane in 0..4 {
                    store_lane(oi, lane, sc.add(((4 * lane + i) * TILE_ROWS + 4 * grp) * 4));
                }
            }
            // corrections: 128 · the sum of each row's 16 dwords
            let c = transpose4(corr);
            let c4 = sum_lanes(_mm512_add_epi32(_mm512_add_epi32(c[0], c[1]), _mm512_add_epi32(c[2], c[3])));
            _mm_storeu_si128(w.corr[b][4 * grp..4 * grp + 4].as_mut_ptr().cast(), _mm_slli_epi32::<7>(c4));
            for (r, x) in rb.iter().enumerate() {
                w.d[b][4 * grp + r] = x.d;
            }
        }
    }
}
