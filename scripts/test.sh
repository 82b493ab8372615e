#!/usr/bin/env bash
# Set up, then run every test: the Rust crate's (unit, golden, SIMD-vs-scalar; with the CUDA
# kernels compiled and checked for every type unless IQRS_CPU_ONLY=1) and pytest's (GPU tests
# are marked and deselected here: run `pytest -m gpu` on a machine with a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
features=()
if [ "${IQRS_CPU_ONLY:-0}" != 1 ]; then
    features=(--features cuda)
fi
cargo test --release --manifest-path rust/Cargo.toml "${features[@]}"
# the CPU-only build (no nvcc needed) must keep compiling too
cargo check --release --manifest-path rust/Cargo.toml --features python
.venv/bin/python -m pytest -q "$@"
