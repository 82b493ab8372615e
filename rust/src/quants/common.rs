//! Machinery shared by the quantizers (FORMATS.md §1, §9.1): rounding, nearest-grid-value
//! search, importance weights, the least-squares scale comparison.
//!
//! The reference is compiled with floating-point contraction, so several of its sums are fused
//! multiply-adds; iqrs writes those as `mul_add` on purpose so that it lands on the same float
//! bits. The quantizers are `#[inline(always)]` bodies instantiated once with the FMA target
//! feature (one instruction per `mul_add`) and once without (libm `fma`, same result).

/// Round to nearest, ties to even, for |x| < 2^22 (the reference's `nearest_int`).
#[inline(always)]
pub fn nearest_int(x: f32) -> i32 {
    let v = x + 12582912.0f32;
    ((v.to_bits() & 0x007f_ffff) as i32) - 0x0040_0000
}

/// `nearest_int(a * b)` as the reference computes it: its inlined `a*b + 12582912` is contracted
/// to one fused multiply-add, so the product is not rounded on its own.
#[inline(always)]
pub fn nearest_int_mul(a: f32, b: f32) -> i32 {
    let v = fmadd(a, b, 12582912.0f32);
    ((v.to_bits() & 0x007f_ffff) as i32) - 0x0040_0000
}

/// `a * b + c` with one rounding.
#[inline(always)]
pub fn fmadd(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// The positions `0..N` of `x` (finite values) sorted by (value, position): the order the
/// reference's sorts give (ties keep their positions; -0 equals +0). Sorts integer keys — the
/// value's bits made order-preserving, then the position — instead of comparing floats.
#[inline(always)]
pub fn sorted_positions<const N: usize>(x: &[f32]) -> [usize; N] {
    debug_assert!(x.len() >= N && N <= 256);
    let mut keys: [u64; N] = std::array::from_fn(|j| {
        let b = (x[j] + 0.0).to_bits(); // -0 + 0 = +0
        let ordered = if b >> 31 != 0 { !b } else { b | 0x8000_0000 };
        (ordered as u64) << 8 | j as u64
    });
    keys.sort_unstable();
    keys.map(|k| (k & 0xff) as usize)
}

/// A sorted half-table of a non-linear grid with an O(1) nearest-value search.
pub struct Grid<const N: usize> {
    /// The grid values as f32.
    pub values: [f32; N],
    lo: i32,
    hi: i32,
    /// `lut[k - lo]` = largest `i` with `values[i] <= k`, for integers `lo <= k < hi`.
    lut: [u8; 256],
    /// Midpoints between neighbours (`N - 1` of them; exact: the values are integers).
    mids: [f32; 128],
}

impl<const N: usize> Grid<N> {
    /// Builds the search structure for an ascending table.
    pub const fn new(table: &[i8]) -> Self {
        let mut values = [0f32; N];
        let mut i = 0;
        while i < N {
            values[i] = table[i] as f32;
            i += 1;
        }
        let lo = table[0] as i32;
        let hi = table[N - 1] as i32;
        let mut lut = [0u8; 256];
        let mut k = lo;
        let mut idx = 0usize;
        while k < hi {
            while idx + 1 < N && (table[idx + 1] as i32) <= k {
                idx += 1;
            }
            lut[(k - lo) as usize] = idx as u8;
            k += 1;
        }
        let mut mids = [f32::INFINITY; 128];
        let mut m = 0;
        while m + 1 < N {
            mids[m] = (table[m] as f32 + table[m + 1] as f32) * 0.5;
            m += 1;
        }
        Grid { values, lo, hi, lut, mids }
    }

    /// `best_index` of every element of `v` and of its negation, in a form compilers vectorize:
    /// the index is the number of midpoints `<= v` (ties go up, ends clamp — the same rule; the
    /// reference's float comparison is exact near a midpoint, so the two always agree).
    #[inline(always)]
    pub fn best_indices_pm<const M: usize>(&self, v: &[f32; M], plus: &mut [u8; M], minus: &mut [u8; M]) {
        let mut cp = [0u8; M];
        let mut cm = [0u8; M];
        for k in 0..N - 1 {
            let m = self.mids[k];
            for j in 0..M {
                cp[j] += (v[j] >= m) as u8;
                cm[j] += (-v[j] >= m) as u8;
            }
        }
        *plus = cp;
        *minus = cm;
    }

    /// `best_index` of every element of `v`, vectorizable (see [`Grid::best_indices_pm`]).
    #[inline(always)]
    pub fn best_indices<const M: usize>(&self, v: &[f32; M], out: &mut [u8; M]) {
        let mut c = [0u8; M];
        for k in 0..N - 1 {
            let m = self.mids[k];
            for j in 0..M {
                c[j] += (v[j] >= m) as u8;
            }
        }
        *out = c;
    }

    /// Index of the grid value nearest to `x`; an exact tie goes to the higher index; values
    /// beyond either end clamp to it (FORMATS.md §1 `best_index`).
    #[inline(always)]
    pub fn best_index(&self, x: f32) -> usize {
        if !(x > self.lo as f32) {
            return 0;
        }
        if x >= self.hi as f32 {
            return N - 1;
        }
        // lo < x < hi, so floor(x) - lo is in 0..hi-lo <= 255 and i + 1 < N.
        let k = x.floor() as i32;
        let i = self.lut[((k - self.lo) as usize) & 255] as usize;
        let (lo, hi) = (self.values[i.min(N - 2)], self.values[(i + 1).min(N - 1)]);
        if x - lo < hi - x {
            i
        } else {
            i + 1
        }
    }
}

/// Replaces the imatrix of every `block`-column group of a row by 1e-9 where it, the row, or
/// their product is (nearly) all zero — what the reference does before quantizing a row
/// (`QHelper`, FORMATS.md §9.1). Writes the weights to `out`.
#[inline(always)]
pub fn sanitize_imatrix(imatrix: &[f32], x: &[f32], block: usize, out: &mut [f32]) {
    const EPS: f32 = 1e-9;
    let thresh = block as f32 * EPS * EPS;
    for ((wb, xb), ob) in imatrix.chunks_exact(block).zip(x.chunks_exact(block)).zip(out.chunks_exact_mut(block)) {
        let (mut sw2, mut sx2, mut swx) = (0f32, 0f32, 0f32);
        for (&w, &x) in wb.iter().zip(xb) {
            sw2 = fmadd(w, w, sw2);
            sx2 = fmadd(x, x, sx2);
            swx = fmadd(w, x.abs(), swx);
        }
        if sw2 > thresh && sx2 > thresh && swx > thresh {
            ob.copy_from_slice(wb);
        } else {
            ob.fill(EPS);
        }
    }
}

/// `k · Σx² / 256` over a super-block, summed in order. The reference does not contract this
/// sum into fused multiply-adds (measured: every quantizer here matches it byte for byte only so),
/// while it does contract `s2 + x²` in the importance weights `qw·sqrt(s2 + x²)`.
#[inline(always)]
pub fn sigma2(xb: &[f32], k: f32) -> f32 {
    let mut s = 0f32;
    for &x in xb {
        s += x * x;
    }
    s * (k / 256.0)
}

/// The signed value with the largest magnitude (first one on ties) and that magnitude.
#[inline(always)]
pub fn signed_max(xb: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &x in xb {
        let ax = x.abs();
        if ax > amax {
            amax = ax;
            max = x;
        }
    }
    (amax, max)
}

/// Least-squares scale bookkeeping: a candidate with sums `Σwxq`, `Σwq²` beats the current
/// best iff `(Σwxq)² > best·Σwq²` (strict: earlier candidates win ties).
#[derive(Clone, Copy, Debug)]
pub struct Best {
    pub d: f32,
    pub score: f32,
}

impl Best {
    #[inline(always)]
    pub fn offer(&mut self, sumqx: f32, sumq2: f32) -> bool {
        if sumq2 > 0.0 && sumqx * sumqx > self.score * sumq2 {
            self.d = sumqx / sumq2;
            self.score = self.d * sumqx;
            true
        } else {
            false
        }
    }
}

/// The per-weight importance a quantizer uses where no imatrix is given (FORMATS.md §9.1 table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultWeight {
    /// `x²` (IQ4_KS, IQ5_KS, IQ3_KS).
    Square,
    /// `0.25·s2 + x²` (IQ2_KS).
    QuarterSigmaPlusSquare,
    /// `|x|` (IQ2_KL).
    Abs,
}

/// Per-weight importance of a sub-block (§9.1): `qw·sqrt(s2 + x²)` with an imatrix (the
/// reference's `s2 + x²` is contracted to one fused multiply-add), else the type's default.
#[inline(always)]
pub fn importance(xb: &[f32], qw: Option<&[f32]>, s2: f32, default: DefaultWeight, w: &mut [f32]) {
    match (qw, default) {
        (Some(qw), _) => {
            for ((w, &x), &q) in w.iter_mut().zip(xb).zip(qw) {
                *w = q * fmadd(x, x, s2).sqrt();
            }
        }
        (None, DefaultWeight::Square) => {
            for (w, &x) in w.iter_mut().zip(xb) {
                *w = x * x;
            }
        }
        (None, DefaultWeight::QuarterSigmaPlusSquare) => {
            for (w, &x) in w.iter_mut().zip(xb) {
                *w = fmadd(x, x, 0.25 * s2);
            }
        }
        (None, DefaultWeight::Abs) => {
            for (w, &x) in w.iter_mut().zip(xb) {
                *w = x.abs();
            }
        }
    }
}

/// Sanitizes the imatrix for one row in `block`-column groups (§9.1) and hands the row's
/// weights to `f` (`None` without an imatrix).
pub fn with_sanitized_imatrix<R>(x: &[f32], imatrix: Option<&[f32]>, block: usize, f: impl FnOnce(Option<&[f32]>) -> R) -> R {
    match imatrix {
        Some(im) => {
            let mut qw = vec![0f32; x.len()];
            sanitize_imatrix(im, x, block, &mut qw);
            f(Some(&qw))
        }
        None => f(None),
    }
}

/// For the inverse scale `id`, the least-squares sums `(Σwxq, Σwq²)` of the nearest grid
/// values of `id·x` ("plus") and of `-id·x` ("minus"): `(qx+, q2+, qx-, q2-)` (up to 32 weights).
#[inline(always)]
pub fn pm_sums<const N: usize>(g: &Grid<N>, id: f32, xb: &[f32], w: &[f32]) -> [f32; 4] {
    let mut al = [0f32; 32];
    for j in 0..xb.len() {
        al[j] = id * xb[j];
    }
    let (mut ip, mut im) = ([0u8; 32], [0u8; 32]);
    g.best_indices_pm(&al, &mut ip, &mut im);
    let (mut qxp, mut q2p, mut qxm, mut q2m) = (0f32, 0f32, 0f32, 0f32);
    for j in 0..xb.len() {
        let q = g.values[ip[j] as usize % N];
        qxp = fmadd(w[j] * q, xb[j], qxp);
        q2p = fmadd(w[j] * q, q, q2p);
        let q = g.values[im[j] as usize % N];
        qxm = fmadd(w[j] * q, xb[j], qxm);
        q2m = fmadd(w[j] * q, q, q2m);
    }
    [qxp, q2p, qxm, q2m]
}

impl<const N: usize> Grid<N> {
    /// The `N - 1` midpoints between neighbouring values (padded with +inf).
    #[inline(always)]
    pub fn mids(&self) -> &[f32] {
        &self.mids
    }

    /// [`pm_sums`] of every candidate inverse scale in `ids` over the weights `xb`, `w` (up to
    /// 32): `out[c] = (qx+, q2+, qx-, q2-)` of `ids[c]`. Many candidates at once, one per lane,
    /// where the ISA in use has a kernel for it (the same bits either way).
    #[inline(always)]
    pub fn pm_sums_many(&self, ids: &[f32], xb: &[f32], w: &[f32], out: &mut [[f32; 4]]) {
        match crate::arch::pm_sums_kernel() {
            Some(f) => {
                for (ids, out) in ids.chunks(16).zip(out.chunks_mut(16)) {
                    f(&self.values, &self.mids, N, ids, xb, w, out);
                }
            }
            None => {
                for (&id, o) in ids.iter().zip(out.iter_mut()) {
                    *o = pm_sums(self, id, xb, w);
                }
            }
        }
    }
}

/// Candidates of a scale search at most (`itry = -ntry..=ntry`, `ntry <= 15`).
const MAX_TRIES: usize = 31;

/// The candidates of a scale search (§9.1): for `itry = -ntry..=ntry`, on the plain then the
/// shifted half `g`, the inverse scale `(itry·step + g.values[0]) / max` (`itry·step` with one
/// rounding), offered to `best` with its "plus" then its "minus" sums — the reference's order.
/// All sums are computed first, many at once where the ISA can ([`Grid::pm_sums_many`]).
/// Returns whether the best candidate offered is on the shifted half (false if none won).
#[inline(always)]
pub fn offer_candidates<const N: usize>(grids: [&Grid<N>; 2], ntry: i32, step: f32, max: f32, xb: &[f32], w: &[f32], best: &mut Best) -> bool {
    let n = (2 * ntry + 1) as usize;
    assert!(n <= MAX_TRIES, "scale search: ntry {ntry} too large");
    let mut sums = [[[0f32; 4]; MAX_TRIES]; 2];
    for (g, out) in grids.into_iter().zip(sums.iter_mut()) {
        let mut ids = [0f32; MAX_TRIES];
        for (k, id) in ids[..n].iter_mut().enumerate() {
            *id = fmadd((k as i32 - ntry) as f32, step, g.values[0]) / max;
        }
        g.pm_sums_many(&ids[..n], xb, w, &mut out[..n]);
    }
    let mut is_shifted = false;
    for k in 0..n {
        for (sh, s) in [(false, &sums[0][k]), (true, &sums[1][k])] {
            if best.offer(s[0], s[1]) {
                is_shifted = sh;
            }
            if best.offer(s[2], s[3]) {
                is_shifted = sh;
            }
        }
    }
    is_shifted
}

/// The "ntry" search of a 32-weight sub-block's float scale and grid half (§9.1, no re-fit):
/// a start at `d = max/start` on the plain half (the reference's `-max/T[0]` is `start = -T[0]`),
/// then inverse scales `(itry·step + T[0]) / max`, `itry = -ntry..=ntry`, on the plain and on
/// the shifted half; both signs each time. Returns `(scale, shifted)`; scale 0 for an
/// all-(near-)zero sub-block.
#[inline(always)]
pub fn shift_search<const N: usize>(
    xb: &[f32],
    w: &[f32; 32],
    plain: &Grid<N>,
    shifted: &Grid<N>,
    start: f32,
    ntry: i32,
    step: f32,
) -> (f32, bool) {
    let (amax, max) = signed_max(xb);
    if amax < 1e-16 {
        return (0.0, false);
    }
    let [qxp, q2p, qxm, q2m] = pm_sums(plain, 1.0 / (max / start), xb, w);
    let mut best = Best { d: 0.0, score: 0.0 };
    if q2p > 0.0 {
        best.d = qxp / q2p;
        best.score = best.d * qxp;
    }
    best.offer(qxm, q2m);
    let is_shifted = offer_candidates([plain, shifted], ntry, step, max, xb, w, &mut best);
    (best.d, is_shifted)
}

/// One candidate of [`make_qx_quants`]: the level of `v` at inverse scale `iscale`.
#[inline(always)]
fn qx_level(iscale: f32, v: f32, nmax: i32) -> i32 {
    nearest_int_mul(iscale, v).clamp(-nmax, nmax - 1)
}

/// `(Σ w·x·l, Σ w·l²)` of the levels at inverse scale `iscale`.
#[inline(always)]
fn qx_sums(iscale: f32, x: &[f32], w: &[f32], nmax: i32) -> (f32, f32) {
    let (mut slx, mut sl2) = (0f32, 0f32);
    for (&v, &wi) in x.iter().zip(w) {
        let l = qx_level(iscale, v, nmax) as f32;
        slx = fmadd(wi * v, l, slx);
        sl2 = fmadd(wi * l, l, sl2);
    }
    (slx, sl2)
}

/// `make_qx_quants` (§9.1): a least-squares scale `d` and integer levels `L_i ∈ [0, 2·nmax)` for
/// the values `x` with weights `w` (level `l = L_i - nmax`, value `d·l`). Tries the inverse
/// scales `-(nmax + 0.1·is)/max` for `is = 0, -9..=9`; returns 0 (all levels 0) for all-zero `x`.
#[inline(always)]
pub fn make_qx_quants(nmax: i32, x: &[f32], w: &[f32], levels: &mut [i8]) -> f32 {
    let (amax, max) = signed_max(x);
    if amax == 0.0 {
        levels.fill(0);
        return 0.0;
    }
    let mut best_iscale = -(nmax as f32) / max;
    let (slx, sl2) = qx_sums(best_iscale, x, w, nmax);
    let d = if sl2 != 0.0 { slx / sl2 } else { 0.0 };
    let mut best = Best { d, score: d * slx };
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -fmadd(0.1, is as f32, nmax as f32) / max;
        let (slx, sl2) = qx_sums(iscale, x, w, nmax);
        if best.offer(slx, sl2) {
            best_iscale = iscale;
        }
    }
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = (qx_level(best_iscale, v, nmax) + nmax) as i8;
    }
    best.d
}

/// Reads a little-endian f32 at `off`.
#[inline(always)]
pub fn read_f32(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Reads a little-endian u16 at `off`.
#[inline(always)]
pub fn read_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Generates `$name(args) -> ret` that runs `$body_fn` compiled for x86-64-v3 (AVX2, FMA, POPCNT,
/// BMI) when the CPU has it — so `mul_add` is one instruction — also with AVX-512 F/BW/VL when
/// that is the ISA in use (wider vectors for the loops the compiler vectorizes), and the same
/// code through libm's `fma` otherwise. All give identical results (no reassociation, the same
/// fused multiply-adds); only speed differs.
macro_rules! fma_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),*) $(-> $ret:ty)? => $body_fn:path) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma,popcnt,bmi1,bmi2,lzcnt")]
                fn with_fma($($arg: $ty),*) $(-> $ret)? { $body_fn($($arg),*) }
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,popcnt,bmi1,bmi2,lzcnt")]
                fn with_avx512($($arg: $ty),*) $(-> $ret)? { $body_fn($($arg),*) }
                if crate::arch::has_fma() && crate::arch::current_isa() == crate::arch::Isa::Avx512 {
                    // SAFETY: x86-64-v3 (checked at run time) and AVX-512 F/BW/VL (the ISA in use
                    // is only ever one the CPU has).
                    return unsafe { with_avx512($($arg),*) };
                }
                if crate::arch::has_fma() {
                    // SAFETY: the CPU has every feature enabled above (x86-64-v3; checked at run time).
                    return unsafe { with_fma($($arg),*) };
                }
            }
            $body_fn($($arg),*)
        }
    };
}
pub(crate) use fma_dispatch;

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer-key sort gives the comparison sort's order by (value, position), with ties,
    /// both zeros, negative values and wide magnitudes.
    #[test]
    fn sorted_positions_is_the_stable_sort_by_value() {
        let (x, _) = crate::quants::test_util::rows(8, 32 * 50, 7);
        for (case, xb) in x.chunks(32).enumerate() {
            let mut xb: [f32; 32] = xb.try_into().unwrap();
            match case % 4 {
                0 => xb.iter_mut().for_each(|v| *v = (*v * 20.0).round() / 20.0),
                1 => xb.iter_mut().step_by(2).for_each(|v| *v = if v.is_sign_negative() { -0.0 } else { 0.0 }),
                2 => xb.iter_mut().enumerate().for_each(|(j, v)| *v *= 10f32.powi(j as i32 % 9 - 4)),
                _ => {}
            }
            let mut want: [usize; 32] = std::array::from_fn(|j| j);
            want.sort_by(|&a, &b| xb[a].partial_cmp(&xb[b]).unwrap().then(a.cmp(&b)));
            assert_eq!(sorted_positions::<32>(&xb), want, "case {case}: {xb:?}");
            let mut want16: [usize; 16] = std::array::from_fn(|j| j);
            want16.sort_by(|&a, &b| xb[a].partial_cmp(&xb[b]).unwrap().then(a.cmp(&b)));
            assert_eq!(sorted_positions::<16>(&xb[..16]), want16, "case {case}");
        }
    }

    /// The ISA kernels' lane-parallel candidate sums equal the scalar `pm_sums` bit for bit, on
    /// every grid size, with activations exactly on midpoints (ties), on grid values, beyond both
    /// ends, zero and negative.
    #[test]
    fn lane_parallel_sums_equal_the_scalar_ones() {
        use crate::tables::{IQ2NL_VALUES, IQ3NL_VALUES, IQ4K_VALUES, IQ5NL_VALUES, IQ6NL_VALUES};
        fn check<const N: usize>(g: &Grid<N>, f: crate::arch::PmSumsFn) {
            let mut x: Vec<f32> = g.mids[..N - 1].iter().chain(&g.values).copied().collect();
            x.extend([0.0, -0.0, 1e9, -1e9, 0.37, -2.5]);
            let xs: Vec<f32> = x.iter().map(|v| -v).chain(x.iter().copied()).collect();
            let mut s = 12345u32;
            for chunk in xs.chunks(32) {
                let w: Vec<f32> = chunk.iter().map(|_| {
                    s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                    (s >> 8) as f32 / (1 << 24) as f32
                }).collect();
                // id 1 and -1 put the activations exactly on the midpoints; the others near them
                let ids = [1.0, -1.0, 0.5, 2.0, 1.0 + f32::EPSILON, 1.0 - f32::EPSILON, 0.0, 3.75, -0.125, 17.0, 1e-3, 0.999, 1.001, 5.5, -7.0, 0.25];
                let mut got = [[0f32; 4]; 16];
                f(&g.values, &g.mids, N, &ids, chunk, &w, &mut got);
                for (c, &id) in ids.iter().enumerate() {
                    let want = pm_sums(g, id, chunk, &w);
                    assert_eq!(got[c].map(f32::to_bits), want.map(f32::to_bits), "N={N} id={id} x={chunk:?}");
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        let kernels: Vec<_> = crate::arch::available_isas().into_iter().filter_map(crate::arch::x86_64::pm_sums_kernel).collect();
        #[cfg(not(target_arch = "x86_64"))]
        let kernels: Vec<crate::arch::PmSumsFn> = vec![];
        for f in kernels {
            check(&Grid::<4>::new(&IQ2NL_VALUES[..4]), f);
            check(&Grid::<8>::new(&IQ3NL_VALUES[..8]), f);
            check(&Grid::<16>::new(&IQ4K_VALUES[..16]), f);
            check(&Grid::<32>::new(&IQ5NL_VALUES[..32]), f);
            check(&Grid::<64>::new(&IQ6NL_VALUES[..64]), f);
        }
    }
    use crate::tables::{IQ2NL_VALUES, IQ3NL_VALUES, IQ4K_VALUES, IQ5NL_VALUES, IQ6NL_VALUES};

    fn naive_best(t: &[f32], x: f32) -> usize {
        if x <= t[0] {
            return 0;
        }
        if x >= t[t.len() - 1] {
            return t.len() - 1;
        }
        let mut i = 0;
        while t[i + 1] <= x {
            i += 1;
        }
        if x - t[i] < t[i + 1] - x { i } else { i + 1 }
    }

    #[test]
    fn best_index_matches_the_definition() {
        let g = Grid::<16>::new(&IQ4K_VALUES[16..]);
        let mut x = -140.0f32;
        while x < 140.0 {
            assert_eq!(g.best_index(x), naive_best(&g.values, x), "x = {x}");
            x += 0.125;
        }
        // exact midpoints go up
        assert_eq!(g.best_index((-123.0 + -100.0) / 2.0), 1);
    }

    /// The midpoint counts give `best_index`'s indices on every grid size the quantizers use
    /// (both halves of each table), on a fine sweep that hits every midpoint exactly.
    #[test]
    fn vectorizable_indices_match_best_index() {
        fn check<const N: usize>(table: &[i8]) {
            let g = Grid::<N>::new(table);
            let mut x = -140.0f32;
            while x < 140.0 {
                let v: [f32; 8] = core::array::from_fn(|j| x + 0.0625 * j as f32);
                let (mut plus, mut minus, mut one) = ([0u8; 8], [0u8; 8], [0u8; 8]);
                g.best_indices_pm(&v, &mut plus, &mut minus);
                g.best_indices(&v, &mut one);
                for j in 0..8 {
                    assert_eq!(plus[j] as usize, g.best_index(v[j]), "N = {N}, x = {}", v[j]);
                    assert_eq!(one[j], plus[j], "N = {N}, x = {}", v[j]);
                    assert_eq!(minus[j] as usize, g.best_index(-v[j]), "N = {N}, x = {}", -v[j]);
                }
                x += 0.5;
            }
        }
        for half in 0..2 {
            check::<4>(&IQ2NL_VALUES[4 * half..]);
            check::<8>(&IQ3NL_VALUES[8 * half..]);
            check::<16>(&IQ4K_VALUES[16 * half..]);
            check::<32>(&IQ5NL_VALUES[32 * half..]);
            check::<64>(&IQ6NL_VALUES[64 * half..]);
        }
    }

    #[test]
    fn make_qx_quants_recovers_an_exact_grid() {
        // values on the grid d·l, l in [-16, 15], with the largest magnitude at l = -16
        let d = 0.037f32;
        let ls: Vec<i32> = (0..40).map(|i| (i * 7 % 32) - 16).collect();
        let x: Vec<f32> = ls.iter().map(|&l| d * l as f32).collect();
        let w = vec![1f32; x.len()];
        let mut levels = vec![0i8; x.len()];
        let got = make_qx_quants(16, &x, &w, &mut levels);
        assert!((got - d).abs() <= 1e-6 * d, "{got} vs {d}");
        for (&l, &lv) in ls.iter().zip(&levels) {
            assert_eq!(lv as i32, l + 16);
        }
        assert_eq!(make_qx_quants(16, &[0.0; 8], &[1.0; 8], &mut levels[..8]), 0.0);
        assert!(levels[..8].iter().all(|&l| l == 0));
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-2.6), -3);
        assert_eq!(nearest_int(0.49), 0);
    }
}
