//! Q8_K (FORMATS.md §4): the CPU activation format every IQK dot product consumes, and a
//! plain 8-bit weight type. Block of 256: `f32 d; f32 sum; i8 qs[256]; i16 bsums[16]` = 296 bytes.
//!
//! Quantization follows the reference's x86 (AVX2) convention: `d = amax/127`,
//! `qs = round_half_even(x·(127/amax))`. The golden `y_q8k.bin` files pin this down bit for bit.

use super::common::read_f32;
use super::IntBlock;
use crate::registry::QK_K;

/// Bytes of one Q8_K block.
pub const BLOCK_BYTES: usize = 296;
/// Offset of `qs` in a block.
pub const QS: usize = 8;
/// Offset of `bsums` in a block.
pub const BSUMS: usize = 264;

/// Q8_K blocks with their quants permuted: quant `p` of each output block is quant `perm[p]` of
/// the input block; `d`, `sum` and the block sums are copied unchanged (they stay in Q8_K
/// order). See `Kernels::act_perm`.
pub fn permute_quants(y: &[u8], perm: &[u8; QK_K]) -> Vec<u8> {
    let mut out = y.to_vec();
    for (o, b) in out.chunks_exact_mut(BLOCK_BYTES).zip(y.chunks_exact(BLOCK_BYTES)) {
        for (op, &src) in o[QS..QS + QK_K].iter_mut().zip(perm) {
            *op = b[QS + src as usize];
        }
    }
    out
}

/// Quantizes one row (`x.len()` a multiple of 256) to Q8_K.
pub fn quantize_row(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(x.len() % QK_K, 0, "q8k::quantize_row: length not a multiple of 256");
    for (xb, ob) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut total = 0i32;
        for (k, x16) in xb.chunks_exact(16).enumerate() {
            let mut bsum = 0i32;
            for (j, &v) in x16.iter().enumerate() {
                let q = (v * id).round_ties_even().clamp(-128.0, 127.0) as i32;
                ob[QS + 16 * k + j] = q as i8 as u8;
                bsum += q;
            }
            ob[BSUMS + 2 * k..BSUMS + 2 * k + 2].copy_from_slice(&(bsum as i16).to_le_bytes());
            total += bsum;
        }
        ob[0..4].copy_from_slice(&d.to_le_bytes());
        ob[4..8].copy_from_slice(&(d * total as f32).to_le_bytes());
    }
}

/// Decodes a Q8_K row: `d·qs[n]`.
pub fn dequantize_row(src: &[u8], out: &mut [f32]) {
    for (b, ob) in src.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(QK_K)) {
        let d = read_f32(b, 0);
        for (o, &q) in ob.iter_mut().zip(&b[QS..QS + QK_K]) {
            *o = d * (q as i8) as f32;
        }
    }
}

/// Dot product of a Q8_K weight row with a Q8_K activation row: `Σ_b (d_w·d_y)·Σ qw·qy`.
pub fn vec_dot(src: &[u8], y: &[u8]) -> f32 {
    let mut acc = 0f32;
    for (b, yb) in src.chunks_exact(BLOCK_BYTES).zip(y.chunks_exact(BLOCK_BYTES)) {
        let mut s = 0i32;
        for (&w, &a) in b[QS..QS + QK_K].iter().zip(&yb[QS..QS + QK_K]) {
            s += (w as i8 as i32) * (a as i8 as i32);
        }
        acc += (read_f32(b, 0) * read_f32(yb, 0)) * s as f32;
    }
    acc
}

/// Integer form of block `block` of a Q8_K row: its quants with unit sub-block scales.
pub fn decode_int(src: &[u8], block: usize, out: &mut IntBlock) {
    let b = &src[block * BLOCK_BYTES..(block + 1) * BLOCK_BYTES];
    out.d = read_f32(b, 0);
    out.scales = [1; 16];
    for (v, &q) in out.values.iter_mut().zip(&b[QS..QS + QK_K]) {
        *v = q as i8;
    }
}
