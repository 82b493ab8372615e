"""``python -m iqrs.bench_cuda``: GPU speed of ``iqrs.linear`` and GPU dequantization, beside
cuBLAS bf16 in the same run and the reference's numbers on an H100 (``_anchors.GPU_H100_US``).

Protocol (the anchors'): W of 14336x4096 and 28672x8192, N = 1, 8, 512, 4096 float32 activation
columns (quantized to Q8_1, or converted to bf16, inside the timed call); median of >= 20 calls,
each timed with CUDA events, after warm-up. W is gaussian data with 0.5% outliers quantized by
iqrs (512 rows, repeated). "cold": each call reads the next of several copies of W that together
exceed 4x the L2 cache, so no call finds W in L2 (the 14336x4096 matrices fit in an H100's L2).
cuBLAS bf16 is ``torch.nn.functional.linear`` on bf16 W and x of the same shape. For N <= 8 the
"graph" column replays the same calls from a CUDA graph: GPU time without the host's launch
overhead (Python, PyTorch and driver calls, ~20-40 µs a call), which bounds small mat-vecs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable, Dict, List, Optional

import iqrs

from ._anchors import GPU_H100_COPY_GBPS, GPU_H100_US
from .bench import gaussian_outliers

SHAPES = [(14336, 4096), (28672, 8192)]
NS = [1, 8, 512, 4096]


def cuda_median_us(torch: Any, calls: List[Callable[[], object]], iters: int, warmup: int) -> float:
    """Median time in µs of `iters` calls, cycling through `calls`, each timed with events."""
    for i in range(max(warmup, len(calls))):
        calls[i % len(calls)]()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for i in range(iters):
        starts[i].record()
        calls[i % len(calls)]()
        ends[i].record()
    torch.cuda.synchronize()
    return 1000.0 * statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


def graph_median_us(torch: Any, calls: List[Callable[[], object]], iters: int) -> Optional[float]:
    """Median µs per call when `calls` (one after the other) are replayed from a CUDA graph."""
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for f in calls:
                f()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, capture_error_mode="relaxed"):
            for f in calls:
                f()
        return cuda_median_us(torch, [g.replay], iters, 2) / len(calls)
    except RuntimeError as e:  # capture unsupported here: report it, keep benchmarking
        print(f"  (graph capture failed: {e})")
        return None


def make_weights(torch: Any, name: str, rows: int, cols: int, copies: int) -> List[Any]:
    """`copies` CudaQTensors of shape (rows, cols): 512 quantized gaussian rows, repeated."""
    base = 512
    x, _ = gaussian_outliers(base, cols, 0xC0DA + cols)
    q = iqrs.quantize(x, name)
    rb = q.type_info.row_size(cols)
    one = q.cuda().data.view(base, rb).repeat((rows + base - 1) // base, 1)[:rows].reshape(-1).contiguous()
    ws = [one] + [one.clone() for _ in range(copies - 1)]
    return [iqrs.CudaQTensor._wrap(w, q.type_info, (rows, cols)) for w in ws]


def run(args: argparse.Namespace) -> int:
    import torch

    if not iqrs.cuda.is_available():
        print("iqrs.bench_cuda: no usable GPU:", iqrs._iqrs.cuda_status()[1])
        return 1
    dev = iqrs.cuda.device_info(0)
    names = args.types.split(",") if args.types else [t.name for t in iqrs.types()]
    ns = [int(v) for v in args.n.split(",")]
    iters = max(20, args.iters)
    l2 = dev["l2_cache_bytes"]
    print(f"iqrs {iqrs.__version__} bench_cuda — {dev['name']} ({dev['multiprocessors']} SMs, L2 {l2 >> 20} MiB, kernels {dev['kernels']}, "
          f"driver {dev['driver_version']}), torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}; median of {iters} calls; x and out {args.dtype}; "
          f"reference = ik_llama.cpp 8337e4cd3 on an H100 (gpu_h100.md)")
    results: List[Dict[str, Any]] = []
    torch.manual_seed(0)
    for rows, cols in SHAPES:
        # cuBLAS bf16 on unquantized weights of the same shape, in this run.
        wb = torch.randn(rows, cols, device="cuda", dtype=torch.bfloat16)
        cublas: Dict[int, float] = {}
        for n in ns:
            xb = torch.randn(n, cols, device="cuda", dtype=torch.bfloat16)
            cublas[n] = cuda_median_us(torch, [lambda: torch.nn.functional.linear(xb, wb)], iters, 3)
        wb = xb = None  # free them before the quantized runs
        print(f"\nW {rows}x{cols}; cuBLAS bf16: " + ", ".join(f"N={n} {cublas[n]:.1f} µs" for n in ns))
        print(f"{'type':<9} {'N':>5} {'path':<9} {'µs':>9} {'rate':>14} {'ref µs':>9} {'vs ref':>7} {'/cuBLAS':>8}")
        for name in names:
            nbytes = rows * iqrs.type_info(name).row_size(cols)
            copies = max(1, min(8, -(-4 * l2 // nbytes)))
            ws = make_weights(torch, name, rows, cols, copies)
            ref = GPU_H100_US.get(name, {}).get((rows, cols), {})
            out_deq = torch.empty(rows, cols, device="cuda", dtype=torch.bfloat16)
            t = cuda_median_us(torch, [lambda w=w: w.dequantize(torch.bfloat16, out=out_deq) for w in ws], iters, 3)
            print(f"{name:<9} {'-':>5} {'dequant':<9} {t:9.1f} {rows * cols * 2 / t / 1e3:9.0f} GB/s   (bf16 written; W read {nbytes / t / 1e3:.0f} GB/s)")
            results.append({"type": name, "rows": rows, "cols": cols, "op": "dequantize_bf16", "us": t})
            for n in ns:
                xdt = getattr(torch, args.dtype)
                x = torch.randn(n, cols, device="cuda", dtype=xdt)
                out = torch.empty(n, rows, device="cuda", dtype=xdt)
                methods = ["auto"]
                if args.paths:  # every path that applies, side by side
                    methods += (["mmv"] if n <= 32 else []) + (["mmq"] if n <= 256 else []) + (["fused", "gemm_bf16"] if n >= 8 else [])
                for method in methods:
                    calls = [lambda w=w: iqrs.linear(x, w, out=out, method=method) for w in ws]
                    t = cuda_median_us(torch, calls, iters, 3)
                    rate = f"{nbytes / t / 1e3:9.0f} GB/s" if n <= 8 else f"{2 * rows * cols * n / t / 1e6:7.1f} TFLOP/s"
                    r = ref.get(n)
                    vs = f"{r / t:6.2f}x" if r and method == "auto" else "      "
                    tg = graph_median_us(torch, calls, iters) if n <= 8 and method == "auto" else None
                    graph = f"   graph {tg:7.1f} µs {nbytes / tg / 1e3:5.0f} GB/s" + (f" {r / tg:5.2f}x" if r else "") if tg else ""
                    print(f"{name:<9} {n:>5} {method:<9} {t:9.1f} {rate:>14} {r if r else float('nan'):9.1f} {vs} {t / cublas[n]:7.2f}x{graph}")
                    results.append({"type": name, "rows": rows, "cols": cols, "n": n, "method": method, "us": t, "graph_us": tg, "ref_us": r, "cublas_bf16_us": cublas[n]})
            del ws
            torch.cuda.empty_cache()
    print(f"\n(rate: N <= 8 GB/s of quantized W read, the card copies ~{GPU_H100_COPY_GBPS:.0f} GB/s; else TFLOP/s. "
          "vs ref = reference µs / iqrs µs; /cuBLAS = iqrs µs / cuBLAS bf16 µs, lower is better.)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": dev, "iters": iters, "dtype": args.dtype, "results": results}, f, indent=1)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m iqrs.bench_cuda", description=__doc__.split("\n\n")[0])
    p.add_argument("--types", help="comma-separated types (default: all registered)")
    p.add_argument("--n", default=",".join(map(str, NS)), help="activation columns (default 1,8,512,4096)")
    p.add_argument("--iters", type=int, default=30, help="timed calls per measurement (>= 20)")
    p.add_argument("--paths", action="store_true", help="also time each path (mat-vec up to N = 32, mmq up to 256, fused and dequantize + cuBLAS from N = 8) side by side")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="activations and output (default float32, as the reference's f32 activations; bfloat16 is what the cuBLAS column uses)")
    p.add_argument("--json", help="write all numbers to this file")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
