//! The quantizers' scale search gives the same bytes whichever ISA evaluates its candidates (the
//! AVX-512 lane-parallel sums against the scalar one-by-one ones). Its own process: it switches
//! the global ISA.

use iqrs::arch::{self, Isa};
use iqrs::{ops, QType};

fn rows(n: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut s = seed | 1;
    let mut u = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut x = Vec::with_capacity(n * cols);
    for r in 0..n {
        let scale = 0.01 + 0.1 * (r % 7) as f32;
        for j in 0..cols {
            // sums of uniforms (about gaussian), a few outliers, some exact zeros and ties
            let g = (u() + u() + u() + u() - 2.0) * scale;
            x.push(match j % 97 {
                0 => 8.0 * g,
                1 => 0.0,
                2 => scale,
                _ => g,
            });
        }
    }
    let im = (0..cols).map(|_| 0.05 + 4.0 * u() * u()).collect();
    (x, im)
}

#[test]
fn quantized_bytes_do_not_depend_on_the_isa() {
    let isas = arch::available_isas();
    let (rows_n, cols) = (8, 512);
    for &t in QType::ALL {
        for seed in 1..4u64 {
            let (x, im) = rows(rows_n, cols, seed * 7919 + t.info().ggml_id as u64);
            for imatrix in [None, Some(&im[..])] {
                arch::set_isa(Isa::Scalar);
                let want = ops::quantize(t, &x, rows_n, cols, imatrix).unwrap();
                for &isa in &isas {
                    arch::set_isa(isa);
                    let got = ops::quantize(t, &x, rows_n, cols, imatrix).unwrap();
                    assert!(got == want, "{t} seed {seed} imatrix {}: {isa:?} bytes differ from scalar", imatrix.is_some());
                }
            }
        }
    }
}
