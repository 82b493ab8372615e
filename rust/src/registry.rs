//! The type registry: the single source of truth for every format's name, GGML type id and
//! sizes (FORMATS.md §2). Everything else — the kernels, the bindings, the benchmarks — asks
//! the registry, never hard-codes a size.

use crate::error::{IqError, Result};

/// Weights per super-block for every IQK type.
pub const QK_K: usize = 256;

/// A quantization type known to iqrs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QType {
    /// Q8_K: the CPU activation format (8-bit quants, f32 scale, block sums); also usable as a weight type.
    Q8K,
    /// IQ4_KS: 4.25 bpw, non-linear 4-bit grid, f32 row scale, 7+1-bit scale/shift per 32 weights.
    IQ4KS,
    /// IQ4_KSS: exactly 4.0 bpw; IQ4_KS with even-parity index groups packed into 15 bits.
    IQ4KSS,
    /// IQ2_K: 2.375 bpw, 2-bit non-linear grid, f16 block scale, 4-bit scale + shift per 16 weights.
    IQ2K,
    /// IQ3_K: 3.4375 bpw, 3-bit grid, odd 5-bit signed scale + shift per 16 weights.
    IQ3K,
    /// IQ4_K: 4.5 bpw, 4-bit grid, 6-bit scale + shift per 16 weights.
    IQ4K,
    /// IQ5_K: 5.5 bpw, 5-bit grid, 6-bit scale + shift per 16 weights.
    IQ5K,
    /// IQ6_K: 6.625 bpw, 6-bit grid, 8-bit scale + shift per 16 weights.
    IQ6K,
    /// IQ2_K_R4: IQ2_K with 4 rows interleaved.
    IQ2KR4,
    /// IQ3_K_R4: IQ3_K with 4 rows interleaved.
    IQ3KR4,
    /// IQ4_K_R4: IQ4_K with 4 rows interleaved.
    IQ4KR4,
    /// IQ5_K_R4: IQ5_K with 4 rows interleaved.
    IQ5KR4,
    /// IQ4_KS_R4: IQ4_KS with 4 rows interleaved (the 4 row scales at the head of each group).
    IQ4KSR4,
    /// IQ5_KS_R4: IQ5_KS with 4 rows interleaved (the 4 row scales at the head of each group).
    IQ5KSR4,
    /// IQ5_KS: 5.25 bpw, non-linear 5-bit grid, f32 row scale, 7+1-bit scale/shift per 32 weights.
    IQ5KS,
    /// IQ3_KS: 3.1875 bpw, non-linear 3-bit grid, f16 row scale, 5-bit scale + shift per 32 weights.
    IQ3KS,
    /// IQ2_KS: 2.1875 bpw, non-linear 2-bit grid, f16 row scale, 5-bit scale + shift per 32 weights.
    IQ2KS,
    /// IQ2_KL: 2.6875 bpw, pairs of weights on a 32-point 2-D grid, f16 row scale, 6-bit scale per 32 weights.
    IQ2KL,
}

/// Static facts about a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    /// The type's name as ggml spells it in lower case (`"iq4_ks"`).
    pub name: &'static str,
    /// `enum ggml_type` value, as stored in GGUF files.
    pub ggml_id: u32,
    /// Weights per block.
    pub block_size: usize,
    /// Bytes per block of one row.
    pub block_bytes: usize,
    /// Bytes at the head of every row (a row scale), 0 if none.
    pub row_meta_bytes: usize,
    /// Rows interleaved together (4 for the `_R4` types, else 1).
    pub rows_per_group: usize,
}

impl QType {
    /// Every registered type, in the order `iqrs.types()` lists them.
    pub const ALL: &'static [QType] = &[
        QType::Q8K,
        QType::IQ2K,
        QType::IQ3K,
        QType::IQ4K,
        QType::IQ5K,
        QType::IQ6K,
        QType::IQ4KS,
        QType::IQ4KSS,
        QType::IQ2KS,
        QType::IQ3KS,
        QType::IQ5KS,
        QType::IQ2KL,
        QType::IQ2KR4,
        QType::IQ3KR4,
        QType::IQ4KR4,
        QType::IQ5KR4,
        QType::IQ4KSR4,
        QType::IQ5KSR4,
    ];

    /// The static facts of this type.
    pub const fn info(self) -> &'static TypeInfo {
        match self {
            QType::Q8K => &TypeInfo { name: "q8_k", ggml_id: 15, block_size: QK_K, block_bytes: 296, row_meta_bytes: 0, rows_per_group: 1 },
            QType::IQ4KS => &TypeInfo { name: "iq4_ks", ggml_id: 144, block_size: QK_K, block_bytes: 136, row_meta_bytes: 4, rows_per_group: 1 },
            QType::IQ4KSS => &TypeInfo { name: "iq4_kss", ggml_id: 146, block_size: QK_K, block_bytes: 128, row_meta_bytes: 4, rows_per_group: 1 },
            QType::IQ2K => &TypeInfo { name: "iq2_k", ggml_id: 137, block_size: QK_K, block_bytes: 76, row_meta_bytes: 0, rows_per_group: 1 },
            QType::IQ3K => &TypeInfo { name: "iq3_k", ggml_id: 138, block_size: QK_K, block_bytes: 110, row_meta_bytes: 0, rows_per_group: 1 },
            QType::IQ4K => &TypeInfo { name: "iq4_k", ggml_id: 139, block_size: QK_K, block_bytes: 144, row_meta_bytes: 0, rows_per_group: 1 },
            QType::IQ5K => &TypeInfo { name: "iq5_k", ggml_id: 140, block_size: QK_K, block_bytes: 176, row_meta_bytes: 0, rows_per_group: 1 },
            QType::IQ6K => &TypeInfo { name: "iq6_k", ggml_id: 141, block_size: QK_K, block_bytes: 212, row_meta_bytes: 0, rows_per_group: 1 },
            QType::IQ2KR4 => &TypeInfo { name: "iq2_k_r4", ggml_id: 337, block_size: QK_K, block_bytes: 76, row_meta_bytes: 0, rows_per_group: 4 },
            QType::IQ3KR4 => &TypeInfo { name: "iq3_k_r4", ggml_id: 338, block_size: QK_K, block_bytes: 110, row_meta_bytes: 0, rows_per_group: 4 },
            QType::IQ4KR4 => &TypeInfo { name: "iq4_k_r4", ggml_id: 339, block_size: QK_K, block_bytes: 144, row_meta_bytes: 0, rows_per_group: 4 },
            QType::IQ5KR4 => &TypeInfo { name: "iq5_k_r4", ggml_id: 340, block_size: QK_K, block_bytes: 176, row_meta_bytes: 0, rows_per_group: 4 },
            QType::IQ4KSR4 => &TypeInfo { name: "iq4_ks_r4", ggml_id: 344, block_size: QK_K, block_bytes: 136, row_meta_bytes: 4, rows_per_group: 4 },
            QType::IQ5KSR4 => &TypeInfo { name: "iq5_ks_r4", ggml_id: 352, block_size: QK_K, block_bytes: 168, row_meta_bytes: 4, rows_per_group: 4 },
            QType::IQ5KS => &TypeInfo { name: "iq5_ks", ggml_id: 152, block_size: QK_K, block_bytes: 168, row_meta_bytes: 4, rows_per_group: 1 },
            QType::IQ3KS => &TypeInfo { name: "iq3_ks", ggml_id: 156, block_size: QK_K, block_bytes: 102, row_meta_bytes: 2, rows_per_group: 1 },
            QType::IQ2KS => &TypeInfo { name: "iq2_ks", ggml_id: 145, block_size: QK_K, block_bytes: 70, row_meta_bytes: 2, rows_per_group: 1 },
            QType::IQ2KL => &TypeInfo { name: "iq2_kl", ggml_id: 157, block_size: QK_K, block_bytes: 86, row_meta_bytes: 2, rows_per_group: 1 },
        }
    }

    /// The lower-case ggml name.
    pub const fn name(self) -> &'static str {
        self.info().name
    }

    /// Nominal bits per weight of the blocks (row metadata excluded).
    pub fn bpw(self) -> f64 {
        let i = self.info();
        8.0 * i.block_bytes as f64 / i.block_size as f64
    }

    /// Bytes of one row of `cols` weights: row metadata plus whole blocks (ggml_row_size).
    pub const fn row_size(self, cols: usize) -> usize {
        let i = self.info();
        i.row_meta_bytes + cols / i.block_size * i.block_bytes
    }

    /// Looks a type up by name (case-insensitive, as ggml and GGUF tooling spell them).
    pub fn from_name(name: &str) -> Result<QType> {
        let lower = name.trim().to_ascii_lowercase();
        QType::ALL.iter().copied().find(|t| t.name() == lower).ok_or_else(|| IqError::UnknownType {
            name: name.to_string(),
            known: QType::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
        })
    }

    /// Looks a type up by its GGML type id.
    pub fn from_ggml_id(id: u32) -> Option<QType> {
        QType::ALL.iter().copied().find(|t| t.info().ggml_id == id)
    }

    /// Checks that a `rows x cols` matrix can be stored in this type.
    pub fn check_shape(self, what: &'static str, rows: usize, cols: usize) -> Result<()> {
        let i = self.info();
        if cols == 0 || cols % i.block_size != 0 {
            return Err(IqError::NotBlockAligned { what, cols, block: i.block_size });
        }
        if rows == 0 || rows % i.rows_per_group != 0 {
            if i.rows_per_group > 1 || rows == 0 {
                return Err(IqError::RowsNotGrouped { what, qtype: i.name, rows, group: i.rows_per_group });
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for QType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_reference() {
        assert_eq!(QType::IQ4KS.row_size(512), 4 + 2 * 136);
        assert_eq!(QType::IQ4KSS.row_size(4096), 4 + 16 * 128);
        assert_eq!(QType::Q8K.row_size(256), 296);
        assert_eq!(QType::IQ4KSS.bpw(), 4.0);
        assert_eq!(QType::IQ4KS.bpw(), 4.25);
    }

    #[test]
    fn names_and_ids_round_trip() {
        for &t in QType::ALL {
            assert_eq!(QType::from_name(t.name()).unwrap(), t);
            assert_eq!(QType::from_name(&t.name().to_uppercase()).unwrap(), t);
            assert_eq!(QType::from_ggml_id(t.info().ggml_id), Some(t));
        }
        let err = QType::from_name("iq9_zz").unwrap_err().to_string();
        assert!(err.contains("iq4_kss"), "{err}");
    }

    #[test]
    fn shape_checks() {
        assert!(QType::IQ4KS.check_shape("x", 3, 512).is_ok());
        assert!(matches!(QType::IQ4KS.check_shape("x", 3, 500), Err(IqError::NotBlockAligned { .. })));
        assert!(matches!(QType::IQ4KS.check_shape("x", 0, 512), Err(IqError::RowsNotGrouped { .. })));
    }
}
