#!/usr/bin/env bash
# Set up, then quantize the bundled sample matrix to every type (bpw, error, speed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/iqrs demo "$@"
