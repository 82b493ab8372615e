#!/usr/bin/env bash
# Sets up everything iqrs needs on a fresh machine with Rust and Python 3.9+: a virtual
# environment in .venv with the build and test tools, and the extension built in release mode
# and installed into it (editable). Safe to run again; it only rebuilds what changed.
#
# The GPU kernels are compiled in as well (no GPU is needed for that; pyproject.toml turns the
# `cuda` feature on): nvcc 13.0 comes from PyPI into .venv — 13.0 because its PTX must load on
# CUDA 13.0 drivers. IQRS_CPU_ONLY=1 builds without them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "maturin>=1.7,<2" "numpy>=1.22" "pytest>=7" "hypothesis>=6"
features=()
if [ "${IQRS_CPU_ONLY:-0}" = 1 ]; then
    features=(--features python,pyo3/extension-module)
else
    if ! python -c "import nvidia, os, sys; sys.exit(not any(os.path.isfile(os.path.join(p, 'cu13/bin/nvcc')) for p in nvidia.__path__))" 2>/dev/null; then
        python -m pip install -q "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" "nvidia-cuda-crt==13.0.88" \
            "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85"
    fi
fi
maturin develop --release -q "${features[@]}"
