//! Build script. Does nothing unless the `cuda` feature is on; then it compiles every
//! `cuda/*.cu` file with nvcc into one fatbin (cubins for sm_80, sm_86, sm_89 and sm_90, plus
//! compute_90 PTX that newer GPUs compile at load time; `*_sm90a.cu` files, which use Hopper's
//! wgmma, into an sm_90a cubin alone) and writes `$OUT_DIR/kernels.rs`, which embeds them with
//! `include_bytes!` (see `src/cuda/kernels.rs`).
//!
//! nvcc is looked up in this order: `$NVCC`; `nvcc` on `PATH`; `$CUDA_HOME/bin`, `$CUDA_PATH/bin`;
//! the PyPI packages (`nvidia-cuda-nvcc`, laid out as `site-packages/nvidia/cu13/bin/nvcc`) in the
//! active virtual environment, the repository's `.venv`, or whatever `python3` imports. A missing
//! nvcc is a hard error naming the ways to get one: a CPU-only build is an explicit choice (build
//! without `--features cuda`).
//!
//! The PTX must load on a CUDA 13.0 driver, so an nvcc newer than 13.0 is refused unless
//! `IQRS_ALLOW_NEWER_NVCC=1`. `IQRS_CUDA_ARCHS` (e.g. `90`) narrows the cubins for local
//! iteration; release builds use the default list.
//!
//! Compiled fatbins are cached under `<target>/nvcc-cache/`, keyed by a hash of the sources, the
//! flags and the nvcc version, so builds with different feature sets (`maturin develop`,
//! `cargo test --features cuda`) run nvcc once.

use std::collections::hash_map::DefaultHasher;
use std::env;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Real architectures that get a cubin, unless `IQRS_CUDA_ARCHS` says otherwise.
const DEFAULT_ARCHS: &[u32] = &[80, 86, 89, 90];
/// The newest CUDA release whose PTX the target driver (CUDA 13.0) can load.
const MAX_NVCC: (u32, u32) = (13, 0);

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    for var in ["NVCC", "CUDA_HOME", "CUDA_PATH", "PATH", "VIRTUAL_ENV", "IQRS_CUDA_ARCHS", "IQRS_ALLOW_NEWER_NVCC", "NVCC_CCBIN"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().expect("crate lives in rust/ under the repository root").to_path_buf();
    let cuda_dir = root.join("cuda");
    println!("cargo::rerun-if-changed={}", cuda_dir.display());

    let nvcc = find_nvcc(&root).unwrap_or_else(|| fail_no_nvcc());
    let version = nvcc_version(&nvcc);
    if version > MAX_NVCC && env::var_os("IQRS_ALLOW_NEWER_NVCC").is_none() {
        panic!(
            "\n\niqrs: {} is CUDA {}.{}, newer than {}.{}: its PTX would not load on a CUDA {}.{} driver.\n\
             Use nvcc {}.{} or older (`pip install nvidia-cuda-nvcc=={}.{}.* nvidia-cuda-runtime nvidia-cuda-cccl`),\n\
             or set IQRS_ALLOW_NEWER_NVCC=1 to build anyway.\n",
            nvcc.display(), version.0, version.1, MAX_NVCC.0, MAX_NVCC.1, MAX_NVCC.0, MAX_NVCC.1, MAX_NVCC.0, MAX_NVCC.1, MAX_NVCC.0, MAX_NVCC.1
        );
    }
    let archs = archs();
    let flags = nvcc_flags(&archs, &cuda_dir);
    // `*_sm90a.cu` (wgmma): a cubin for sm_90a alone, which runs on compute capability 9.0 only;
    // left out when sm_90 is not among the architectures.
    let flags_sm90a: Vec<String> = flags.iter().filter(|f| !f.starts_with("-gencode")).cloned().chain(["-gencode=arch=compute_90a,code=sm_90a".to_string()]).collect();

    let mut sources: Vec<PathBuf> = fs::read_dir(&cuda_dir)
        .unwrap_or_else(|e| panic!("iqrs: cannot read {}: {e}", cuda_dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .filter(|p| archs.contains(&90) || !is_sm90a(p))
        .collect();
    sources.sort();
    let headers: Vec<PathBuf> = {
        let mut h: Vec<PathBuf> = fs::read_dir(&cuda_dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "cuh")).collect();
        h.sort();
        h
    };

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let cache = cache_dir(&out_dir);
    fs::create_dir_all(&cache).unwrap();

    // One nvcc per source, all at once (each compiles its targets one after the other).
    let mut jobs = Vec::new();
    for src in &sources {
        let stem = src.file_stem().unwrap().to_str().unwrap().to_string();
        let flags = if is_sm90a(src) { &flags_sm90a } else { &flags };
        let mut h = DefaultHasher::new();
        (version, flags, fs::read(src).unwrap()).hash(&mut h);
        for hdr in &headers {
            fs::read(hdr).unwrap().hash(&mut h);
        }
        let cached = cache.join(format!("{stem}-{:016x}.fatbin", h.finish()));
        if cached.exists() {
            jobs.push((stem, cached, None));
            continue;
        }
        let tmp = cache.join(format!("{stem}.{}.tmp", std::process::id()));
        let child = Command::new(&nvcc)
            .args(flags)
            .arg("-o")
            .arg(&tmp)
            .arg(src)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("iqrs: cannot run {}: {e}", nvcc.display()));
        jobs.push((stem, cached, Some((child, tmp))));
    }
    let mut modules = Vec::new();
    for (stem, cached, job) in jobs {
        if let Some((child, tmp)) = job {
            let out = child.wait_with_output().unwrap();
            if !out.status.success() {
                panic!("iqrs: nvcc failed on cuda/{stem}.cu:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            }
            fs::rename(&tmp, &cached).unwrap();
        }
        let dst = out_dir.join(format!("{stem}.fatbin"));
        fs::copy(&cached, &dst).unwrap();
        modules.push((stem, dst));
    }

    let mut rs = String::from("// Generated by build.rs: one fatbin per cuda/*.cu file.\n");
    rs += &format!("/// nvcc release the kernels were built with.\npub const NVCC_VERSION: (u32, u32) = ({}, {});\n", version.0, version.1);
    rs += &format!("/// Real architectures with a cubin (others JIT-compile the PTX of the newest).\npub const ARCHS: &[u32] = &{archs:?};\n");
    rs += "/// `(module name, fatbin)` for every kernel file.\npub const FATBINS: &[(&str, &[u8])] = &[\n";
    for (stem, path) in &modules {
        rs += &format!("    ({stem:?}, include_bytes!({:?})),\n", path.display().to_string());
    }
    rs += "];\n";
    fs::write(out_dir.join("kernels.rs"), rs).unwrap();
}

/// A source of sm_90a-only kernels (`<name>_sm90a.cu`).
fn is_sm90a(src: &Path) -> bool {
    src.file_stem().and_then(|s| s.to_str()).is_some_and(|s| s.ends_with("_sm90a"))
}

/// The real architectures to build cubins for.
fn archs() -> Vec<u32> {
    match env::var("IQRS_CUDA_ARCHS") {
        Ok(s) if !s.trim().is_empty() => {
            let mut v: Vec<u32> = s
                .split(',')
                .map(|a| a.trim().trim_start_matches("sm_").parse().unwrap_or_else(|_| panic!("iqrs: IQRS_CUDA_ARCHS: bad entry {a:?} (expected e.g. 80,86,89,90)")))
                .collect();
            v.sort();
            v.dedup();
            v
        }
        _ => DEFAULT_ARCHS.to_vec(),
    }
}

/// nvcc flags: one `-gencode` per virtual architecture (compute_80 for Ampere/Ada, compute_90
/// for Hopper and up: the kernels use nothing newer, so one front-end pass serves several
/// cubins), PTX of the newest, and no fast-math (the f32 dequantization must be bit-exact).
fn nvcc_flags(archs: &[u32], include: &Path) -> Vec<String> {
    let mut flags: Vec<String> = ["-fatbin", "-O3", "-std=c++17", "--expt-relaxed-constexpr"].iter().map(|s| s.to_string()).collect();
    flags.push(format!("-I{}", include.display()));
    if let Ok(ccbin) = env::var("NVCC_CCBIN") {
        flags.push(format!("-ccbin={ccbin}"));
    }
    let virt = |a: u32| if a >= 90 { 90 } else { 80.min(a) };
    let newest = *archs.last().expect("at least one architecture");
    let mut groups: Vec<(u32, Vec<String>)> = Vec::new();
    for &a in archs {
        let v = virt(a);
        match groups.iter_mut().find(|g| g.0 == v) {
            Some(g) => g.1.push(format!("sm_{a}")),
            None => groups.push((v, vec![format!("sm_{a}")])),
        }
    }
    for (v, mut codes) in groups {
        if v == virt(newest) {
            codes.push(format!("compute_{v}"));
        }
        flags.push(format!("-gencode=arch=compute_{v},code=[{}]", codes.join(",")));
    }
    flags
}

/// `<target>/nvcc-cache`: OUT_DIR is `<target>/<profile>/build/iqrs-<hash>/out`.
fn cache_dir(out_dir: &Path) -> PathBuf {
    out_dir.ancestors().nth(4).map(|t| t.join("nvcc-cache")).unwrap_or_else(|| out_dir.join("nvcc-cache"))
}

fn find_nvcc(root: &Path) -> Option<PathBuf> {
    if let Some(p) = env::var_os("NVCC") {
        return Some(PathBuf::from(p));
    }
    let exe = |dir: &Path| Some(dir.join("nvcc")).filter(|p| p.is_file());
    if let Some(path) = env::var_os("PATH") {
        if let Some(p) = env::split_paths(&path).find_map(|d| exe(&d)) {
            return Some(p);
        }
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(home) = env::var_os(var) {
            if let Some(p) = exe(&PathBuf::from(home).join("bin")) {
                return Some(p);
            }
        }
    }
    // The PyPI toolchain: site-packages/nvidia/cu13/bin/nvcc.
    let mut pythons: Vec<PathBuf> = Vec::new();
    if let Some(v) = env::var_os("VIRTUAL_ENV") {
        pythons.push(PathBuf::from(v).join("bin/python"));
    }
    pythons.push(root.join(".venv/bin/python"));
    if let Some(p) = env::var_os("PYO3_PYTHON") {
        pythons.push(PathBuf::from(p));
    }
    pythons.push(PathBuf::from("python3"));
    let probe = "import nvidia, os; print(os.pathsep.join(nvidia.__path__))";
    for py in pythons {
        let Ok(out) = Command::new(&py).args(["-c", probe]).stderr(Stdio::null()).output() else { continue };
        if !out.status.success() {
            continue;
        }
        for dir in env::split_paths(String::from_utf8_lossy(&out.stdout).trim()) {
            for sub in ["cu13", "cu12", "cuda_nvcc"] {
                if let Some(p) = exe(&dir.join(sub).join("bin")) {
                    return Some(p);
                }
            }
        }
    }
    None
}

fn nvcc_version(nvcc: &Path) -> (u32, u32) {
    let out = Command::new(nvcc).arg("--version").output().unwrap_or_else(|e| panic!("iqrs: cannot run {}: {e}", nvcc.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    let release = text.split("release ").nth(1).and_then(|s| s.split(',').next()).unwrap_or_else(|| panic!("iqrs: cannot read the version of {}:\n{text}", nvcc.display()));
    let mut it = release.trim().split('.').map(|x| x.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn fail_no_nvcc() -> ! {
    panic!(
        "\n\niqrs: the `cuda` feature is on but no nvcc was found (looked at $NVCC, PATH, $CUDA_HOME/bin, \
         $CUDA_PATH/bin and the PyPI packages in the active or ./.venv virtual environment).\n\
         Get one of:\n  \
         * the PyPI toolchain: pip install 'nvidia-cuda-nvcc==13.0.88' 'nvidia-nvvm==13.0.88' 'nvidia-cuda-crt==13.0.88' \
         'nvidia-cuda-runtime==13.0.96' 'nvidia-cuda-cccl==13.0.85' (scripts/setup.sh does this in .venv);\n  \
         * a CUDA toolkit (12.x or 13.0): put its bin/ on PATH or set CUDA_HOME;\n  \
         * or build without `--features cuda` for a CPU-only library.\n"
    );
}
