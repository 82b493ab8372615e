//! Every SIMD kernel against the scalar oracle, bit for bit, on arbitrary encodings: random
//! bytes (row scales taken from a real quantization so they are finite) dotted with random
//! Q8_K rows whose quants span all of i8, -128 included.

use iqrs::arch::{self, Isa};
use iqrs::quants::q8k;
use iqrs::{ops, QType, QK_K};
use proptest::prelude::*;

/// Equal bits, or both NaN (NaN payloads may legitimately differ between instruction forms).
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// A Q8_K row with arbitrary quants, a finite scale and consistent block sums.
fn q8k_row(cols: usize, bytes: &[u8], d: f32) -> Vec<u8> {
    let mut y = vec![0u8; QType::Q8K.row_size(cols)];
    for (b, blk) in y.chunks_exact_mut(q8k::BLOCK_BYTES).enumerate() {
        blk[..4].copy_from_slice(&d.to_le_bytes());
        let qs = &bytes[b * QK_K..(b + 1) * QK_K];
        blk[q8k::QS..q8k::QS + QK_K].copy_from_slice(qs);
        let mut total = 0i32;
        for k in 0..16 {
            let s: i32 = qs[16 * k..16 * k + 16].iter().map(|&v| v as i8 as i32).sum();
            blk[q8k::BSUMS + 2 * k..q8k::BSUMS + 2 * k + 2].copy_from_slice(&(s as i16).to_le_bytes());
            total += s;
        }
        blk[4..8].copy_from_slice(&(d * total as f32).to_le_bytes());
    }
    y
}

fn check(t: QType, blocks: usize, seed: Vec<u8>, d: f32, garbage: bool) {
    let g = t.info().rows_per_group;
    let cols = blocks * QK_K;
    let rows = g;
    let x: Vec<f32> = (0..rows * cols).map(|i| ((seed[i % seed.len()] as f32) - 127.5) * (1.0 + (i % 7) as f32)).collect();
    let mut q = ops::quantize(t, &x, rows, cols, None).unwrap();
    let rs = t.row_size(cols);
    let meta = t.info().row_meta_bytes;
    if garbage {
        for (i, v) in q.iter_mut().enumerate() {
            let in_row = i % rs;
            if in_row >= g * meta || (g == 1 && in_row >= meta) {
                *v = seed[(i * 31 + 7) % seed.len()].wrapping_mul(i as u8 | 1);
            }
        }
    }
    let ybytes: Vec<u8> = (0..cols).map(|i| seed[(i * 13 + 5) % seed.len()] ^ (i as u8)).collect();
    let y = q8k_row(cols, &ybytes, d);
    let scalar = arch::kernels_for(t, Isa::Scalar);
    let mut want_dq = vec![0f32; rows * cols];
    (scalar.dequantize)(&q, cols, &mut want_dq);
    let mut want_dot = vec![0f32; g];
    (scalar.dot)(&q, cols, &y, &mut want_dot);
    let mut want_q = vec![0u8; q.len()];
    (scalar.quantize)(&x, cols, None, &mut want_q);
    for isa in arch::available_isas() {
        let k = arch::kernels_for(t, isa);
        let mut got_q = vec![0u8; q.len()];
        (k.quantize)(&x, cols, None, &mut got_q);
        assert_eq!(got_q, want_q, "{t} {isa:?} quantize");
        let mut dq = vec![0f32; rows * cols];
        (k.dequantize)(&q, cols, &mut dq);
        if let Some(perm) = k.act_perm {
            let mut sorted = *perm;
            sorted.sort_unstable();
            assert_eq!(sorted, std::array::from_fn::<u8, 256, _>(|i| i as u8), "{t} {isa:?} act_perm is a permutation");
        }
        let mut dot = vec![0f32; g];
        (k.dot)(&q, cols, &k.activations(&y), &mut dot);
        for (i, (a, b)) in dq.iter().zip(&want_dq).enumerate() {
            assert!(same(*a, *b), "{t} {isa:?} dequantize value {i}: {a} vs scalar {b}");
        }
        for (r, (a, b)) in dot.iter().zip(&want_dot).enumerate() {
            assert!(same(*a, *b), "{t} {isa:?} dot row {r}: {a} vs scalar {b}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn simd_equals_scalar(ti in 0..QType::ALL.len(), blocks in 1usize..5, seed in prop::collection::vec(any::<u8>(), 1..512),
                          d in 1e-6f32..10.0, garbage in any::<bool>()) {
        check(QType::ALL[ti], blocks, seed, d, garbage);
    }
}

#[test]
fn dots_of_every_block_count_equal_scalar() {
    // The dot kernels reduce four blocks' integer sums at once and the rest one by one: rows of
    // 1..=9 blocks cover no quad, one quad, a quad plus each remainder, and two quads plus one.
    for &t in QType::ALL {
        for blocks in 1..=9 {
            let seed: Vec<u8> = (0..97).map(|i| (i * 37 + blocks * 11) as u8).collect();
            check(t, blocks, seed, 0.37, false);
        }
    }
}

#[test]
fn extreme_activations_are_exact() {
    // all -128 activations against every quant value: the case 16-bit kernels saturate on
    for &t in QType::ALL {
        let seed: Vec<u8> = (0..=255).collect();
        check(t, 2, seed, 1.0, true);
        let cols = 2 * QK_K;
        let y = q8k_row(cols, &vec![0x80u8; cols], 1.0);
        let x: Vec<f32> = (0..t.info().rows_per_group * cols).map(|i| if i % 3 == 0 { -1.0 } else { 0.3 }).collect();
        let q = ops::quantize(t, &x, t.info().rows_per_group, cols, None).unwrap();
        let mut want = vec![0f32; t.info().rows_per_group];
        (arch::kernels_for(t, Isa::Scalar).dot)(&q, cols, &y, &mut want);
        for isa in arch::available_isas() {
            let mut got = vec![0f32; t.info().rows_per_group];
            let k = arch::kernels_for(t, isa);
            (k.dot)(&q, cols, &k.activations(&y), &mut got);
            assert_eq!(got, want, "{t} {isa:?}");
        }
    }
}

#[test]
fn q8k_quantizer_rounds_ties_to_even_on_every_isa() {
    // amax = 127 makes the inverse scale exactly 1: every x.5 is a tie; then a block of zeros,
    // and one of wide magnitudes with its largest value negative (quants of -127, sums near the
    // i16 limits of a group: 16 · ±127)
    let mut x: Vec<f32> = (0..2 * QK_K).map(|i| if i % 97 == 0 { 127.0 } else { (i % 254) as f32 - 127.0 + 0.5 }).collect();
    x.extend(std::iter::repeat_n(0.0, QK_K));
    x.extend((0..QK_K).map(|i| match i % 5 {
        0 => -3e30,
        1 => 1e-30,
        _ if i < 32 => 2.9e30,
        _ => (i as f32 - 128.0) * 1e27,
    }));
    let scalar = arch::kernels_for(QType::Q8K, Isa::Scalar);
    let mut want = vec![0u8; QType::Q8K.row_size(x.len())];
    (scalar.quantize)(&x, x.len(), None, &mut want);
    assert_eq!(want[q8k::QS + 1] as i8, -126, "-125.5 rounds to even");
    for isa in arch::available_isas() {
        let mut got = vec![0u8; want.len()];
        (arch::kernels_for(QType::Q8K, isa).quantize)(&x, x.len(), None, &mut got);
        assert_eq!(got, want, "{isa:?}");
    }
}

/// The tiled matrix multiply (portable and SIMD microkernels, serial and parallel) gives the
/// row-by-row scalar dot products bit for bit, partial tiles and every column count included.
fn check_gemm(t: QType, groups: usize, blocks: usize, n: usize, seed: u64) {
    let g = t.info().rows_per_group;
    let (rows, cols) = (groups * g, blocks * QK_K);
    let mut s = seed | 1;
    let mut u = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let x: Vec<f32> = (0..rows * cols).map(|i| u() * if i % 61 == 0 { 20.0 } else { 1.0 }).collect();
    let q = ops::quantize(t, &x, rows, cols, None).unwrap();
    let yf: Vec<f32> = (0..n * cols).map(|_| u()).collect();
    let y = ops::quantize_q8k(&yf, cols).unwrap();
    let (rs, ys) = (t.row_size(cols), QType::Q8K.row_size(cols));
    let scalar = arch::kernels_for(t, Isa::Scalar);
    let mut want = vec![0f32; rows * n];
    for (gi, src) in q.chunks(g * rs).enumerate() {
        for j in 0..n {
            let mut o = vec![0f32; g];
            (scalar.dot)(src, cols, &y[j * ys..(j + 1) * ys], &mut o);
            for r in 0..g {
                want[(gi * g + r) * n + j] = o[r];
            }
        }
    }
    let mut tiles: Vec<(&str, iqrs::gemm::TileFn)> = vec![("portable", iqrs::gemm::tile_scalar)];
    for isa in arch::available_isas() {
        if let Some(f) = arch::gemm_tile(isa) {
            tiles.push((isa.name(), f));
        }
    }
    for (name, tile) in tiles {
        // the tile decoders: block by block (scalar kernels) and each ISA's own
        for isa in arch::available_isas() {
            let k = arch::kernels_for(t, isa);
            for parallel in [false, true] {
                let mut got = vec![f32::NAN; rows * n];
                iqrs::gemm::matmul(&k, tile, g, rs, &q, cols, &y, n, &mut got, parallel);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(same(*a, *b), "{t} gemm {name} fill {isa:?} parallel={parallel} rows={rows} n={n}: [{}, {}] {a} vs dot {b}", i / n, i % n);
                }
            }
        }
    }
}

/// Each ISA's tile decoder fills the matrix-multiply tile exactly as the block-by-block
/// decoder through the scalar `decode_int` does, on arbitrary bytes, partial tiles included.
fn check_fill(t: QType, groups: usize, blocks: usize, seed: u64) {
    use iqrs::gemm::{PackedRows, TILE_ROWS};
    let g = t.info().rows_per_group;
    let cols = blocks * QK_K;
    let rs = t.row_size(cols);
    let nrows = (groups * g).min(TILE_ROWS / g * g);
    let mut s = seed | 1;
    let src: Vec<u8> = (0..nrows * rs)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect();
    let scalar = arch::kernels_for(t, Isa::Scalar);
    let mut want = PackedRows::new(blocks);
    want.fill_blocks(&scalar, &src, cols, g, g * rs, nrows);
    let bits = |d: &[f32]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for isa in arch::available_isas() {
        let k = arch::kernels_for(t, isa);
        // start from garbage so that every slot must be written
        let mut got = PackedRows::new(blocks);
        for b in 0..blocks {
            got.w[b].fill(0x5A);
            got.scales[b].fill(-7);
            got.corr[b].fill(99);
            got.d[b].fill(f32::NAN);
        }
        got.fill(&k, &src, cols, g, g * rs, nrows);
        for b in 0..blocks {
            assert_eq!(got.w[b][..], want.w[b][..], "{t} {isa:?} values, block {b}, {nrows} rows");
            assert_eq!(got.scales[b][..], want.scales[b][..], "{t} {isa:?} scales, block {b}, {nrows} rows");
            assert_eq!(got.corr[b], want.corr[b], "{t} {isa:?} corrections, block {b}, {nrows} rows");
            assert_eq!(bits(&got.d[b]), bits(&want.d[b]), "{t} {isa:?} block factors, block {b}, {nrows} rows");
        }
    }
}

/// Every ISA's matrix-multiply tile equals the portable one bit for bit at the int8 extremes:
/// weights of -128 (Q8_K rows from other tools) and 127 against activations of -127 and 127, and
/// activations of -128 (which the AVX2 tile hands to the portable one).
#[test]
fn gemm_tiles_at_the_int8_extremes() {
    use iqrs::gemm::{tile_scalar, PackedCols, PackedRows, TILE_ROWS};
    let (blocks, n) = (2, 5);
    let cols = blocks * QK_K;
    let mut w = PackedRows::new(blocks);
    for b in 0..blocks {
        for (i, v) in w.w[b].iter_mut().enumerate() {
            *v = [-128, 127, -128, -1, 0, 127][i % 6];
        }
        for (i, l) in w.scales[b].iter_mut().enumerate() {
            *l = [63, -64, 1, -1][i % 4];
        }
        for (r, c) in w.corr[b].iter_mut().enumerate() {
            *c = 128 * (0..16).map(|sb| w.scales[b][sb * TILE_ROWS + r] * (0..16).map(|k| w.w[b][((sb * 4 + k / 4) * TILE_ROWS + r) * 4 + k % 4] as i32).sum::<i32>()).sum::<i32>();
        }
        for (r, d) in w.d[b].iter_mut().enumerate() {
            *d = 0.001 * (r as f32 + 1.0);
        }
    }
    for min in [false, true] {
        // Q8_K activation rows: d, sum, quants alternating -127 / 127 (and -128 where `min`)
        let mut y = vec![0u8; n * blocks * q8k::BLOCK_BYTES];
        for (i, blk) in y.chunks_exact_mut(q8k::BLOCK_BYTES).enumerate() {
            blk[..4].copy_from_slice(&(0.5f32 + i as f32).to_le_bytes());
            for (k, q) in blk[q8k::QS..q8k::QS + QK_K].iter_mut().enumerate() {
                *q = if min && k % 7 == 3 { 0x80 } else if (k + i) % 3 == 0 { 0x81 } else { 0x7F };
            }
        }
        let y = PackedCols::new(&y, cols, n);
        assert_eq!(y.has_min, min);
        let mut want = vec![0f32; TILE_ROWS * n];
        tile_scalar(&w, &y, 0..n, TILE_ROWS, &mut want, n);
        for isa in arch::available_isas() {
            if let Some(tile) = arch::gemm_tile(isa) {
                for nrows in [TILE_ROWS, 11, 3] {
                    let mut got = vec![f32::NAN; TILE_ROWS * n];
                    tile(&w, &y, 0..n, nrows, &mut got, n);
                    for i in 0..nrows * n {
                        assert!(same(got[i], want[i]), "{isa:?} min={min} nrows={nrows} [{}, {}]: {} vs {}", i / n, i % n, got[i], want[i]);
                    }
                    assert!(got[nrows * n..].iter().all(|v| v.is_nan()), "{isa:?}: rows past nrows written");
                }
            }
        }
    }
}

/// More rows than one group of tiles decoded together and more vectors than one pass over them
/// (gemm::GROUP_TILES, PASS_VECS), with a partial tile, group and pass at the ends.
#[test]
fn gemm_groups_and_passes_equal_row_dots() {
    for (i, &t) in QType::ALL.iter().enumerate() {
        let g = t.info().rows_per_group;
        check_gemm(t, 84 / g, 1, 70, 0x5EED + i as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn gemm_equals_row_dots(ti in 0..QType::ALL.len(), groups in 1usize..12, blocks in 1usize..4, n in 1usize..20, seed in any::<u64>()) {
        check_gemm(QType::ALL[ti], groups, blocks, n, seed);
    }

    #[test]
    fn tile_decoders_equal_block_decoders(groups in 1usize..5, blocks in 1usize..4, seed in any::<u64>()) {
        for &t in QType::ALL {
            check_fill(t, groups, blocks, seed);
        }
    }
}
