//! AVX2 kernels of the row-interleaved `_R4` types: the AVX-512 module's scheme (see there) on
//! 256-bit registers of two 16-byte runs each, with exact signed products
//! (`maddubs(|y|, sign(t, y))`, pairs below 2^15) instead of an offset table. Integer sums are
//! exact and each row accumulates `(d_r · d8) · S_r` in block order, so the results equal the
//! scalar kernels' bit for bit. Every `unsafe fn` requires AVX2, FMA and F16C at run time.

use std::arch::x86_64::*;

use crate::quants::common::read_f32;
use crate::quants::q8k;
use crate::quants::r4::{self, R4High, R4Quants, R4Scales, R4Spec};
use crate::registry::QK_K;
use crate::tables::{IQ2NL_VALUES, IQ3NL_VALUES, IQ4K_VALUES, IQ5NL_VALUES};

/// The plain half of a grid in 16-entry chunks, repeated in both lanes.
type Table = [[i8; 32]; 2];

const fn table(values: &[i8]) -> Table {
    let mut t = [[0i8; 32]; 2];
    let half = values.len() / 2;
    let mut i = 0;
    while i < half {
        t[i / 16][i % 16] = values[i];
        t[i / 16][16 + i % 16] = values[i];
        i += 1;
    }
    t
}

#[inline(always)]
unsafe fn load8(b: &[u8], off: usize) -> __m128i {
    _mm_loadl_epi64(b[off..off + 8].as_ptr().cast())
}

#[inline(always)]
unsafe fn load32(b: &[u8], off: usize) -> __m256i {
    _mm256_loadu_si256(b[off..off + 32].as_ptr().cast())
}

#[inline(always)]
unsafe fn bcast16(b: &[u8], off: usize) -> __m256i {
    _mm256_broadcastsi128_si256(_mm_loadu_si128(b[off..off + 16].as_ptr().cast()))
}

#[inline(always)]
unsafe fn i32s(t: &[i32; 8]) -> __m256i {
    _mm256_loadu_si256(t.as_ptr().cast())
}

/// Bytes equal to `bit` where `v & bit` is set, as 0xFF / 0 bytes.
#[inline(always)]
unsafe fn test8(v: __m128i, bit: i8) -> __m128i {
    let b = _mm_set1_epi8(bit);
    _mm_cmpeq_epi8(_mm_and_si128(v, b), b)
}

/// `(v >> n) & mask` on 8 bytes (`n < 8`).
#[inline(always)]
unsafe fn bits8(v: __m128i, n: usize, mask: i8) -> __m128i {
    _mm_and_si128(_mm_srl_epi16(v, _mm_cvtsi32_si128(n as i32)), _mm_set1_epi8(mask))
}

/// Shift bits (bit `r + 4h`) and levels `L[r + 4h]` of sub-block `ib`, as the AVX-512 module.
#[inline(always)]
unsafe fn shifts_and_levels(spec: &R4Spec, blk: &[u8], ib: usize) -> (u8, __m128i) {
    match spec.scales {
        R4Scales::Nibbles(high) => {
            let m = _mm_movemask_epi8(test8(load8(blk, 8), (1u8 << ib) as i8)) as u8;
            let lo = bits8(load8(blk, spec.scales_l() + 8 * (ib % 4)), 4 * (ib / 4), 15);
            let l = match high {
                R4High::None => _mm_sub_epi8(lo, _mm_set1_epi8(8)),
                R4High::Sign => {
                    let neg = test8(load8(blk, 16), (1u8 << ib) as i8);
                    let m2 = _mm_add_epi8(_mm_add_epi8(lo, lo), _mm_set1_epi8(1));
                    _mm_sub_epi8(_mm_xor_si128(m2, neg), neg)
                }
                R4High::Two => {
                    let hi = bits8(load8(blk, 16 + 8 * (ib % 2)), 2 * (ib / 2), 3);
                    _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16::<4>(hi)), _mm_set1_epi8(32))
                }
            };
            (m, l)
        }
        R4Scales::Bytes => {
            let sb = _mm_cvtsi32_si128(i32::from_le_bytes(blk[4 * ib..4 * ib + 4].try_into().unwrap()));
            let s4 = (_mm_movemask_epi8(test8(sb, 1)) & 0xF) as u8;
            let l4 = _mm_sub_epi8(_mm_and_si128(sb, _mm_set1_epi8(-2)), _mm_set1_epi8(127));
            (s4 | s4 << 4, _mm_unpacklo_epi32(l4, l4))
        }
    }
}

/// `delta` in every byte of dword `k` where bit `k` of `mask` is set.
#[inline(always)]
unsafe fn row_shifts(mask: u8, delta: i8) -> __m256i {
    let bitv = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let set = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(mask as i32), bitv), bitv);
    _mm256_and_si256(set, _mm256_set1_epi8(delta))
}

/// Grid values of indices `idx` (< 16); bytes of `hi` (0xFF) select the upper 16 entries of a
/// 32-entry grid.
#[inline(always)]
unsafe fn lookup(t: &Table, idx: __m256i, hi: __m256i, big: bool) -> __m256i {
    let v = _mm256_shuffle_epi8(_mm256_loadu_si256(t[0].as_ptr().cast()), idx);
    if big {
        _mm256_blendv_epi8(v, _mm256_shuffle_epi8(_mm256_loadu_si256(t[1].as_ptr().cast()), idx), hi)
    } else {
        v
    }
}

/// Bytes 0xFF where `h & bits` (per-lane bit patterns) is set.
#[inline(always)]
unsafe fn test_lanes(h: __m256i, b0: i8, b1: i8) -> __m256i {
    let bits = _mm256_set_m128i(_mm_set1_epi8(b1), _mm_set1_epi8(b0));
    _mm256_cmpeq_epi8(_mm256_and_si256(h, bits), bits)
}

/// One register of two runs (values, activation dwords, level picks), as the AVX-512 module.
struct Runs {
    values: __m256i,
    y: [i32; 8],
    l: [u8; 16],
}

/// Level picks `L[r + 4h]` for lanes in halves (h0, h1).
const fn picks(h0: u8, h1: u8) -> [u8; 16] {
    [4 * h0, 4 * h0 + 1, 4 * h0 + 2, 4 * h0 + 3, 4 * h1, 4 * h1 + 1, 4 * h1 + 2, 4 * h1 + 3, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// Activation dwords for lanes reading sub-block dwords `a` and `b`.
const fn ydw(a: i32, b: i32) -> [i32; 8] {
    [a, a, a, a, b, b, b, b]
}

/// The four registers of runs of sub-block `ib`.
#[inline(always)]
unsafe fn runs(spec: &R4Spec, t: &Table, blk: &[u8], ib: usize, shift: u8) -> [Runs; 4] {
    let delta = spec.shift_delta();
    match spec.quants {
        R4Quants::Nibbles { high } => {
            // runs c = 0, 1 (weights 0.., 16..) and c = 2, 3 (4.., 20..); low nibbles, then +8
            let qa = load32(blk, spec.qs() + 64 * ib);
            let qb = load32(blk, spec.qs() + 64 * ib + 32);
            let h = if high { bcast16(blk, spec.qh() + 16 * ib) } else { _mm256_setzero_si256() };
            let sh = row_shifts(shift, delta);
            [
                nib_run(t, qa, false, h, (1, 4), high, sh, ydw(0, 4)),
                nib_run(t, qb, false, h, (16, 64), high, sh, ydw(1, 5)),
                nib_run(t, qa, true, h, (2, 8), high, sh, ydw(2, 6)),
                nib_run(t, qb, true, h, (32, -128), high, sh, ydw(3, 7)),
            ]
        }
        R4Quants::Crumbs { high } => [
            crumbs(spec, t, blk, ib, shift, 0, 0, high),
            crumbs(spec, t, blk, ib, shift, 0, 2, high),
            crumbs(spec, t, blk, ib, shift, 1, 0, high),
            crumbs(spec, t, blk, ib, shift, 1, 2, high),
        ],
    }
}

/// Two runs of the 4-bit layout: the low (or high, `upper`) nibbles of `q`, index bit 4 from the
/// `qh` bits `qh_bits` (one per lane) of `h` where `high`, plus the rows' shifts `sh`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn nib_run(t: &Table, q: __m256i, upper: bool, h: __m256i, qh_bits: (i8, i8), high: bool, sh: __m256i, y: [i32; 8]) -> Runs {
    let idx = nib(q, upper, _mm256_set1_epi8(15));
    let hi = if high { test_lanes(h, qh_bits.0, qh_bits.1) } else { _mm256_setzero_si256() };
    Runs { values: _mm256_add_epi8(lookup(t, idx, hi, high), sh), y, l: picks(0, 1) }
}

/// Low (or high, `upper`) nibbles of every byte.
#[inline(always)]
unsafe fn nib(q: __m256i, upper: bool, m15: __m256i) -> __m256i {
    if upper {
        _mm256_and_si256(_mm256_srli_epi16::<4>(q), m15)
    } else {
        _mm256_and_si256(q, m15)
    }
}

/// Runs of crumbs `j0` and `j0 + 1` of `qs` half `h` of sub-block `ib` (2-bit layout).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn crumbs(spec: &R4Spec, t: &Table, blk: &[u8], ib: usize, shift: u8, h: usize, j0: usize, high: bool) -> Runs {
    let counts = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
    let counts = _mm256_add_epi32(counts, _mm256_set1_epi32(2 * j0 as i32));
    let mut x = _mm256_and_si256(_mm256_srlv_epi32(bcast16(blk, spec.qs() + 32 * ib + 16 * h), counts), _mm256_set1_epi8(3));
    if high {
        let set = test_lanes(bcast16(blk, spec.qh() + 16 * ib), (1u8 << (j0 + 4 * h)) as i8, (1u8 << (j0 + 1 + 4 * h)) as i8);
        x = _mm256_or_si256(x, _mm256_and_si256(set, _mm256_set1_epi8(4)));
    }
    let m4 = (shift >> (4 * h)) & 15;
    let sh = row_shifts(m4 | m4 << 4, spec.shift_delta());
    let d = (4 * h + j0) as i32;
    Runs { values: _mm256_add_epi8(lookup(t, x, _mm256_setzero_si256(), false), sh), y: ydw(d, d + 1), l: picks(h as u8, h as u8) }
}

/// The rows' block scales: the group header's f32 (IQ*_KS_R4) or the R4 block's f16 `d[4]`.
#[inline(always)]
unsafe fn row_scales(spec: &R4Spec, group: &[u8], blk: &[u8]) -> [f32; 4] {
    let mut d = [0f32; 4];
    match spec.scales {
        R4Scales::Bytes => {
            for (r, v) in d.iter_mut().enumerate() {
                *v = read_f32(group, 4 * r);
            }
        }
        R4Scales::Nibbles(_) => _mm_storeu_ps(d.as_mut_ptr(), _mm_cvtph_ps(load8(blk, 0))),
    }
    d
}

#[inline(always)]
unsafe fn dot(spec: &R4Spec, t: &Table, src: &[u8], cols: usize, y: &[u8], out: &mut [f32]) {
    let (rm, bb) = (spec.meta(), spec.block_bytes());
    let ones = _mm256_set1_epi16(1);
    let mut acc = [0f32; 4];
    for ibl in 0..cols / QK_K {
        crate::arch::prefetch_ahead(src, 4 * rm + bb * ibl, bb);
        let blk = &src[4 * rm + bb * ibl..4 * rm + bb * (ibl + 1)];
        let yb = &y[q8k::BLOCK_BYTES * ibl..q8k::BLOCK_BYTES * (ibl + 1)];
        let mut s = _mm256_setzero_si256();
        for ib in 0..8 {
            let (shift, l) = shifts_and_levels(spec, blk, ib);
            let y32 = load32(yb, q8k::QS + 32 * ib);
            for run in runs(spec, t, blk, ib, shift) {
                let yv = _mm256_permutevar8x32_epi32(y32, i32s(&run.y));
                let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(yv), _mm256_sign_epi8(run.values, yv));
                let lv = _mm256_cvtepi8_epi32(_mm_shuffle_epi8(l, _mm_loadu_si128(run.l.as_ptr().cast())));
                s = _mm256_add_epi32(s, _mm256_mullo_epi32(_mm256_madd_epi16(pairs, ones), lv));
            }
        }
        let mut tot = [0i32; 4];
        _mm_storeu_si128(tot.as_mut_ptr().cast(), _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s)));
        let d = row_scales(spec, src, blk);
        let d8 = read_f32(yb, 0);
        for r in 0..4 {
            acc[r] += (d[r] * d8) * tot[r] as f32;
        }
    }
    out[..4].copy_from_slice(&acc);
}

#[inline(always)]
unsafe fn dequantize(spec: &R4Spec, t: &Table, src: &[u8], cols: usize, out: &mut [f32]) {
    let (rm, bb) = (spec.meta(), spec.block_bytes());
    for ibl in 0..cols / QK_K {
        let blk = &src[4 * rm + bb * ibl..4 * rm + bb * (ibl + 1)];
        let d = _mm_loadu_ps(row_scales(spec, src, blk).as_ptr());
        for ib in 0..8 {
            let (shift, l) = shifts_and_levels(spec, blk, ib);
            // d_r · L[r + 4h] for the 8 (h, r), one rounding as the scalar decoder
            let mut dl = [0f32; 8];
            _mm256_storeu_ps(dl.as_mut_ptr(), _mm256_mul_ps(_mm256_set_m128(d, d), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(l))));
            for run in runs(spec, t, blk, ib, shift) {
                for lane in 0..2 {
                    let v = if lane == 0 { _mm256_castsi256_si128(run.values) } else { _mm256_extracti128_si256::<1>(run.values) };
                    let first = 4 * run.y[4 * lane] as usize;
                    let mut vals = [0f32; 16];
                    _mm256_storeu_ps(vals.as_mut_ptr(), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)));
                    _mm256_storeu_ps(vals.as_mut_ptr().add(8), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v))));
                    for r in 0..4 {
                        let h = run.l[4 * lane + r] as usize / 4;
                        let o = &mut out[cols * r + QK_K * ibl + 32 * ib + first..][..4];
                        _mm_storeu_ps(o.as_mut_ptr(), _mm_mul_ps(_mm_set1_ps(dl[r + 4 * h]), _mm_loadu_ps(vals[4 * r..].as_ptr())));
                    }
                }
            }
        }
    }
}

/// Declares the safe dot and decode entry points of one `_R4` type.
macro_rules! entry_points {
    ($spec:path, $values:path, $dot:ident, $dq:ident, $name:literal) => {
        #[doc = concat!($name, " · Q8_K, the 4 rows of a group.")]
        pub fn $dot(src: &[u8], cols: usize, y: &[u8], out: &mut [f32]) {
            static T: Table = table(&$values);
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn imp(src: &[u8], cols: usize, y: &[u8], out: &mut [f32]) {
                dot(&$spec, &T, src, cols, y, out)
            }
            // SAFETY: handed out only when AVX2, FMA and F16C are present.
            unsafe { imp(src, cols, y, out) }
        }

        #[doc = concat!($name, " group decode (4 rows).")]
        pub fn $dq(src: &[u8], cols: usize, out: &mut [f32]) {
            static T: Table = table(&$values);
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn imp(src: &[u8], cols: usize, out: &mut [f32]) {
                dequantize(&$spec, &T, src, cols, out)
            }
            // SAFETY: as above.
            unsafe { imp(src, cols, out) }
        }
    };
}

entry_points!(r4::IQ2_K_R4, IQ2NL_VALUES, iq2_k_r4_dot, iq2_k_r4_dequantize, "IQ2_K_R4");
entry_points!(r4::IQ3_K_R4, IQ3NL_VALUES, iq3_k_r4_dot, iq3_k_r4_dequantize, "IQ3_K_R4");
entry_points!(r4::IQ4_K_R4, IQ4K_VALUES, iq4_k_r4_dot, iq4_k_r4_dequantize, "IQ4_K_R4");
entry_points!(r4::IQ5_K_R4, IQ5NL_VALUES, iq5_k_r4_dot, iq5_k_r4_dequantize, "IQ5_K_R4");
entry_points!(r4::IQ4_KS_R4, IQ4K_VALUES, iq4_ks_r4_dot, iq4_ks_r4_dequantize, "IQ4_KS_R4");
entry_points!(r4::IQ5_KS_R4, IQ5NL_VALUES, iq5_ks_r4_dot, iq5_ks_r4_dequantize, "IQ5_KS_R4");
