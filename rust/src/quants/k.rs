//! The per-super-block-scale types IQ2_K, IQ3_K, IQ4_K, IQ5_K and IQ6_K (FORMATS.md §7, §9.2–§9.6).
//!
//! Every 256-weight super-block starts with an f16 scale `d` and a u16 `extra` whose bit `ib`
//! selects the shifted half of the grid for 16-weight sub-block `ib`; then one integer scale
//! `L_ib` per sub-block and one grid index `q_n` per weight. Weight `n` decodes to
//! `(d·L_{n/16})·T[q_n + half·shift]` (two f32 roundings, in that order).
//!
//! | type  | bytes | grid (half) | `L` from the stored field `f`             | index bits |
//! |-------|-------|-------------|-------------------------------------------|------------|
//! | IQ2_K | 76    | iq2nl (4)   | 4-bit nibble, `f - 8`                      | 2          |
//! | IQ3_K | 110   | iq3nl (8)   | nibble + sign bit, `±(2f + 1)`             | 2 + 1      |
//! | IQ4_K | 144   | iq4k (16)   | nibble + 2 high bits, `f - 32`             | 4          |
//! | IQ5_K | 176   | iq5nl (32)  | as IQ4_K                                   | 4 + 1      |
//! | IQ6_K | 212   | iq6nl (64)  | a signed byte                              | 4 + 2      |
//!
//! Where each field sits is data ([`Layout`]), so one decoder, one packer and one dot product
//! serve all five types — and the row-interleaved `_R4` types (`super::r4`), which reuse the
//! layouts to take base blocks apart.
//!
//! **IQ6_K** decodes with the iq6nl table (`d·L·(iq6nl[q] + shift)`), the values the reference's
//! quantizer, dot products and CUDA kernels use — not the cubic polynomial of the reference's CPU
//! `to_float`, which differs by up to half a grid step (FORMATS.md §7.5, §12 item 2, §13). The
//! golden `iq6_k` cases carry the table decode (`dequant_table.f32.bin`) to check against.
//!
//! The quantizers follow the reference's search (§9.2–§9.6) with the reference's floating-point
//! contractions, so that they reproduce its bytes; the heavy inner loops are written to vectorize.

use half::f16;

use super::common::{fma_dispatch, fmadd, make_qx_quants, nearest_int, nearest_int_mul, offer_candidates, pm_sums, read_u16, sanitize_imatrix, sigma2, signed_max, Best, Grid};
use super::{q8k, IntBlock};
use crate::registry::QK_K;
use crate::tables::{IQ2NL_VALUES, IQ3NL_VALUES, IQ4K_VALUES, IQ5NL_VALUES, IQ6NL_VALUES};

// ---------------------------------------------------------------------------------------------
// Layouts

/// Where a block keeps the stored scale field `f` of each sub-block.
#[derive(Clone, Copy, Debug)]
pub enum Scales {
    /// 4 bits: nibble `ib % 2` of byte `lo + ib/2` (IQ2_K).
    Nibbles { lo: usize },
    /// The nibble as above, plus a sign in bit `ib` of the u16 at `sign` (field bit 4; IQ3_K).
    NibblesSign { lo: usize, sign: usize },
    /// The nibble as above, plus 2 high bits `(b[hi + ib/4] >> 2·(ib%4)) & 3` (field bits 4–5;
    /// IQ4_K, IQ5_K).
    NibblesHigh { lo: usize, hi: usize },
    /// One byte per sub-block, `n` of them at `off` (IQ6_K's signed `L`; IQ4_KS/IQ5_KS scale bytes).
    Bytes { off: usize, n: usize },
}

/// Where a block keeps the low bits of the grid indices; `ib32` = 32-weight sub-block, `t` =
/// weight in it.
#[derive(Clone, Copy, Debug)]
pub enum Low {
    /// 2 bits `(qs[32·(ib32/4) + t] >> 2·(ib32%4)) & 3` (IQ2_K, IQ3_K).
    Crumbs { qs: usize },
    /// 4 bits: nibble `t/16` of `qs[16·ib32 + t%16]` (IQ4_K, IQ4_KS).
    NibblesSplit { qs: usize },
    /// 4 bits: nibble `ib32%2` of `qs[32·(ib32/2) + t]` (IQ5_K, IQ6_K, IQ5_KS).
    NibblesPaired { qs: usize },
}

/// Where a block keeps the high bits of the grid indices.
#[derive(Clone, Copy, Debug)]
pub enum High {
    /// No high bits.
    None,
    /// Index bit `bit` = bit `ib32` of `qh[t]` (IQ3_K: bit 2; IQ5_K, IQ5_KS: bit 4).
    Bit { qh: usize, bit: u32 },
    /// Index bits 4–5 = `(qh[32·(ib32/4) + t] >> 2·(ib32%4)) & 3` (IQ6_K).
    Crumb { qh: usize },
}

/// The byte layout of one block of one row.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Bytes of the block.
    pub bytes: usize,
    /// Whether the block starts with `d` (f16) and `extra` (u16).
    pub head: bool,
    pub scales: Scales,
    pub low: Low,
    pub high: High,
}

/// One block of one row taken apart, field by field; [`unpack`] and [`pack`] are exact inverses.
#[derive(Clone, Debug)]
pub struct Parts {
    /// f16 bits of the block scale `d` (layouts with a head).
    pub d: u16,
    /// Shift bits, bit `ib` for sub-block `ib` (layouts with a head).
    pub extra: u16,
    /// The stored scale field of every sub-block, as [`Scales`] describes it.
    pub sc: [u8; 16],
    /// The full grid index of every weight (the shift is not part of it).
    pub q: [u8; QK_K],
}

impl Default for Parts {
    fn default() -> Self {
        Parts { d: 0, extra: 0, sc: [0; 16], q: [0; QK_K] }
    }
}

/// Reads every field of block `b`.
#[inline(always)]
pub fn unpack(l: &Layout, b: &[u8], p: &mut Parts) {
    let b = &b[..l.bytes];
    if l.head {
        p.d = read_u16(b, 0);
        p.extra = read_u16(b, 2);
    }
    unpack_scales(l, b, &mut p.sc);
    for ib32 in 0..8 {
        let q = &mut p.q[32 * ib32..32 * ib32 + 32];
        match l.low {
            Low::Crumbs { qs } => {
                let src = &b[qs + 32 * (ib32 / 4)..][..32];
                for t in 0..32 {
                    q[t] = (src[t] >> (2 * (ib32 % 4))) & 3;
                }
            }
            Low::NibblesSplit { qs } => {
                let src = &b[qs + 16 * ib32..][..16];
                for t in 0..16 {
                    q[t] = src[t] & 15;
                    q[t + 16] = src[t] >> 4;
                }
            }
            Low::NibblesPaired { qs } => {
                let src = &b[qs + 32 * (ib32 / 2)..][..32];
                for t in 0..32 {
                    q[t] = (src[t] >> (4 * (ib32 % 2))) & 15;
                }
            }
        }
        match l.high {
            High::None => {}
            High::Bit { qh, bit } => {
                let src = &b[qh..][..32];
                for t in 0..32 {
                    q[t] |= ((src[t] >> ib32) & 1) << bit;
                }
            }
            High::Crumb { qh } => {
                let src = &b[qh + 32 * (ib32 / 4)..][..32];
                for t in 0..32 {
                    q[t] |= ((src[t] >> (2 * (ib32 % 4))) & 3) << 4;
                }
            }
        }
    }
}

/// Reads the stored scale field of every sub-block of block `b` (as [`Scales`] describes it).
#[inline(always)]
pub fn unpack_scales(l: &Layout, b: &[u8], sc: &mut [u8; 16]) {
    let nib = |byte: u8, h: usize| (byte >> (4 * h)) & 15;
    match l.scales {
        Scales::Nibbles { lo } => {
            for ib in 0..16 {
                sc[ib] = nib(b[lo + ib / 2], ib % 2);
            }
        }
        Scales::NibblesSign { lo, sign } => {
            let s = read_u16(b, sign);
            for ib in 0..16 {
                sc[ib] = nib(b[lo + ib / 2], ib % 2) | (((s >> ib) & 1) << 4) as u8;
            }
        }
        Scales::NibblesHigh { lo, hi } => {
            for ib in 0..16 {
                sc[ib] = nib(b[lo + ib / 2], ib % 2) | ((b[hi + ib / 4] >> (2 * (ib % 4))) & 3) << 4;
            }
        }
        Scales::Bytes { off, n } => sc[..n].copy_from_slice(&b[off..off + n]),
    }
}

/// Writes every field of `p` into block `b` (all `l.bytes` bytes are written).
#[inline(always)]
pub fn pack(l: &Layout, p: &Parts, b: &mut [u8]) {
    let b = &mut b[..l.bytes];
    b.fill(0);
    if l.head {
        b[0..2].copy_from_slice(&p.d.to_le_bytes());
        b[2..4].copy_from_slice(&p.extra.to_le_bytes());
    }
    match l.scales {
        Scales::Nibbles { lo } => {
            for ib in 0..16 {
                b[lo + ib / 2] |= (p.sc[ib] & 15) << (4 * (ib % 2));
            }
        }
        Scales::NibblesSign { lo, sign } => {
            let mut s = 0u16;
            for ib in 0..16 {
                b[lo + ib / 2] |= (p.sc[ib] & 15) << (4 * (ib % 2));
                s |= (((p.sc[ib] >> 4) & 1) as u16) << ib;
            }
            b[sign..sign + 2].copy_from_slice(&s.to_le_bytes());
        }
        Scales::NibblesHigh { lo, hi } => {
            for ib in 0..16 {
                b[lo + ib / 2] |= (p.sc[ib] & 15) << (4 * (ib % 2));
                b[hi + ib / 4] |= ((p.sc[ib] >> 4) & 3) << (2 * (ib % 4));
            }
        }
        Scales::Bytes { off, n } => b[off..off + n].copy_from_slice(&p.sc[..n]),
    }
    for ib32 in 0..8 {
        let q = &p.q[32 * ib32..32 * ib32 + 32];
        match l.low {
            Low::Crumbs { qs } => {
                let dst = &mut b[qs + 32 * (ib32 / 4)..][..32];
                for t in 0..32 {
                    dst[t] |= (q[t] & 3) << (2 * (ib32 % 4));
                }
            }
            Low::NibblesSplit { qs } => {
                let dst = &mut b[qs + 16 * ib32..][..16];
                for t in 0..16 {
                    dst[t] = (q[t] & 15) | (q[t + 16] & 15) << 4;
                }
            }
            Low::NibblesPaired { qs } => {
                let dst = &mut b[qs + 32 * (ib32 / 2)..][..32];
                for t in 0..32 {
                    dst[t] |= (q[t] & 15) << (4 * (ib32 % 2));
                }
            }
        }
        match l.high {
            High::None => {}
            High::Bit { qh, bit } => {
                let dst = &mut b[qh..][..32];
                for t in 0..32 {
                    dst[t] |= ((q[t] >> bit) & 1) << ib32;
                }
            }
            High::Crumb { qh } => {
                let dst = &mut b[qh + 32 * (ib32 / 4)..][..32];
                for t in 0..32 {
                    dst[t] |= ((q[t] >> 4) & 3) << (2 * (ib32 % 4));
                }
            }
        }
    }
}

/// The integer scale `L` of a stored scale field of an IQ*_K layout (`Bytes`: IQ6_K's signed
/// byte).
#[inline(always)]
pub fn level(scales: &Scales, f: u8) -> i32 {
    match scales {
        Scales::Nibbles { .. } => f as i32 - 8,
        Scales::NibblesSign { .. } => {
            let m = 2 * (f & 15) as i32 + 1;
            if f & 16 != 0 {
                -m
            } else {
                m
            }
        }
        Scales::NibblesHigh { .. } => f as i32 - 32,
        Scales::Bytes { .. } => f as i8 as i32,
    }
}

/// One IQ*_K type: its layout and its grid (plain half, then shifted half).
pub struct Format {
    pub layout: Layout,
    pub values: &'static [i8],
}

impl Format {
    /// Entries in one half of the grid.
    #[inline(always)]
    const fn half(&self) -> usize {
        self.values.len() / 2
    }

    /// The integer scale `L` of a stored scale field.
    #[inline(always)]
    fn level(&self, f: u8) -> i32 {
        level(&self.layout.scales, f)
    }

    /// The 16 integer scales `L` of block `b` (its indices are not decoded).
    #[inline(always)]
    pub fn levels(&self, b: &[u8]) -> [i32; 16] {
        let mut sc = [0u8; 16];
        unpack_scales(&self.layout, b, &mut sc);
        sc.map(|f| self.level(f))
    }

    /// The half of the grid sub-block `ib` uses.
    #[inline(always)]
    fn table(&self, extra: u16, ib: usize) -> &'static [i8] {
        let h = self.half();
        let off = h * ((extra >> ib) & 1) as usize;
        &self.values[off..off + h]
    }
}

/// IQ2_K (FORMATS.md §7.1): `d`, `extra`, `scales[8]` @4, `qs[64]` @12.
pub static IQ2K: Format = Format {
    layout: Layout { bytes: 76, head: true, scales: Scales::Nibbles { lo: 4 }, low: Low::Crumbs { qs: 12 }, high: High::None },
    values: &IQ2NL_VALUES,
};
/// IQ3_K (§7.2): `d`, `extra`, `scales_h` (u16) @4, `scales_l[8]` @6, `qs[64]` @14, `qh[32]` @78.
pub static IQ3K: Format = Format {
    layout: Layout {
        bytes: 110,
        head: true,
        scales: Scales::NibblesSign { lo: 6, sign: 4 },
        low: Low::Crumbs { qs: 14 },
        high: High::Bit { qh: 78, bit: 2 },
    },
    values: &IQ3NL_VALUES,
};
/// IQ4_K (§7.3): `d`, `extra`, `scales_h[4]` @4, `scales_l[8]` @8, `qs[128]` @16.
pub static IQ4K: Format = Format {
    layout: Layout { bytes: 144, head: true, scales: Scales::NibblesHigh { lo: 8, hi: 4 }, low: Low::NibblesSplit { qs: 16 }, high: High::None },
    values: &IQ4K_VALUES,
};
/// IQ5_K (§7.4): as IQ4_K with the paired nibble layout, plus `qh[32]` @144.
pub static IQ5K: Format = Format {
    layout: Layout {
        bytes: 176,
        head: true,
        scales: Scales::NibblesHigh { lo: 8, hi: 4 },
        low: Low::NibblesPaired { qs: 16 },
        high: High::Bit { qh: 144, bit: 4 },
    },
    values: &IQ5NL_VALUES,
};
/// IQ6_K (§7.5): `d`, `extra`, `scales[16]` (i8) @4, `qs[128]` @20, `qh[64]` @148.
pub static IQ6K: Format = Format {
    layout: Layout {
        bytes: 212,
        head: true,
        scales: Scales::Bytes { off: 4, n: 16 },
        low: Low::NibblesPaired { qs: 20 },
        high: High::Crumb { qh: 148 },
    },
    values: &IQ6NL_VALUES,
};

// ---------------------------------------------------------------------------------------------
// Decoding and the dot product

/// Decodes one row of a format.
#[inline(always)]
fn dequantize_row(f: &Format, src: &[u8], out: &mut [f32]) {
    let mut p = Parts::default();
    for (b, ob) in src.chunks_exact(f.layout.bytes).zip(out.chunks_exact_mut(QK_K)) {
        unpack(&f.layout, b, &mut p);
        let d = f16::from_bits(p.d).to_f32();
        for ib in 0..16 {
            let dl = d * f.level(p.sc[ib]) as f32;
            let t = f.table(p.extra, ib);
            for j in 0..16 {
                ob[16 * ib + j] = dl * t[p.q[16 * ib + j] as usize] as f32;
            }
        }
    }
}

/// Exact integer block sum `S = Σ_ib L_ib Σ_j T[q]·q8` of one unpacked super-block.
#[inline(always)]
fn block_sum(f: &Format, p: &Parts, q8: &[u8]) -> i32 {
    let mut s = 0i32;
    for ib in 0..16 {
        let t = f.table(p.extra, ib);
        let mut si = 0i32;
        for j in 0..16 {
            si += t[p.q[16 * ib + j] as usize] as i32 * q8[16 * ib + j] as i8 as i32;
        }
        s += f.level(p.sc[ib]) * si;
    }
    s
}

/// Dot product of a row with a Q8_K row (FORMATS.md §5): `Σ_b (d_b·d8_b)·S_b` in block order.
#[inline(always)]
fn vec_dot(f: &Format, src: &[u8], y: &[u8]) -> f32 {
    let mut p = Parts::default();
    let mut acc = 0f32;
    for (b, yb) in src.chunks_exact(f.layout.bytes).zip(y.chunks_exact(q8k::BLOCK_BYTES)) {
        unpack(&f.layout, b, &mut p);
        let s = block_sum(f, &p, &yb[q8k::QS..q8k::QS + QK_K]);
        acc += (f16::from_bits(p.d).to_f32() * super::common::read_f32(yb, 0)) * s as f32;
    }
    acc
}

/// Integer form of super-block `block` of a row (the tiled matrix multiply's input): `d`, the
/// 16 levels `L` and the 256 grid values `T[q + half·shift]`.
#[inline(always)]
fn decode_int(f: &Format, src: &[u8], block: usize, out: &mut IntBlock) {
    let mut p = Parts::default();
    unpack(&f.layout, &src[f.layout.bytes * block..], &mut p);
    out.d = f16::from_bits(p.d).to_f32();
    for ib in 0..16 {
        out.scales[ib] = f.level(p.sc[ib]) as i16;
        let t = f.table(p.extra, ib);
        for j in 0..16 {
            out.values[16 * ib + j] = t[p.q[16 * ib + j] as usize];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quantization: shared pieces

/// Half `h` (0 plain, 1 shifted) of an `2N`-entry grid table.
const fn half_table<const N: usize>(t: &[i8], h: usize) -> [i8; N] {
    let mut out = [0i8; N];
    let mut i = 0;
    while i < N {
        out[i] = t[h * N + i];
        i += 1;
    }
    out
}

static IQ2_PLAIN: Grid<4> = Grid::new(&half_table::<4>(&IQ2NL_VALUES, 0));
static IQ2_SHIFTED: Grid<4> = Grid::new(&half_table::<4>(&IQ2NL_VALUES, 1));
static IQ3_PLAIN: Grid<8> = Grid::new(&half_table::<8>(&IQ3NL_VALUES, 0));
static IQ3_SHIFTED: Grid<8> = Grid::new(&half_table::<8>(&IQ3NL_VALUES, 1));
static IQ4_PLAIN: Grid<16> = Grid::new(&half_table::<16>(&IQ4K_VALUES, 0));
static IQ4_SHIFTED: Grid<16> = Grid::new(&half_table::<16>(&IQ4K_VALUES, 1));
static IQ5_PLAIN: Grid<32> = Grid::new(&half_table::<32>(&IQ5NL_VALUES, 0));
static IQ5_SHIFTED: Grid<32> = Grid::new(&half_table::<32>(&IQ5NL_VALUES, 1));
static IQ6_PLAIN: Grid<64> = Grid::new(&half_table::<64>(&IQ6NL_VALUES, 0));
static IQ6_SHIFTED: Grid<64> = Grid::new(&half_table::<64>(&IQ6NL_VALUES, 1));

/// A 16-weight sub-block.
type Sub = [f32; 16];

/// The default importance of a weight without an imatrix (FORMATS.md §9.1 table).
#[derive(Clone, Copy, PartialEq, Eq)]
enum NoImatrix {
    /// `x²` (IQ4_K).
    Square,
    /// `s2/4 + x²` (IQ2_K, IQ3_K, IQ5_K, IQ6_K).
    QuarterSigma,
}

/// Per-weight importance of a whole super-block (§9.1): `qw·sqrt(s2 + x²)` with an imatrix.
#[inline(always)]
fn superblock_weights(xbl: &[f32], qw: Option<&[f32]>, s2: f32, def: NoImatrix, w: &mut [f32; QK_K]) {
    match qw {
        Some(qw) => {
            for j in 0..QK_K {
                w[j] = qw[j] * fmadd(xbl[j], xbl[j], s2).sqrt();
            }
        }
        None => match def {
            NoImatrix::Square => {
                for j in 0..QK_K {
                    w[j] = xbl[j] * xbl[j];
                }
            }
            NoImatrix::QuarterSigma => {
                // Not contracted in the reference, like the imatrix form above.
                let a = 0.25 * s2;
                for j in 0..QK_K {
                    w[j] = a + xbl[j] * xbl[j];
                }
            }
        },
    }
}

/// Sub-block `ib` of a super-block-sized array.
#[inline(always)]
fn sub(a: &[f32], ib: usize) -> &Sub {
    a[16 * ib..16 * ib + 16].try_into().unwrap()
}

/// How the ntry search of a type starts and ends (§9.1).
#[derive(Clone, Copy)]
struct Search {
    /// Candidates `itry = -ntry..=ntry`.
    ntry: i32,
    /// Step between candidate inverse scales.
    step: i32,
    /// Re-fit the scale on the chosen half at the end.
    refit: bool,
    /// IQ3_K: the first candidate is taken only if it has weight (else the start scale
    /// `-max/T[0]` stays), and a search that ends at scale 0 reports the plain half. The other
    /// types take the first candidate as it is — a weightless one makes the scale NaN (0/0),
    /// which then wins no comparison and decodes as `L = 0`, exactly as in the reference.
    guarded_start: bool,
}

/// The ntry search of one sub-block's float scale and grid half (§9.1): candidate inverse
/// scales `(step·itry + T[0])/max` on both halves, both signs; optionally re-fitted on the
/// chosen half. Returns `(scale, shifted)`; scale 0 for an all-(near-)zero sub-block.
#[inline(always)]
fn ntry_search<const N: usize>(xb: &Sub, w: &Sub, grids: [&Grid<N>; 2], s: Search) -> (f32, bool) {
    let (amax, max) = signed_max(xb);
    if amax < 1e-16 {
        return (0.0, false);
    }
    let plain = grids[0];
    let d0 = -max / plain.values[0];
    let [qxp, q2p, qxm, q2m] = pm_sums(plain, 1.0 / d0, xb, w);
    let mut best = Best { d: d0, score: 0.0 };
    if q2p > 0.0 || !s.guarded_start {
        best.d = qxp / q2p;
        best.score = best.d * qxp;
    }
    best.offer(qxm, q2m);
    // (step·itry is an exact small integer: as one rounding of itry·step + T[0], the same ids)
    let is_shifted = offer_candidates(grids, s.ntry, s.step as f32, max, xb, w, &mut best);
    let mut d = best.d;
    if d == 0.0 && s.guarded_start {
        return (0.0, false);
    }
    if s.refit && d != 0.0 {
        let g = grids[is_shifted as usize];
        let id = 1.0 / d;
        let (mut qx, mut q2) = (0f32, 0f32);
        for j in 0..16 {
            let q = g.values[g.best_index(id * xb[j])];
            qx = fmadd(w[j] * q, xb[j], qx);
            q2 = fmadd(w[j] * q, q, q2);
        }
        if q2 > 0.0 {
            d = qx / q2;
        }
    }
    (d, is_shifted)
}

/// Assigns the indices of sub-block `ib` for the scale `dl = d·L` (skipped when `dl == 0` and
/// `always` is false) and adds its `Σ w·x·q`, `Σ w·q²` (q = `T[i]·L`) to `sums`.
#[inline(always)]
fn assign<const N: usize>(g: &Grid<N>, xb: &Sub, w: &Sub, d: f32, l: i32, always: bool, q: &mut [u8], sums: &mut (f32, f32)) {
    let dl = d * l as f32;
    if dl == 0.0 && !always {
        return;
    }
    let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
    // the midpoint count, which vectorizes (the same indices as `best_index`)
    let mut a = [0f32; 16];
    for j in 0..16 {
        a[j] = idl * xb[j];
    }
    let mut idx = [0u8; 16];
    g.best_indices(&a, &mut idx);
    for j in 0..16 {
        let i = idx[j] as usize;
        q[j] = i as u8;
        let v = g.values[i] * l as f32;
        sums.0 = fmadd(w[j] * v, xb[j], sums.0);
        sums.1 = fmadd(w[j] * v, v, sums.1);
    }
}

/// The signed scale with the largest magnitude (first on ties) of 16 sub-block scales.
#[inline(always)]
fn signed_max_scale(scales: &[f32; 16]) -> (f32, f32) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &s in scales {
        if s.abs() > amax {
            amax = s.abs();
            max = s;
        }
    }
    (amax, max)
}

/// The body of a row quantizer: sanitizes the imatrix (§9.1, blocks of 16), quantizes the row
/// super-block by super-block with `$block` (which fills a [`Parts`]) and packs. A macro, so
/// that `$block` is inlined into the FMA-enabled instance `fma_dispatch!` makes.
macro_rules! quantize_row_body {
    ($fmt:expr, $block:ident, $x:ident, $imatrix:ident, $out:ident) => {{
        let mut qw = vec![];
        if let Some(im) = $imatrix {
            qw.resize($x.len(), 0.0);
            sanitize_imatrix(im, $x, 16, &mut qw);
        }
        let mut p = Parts::default();
        for (ibl, (xbl, ob)) in $x.chunks_exact(QK_K).zip($out.chunks_exact_mut($fmt.layout.bytes)).enumerate() {
            p.d = 0;
            p.extra = 0;
            p.sc = [0; 16];
            p.q = [0; QK_K];
            $block(xbl, $imatrix.map(|_| &qw[QK_K * ibl..QK_K * (ibl + 1)]), &mut p);
            pack(&$fmt.layout, &p, ob);
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// IQ4_K, IQ5_K, IQ6_K (§9.5, §9.6)

/// One IQ4_K super-block: ntry 7 search without re-fit; `d = -s_max/32`; indices are assigned
/// even where `L = 0`.
#[inline(always)]
fn iq4k_block(xbl: &[f32], qw: Option<&[f32]>, p: &mut Parts) {
    let grids = [&IQ4_PLAIN, &IQ4_SHIFTED];
    let s2 = sigma2(xbl, 2.0);
    let mut w = [0f32; QK_K];
    superblock_weights(xbl, qw, s2, NoImatrix::Square, &mut w);
    let mut scales = [0f32; 16];
    for ib in 0..16 {
        let (s, sh) = ntry_search(sub(xbl, ib), sub(&w, ib), grids, Search { ntry: 7, step: 1, refit: false, guarded_start: false });
        scales[ib] = s;
        p.extra |= (sh as u16) << ib;
    }
    let d = -signed_max_scale(&scales).1 / 32.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sums = (0f32, 0f32);
    for ib in 0..16 {
        let l = nearest_int_mul(id, scales[ib]).clamp(-32, 31);
        p.sc[ib] = (l + 32) as u8;
        let g = grids[((p.extra >> ib) & 1) as usize];
        assign(g, sub(xbl, ib), sub(&w, ib), d, l, true, &mut p.q[16 * ib..16 * ib + 16], &mut sums);
    }
    p.d = f16::from_f32(if sums.1 > 0.0 { sums.0 / sums.1 } else { d }).to_bits();
}

/// One IQ5_K / IQ6_K super-block: ntry 5 search with re-fit; `d = -s_max/div`; `L` clamped to
/// `range` and stored as `L + bias` (IQ5_K: 32, [-32, 31], 32; IQ6_K: 127, [-127, 127] as a
/// signed byte).
#[inline(always)]
fn iq56k_block<const N: usize>(grids: [&Grid<N>; 2], div: f32, range: (i32, i32), bias: i32, xbl: &[f32], qw: Option<&[f32]>, p: &mut Parts) {
    let s2 = sigma2(xbl, 2.0);
    let mut w = [0f32; QK_K];
    superblock_weights(xbl, qw, s2, NoImatrix::QuarterSigma, &mut w);
    let mut scales = [0f32; 16];
    for ib in 0..16 {
        let (s, sh) = ntry_search(sub(xbl, ib), sub(&w, ib), grids, Search { ntry: 5, step: 1, refit: true, guarded_start: false });
        scales[ib] = s;
        p.extra |= (sh as u16) << ib;
    }
    let (amax, max) = signed_max_scale(&scales);
    if amax == 0.0 {
        p.extra = 0;
        return;
    }
    let d = -max / div;
    let id = 1.0 / d;
    let mut sums = (0f32, 0f32);
    for ib in 0..16 {
        let l = nearest_int_mul(id, scales[ib]).clamp(range.0, range.1);
        p.sc[ib] = (l + bias) as u8;
        let g = grids[((p.extra >> ib) & 1) as usize];
        assign(g, sub(xbl, ib), sub(&w, ib), d, l, false, &mut p.q[16 * ib..16 * ib + 16], &mut sums);
    }
    p.d = f16::from_f32(if sums.1 > 0.0 { sums.0 / sums.1 } else { d }).to_bits();
}

#[inline(always)]
fn iq5k_block(xbl: &[f32], qw: Option<&[f32]>, p: &mut Parts) {
    iq56k_block([&IQ5_PLAIN, &IQ5_SHIFTED], 32.0, (-32, 31), 32, xbl, qw, p)
}

#[inline(always)]
fn iq6k_block(xbl: &[f32], qw: Option<&[f32]>, p: &mut Parts) {
    iq56k_block([&IQ6_PLAIN, &IQ6_SHIFTED], 127.0, (-127, 127), 0, xbl, qw, p)
}

// ---------------------------------------------------------------------------------------------
// IQ3_K (§9.4)

/// One IQ3_K super-block: ntry 3 search with step 2 and re-fit; `d = max|s|/31`; `L` odd.
#[inline(always)]
fn iq3k_block(xbl: &[f32], qw: Option<&[f32]>, p: &mut Parts) {
    let grids = [&IQ3_PLAIN, &IQ3_SHIFTED];
    let s2 = sigma2(xbl, 1.5);
    let mut w = [0f32; QK_K];
    superblock_weights(xbl, qw, s2, NoImatrix::QuarterSigma, &mut w);
    let mut scales = [0f32; 16];
    for ib in 0..16 {
        let (s, sh) = ntry_search(sub(xbl, ib), sub(&w, ib), grids, Search { ntry: 3, step: 2, refit: true, guarded_start: true });
        scales[ib] = s;
        p.extra |= (sh as u16) << ib;
    }
    let amax = signed_max_scale(&scales).0;
    if amax == 0.0 {
        p.extra = 0;
        return;
    }
    let d = amax / 31.0;
    let id = 1.0 / d;
    let mut sums = (0f32, 0f32);
    for ib in 0..16 {
        let m = nearest_int(0.5 * fmadd(id, scales[ib].abs(), -1.0)).clamp(0, 15);
        let neg = scales[ib] < 0.0;
        p.sc[ib] = m as u8 | (neg as u8) << 4;
        let l = if neg { -(2 * m + 1) } else { 2 * m + 1 };
        let g = grids[((p.extra >> ib) & 1) as usize];
        assign(g, sub(xbl, ib), sub(&w, ib), d, l, false, &mut p.q[16 * ib..16 * ib + 16], &mut sums);
    }
    p.d = f16::from_f32(1.01 * if sums.1 > 0.0 { sums.0 / sums.1 } else { d }).to_bits();
}

// ---------------------------------------------------------------------------------------------
// IQ2_K (§9.2)

/// The exhaustive 3-threshold search of one 16-weight sub-block (§9.2 step 1): the weights,
/// sorted by value, are cut into 4 runs that take the 4 grid values in ascending or descending
/// order, on either half. Returns `(scale, shifted)`.
///
/// The candidates are compared in the reference's order — `(i1, i2, i3)` lexicographic, then
/// plain ascending, shifted ascending, plain descending, shifted descending — with the strict
/// "better" test of [`Best`]. For speed, the sums of all `i3` of one `(i1, i2)` are computed
/// together and the in-order comparison only runs when one of them could win.
#[inline(always)]
fn iq2k_threshold_search(xb: &Sub, w: &Sub) -> (f32, bool) {
    let (sx, sw, sxx) = sorted_prefix_sums(xb, w);
    const SHIFTED: [bool; 4] = [false, true, false, true];
    let vals = iq2k_orders();
    let (d, c) = match crate::arch::threshold4_kernel() {
        Some(kernel) => kernel(&sx, &sw, &sxx, &vals),
        None => threshold4_search(&sx, &sw, &vals),
    };
    (d, SHIFTED[c])
}

/// Prefix sums of `w·x`, `w` and `w·x²` over the 16 weights sorted by (x, position) (the last
/// only bounds candidates' scores, see `arch::Threshold4Fn`).
#[inline(always)]
fn sorted_prefix_sums(xb: &Sub, w: &Sub) -> ([f32; 17], [f32; 17], [f32; 17]) {
    let order: [usize; 16] = super::common::sorted_positions(xb);
    let (mut sx, mut sw, mut sxx) = ([0f32; 17], [0f32; 17], [0f32; 17]);
    for (j, &k) in order.iter().enumerate() {
        sw[j + 1] = sw[j] + w[k];
        sx[j + 1] = fmadd(w[k], xb[k], sx[j]);
        sxx[j + 1] = fmadd(w[k] * xb[k], xb[k], sxx[j]);
    }
    (sx, sw, sxx)
}

/// IQ2_K's four value orders c, in the order the reference compares them: plain ascending,
/// shifted ascending, plain descending, shifted descending.
#[inline(always)]
fn iq2k_orders() -> [[f32; 4]; 4] {
    let p = &IQ2_PLAIN.values;
    let s = &IQ2_SHIFTED.values;
    [[p[0], p[1], p[2], p[3]], [s[0], s[1], s[2], s[3]], [p[3], p[2], p[1], p[0]], [s[3], s[2], s[1], s[0]]]
}

/// The per-lane inputs of the threshold search, lane `k = 4·i3 + c` (64 lanes: i3 < 16, four
/// orders c): the prefix sums up to i3, the run sums over [i3, 16) (`dwv` already times the
/// order's last value), and the order's four values: the scalar search's lanes (the SIMD
/// kernel computes the same with the same operations in registers).
struct Threshold4Lanes {
    pub sxk: [f32; 64],
    pub swk: [f32; 64],
    pub dx: [f32; 64],
    pub dwv: [f32; 64],
    pub v: [[f32; 64]; 4],
}

impl Threshold4Lanes {
    #[inline(always)]
    fn new(sx: &[f32; 17], sw: &[f32; 17], vals: &[[f32; 4]; 4]) -> Threshold4Lanes {
        let mut l = Threshold4Lanes { sxk: [0.0; 64], swk: [0.0; 64], dx: [0.0; 64], dwv: [0.0; 64], v: [[0.0; 64]; 4] };
        for k in 0..64 {
            let (i3, c) = (k / 4, k % 4);
            l.sxk[k] = sx[i3];
            l.swk[k] = sw[i3];
            l.dx[k] = sx[16] - sx[i3];
            l.dwv[k] = (sw[16] - sw[i3]) * vals[c][3];
            for j in 0..4 {
                l.v[j][k] = vals[c][j];
            }
        }
        l
    }
}

/// The search of [`iq2k_threshold_search`] over prefix sums `sx` (Σw·x) and `sw` (Σw) of the
/// 16 sorted weights and four value orders `vals`: the best scale and the order `c` it takes
/// (the scalar oracle of `arch::threshold4_kernel`, which returns the same bits).
///
/// Candidates are laid out k = 4·i3 + c — the comparison order for fixed (i1, i2) — so the sums
/// of 8 values of i3 are one run of 32 lanes.
#[inline(always)]
pub(crate) fn threshold4_search(sx: &[f32; 17], sw: &[f32; 17], vals: &[[f32; 4]; 4]) -> (f32, usize) {
    let Threshold4Lanes { sxk, swk, dx, dwv, v: [v0, v1, v2, v3] } = Threshold4Lanes::new(sx, sw, vals);
    let mut best = Best { d: 0.0, score: 0.0 };
    let mut best_c = 0;
    for i1 in 0..16 {
        for i2 in i1..16 {
            // Σwxq = fma(D, v3, fma(C, v2, fma(A, v0, B·v1))), Σwq² likewise with w·v·v.
            let (bx, bw) = (sx[i2] - sx[i1], sw[i2] - sw[i1]);
            let mut hx = [0f32; 32];
            let mut hw = [0f32; 32];
            for k in 0..32 {
                hx[k] = fmadd(sx[i1], v0[k], bx * v1[k]);
                hw[k] = fmadd(sw[i1] * v0[k], v0[k], bw * v1[k] * v1[k]);
            }
            // Lanes i3 = 8·half + k/4; those below i2 are no candidates.
            for half in i2 / 8..2 {
                let o = 32 * half;
                let first = 4 * i2.saturating_sub(8 * half);
                let valid = &LANES_FROM[first / 4];
                let mut qx = [0f32; 32];
                let mut q2 = [0f32; 32];
                let score = best.score;
                let mut hits = [0u32; 32];
                for k in 0..32 {
                    let (cx, cw) = (sxk[o + k] - sx[i2], swk[o + k] - sw[i2]);
                    qx[k] = fmadd(dx[o + k], v3[o + k], fmadd(cx, v2[o + k], hx[k]));
                    q2[k] = fmadd(dwv[o + k], v3[o + k], fmadd(cw * v2[o + k], v2[o + k], hw[k]));
                    hits[k] = ((valid[k] * q2[k] > 0.0) & (qx[k] * qx[k] > score * q2[k])) as u32;
                }
                // In order, the lanes that beat the run's starting score (the score only grows,
                // up to rounding: a lane that loses to it loses to the later ones too).
                if hits.iter().fold(0, |a, &h| a | h) != 0 {
                    for k in first..32 {
                        if hits[k] != 0 && best.offer(qx[k], q2[k]) {
                            best_c = k % 4;
                        }
                    }
                }
            }
        }
    }
    (best.d, best_c)
}

/// `LANES_FROM[i][k]` = 1 for lanes `k >= 4i` of a 32-lane run, else 0 (a multiplier that makes
/// `Σwq² > 0` false in the lanes before `i3 = i2`).
const LANES_FROM: [[f32; 32]; 8] = {
    let mut t = [[0f32; 32]; 8];
    let mut i = 0;
    while i < 8 {
        let mut k = 4 * i;
        while k < 32 {
            t[i][k] = 1.0;
            k += 1;
        }
        i += 1;
    }
    t
};

/// One IQ2_K super-block: threshold search per sub-block, `d` from `make_qx_quants` over the 16
/// scales (weighted by `Σw`), 4-bit `L = f - 8`, final scale ×1.03.
#[inline(always)]
fn iq2k_block(xbl: &[f32], qw: Option<&[f32]>, p: &mut Parts) {
    let grids = [&IQ2_PLAIN, &IQ2_SHIFTED];
    let s2 = sigma2(xbl, 1.5);
    let mut w = [0f32; QK_K];
    superblock_weights(xbl, qw, s2, NoImatrix::QuarterSigma, &mut w);
    let (mut scales, mut sw) = ([0f32; 16], [0f32; 16]);
    for ib in 0..16 {
        let (xb, wb) = (sub(xbl, ib), sub(&w, ib));
        sw[ib] = wb.iter().fold(0f32, |a, &v| a + v);
        if xb.iter().fold(0f32, |m, v| m.max(v.abs())) < 1e-16 {
            continue;
        }
        let (s, sh) = iq2k_threshold_search(xb, wb);
        scales[ib] = s;
        p.extra |= (sh as u16) << ib;
    }
    let mut levels = [0i8; 16];
    let d = if signed_max_scale(&scales).0 == 0.0 { 0.0 } else { make_qx_quants(8, &scales, &sw, &mut levels) };
    if d == 0.0 {
        p.extra = 0;
        return;
    }
    let id = 1.0 / d;
    let mut sums = (0f32, 0f32);
    for ib in 0..16 {
        let l = nearest_int_mul(id, scales[ib]).clamp(-8, 7);
        p.sc[ib] = (l + 8) as u8;
        let g = grids[((p.extra >> ib) & 1) as usize];
        assign(g, sub(xbl, ib), sub(&w, ib), d, l, false, &mut p.q[16 * ib..16 * ib + 16], &mut sums);
    }
    p.d = f16::from_f32(1.030 * if sums.1 > 0.0 { sums.0 / sums.1 } else { d }).to_bits();
}

// ---------------------------------------------------------------------------------------------
// The public row functions

macro_rules! row_functions {
    ($fmt:ident, $block:ident, $q:ident, $qfma:ident, $qbody:ident, $dq:ident, $dot:ident, $int:ident, $name:literal) => {
        #[inline(always)]
        fn $qbody(x: &[f32], imatrix: Option<&[f32]>, out: &mut [u8]) {
            quantize_row_body!($fmt, $block, x, imatrix, out)
        }
        fma_dispatch!(fn $qfma(x: &[f32], imatrix: Option<&[f32]>, out: &mut [u8]) => $qbody);

        #[doc = concat!("Quantizes one row to ", $name, ". `imatrix`: one importance weight per column, or none.")]
        pub fn $q(x: &[f32], imatrix: Option<&[f32]>, out: &mut [u8]) {
            debug_assert_eq!(x.len() % QK_K, 0, concat!(stringify!($q), ": length not a multiple of 256"));
            $qfma(x, imatrix, out)
        }

        #[doc = concat!("Decodes one ", $name, " row.")]
        pub fn $dq(src: &[u8], out: &mut [f32]) {
            dequantize_row(&$fmt, src, out)
        }

        #[doc = concat!("Dot product of an ", $name, " row with a Q8_K row (FORMATS.md §5), exact integer block sums.")]
        pub fn $dot(src: &[u8], y: &[u8]) -> f32 {
            vec_dot(&$fmt, src, y)
        }

        #[doc = concat!("Integer form of super-block `block` of an ", $name, " row.")]
        pub fn $int(src: &[u8], block: usize, out: &mut IntBlock) {
            decode_int(&$fmt, src, block, out)
        }
    };
}

row_functions!(IQ2K, iq2k_block, quantize_row_iq2_k, quantize_row_iq2_k_fma, quantize_row_iq2_k_body, dequantize_row_iq2_k, vec_dot_iq2_k_q8_k, decode_int_iq2_k, "IQ2_K");
row_functions!(IQ3K, iq3k_block, quantize_row_iq3_k, quantize_row_iq3_k_fma, quantize_row_iq3_k_body, dequantize_row_iq3_k, vec_dot_iq3_k_q8_k, decode_int_iq3_k, "IQ3_K");
row_functions!(IQ4K, iq4k_block, quantize_row_iq4_k, quantize_row_iq4_k_fma, quantize_row_iq4_k_body, dequantize_row_iq4_k, vec_dot_iq4_k_q8_k, decode_int_iq4_k, "IQ4_K");
row_functions!(IQ5K, iq5k_block, quantize_row_iq5_k, quantize_row_iq5_k_fma, quantize_row_iq5_k_body, dequantize_row_iq5_k, vec_dot_iq5_k_q8_k, decode_int_iq5_k, "IQ5_K");
row_functions!(IQ6K, iq6k_block, quantize_row_iq6_k, quantize_row_iq6_k_fma, quantize_row_iq6_k_body, dequantize_row_iq6_k, vec_dot_iq6_k_q8_k, decode_int_iq6_k, "IQ6_K");

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorized IQ2_K threshold search returns the scalar one's bits, on sub-blocks with
    /// ties, zeros, outliers and either sign.
    #[test]
    fn threshold4_kernels_equal_the_scalar_search() {
        #[cfg(target_arch = "x86_64")]
        let kernels: Vec<_> = crate::arch::available_isas().into_iter().filter_map(crate::arch::x86_64::threshold4_kernel).collect();
        #[cfg(not(target_arch = "x86_64"))]
        let kernels: Vec<crate::arch::Threshold4Fn> = vec![];
        let vals = iq2k_orders();
        let bytes = noise(64 * 2000, 0x2b2b);
        for (case, chunk) in bytes.chunks(64).enumerate() {
            let mut x = [0f32; 16];
            let mut w = [0f32; 16];
            for j in 0..16 {
                let b = &chunk[4 * j..4 * j + 4];
                x[j] = match case % 5 {
                    0 => (b[0] as f32 - 128.0) / 16.0,                       // many ties
                    1 => (b[0] as f32 - 128.0) * (b[1] as f32 + 1.0) / 4096.0, // spread
                    2 => if b[2] < 40 { 0.0 } else { (b[0] as f32 - 100.0) / 64.0 },
                    3 => if j == 3 { 40.0 } else { (b[0] as f32 - 128.0) / 128.0 },
                    _ => -((b[0] as f32) / 64.0),
                };
                w[j] = if case % 7 == 0 { 1.0 } else { 0.01 + b[3] as f32 / 32.0 };
            }
            let (sx, sw, sxx) = sorted_prefix_sums(&x, &w);
            let want = threshold4_search(&sx, &sw, &vals);
            assert!(want.0 != 0.0 || x.iter().all(|&v| v == 0.0), "case {case}: no candidate won");
            for f in &kernels {
                let got = f(&sx, &sw, &sxx, &vals);
                assert_eq!((got.0.to_bits(), got.1), (want.0.to_bits(), want.1), "case {case}: x={x:?} w={w:?}");
            }
        }
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn pack_inverts_unpack_for_every_byte_pattern() {
        for f in [&IQ2K, &IQ3K, &IQ4K, &IQ5K, &IQ6K] {
            for seed in 1..20 {
                let b = noise(f.layout.bytes, seed);
                let mut p = Parts::default();
                unpack(&f.layout, &b, &mut p);
                let mut back = vec![0xAAu8; f.layout.bytes];
                pack(&f.layout, &p, &mut back);
                assert_eq!(back, b);
            }
        }
    }

    #[test]
    fn levels_cover_the_documented_ranges() {
        assert_eq!((IQ2K.level(0), IQ2K.level(15)), (-8, 7));
        assert_eq!((IQ3K.level(0), IQ3K.level(15), IQ3K.level(16), IQ3K.level(31)), (1, 31, -1, -31));
        assert_eq!((IQ4K.level(0), IQ4K.level(63)), (-32, 31));
        assert_eq!((IQ6K.level(0x81), IQ6K.level(0x7F)), (-127, 127));
    }

    #[test]
    fn dot_equals_dequantized_weights_times_q8k() {
        let x: Vec<f32> = (0..1024).map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 300.0).collect();
        let y: Vec<f32> = (0..1024).map(|i| ((i * 104729 % 997) as f32 - 498.0) / 250.0).collect();
        let mut yq = vec![0u8; 4 * q8k::BLOCK_BYTES];
        q8k::quantize_row(&y, &mut yq);
        let mut yd = vec![0f32; 1024];
        q8k::dequantize_row(&yq, &mut yd);
        type Fns = (fn(&[f32], Option<&[f32]>, &mut [u8]), fn(&[u8], &mut [f32]), fn(&[u8], &[u8]) -> f32, usize);
        let fns: [Fns; 5] = [
            (quantize_row_iq2_k, dequantize_row_iq2_k, vec_dot_iq2_k_q8_k, 76),
            (quantize_row_iq3_k, dequantize_row_iq3_k, vec_dot_iq3_k_q8_k, 110),
            (quantize_row_iq4_k, dequantize_row_iq4_k, vec_dot_iq4_k_q8_k, 144),
            (quantize_row_iq5_k, dequantize_row_iq5_k, vec_dot_iq5_k_q8_k, 176),
            (quantize_row_iq6_k, dequantize_row_iq6_k, vec_dot_iq6_k_q8_k, 212),
        ];
        for (q, dq, dot, bytes) in fns {
            let mut b = vec![0u8; 4 * bytes];
            q(&x, None, &mut b);
            let mut w = vec![0f32; 1024];
            dq(&b, &mut w);
            let exact: f64 = w.iter().zip(&yd).map(|(&a, &b)| a as f64 * b as f64).sum();
            let scale: f64 = w.iter().zip(&yd).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
            assert!((dot(&b, &yq) as f64 - exact).abs() <= 1e-6 * scale, "{bytes}");
        }
    }
}
