//! Matrix multiply `W · Yᵀ` (weights times several Q8_K activation vectors) for every type.
//!
//! Each tile of [`TILE_ROWS`] weight rows is decoded once to the integer form every type shares
//! ([`IntBlock`]: int8 grid values, 16-weight integer sub-block scales, one float per block) and
//! laid out for the ISA's int8 dot-product instructions — by the type's SIMD tile decoder where the
//! ISA has one (every type but Q8_K on AVX-512; the `_R4` layouts already hold the tile's
//! 4-rows-by-4-weights runs), else block by block through its `decode_int`. The activations are
//! packed once for all tiles. The microkernel (AVX-512 VNNI, or AVX2) then computes, for every
//! (row, column, block), the same exact integer block sum as the type's dot product and
//! accumulates `(d · d8) · S` in block order — so the result equals the row-by-row dot products
//! bit for bit, only faster.

use std::ops::Range;

use crate::quants::{q8k, IntBlock, Kernels};
use crate::registry::QK_K;

/// Weight rows per tile (one 512-bit register of i32 lanes).
pub const TILE_ROWS: usize = 16;

/// The decoded weights of one tile, per super-block `b`:
/// * `w[b]`: `[sub-block s][group g][row][4]` int8 values (k = 16·s + 4·g + 0..4),
/// * `scales[b]`: `[s][row]` sub-block scales,
/// * `corr[b]`: `[row]` `128 · Σ_s scales[s] · Σ_{k∈s} values[k]` (the cost of offsetting the
///   activations by 128 so they can be the unsigned operand),
/// * `d[b]`: `[row]` block factors,
/// * `paired`: whether sub-blocks `2i` and `2i + 1` have the same scale in every row and block
///   (the types with one scale per 32 weights), so a microkernel may scale their sums at once.
pub struct PackedRows {
    pub blocks: usize,
    pub w: Vec<[i8; QK_K * TILE_ROWS]>,
    pub scales: Vec<[i32; 16 * TILE_ROWS]>,
    pub corr: Vec<[i32; TILE_ROWS]>,
    pub d: Vec<[f32; TILE_ROWS]>,
    pub paired: bool,
}

impl PackedRows {
    /// An empty tile for rows of `blocks` super-blocks.
    pub fn new(blocks: usize) -> Self {
        PackedRows {
            blocks,
            w: vec![[0; QK_K * TILE_ROWS]; blocks],
            scales: vec![[0; 16 * TILE_ROWS]; blocks],
            corr: vec![[0; TILE_ROWS]; blocks],
            d: vec![[0.0; TILE_ROWS]; blocks],
            paired: false,
        }
    }

    /// Decodes `nrows <= TILE_ROWS` rows (whole row groups of `g` rows, `group_bytes` each)
    /// starting at `src`; missing rows are zero. Uses the type's tile decoder where it has one.
    pub fn fill(&mut self, k: &Kernels, src: &[u8], cols: usize, g: usize, group_bytes: usize, nrows: usize) {
        match k.fill_tile {
            Some(f) => f(self, src, cols, nrows),
            None => self.fill_blocks(k, src, cols, g, group_bytes, nrows),
        }
        self.paired = self.scales.iter().all(|sc| sc.chunks_exact(2 * TILE_ROWS).all(|p| p[..TILE_ROWS] == p[TILE_ROWS..]));
    }

    /// [`fill`](Self::fill) block by block through the type's `decode_int` (the oracle of the
    /// tile decoders).
    pub fn fill_blocks(&mut self, k: &Kernels, src: &[u8], cols: usize, g: usize, group_bytes: usize, nrows: usize) {
        let mut ib = IntBlock::default();
        for r in 0..TILE_ROWS {
            for b in 0..self.blocks {
                if r < nrows {
                    let grp = &src[(r / g) * group_bytes..(r / g + 1) * group_bytes];
                    (k.decode_int)(grp, cols, r % g, b, &mut ib);
                } else {
                    ib = IntBlock::default();
                }
                let mut corr = 0i32;
                for s in 0..16 {
                    self.scales[b][s * TILE_ROWS + r] = ib.scales[s] as i32;
                    let vs = &ib.values[16 * s..16 * s + 16];
                    corr += ib.scales[s] as i32 * vs.iter().map(|&v| v as i32).sum::<i32>();
                    for gi in 0..4 {
                        let dst = ((s * 4 + gi) * TILE_ROWS + r) * 4;
                        self.w[b][dst..dst + 4].copy_from_slice(&vs[4 * gi..4 * gi + 4]);
                    }
                }
                self.corr[b][r] = corr.wrapping_mul(128);
                self.d[b][r] = ib.d;
            }
        }
    }
}

/// Decodes a whole tile at once: `nrows <= TILE_ROWS` rows starting at `src`, as
/// [`PackedRows::fill`] (missing rows zero).
pub type FillTileFn = fn(w: &mut PackedRows, src: &[u8], cols: usize, nrows: usize);

/// Activations packed for the microkernel: per vector, its quants offset by 128 (`q8 ^ 0x80`,
/// unsigned) and its block scales; `has_min`: whether a quant is -128 (never from
/// [`crate::ops::quantize_q8k`], whose quants lie in -127..=127; a microkernel that needs them
/// there falls back to [`tile_scalar`]).
pub struct PackedCols {
    pub n: usize,
    pub cols: usize,
    pub yu: Vec<u8>,
    pub d8: Vec<f32>,
    pub has_min: bool,
}

impl PackedCols {
    /// Packs `n` Q8_K rows of `cols` values.
    pub fn new(y: &[u8], cols: usize, n: usize) -> Self {
        let blocks = cols / QK_K;
        let mut yu = vec![0u8; n * cols];
        let mut d8 = vec![0f32; n * blocks];
        for (j, row) in y.chunks_exact(blocks * q8k::BLOCK_BYTES).take(n).enumerate() {
            for (b, blk) in row.chunks_exact(q8k::BLOCK_BYTES).enumerate() {
                d8[j * blocks + b] = f32::from_le_bytes(blk[..4].try_into().unwrap());
                for (o, &q) in yu[j * cols + b * QK_K..][..QK_K].iter_mut().zip(&blk[q8k::QS..q8k::QS + QK_K]) {
                    *o = q ^ 0x80;
                }
            }
        }
        let has_min = yu.contains(&0);
        PackedCols { n, cols, yu, d8, has_min }
    }
}

/// Computes one tile for the activation vectors `vecs`: `out[r * ldo + j]` for rows `r < nrows`
/// of the tile and `j` in `vecs` (`vecs.end <= y.n`).
pub type TileFn = fn(w: &PackedRows, y: &PackedCols, vecs: Range<usize>, nrows: usize, out: &mut [f32], ldo: usize);

/// Portable microkernel over the packed data (the oracle of the SIMD ones).
pub fn tile_scalar(w: &PackedRows, y: &PackedCols, vecs: Range<usize>, nrows: usize, out: &mut [f32], ldo: usize) {
    let blocks = w.blocks;
    for j in vecs {
        for r in 0..nrows {
            let mut acc = 0f32;
            for b in 0..blocks {
                let yu = &y.yu[j * y.cols + b * QK_K..][..QK_K];
                let mut s = 0i32;
                for sb in 0..16 {
                    let mut p = 0i32;
                    for gi in 0..4 {
                        let off = ((sb * 4 + gi) * TILE_ROWS + r) * 4;
                        for t in 0..4 {
                            p += yu[16 * sb + 4 * gi + t] as i32 * w.w[b][off + t] as i32;
                        }
                    }
                    s = s.wrapping_add(p.wrapping_mul(w.scales[b][sb * TILE_ROWS + r]));
                }
                let s = s.wrapping_sub(w.corr[b][r]);
                acc += (w.d[b][r] * y.d8[j * blocks + b]) * s as f32;
            }
            out[r * ldo + j] = acc;
        }
    }
}

/// Tiles decoded together, and activation vectors per pass over them: a pass's activations
/// (64 vectors of `cols` bytes, 256 KiB at 4096 columns) stay in the L2 cache while the group's
/// tiles use them, instead of all `n` vectors streaming through it once per tile.
const GROUP_TILES: usize = 4;
const PASS_VECS: usize = 64;

/// `out = W · Yᵀ` (`rows x n`, row-major) for `n` Q8_K vectors `y`, in groups of up to
/// [`GROUP_TILES`] tiles on the pool's threads (`parallel`: whether to use them; a matrix of
/// few tiles takes smaller groups, two a thread at least).
pub fn matmul(k: &Kernels, tile: TileFn, rows_per_group: usize, row_size: usize, data: &[u8], cols: usize, y: &[u8], n: usize, out: &mut [f32], parallel: bool) {
    use rayon::prelude::*;
    let blocks = cols / QK_K;
    let g = rows_per_group;
    let all_tiles = (out.len() / n).div_ceil(TILE_ROWS);
    let gt = if parallel { GROUP_TILES.min(all_tiles / (2 * crate::threads::num_threads())).max(1) } else { GROUP_TILES };
    let packed = PackedCols::new(y, cols, n);
    let run = |ws: &mut Vec<PackedRows>, (gi, o): (usize, &mut [f32])| {
        let r0 = gi * gt * TILE_ROWS;
        let grows = o.len() / n;
        let tiles = grows.div_ceil(TILE_ROWS);
        for (t, w) in ws.iter_mut().enumerate().take(tiles) {
            let (t0, nrows) = (r0 + t * TILE_ROWS, TILE_ROWS.min(grows - t * TILE_ROWS));
            w.fill(k, &data[t0 * row_size..(t0 + nrows) * row_size], cols, g, g * row_size, nrows);
        }
        for v0 in (0..n).step_by(PASS_VECS) {
            for (t, w) in ws.iter().enumerate().take(tiles) {
                let nrows = TILE_ROWS.min(grows - t * TILE_ROWS);
                tile(w, &packed, v0..(v0 + PASS_VECS).min(n), nrows, &mut o[t * TILE_ROWS * n..], n);
            }
        }
    };
    let group = || (0..gt).map(|_| PackedRows::new(blocks)).collect::<Vec<_>>();
    if parallel {
        crate::threads::pool().install(|| out.par_chunks_mut(gt * TILE_ROWS * n).enumerate().for_each_init(group, run));
    } else {
        let mut ws = group();
        out.chunks_mut(gt * TILE_ROWS * n).enumerate().for_each(|c| run(&mut ws, c));
    }
}
