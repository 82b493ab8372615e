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
/// with +inf): the index is the number of midpoints `<= a`.
#[inline(always)]
unsafe fn nearest(mids: &Table, values: &Table, n: usize, a: __m512) -> __m512 {
    let mut idx = _mm512_setzero_si512();
    let mut step = n / 2;
    while step > 0 {
        let m = mids.get(_mm512_add_epi32(idx, _mm512_set1_epi32(step as i32 - 1)), n);
        let ge = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, m);
        idx = _mm512_mask_add_epi32(idx, ge, idx, _mm512_set1_epi32(step as i32));
        step /= 2;
    }
    values.get(idx, n)
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
