//! Criterion benches of the kernels, per type and per ISA: quantize (one row group of 4096
//! weights, with and without imatrix; the ISA in use), dequantize and Q8_K dot of a 64-row x 4096 slab,
//! the matrix multiply of 256 rows by 64 vectors, and its two parts (tile decode, microkernel) at
//! 512 vectors; one thread.
//! `cargo bench --manifest-path rust/Cargo.toml [-- FILTER]`; group names are `{op}/{type}`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use iqrs::arch;
use iqrs::quants::q8k;
use iqrs::{gemm, ops, QType};

const COLS: usize = 4096;
const ROWS: usize = 64;

fn data(rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>) {
    // deterministic gaussian-ish values with outliers (sum of uniforms), imatrix in (0.25, 4)
    let mut s = 0x9E3779B97F4A7C15u64;
    let mut u = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32
    };
    let x = (0..rows * cols).map(|_| (u() + u() + u() - 1.5) * if u() < 0.005 { 8.0 } else { 1.0 } * 0.05).collect();
    let im = (0..cols).map(|_| 0.25 + 3.75 * u()).collect();
    (x, im)
}

fn benches(c: &mut Criterion) {
    iqrs::threads::set_num_threads(1);
    let (x, im) = data(ROWS, COLS);
    let y = data(1, COLS).0;
    let mut yq = vec![0u8; QType::Q8K.row_size(COLS)];
    q8k::quantize_row(&y, &mut yq);
    for &t in QType::ALL {
        let g = t.info().rows_per_group;
        let best = arch::kernels(t);
        let rs = t.row_size(COLS);
        let mut out = vec![0u8; g * rs];
        let mut grp = c.benchmark_group(format!("quantize/{t}"));
        grp.throughput(Throughput::Elements((g * COLS) as u64));
        grp.bench_function("noimat", |b| b.iter(|| (best.quantize)(&x[..g * COLS], COLS, None, &mut out)));
        grp.bench_function("imat", |b| b.iter(|| (best.quantize)(&x[..g * COLS], COLS, Some(&im), &mut out)));
        grp.finish();

        let q = ops::quantize(t, &x, ROWS, COLS, None).unwrap();
        let mut deq = vec![0f32; ROWS * COLS];
        let mut grp = c.benchmark_group(format!("dequantize/{t}"));
        grp.throughput(Throughput::Bytes((ROWS * COLS * 4) as u64));
        for isa in arch::available_isas() {
            let k = arch::kernels_for(t, isa);
            grp.bench_function(BenchmarkId::from_parameter(isa.name()), |b| {
                b.iter(|| {
                    for (src, o) in q.chunks(g * rs).zip(deq.chunks_mut(g * COLS)) {
                        (k.dequantize)(src, COLS, o)
                    }
                })
            });
        }
        grp.finish();

        let mut dots = vec![0f32; ROWS];
        let mut grp = c.benchmark_group(format!("dot/{t}"));
        grp.throughput(Throughput::Bytes(q.len() as u64));
        for isa in arch::available_isas() {
            let k = arch::kernels_for(t, isa);
            let yq = k.activations(&yq);
            grp.bench_function(BenchmarkId::from_parameter(isa.name()), |b| {
                b.iter(|| {
                    for (src, o) in q.chunks(g * rs).zip(dots.chunks_mut(g)) {
                        (k.dot)(src, COLS, &yq, o)
                    }
                })
            });
        }
        grp.finish();

        // matrix multiply: 256 rows x 64 activation vectors, one thread ("elements" = flops)
        let (mrows, n) = (256, 64);
        let qm: Vec<u8> = q.iter().copied().cycle().take(mrows * rs).collect();
        let ym = ops::quantize_q8k(&data(n, COLS).0, COLS).unwrap();
        let mut out = vec![0f32; mrows * n];
        let mut grp = c.benchmark_group(format!("matmul/{t}"));
        grp.throughput(Throughput::Elements((2 * mrows * COLS * n) as u64));
        let saved = arch::current_isa();
        for isa in arch::available_isas() {
            grp.bench_function(BenchmarkId::from_parameter(isa.name()), |b| {
                arch::set_isa(isa);
                b.iter(|| ops::matmul_q8k(t, &qm, COLS, &ym, n, &mut out))
            });
        }
        arch::set_isa(saved);
        grp.finish();

        // the two parts of the matrix multiply at 512 vectors, ISA in use: decoding one tile
        // (16 rows x 4096) and the microkernel over it; their ratio bounds what a cheaper
        // decode (the _R4 layouts) can gain there
        if let Some(tile) = arch::gemm_tile(arch::current_isa()) {
            let n = 512;
            let ym = ops::quantize_q8k(&data(n, COLS).0, COLS).unwrap();
            let packed = gemm::PackedCols::new(&ym, COLS, n);
            let mut w = gemm::PackedRows::new(COLS / iqrs::registry::QK_K);
            let src = &qm[..gemm::TILE_ROWS * rs];
            // decoded before either bench, so the microkernel sees the tile (and its `paired`
            // flag) even when a filter skips decode_tile
            w.fill(&best, src, COLS, g, g * rs, gemm::TILE_ROWS);
            let mut out = vec![0f32; gemm::TILE_ROWS * n];
            let mut grp = c.benchmark_group(format!("matmul_parts/{t}"));
            grp.throughput(Throughput::Elements((gemm::TILE_ROWS * COLS) as u64));
            grp.bench_function("decode_tile", |b| b.iter(|| w.fill(&best, src, COLS, g, g * rs, gemm::TILE_ROWS)));
            grp.throughput(Throughput::Elements((2 * gemm::TILE_ROWS * COLS * n) as u64));
            grp.bench_function("microkernel_x512", |b| b.iter(|| tile(&w, &packed, 0..n, gemm::TILE_ROWS, &mut out, n)));
            grp.finish();
        }
    }
}

criterion_group! {
    name = kernels;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = benches
}
criterion_main!(kernels);
