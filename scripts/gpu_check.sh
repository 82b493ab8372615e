#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, Python and PyTorch: install a built iqrs wheel, run the GPU
# tests and the GPU benchmark; logs go to $OUT (default gpu-results/).
#   maturin build --release              # here: target/wheels/iqrs-*.whl (nvcc needed, not a GPU)
#   bash scripts/gpu_check.sh target/wheels/iqrs-*.whl
# SANITIZE=1 also runs a few GPU tests under compute-sanitizer (memcheck).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv >"$out/nvidia-smi.txt" 2>&1
cat "$out/nvidia-smi.txt"
python3 -m pip install -q --no-deps --force-reinstall "$1" 2>&1 | tail -3
python3 -c "import iqrs, torch; print(iqrs.__version__, iqrs.cuda.build_info(), iqrs.cuda.device_info(), 'torch', torch.__version__)" 2>&1 | tee "$out/info.txt"
python3 -m pytest -m gpu -q -rs -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/pytest.txt" | tail -40
tests=${PIPESTATUS[0]}
python3 -m iqrs.bench_cuda --paths --n ${BENCH_N:-1,8,512,4096} --json "$out/bench.json" 2>&1 | tee "$out/bench.txt"
bench=${PIPESTATUS[0]}
if [ "${SANITIZE:-0}" = 1 ]; then
    timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_cuda.py \
        -k "bit_for_bit or (matvec and float16) or (matmul and bfloat16)" >"$out/sanitizer.txt" 2>&1
    echo "compute-sanitizer exit $?"; tail -6 "$out/sanitizer.txt"
fi
echo "pytest exit $tests, bench exit $bench"
