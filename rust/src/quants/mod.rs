//! Scalar reference implementations, one module per format family. These are the oracle: every
//! SIMD kernel under `arch/` must give the same bytes and floats, bit for bit.
//!
//! Each type is exposed through a [`Kernels`] table of plain function pointers working on one
//! *row group* (`rows_per_group` consecutive rows: 4 for `_R4` types, else 1), so the tensor
//! operations in `ops` never branch on the type.

pub mod common;
pub mod k;
pub mod iq2_kl;
pub mod iq2_ks;
pub mod iq3_ks;
pub mod iq5_ks;
pub mod ks;
pub mod q8k;
pub mod r4;

use crate::registry::QType;

/// Quantizes one row group: `x` holds `rows_per_group` rows of `cols` weights, `imatrix` one
/// weight per column, `out` the group's bytes.
pub type QuantizeFn = fn(x: &[f32], cols: usize, imatrix: Option<&[f32]>, out: &mut [u8]);
/// Decodes one row group to `rows_per_group * cols` floats.
pub type DequantizeFn = fn(src: &[u8], cols: usize, out: &mut [f32]);
/// Dots every row of one row group with one Q8_K activation row; `out` has `rows_per_group` slots.
pub type DotFn = fn(src: &[u8], cols: usize, y: &[u8], out: &mut [f32]);

/// Decodes super-block `block` of row `row` (within one row group) to its integer form.
pub type DecodeIntFn = fn(group: &[u8], cols: usize, row: usize, block: usize, out: &mut IntBlock);

/// One super-block of one row in integer form, the shape every type's dot product has:
/// weight `k` is `d · scales[k / 16] · values[k]`, and the exact dot with a Q8_K block
/// (`d8`, `q8`) is `(d · d8) · S` with the integer block sum
/// `S = Σ_s scales[s] · Σ_{k in sub-block s} values[k] · q8[k]` (FORMATS.md §5).
/// The matrix-multiply kernels consume this form, so one decoder per type serves them all.
#[derive(Clone, Debug)]
pub struct IntBlock {
    /// The float factor of the block (the row scale, or the block's own scale).
    pub d: f32,
    /// Integer scale of each 16-weight sub-block (|s| < 2^10).
    pub scales: [i16; 16],
    /// The 256 grid values (table entries, not indices).
    pub values: [i8; 256],
}

impl Default for IntBlock {
    fn default() -> Self {
        IntBlock { d: 0.0, scales: [0; 16], values: [0; 256] }
    }
}

impl IntBlock {
    /// The exact integer block sum `S` against the quants of a Q8_K block.
    #[inline]
    pub fn sum(&self, q8: &[u8]) -> i32 {
        let mut s = 0i32;
        for (sb, (v, y)) in self.values.chunks_exact(16).zip(q8[..256].chunks_exact(16)).enumerate() {
            let p: i32 = v.iter().zip(y).map(|(&a, &b)| a as i32 * b as i8 as i32).sum();
            s += self.scales[sb] as i32 * p;
        }
        s
    }
}

/// The operations of one type on one instruction set.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub quantize: QuantizeFn,
    pub dequantize: DequantizeFn,
    pub dot: DotFn,
    /// Integer form of one super-block (scalar on every ISA: the matrix multiply amortizes it).
    pub decode_int: DecodeIntFn,
    /// Decoder of a whole matrix-multiply tile, where the ISA has one for the type (AVX-512: every
    /// type but Q8_K); otherwise the tile is filled block by block through `decode_int`. Both
    /// give the same tile.
    pub fill_tile: Option<crate::gemm::FillTileFn>,
    /// The activation order `dot` expects, where it is not Q8_K's own: every block's 256 quants
    /// permuted so that a SIMD kernel meets them in the order its weight lanes come out of the
    /// block (`d` and the block sums stay as they are). Byte `p` holds Q8_K quant `act_perm[p]`.
    /// Callers pass activations through [`Kernels::activations`] once per vector; `None` (every
    /// scalar kernel) takes Q8_K as it is.
    pub act_perm: Option<&'static [u8; 256]>,
}

impl Kernels {
    /// Q8_K activation rows (any number of whole blocks) in the order `dot` takes them.
    pub fn activations<'a>(&self, y: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        match self.act_perm {
            None => std::borrow::Cow::Borrowed(y),
            Some(perm) => std::borrow::Cow::Owned(q8k::permute_quants(y, perm)),
        }
    }
}

/// Adapts single-row functions to the row-group signatures.
macro_rules! row_kernels {
    ($q:path, $dq:path, $dot:path, $int:path) => {
        Kernels {
            quantize: |x, _cols, im, out| $q(x, im, out),
            dequantize: |src, _cols, out| $dq(src, out),
            dot: |src, _cols, y, out| out[0] = $dot(src, y),
            decode_int: |src, _cols, _row, block, out| $int(src, block, out),
            fill_tile: None,
            act_perm: None,
        }
    };
}
#[allow(unused_imports)]
pub(crate) use row_kernels;

/// The scalar kernels of a type.
pub fn scalar_kernels(t: QType) -> Kernels {
    match t {
        QType::Q8K => row_kernels!(q8k_quantize_weights, q8k::dequantize_row, q8k::vec_dot, q8k::decode_int),
        QType::IQ4KS => row_kernels!(ks::quantize_row_iq4_ks, ks::dequantize_row_iq4_ks, ks::vec_dot_iq4_ks_q8_k, ks::decode_int_iq4_ks),
        QType::IQ4KSS => row_kernels!(ks::quantize_row_iq4_kss, ks::dequantize_row_iq4_kss, ks::vec_dot_iq4_kss_q8_k, ks::decode_int_iq4_kss),
        QType::IQ2K => row_kernels!(k::quantize_row_iq2_k, k::dequantize_row_iq2_k, k::vec_dot_iq2_k_q8_k, k::decode_int_iq2_k),
        QType::IQ3K => row_kernels!(k::quantize_row_iq3_k, k::dequantize_row_iq3_k, k::vec_dot_iq3_k_q8_k, k::decode_int_iq3_k),
        QType::IQ4K => row_kernels!(k::quantize_row_iq4_k, k::dequantize_row_iq4_k, k::vec_dot_iq4_k_q8_k, k::decode_int_iq4_k),
        QType::IQ5K => row_kernels!(k::quantize_row_iq5_k, k::dequantize_row_iq5_k, k::vec_dot_iq5_k_q8_k, k::decode_int_iq5_k),
        QType::IQ6K => row_kernels!(k::quantize_row_iq6_k, k::dequantize_row_iq6_k, k::vec_dot_iq6_k_q8_k, k::decode_int_iq6_k),
        QType::IQ2KR4 | QType::IQ3KR4 | QType::IQ4KR4 | QType::IQ5KR4 | QType::IQ4KSR4 | QType::IQ5KSR4 => r4::kernels(t).expect("every _R4 type has an entry in r4_types!"),
        QType::IQ5KS => row_kernels!(iq5_ks::quantize_row, iq5_ks::dequantize_row, iq5_ks::vec_dot_q8_k, iq5_ks::decode_int),
        QType::IQ3KS => row_kernels!(iq3_ks::quantize_row, iq3_ks::dequantize_row, iq3_ks::vec_dot_q8_k, iq3_ks::decode_int),
        QType::IQ2KS => row_kernels!(iq2_ks::quantize_row, iq2_ks::dequantize_row, iq2_ks::vec_dot_q8_k, iq2_ks::decode_int),
        QType::IQ2KL => row_kernels!(iq2_kl::quantize_row, iq2_kl::dequantize_row, iq2_kl::vec_dot_q8_k, iq2_kl::decode_int),
    }
}

/// Q8_K as a weight type: the activation quantizer; it has no use for an importance matrix.
fn q8k_quantize_weights(x: &[f32], _imatrix: Option<&[f32]>, out: &mut [u8]) {
    q8k::quantize_row(x, out)
}

/// Checks shared by the unit tests of the format modules.
#[cfg(test)]
pub(crate) mod test_util {
    use super::{q8k, scalar_kernels};
    use crate::registry::QType;

    /// Deterministic test rows: gaussian-like values with a few ×8 outliers, one all-zero
    /// 32-block, and an imatrix in (0.25, 4).
    pub fn rows(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let mut u = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32
        };
        let mut x: Vec<f32> = (0..rows * cols).map(|_| (u() + u() + u() - 1.5) * if u() < 0.01 { 8.0 } else { 1.0 } * 0.05).collect();
        x[32..64].fill(0.0);
        let im = (0..cols).map(|_| 0.25 + 3.75 * u()).collect();
        (x, im)
    }

    /// Quantizes test rows (with and without imatrix), then checks that the scalar dot product
    /// equals `Σ dequant(w)·Q8_K(y)` in f64 within 1e-5 of `Σ|w·y|`, that an all-zero row
    /// decodes to zeros, and returns the row bytes for further checks.
    pub fn check_dot_and_zero_row(t: QType) {
        let cols = 1024;
        let k = scalar_kernels(t);
        let (x, im) = rows(4, cols, 7);
        let (y, _) = rows(1, cols, 8);
        let mut yq = vec![0u8; QType::Q8K.row_size(cols)];
        q8k::quantize_row(&y, &mut yq);
        let mut yd = vec![0f32; cols];
        q8k::dequantize_row(&yq, &mut yd);
        let rs = t.row_size(cols);
        for imatrix in [None, Some(&im[..])] {
            for xr in x.chunks(cols) {
                let mut q = vec![0u8; rs];
                (k.quantize)(xr, cols, imatrix, &mut q);
                let mut w = vec![0f32; cols];
                (k.dequantize)(&q, cols, &mut w);
                let exact: f64 = w.iter().zip(&yd).map(|(&a, &b)| a as f64 * b as f64).sum();
                let scale: f64 = w.iter().zip(&yd).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
                let mut dot = [0f32];
                (k.dot)(&q, cols, &yq, &mut dot);
                assert!((dot[0] as f64 - exact).abs() <= 1e-5 * scale, "{t}: {} vs {exact}", dot[0]);
                assert!(scale > 0.0);
            }
        }
        let zero = vec![0f32; cols];
        let mut q = vec![0xAAu8; rs];
        (k.quantize)(&zero, cols, Some(&im), &mut q);
        let mut w = vec![1f32; cols];
        (k.dequantize)(&q, cols, &mut w);
        assert!(w.iter().all(|&v| v == 0.0), "{t}: an all-zero row must decode to zeros");
    }
}

