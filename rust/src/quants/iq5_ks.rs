//! IQ5_KS (FORMATS.md §6.3, §9.7): 5.25 bpw, the 5-bit sibling of IQ4_KS.
//!
//! Every row starts with an f32 row scale `D`. Per 32 weights a scale byte holds a 7-bit odd
//! integer scale `L = (b & 0xFE) - 127` and, in bit 0, the choice of the plain or the shifted
//! (plain + 2) half of the iq5nl grid. Weight `t` of sub-block `ib` decodes to `(D·L_ib)·T[q]`.
//!
//! Block (168 bytes): `scales[8]`, `qs[128]`, `qh[32]`. The 5-bit index of weight `t` of
//! sub-block `ib` is nibble `ib % 2` of `qs[32·(ib/2) + t]` plus bit `ib` of `qh[t]` as bit 4
//! (IQ5_K's layout).

use super::common::{
    fma_dispatch, fmadd, importance, nearest_int, read_f32, shift_search, sigma2, with_sanitized_imatrix, DefaultWeight, Grid,
};
use super::q8k;
use super::IntBlock;
use crate::registry::QK_K;
use crate::tables::IQ5NL_VALUES;

/// Bytes of an IQ5_KS block.
pub const BLOCK: usize = 168;
/// Bytes of the row header (f32 row scale).
pub const ROW_META: usize = 4;
/// Offset of `qs` in a block.
pub const QS: usize = 8;
/// Offset of `qh` in a block.
pub const QH: usize = 136;

static PLAIN: Grid<32> = Grid::new(&IQ5NL_VALUES);
static SHIFTED: Grid<32> = Grid::new(&{
    let mut t = [0i8; 32];
    let mut i = 0;
    while i < 32 {
        t[i] = IQ5NL_VALUES[32 + i];
        i += 1;
    }
    t
});

/// The row scale stored in a row's header.
#[inline(always)]
pub fn row_scale(src: &[u8]) -> f32 {
    read_f32(src, 0)
}

/// Integer scale `L` of sub-block `ib` from its scale byte: `(b & 0xFE) - 127`.
#[inline(always)]
pub fn scale_of(b: &[u8], ib: usize) -> i32 {
    (b[ib] & 0xFE) as i32 - 127
}

/// The 32-entry table of a sub-block: plain or shifted half by bit 0 of its scale byte.
#[inline(always)]
fn table_of(byte: u8) -> &'static [i8] {
    let off = 32 * (byte & 1) as usize;
    &IQ5NL_VALUES[off..off + 32]
}

/// The 5-bit index of weight `t` of sub-block `ib`.
#[inline(always)]
fn index(b: &[u8], ib: usize, t: usize) -> usize {
    let lo = (b[QS + 32 * (ib / 2) + t] >> (4 * (ib % 2))) & 15;
    let hi = (b[QH + t] >> ib) & 1;
    (lo | hi << 4) as usize
}

#[inline(always)]
fn quantize_row_body(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    const NTRY: i32 = 5;
    let nblock = x.len() / QK_K;
    out.fill(0);
    let mut scales = vec![0f32; nblock * 8];
    let mut w = [0f32; 32];
    let mut amax_scale = 0f32;
    for ibl in 0..nblock {
        let xbl = &x[QK_K * ibl..QK_K * (ibl + 1)];
        let s2 = sigma2(xbl, 2.0);
        let blk = ROW_META + BLOCK * ibl;
        for ib in 0..8 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::Square, &mut w);
            let (s, shifted) = shift_search(xb, &w, &PLAIN, &SHIFTED, -PLAIN.values[0], NTRY, 1.0);
            out[blk + ib] = shifted as u8;
            scales[8 * ibl + ib] = s;
            amax_scale = amax_scale.max(s.abs());
        }
    }
    let d = amax_scale / 127.0;
    out[..4].copy_from_slice(&d.to_le_bytes());
    if d == 0.0 {
        return;
    }
    let id = 1.0 / d;
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for ibl in 0..nblock {
        let xbl = &x[QK_K * ibl..QK_K * (ibl + 1)];
        let s2 = sigma2(xbl, 2.0);
        let blk = ROW_META + BLOCK * ibl;
        for ib in 0..8 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            let l2 = nearest_int(0.5 * fmadd(id, scales[8 * ibl + ib], 127.0)).clamp(0, 127) << 1;
            out[blk + ib] |= l2 as u8;
            let g = if out[blk + ib] & 1 != 0 { &SHIFTED } else { &PLAIN };
            let l = l2 - 127;
            let dl = d * l as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::Square, &mut w);
            let mut al = [0f32; 32];
            for j in 0..32 {
                al[j] = idl * xb[j];
            }
            let mut idx = [0u8; 32];
            g.best_indices(&al, &mut idx);
            let (qs, qh) = out[blk + QS..blk + BLOCK].split_at_mut(QH - QS);
            let qs = &mut qs[32 * (ib / 2)..32 * (ib / 2) + 32];
            for j in 0..32 {
                let i = idx[j] & 31;
                qs[j] |= (i & 15) << (4 * (ib % 2));
                qh[j] |= (i >> 4) << ib;
                let q = g.values[i as usize] * l as f32;
                sumqx = fmadd(w[j] * q, xb[j], sumqx);
                sumq2 = fmadd(w[j] * q, q, sumq2);
            }
        }
    }
    if sumq2 > 0.0 {
        out[..4].copy_from_slice(&(sumqx / sumq2).to_le_bytes());
    }
}

fma_dispatch!(fn quantize_row_fma(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) => quantize_row_body);

/// Quantizes one row to IQ5_KS. `imatrix`: one importance weight per column, or none.
pub fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, out: &mut [u8]) {
    with_sanitized_imatrix(x, imatrix, 32, |qw| quantize_row_fma(x, qw, out));
}

/// Decodes one IQ5_KS row.
pub fn dequantize_row(src: &[u8], out: &mut [f32]) {
    let d = row_scale(src);
    for (b, ob) in src[ROW_META..].chunks_exact(BLOCK).zip(out.chunks_exact_mut(QK_K)) {
        for ib in 0..8 {
            let dl = d * scale_of(b, ib) as f32;
            let t = table_of(b[ib]);
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
        let t = table_of(b[ib]);
        let y = &q8[32 * ib..32 * ib + 32];
        let si: i32 = (0..32).map(|j| t[index(b, ib, j)] as i32 * (y[j] as i8) as i32).sum();
        s += scale_of(b, ib) * si;
    }
    s
}

/// Dot product of an IQ5_KS row with a Q8_K row (§5): `Σ_b (D·d8_b)·S_b`, in block order.
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
        let t = table_of(b[ib]);
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
        test_util::check_dot_and_zero_row(QType::IQ5KS);
    }
}
