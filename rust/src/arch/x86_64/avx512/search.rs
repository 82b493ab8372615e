//! The quantizers' scale search on AVX-512: the least-squares sums of many candidate inverse
//! scales at once, one candidate per lane.
//!
//! For a candidate inverse scale `id`, the sums are those of `quants::common::pm_sums`: over the
//! weights `j` in order, with `q` the grid value nearest to `id·x[j]` (ties up, ends clamp) and
//! `q'` the one nearest to `-id·x[j]`: `qx = fma(w·q, x, qx)`, `q2 = fma(w·q, q, q2)` and likewise
//! for `q'`. Each lane runs exactly that sequence of operations (same products, same fused
//! multiply-adds, same order), so every lane's result equals the scalar one bit for bit; the
//! nearest value is found by binary search over the midpoints (`vpermps` look-ups), which counts
//! the same midpoints `<= v` as the scalar linear count. Every `unsafe fn` requires AVX-512 F at
//! run time.

use std::arch::x86_64::*;

/// A table of up to 64 floats in four registers.
#[derive(Clone, Copy)]
struct Table([__m512; 4]);

impl Table {
    #[inline(always)]
    unsafe fn new(v: &[f32], n: usize) -> Table {
        let mut t = [_mm512_set1_ps(f32::INFINITY); 4];
        for (k, r) in t.iter_mut().enumerate().take(n.div_ceil(16)) {
            let mut buf = [f32::INFINITY; 16];
            for (i, b) in buf.iter_mut().enumerate() {
                if let Some(&x) = v.get(16 * k + i) {
                    *b = x;
                }
            }
            *r = _mm512_loadu_ps(buf.as_ptr());
        }
        Table(t)
    }

    /// Entry `idx` of each lane (`idx < n`).
    #[inline(always)]
    unsafe fn get(&self, idx: __m512i, n: usize) -> __m512 {
        let t = &self.0;
        if n <= 16 {
            _mm512_permutexvar_ps(idx, t[0])
        } else if n <= 32 {
            _mm512_permutex2var_ps(t[0], idx, t[1])
        } else {
            let lo = _mm512_permutex2var_ps(t[0], idx, t[1]);
            let hi = _mm512_permutex2var_ps(t[2], idx, t[3]);
            _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)), lo, hi)
        }
    }
}

/// Nearest grid value of each lane of `a` (`n` values, `mids` their `n - 1` midpoints padded
/// with +inf).
#[inline(always)]
unsafe fn nearest(mids: &Table, values: &Table, n: usize, a: __m512) -> __m512 {
    values.get(nearest_index(mids, n, a), n)
}

/// For each candidate inverse scale `ids[c]` (`ids.len() <= 16`), `out[c] = (qx+, q2+, qx-,
/// q2-)` over the weights `x`, `w` (same length), for a grid of `n` (a power of two, `<= 64`)
/// ascending `values` with midpoints `mids` (at least `n - 1`).
///
/// # Safety
/// Needs AVX-512 F.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
pub unsafe fn pm_sums(values: &[f32], mids: &[f32], n: usize, ids: &[f32], x: &[f32], w: &[f32], out: &mut [[f32; 4]]) {
    debug_assert!(n.is_power_of_two() && n <= 64 && ids.len() <= 16 && x.len() == w.len());
    let vt = Table::new(values, n);
    let mt = Table::new(&mids[..n - 1], n);
    let mut buf = [0f32; 16];
    buf[..ids.len()].copy_from_slice(ids);
    let id = _mm512_loadu_ps(buf.as_ptr());
    let z = _mm512_setzero_ps();
    let (mut qxp, mut q2p, mut qxm, mut q2m) = (z, z, z, z);
    for (&xj, &wj) in x.iter().zip(w) {
        let (xv, wv) = (_mm512_set1_ps(xj), _mm512_set1_ps(wj));
        let a = _mm512_mul_ps(id, xv);
        let qp = nearest(&mt, &vt, n, a);
        let qm = nearest(&mt, &vt, n, _mm512_xor_ps(a, _mm512_set1_ps(-0.0)));
        let (tp, tm) = (_mm512_mul_ps(wv, qp), _mm512_mul_ps(wv, qm));
        qxp = _mm512_fmadd_ps(tp, xv, qxp);
        q2p = _mm512_fmadd_ps(tp, qp, q2p);
        qxm = _mm512_fmadd_ps(tm, xv, qxm);
        q2m = _mm512_fmadd_ps(tm, qm, q2m);
    }
    let mut r = [[0f32; 16]; 4];
    for (o, v) in r.iter_mut().zip([qxp, q2p, qxm, q2m]) {
        _mm512_storeu_ps(o.as_mut_ptr(), v);
    }
    for (c, o) in out.iter_mut().enumerate().take(ids.len()) {
        *o = [r[0][c], r[1][c], r[2][c], r[3][c]];
    }
}

/// Safe form of [`pm_sums`], handed out only where AVX-512 F is present.
pub fn pm_sums_checked(values: &[f32], mids: &[f32], n: usize, ids: &[f32], x: &[f32], w: &[f32], out: &mut [[f32; 4]]) {
    assert!(n.is_power_of_two() && n <= 64 && values.len() >= n && mids.len() >= n - 1 && ids.len() <= 16 && out.len() >= ids.len() && x.len() == w.len());
    // SAFETY: handed out by `arch::pm_sums_kernel` only when AVX-512 F (and FMA) is present.
    unsafe { pm_sums(values, mids, n, ids, x, w, out) }
}

/// Index (0..n) of the nearest grid value of each lane of `a`: the number of midpoints `<= a`,
/// by binary search (the midpoints ascend).
#[inline(always)]
unsafe fn nearest_index(mids: &Table, n: usize, a: __m512) -> __m512i {
    let mut idx = _mm512_setzero_si512();
    let mut step = n / 2;
    while step > 0 {
        let m = mids.get(_mm512_add_epi32(idx, _mm512_set1_epi32(step as i32 - 1)), n);
        let ge = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, m);
        idx = _mm512_mask_add_epi32(idx, ge, idx, _mm512_set1_epi32(step as i32));
        step /= 2;
    }
    idx
}

/// Popcounts of 0..16.
static POPCOUNT4: [i32; 16] = [0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4];

/// IQ4_KSS's candidate evaluation (`quants::ks::iq4kss_block_scale`), one candidate inverse
/// scale `ids[c]` per lane (at most 16) on a 16-entry grid: for each of the 8 index groups of the
/// 32-weight sub-block (weights `2k, 2k+16, 2k+1, 2k+17`), the nearest indices of `id·x` and of
/// `-id·x`, pruned to an even popcount exactly as `prune` does (the move of one index by at most
/// 2 steps that adds the least weighted squared error against the plain grid's, first on ties),
/// then the least-squares sums: `out[c] = (qx+, q2+, qx-, q2-)`, the scalar sums bit for bit.
///
/// # Safety
/// Needs AVX-512 F.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
pub unsafe fn kss_sums(values: &[f32; 16], mids: &[f32], plain: &[f32; 16], ids: &[f32], x: &[f32; 32], w: &[f32; 32], out: &mut [[f32; 4]]) {
    let vt = Table::new(values, 16);
    let pt = Table::new(plain, 16);
    let mt = Table::new(&mids[..15], 16);
    let pc = _mm512_loadu_si512(POPCOUNT4.as_ptr().cast());
    let mut buf = [0f32; 16];
    buf[..ids.len()].copy_from_slice(ids);
    let id = _mm512_loadu_ps(buf.as_ptr());
    let this_d = _mm512_div_ps(_mm512_set1_ps(1.0), id);
    let z = _mm512_setzero_ps();
    let mut acc = [z; 4];
    for k in 0..8 {
        let members = [2 * k, 2 * k + 16, 2 * k + 1, 2 * k + 17];
        let xv = members.map(|j| _mm512_set1_ps(x[j]));
        let wv = members.map(|j| _mm512_set1_ps(w[j]));
        for sign in 0..2 {
            let mut idx = [_mm512_setzero_si512(); 4];
            for j in 0..4 {
                let a = _mm512_mul_ps(id, xv[j]);
                let a = if sign == 1 { _mm512_xor_ps(a, _mm512_set1_ps(-0.0)) } else { a };
                idx[j] = nearest_index(&mt, 16, a);
            }
            let pop = |v: __m512i| _mm512_permutexvar_epi32(v, pc);
            let parity = _mm512_and_si512(
                _mm512_add_epi32(_mm512_add_epi32(pop(idx[0]), pop(idx[1])), _mm512_add_epi32(pop(idx[2]), pop(idx[3]))),
                _mm512_set1_epi32(1),
            );
            let odd = _mm512_test_epi32_mask(parity, parity);
            if odd != 0 {
                let mut best = _mm512_set1_ps(f32::MAX);
                let (mut jbest, mut qbest) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                for j in 0..4 {
                    let q = idx[j];
                    let diff0 = _mm512_fmadd_ps(this_d, pt.get(q, 16), _mm512_xor_ps(xv[j], _mm512_set1_ps(-0.0)));
                    let neg0 = _mm512_xor_ps(_mm512_mul_ps(diff0, diff0), _mm512_set1_ps(-0.0));
                    let pq = pop(q);
                    for o in [-2, -1, 1, 2] {
                        let qq = _mm512_add_epi32(q, _mm512_set1_epi32(o));
                        let in_range = _mm512_cmplt_epu32_mask(qq, _mm512_set1_epi32(16));
                        let qqc = _mm512_and_si512(qq, _mm512_set1_epi32(15));
                        let flips = _mm512_and_si512(_mm512_add_epi32(pop(qqc), pq), _mm512_set1_epi32(1));
                        let valid = in_range & _mm512_test_epi32_mask(flips, flips) & odd;
                        let diff1 = _mm512_fmadd_ps(this_d, vt.get(qqc, 16), _mm512_xor_ps(xv[j], _mm512_set1_ps(-0.0)));
                        let score = _mm512_mul_ps(wv[j], _mm512_fmadd_ps(diff1, diff1, neg0));
                        let better = valid & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(score, best);
                        best = _mm512_mask_mov_ps(best, better, score);
                        jbest = _mm512_mask_mov_epi32(jbest, better, _mm512_set1_epi32(j as i32));
                        qbest = _mm512_mask_mov_epi32(qbest, better, qqc);
                    }
                }
                for (j, ij) in idx.iter_mut().enumerate() {
                    let here = odd & _mm512_cmpeq_epi32_mask(jbest, _mm512_set1_epi32(j as i32));
                    *ij = _mm512_mask_mov_epi32(*ij, here, qbest);
                }
            }
            for j in 0..4 {
                let q = vt.get(idx[j], 16);
                let t = _mm512_mul_ps(wv[j], q);
                acc[2 * sign] = _mm512_fmadd_ps(t, xv[j], acc[2 * sign]);
                acc[2 * sign + 1] = _mm512_fmadd_ps(t, q, acc[2 * sign + 1]);
            }
        }
    }
    let mut r = [[0f32; 16]; 4];
    for (o, v) in r.iter_mut().zip(acc) {
        _mm512_storeu_ps(o.as_mut_ptr(), v);
    }
    for (c, o) in out.iter_mut().enumerate().take(ids.len()) {
        *o = [r[0][c], r[1][c], r[2][c], r[3][c]];
    }
}

/// Safe form of [`kss_sums`], handed out only where AVX-512 F is present.
pub fn kss_sums_checked(values: &[f32; 16], mids: &[f32], plain: &[f32; 16], ids: &[f32], x: &[f32; 32], w: &[f32; 32], out: &mut [[f32; 4]]) {
    assert!(mids.len() >= 15 && ids.len() <= 16 && out.len() >= ids.len());
    // SAFETY: handed out by `arch::kss_sums_kernel` only when AVX-512 F (and FMA) is present.
    unsafe { kss_sums(values, mids, plain, ids, x, w, out) }
}

/// The split searches' sums of the first two runs `[0, i1)`, `[i1, i2)` for each lane's value
/// order: `fma(A, v0, B·v1)` and `fma(Aw·v0, v0, (Bw·v1)·v1)`, as the scalar searches round them;
/// `ax` = A and `aw` = Aw·v0 (both fixed for an `i1`), `bx`, `bw` the second run's sums.
#[inline(always)]
unsafe fn head_sums(ax: __m512, aw: __m512, bx: f32, bw: f32, v0: __m512, v1: __m512) -> (__m512, __m512) {
    (_mm512_fmadd_ps(ax, v0, _mm512_mul_ps(_mm512_set1_ps(bx), v1)), _mm512_fmadd_ps(aw, v0, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(bw), v1), v1)))
}

/// One register of split-search candidates: with the lanes' prefix sums up to i3 and last-run
/// sums `(sxk, swk, dx, dwv)` (`dwv` already times v3), the prefix sums at i2 and the `head`
/// sums, `Σwxq = fma(dx, v3, fma(sxk - sx[i2], v2, head))`, `Σwq² = fma(dwv, v3, fma((swk -
/// sw[i2])·v2, v2, head))` — and the lanes of `valid` that pass [`Best::offer`]'s test against
/// `score` (`Σwq² > 0`, `Σwxq² > score·Σwq²`).
///
/// [`Best::offer`]: crate::quants::common::Best::offer
#[inline(always)]
unsafe fn candidate_sums(lanes: (__m512, __m512, __m512, __m512), at_i2: (__m512, __m512), head: (__m512, __m512), v2: __m512, v3: __m512, valid: u16, score: __m512) -> (__m512, __m512, u16) {
    let (sxk, swk, dx, dwv) = lanes;
    let (cx, cw) = (_mm512_sub_ps(sxk, at_i2.0), _mm512_sub_ps(swk, at_i2.1));
    let x = _mm512_fmadd_ps(dx, v3, _mm512_fmadd_ps(cx, v2, head.0));
    let q = _mm512_fmadd_ps(dwv, v3, _mm512_fmadd_ps(_mm512_mul_ps(cw, v2), v2, head.1));
    let m = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(valid, q, _mm512_setzero_ps()), _mm512_mul_ps(x, x), _mm512_mul_ps(score, q));
    (x, q, m)
}

/// 0..16 (lane indices).
static LANE_INDEX: [i32; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// IQ2_K's 3-threshold search (`quants::k::threshold4_search`, the scalar oracle): the same
/// candidates with the same operations, 16 lanes a register (lane `k = 4·i3 + c` of a run of 32),
/// the in-order comparison over the lanes the mask test against the run's starting score passed.
///
/// It skips the `i1`, or `(i1, i2)`, whose candidates provably all fail that test (the oracle
/// evaluates them and finds nothing, so the result is the same). A candidate's score `Σwxq² /
/// Σwq²` is the largest error reduction `max_d (2d·Σwxq - d²·Σwq²)` of its assignment; split
/// into the first runs ("head") and the rest, it is at most the head's own score plus the
/// rest's. For an `i1` (head = run 0, one value: `sx²/sw`) the rest's is at most its `Σw·x²`
/// (Cauchy–Schwarz); for an `(i1, i2)` (head = runs 0 and 1 with their values, per order) it is
/// at most the best the last two runs reach alone over all `i3` (`tail_max`, once per `i2`). The
/// test skips where that bound plus a slack of `Σw·x²/256` (far above the rounding of any of these sums) stays below
/// the current score less 2^-10 (far above the drift of the score itself within a run), and only
/// away from underflow (`Σw·x² > 1e-30`).
///
/// # Safety
/// Needs AVX-512 F.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
pub unsafe fn threshold4(sx: &[f32; 17], sw: &[f32; 17], sxx: &[f32; 17], vals: &[[f32; 4]; 4]) -> (f32, usize) {
    use crate::quants::common::Best;
    // Register r holds lanes 16r..16r + 16 (i3 = 4r + l / 4); the orders' values repeat every 4
    // lanes, so one register of each serves all. The lanes' inputs are those of
    // `quants::k::Threshold4Lanes` (the same operations), gathered in registers.
    let lane = _mm512_loadu_si512(LANE_INDEX.as_ptr().cast());
    let (i3_of, c_of) = (_mm512_srli_epi32::<2>(lane), _mm512_and_si512(lane, _mm512_set1_epi32(3)));
    let vv = _mm512_loadu_ps(vals.as_ptr().cast());
    let [v0, v1, v2, v3]: [__m512; 4] = core::array::from_fn(|j| _mm512_permutexvar_ps(_mm512_add_epi32(_mm512_slli_epi32::<2>(c_of), _mm512_set1_epi32(j as i32)), vv));
    let (sx16, sw16) = (_mm512_loadu_ps(sx.as_ptr()), _mm512_loadu_ps(sw.as_ptr()));
    let at = |t: __m512, r: usize| _mm512_permutexvar_ps(_mm512_add_epi32(i3_of, _mm512_set1_epi32(4 * r as i32)), t);
    let sxk: [__m512; 4] = core::array::from_fn(|r| at(sx16, r));
    let swk: [__m512; 4] = core::array::from_fn(|r| at(sw16, r));
    let dx: [__m512; 4] = core::array::from_fn(|r| _mm512_sub_ps(_mm512_set1_ps(sx[16]), sxk[r]));
    let dwv: [__m512; 4] = core::array::from_fn(|r| _mm512_mul_ps(_mm512_sub_ps(_mm512_set1_ps(sw[16]), swk[r]), v3));
    let zero = _mm512_setzero_ps();
    let mut best = Best { d: 0.0, score: 0.0 };
    let mut best_c = 0;
    let (mut qx, mut q2) = ([0f32; 32], [0f32; 32]);
    let energy = sxx[16];
    let prunable = energy > 1e-30 && energy.is_finite();
    // the score a head must beat: the current one, shrunk, less the slack and the tail's Σw·x²
    let need = |score: f32, i: usize| score * (1.0 - 1.0 / 1024.0) - energy * (1.0 / 256.0) - (energy - sxx[i]);
    // For each i2, lane k: the best score of the last two runs alone over i3, in order k % 4
    // (a tighter bound of the rest than its Σw·x²; 0 where they have no weight).
    let tail_max: [__m512; 16] = core::array::from_fn(|i2| {
        let (bx, bw) = (_mm512_set1_ps(sx[i2]), _mm512_set1_ps(sw[i2]));
        let mut m = zero;
        for r in i2 / 4..4 {
            let valid: u16 = if r == i2 / 4 { 0xffff << (4 * (i2 % 4)) } else { 0xffff };
            let (cx, cw) = (_mm512_sub_ps(sxk[r], bx), _mm512_sub_ps(swk[r], bw));
            let tx = _mm512_fmadd_ps(cx, v2, _mm512_mul_ps(dx[r], v3));
            let tq = _mm512_fmadd_ps(_mm512_mul_ps(cw, v2), v2, _mm512_mul_ps(dwv[r], v3));
            let pos = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(valid, tq, zero);
            m = _mm512_max_ps(m, _mm512_maskz_div_ps(pos, _mm512_mul_ps(tx, tx), tq));
        }
        // the four i3 of a register are its 128-bit chunks
        m = _mm512_max_ps(m, _mm512_shuffle_f32x4::<0x4E>(m, m));
        _mm512_max_ps(m, _mm512_shuffle_f32x4::<0xB1>(m, m))
    });
    for i1 in 0..16 {
        if prunable {
            // head = run 0 alone, one value: score sx²/sw
            let lim = need(best.score, i1);
            if lim > 0.0 && sx[i1] * sx[i1] < lim * sw[i1] {
                continue;
            }
        }
        let (ax, aw) = (_mm512_set1_ps(sx[i1]), _mm512_mul_ps(_mm512_set1_ps(sw[i1]), v0));
        for i2 in i1..16 {
            let head = head_sums(ax, aw, sx[i2] - sx[i1], sw[i2] - sw[i1], v0, v1);
            if prunable {
                // head = runs 0 and 1, per order; the rest bounded by `tail_max`
                let lim = _mm512_sub_ps(_mm512_set1_ps(need(best.score, 16)), tail_max[i2]);
                if _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_mul_ps(head.0, head.0), _mm512_mul_ps(lim, head.1)) == 0xffff {
                    continue;
                }
            }
            let at_i2 = (_mm512_set1_ps(sx[i2]), _mm512_set1_ps(sw[i2]));
            for half in i2 / 8..2 {
                let first = 4 * i2.saturating_sub(8 * half);
                let score = _mm512_set1_ps(best.score);
                let valid = u32::MAX << first; // lanes i3 >= i2 (first < 32)
                let r = 2 * half;
                let eval = |rr: usize| candidate_sums((sxk[r + rr], swk[r + rr], dx[r + rr], dwv[r + rr]), at_i2, head, v2, v3, (valid >> (16 * rr)) as u16, score);
                // (a register of lanes i3 < i2 only has no candidates)
                let lo = if first < 16 { eval(0) } else { (zero, zero, 0) };
                let hi = eval(1);
                let mut any = lo.2 as u32 | (hi.2 as u32) << 16;
                if any != 0 {
                    for (rr, (x, q, _)) in [lo, hi].into_iter().enumerate() {
                        _mm512_storeu_ps(qx.as_mut_ptr().add(16 * rr), x);
                        _mm512_storeu_ps(q2.as_mut_ptr().add(16 * rr), q);
                    }
                    while any != 0 {
                        let k = any.trailing_zeros() as usize;
                        any &= any - 1;
                        if best.offer(qx[k], q2[k]) {
                            best_c = k % 4;
                        }
                    }
                }
            }
        }
    }
    (best.d, best_c)
}

/// [`threshold4`] behind the safe signature of `arch::Threshold4Fn`.
pub fn threshold4_checked(sx: &[f32; 17], sw: &[f32; 17], sxx: &[f32; 17], vals: &[[f32; 4]; 4]) -> (f32, usize) {
    // SAFETY: handed out by `arch::threshold4_kernel` only when AVX-512 F (and FMA) is present.
    unsafe { threshold4(sx, sw, sxx, vals) }
}

/// IQ2_KS's exhaustive split search (`quants::iq2_ks::split_search_sums`, the scalar oracle):
/// the same candidates with the same operations, 16 lanes a register — lane `l` of register `r`
/// is the split point `i3 = 8 + 4r + l/4` with order `l % 4`, so the 96 lanes of the six
/// registers run in the reference's comparison order for a fixed `(i1, i2)`. Where a lane beats
/// the starting score, the lanes from the first such one on are offered in order, as the scalar
/// replay does.
///
/// # Safety
/// Needs AVX-512 F.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
pub unsafe fn split32(sx: &[f32; 33], sw: &[f32; 33], vals: &[[f32; 4]; 4]) -> (f32, usize) {
    use crate::quants::common::Best;
    use crate::quants::iq2_ks::{MAX_I1, MIN_I3};
    const REGS: usize = (32 - MIN_I3) / 4;
    let (mut sxk, mut swk, mut dx, mut dwv) = ([0f32; 16 * REGS], [0f32; 16 * REGS], [0f32; 16 * REGS], [0f32; 16 * REGS]);
    for k in 0..16 * REGS {
        let (i3, o) = (MIN_I3 + k / 4, k % 4);
        sxk[k] = sx[i3];
        swk[k] = sw[i3];
        dx[k] = sx[32] - sx[i3];
        // the scalar code's `ew·v3`, one rounding
        dwv[k] = (sw[32] - sw[i3]) * vals[o][3];
    }
    let v: [__m512; 4] = core::array::from_fn(|j| {
        let lane: [f32; 16] = core::array::from_fn(|l| vals[l % 4][j]);
        _mm512_loadu_ps(lane.as_ptr())
    });
    let [v0, v1, v2, v3] = v;
    let ld = |a: &[f32; 16 * REGS], r: usize| _mm512_loadu_ps(a.as_ptr().add(16 * r));
    let (sxk, swk, dx, dwv): ([__m512; REGS], [__m512; REGS], [__m512; REGS], [__m512; REGS]) =
        (core::array::from_fn(|r| ld(&sxk, r)), core::array::from_fn(|r| ld(&swk, r)), core::array::from_fn(|r| ld(&dx, r)), core::array::from_fn(|r| ld(&dwv, r)));
    let mut best = Best { d: 0.0, score: 0.0 };
    let mut best_o = 0;
    let (mut qx, mut q2) = ([0f32; 16 * REGS], [0f32; 16 * REGS]);
    for i1 in 0..MAX_I1 {
        let (ax, aw) = (_mm512_set1_ps(sx[i1]), _mm512_mul_ps(_mm512_set1_ps(sw[i1]), v0));
        for i2 in i1..32 {
            let head = head_sums(ax, aw, sx[i2] - sx[i1], sw[i2] - sw[i1], v0, v1);
            let at_i2 = (_mm512_set1_ps(sx[i2]), _mm512_set1_ps(sw[i2]));
            let lo = i2.max(MIN_I3);
            let (r0, first) = ((lo - MIN_I3) / 4, 4 * ((lo - MIN_I3) % 4));
            let score = _mm512_set1_ps(best.score);
            // the sums of register r, and the lanes of it that beat the starting score
            let sums = |r: usize| {
                let valid = if r == r0 { u16::MAX << first } else { u16::MAX };
                candidate_sums((sxk[r], swk[r], dx[r], dwv[r]), at_i2, head, v2, v3, valid, score)
            };
            let mut any = 0u16;
            for r in r0..REGS {
                any |= sums(r).2;
            }
            if any != 0 {
                // Rare: compute the sums again, keep them, and offer the lanes from the first hit
                // on (those before it lose to the unchanged score in the replay too).
                let mut hits = 0u128;
                for r in r0..REGS {
                    let (x, q, m) = sums(r);
                    _mm512_storeu_ps(qx.as_mut_ptr().add(16 * r), x);
                    _mm512_storeu_ps(q2.as_mut_ptr().add(16 * r), q);
                    hits |= (m as u128) << (16 * r);
                }
                for k in hits.trailing_zeros() as usize..16 * REGS {
                    if best.offer(qx[k], q2[k]) {
                        best_o = k % 4;
                    }
                }
            }
        }
    }
    (best.d, best_o)
}

/// [`split32`] behind the safe signature of `arch::Split32Fn`.
pub fn split32_checked(sx: &[f32; 33], sw: &[f32; 33], vals: &[[f32; 4]; 4]) -> (f32, usize) {
    // SAFETY: handed out by `arch::split32_kernel` only when AVX-512 F (and FMA) is present.
    unsafe { split32(sx, sw, vals) }
}

/// 16 floats of `t` at `16·chunk` (a table in memory, for the look-ups below).
#[inline(always)]
unsafe fn chunk16(t: &[f32], chunk: usize) -> __m512 {
    debug_assert!(t.len() >= 16 * chunk + 16);
    _mm512_loadu_ps(t.as_ptr().add(16 * chunk))
}

/// Entry `idx` (bits 0..5) of a 64-entry table in memory, per lane.
#[inline(always)]
unsafe fn lookup64(t: &[f32; 64], idx: __m512i) -> __m512 {
    let lo = _mm512_permutex2var_ps(chunk16(t, 0), idx, chunk16(t, 1));
    let hi = _mm512_permutex2var_ps(chunk16(t, 2), idx, chunk16(t, 3));
    _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)), lo, hi)
}

/// Entry `idx` (bits 0..4) of a 32-entry table in memory, per lane.
#[inline(always)]
unsafe fn lookup32(t: &[f32; 32], idx: __m512i) -> __m512 {
    _mm512_permutex2var_ps(chunk16(t, 0), idx, chunk16(t, 1))
}

/// Lane `j` of result `i` is lane `i` of `a[j]`.
#[inline(always)]
unsafe fn transpose16(a: &[__m512; 16]) -> [__m512; 16] {
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    // per 128-bit chunk k: u[4g + m] = column 4k + m of rows 4g..4g + 4
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let r = &a[4 * g..4 * g + 4];
        let (t0, t1) = (_mm512_unpacklo_ps(r[0], r[1]), _mm512_unpackhi_ps(r[0], r[1]));
        let (t2, t3) = (_mm512_unpacklo_ps(r[2], r[3]), _mm512_unpackhi_ps(r[2], r[3]));
        u[4 * g] = ps(_mm512_unpacklo_pd(pd(t0), pd(t2)));
        u[4 * g + 1] = ps(_mm512_unpackhi_pd(pd(t0), pd(t2)));
        u[4 * g + 2] = ps(_mm512_unpacklo_pd(pd(t1), pd(t3)));
        u[4 * g + 3] = ps(_mm512_unpackhi_pd(pd(t1), pd(t3)));
    }
    // then the 4 × 4 transpose of 128-bit chunks, for each m
    let mut out = [_mm512_setzero_ps(); 16];
    for m in 0..4 {
        let v0 = _mm512_shuffle_f32x4::<0x44>(u[m], u[4 + m]);
        let v1 = _mm512_shuffle_f32x4::<0xEE>(u[m], u[4 + m]);
        let v2 = _mm512_shuffle_f32x4::<0x44>(u[8 + m], u[12 + m]);
        let v3 = _mm512_shuffle_f32x4::<0xEE>(u[8 + m], u[12 + m]);
        out[m] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
        out[4 + m] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
        out[8 + m] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
        out[12 + m] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
    }
    out
}

/// Dword indices of the even / odd elements of 32 (two registers).
static EVEN_ODD: [[i32; 16]; 2] = {
    let mut t = [[0i32; 16]; 2];
    let mut i = 0;
    while i < 16 {
        t[0][i] = 2 * i as i32;
        t[1][i] = 2 * i as i32 + 1;
        i += 1;
    }
    t
};

/// The 16 pairs of a 32-weight sub-block, one per lane: `(x1, x2, w1, w2)`.
#[inline(always)]
unsafe fn pairs(x: &[f32; 32], w: &[f32; 32]) -> [__m512; 4] {
    let even = _mm512_loadu_si512(EVEN_ODD[0].as_ptr().cast());
    let odd = _mm512_loadu_si512(EVEN_ODD[1].as_ptr().cast());
    let split = |v: &[f32; 32]| {
        let (lo, hi) = (chunk16(v, 0), chunk16(v, 1));
        (_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi))
    };
    let ((x1, x2), (w1, w2)) = (split(x), split(w));
    [x1, x2, w1, w2]
}

/// IQ2_KL's grid point of each lane's pair `(s1, s2)` (scaled) with weights `(w1, w2)`, as
/// `quants::iq2_kl::pair_point` chooses it: the cell of the two nearest 1-D values if it is on
/// the grid, else the listed neighbour of least weighted squared distance (first on ties).
/// Returns the point's coordinates and (if `INDEX`) its index.
#[inline(always)]
unsafe fn iq2kl_point<const INDEX: bool>(mids: &Table, s1: __m512, s2: __m512, w1: __m512, w2: __m512) -> (__m512, __m512, __m512i) {
    use crate::quants::iq2_kl::PAIR_TABLES as T;
    let cell = _mm512_add_epi32(_mm512_slli_epi32::<3>(nearest_index(mids, 8, s1)), nearest_index(mids, 8, s2));
    let c = _mm512_castps_si512(lookup64(&T.cell_bits, cell));
    let on = _mm512_cmpge_epi32_mask(c, _mm512_setzero_si512());
    let list = _mm512_xor_si512(c, _mm512_set1_epi32(-1)); // -c - 1
    let mut best = _mm512_set1_ps(f32::MAX);
    let (g0x, g0y) = crate::quants::iq2_kl::grid_point(0);
    let (mut bx, mut by) = (_mm512_set1_ps(g0x as f32), _mm512_set1_ps(g0y as f32));
    let mut bn = _mm512_setzero_si512();
    if on != 0xffff {
        for k in 0..8 {
            let (nx, ny) = (lookup32(&T.nb_x[k], list), lookup32(&T.nb_y[k], list));
            let (d1, d2) = (_mm512_sub_ps(nx, s1), _mm512_sub_ps(ny, s2));
            let score = _mm512_fmadd_ps(_mm512_mul_ps(w1, d1), d1, _mm512_mul_ps(_mm512_mul_ps(w2, d2), d2));
            let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(score, best);
            best = _mm512_mask_mov_ps(best, lt, score);
            bx = _mm512_mask_mov_ps(bx, lt, nx);
            by = _mm512_mask_mov_ps(by, lt, ny);
            if INDEX {
                bn = _mm512_mask_mov_epi32(bn, lt, _mm512_castps_si512(lookup32(&T.nb_bits[k], list)));
            }
        }
    }
    let gx = _mm512_mask_mov_ps(bx, on, lookup64(&T.cell_x, cell));
    let gy = _mm512_mask_mov_ps(by, on, lookup64(&T.cell_y, cell));
    (gx, gy, _mm512_mask_mov_epi32(bn, on, c))
}

/// IQ2_KL's candidate evaluation (`quants::iq2_kl::candidate_sums`, its scalar oracle), one pair
/// per lane: for each inverse scale `ids[c]`, the points of `id·x` and of `-id·x`, then
/// `out[c] = (qx+, q2+, qx-, q2-)`, each summed over the pairs in order (after a transpose), the
/// scalar sums bit for bit.
///
/// # Safety
/// Needs AVX-512 F.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
pub unsafe fn iq2kl_sums(ids: &[f32], x: &[f32; 32], w: &[f32; 32], out: &mut [[f32; 4]]) {
    let mids = Table::new(&crate::quants::iq2_kl::PAIR_TABLES.mids, 8);
    let [x1, x2, w1, w2] = pairs(x, w);
    let neg = _mm512_set1_ps(-0.0);
    for (ids, out) in ids.chunks(4).zip(out.chunks_mut(4)) {
        // v[4c + 2·sign + 0/1]: the per-pair terms of Σwxq and Σwq²
        let mut v = [_mm512_setzero_ps(); 16];
        for (c, &id) in ids.iter().enumerate() {
            let idv = _mm512_set1_ps(id);
            let (s1, s2) = (_mm512_mul_ps(idv, x1), _mm512_mul_ps(idv, x2));
            for sign in 0..2 {
                let (a1, a2) = if sign == 0 { (s1, s2) } else { (_mm512_xor_ps(s1, neg), _mm512_xor_ps(s2, neg)) };
                let (gx, gy, _) = iq2kl_point::<false>(&mids, a1, a2, w1, w2);
                let (t1, t2) = (_mm512_mul_ps(w1, gx), _mm512_mul_ps(w2, gy));
                v[4 * c + 2 * sign] = _mm512_fmadd_ps(t1, x1, _mm512_mul_ps(t2, x2));
                v[4 * c + 2 * sign + 1] = _mm512_fmadd_ps(t1, gx, _mm512_mul_ps(t2, gy));
            }
        }
        let t = transpose16(&v);
        let mut acc = _mm512_setzero_ps();
        for tp in t {
            acc = _mm512_add_ps(acc, tp);
        }
        let mut r = [0f32; 16];
        _mm512_storeu_ps(r.as_mut_ptr(), acc);
        for (c, o) in out.iter_mut().enumerate().take(ids.len()) {
            o.copy_from_slice(&r[4 * c..4 * c + 4]);
        }
    }
}

/// IQ2_KL's point assignment (`quants::iq2_kl::assign`, its scalar oracle) at inverse scale
/// `id`, one pair per lane: the same points.
///
/// # Safety
/// Needs AVX-512 F.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
pub unsafe fn iq2kl_assign(id: f32, x: &[f32; 32], w: &[f32; 32], points: &mut [u8; 16]) {
    let mids = Table::new(&crate::quants::iq2_kl::PAIR_TABLES.mids, 8);
    let [x1, x2, w1, w2] = pairs(x, w);
    let idv = _mm512_set1_ps(id);
    let (_, _, g) = iq2kl_point::<true>(&mids, _mm512_mul_ps(idv, x1), _mm512_mul_ps(idv, x2), w1, w2);
    _mm_storeu_si128(points.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(g));
}

/// [`iq2kl_sums`] behind the safe signature of `arch::Iq2klKernels::sums`.
pub fn iq2kl_sums_checked(ids: &[f32], x: &[f32; 32], w: &[f32; 32], out: &mut [[f32; 4]]) {
    assert!(out.len() >= ids.len());
    // SAFETY: handed out by `arch::iq2kl_kernels` only when AVX-512 F (and FMA) is present.
    unsafe { iq2kl_sums(ids, x, w, out) }
}

/// [`iq2kl_assign`] behind the safe signature of `arch::Iq2klKernels::assign`.
pub fn iq2kl_assign_checked(id: f32, x: &[f32; 32], w: &[f32; 32], points: &mut [u8; 16]) {
    // SAFETY: as for `iq2kl_sums_checked`.
    unsafe { iq2kl_assign(id, x, w, points) }
}
