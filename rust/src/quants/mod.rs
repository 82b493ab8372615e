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

/// The operations of one type on one instruction set.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub quantize: QuantizeFn,
    pub dequantize: DequantizeFn,
    pub dot: DotFn,
}

/// Adapts single-row functions to the row-group signatures.
macro_rules! row_kernels {
    ($q:path, $dq:path, $dot:path) => {
        Kernels {
            quantize: |x, _cols, im, out| $q(x, im, out),
            dequantize: |src, _cols, out| $dq(src, out),
            dot: |src, _cols, y, out| out[0] = $dot(src, y),
        }
    };
}
#[allow(unused_imports)]
pub(crate) use row_kernels;

/// The scalar kernels of a type.
pub fn scalar_kernels(t: QType) -> Kernels {
    match t {
        QType::Q8K => row_kernels!(q8k_quantize_weights, q8k::dequantize_row, q8k::vec_dot),
        QType::IQ4KS => row_kernels!(ks::quantize_row_iq4_ks, ks::dequantize_row_iq4_ks, ks::vec_dot_iq4_ks_q8_k),
        QType::IQ4KSS => row_kernels!(ks::quantize_row_iq4_kss, ks::dequantize_row_iq4_kss, ks::vec_dot_iq4_kss_q8_k),
        QType::IQ2K => row_kernels!(k::quantize_row_iq2_k, k::dequantize_row_iq2_k, k::vec_dot_iq2_k_q8_k),
        QType::IQ3K => row_kernels!(k::quantize_row_iq3_k, k::dequantize_row_iq3_k, k::vec_dot_iq3_k_q8_k),
        QType::IQ4K => row_kernels!(k::quantize_row_iq4_k, k::dequantize_row_iq4_k, k::vec_dot_iq4_k_q8_k),
        QType::IQ5K => row_kernels!(k::quantize_row_iq5_k, k::dequantize_row_iq5_k, k::vec_dot_iq5_k_q8_k),
        QType::IQ6K => row_kernels!(k::quantize_row_iq6_k, k::dequantize_row_iq6_k, k::vec_dot_iq6_k_q8_k),
        QType::IQ2KR4 | QType::IQ3KR4 | QType::IQ4KR4 | QType::IQ5KR4 | QType::IQ4KSR4 => r4::kernels(t).expect("every _R4 type has an entry in r4_types!"),
    }
}

/// Q8_K as a weight type: the activation quantizer; it has no use for an importance matrix.
fn q8k_quantize_weights(x: &[f32], _imatrix: Option<&[f32]>, out: &mut [u8]) {
    q8k::quantize_row(x, out)
}
