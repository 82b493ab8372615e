//! IQ2_KS (FORMATS.md §6.4, §9.3): 2.1875 bpw, non-linear 2-bit grid, f16 row scale.
//!
//! Every row starts with an f16 row scale `D`. Per 32 weights a 5-bit integer scale
//! `L ∈ [-16, 15]` and a bit choosing the plain or the shifted (plain + 5) half of the iq2nl
//! grid; weight `t` of sub-block `ib` decodes to `(D·L_ib)·T[q]`.
//!
//! Block (70 bytes): `extra` (u16), `scales[4]`, `qs[64]`.
//! * scale: `L + 16` = nibble `ib % 2` of `scales[ib / 2]`, plus bit `8 + ib` of `extra` as bit 4;
//! * grid half: bit `ib` of `extra`;
//! * index: bits `2·(ib % 4)..` of `qs[32·(ib / 4) + t]`.
//!
//! Quantizing (§9.3): the reference has two quantizers, an exhaustive one (it made the golden
//! bytes: per sub-block every split of the sorted weights into four runs mapped to the four grid
//! values, ascending or descending, plain or shifted; then one `make_qx_quants` over all
//! sub-block scales of the row; row scale ×1.03) and a faster block search (the default of its
//! quantize tool). Neither is better on every row, so iqrs quantizes each row with four recipes —
//! the exhaustive one bit for bit, the block search, and both with a ±1 refinement of the
//! integer scales — and keeps the one with the smallest imatrix-weighted error. The exhaustive
//! search evaluates eight split points at a time and replays them in the reference's order only
//! when one of the eight can beat the best so far, which gives exactly the reference's choice.

use half::f16;

use super::common::{
    fma_dispatch, fmadd, importance, make_qx_quants, read_f32, read_u16, shift_search, sigma2, sorted_positions, with_sanitized_imatrix, Best,
    DefaultWeight, Grid,
};
use super::q8k;
use super::IntBlock;
use crate::registry::QK_K;
use crate::tables::IQ2NL_VALUES;

/// Bytes of an IQ2_KS block.
pub const BLOCK: usize = 70;
/// Bytes of the row header (f16 row scale).
pub const ROW_META: usize = 2;
const SCALES: usize = 2;
/// Offset of `qs` in a block.
pub const QS: usize = 6;

static PLAIN: Grid<4> = Grid::new(&IQ2NL_VALUES);
static SHIFTED: Grid<4> = Grid::new(&[IQ2NL_VALUES[4], IQ2NL_VALUES[5], IQ2NL_VALUES[6], IQ2NL_VALUES[7]]);

/// The row scale stored in a row's header.
#[inline(always)]
pub fn row_scale(src: &[u8]) -> f32 {
    f16::from_bits(read_u16(src, 0)).to_f32()
}

/// Integer scale `L` of sub-block `ib`.
#[inline(always)]
pub fn scale_of(b: &[u8], ib: usize) -> i32 {
    let lo = (b[SCALES + ib / 2] >> (4 * (ib % 2))) & 15;
    (lo as i32 | (((read_u16(b, 0) >> (8 + ib)) & 1) as i32) << 4) - 16
}

/// The 4-entry table of sub-block `ib`.
#[inline(always)]
fn table_of(b: &[u8], ib: usize) -> &'static [i8] {
    let off = 4 * ((read_u16(b, 0) >> ib) & 1) as usize;
    &IQ2NL_VALUES[off..off + 4]
}

/// The 2-bit index of weight `t` of sub-block `ib`.
#[inline(always)]
fn index(b: &[u8], ib: usize, t: usize) -> usize {
    ((b[QS + 32 * (ib / 4) + t] >> (2 * (ib % 4))) & 3) as usize
}

/// Largest first split point `i1` and smallest last split point `i3` the search considers.
pub(crate) const MAX_I1: usize = 24;
pub(crate) const MIN_I3: usize = 8;

/// The four value orders a split is tried with, in the reference's order: the runs of the
/// sorted weights get `v[0], v[1], v[2], v[3]` (plain ascending, shifted ascending, plain
/// descending, shifted descending); the flag says whether the order uses the shifted half.
const ORDERS: [([i8; 4], bool); 4] = {
    let t = IQ2NL_VALUES;
    [([t[0], t[1], t[2], t[3]], false), ([t[4], t[5], t[6], t[7]], true), ([t[3], t[2], t[1], t[0]], false), ([t[7], t[6], t[5], t[4]], true)]
};

/// `(Σwxq, Σwq²)` of a split whose first two runs contribute `head` and whose third and last
/// runs have sums `(cx, cw)` and `(ex, ew)` of `w·x` and `w`, for values `v` — in the
/// reference's evaluation order (its left-to-right sums contracted to fused multiply-adds).
#[inline(always)]
fn split_sums(head: (f32, f32), cx: f32, cw: f32, ex: f32, ew: f32, v: &[f32; 4]) -> (f32, f32) {
    (fmadd(ex, v[3], fmadd(cx, v[2], head.0)), fmadd(ew * v[3], v[3], fmadd(cw * v[2], v[2], head.1)))
}

/// The four value orders as floats, in [`ORDERS`]' order.
#[inline(always)]
fn order_values() -> [[f32; 4]; 4] {
    std::array::from_fn(|o| ORDERS[o].0.map(|v| v as f32))
}

/// The exhaustive split search of one 32-weight sub-block (§9.3 slow path, §9.2 step 1):
/// returns the least-squares scale of the best split and whether it uses the shifted half.
#[inline(always)]
fn split_search(xb: &[f32], w: &[f32; 32]) -> (f32, bool) {
    let (sx, sw) = sorted_prefix_sums(xb, w);
    let vals = order_values();
    let (d, o) = match crate::arch::split32_kernel() {
        Some(kernel) => kernel(&sx, &sw, &vals),
        None => split_search_sums(&sx, &sw, &vals),
    };
    (d, ORDERS[o].1)
}

/// Prefix sums of `w` and `w·x` over the 32 weights sorted by (x, position).
#[inline(always)]
fn sorted_prefix_sums(xb: &[f32], w: &[f32; 32]) -> ([f32; 33], [f32; 33]) {
    let perm: [usize; 32] = sorted_positions(xb);
    let (mut sw, mut sx) = ([0f32; 33], [0f32; 33]);
    for (k, &j) in perm.iter().enumerate() {
        sw[k + 1] = sw[k] + w[j];
        sx[k + 1] = sx[k] + w[j] * xb[j];
    }
    (sx, sw)
}

/// The search of [`split_search`] over the prefix sums `sx` (Σw·x) and `sw` (Σw) of the sorted
/// weights and the value orders `vals`: the best scale and the order it takes. The scalar oracle
/// of `arch::split32_kernel`, which returns the same bits.
#[inline(always)]
pub(crate) fn split_search_sums(sx: &[f32; 33], sw: &[f32; 33], vals: &[[f32; 4]; 4]) -> (f32, usize) {
    // the sums of the last run, `[i3, 32)`, for every i3
    let (mut ew, mut ex) = ([0f32; 32], [0f32; 32]);
    for i3 in 0..32 {
        ew[i3] = sw[32] - sw[i3];
        ex[i3] = sx[32] - sx[i3];
    }
    let lanes: [f32; 32] = std::array::from_fn(|i| i as f32);
    let mut best = Best { d: 0.0, score: 0.0 };
    let mut best_o = 0;
    for i1 in 0..MAX_I1 {
        for i2 in i1..32 {
            let (a, b, aw, bw) = (sx[i1], sx[i2] - sx[i1], sw[i1], sw[i2] - sw[i1]);
            // the part of each order's sums that does not depend on i3
            let head: [(f32, f32); 4] = std::array::from_fn(|o| {
                let v = &vals[o];
                (fmadd(a, v[0], b * v[1]), fmadd(aw * v[0], v[0], bw * v[1] * v[1]))
            });
            let lo = i2.max(MIN_I3);
            // Can any split point i3 in lo..32 beat the best so far? (Exact: a candidate that
            // cannot beat the current best cannot beat a later, larger one either.)
            let mut hit = 0u32;
            for c in lo / 8..4 {
                for k in 8 * c..8 * c + 8 {
                    let (cx, cw) = (sx[k] - sx[i2], sw[k] - sw[i2]);
                    let live = lanes[k] >= lo as f32;
                    for o in 0..4 {
                        let (qx, q2) = split_sums(head[o], cx, cw, ex[k], ew[k], &vals[o]);
                        hit |= (live & (q2 > 0.0) & (qx * qx > best.score * q2)) as u32;
                    }
                }
            }
            if hit != 0 {
                // replay in the reference's order: split points, then orders
                for i3 in lo..32 {
                    let (cx, cw) = (sx[i3] - sx[i2], sw[i3] - sw[i2]);
                    for o in 0..4 {
                        let (qx, q2) = split_sums(head[o], cx, cw, ex[i3], ew[i3], &vals[o]);
                        if best.offer(qx, q2) {
                            best_o = o;
                        }
                    }
                }
            }
        }
    }
    (best.d, best_o)
}

/// How the float scales of a row's sub-blocks are found.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Search {
    /// The reference's exhaustive split search ([`split_search`]).
    Exhaustive,
    /// The reference's faster alternative: candidate scales `max/(T[0] + itry/2)`, `itry =
    /// -13..=13`, with the nearest grid values, on both halves and both signs.
    Block,
}

/// Whether and how pass 2 moves a sub-block's integer scale by one step where that lowers the
/// sub-block's weighted error.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Refine {
    /// Keep `make_qx_quants`' levels.
    No,
    /// Try one step down and one step up.
    Both,
    /// Try one step towards the sub-block's float scale (what the reference's fast path does).
    TowardScale,
}

/// The candidates every row is quantized with; the one with the smallest imatrix-weighted error
/// is kept (the first on ties). The first is the reference's exhaustive path, bit for bit (it
/// made the golden bytes), the last approximates its faster block-search path; the middle two
/// add the ±1 refinement and drop the 1.03 fudge. No single recipe is best on every row.
const RECIPES: [(Search, Refine, f32); 4] = [
    (Search::Exhaustive, Refine::No, 1.03),
    (Search::Exhaustive, Refine::Both, 1.0),
    (Search::Block, Refine::Both, 1.0),
    (Search::Block, Refine::TowardScale, 1.0),
];

/// Pass 1: the float scale, grid half and weight sum of every sub-block of the row.
#[inline(always)]
fn sub_block_scales(x: &[f32], qw: Option<&[f32]>, search: Search, scales: &mut [f32], sumw: &mut [f32], out: &mut [u8]) {
    let mut w = [0f32; 32];
    for (ibl, xbl) in x.chunks_exact(QK_K).enumerate() {
        let s2 = sigma2(xbl, 1.5);
        let mut shifts = 0u16;
        for ib in 0..8 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::QuarterSigmaPlusSquare, &mut w);
            sumw[8 * ibl + ib] = w.iter().fold(0f32, |s, &v| s + v);
            let amax = xb.iter().fold(0f32, |m, &v| m.max(v.abs()));
            let (s, shifted) = match search {
                _ if amax < 1e-16 => (0.0, false),
                Search::Exhaustive => split_search(xb, &w),
                Search::Block => shift_search(xb, &w, &PLAIN, &SHIFTED, IQ2NL_VALUES[7] as f32, 13, 0.5),
            };
            scales[8 * ibl + ib] = s;
            shifts |= (shifted as u16) << ib;
        }
        let blk = ROW_META + BLOCK * ibl;
        out[blk..blk + 2].copy_from_slice(&shifts.to_le_bytes());
    }
}

/// `Σ w·(x - dl·T[q])²` with `q` the nearest grid index of every `x/dl` (`dl = 0`: all `q = 0`).
#[inline(always)]
fn sub_block_error(xb: &[f32], w: &[f32; 32], g: &Grid<4>, dl: f32, idx: &mut [u8; 32]) -> f32 {
    let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
    let mut al = [0f32; 32];
    for j in 0..32 {
        al[j] = idl * xb[j];
    }
    g.best_indices(&al, idx);
    if dl == 0.0 {
        idx.fill(0);
    }
    let mut e = 0f32;
    for j in 0..32 {
        let diff = fmadd(dl, g.values[idx[j] as usize & 3], -xb[j]);
        e = fmadd(w[j] * diff, diff, e);
    }
    e
}

/// Pass 2: one row scale for all sub-block scales (`make_qx_quants`), the integer scales
/// (optionally refined), the indices, and the final least-squares row scale times `fudge`.
#[inline(always)]
fn finish_row(x: &[f32], qw: Option<&[f32]>, scales: &[f32], sumw: &[f32], levels: &mut [i8], refine: Refine, fudge: f32, out: &mut [u8]) {
    let d = make_qx_quants(16, scales, sumw, levels);
    if d == 0.0 {
        return;
    }
    let mut w = [0f32; 32];
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for (ibl, xbl) in x.chunks_exact(QK_K).enumerate() {
        let s2 = sigma2(xbl, 1.5);
        let b = &mut out[ROW_META + BLOCK * ibl..ROW_META + BLOCK * (ibl + 1)];
        for ib in 0..8 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            let g = if (b[0] >> ib) & 1 != 0 { &SHIFTED } else { &PLAIN };
            let mut ls = levels[8 * ibl + ib] as i32;
            let mut idx = [0u8; 32];
            if refine != Refine::No || d * (ls - 16) as f32 != 0.0 {
                importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::QuarterSigmaPlusSquare, &mut w);
            }
            if refine != Refine::No {
                let dl = d * (ls - 16) as f32;
                let s = scales[8 * ibl + ib];
                let mut best = sub_block_error(xb, &w, g, dl, &mut idx);
                let mut trial = [0u8; 32];
                for cand in [ls - 1, ls + 1] {
                    let toward = if cand < ls { dl > s } else { dl < s };
                    if (0..32).contains(&cand) && (refine == Refine::Both || toward) {
                        let e = sub_block_error(xb, &w, g, d * (cand - 16) as f32, &mut trial);
                        if e < best {
                            (best, ls, idx) = (e, cand, trial);
                        }
                    }
                }
            }
            b[SCALES + ib / 2] |= ((ls & 15) as u8) << (4 * (ib % 2));
            b[1] |= ((ls >> 4) as u8) << ib; // extra bit 8 + ib
            let l = ls - 16;
            let dl = d * l as f32;
            if dl == 0.0 {
                continue;
            }
            if refine == Refine::No {
                let idl = 1.0 / dl;
                let mut al = [0f32; 32];
                for j in 0..32 {
                    al[j] = idl * xb[j];
                }
                g.best_indices(&al, &mut idx);
            }
            for j in 0..32 {
                let i = idx[j] & 3;
                b[QS + 32 * (ib / 4) + j] |= i << (2 * (ib % 4));
                let q = g.values[i as usize] * l as f32;
                sumqx = fmadd(w[j] * q, xb[j], sumqx);
                sumq2 = fmadd(w[j] * q, q, sumq2);
            }
        }
    }
    let d = fudge * if sumq2 > 0.0 { sumqx / sumq2 } else { d };
    out[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
}

/// `Σ m·(x - deq)²` of a quantized row, `m` the imatrix (1 without).
fn row_error(x: &[f32], imatrix: Option<&[f32]>, q: &[u8], deq: &mut [f32]) -> f64 {
    dequantize_row(q, deq);
    let mut e = 0f64;
    for (j, (&a, &b)) in x.iter().zip(deq.iter()).enumerate() {
        let m = imatrix.map_or(1.0, |im| im[j] as f64);
        e += m * (a as f64 - b as f64) * (a as f64 - b as f64);
    }
    e
}

/// Quantizes a row with every recipe and keeps the one with the smallest `Σ imatrix·(x - q)²`.
#[inline(always)]
fn quantize_row_body(x: &[f32], qw: Option<&[f32]>, imatrix: Option<&[f32]>, out: &mut [u8]) {
    let n = x.len() / 32;
    let (mut scales, mut sumw, mut levels) = (vec![0f32; n], vec![0f32; n], vec![0i8; n]);
    let (mut pass1, mut trial) = (vec![0u8; out.len()], vec![0u8; out.len()]);
    let mut deq = vec![0f32; x.len()];
    let mut best_err = f64::INFINITY;
    let mut searched = None;
    for (i, (search, refine, fudge)) in RECIPES.into_iter().enumerate() {
        if searched != Some(search) {
            pass1.fill(0);
            sub_block_scales(x, qw, search, &mut scales, &mut sumw, &mut pass1);
            searched = Some(search);
        }
        trial.copy_from_slice(&pass1);
        finish_row(x, qw, &scales, &sumw, &mut levels, refine, fudge, &mut trial);
        let e = row_error(x, imatrix, &trial, &mut deq);
        if i == 0 || e < best_err {
            best_err = e;
            out.copy_from_slice(&trial);
        }
    }
}

fma_dispatch!(fn quantize_row_fma(x: &[f32], qw: Option<&[f32]>, imatrix: Option<&[f32]>, out: &mut [u8]) => quantize_row_body);

/// Quantizes one row to IQ2_KS. `imatrix`: one importance weight per column, or none.
pub fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, out: &mut [u8]) {
    with_sanitized_imatrix(x, imatrix, 32, |qw| quantize_row_fma(x, qw, imatrix, out));
}

/// Decodes one IQ2_KS row.
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

/// Dot product of an IQ2_KS row with a Q8_K row (§5): `Σ_b (D·d8_b)·S_b`, in block order.
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
    use super::*;
    use crate::quants::test_util;
    use crate::registry::QType;

    #[test]
    fn dot_equals_dequantized_product() {
        test_util::check_dot_and_zero_row(QType::IQ2KS);
    }

    /// The vectorized split search returns the scalar one's bits, on sub-blocks with ties,
    /// zeros, an outlier, one sign only, and equal or varied weights.
    #[test]
    fn split32_kernels_equal_the_scalar_search() {
        #[cfg(target_arch = "x86_64")]
        let kernels: Vec<_> = crate::arch::available_isas().into_iter().filter_map(crate::arch::x86_64::split32_kernel).collect();
        #[cfg(not(target_arch = "x86_64"))]
        let kernels: Vec<crate::arch::Split32Fn> = vec![];
        let vals = order_values();
        let (x, im) = test_util::rows(64, 32 * 20, 0x25);
        let mut shifted = 0;
        for (case, xb) in x.chunks(32).enumerate() {
            let mut xb: [f32; 32] = xb.try_into().unwrap();
            match case % 6 {
                0 => xb.iter_mut().for_each(|v| *v = (*v * 40.0).round() / 40.0), // many ties
                1 => xb[7] = 0.9,                                                 // an outlier
                2 => xb.iter_mut().step_by(3).for_each(|v| *v = 0.0),
                3 => xb.iter_mut().for_each(|v| *v = v.abs()),
                _ => {}
            }
            let w: [f32; 32] = std::array::from_fn(|j| if case % 5 == 0 { 1.0 } else { im[(32 * case + j) % im.len()] * (0.01 + xb[j] * xb[j]) });
            let (sx, sw) = sorted_prefix_sums(&xb, &w);
            let want = split_search_sums(&sx, &sw, &vals);
            if xb.iter().all(|&v| v == 0.0) {
                continue;
            }
            assert!(want.0 != 0.0, "case {case}: no candidate won");
            shifted += ORDERS[want.1].1 as usize;
            for f in &kernels {
                let got = f(&sx, &sw, &vals);
                assert_eq!((got.0.to_bits(), got.1), (want.0.to_bits(), want.1), "case {case}: x={xb:?} w={w:?}");
            }
        }
        assert!(shifted > 0, "no case took the shifted half");
    }

    #[test]
    fn keeps_the_best_recipe_of_every_row() {
        let cols = 512;
        let (x, im) = test_util::rows(6, cols, 3);
        for imatrix in [None, Some(&im[..])] {
            for xr in x.chunks(cols) {
                let mut qw = vec![0f32; cols];
                let qw = imatrix.map(|m| {
                    crate::quants::common::sanitize_imatrix(m, xr, 32, &mut qw);
                    &qw[..]
                });
                let mut deq = vec![0f32; cols];
                let mut ours = vec![0u8; QType::IQ2KS.row_size(cols)];
                quantize_row(xr, imatrix, &mut ours);
                let e_ours = row_error(xr, imatrix, &ours, &mut deq);
                for (search, refine, fudge) in RECIPES {
                    let n = cols / 32;
                    let (mut scales, mut sumw, mut levels) = (vec![0f32; n], vec![0f32; n], vec![0i8; n]);
                    let mut q = vec![0u8; ours.len()];
                    sub_block_scales(xr, qw, search, &mut scales, &mut sumw, &mut q);
                    finish_row(xr, qw, &scales, &sumw, &mut levels, refine, fudge, &mut q);
                    assert!(e_ours <= row_error(xr, imatrix, &q, &mut deq), "{search:?} {refine:?} beats the chosen row");
                }
            }
        }
    }
}
