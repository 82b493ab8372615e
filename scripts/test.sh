#!/usr/bin/env bash
# Set up, then run every test: the Rust crate's (unit, golden, SIMD-vs-scalar) and pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --release --manifest-path rust/Cargo.toml
.venv/bin/python -m pytest -q "$@"
