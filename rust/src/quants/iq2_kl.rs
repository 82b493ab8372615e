//! IQ2_KL (FORMATS.md §6.6, §9.10, §14): 2.6875 bpw; pairs of weights coded with 5 bits as one
//! of 32 points of a 2-D grid whose coordinates are the plain iq3nl values; f16 row scale.
//!
//! Every row starts with an f16 row scale `D`. Per 32 weights (16 pairs) a 6-bit integer scale
//! `L ∈ [-32, 31]`; pair `p` of sub-block `ib` decodes to `(D·L_ib)·(V0, V1)` with
//! `(V0, V1)` = [`IQ2KL_VALUES`]`[g]`. There is no shift bit.
//!
//! Block (86 bytes): `scales_h` (u16), `scales_l[4]`, `qs[64]`, `qh[16]`.
//! * scale: `L + 32` = nibble `ib / 4` of `scales_l[ib % 4]`, plus bits `2·ib..2·ib+1` of
//!   `scales_h` as bits 4..5;
//! * grid index: nibble `ib % 2` of `qs[16·(ib / 2) + p]`, plus bit `ib` of `qh[p]` as bit 4.
//!
//! Quantizing: a pair goes to the grid point of its two nearest 1-D iq3nl values when that is one
//! of the 32; otherwise to the best of that cell's 8 listed neighbours ([`K_NEIGHBOURS`]).

use half::f16;

use super::common::{
    fma_dispatch, fmadd, importance, nearest_int_mul, read_f32, read_u16, sigma2, signed_max, with_sanitized_imatrix,
    Best, DefaultWeight, Grid,
};
use super::q8k;
use super::IntBlock;
use crate::registry::QK_K;
use crate::tables::{IQ2KL_VALUES, IQ3NL_VALUES};

/// Bytes of an IQ2_KL block.
pub const BLOCK: usize = 86;
/// Bytes of the row header (f16 row scale).
pub const ROW_META: usize = 2;
const SCALES_L: usize = 2;
/// Offset of `qs` in a block.
pub const QS: usize = 6;
/// Offset of `qh` in a block.
pub const QH: usize = 70;

/// `K_INDEX[8·l1 + l2]` for the 1-D plain iq3nl indices `(l1, l2)` of a pair: the grid point
/// `(T[l1], T[l2])` if it is one (≥ 0), else `-(its neighbour list) - 1` (FORMATS.md §14).
pub const K_INDEX: [i8; 64] = [
    -1, -2, 0, -3, -4, 1, -5, -6, 2, -7, -8, 3, -9, 4, -10, 5, -11, 6, 7, -12, 8, 9, 10, -13, 11, -14, -15, -16, 12, 13, -17, 14, //
    -18, -19, 15, 16, 17, 18, 19, -20, -21, 20, 21, 22, 23, 24, -22, -23, 25, -24, 26, -25, 27, -26, 28, 29, -27, -28, 30, -29, -30,
    31, -31, -32,
];

/// The candidate grid points of the 32 cells that are not on the grid, in the order tried.
pub const K_NEIGHBOURS: [[u8; 8]; 32] = [
    [2, 0, 6, 11, 7, 3, 8, 15],
    [0, 2, 3, 6, 7, 1, 8, 4],
    [0, 1, 3, 4, 8, 7, 9, 6],
    [1, 0, 3, 4, 8, 9, 7, 10],
    [1, 4, 5, 10, 9, 3, 8, 0],
    [5, 1, 4, 10, 9, 14, 8, 3],
    [6, 2, 7, 0, 3, 11, 8, 15],
    [3, 7, 0, 6, 8, 4, 12, 9],
    [3, 4, 8, 9, 1, 7, 12, 10],
    [4, 10, 5, 9, 1, 8, 13, 14],
    [11, 2, 6, 7, 20, 15, 25, 21],
    [8, 7, 3, 12, 9, 16, 17, 13],
    [14, 5, 10, 19, 9, 13, 4, 18],
    [6, 15, 7, 11, 20, 21, 16, 2],
    [15, 7, 16, 6, 21, 12, 17, 22],
    [12, 16, 17, 8, 15, 7, 13, 22],
    [19, 10, 13, 18, 14, 9, 12, 24],
    [11, 20, 25, 6, 15, 2, 21, 7],
    [20, 15, 21, 6, 11, 7, 16, 26],
    [14, 19, 29, 10, 28, 18, 13, 24],
    [25, 11, 20, 21, 15, 6, 26, 30],
    [19, 24, 28, 18, 29, 23, 13, 17],
    [29, 19, 14, 28, 24, 18, 10, 13],
    [20, 26, 21, 25, 30, 15, 22, 16],
    [27, 26, 22, 23, 21, 30, 16, 24],
    [27, 24, 28, 31, 23, 18, 22, 17],
    [25, 30, 20, 26, 21, 11, 15, 22],
    [30, 26, 25, 20, 21, 27, 22, 15],
    [30, 27, 31, 26, 22, 23, 21, 24],
    [31, 27, 30, 26, 28, 23, 22, 24],
    [31, 28, 29, 27, 24, 23, 19, 18],
    [29, 28, 31, 24, 19, 27, 14, 18],
];

/// The two coordinates of grid point `g`.
#[inline(always)]
pub const fn grid_point(g: usize) -> (i8, i8) {
    let v = IQ2KL_VALUES[g];
    (v as u8 as i8, (v >> 8) as u8 as i8)
}

/// First and second coordinates of the grid points as f32.
static GX: [f32; 32] = {
    let mut t = [0f32; 32];
    let mut g = 0;
    while g < 32 {
        t[g] = grid_point(g).0 as f32;
        g += 1;
    }
    t
};
static GY: [f32; 32] = {
    let mut t = [0f32; 32];
    let mut g = 0;
    while g < 32 {
        t[g] = grid_point(g).1 as f32;
        g += 1;
    }
    t
};

/// The plain half of iq3nl: the 1-D coordinates.
static AXIS: Grid<8> = Grid::new(&IQ3NL_VALUES);

/// The pair search's tables in the form the SIMD kernels look them up (one lane per pair).
pub(crate) struct PairTables {
    /// Midpoints between neighbouring 1-D coordinates (padded with +inf).
    pub mids: [f32; 8],
    /// [`K_INDEX`] as i32 (its bits in an f32, for float shuffles), per cell `8·l1 + l2`.
    pub cell_bits: [f32; 64],
    /// The coordinates of each on-grid cell's point (0 for the others).
    pub cell_x: [f32; 64],
    pub cell_y: [f32; 64],
    /// Neighbour `k` of each off-grid cell's list `L` (`nb_bits[k][L]`, an i32 as f32 bits) and
    /// its coordinates.
    pub nb_bits: [[f32; 32]; 8],
    pub nb_x: [[f32; 32]; 8],
    pub nb_y: [[f32; 32]; 8],
}

pub(crate) static PAIR_TABLES: PairTables = {
    let mut t = PairTables { mids: [f32::INFINITY; 8], cell_bits: [0.0; 64], cell_x: [0.0; 64], cell_y: [0.0; 64], nb_bits: [[0.0; 32]; 8], nb_x: [[0.0; 32]; 8], nb_y: [[0.0; 32]; 8] };
    let mut m = 0;
    while m < 7 {
        t.mids[m] = (IQ3NL_VALUES[m] as f32 + IQ3NL_VALUES[m + 1] as f32) * 0.5;
        m += 1;
    }
    let mut c = 0;
    while c < 64 {
        t.cell_bits[c] = f32::from_bits(K_INDEX[c] as i32 as u32);
        if K_INDEX[c] >= 0 {
            t.cell_x[c] = GX[K_INDEX[c] as usize];
            t.cell_y[c] = GY[K_INDEX[c] as usize];
        }
        c += 1;
    }
    let mut k = 0;
    while k < 8 {
        let mut l = 0;
        while l < 32 {
            let n = K_NEIGHBOURS[l][k] as usize;
            t.nb_bits[k][l] = f32::from_bits(n as u32);
            t.nb_x[k][l] = GX[n];
            t.nb_y[k][l] = GY[n];
            l += 1;
        }
        k += 1;
    }
    t
};

/// The row scale stored in a row's header.
#[inline(always)]
pub fn row_scale(src: &[u8]) -> f32 {
    f16::from_bits(read_u16(src, 0)).to_f32()
}

/// Integer scale `L` of sub-block `ib`.
#[inline(always)]
pub fn scale_of(b: &[u8], ib: usize) -> i32 {
    let lo = (b[SCALES_L + ib % 4] >> (4 * (ib / 4))) & 15;
    let hi = (read_u16(b, 0) >> (2 * ib)) & 3;
    (lo as i32 | (hi as i32) << 4) - 32
}

/// The 5-bit grid index of pair `p` of sub-block `ib`.
#[inline(always)]
fn index(b: &[u8], ib: usize, p: usize) -> usize {
    let lo = (b[QS + 16 * (ib / 2) + p] >> (4 * (ib % 2))) & 15;
    let hi = (b[QH + p] >> ib) & 1;
    (lo | hi << 4) as usize
}

/// The grid point of the pair `(s1, s2)` (already scaled) whose 1-D nearest indices are
/// `(l1, l2)`, with weights `(w1, w2)`: that cell's point, or the neighbour with the smallest
/// weighted squared distance (first on ties).
#[inline(always)]
fn pair_point(s1: f32, s2: f32, l1: u8, l2: u8, w1: f32, w2: f32) -> usize {
    let cell = K_INDEX[8 * (l1 as usize & 7) + (l2 as usize & 7)];
    if cell >= 0 {
        return cell as usize;
    }
    let mut best = f32::MAX;
    let mut ibest = 0usize;
    for &n in &K_NEIGHBOURS[(-cell - 1) as usize] {
        let (d1, d2) = (GX[n as usize] - s1, GY[n as usize] - s2);
        let score = fmadd(w1 * d1, d1, w2 * d2 * d2);
        if score < best {
            best = score;
            ibest = n as usize;
        }
    }
    ibest
}

/// The grid points of the 16 pairs of a sub-block at inverse scale `id` ("plus") and at `-id`
/// ("minus").
#[inline(always)]
fn assign_pm(id: f32, xb: &[f32], w: &[f32; 32], plus: &mut [u8; 16], minus: &mut [u8; 16]) {
    let mut al = [0f32; 32];
    for j in 0..32 {
        al[j] = id * xb[j];
    }
    let (mut lp, mut lm) = ([0u8; 32], [0u8; 32]);
    AXIS.best_indices_pm(&al, &mut lp, &mut lm);
    for p in 0..16 {
        let (w1, w2) = (w[2 * p], w[2 * p + 1]);
        plus[p] = pair_point(al[2 * p], al[2 * p + 1], lp[2 * p], lp[2 * p + 1], w1, w2) as u8;
        minus[p] = pair_point(-al[2 * p], -al[2 * p + 1], lm[2 * p], lm[2 * p + 1], w1, w2) as u8;
    }
}

/// The grid points of the 16 pairs of a sub-block at inverse scale `id`.
#[inline(always)]
pub(crate) fn assign(id: f32, xb: &[f32], w: &[f32; 32], points: &mut [u8; 16]) {
    let mut al = [0f32; 32];
    for j in 0..32 {
        al[j] = id * xb[j];
    }
    let mut l = [0u8; 32];
    AXIS.best_indices(&al, &mut l);
    for p in 0..16 {
        points[p] = pair_point(al[2 * p], al[2 * p + 1], l[2 * p], l[2 * p + 1], w[2 * p], w[2 * p + 1]) as u8;
    }
}

/// `(Σwxq, Σwq²)` of a sub-block whose pairs take the grid points `points`, times `scale`.
#[inline(always)]
fn pair_sums(xb: &[f32], w: &[f32; 32], points: &[u8; 16], scale: f32) -> (f32, f32) {
    let (mut qx, mut q2) = (0f32, 0f32);
    for p in 0..16 {
        let g = points[p] as usize & 31;
        let (q1, qq2) = (scale * GX[g], scale * GY[g]);
        let (w1, w2) = (w[2 * p], w[2 * p + 1]);
        qx += fmadd(w1 * q1, xb[2 * p], w2 * qq2 * xb[2 * p + 1]);
        q2 += fmadd(w1 * q1, q1, w2 * qq2 * qq2);
    }
    (qx, q2)
}

/// `out[c] = (Σwxq, Σwq²)` of the points [`assign_pm`] gives at inverse scale `ids[c]`, then
/// the same for its "minus" points: the candidate evaluation of [`block_scale`]. The scalar
/// oracle of `arch::iq2kl_kernels().sums`, which returns the same bits.
#[inline(always)]
pub(crate) fn candidate_sums(ids: &[f32], xb: &[f32; 32], w: &[f32; 32], out: &mut [[f32; 4]]) {
    let (mut pp, mut pm) = ([0u8; 16], [0u8; 16]);
    for (&id, o) in ids.iter().zip(out.iter_mut()) {
        assign_pm(id, xb, w, &mut pp, &mut pm);
        let (qxp, q2p) = pair_sums(xb, w, &pp, 1.0);
        let (qxm, q2m) = pair_sums(xb, w, &pm, 1.0);
        *o = [qxp, q2p, qxm, q2m];
    }
}

/// The scale search of one sub-block (§9.10): start at `d = -max/T[0]`, then inverse scales
/// `(itry + T[0]) / max`, `itry = -5..=5`, both signs each. Scale 0 for an all-(near-)zero one.
#[inline(always)]
fn block_scale(xb: &[f32; 32], w: &[f32; 32], simd: Option<crate::arch::Iq2klKernels>) -> f32 {
    const NTRY: i32 = 5;
    let (amax, max) = signed_max(xb);
    if amax < 1e-16 {
        return 0.0;
    }
    let t0 = AXIS.values[0];
    let mut ids = [0f32; 2 * NTRY as usize + 2];
    ids[0] = 1.0 / (-max / t0);
    for (id, itry) in ids[1..].iter_mut().zip(-NTRY..=NTRY) {
        *id = (itry as f32 + t0) / max;
    }
    let mut sums = [[0f32; 4]; 2 * NTRY as usize + 2];
    match simd {
        Some(k) => (k.sums)(&ids, xb, w, &mut sums),
        None => candidate_sums(&ids, xb, w, &mut sums),
    }
    let [qx, q2, qxm, q2m] = sums[0];
    let d = qx / q2;
    let mut best = Best { d, score: d * qx };
    best.offer(qxm, q2m);
    for &[qxp, q2p, qxm, q2m] in &sums[1..] {
        best.offer(qxp, q2p);
        best.offer(qxm, q2m);
    }
    best.d
}

/// The grid points of the 16 pairs of a sub-block at inverse scale `id`, by the ISA's kernel
/// where it has one (the same points).
#[inline(always)]
fn assign_points(id: f32, xb: &[f32; 32], w: &[f32; 32], points: &mut [u8; 16], simd: Option<crate::arch::Iq2klKernels>) {
    match simd {
        Some(k) => (k.assign)(id, xb, w, points),
        None => assign(id, xb, w, points),
    }
}

#[inline(always)]
fn quantize_row_body(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    const SIGMA: f32 = 2.25;
    let nblock = x.len() / QK_K;
    out.fill(0);
    let mut scales = vec![0f32; nblock * 8];
    let mut w = [0f32; 32];
    let (mut amax_scale, mut max_scale) = (0f32, 0f32);
    let simd = crate::arch::iq2kl_kernels();
    for (ibl, xbl) in x.chunks_exact(QK_K).enumerate() {
        let s2 = sigma2(xbl, SIGMA);
        for ib in 0..8 {
            let xb: &[f32; 32] = xbl[32 * ib..32 * ib + 32].try_into().unwrap();
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::Abs, &mut w);
            let s = block_scale(xb, &w, simd);
            scales[8 * ibl + ib] = s;
            if s.abs() > amax_scale {
                amax_scale = s.abs();
                max_scale = s;
            }
        }
    }
    if amax_scale == 0.0 {
        return;
    }
    let d = -max_scale / 32.0;
    let id = 1.0 / d;
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    let mut points = [0u8; 16];
    for (ibl, xbl) in x.chunks_exact(QK_K).enumerate() {
        let s2 = sigma2(xbl, SIGMA);
        let b = &mut out[ROW_META + BLOCK * ibl..ROW_META + BLOCK * (ibl + 1)];
        for ib in 0..8 {
            let xb: &[f32; 32] = xbl[32 * ib..32 * ib + 32].try_into().unwrap();
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::Abs, &mut w);
            // the integer scale: the nearest one or a neighbour, whichever has the least error
            let l0 = nearest_int_mul(id, scales[8 * ibl + ib]).clamp(-32, 31);
            let (mut best_score, mut ls) = (f32::MAX, l0);
            // the points of the winner and the inverse scale they were assigned at
            let mut best_points = None;
            for l in (l0 - 1).max(-32)..=(l0 + 1).min(31) {
                let dl = d * l as f32;
                let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
                let mut cand = [0u8; 16];
                assign_points(idl, xb, &w, &mut cand, simd);
                let mut score = 0f32;
                for p in 0..16 {
                    let g = cand[p] as usize & 31;
                    let d1 = fmadd(dl, GX[g], -xb[2 * p]);
                    let d2 = fmadd(dl, GY[g], -xb[2 * p + 1]);
                    score += fmadd(w[2 * p] * d1, d1, w[2 * p + 1] * d2 * d2);
                }
                if score < best_score {
                    best_score = score;
                    ls = l;
                    best_points = Some((idl, cand));
                }
            }
            let uls = (ls + 32) as u16;
            b[SCALES_L + ib % 4] |= ((uls & 15) as u8) << (4 * (ib / 4));
            let sh = read_u16(b, 0) | (uls >> 4) << (2 * ib);
            b[..2].copy_from_slice(&sh.to_le_bytes());
            if ls == 0 {
                continue;
            }
            let idl = 1.0 / (d * ls as f32);
            match best_points {
                Some((i, p)) if i.to_bits() == idl.to_bits() => points = p,
                _ => assign_points(idl, xb, &w, &mut points, simd),
            }
            for p in 0..16 {
                let g = points[p] & 31;
                b[QS + 16 * (ib / 2) + p] |= (g & 15) << (4 * (ib % 2));
                b[QH + p] |= (g >> 4) << ib;
            }
            let (qx, q2) = pair_sums(xb, &w, &points, ls as f32);
            sumqx += qx;
            sumq2 += q2;
        }
    }
    let d = 1.025 * if sumq2 > 0.0 { sumqx / sumq2 } else { d };
    out[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
}

fma_dispatch!(fn quantize_row_fma(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) => quantize_row_body);

/// Quantizes one row to IQ2_KL. `imatrix`: one importance weight per column, or none.
pub fn quantize_row(x: &[f32], imatrix: Option<&[f32]>, out: &mut [u8]) {
    with_sanitized_imatrix(x, imatrix, 32, |qw| quantize_row_fma(x, qw, out));
}

/// Decodes one IQ2_KL row.
pub fn dequantize_row(src: &[u8], out: &mut [f32]) {
    let d = row_scale(src);
    for (b, ob) in src[ROW_META..].chunks_exact(BLOCK).zip(out.chunks_exact_mut(QK_K)) {
        for ib in 0..8 {
            let dl = d * scale_of(b, ib) as f32;
            for (p, o) in ob[32 * ib..32 * ib + 32].chunks_exact_mut(2).enumerate() {
                let (v0, v1) = grid_point(index(b, ib, p));
                o[0] = dl * v0 as f32;
                o[1] = dl * v1 as f32;
            }
        }
    }
}

/// Exact integer block sum `S_b = Σ_ib L_ib Σ_p (V0·q8 + V1·q8')` of one super-block.
#[inline(always)]
fn block_sum(b: &[u8], yb: &[u8]) -> i32 {
    let q8 = &yb[q8k::QS..q8k::QS + QK_K];
    let mut s = 0i32;
    for ib in 0..8 {
        let y = &q8[32 * ib..32 * ib + 32];
        let si: i32 = (0..16)
            .map(|p| {
                let (v0, v1) = grid_point(index(b, ib, p));
                v0 as i32 * (y[2 * p] as i8) as i32 + v1 as i32 * (y[2 * p + 1] as i8) as i32
            })
            .sum();
        s += scale_of(b, ib) * si;
    }
    s
}

/// Dot product of an IQ2_KL row with a Q8_K row (§5): `Σ_b (D·d8_b)·S_b`, in block order.
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
        for p in 0..16 {
            let (v0, v1) = grid_point(index(b, ib, p));
            out.values[32 * ib + 2 * p] = v0;
            out.values[32 * ib + 2 * p + 1] = v1;
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
        test_util::check_dot_and_zero_row(QType::IQ2KL);
    }

    /// The vectorized pair search gives the scalar code's sums and points bit for bit, on
    /// sub-blocks with ties, zeros, an outlier, one sign only, and equal or varied weights, at the
    /// scale search's inverse scales and at zero, huge and negative ones.
    #[test]
    fn pair_search_kernels_equal_the_scalar_code() {
        #[cfg(target_arch = "x86_64")]
        let kernels: Vec<_> = crate::arch::available_isas().into_iter().filter_map(crate::arch::x86_64::iq2kl_kernels).collect();
        #[cfg(not(target_arch = "x86_64"))]
        let kernels: Vec<crate::arch::Iq2klKernels> = vec![];
        let (x, im) = test_util::rows(64, 32 * 20, 0x6b);
        let mut off_grid = 0;
        for (case, xb) in x.chunks(32).enumerate() {
            let mut xb: [f32; 32] = xb.try_into().unwrap();
            match case % 6 {
                0 => xb.iter_mut().for_each(|v| *v = (*v * 40.0).round() / 40.0), // many ties
                1 => xb[7] = 0.9,                                                 // an outlier
                2 => xb.iter_mut().step_by(3).for_each(|v| *v = 0.0),
                3 => xb.iter_mut().for_each(|v| *v = v.abs()),
                _ => {}
            }
            let w: [f32; 32] = std::array::from_fn(|j| if case % 5 == 0 { 1.0 } else { im[(32 * case + j) % im.len()] * (0.01 + xb[j].abs()) });
            let (_, max) = signed_max(&xb);
            let t0 = AXIS.values[0];
            let mut ids: Vec<f32> = (-5..=5).map(|i| (i as f32 + t0) / max).collect();
            ids.extend([1.0 / (-max / t0), 0.0, 1e6, -3.0 / max, 0.7]);
            let mut want = vec![[0f32; 4]; ids.len()];
            candidate_sums(&ids, &xb, &w, &mut want);
            for &id in &ids {
                let mut al = [0f32; 32];
                let mut l = [0u8; 32];
                al.iter_mut().zip(&xb).for_each(|(a, &v)| *a = id * v);
                AXIS.best_indices(&al, &mut l);
                off_grid += (0..16).filter(|&p| K_INDEX[8 * l[2 * p] as usize + l[2 * p + 1] as usize] < 0).count();
            }
            for k in &kernels {
                let mut got = vec![[0f32; 4]; ids.len()];
                (k.sums)(&ids, &xb, &w, &mut got);
                for (c, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g.map(f32::to_bits), e.map(f32::to_bits), "case {case}, id {}: x={xb:?} w={w:?}", ids[c]);
                }
                for &id in &ids {
                    let (mut g, mut e) = ([0u8; 16], [0u8; 16]);
                    (k.assign)(id, &xb, &w, &mut g);
                    assign(id, &xb, &w, &mut e);
                    assert_eq!(g, e, "case {case}, id {id}");
                }
            }
        }
        assert!(off_grid > 1000, "too few pairs off the grid: {off_grid}");
    }

    #[test]
    fn grid_is_the_on_grid_cells_of_k_index() {
        // every grid point is (T[l1], T[l2]) of the one cell whose K_INDEX names it
        let mut seen = [false; 32];
        for cell in 0..64 {
            let g = K_INDEX[cell];
            if g >= 0 {
                let (v0, v1) = grid_point(g as usize);
                assert_eq!((v0, v1), (IQ3NL_VALUES[cell / 8], IQ3NL_VALUES[cell % 8]), "cell {cell}");
                assert!(!seen[g as usize]);
                seen[g as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        // every off-grid cell has its own neighbour list
        let mut lists: Vec<i8> = K_INDEX.iter().copied().filter(|&g| g < 0).collect();
        lists.sort_unstable();
        assert_eq!(lists, (-32..=-1).collect::<Vec<i8>>());
    }

    #[test]
    fn pairs_go_to_their_cell_or_its_nearest_listed_neighbour() {
        // on-grid cells map to themselves; off-grid cells to the closest listed neighbour
        for cell in 0..64 {
            let (t1, t2) = (IQ3NL_VALUES[cell / 8] as f32, IQ3NL_VALUES[cell % 8] as f32);
            let g = pair_point(t1 + 0.25, t2 - 0.25, (cell / 8) as u8, (cell % 8) as u8, 1.0, 2.0);
            if K_INDEX[cell] >= 0 {
                assert_eq!(g, K_INDEX[cell] as usize);
            } else {
                let list = K_NEIGHBOURS[(-K_INDEX[cell] - 1) as usize];
                assert!(list.contains(&(g as u8)));
                let dist = |n: usize| (GX[n] - t1 - 0.25).powi(2) + 2.0 * (GY[n] - t2 + 0.25).powi(2);
                assert!(list.iter().all(|&n| dist(g) <= dist(n as usize)), "cell {cell}");
            }
        }
    }

    #[test]
    fn decodes_every_grid_index_in_every_position() {
        // a block whose pair p of sub-block ib holds grid index (p + 3·ib) % 32 and L = ib - 3
        let mut row = vec![0u8; ROW_META + BLOCK];
        row[..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        let b = &mut row[ROW_META..];
        for ib in 0..8 {
            let u = (ib as i32 - 3 + 32) as u16;
            b[SCALES_L + ib % 4] |= ((u & 15) as u8) << (4 * (ib / 4));
            let sh = read_u16(b, 0) | (u >> 4) << (2 * ib);
            b[..2].copy_from_slice(&sh.to_le_bytes());
            for p in 0..16 {
                let g = ((p + 3 * ib) % 32) as u8;
                b[QS + 16 * (ib / 2) + p] |= (g & 15) << (4 * (ib % 2));
                b[QH + p] |= (g >> 4) << ib;
            }
        }
        let mut out = vec![0f32; QK_K];
        dequantize_row(&row, &mut out);
        for ib in 0..8 {
            for p in 0..16 {
                let (v0, v1) = grid_point((p + 3 * ib) % 32);
                let dl = 0.5 * (ib as f32 - 3.0);
                assert_eq!(out[32 * ib + 2 * p], dl * v0 as f32);
                assert_eq!(out[32 * ib + 2 * p + 1], dl * v1 as f32);
            }
        }
    }
}
