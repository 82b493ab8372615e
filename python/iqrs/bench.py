"""``python -m iqrs.bench`` / ``iqrs bench``: quantize, dequantize and mat-vec speed of every
type, beside the reference's numbers measured on this kind of machine (``_anchors.py``).

Protocol (the reference's, see BENCHMARKS.md): quantize a 4096x4096 gaussian-with-outliers
matrix (with and without an imatrix); dequantize it; mat-vec with W = 14336x4096 (the quantized
rows repeated) and cold caches (each call uses the next of several copies of W that together
exceed 768 MB); mat-mat with the same W times 512 activation vectors. Medians of several runs
after a warm-up; threads stated. The machine's read bandwidth is measured in the same run (a
1 GiB buffer summed with wide loads on the same threads) and each cold mat-vec is given as a
fraction of it.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Callable, Optional

import numpy as np

import iqrs

from . import _iqrs
from ._anchors import READ_BANDWIDTH_GBPS, REFERENCE


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--types", help="comma-separated types (default: all registered)")
    p.add_argument("--threads", default="1,2", help="thread counts to measure (default: 1,2)")
    p.add_argument("--runs", type=int, default=5, help="runs per measurement; the median is reported (default 5)")
    p.add_argument("--only", default="quantize,dequantize,matvec,matmat", help="which measurements (default: all four)")
    p.add_argument("--quick", action="store_true", help="1024x4096 quantize matrix and fewer mat-vec copies (a smoke run)")
    p.add_argument("--r4-vs-base", action="store_true",
                   help="instead: each _R4 type against its base type on the same weights, mat-vec (cold) and mat-mat "
                        "interleaved call by call (so a busy machine slows both alike)")
    p.add_argument("--columns", type=int, default=512, help="activation vectors of the mat-mat (default 512)")


def gaussian_outliers(rows: int, cols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's benchmark distribution: row scale U[0.01, 0.1], N(0,1) values, 0.5% x8;
    imatrix exp(0.7 N(0,1))."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.01, 0.1, size=(rows, 1))
    x = s * rng.standard_normal((rows, cols)) * np.where(rng.uniform(size=(rows, cols)) < 0.005, 8.0, 1.0)
    return x.astype(np.float32), np.exp(0.7 * rng.standard_normal(cols)).astype(np.float32)


def median_time(f: Callable[[], object], runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        f()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def ratio(v: float, ref: Optional[float]) -> str:
    return f"{v / ref:5.2f}x" if ref else "   n/a"


def run(args: argparse.Namespace) -> int:
    if args.r4_vs_base:
        return run_r4_vs_base(args)
    names = [iqrs.type_info(t).name for t in args.types.split(",")] if args.types else [t.name for t in iqrs.types()]
    threads = [int(t) for t in args.threads.split(",")]
    only = set(args.only.split(","))
    qrows = 1024 if args.quick else 4096
    x, im = gaussian_outliers(qrows, 4096, 0xA4C40000)
    y = np.random.default_rng(7).standard_normal((1, 4096)).astype(np.float32)
    print(f"iqrs {iqrs.__version__} bench — {platform.processor() or platform.machine()}, ISA {iqrs.get_isa()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; median of {args.runs} runs; reference = ik_llama.cpp 8337e4cd3")
    saved = iqrs.get_num_threads()
    bandwidth = {}
    try:
        if "matvec" in only:
            probe = np.ones(1 << 30, np.uint8)
            for th in threads:
                iqrs.set_num_threads(th)
                bandwidth[th] = probe.size / median_time(lambda: _iqrs.byte_sum(probe), args.runs) / 1e9
                ref_bw = READ_BANDWIDTH_GBPS.get(th)
                print(f"read bandwidth {th}T: {bandwidth[th]:.2f} GB/s (1 GiB buffer; the reference's machine: {ref_bw or float('nan'):.2f})")
            del probe
        for name in names:
            ref = REFERENCE.get(name, {})
            info = iqrs.type_info(name)
            slow = ref.get("quantize_noimat_1", 1e9) < 3e6
            qruns = max(1, min(args.runs, 3 if slow else args.runs))
            print(f"\n[{name}] ggml id {info.ggml_id}, {info.row_size(4096) * 8 / 4096:.4f} bpw")
            q = None
            for th in threads:
                iqrs.set_num_threads(th)
                if "quantize" in only:
                    qbuf = np.empty(qrows * info.row_size(4096), np.uint8)  # a ready buffer, as the reference
                    for label, imat in (("noimat", None), ("imat", im)):
                        t = median_time(lambda: _iqrs.quantize_into(x, name, imat, qbuf), qruns, warmup=0 if slow else 1)
                        v = x.size / t
                        r = ref.get(f"quantize_{label}_{th}")
                        print(f"  quantize {label:<6} {th}T: {v / 1e6:9.2f} Mw/s   ref {r / 1e6 if r else float('nan'):8.2f}   {ratio(v, r)}")
                if q is None:
                    q = _iqrs.quantize(x, name, im)
                if "dequantize" in only:
                    out = np.empty((qrows, 4096), np.float32)  # decoded into one buffer, as the reference does
                    t = median_time(lambda: _iqrs.dequantize_into(q, name, qrows, 4096, out), max(args.runs, 7))
                    v = qrows * 4096 * 4 / t / 1e9
                    r = ref.get(f"dequantize_{th}")
                    print(f"  dequantize    {th}T: {v:9.2f} GB/s  ref {r or float('nan'):8.2f}   {ratio(v, r)}")
                if "matvec" in only:
                    v = matvec_cold(q, name, qrows, y, 4 if args.quick else None, args.runs)
                    r = ref.get(f"matvec_{th}")
                    bw = bandwidth[th]
                    print(f"  mat-vec cold  {th}T: {v:9.2f} GB/s  ref {r or float('nan'):8.2f}   {ratio(v, r)}   "
                          f"({100 * v / bw:.0f}% of the {bw:.1f} GB/s read bandwidth measured above)")
                if "matmat" in only:
                    v = matmat(q, name, qrows, 64 if args.quick else 512, 3)
                    r = ref.get(f"matmat_{th}")
                    print(f"  mat-mat x{64 if args.quick else 512:<4} {th}T: {v:9.1f} GFLOP/s ref {r or float('nan'):8.1f}   {ratio(v, r)}")
    finally:
        iqrs.set_num_threads(saved)
    return 0


def run_r4_vs_base(args: argparse.Namespace) -> int:
    """Each _R4 type against its base type, the same weights (the base bytes repacked), W =
    14336x4096: cold mat-vec GB/s and mat-mat x512 GFLOP/s, medians of ``--runs`` rounds in
    which the two are called alternately."""
    pairs = [(t.name[:-3], t.name) for t in iqrs.types() if t.name.endswith("_r4")]
    if args.types:
        wanted = {iqrs.type_info(t).name for t in args.types.split(",")}
        pairs = [p for p in pairs if wanted & set(p)]
    threads = [int(t) for t in args.threads.split(",")]
    rows, cols, n = 14336, 4096, args.columns
    x, im = gaussian_outliers(4096, cols, 0xA4C40000)
    y = np.random.default_rng(7).standard_normal((1, cols)).astype(np.float32)
    xs = np.random.default_rng(11).standard_normal((n, cols)).astype(np.float32)
    print(f"iqrs {iqrs.__version__} bench --r4-vs-base — ISA {iqrs.get_isa()}, {time.strftime('%Y-%m-%d %H:%M')}; "
          f"W {rows}x{cols}, mat-mat x{n}, median of {args.runs} alternating rounds")
    print(f"{'type':<10} {'thr':>3} {'mat-vec base':>13} {'_r4':>8} {'r4/base':>8} {'mat-mat base':>13} {'_r4':>8} {'r4/base':>8}")
    saved = iqrs.get_num_threads()
    try:
        for base, r4 in pairs:
            qb = _iqrs.quantize(x, base, im)
            wb = np.tile(qb.reshape(4096, -1), (rows // 4096 + 1, 1))[:rows].reshape(-1)
            wr = _iqrs.repack(wb, base, r4, rows, cols)
            copies = 4 if args.quick else max(2, -(-768_000_000 // wb.size))
            cold = {base: [wb.copy() for _ in range(copies)], r4: [wr.copy() for _ in range(copies)]}
            for th in threads:
                iqrs.set_num_threads(th)
                mv: dict = {base: [], r4: []}
                mm: dict = {base: [], r4: []}
                for _ in range(args.runs + 1):
                    for name in (base, r4):
                        for w in cold[name]:
                            t0 = time.perf_counter()
                            _iqrs.matmul(w, name, rows, cols, y)
                            mv[name].append(w.size / (time.perf_counter() - t0) / 1e9)
                        t0 = time.perf_counter()
                        _iqrs.matmul(cold[name][0], name, rows, cols, xs)
                        mm[name].append(2 * rows * cols * n / (time.perf_counter() - t0) / 1e9)
                med = {k: statistics.median(v[len(cold[k]):]) for k, v in mv.items()}  # first round: warm-up
                mmed = {k: statistics.median(v[1:]) for k, v in mm.items()}
                print(f"{r4:<10} {th:>2}T {med[base]:9.2f} GB/s {med[r4]:8.2f} {med[r4] / med[base]:7.2f}x "
                      f"{mmed[base]:7.1f} GFLOP/s {mmed[r4]:8.1f} {mmed[r4] / mmed[base]:7.2f}x")
    finally:
        iqrs.set_num_threads(saved)
    return 0


def matmat(q: np.ndarray, name: str, qrows: int, cols: int, runs: int) -> float:
    """GFLOP/s of a 14336x4096 weight matrix times ``cols`` activation vectors (their Q8_K
    quantization included), as the reference's PP measurement."""
    rows = 14336
    w = np.tile(q.reshape(qrows, -1), (-(-rows // qrows), 1))[:rows].reshape(-1)
    x = np.random.default_rng(11).standard_normal((cols, 4096)).astype(np.float32)
    t = median_time(lambda: _iqrs.matmul(w, name, rows, 4096, x), runs)
    return 2 * rows * 4096 * cols / t / 1e9


def matvec_cold(q: np.ndarray, name: str, qrows: int, y: np.ndarray, copies: Optional[int], runs: int) -> float:
    """GB/s of weights read by a 14336x4096 mat-vec, each call on the next of several copies."""
    rows = 14336
    row_bytes = q.size // qrows
    reps = -(-rows // qrows)
    w = np.tile(q.reshape(qrows, row_bytes), (reps, 1))[:rows].reshape(-1)
    if copies is None:
        copies = max(2, -(-768_000_000 // w.size))
    ws = [w.copy() for _ in range(copies)]
    i = 0

    def call() -> None:
        nonlocal i
        _iqrs.matmul(ws[i % copies], name, rows, 4096, y)
        i += 1

    t = median_time(call, max(runs, copies), warmup=copies)
    return w.size / t / 1e9


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m iqrs.bench", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
