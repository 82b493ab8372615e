//! IQ3_KS (FORMATS.md §6.5, §9.9): 3.1875 bpw, non-linear 3-bit grid, f16 row scale.
//!
//! Every row starts with an f16 row scale `D`. Per 32 weights a 5-bit integer scale
//! `L ∈ [-16, 15]` and a bit choosing the plain or the shifted (plain + 4) half of the iq3nl
//! grid; weight `t` of sub-block `ib` decodes to `(D·L_ib)·T[q]`.
//!
//! Block (102 bytes): `extra` (u16), `scales[4]`, `qs[64]`, `qh[32]`.
//! * scale: `L + 16` = nibble `ib / 4` of `scales[ib % 4]`, plus bit `ib` of `extra` as bit 4;
//! * grid half: bit `8 + ib` of `extra`;
//! * index: bits `2·(ib % 4)..` of `qs[32·(ib / 4) + t]` (2 low bits) and bit `ib` of `qh[t]`.

use half::f16;

use super::common::{
    fma_dispatch, fmadd, importance, nearest_int_mul, read_f32, read_u16, shift_search, sigma2, with_sanitized_imatrix,
    DefaultWeight, Grid,
};
use super::q8k;
use super::IntBlock;
use crate::registry::QK_K;
use crate::tables::IQ3NL_VALUES;

/// Bytes of an IQ3_KS block.
pub const BLOCK: usize = 102;
/// Bytes of the row header (f16 row scale).
pub const ROW_META: usize = 2;
const SCALES: usize = 2;
/// Offset of `qs` in a block.
pub const QS: usize = 6;
/// Offset of `qh` in a block.
pub const QH: usize = 70;

static PLAIN: Grid<8> = Grid::new(&IQ3NL_VALUES);
static SHIFTED: Grid<8> = Grid::new(&{
    let mut t = [0i8; 8];
    let mut i = 0;
    while i < 8 {
        t[i] = IQ3NL_VALUES[8 + i];
        i += 1;
    }
    t
});

/// The row scale stored in a row's header.
#[inline(always)]
pub fn row_scale(src: &[u8]) -> f32 {
    f16::from_bits(read_u16(src, 0)).to_f32()
}

/// Integer scale `L` of sub-block `ib`.
#[inline(always)]
pub fn scale_of(b: &[u8], ib: usize) -> i32 {
    let extra = read_u16(b, 0);
    let lo = (b[SCALES + ib % 4] >> (4 * (ib / 4))) & 15;
    (lo as i32 | (((extra >> ib) & 1) as i32) << 4) - 16
}

/// The 8-entry table of sub-block `ib`.
#[inline(always)]
fn table_of(b: &[u8], ib: usize) -> &'static [i8] {
    let off = 8 * ((read_u16(b, 0) >> (8 + ib)) & 1) as usize;
    &IQ3NL_VALUES[off..off + 8]
}

/// The 3-bit index of weight `t` of sub-block `ib`.
#[inline(always)]
fn index(b: &[u8], ib: usize, t: usize) -> usize {
    let lo = (b[QS + 32 * (ib / 4) + t] >> (2 * (ib % 4))) & 3;
    let hi = (b[QH + t] >> ib) & 1;
    (lo | hi << 2) as usize
}

#[inline(always)]
fn quantize_row_body(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    const NTRY: i32 = 5;
    let nblock = x.len() / QK_K;
    out.fill(0);
    let mut scales = vec![0f32; nblock * 8];
    let mut w = [0f32; 32];
    let (mut amax_scale, mut max_scale) = (0f32, 0f32);
    for ibl in 0..nblock {
        let xbl = &x[QK_K * ibl..QK_K * (ibl + 1)];
        let s2 = sigma2(xbl, 2.0);
        let blk = ROW_META + BLOCK * ibl;
        let mut shifts = 0u16;
        for ib in 0..8 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::Square, &mut w);
            let (s, shifted) = shift_search(xb, &w, &PLAIN, &SHIFTED, -PLAIN.values[0], NTRY, 1.0);
            shifts |= (shifted as u16) << (8 + ib);
            scales[8 * ibl + ib] = s;
            if s.abs() > amax_scale {
                amax_scale = s.abs();
                max_scale = s;
            }
        }
        out[blk..blk + 2].copy_from_slice(&shifts.to_le_bytes());
    }
    let d = -max_scale / 16.0;
    out[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
    if d == 0.0 {
        return;
    }
    let id = 1.0 / d;
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for ibl in 0..nblock {
        let xbl = &x[QK_K * ibl..QK_K * (ibl + 1)];
        let s2 = sigma2(xbl, 2.0);
        let b = &mut out[ROW_META + BLOCK * ibl..ROW_META + BLOCK * (ibl + 1)];
        for ib in 0..8 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            let g = if (read_u16(b, 0) >> (8 + ib)) & 1 != 0 { &SHIFTED } else { &PLAIN };
            let l = nearest_int_mul(id, scales[8 * ibl + ib]).clamp(-16, 15);
            let ul = (l + 16) as u8;
            b[SCALES + ib % 4] |= (ul & 15) << (4 * (ib / 4));
            b[0] |= (ul >> 4) << ib; // extra bit ib
            let dl = d * l as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::Square, &mut w);
            let mut al = [0f32; 32];
            for j in 0..32 {
                al[j] = idl * xb[j];
            }
            let mut idx = [0u8; 32];
            g.best_indices(&al, &mut idx);
            for j in 0..32 {
                let i = idx[j] & 7;
                b[QS + 32 * (ib / 4) + j] |= (i & 3) << (2 * (ib % 4));
                b[QH + j] |= (i >> 2) << ib;
                let q = g.values[i as usize] * l as f32;
                sumqx = fmadd(w[j] * q, xb[j], sumqx);
                sumq2 = fmadd(w[j] * q, q, sumq2);
            }
        }
    }
    if sumq2 > 0.0 {
        out[..2].copy_from_slice(&f16::from_f32(sumqx / sumq2).to_bits().to_le_bytes());
    }
}

fma_dispatch!(fn quantize_row_fma(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) => quantize_row_body);

/// Quantizes one row to IQ3_KS. `imatrix`: one importance weight per column, or none.
pub fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, out: &mut [u8]) {
    with_sanitized_imatrix(x, imatrix, 32, |qw| quantize_row_fma(x, qw, out));
}

/// Decodes one IQ3_KS row.
pub fn dequantize_row(src: &[u8], out: &mut [f32]) {
    let d = row_scale(src);
    for (b, ob) in src[ROW_META..].chunks_exact(BLOCK).zip(out.chunks_exact_mut(QK_K)) {
        for ib in 0..8 {
            let dl = d * scale_of(b, ib) as f32;
            let t = table_of(b, ib);
            for (j, o) in ob[32 * ib..32 * ib + 32].iter_mut().enumerate() {
                *o = dl * t[index(b, ib, j)] as f32;
            }
        }
    }
}

/// Exact integer block sum `S_b = Σ_ib L_ib Σ_t T[q]·q8` of one super-block.
#[inline(always)]
fn block_sum(b: &[u8], yb: &[u8]) -> i32 {
    let q8 = &yb[q8k::QS..q8k::QS + QK_K];
    let mut s = 0i32;
    for ib in 0..8 {
        let t = table_of(b, ib);
        let y = &q8[32 * ib..32 * ib + 32];
        let si: i32 = (0..32).map(|j| t[index(b, ib, j)] as i32 * (y[j] as i8) as i32).sum();
        s += scale_of(b, ib) * si;
    }
    s
}

/// Dot product of an IQ3_KS row with a Q8_K row (§5): `Σ_b (D·d8_b)·S_b`, in block order.
pub fn vec_dot_q8_k(src: &[u8], y: &[u8]) -> f32 {
    let d = row_scale(src);
    let mut acc = 0f32;
    for (b, yb) in src[ROW_META..].chunks_exact(BLOCK).zip(y.chunks_exact(q8k::BLOCK_BYTES)) {
        acc += (d * read_f32(yb, 0)) * block_sum(b, yb) as f32;
    }
    acc
}

/// Integer form of super-block `block` of a row (for the matrix multiply).
pub fn decode_int(src: &[u8], block: usize, out: &mut IntBlock) {
    let off = ROW_META + BLOCK * block;
    let b = &src[off..off + BLOCK];
    out.d = row_scale(src);
    for ib in 0..8 {
        let l = scale_of(b, ib) as i16;
        out.scales[2 * ib] = l;
        out.scales[2 * ib + 1] = l;
        let t = table_of(b, ib);
        for (j, v) in out.values[32 * ib..32 * ib + 32].iter_mut().enumerate() {
            *v = t[index(b, ib, j)];
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::quants::test_util;
    use crate::registry::QType;

    #[test]
    fn dot_equals_dequantized_product() {
        test_util::check_dot_and_zero_row(QType::IQ3KS);
    }
}
