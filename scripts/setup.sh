#!/usr/bin/env bash
# Sets up everything iqrs needs on a fresh machine with Rust and Python 3.9+: a virtual
# environment in .venv with the build and test tools, and the extension built in release mode
# and installed into it (editable). Safe to run again; it only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "maturin>=1.7,<2" "numpy>=1.22" "pytest>=7" "hypothesis>=6"
maturin develop --release -q
