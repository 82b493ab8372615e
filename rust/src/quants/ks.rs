//! The 4-bit per-row-scale types IQ4_KS and IQ4_KSS (FORMATS.md §6.1, §6.2, §9.7, §9.8).
//!
//! Both keep an f32 row scale `D` at the head of every row and, per 32 weights, a 7-bit odd
//! integer scale `L` plus one bit choosing the plain or the shifted half of the iq4k grid.
//! Weight `n` of sub-block `ib` decodes to `(D·L_ib)·T[q_n]`.
//!
//! * IQ4_KS block (136 bytes): `scales[8]`, then `qs[128]` — byte `16·ib + t%16` of a 32-weight
//!   sub-block holds weight `t` in its low (t < 16) or high (t ≥ 16) nibble.
//! * IQ4_KSS block (128 bytes): 64 little-endian u16 words, 8 per sub-block. Word `k` carries
//!   bit `k` of the scale byte in bit 0 and, in bits 1..15, the prefix-XOR code `J` of a 16-bit
//!   even-parity index group `v = J ^ (J << 1)`; `v`'s nibbles are the indices of weights
//!   `2k, 2k+16, 2k+1, 2k+17` — i.e. exactly IQ4_KS's bytes `2k` and `2k+1`.

use super::common::{
    fma_dispatch, fmadd, importance, nearest_int, read_f32, read_u16, sanitize_imatrix, shift_search, sigma2, signed_max, Best, DefaultWeight, Grid,
};
use super::q8k;
use super::IntBlock;
use crate::registry::QK_K;
use crate::tables::IQ4K_VALUES;

/// Bytes of an IQ4_KS block.
pub const IQ4KS_BLOCK: usize = 136;
/// Bytes of an IQ4_KSS block.
pub const IQ4KSS_BLOCK: usize = 128;
/// Bytes of the row header (f32 row scale).
pub const ROW_META: usize = 4;

static PLAIN: Grid<16> = Grid::new(&IQ4K_VALUES);
static SHIFTED: Grid<16> = Grid::new(&{
    let mut t = [0i8; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = IQ4K_VALUES[16 + i];
        i += 1;
    }
    t
});

#[inline(always)]
fn grid(shift: bool) -> &'static Grid<16> {
    if shift { &SHIFTED } else { &PLAIN }
}

/// Integer scale of a sub-block from its scale byte: `(b & 0xFE) - 127`.
#[inline(always)]
pub fn scale_of(byte: u8) -> i32 {
    (byte & 0xFE) as i32 - 127
}

/// The shared 4-bit table of a sub-block: 16 entries starting at 0 (plain) or 16 (shifted).
#[inline(always)]
pub fn table_of(byte: u8) -> &'static [i8] {
    let off = 16 * (byte & 1) as usize;
    &IQ4K_VALUES[off..off + 16]
}

// ---------------------------------------------------------------------------------------------
// IQ4_KS

#[inline(always)]
fn quantize_row_iq4_ks_body(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    let nblock = x.len() / QK_K;
    out.fill(0);
    let mut scales = vec![0f32; nblock * 8];
    let mut w = [0f32; 32];
    let mut amax_scale = 0f32;
    for ibl in 0..nblock {
        let xbl = &x[QK_K * ibl..QK_K * (ibl + 1)];
        let s2 = sigma2(xbl, 2.0);
        let blk = ROW_META + IQ4KS_BLOCK * ibl;
        for ib in 0..8 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::Square, &mut w);
            // §9.1, ntry = 7, no re-fit
            let (s, shifted) = shift_search(xb, &w, &PLAIN, &SHIFTED, -PLAIN.values[0], 7, 1.0);
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
        let blk = ROW_META + IQ4KS_BLOCK * ibl;
        for ib in 0..8 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            let l2 = nearest_int(0.5 * fmadd(id, scales[8 * ibl + ib], 127.0)).clamp(0, 127) << 1;
            out[blk + ib] |= l2 as u8;
            let g = grid(out[blk + ib] & 1 != 0);
            let l = l2 - 127;
            let dl = d * l as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::Square, &mut w);
            let qs = &mut out[blk + 8 + 16 * ib..blk + 8 + 16 * ib + 16];
            // the midpoint count, which vectorizes (the same indices as `best_index`)
            let mut a = [0f32; 32];
            for j in 0..32 {
                a[j] = idl * xb[j];
            }
            let mut idx = [0u8; 32];
            g.best_indices(&a, &mut idx);
            for j in 0..16 {
                let (i1, i2) = (idx[j] as usize, idx[j + 16] as usize);
                qs[j] = (i1 | (i2 << 4)) as u8;
                let q1 = g.values[i1] * l as f32;
                let q2 = g.values[i2] * l as f32;
                let (w1, w2) = (w[j], w[j + 16]);
                sumqx += fmadd(w1 * q1, xb[j], w2 * q2 * xb[j + 16]);
                sumq2 += fmadd(w1 * q1, q1, w2 * q2 * q2);
            }
        }
    }
    if sumq2 > 0.0 {
        out[..4].copy_from_slice(&(sumqx / sumq2).to_le_bytes());
    }
}

fma_dispatch!(fn quantize_row_iq4_ks_fma(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) => quantize_row_iq4_ks_body);

/// Quantizes one row to IQ4_KS. `imatrix`: one importance weight per column, or none.
pub fn quantize_row_iq4_ks(x: &[f32], imatrix: Option<&[f32]>, out: &mut [u8]) {
    with_weights(x, imatrix, |qw| quantize_row_iq4_ks_fma(x, qw, out));
}

/// Sanitizes the imatrix for one row (§9.1) and hands the row's weights to `f`.
fn with_weights<R>(x: &[f32], imatrix: Option<&[f32]>, f: impl FnOnce(Option<&[f32]>) -> R) -> R {
    match imatrix {
        Some(im) => {
            let mut qw = vec![0f32; x.len()];
            sanitize_imatrix(im, x, 32, &mut qw);
            f(Some(&qw))
        }
        None => f(None),
    }
}

/// Decodes one IQ4_KS row.
pub fn dequantize_row_iq4_ks(src: &[u8], out: &mut [f32]) {
    let d = read_f32(src, 0);
    for (b, ob) in src[ROW_META..].chunks_exact(IQ4KS_BLOCK).zip(out.chunks_exact_mut(QK_K)) {
        for ib in 0..8 {
            let dl = d * scale_of(b[ib]) as f32;
            let t = table_of(b[ib]);
            let qs = &b[8 + 16 * ib..8 + 16 * ib + 16];
            let o = &mut ob[32 * ib..32 * ib + 32];
            for j in 0..16 {
                o[j] = dl * t[(qs[j] & 15) as usize] as f32;
                o[j + 16] = dl * t[(qs[j] >> 4) as usize] as f32;
            }
        }
    }
}

/// Exact integer block sums `S_b = Σ_ib L_ib Σ_t T[q]·q8` of one IQ4_KS super-block.
#[inline(always)]
fn iq4ks_block_sum(b: &[u8], yb: &[u8]) -> i32 {
    let q8 = &yb[q8k::QS..q8k::QS + QK_K];
    let mut s = 0i32;
    for ib in 0..8 {
        let t = table_of(b[ib]);
        let qs = &b[8 + 16 * ib..8 + 16 * ib + 16];
        let y = &q8[32 * ib..32 * ib + 32];
        let mut si = 0i32;
        for j in 0..16 {
            si += t[(qs[j] & 15) as usize] as i32 * (y[j] as i8) as i32;
            si += t[(qs[j] >> 4) as usize] as i32 * (y[j + 16] as i8) as i32;
        }
        s += scale_of(b[ib]) * si;
    }
    s
}

/// Dot product of an IQ4_KS row with a Q8_K row (§5): `Σ_b (D·d8_b)·S_b`.
pub fn vec_dot_iq4_ks_q8_k(src: &[u8], y: &[u8]) -> f32 {
    let d = read_f32(src, 0);
    let mut acc = 0f32;
    for (b, yb) in src[ROW_META..].chunks_exact(IQ4KS_BLOCK).zip(y.chunks_exact(q8k::BLOCK_BYTES)) {
        acc += (d * read_f32(yb, 0)) * iq4ks_block_sum(b, yb) as f32;
    }
    acc
}

/// Integer form of an IQ4_KS block in IQ4_KS byte layout (also used for decoded IQ4_KSS blocks).
fn ks_block_to_int(d: f32, b: &[u8], out: &mut IntBlock) {
    out.d = d;
    for ib in 0..8 {
        let t = table_of(b[ib]);
        out.scales[2 * ib] = scale_of(b[ib]) as i16;
        out.scales[2 * ib + 1] = scale_of(b[ib]) as i16;
        let qs = &b[8 + 16 * ib..8 + 16 * ib + 16];
        for j in 0..16 {
            out.values[32 * ib + j] = t[(qs[j] & 15) as usize];
            out.values[32 * ib + j + 16] = t[(qs[j] >> 4) as usize];
        }
    }
}

/// Integer form of super-block `block` of an IQ4_KS row.
pub fn decode_int_iq4_ks(src: &[u8], block: usize, out: &mut IntBlock) {
    let off = ROW_META + IQ4KS_BLOCK * block;
    ks_block_to_int(read_f32(src, 0), &src[off..off + IQ4KS_BLOCK], out);
}

// ---------------------------------------------------------------------------------------------
// IQ4_KSS

/// The 15-bit code of an even-parity 16-bit index group: bit i = XOR of bits 0..=i of `v`.
#[inline(always)]
pub fn kss_encode(v: u16) -> u16 {
    let mut j = v;
    j ^= j << 1;
    j ^= j << 2;
    j ^= j << 4;
    j ^= j << 8;
    j & 0x7FFF
}

/// The index group stored in a word (the scale bit in bit 0 is ignored).
#[inline(always)]
pub fn kss_decode(word: u16) -> u16 {
    let a = word & 0xFFFE;
    a ^ (a >> 1)
}

/// Makes an index group's popcount even by moving one index by at most 2 steps to the value
/// of opposite bit parity that costs the least weighted squared error (§9.8 `prune`). The
/// "before" error is taken on the plain grid, as the reference does.
#[inline(always)]
fn prune(v: u16, g: &Grid<16>, xv: &[f32; 4], wv: &[f32; 4], dl: f32) -> u16 {
    if v.count_ones() % 2 == 0 {
        return v;
    }
    let mut best_score = f32::MAX;
    let (mut jbest, mut qbest) = (0usize, 0u16);
    for j in 0..4 {
        let q = (v >> (4 * j)) & 15;
        let diff0 = fmadd(dl, PLAIN.values[q as usize], -xv[j]);
        let lo = q.saturating_sub(2);
        let hi = (q + 2).min(15);
        for qq in lo..=hi {
            if qq == q || (qq.count_ones() + q.count_ones()) % 2 == 0 {
                continue;
            }
            let diff1 = fmadd(dl, g.values[qq as usize], -xv[j]);
            let score = wv[j] * fmadd(diff1, diff1, -(diff0 * diff0));
            if score < best_score {
                best_score = score;
                jbest = j;
                qbest = qq;
            }
        }
    }
    (v & !(15 << (4 * jbest))) | (qbest << (4 * jbest))
}

/// Weights `(2k, 2k+16, 2k+1, 2k+17)` of a 32-weight sub-block: the members of word `k`.
#[inline(always)]
fn group(a: &[f32], k: usize) -> [f32; 4] {
    [a[2 * k], a[2 * k + 16], a[2 * k + 1], a[2 * k + 17]]
}

/// One candidate of [`iq4kss_block_scale`]: the least-squares sums `(qx+, q2+, qx-, q2-)` of the
/// pruned nearest indices of `id·x` and `-id·x` on grid `g`.
#[inline(always)]
fn kss_candidate(g: &Grid<16>, id: f32, xb: &[f32], w: &[f32; 32]) -> [f32; 4] {
    let this_d = 1.0 / id;
    let (mut qxp, mut q2p, mut qxm, mut q2m) = (0f32, 0f32, 0f32, 0f32);
    let mut al = [0f32; 32];
    for j in 0..32 {
        al[j] = id * xb[j];
    }
    let (mut ip, mut im) = ([0u8; 32], [0u8; 32]);
    g.best_indices_pm(&al, &mut ip, &mut im);
    for k in 0..8 {
        let (xv, wv) = (group(xb, k), group(w, k));
        let pack = |i: &[u8; 32]| (i[2 * k] as u16) | (i[2 * k + 16] as u16) << 4 | (i[2 * k + 1] as u16) << 8 | (i[2 * k + 17] as u16) << 12;
        let (vp, vm) = (prune(pack(&ip), g, &xv, &wv, this_d), prune(pack(&im), g, &xv, &wv, this_d));
        for j in 0..4 {
            let q = g.values[((vp >> (4 * j)) & 15) as usize];
            qxp = fmadd(wv[j] * q, xv[j], qxp);
            q2p = fmadd(wv[j] * q, q, q2p);
            let q = g.values[((vm >> (4 * j)) & 15) as usize];
            qxm = fmadd(wv[j] * q, xv[j], qxm);
            q2m = fmadd(wv[j] * q, q, q2m);
        }
    }
    [qxp, q2p, qxm, q2m]
}

#[inline(always)]
fn iq4kss_block_scale(xb: &[f32], w: &[f32; 32]) -> f32 {
    const NTRY: i32 = 7;
    const N: usize = (2 * NTRY + 1) as usize;
    let (amax, max) = signed_max(xb);
    if amax < 1e-16 {
        return 0.0;
    }
    // every candidate's sums first (16 lanes at a time where the ISA can), then the offers in
    // the scalar order
    let mut sums = [[[0f32; 4]; N]; 2];
    let kernel = crate::arch::kss_sums_kernel();
    for (g, out) in [&PLAIN, &SHIFTED].into_iter().zip(sums.iter_mut()) {
        let mut ids = [0f32; N];
        for (k, id) in ids.iter_mut().enumerate() {
            *id = ((k as i32 - NTRY) as f32 + g.values[0]) / max;
        }
        match kernel {
            Some(f) => f(&g.values, g.mids(), &PLAIN.values, &ids, xb.try_into().unwrap(), w, out),
            None => {
                for (o, &id) in out.iter_mut().zip(&ids) {
                    *o = kss_candidate(g, id, xb, w);
                }
            }
        }
    }
    let mut best = Best { d: -max / PLAIN.values[0], score: 0.0 };
    for k in 0..N {
        for s in [&sums[0][k], &sums[1][k]] {
            best.offer(s[0], s[1]);
            best.offer(s[2], s[3]);
        }
    }
    best.d
}

#[inline(always)]
fn quantize_row_iq4_kss_body(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    let nblock = x.len() / QK_K;
    out.fill(0);
    let mut scales = vec![0f32; nblock * 8];
    let mut w = [0f32; 32];
    let mut amax_scale = 0f32;
    for ibl in 0..nblock {
        let xbl = &x[QK_K * ibl..QK_K * (ibl + 1)];
        let s2 = sigma2(xbl, 2.0);
        for ib in 0..8 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::Square, &mut w);
            let s = iq4kss_block_scale(xb, &w);
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
        let blk = ROW_META + IQ4KSS_BLOCK * ibl;
        for ib in 0..8 {
            let xb = &xbl[32 * ib..32 * ib + 32];
            importance(xb, qw.map(|q| &q[QK_K * ibl + 32 * ib..]), s2, DefaultWeight::Square, &mut w);
            // L is odd, hence never 0.
            let l = (nearest_int(0.5 * fmadd(id, scales[8 * ibl + ib], 127.0)).clamp(0, 127) << 1) - 127;
            let dl = d * l as f32;
            let idl = 1.0 / dl;
            let (mut vps, mut vss) = ([0u16; 8], [0u16; 8]);
            let (mut mse_p, mut mse_s) = (0f32, 0f32);
            for k in 0..8 {
                let (xv, wv) = (group(xb, k), group(&w, k));
                let (mut vp, mut vs) = (0u16, 0u16);
                for j in 0..4 {
                    let al = idl * xv[j];
                    vp |= (PLAIN.best_index(al) as u16) << (4 * j);
                    vs |= (SHIFTED.best_index(al) as u16) << (4 * j);
                }
                vp = prune(vp, &PLAIN, &xv, &wv, dl);
                vs = prune(vs, &SHIFTED, &xv, &wv, dl);
                for j in 0..4 {
                    let e = fmadd(-dl, PLAIN.values[((vp >> (4 * j)) & 15) as usize], xv[j]);
                    mse_p = fmadd(wv[j] * e, e, mse_p);
                    let e = fmadd(-dl, SHIFTED.values[((vs >> (4 * j)) & 15) as usize], xv[j]);
                    mse_s = fmadd(wv[j] * e, e, mse_s);
                }
                vps[k] = vp;
                vss[k] = vs;
            }
            let shifted = mse_s < mse_p;
            let (v, t) = if shifted { (&vss, &IQ4K_VALUES[16..]) } else { (&vps, &IQ4K_VALUES[..16]) };
            for k in 0..8 {
                let (xv, wv) = (group(xb, k), group(&w, k));
                for j in 0..4 {
                    let q = (t[((v[k] >> (4 * j)) & 15) as usize] as i32 * l) as f32;
                    sumqx = fmadd(wv[j] * q, xv[j], sumqx);
                    sumq2 = fmadd(wv[j] * q, q, sumq2);
                }
            }
            let sbyte = (l + 127) as u16 | shifted as u16;
            for k in 0..8 {
                let word = (kss_encode(v[k]) << 1) | ((sbyte >> k) & 1);
                let o = blk + 16 * ib + 2 * k;
                out[o..o + 2].copy_from_slice(&word.to_le_bytes());
            }
        }
    }
    if sumq2 > 0.0 {
        out[..4].copy_from_slice(&(sumqx / sumq2 * 1.01).to_le_bytes());
    }
}

fma_dispatch!(fn quantize_row_iq4_kss_fma(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) => quantize_row_iq4_kss_body);

/// Quantizes one row to IQ4_KSS.
pub fn quantize_row_iq4_kss(x: &[f32], imatrix: Option<&[f32]>, out: &mut [u8]) {
    with_weights(x, imatrix, |qw| quantize_row_iq4_kss_fma(x, qw, out));
}

/// Expands one IQ4_KSS block into its IQ4_KS form (scale bytes and nibbles); the two formats
/// share everything after that.
#[inline(always)]
pub fn kss_block_to_ks(b: &[u8], ks: &mut [u8; IQ4KS_BLOCK]) {
    for ib in 0..8 {
        let mut sbyte = 0u8;
        for k in 0..8 {
            let word = read_u16(b, 16 * ib + 2 * k);
            sbyte |= ((word & 1) as u8) << k;
            let v = kss_decode(word);
            ks[8 + 16 * ib + 2 * k] = v as u8;
            ks[8 + 16 * ib + 2 * k + 1] = (v >> 8) as u8;
        }
        ks[ib] = sbyte;
    }
}

/// Decodes one IQ4_KSS row.
pub fn dequantize_row_iq4_kss(src: &[u8], out: &mut [f32]) {
    let d = read_f32(src, 0);
    let mut ks = [0u8; IQ4KS_BLOCK];
    for (b, ob) in src[ROW_META..].chunks_exact(IQ4KSS_BLOCK).zip(out.chunks_exact_mut(QK_K)) {
        kss_block_to_ks(b, &mut ks);
        for ib in 0..8 {
            let dl = d * scale_of(ks[ib]) as f32;
            let t = table_of(ks[ib]);
            let qs = &ks[8 + 16 * ib..8 + 16 * ib + 16];
            let o = &mut ob[32 * ib..32 * ib + 32];
            for j in 0..16 {
                o[j] = dl * t[(qs[j] & 15) as usize] as f32;
                o[j + 16] = dl * t[(qs[j] >> 4) as usize] as f32;
            }
        }
    }
}

/// Dot product of an IQ4_KSS row with a Q8_K row (§5), exact integer block sums.
pub fn vec_dot_iq4_kss_q8_k(src: &[u8], y: &[u8]) -> f32 {
    let d = read_f32(src, 0);
    let mut ks = [0u8; IQ4KS_BLOCK];
    let mut acc = 0f32;
    for (b, yb) in src[ROW_META..].chunks_exact(IQ4KSS_BLOCK).zip(y.chunks_exact(q8k::BLOCK_BYTES)) {
        kss_block_to_ks(b, &mut ks);
        acc += (d * read_f32(yb, 0)) * iq4ks_block_sum(&ks, yb) as f32;
    }
    acc
}

/// Integer form of super-block `block` of an IQ4_KSS row.
pub fn decode_int_iq4_kss(src: &[u8], block: usize, out: &mut IntBlock) {
    let off = ROW_META + IQ4KSS_BLOCK * block;
    let mut ks = [0u8; IQ4KS_BLOCK];
    kss_block_to_ks(&src[off..off + IQ4KSS_BLOCK], &mut ks);
    ks_block_to_int(read_f32(src, 0), &ks, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ISA kernels' lane-parallel IQ4_KSS candidates equal the scalar ones bit for bit, on
    /// both grids, for sub-blocks with ties, zeros and outliers, and candidate scales around the
    /// ones the search uses.
    #[test]
    fn lane_parallel_kss_candidates_equal_the_scalar_ones() {
        #[cfg(target_arch = "x86_64")]
        let kernels: Vec<_> = crate::arch::available_isas().into_iter().filter_map(crate::arch::x86_64::kss_sums_kernel).collect();
        #[cfg(not(target_arch = "x86_64"))]
        let kernels: Vec<crate::arch::KssSumsFn> = vec![];
        let mut s = 99u32;
        let mut u = || {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1 << 24) as f32
        };
        for case in 0..200 {
            let mut x = [0f32; 32];
            let mut w = [0f32; 32];
            for j in 0..32 {
                x[j] = match (case + j) % 11 {
                    0 => 0.0,
                    1 => 0.5,
                    2 => -0.5,
                    _ => (u() - 0.5) * if j % 13 == 0 { 8.0 } else { 1.0 },
                };
                w[j] = if case % 5 == 0 { x[j] * x[j] } else { 0.1 + u() };
            }
            if case % 3 == 0 {
                // members 2k and 2k + 16 of each group equal: prune candidates that tie
                for j in 0..16 {
                    (x[j + 16], w[j + 16]) = (x[j], w[j]);
                }
            }
            let (_, max) = signed_max(&x);
            if max == 0.0 {
                continue;
            }
            for f in &kernels {
                for g in [&PLAIN, &SHIFTED] {
                    let ids: Vec<f32> = (0..15).map(|k| ((k - 7) as f32 + g.values[0]) / max).chain([1.0 / max]).collect();
                    let mut got = [[0f32; 4]; 16];
                    f(&g.values, g.mids(), &PLAIN.values, &ids, &x, &w, &mut got);
                    for (c, &id) in ids.iter().enumerate() {
                        let want = kss_candidate(g, id, &x, &w);
                        assert_eq!(got[c].map(f32::to_bits), want.map(f32::to_bits), "case {case} id {id}");
                    }
                }
            }
        }
    }

    #[test]
    fn kss_code_round_trips_every_even_group() {
        for v in 0..=u16::MAX {
            if v.count_ones() % 2 == 0 {
                let word = kss_encode(v) << 1 | 1;
                assert_eq!(kss_decode(word), v);
            }
        }
    }
}

