//! The row-interleaved `_R4` types (FORMATS.md §8): IQ2_K_R4, IQ3_K_R4, IQ4_K_R4, IQ5_K_R4 and
//! IQ4_KS_R4, IQ5_KS_R4.
//!
//! An `_R4` tensor stores each group of 4 consecutive rows of its base type interleaved, super-
//! block by super-block, so that a SIMD kernel computes 4 output rows from one pass over memory.
//! It is a pure byte shuffle: every bit of the 4 base rows has one place in the group and back
//! ([`interleave`], [`deinterleave`]). A group is
//! `[row metadata of rows 0..3][R4 block 0] … [R4 block nblock-1]`, each R4 block holding the 4
//! rows' data for one column super-block (4 × the base block's bytes):
//!
//! | R4 block        | fields (offsets in bytes)                                                   |
//! |-----------------|-----------------------------------------------------------------------------|
//! | IQ2_K_R4 (304)  | `d[4]` f16 @0, `extra[8]` @8, `scales_l[32]` @16, `qs[256]` @48              |
//! | IQ3_K_R4 (440)  | `d[4]`, `extra[8]`, `scales_h[8]` @16, `scales_l[32]` @24, `qs[256]` @56, `qh[128]` @312 |
//! | IQ4_K_R4 (576)  | `d[4]`, `extra[8]`, `scales_h[16]` @16, `scales_l[32]` @32, `qs[512]` @64   |
//! | IQ5_K_R4 (704)  | as IQ4_K_R4, plus `qh[128]` @576                                            |
//! | IQ4_KS_R4 (544) | `scales[32]` @0 (`scales[4·ib + r]`, the base bytes), `qs[512]` @32          |
//! | IQ5_KS_R4 (672) | as IQ4_KS_R4, plus `qh[128]` @544                                            |
//!
//! (IQ4_KS_R4 and IQ5_KS_R4 groups start with the 4 rows' f32 scales, 16 bytes.) For the IQ*_K_R4 types,
//! 16-weight sub-block `b` of row `r` — 32-weight sub-block `ib = b/2`, half `h = b%2` — has its
//! shift in bit `ib` of `extra[r + 4h]` and its scale field at `is = 8·ib + r + 4h`: low nibble =
//! nibble `is/32` of `scales_l[is%32]`; sign (IQ3_K) = bit `is/8` of `scales_h[is%8]`; high 2 bits
//! (IQ4_K, IQ5_K) = bits `2·(is/16)` of `scales_h[is%16]`. The grid indices of row `r`, 32-weight
//! sub-block `ib`, `i` = 0..3:
//! * 4-bit types (§8.1): byte `qs[64·ib + 4r + i + 16c]` holds weights `i + (0, 16, 4, 20)[c]`
//!   (low nibble) and that `+ 8` (high nibble); bit `k` of `qh[16·ib + 4r + i]` is index bit 4 of
//!   weight `i + (0, 8, 16, 24, 4, 12, 20, 28)[k]`.
//! * 2-bit types: bits `2j` of `qs[32·ib + 4r + i]` hold weight `i + 4j`, of `qs[32·ib + 16 + 4r + i]`
//!   weight `16 + i + 4j`; bit `k` of `qh[16·ib + 4r + i]` is index bit 2 of weight `i + 4k`.
//!
//! Each type is one entry of the `r4_types!` table below: its base type, the base block layout
//! (shared with `super::k`) and the three facts above (scales, index bits). Quantizing is
//! quantizing the 4 rows with the base type and interleaving (FORMATS.md §9.11); decoding and the
//! dot product take each R4 block apart into the 4 base blocks and run the base kernels, so they
//! give the base type's floats bit for bit.

use super::k::{pack, unpack, High, Layout, Low, Parts, Scales};
use super::{q8k, scalar_kernels, IntBlock, Kernels};
use crate::registry::{QType, QK_K};
use crate::tables::{IQ2NL_VALUES, IQ3NL_VALUES, IQ4K_VALUES, IQ5NL_VALUES};

/// Where an R4 block keeps the sub-block scales of its 4 rows.
#[derive(Clone, Copy, Debug)]
pub enum R4Scales {
    /// IQ*_K_R4: `d[4]` @0, `extra[8]` @8, the fields' high bits (if any) @16, then `scales_l[32]`.
    Nibbles(R4High),
    /// IQ*_KS_R4: the base types' scale bytes, `scales[4·ib + r]` @0.
    Bytes,
}

/// The high bits of an IQ*_K_R4 scale field.
#[derive(Clone, Copy, Debug)]
pub enum R4High {
    /// None (IQ2_K).
    None,
    /// A sign bit: `scales_h[8]` (IQ3_K).
    Sign,
    /// Two bits: `scales_h[16]` (IQ4_K, IQ5_K).
    Two,
}

/// How an R4 block keeps the grid indices of its 4 rows.
#[derive(Clone, Copy, Debug)]
pub enum R4Quants {
    /// Low 2 bits in `qs[256]`, index bit 2 in `qh[128]` if `high` (IQ2_K, IQ3_K).
    Crumbs { high: bool },
    /// Low 4 bits in `qs[512]`, index bit 4 in `qh[128]` if `high` (IQ4_K, IQ5_K, IQ4_KS, IQ5_KS).
    Nibbles { high: bool },
}

/// One row-interleaved type.
#[derive(Debug)]
pub struct R4Spec {
    /// The `_R4` type.
    pub r4: QType,
    /// The type whose rows it interleaves.
    pub base: QType,
    /// The base type's block layout.
    pub layout: Layout,
    /// The base type's grid: plain half, then shifted half (= plain + a constant).
    pub values: &'static [i8],
    pub scales: R4Scales,
    pub quants: R4Quants,
}

/// Declares the `_R4` types: a static per type, the list, and their kernels.
macro_rules! r4_types {
    ($($name:ident: $spec:expr,)*) => {
        $(
            #[doc = concat!("The `", stringify!($name), "` interleave.")]
            pub static $name: R4Spec = $spec;
        )*

        /// Every `_R4` type.
        pub static SPECS: &[&R4Spec] = &[$(&$name),*];

        /// The scalar kernels of an `_R4` type (`None` for other types).
        pub fn kernels(t: QType) -> Option<Kernels> {
            $(
                if t == $name.r4 {
                    return Some(Kernels {
                        quantize: |x, cols, im, out| quantize_group(&$name, x, cols, im, out),
                        dequantize: |src, cols, out| dequantize_group(&$name, src, cols, out),
                        dot: |src, cols, y, out| dot_group(&$name, src, cols, y, out),
                        decode_int: |src, cols, row, block, out| decode_int(&$name, src, cols, row, block, out),
                        fill_tile: None,
                        act_perm: None,
                    });
                }
            )*
            None
        }
    };
}

r4_types! {
    IQ2_K_R4: R4Spec {
        r4: QType::IQ2KR4,
        base: QType::IQ2K,
        layout: super::k::IQ2K.layout,
        values: &IQ2NL_VALUES,
        scales: R4Scales::Nibbles(R4High::None),
        quants: R4Quants::Crumbs { high: false },
    },
    IQ3_K_R4: R4Spec {
        r4: QType::IQ3KR4,
        base: QType::IQ3K,
        layout: super::k::IQ3K.layout,
        values: &IQ3NL_VALUES,
        scales: R4Scales::Nibbles(R4High::Sign),
        quants: R4Quants::Crumbs { high: true },
    },
    IQ4_K_R4: R4Spec {
        r4: QType::IQ4KR4,
        base: QType::IQ4K,
        layout: super::k::IQ4K.layout,
        values: &IQ4K_VALUES,
        scales: R4Scales::Nibbles(R4High::Two),
        quants: R4Quants::Nibbles { high: false },
    },
    IQ5_K_R4: R4Spec {
        r4: QType::IQ5KR4,
        base: QType::IQ5K,
        layout: super::k::IQ5K.layout,
        values: &IQ5NL_VALUES,
        scales: R4Scales::Nibbles(R4High::Two),
        quants: R4Quants::Nibbles { high: true },
    },
    IQ4_KS_R4: R4Spec {
        r4: QType::IQ4KSR4,
        base: QType::IQ4KS,
        values: &IQ4K_VALUES,
        layout: Layout { bytes: 136, head: false, scales: Scales::Bytes { off: 0, n: 8 }, low: Low::NibblesSplit { qs: 8 }, high: High::None },
        scales: R4Scales::Bytes,
        quants: R4Quants::Nibbles { high: false },
    },
    IQ5_KS_R4: R4Spec {
        r4: QType::IQ5KSR4,
        base: QType::IQ5KS,
        values: &IQ5NL_VALUES,
        layout: Layout { bytes: 168, head: false, scales: Scales::Bytes { off: 0, n: 8 }, low: Low::NibblesPaired { qs: 8 }, high: High::Bit { qh: 136, bit: 4 } },
        scales: R4Scales::Bytes,
        quants: R4Quants::Nibbles { high: true },
    },
}

/// The spec of an `_R4` type.
pub fn spec_of(r4: QType) -> Option<&'static R4Spec> {
    SPECS.iter().copied().find(|s| s.r4 == r4)
}

/// The spec of the `_R4` form of a base type.
pub fn spec_for_base(base: QType) -> Option<&'static R4Spec> {
    SPECS.iter().copied().find(|s| s.base == base)
}

/// Weights of `qh` bit `k` of a 4-bit-layout byte, relative to its `i`.
const QH4: [usize; 8] = [0, 8, 16, 24, 4, 12, 20, 28];
/// Weight of the low nibble of `qs` byte `16c` of the 4-bit layout, relative to its `i`.
const QS4: [usize; 4] = [0, 16, 4, 20];

impl R4Spec {
    /// Offset of `scales_l` (IQ*_K_R4).
    pub const fn scales_l(&self) -> usize {
        match self.scales {
            R4Scales::Nibbles(R4High::None) => 16,
            R4Scales::Nibbles(R4High::Sign) => 24,
            R4Scales::Nibbles(R4High::Two) => 32,
            R4Scales::Bytes => 0,
        }
    }

    /// Offset of `qs`.
    pub const fn qs(&self) -> usize {
        match self.scales {
            R4Scales::Nibbles(_) => self.scales_l() + 32,
            R4Scales::Bytes => 32,
        }
    }

    /// Offset of `qh` (where there is one).
    pub const fn qh(&self) -> usize {
        self.qs()
            + match self.quants {
                R4Quants::Crumbs { .. } => 256,
                R4Quants::Nibbles { .. } => 512,
            }
    }

    /// Bytes of one R4 block (4 base blocks).
    pub const fn block_bytes(&self) -> usize {
        4 * self.layout.bytes
    }

    /// Writes the 4 rows' parts of one super-block as an R4 block (all its bytes).
    fn put(&self, parts: &[Parts; 4], blk: &mut [u8]) {
        let blk = &mut blk[..self.block_bytes()];
        blk.fill(0);
        for (r, p) in parts.iter().enumerate() {
            match self.scales {
                R4Scales::Nibbles(high) => {
                    blk[2 * r..2 * r + 2].copy_from_slice(&p.d.to_le_bytes());
                    for b in 0..16 {
                        let (ib, h) = (b / 2, b % 2);
                        let is = 8 * ib + r + 4 * h;
                        blk[8 + r + 4 * h] |= (((p.extra >> b) & 1) as u8) << ib;
                        let f = p.sc[b];
                        blk[self.scales_l() + is % 32] |= (f & 15) << (4 * (is / 32));
                        match high {
                            R4High::None => {}
                            R4High::Sign => blk[16 + is % 8] |= ((f >> 4) & 1) << (is / 8),
                            R4High::Two => blk[16 + is % 16] |= ((f >> 4) & 3) << (2 * (is / 16)),
                        }
                    }
                }
                R4Scales::Bytes => {
                    for ib in 0..8 {
                        blk[4 * ib + r] = p.sc[ib];
                    }
                }
            }
            for ib in 0..8 {
                let q = &p.q[32 * ib..32 * ib + 32];
                match self.quants {
                    R4Quants::Nibbles { high } => {
                        for i in 0..4 {
                            for c in 0..4 {
                                let t = i + QS4[c];
                                blk[self.qs() + 64 * ib + 4 * r + i + 16 * c] = (q[t] & 15) | (q[t + 8] & 15) << 4;
                            }
                            if high {
                                blk[self.qh() + 16 * ib + 4 * r + i] = (0..8).fold(0, |a, k| a | ((q[i + QH4[k]] >> 4) & 1) << k);
                            }
                        }
                    }
                    R4Quants::Crumbs { high } => {
                        for i in 0..4 {
                            for half in 0..2 {
                                blk[self.qs() + 32 * ib + 16 * half + 4 * r + i] = (0..4).fold(0, |a, j| a | (q[16 * half + i + 4 * j] & 3) << (2 * j));
                            }
                            if high {
                                blk[self.qh() + 16 * ib + 4 * r + i] = (0..8).fold(0, |a, k| a | ((q[i + 4 * k] >> 2) & 1) << k);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Reads the parts of row `r` from an R4 block.
    fn get(&self, blk: &[u8], r: usize, p: &mut Parts) {
        let blk = &blk[..self.block_bytes()];
        match self.scales {
            R4Scales::Nibbles(high) => {
                p.d = u16::from_le_bytes([blk[2 * r], blk[2 * r + 1]]);
                p.extra = 0;
                for b in 0..16 {
                    let (ib, h) = (b / 2, b % 2);
                    let is = 8 * ib + r + 4 * h;
                    p.extra |= (((blk[8 + r + 4 * h] >> ib) & 1) as u16) << b;
                    let lo = (blk[self.scales_l() + is % 32] >> (4 * (is / 32))) & 15;
                    let hi = match high {
                        R4High::None => 0,
                        R4High::Sign => (blk[16 + is % 8] >> (is / 8)) & 1,
                        R4High::Two => (blk[16 + is % 16] >> (2 * (is / 16))) & 3,
                    };
                    p.sc[b] = lo | hi << 4;
                }
            }
            R4Scales::Bytes => {
                for ib in 0..8 {
                    p.sc[ib] = blk[4 * ib + r];
                }
            }
        }
        for ib in 0..8 {
            let q = &mut p.q[32 * ib..32 * ib + 32];
            match self.quants {
                R4Quants::Nibbles { high } => {
                    for i in 0..4 {
                        for c in 0..4 {
                            let t = i + QS4[c];
                            let v = blk[self.qs() + 64 * ib + 4 * r + i + 16 * c];
                            q[t] = v & 15;
                            q[t + 8] = v >> 4;
                        }
                        if high {
                            let h = blk[self.qh() + 16 * ib + 4 * r + i];
                            for k in 0..8 {
                                q[i + QH4[k]] |= ((h >> k) & 1) << 4;
                            }
                        }
                    }
                }
                R4Quants::Crumbs { high } => {
                    for i in 0..4 {
                        for half in 0..2 {
                            let v = blk[self.qs() + 32 * ib + 16 * half + 4 * r + i];
                            for j in 0..4 {
                                q[16 * half + i + 4 * j] = (v >> (2 * j)) & 3;
                            }
                        }
                        if high {
                            let h = blk[self.qh() + 16 * ib + 4 * r + i];
                            for k in 0..8 {
                                q[i + 4 * k] |= ((h >> k) & 1) << 2;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The constant by which the shifted half of the grid exceeds the plain half.
    pub fn shift_delta(&self) -> i8 {
        self.values[self.values.len() / 2] - self.values[0]
    }

    /// Bytes of row metadata per row (the base type's).
    pub fn meta(&self) -> usize {
        self.base.info().row_meta_bytes
    }
}

/// Interleaves one group: `base` holds 4 rows of the base type (`cols` weights each), `out`
/// receives the `_R4` group (the same number of bytes).
pub fn interleave(spec: &R4Spec, cols: usize, base: &[u8], out: &mut [u8]) {
    let (rs, rm, bb) = (spec.base.row_size(cols), spec.meta(), spec.layout.bytes);
    for r in 0..4 {
        out[rm * r..rm * (r + 1)].copy_from_slice(&base[rs * r..rs * r + rm]);
    }
    let mut parts: [Parts; 4] = Default::default();
    for ibl in 0..cols / QK_K {
        for (r, p) in parts.iter_mut().enumerate() {
            unpack(&spec.layout, &base[rs * r + rm + bb * ibl..], p);
        }
        spec.put(&parts, &mut out[4 * rm + 4 * bb * ibl..]);
    }
}

/// Undoes [`interleave`]: `r4` is one `_R4` group, `out` receives 4 rows of the base type.
pub fn deinterleave(spec: &R4Spec, cols: usize, r4: &[u8], out: &mut [u8]) {
    let (rs, rm, bb) = (spec.base.row_size(cols), spec.meta(), spec.layout.bytes);
    for r in 0..4 {
        out[rs * r..rs * r + rm].copy_from_slice(&r4[rm * r..rm * (r + 1)]);
    }
    let mut p = Parts::default();
    for ibl in 0..cols / QK_K {
        for r in 0..4 {
            spec.get(&r4[4 * rm + 4 * bb * ibl..], r, &mut p);
            pack(&spec.layout, &p, &mut out[rs * r + rm + bb * ibl..]);
        }
    }
}

/// Quantizes 4 rows with the base type and interleaves them.
fn quantize_group(spec: &R4Spec, x: &[f32], cols: usize, imatrix: Option<&[f32]>, out: &mut [u8]) {
    let base = scalar_kernels(spec.base);
    let rs = spec.base.row_size(cols);
    let mut rows = vec![0u8; 4 * rs];
    for (xr, or) in x.chunks_exact(cols).zip(rows.chunks_exact_mut(rs)) {
        (base.quantize)(xr, cols, imatrix, or);
    }
    interleave(spec, cols, &rows, out);
}

/// Calls `f(r, ibl, row)` for every row `r` and super-block `ibl` of a group, where `row` is a
/// one-super-block row of the base type (row metadata and block) holding that part of row `r`.
#[inline(always)]
fn for_each_base_block(spec: &R4Spec, src: &[u8], cols: usize, mut f: impl FnMut(usize, usize, &[u8])) {
    let (rm, bb) = (spec.meta(), spec.layout.bytes);
    // Row metadata (at most an f32) and one base block (at most 256 bytes).
    let mut row = [0u8; 4 + 256];
    let row = &mut row[..rm + bb];
    let mut p = Parts::default();
    for ibl in 0..cols / QK_K {
        for r in 0..4 {
            row[..rm].copy_from_slice(&src[rm * r..rm * (r + 1)]);
            spec.get(&src[4 * rm + 4 * bb * ibl..], r, &mut p);
            pack(&spec.layout, &p, &mut row[rm..]);
            f(r, ibl, row);
        }
    }
}

/// Decodes a group to 4 rows of `cols` floats (the base type's decode, bit for bit).
fn dequantize_group(spec: &R4Spec, src: &[u8], cols: usize, out: &mut [f32]) {
    let base = scalar_kernels(spec.base);
    for_each_base_block(spec, src, cols, |r, ibl, row| {
        (base.dequantize)(row, QK_K, &mut out[cols * r + QK_K * ibl..cols * r + QK_K * (ibl + 1)]);
    });
}

/// Dots the 4 rows of a group with one Q8_K row: per row, the base type's block terms
/// `(d·d8)·S` accumulated in block order — the base type's result, bit for bit.
fn dot_group(spec: &R4Spec, src: &[u8], cols: usize, y: &[u8], out: &mut [f32]) {
    let base = scalar_kernels(spec.base);
    let mut acc = [0f32; 4];
    let mut term = [0f32; 1];
    for_each_base_block(spec, src, cols, |r, ibl, row| {
        (base.dot)(row, QK_K, &y[q8k::BLOCK_BYTES * ibl..q8k::BLOCK_BYTES * (ibl + 1)], &mut term);
        acc[r] += term[0];
    });
    out[..4].copy_from_slice(&acc);
}

/// Integer form of super-block `block` of row `row` of a group, read straight from the R4 block:
/// what the base type's `decode_int` gives for that row's block.
fn decode_int(spec: &R4Spec, src: &[u8], cols: usize, row: usize, block: usize, out: &mut IntBlock) {
    debug_assert!(block < cols / QK_K, "r4::decode_int: block {block} beyond the row");
    let (rm, bb) = (spec.meta(), spec.layout.bytes);
    let mut p = Parts::default();
    spec.get(&src[4 * rm + 4 * bb * block..], row, &mut p);
    let half = spec.values.len() / 2;
    // per 16-weight half: (L, table offset)
    let mut subs = [(0i32, 0usize); 16];
    match spec.scales {
        R4Scales::Nibbles(_) => {
            out.d = half::f16::from_bits(p.d).to_f32();
            for (ib, sub) in subs.iter_mut().enumerate() {
                *sub = (super::k::level(&spec.layout.scales, p.sc[ib]), half * ((p.extra >> ib) & 1) as usize);
            }
        }
        R4Scales::Bytes => {
            out.d = super::common::read_f32(src, 4 * row);
            for (ib, sub) in subs.iter_mut().enumerate() {
                let byte = p.sc[ib / 2];
                *sub = ((byte & 0xFE) as i32 - 127, half * (byte & 1) as usize);
            }
        }
    }
    for (ib, &(l, off)) in subs.iter().enumerate() {
        out.scales[ib] = l as i16;
        for j in 0..16 {
            out.values[16 * ib + j] = spec.values[off + p.q[16 * ib + j] as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn block_sizes_match_the_registry() {
        for s in SPECS {
            assert_eq!(s.block_bytes(), 4 * s.r4.info().block_bytes, "{}", s.r4);
            assert_eq!(s.layout.bytes, s.base.info().block_bytes, "{}", s.r4);
            assert_eq!(s.r4.row_size(512), s.base.row_size(512));
            let end = match s.quants {
                R4Quants::Crumbs { high: true } | R4Quants::Nibbles { high: true } => s.qh() + 128,
                _ => s.qh(),
            };
            assert_eq!(end, s.block_bytes(), "{}", s.r4);
        }
    }

    #[test]
    fn shifted_grids_are_the_plain_grid_plus_a_constant() {
        for s in SPECS {
            let h = s.values.len() / 2;
            for i in 0..h {
                assert_eq!(s.values[h + i] - s.values[i], s.shift_delta(), "{} entry {i}", s.r4);
            }
            let bits = match s.quants {
                R4Quants::Crumbs { high } => 2 + high as u32,
                R4Quants::Nibbles { high } => 4 + high as u32,
            };
            assert_eq!(s.values.len(), 2 << bits, "{}", s.r4);
        }
    }

    #[test]
    fn every_grouped_type_has_a_spec() {
        for &t in QType::ALL {
            assert_eq!(spec_of(t).is_some(), t.info().rows_per_group == 4, "{t}");
            assert!(kernels(t).is_some() == spec_of(t).is_some(), "{t}");
        }
        for s in SPECS {
            assert_eq!(spec_for_base(s.base).map(|x| x.r4), Some(s.r4));
        }
    }

    #[test]
    fn repack_and_quantize_agree_and_check_their_arguments() {
        use crate::{ops, IqError};
        let x: Vec<f32> = (0..6 * 512).map(|i| ((i * 7919 % 263) as f32 - 131.0) / 50.0).collect();
        for s in SPECS {
            let q = ops::quantize(s.base, &x, 6, 512, None).unwrap();
            assert!(matches!(ops::repack(s.base, s.r4, &q, 6, 512), Err(IqError::RowsNotGrouped { .. })));
            assert!(matches!(ops::quantize(s.r4, &x, 6, 512, None), Err(IqError::RowsNotGrouped { .. })));
            assert!(matches!(ops::repack(s.base, QType::Q8K, &q, 6, 512), Err(IqError::Invalid(_))));
            let q4 = &q[..4 * s.base.row_size(512)];
            let r = ops::repack(s.base, s.r4, q4, 4, 512).unwrap();
            assert_eq!(r, ops::quantize(s.r4, &x[..4 * 512], 4, 512, None).unwrap(), "{}", s.r4);
            assert_eq!(ops::repack(s.r4, s.base, &r, 4, 512).unwrap(), q4, "{}", s.r4);
            assert_eq!(ops::dequantize(s.r4, &r, 4, 512).unwrap(), ops::dequantize(s.base, q4, 4, 512).unwrap());
        }
    }

    #[test]
    fn integer_form_is_the_base_types() {
        for s in SPECS {
            let cols = 512;
            let mut base = noise(4 * s.base.row_size(cols), 99 + s.r4.info().ggml_id as u64);
            if s.meta() > 0 {
                for r in 0..4 {
                    let o = r * s.base.row_size(cols);
                    base[o..o + 4].copy_from_slice(&(0.25f32 + r as f32).to_le_bytes());
                }
            }
            let mut r4 = vec![0u8; base.len()];
            interleave(s, cols, &base, &mut r4);
            let (kb, kr) = (scalar_kernels(s.base), kernels(s.r4).unwrap());
            for row in 0..4 {
                for block in 0..cols / QK_K {
                    let (mut want, mut got) = (IntBlock::default(), IntBlock::default());
                    let rs = s.base.row_size(cols);
                    (kb.decode_int)(&base[rs * row..rs * (row + 1)], cols, 0, block, &mut want);
                    (kr.decode_int)(&r4, cols, row, block, &mut got);
                    assert_eq!((got.d.to_bits(), got.scales, got.values), (want.d.to_bits(), want.scales, want.values), "{} row {row} block {block}", s.r4);
                }
            }
        }
    }

    #[test]
    fn interleave_is_a_bijection_on_every_byte_pattern() {
        for s in SPECS {
            for cols in [256, 768] {
                let base = noise(4 * s.base.row_size(cols), cols as u64 + s.r4.info().ggml_id as u64);
                let mut r4 = vec![0u8; base.len()];
                interleave(s, cols, &base, &mut r4);
                let mut back = vec![0u8; base.len()];
                deinterleave(s, cols, &r4, &mut back);
                assert_eq!(back, base, "{}", s.r4);
                // and the other way round
                let mut again = vec![0u8; base.len()];
                interleave(s, cols, &back, &mut again);
                assert_eq!(again, r4, "{}", s.r4);
            }
        }
    }
}
