//! Checks against the reference library's own output (tests/data/golden, produced by
//! ik_llama.cpp 8337e4cd3; see its README). For every golden case whose type iqrs registers:
//! 1. dequantizing the reference bytes gives the reference floats bit for bit, on every ISA;
//! 2. our quantizer's imatrix-weighted RMSE is ≤ 1.01× the reference's on every case and
//!    ≤ 1.00× on average;
//! 3. the dot product of the reference bytes with Q8_K(y) equals the exact dot within
//!    1e-5 of Σ|w·y| (IQ6_K: of the table decode), and every ISA gives the scalar result bit
//!    for bit;
//! 4. our Q8_K bytes of y equal the reference's.

use std::path::{Path, PathBuf};

use iqrs::arch::{self, Isa};
use iqrs::{ops, QType};

struct Case {
    dir: PathBuf,
    qtype: QType,
    rows: usize,
    cols: usize,
    manifest: serde_json::Value,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/golden")
}

fn f32s(p: &Path) -> Vec<f32> {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn f64s(p: &Path) -> Vec<f64> {
    let b = std::fs::read(p).unwrap();
    b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn cases() -> Vec<Case> {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(golden_dir().join("index.json")).unwrap()).unwrap();
    let mut out = vec![];
    for c in index["cases"].as_array().unwrap() {
        let Ok(qtype) = QType::from_name(c["type"].as_str().unwrap()) else { continue };
        let dir = golden_dir().join(c["dir"].as_str().unwrap());
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let rows = manifest["nrows"].as_u64().unwrap() as usize;
        let cols = manifest["n_per_row"].as_u64().unwrap() as usize;
        assert_eq!(manifest["ggml_type_id"].as_u64().unwrap() as u32, qtype.info().ggml_id, "{}", dir.display());
        assert_eq!(manifest["row_size_bytes"].as_u64().unwrap() as usize, qtype.row_size(cols));
        out.push(Case { dir, qtype, rows, cols, manifest });
    }
    assert!(out.len() >= 5, "expected the golden cases of iq4_ks, iq4_kss and q8_k");
    out
}

/// The floats a bit-exact decoder must produce (IQ6_K: the table decode, FORMATS.md §13).
fn expected_dequant(c: &Case) -> Vec<f32> {
    let table = c.dir.join("dequant_table.f32.bin");
    f32s(&if table.exists() { table } else { c.dir.join("dequant.f32.bin") })
}

#[test]
fn dequantize_is_bit_exact_on_every_isa() {
    for c in cases() {
        let q = std::fs::read(c.dir.join("quant.bin")).unwrap();
        let want = expected_dequant(&c);
        for isa in arch::available_isas() {
            let k = arch::kernels_for(c.qtype, isa);
            let g = c.qtype.info().rows_per_group;
            let rs = c.qtype.row_size(c.cols);
            let mut got = vec![0f32; c.rows * c.cols];
            for (src, o) in q.chunks(g * rs).zip(got.chunks_mut(g * c.cols)) {
                (k.dequantize)(src, c.cols, o);
            }
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{} {:?}: value {i}: {a} vs {b}", c.dir.display(), isa);
            }
        }
    }
}

#[test]
fn quantizer_error_is_no_worse_than_the_reference() {
    let mut ratios = vec![];
    let mut identical = 0;
    let mut report = String::new();
    for c in cases() {
        let x = f32s(&c.dir.join("input.f32.bin"));
        let im_path = c.dir.join("imatrix.f32.bin");
        let im = im_path.exists().then(|| f32s(&im_path));
        let ours = ops::quantize(c.qtype, &x, c.rows, c.cols, im.as_deref()).unwrap();
        let reference = std::fs::read(c.dir.join("quant.bin")).unwrap();
        if ours == reference {
            identical += 1;
        }
        let deq = ops::dequantize(c.qtype, &ours, c.rows, c.cols).unwrap();
        let ref_deq = expected_dequant(&c);
        let e_ours = ops::weighted_rmse(&x, &deq, c.cols, im.as_deref());
        let e_ref = ops::weighted_rmse(&x, &ref_deq, c.cols, im.as_deref());
        let ratio = e_ours / e_ref;
        report += &format!(
            "{}: ours {e_ours:.6e} ref {e_ref:.6e} ratio {ratio:.5} identical {}\n",
            c.dir.file_name().unwrap().to_string_lossy(),
            ours == reference
        );
        assert!(ratio <= 1.01, "{}: weighted RMSE {e_ours} vs reference {e_ref}", c.dir.display());
        ratios.push(ratio);
    }
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    println!("{report}byte-identical: {identical} of {} cases; mean ratio {mean:.6}", ratios.len());
    assert!(mean <= 1.0 + 1e-12, "mean error ratio {mean} > 1");
}

#[test]
fn q8k_activation_bytes_match() {
    for c in cases() {
        if c.manifest["y_quant_type"] != "q8_K" {
            continue;
        }
        let y = f32s(&c.dir.join("y.f32.bin"));
        let ours = ops::quantize_q8k(&y, c.cols).unwrap();
        assert_eq!(ours, std::fs::read(c.dir.join("y_q8k.bin")).unwrap(), "{}", c.dir.display());
    }
}

#[test]
fn dot_matches_the_exact_definition_on_every_isa() {
    for c in cases() {
        let exact = c.dir.join("dot_exact.f64.bin");
        if !exact.exists() {
            continue;
        }
        let q = std::fs::read(c.dir.join("quant.bin")).unwrap();
        let y = f32s(&c.dir.join("y.f32.bin"));
        let yq = ops::quantize_q8k(&y, c.cols).unwrap();
        let mut yd = vec![0f32; c.cols];
        iqrs::quants::q8k::dequantize_row(&yq, &mut yd);
        let w = expected_dequant(&c);
        // dot_exact.f64.bin is Σ dequant·y_deq of the reference's own decode; where iqrs decodes
        // with the table instead (IQ6_K), the same definition over the table decode.
        let exact = if c.dir.join("dequant_table.f32.bin").exists() {
            w.chunks(c.cols).map(|r| r.iter().zip(&yd).map(|(&a, &b)| a as f64 * b as f64).sum()).collect()
        } else {
            f64s(&exact)
        };
        let mut outs = vec![];
        for isa in arch::available_isas() {
            let k = arch::kernels_for(c.qtype, isa);
            let g = c.qtype.info().rows_per_group;
            let rs = c.qtype.row_size(c.cols);
            let mut out = vec![0f32; c.rows];
            let yq = k.activations(&yq);
            for (src, o) in q.chunks(g * rs).zip(out.chunks_mut(g)) {
                (k.dot)(src, c.cols, &yq, o);
            }
            outs.push((isa, out));
        }
        for (isa, out) in &outs {
            for r in 0..c.rows {
                let scale: f64 = (0..c.cols).map(|j| (w[r * c.cols + j] as f64 * yd[j] as f64).abs()).sum();
                let diff = (out[r] as f64 - exact[r]).abs();
                assert!(diff <= 1e-5 * scale, "{} {isa:?} row {r}: {} vs {} (scale {scale})", c.dir.display(), out[r], exact[r]);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(out), bits(&outs[0].1), "{isa:?} differs from {:?}", Isa::Scalar);
        }
    }
}

/// The reference's `_r4` bytes are the interleave of its base type's bytes (all golden cases
/// share one input), and deinterleaving gives the base bytes back.
#[test]
fn r4_bytes_are_the_interleaved_base_bytes() {
    let mut checked = 0;
    for c in cases() {
        let Some(spec) = iqrs::quants::r4::spec_of(c.qtype) else { continue };
        let name = c.dir.file_name().unwrap().to_string_lossy().to_string();
        let variant = name.split("__").nth(1).unwrap();
        let base_dir = golden_dir().join(format!("{}__{variant}", spec.base.name()));
        assert_eq!(f32s(&c.dir.join("input.f32.bin")), f32s(&base_dir.join("input.f32.bin")), "{name}: inputs differ");
        let base = std::fs::read(base_dir.join("quant.bin")).unwrap();
        let r4 = std::fs::read(c.dir.join("quant.bin")).unwrap();
        assert_eq!(ops::repack(spec.base, spec.r4, &base, c.rows, c.cols).unwrap(), r4, "{name}");
        assert_eq!(ops::repack(spec.r4, spec.base, &r4, c.rows, c.cols).unwrap(), base, "{name}");
        checked += 1;
    }
    assert!(checked >= 10, "expected the golden cases of 5 _r4 types, checked {checked}");
}
