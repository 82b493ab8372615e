//! The kernels embedded in the library (one fatbin per `cuda/*.cu` file, compiled by build.rs)
//! and the name of every entry point. A type's kernels live in its family's file; adding a type
//! is one `IQRS_TYPE_KERNELS(name, Traits, LDG)` line there and one arm in [`module_of`] (an
//! exhaustive match: a registered type without GPU kernels does not compile).

use crate::registry::QType;

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The module (kernel file) holding a type's dequantize and mat-vec kernels (a `Result` so that a
/// type added without GPU kernels can answer a clear error; every registered type has them now).
pub fn module_of(t: QType) -> crate::Result<&'static str> {
    match t {
        QType::Q8K => Ok("q8k"),
        QType::IQ2K | QType::IQ3K | QType::IQ4K | QType::IQ5K | QType::IQ6K => Ok("k"),
        QType::IQ4KS | QType::IQ4KSS | QType::IQ5KS | QType::IQ2KS | QType::IQ3KS | QType::IQ2KL => Ok("ks"),
        QType::IQ2KR4 | QType::IQ3KR4 | QType::IQ4KR4 | QType::IQ5KR4 | QType::IQ4KSR4 | QType::IQ5KSR4 => Ok("r4"),
    }
}

/// The module of the activation kernels (Q8_1 quantization, element-type conversion).
pub const ACTIVATIONS: &str = "activations";

/// Most activation vectors one mat-vec launch takes (`iqrs_mmv_<type>_{1..MMV_MAX_COLS}`).
pub const MMV_MAX_COLS: usize = 8;
/// Warps per block of the mat-vec kernels (`MMV_WARPS` in kernels.cuh).
pub const MMV_WARPS: u32 = 4;

/// Rows each mat-vec warp of type `t` handles for `ncols` vectors (`mmv_rows<T>` in
/// kernels.cuh): a whole row group for the interleaved types; for 4 to 8 vectors 2 for the types
/// whose traits set `MMV_ROWS_MANY = 2` (the 4-bit ones), else 4.
pub fn mmv_rows_per_warp(t: QType, ncols: usize) -> usize {
    match (t.info().rows_per_group, ncols) {
        (g, _) if g > 1 => g,
        (_, 1) => 1,
        (_, 2 | 3) => 2,
        _ if matches!(t, QType::IQ4K | QType::IQ4KS | QType::IQ4KSS) => 2,
        _ => 4,
    }
}

/// The order of each 32-value unit of the Q8_1 activations the mat-vec of type `t` takes
/// (`ActOrder` in cuda/common.cuh, the types' `MMV_ORDER`), the order its look-ups give its
/// values in: 1 (values j and j + 16 side by side) for IQ4_KS and IQ4_KSS, 2 (j and j + 8 of
/// each half) for IQ4_K_R4, 3 (j and j + 4 of each eight) for the 2- and 3-bit grids but IQ2_KL;
/// else 0, the values' own order.
pub fn mmv_activation_order(t: QType) -> i32 {
    match t {
        QType::IQ4KS | QType::IQ4KSS => 1,
        QType::IQ4KR4 => 2,
        QType::IQ2K | QType::IQ3K | QType::IQ2KS | QType::IQ3KS | QType::IQ2KR4 | QType::IQ3KR4 => 3,
        _ => 0,
    }
}

/// The alignment every kernel of type `t` needs of the weights' address: 16 bytes for the
/// interleaved types (a row group's words are read in 16 bytes) and for IQ4_K and IQ5_K (whose
/// 144- and 176-byte blocks are read with 16-byte loads, cuda/k.cuh), else 4 (word loads).
pub fn weight_align(t: QType) -> u64 {
    if t.info().rows_per_group > 1 || matches!(t, QType::IQ4K | QType::IQ5K) {
        16
    } else {
        4
    }
}

/// Threads per block of the dequantize kernels (`DEQUANT_THREADS` in kernels.cuh).
pub const DEQUANT_THREADS: u32 = 256;

/// `iqrs_dequant_<type>_<f32|f16|bf16>`.
pub fn dequant_name(t: QType, dtype_suffix: &str) -> String {
    format!("iqrs_dequant_{}_{dtype_suffix}", t.name())
}

/// `iqrs_mmv_<type>_<ncols>`.
pub fn mmv_name(t: QType, ncols: usize) -> String {
    format!("iqrs_mmv_{}_{ncols}", t.name())
}

/// Weight rows per block of the fused matrix multiply (`MM_BM` in mm.cuh).
pub const MM_ROWS: usize = 128;
/// Threads per block of the fused matrix multiply (`MM_THREADS` in mm.cuh).
pub const MM_THREADS: u32 = 256;
/// The fused kernels' widths (activation vectors per block): `iqrs_mm_<type>_<width>`.
pub const MM_WIDTHS: [usize; 2] = [64, 128];

/// The fused kernel width for `n` vectors: the narrow one while it covers them in one block.
pub fn mm_vectors_per_block(n: usize) -> usize {
    narrow_or_wide(MM_WIDTHS, n)
}

/// Of a kernel's two widths, the narrow one while it covers `n` vectors in one block.
fn narrow_or_wide(widths: [usize; 2], n: usize) -> usize {
    if n <= widths[0] {
        widths[0]
    } else {
        widths[1]
    }
}

/// Blocks of the fused kernel one SM holds (`__launch_bounds__` in mm.cuh).
pub const MM_BLOCKS_PER_SM: usize = 2;

/// Most column splits of the fused matrix multiply (each adds a pass over f32 partial sums).
pub const MM_MAX_SPLITS: usize = 8;

/// `iqrs_mm_<type>_<width>`.
pub fn mm_name(t: QType, width: usize) -> String {
    format!("iqrs_mm_{}_{width}", t.name())
}

/// The module of the warpgroup matrix multiply (mmw.cuh, cuda/mmw_sm90a.cu): an sm_90a cubin
/// alone, absent from builds without sm_90, usable on compute capability 9.0 only.
pub const MMW: &str = "mmw_sm90a";
/// Weight rows per block of the warpgroup matrix multiply (`MMW_BM` in mmw.cuh).
pub const MMW_ROWS: usize = 128;
/// Threads per block of the warpgroup matrix multiply (`MMW_THREADS` in mmw.cuh: two producer
/// and two consumer warpgroups).
pub const MMW_THREADS: u32 = 512;
/// Its widths (activation vectors per block): `iqrs_mmw_<type>_<width>`.
pub const MMW_WIDTHS: [usize; 2] = [128, 256];
/// Weights per stage of the warpgroup kernel: the k extent of its x tile.
pub const MMW_STAGE_K: usize = 64;

/// The warpgroup kernel width for `n` vectors: the narrow one while it covers them in one block.
pub fn mmw_vectors_per_block(n: usize) -> usize {
    narrow_or_wide(MMW_WIDTHS, n)
}

/// Dynamic shared memory of the warpgroup kernel (`MMW_SMEM` in mmw.cuh: all an sm_90 block may
/// have; the kernel fits as many stages as its type's raw blocks leave room for).
pub const MMW_SHARED_BYTES: u32 = 227 * 1024;

/// `iqrs_mmw_<type>_<width>`.
pub fn mmw_name(t: QType, width: usize) -> String {
    format!("iqrs_mmw_{}_{width}", t.name())
}

/// Weight rows per block of the quantized matrix multiply (`MMQ_ROWS` in mmq.cuh).
pub const MMQ_ROWS: usize = 32;
/// Warps per block of the quantized matrix multiply (`MMQ_WARPS` in mmq.cuh).
pub const MMQ_WARPS: u32 = 4;
/// The quantized matrix multiply's widths, in 8-vector tiles per block: `iqrs_mmq_<type>_<tiles>`.
pub const MMQ_TILES: [usize; 3] = [1, 2, 4];

/// The narrowest quantized matrix multiply that covers `n` vectors in one block (the widest
/// where none does: the grid then has several blocks along the vectors).
pub fn mmq_tiles(n: usize) -> usize {
    MMQ_TILES.into_iter().find(|&t| 8 * t >= n).unwrap_or(MMQ_TILES[MMQ_TILES.len() - 1])
}

/// The module holding `iqrs_mmq_<type>_<tiles>`: the type's family's, except the 4-tile kernels
/// of the types whose `IQRS_TYPE_KERNELS` line says `PLAIN`, which mmq_wide.cu compiles with
/// plain loads instead of `__ldg` (measured faster for them on an H100, cuda/NOTES.md).
pub fn mmq_module(t: QType, tiles: usize) -> crate::Result<&'static str> {
    use QType::*;
    match (t, tiles) {
        (IQ2K | IQ4K | IQ5K | IQ4KS | IQ4KSS | IQ5KS | IQ3KS | IQ2KR4 | IQ3KR4 | IQ4KR4 | IQ4KSR4 | IQ5KSR4, 4) => Ok(MMQ_WIDE),
        _ => module_of(t),
    }
}

/// The module of the 4-tile quantized matrix multiply kernels (cuda/mmq_wide.cu).
pub const MMQ_WIDE: &str = "mmq_wide";

/// `iqrs_mmq_<type>_<tiles>`.
pub fn mmq_name(t: QType, tiles: usize) -> String {
    format!("iqrs_mmq_{}_{tiles}", t.name())
}

/// The embedded fatbin of a module.
pub fn fatbin(module: &str) -> Option<&'static [u8]> {
    FATBINS.iter().find(|(m, _)| *m == module).map(|(_, b)| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// Every registered type has all its entry points compiled (the names are in the cubins'
    /// symbol tables) in the module `module_of` (or, for mmq, `mmq_module`) names.
    #[test]
    fn every_type_has_its_kernels() {
        for &t in QType::ALL {
            let module = module_of(t).unwrap_or_else(|e| panic!("{t}: {e}"));
            let bin = fatbin(module).unwrap_or_else(|| panic!("no fatbin for {t}"));
            let mut names: Vec<String> = ["f32", "f16", "bf16"].iter().map(|s| dequant_name(t, s)).collect();
            names.extend((1..=MMV_MAX_COLS).map(|n| mmv_name(t, n)));
            names.extend(MM_WIDTHS.iter().map(|&w| mm_name(t, w)));
            for name in names {
                assert!(contains(bin, &name), "{name} is missing from module {module}");
            }
            for tiles in MMQ_TILES {
                let (module, name) = (mmq_module(t, tiles).unwrap(), mmq_name(t, tiles));
                assert!(contains(fatbin(module).expect("mmq module"), &name), "{name} is missing from module {module}");
            }
        }
        // The warpgroup kernels, in builds with sm_90 (the default).
        if ARCHS.contains(&90) {
            let bin = fatbin(MMW).expect("mmw module");
            for &t in QType::ALL {
                for w in MMW_WIDTHS {
                    assert!(contains(bin, &mmw_name(t, w)), "{} is missing from module {MMW}", mmw_name(t, w));
                }
            }
        }
        let act = fatbin(ACTIVATIONS).expect("activations module");
        for name in ["iqrs_quantize_q8_1", "iqrs_quantize_q8_mmq128", "iqrs_convert", "iqrs_sum_partials"] {
            assert!(contains(act, name), "{name} is missing from the activations module");
        }
    }

    /// IQ4_K and IQ5_K read their blocks with 16-byte loads: asking W to be 16-byte aligned
    /// makes every block so (whole 16-byte multiples, no row header). (The interleaved types'
    /// decoders pick 16- or 8-byte loads by their group sizes themselves, cuda/r4.cuh.)
    #[test]
    fn sixteen_byte_loads_meet_aligned_blocks() {
        for t in [QType::IQ4K, QType::IQ5K] {
            let info = t.info();
            assert_eq!(weight_align(t), 16, "{t}");
            assert_eq!((info.block_bytes % 16, info.row_meta_bytes), (0, 0), "{t}");
        }
        assert_eq!(weight_align(QType::IQ4KS), 4);
        assert_eq!(weight_align(QType::IQ3KR4), 16);
    }

    #[test]
    fn mmq_tiles_cover_the_vectors() {
        assert_eq!([1, 8, 9, 16, 17, 32, 33, 100].map(mmq_tiles), [1, 1, 2, 2, 4, 4, 4, 4]);
    }
}
