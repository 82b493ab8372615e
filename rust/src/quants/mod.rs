//! Scalar reference implementations, one module per format family. These are the oracle: every
//! SIMD kernel under `arch/` must give the same bytes and floats, bit for bit.
//!
//! Each type is exposed through a [`Kernels`] table of plain function pointers working on one
//! *row group* (`rows_per_group` consecutive rows: 4 for `_R4` types, else 1), so the tensor
//! operations in `ops` never branch on the type.

pub mod common;
pub mod k;
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
}

/// Adapts single-row functions to the row-group signatures.
macro_rules! row_kernels {
    ($q:path, $dq:path, $dot:path, $int:path) => {
        Kernels {
            quantize: |x, _cols, im, out| $q(x, im, out),
            dequantize: |src, _cols, out| $dq(src, out),
            dot: |src, _cols, y, out| out[0] = $dot(src, y),
            decode_int: |src, _cols, _row, block, out| $int(src, block, out),
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
        QType::IQ2KR4 | QType::IQ3KR4 | QType::IQ4KR4 | QType::IQ5KR4 | QType::IQ4KSR4 => r4::kernels(t).expect("every _R4 type has an entry in r4_types!"),
    }
}

/// Q8_K as a weight type: the activation quantizer; it has no use for an importance matrix.
fn q8k_quantize_weights(x: &[f32], _imatrix: Option<&[f32]>, out: &mut [u8]) {
    q8k::quantize_row(x, out)
}
