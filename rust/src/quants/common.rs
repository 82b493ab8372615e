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

/// `a * b + c` with one rounding.
#[inline(always)]
pub fn fmadd(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
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
    /// `values[k + 1] - values[k]`, the step at midpoint `k`.
    steps: [f32; 128],
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
        let mut steps = [0f32; 128];
        let mut m = 0;
        while m + 1 < N {
            mids[m] = (table[m] as f32 + table[m + 1] as f32) * 0.5;
            steps[m] = (table[m + 1] - table[m]) as f32;
            m += 1;
        }
        Grid { values, lo, hi, lut, mids, steps }
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

    /// The grid value nearest to every element of `v` (ties up, ends clamp — the same rule as
    /// [`Grid::best_index`]): `values[0]` plus the step of every midpoint `<= v`. The sums are of
    /// small integers, exact in any order; being float adds, the compiler keeps them in order
    /// and vectorizes across the elements (one compare, and, add per vector and midpoint).
    #[inline(always)]
    pub fn best_values<const M: usize>(&self, v: &[f32; M], out: &mut [f32; M]) {
        let mut q = [self.values[0]; M];
        for k in 0..N - 1 {
            let (m, step) = (self.mids[k], self.steps[k]);
            for j in 0..M {
                q[j] += if v[j] >= m { step } else { 0.0 };
            }
        }
        *out = q;
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
/// sum into fused multiply-adds (measured: IQ2_K…IQ6_K, IQ4_KS match it byte for byte only so),
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

/// Integer levels in `[-nmax, nmax - 1]` for the values `x` under a common scale, weighted by
/// `w` (the reference's `make_qx_quants`, FORMATS.md §9.1; IQ2_K and IQ2_KS quantize their
/// sub-block scales with it). Tries `iscale = -(nmax + 0.1·is)/max` for `is = 0, -9..=9`, keeps
/// the best least-squares fit (the first unconditionally, later ones by the strict test of
/// [`Best`]), writes `l + nmax` per value to `levels` and returns the fitted scale (0 if `x` is
/// all zero).
#[inline(always)]
pub fn make_qx_quants(nmax: i32, x: &[f32], w: &[f32], levels: &mut [u8]) -> f32 {
    let (amax, max) = signed_max(x);
    if amax == 0.0 {
        levels.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (slx, sl2) = qx_sums(nmax, iscale, x, w);
    qx_levels(nmax, iscale, x, levels);
    let mut best = Best { d: if sl2 != 0.0 { slx / sl2 } else { 0.0 }, score: 0.0 };
    best.score = best.d * slx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -fmadd(0.1, is as f32, nmax as f32) / max;
        let (slx, sl2) = qx_sums(nmax, iscale, x, w);
        if best.offer(slx, sl2) {
            qx_levels(nmax, iscale, x, levels);
        }
    }
    best.d
}

/// The level of `v` under `iscale` in `make_qx_quants`.
#[inline(always)]
fn qx_level(nmax: i32, iscale: f32, v: f32) -> i32 {
    nearest_int(iscale * v).clamp(-nmax, nmax - 1)
}

/// `(Σ w·x·l, Σ w·l²)` of the levels under `iscale`.
#[inline(always)]
fn qx_sums(nmax: i32, iscale: f32, x: &[f32], w: &[f32]) -> (f32, f32) {
    let (mut slx, mut sl2) = (0f32, 0f32);
    for (&v, &wv) in x.iter().zip(w) {
        let l = qx_level(nmax, iscale, v) as f32;
        slx = fmadd(wv * v, l, slx);
        sl2 = fmadd(wv * l, l, sl2);
    }
    (slx, sl2)
}

/// Stores `l + nmax` of every value under `iscale`.
#[inline(always)]
fn qx_levels(nmax: i32, iscale: f32, x: &[f32], levels: &mut [u8]) {
    for (o, &v) in levels.iter_mut().zip(x) {
        *o = (qx_level(nmax, iscale, v) + nmax) as u8;
    }
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
/// BMI) when the CPU has it — so `mul_add` is one instruction — and the same code through libm's
/// `fma` otherwise. Both give identical results; only speed differs.
macro_rules! fma_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),*) $(-> $ret:ty)? => $body_fn:path) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma,popcnt,bmi1,bmi2,lzcnt")]
                fn with_fma($($arg: $ty),*) $(-> $ret)? { $body_fn($($arg),*) }
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
    use crate::tables::IQ4K_VALUES;

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

    #[test]
    fn best_values_match_best_index() {
        let g = Grid::<16>::new(&IQ4K_VALUES[16..]);
        let mut x = -140.0f32;
        while x < 140.0 {
            let v: [f32; 8] = core::array::from_fn(|j| x + 0.0625 * j as f32);
            let mut q = [0f32; 8];
            g.best_values(&v, &mut q);
            for j in 0..8 {
                assert_eq!(q[j], g.values[g.best_index(v[j])], "x = {}", v[j]);
            }
            x += 0.5;
        }
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
