#!/usr/bin/env python3
"""Times variants of the mat-vec kernels (`iqrs_mmv_<type>_<nc>`, nc = 1 to 8) and the bf16
dequantize kernels (`iqrs_dequant_<type>_bf16`) without a Rust build.

A developer's tool for tuning cuda/: the knobs in cuda/kernels.cuh are macros (`IQRS_MMV_*`), so a
variant is a set of `-D` flags. Two steps, because the GPU machine has no Rust and the build
machine no GPU:

    # here: compile every variant's cubins (sm_90) into .lab/
    python scripts/cuda_lab.py build --variant base= --variant u4=-DIQRS_MMV_UNROLL1=4
    # on the GPU machine (cupy, and the iqrs wheel for quantizing the weights):
    python scripts/cuda_lab.py time --types iq4_k,iq3_k [--nc 1,8] [--dequant]

`time` quantizes a 1024 x COLS gaussian matrix with iqrs, tiles it to ROWS rows, rotates launches
over copies larger than 4x the L2, and prints µs and GB/s of weight bytes per variant, type and
number of vectors (with `--dequant` also the bf16 dequantize, GB/s of weights read; median of
the CUDA-event times), and whether each variant's output equals the
first variant's bit for bit (the knobs leave every lane's order of additions alone). `build`
adds its labels to those already in .lab/ (`--clean` starts afresh), so versions of the code
itself compare too: build one under a label, change cuda/, build the other.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / ".lab"
SOURCES = ["k", "ks", "r4", "q8k", "mmq_wide"]  # mmq_wide: the 4-tile mmq kernels of the PLAIN types
# The types whose traits set MMV_ROWS_MANY = 2 (mat-vec rows a warp for 4..8 vectors; kernels.cuh).
ROWS_MANY_2 = {"iq4_k", "iq4_ks", "iq4_kss"}


def find_nvcc() -> str:
    for cand in [os.environ.get("NVCC"), shutil.which("nvcc")]:
        if cand:
            return cand
    import glob

    hits = glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/nvidia/cu13/bin/nvcc"))
    if hits:
        return hits[0]
    sys.exit("cuda_lab: no nvcc (set NVCC, put it on PATH, or run scripts/setup.sh)")


def build(args: argparse.Namespace) -> int:
    nvcc = find_nvcc()
    if args.clean and LAB.exists():
        shutil.rmtree(LAB)
    LAB.mkdir(exist_ok=True)
    index = LAB / "variants.json"
    variants = json.loads(index.read_text()) if index.exists() else []
    for v in args.variant:
        label, _, flags = v.partition("=")
        out = LAB / label
        if out.exists():
            shutil.rmtree(out)
        out.mkdir()
        procs = []
        for src in SOURCES:
            cmd = [nvcc, "-cubin", "-arch=sm_90", "-O3", "-std=c++17", "--expt-relaxed-constexpr", f"-I{ROOT / 'cuda'}",
                   "-DIQRS_LAB", *flags.split(), "-o", str(out / f"{src}.cubin"), str(ROOT / "cuda" / f"{src}.cu")]
            procs.append(subprocess.Popen(cmd))
        if any(p.wait() for p in procs):
            return 1
        variants = [x for x in variants if x["label"] != label] + [{"label": label, "flags": flags}]
        print(f"built {label}: {flags or '(defaults)'}")
    index.write_text(json.dumps(variants))
    return 0


def macro(flags: str, name: str, default: int) -> int:
    for f in flags.split():
        if f.startswith(f"-D{name}="):
            return int(f.split("=", 1)[1])
    return default


def lab_inputs(args: argparse.Namespace):
    """The built variants, each type's kernel file, and a 1024 x COLS gaussian matrix (0.1%
    outliers x8) to quantize, with the generator that made it."""
    import numpy as np

    variants = json.loads((LAB / "variants.json").read_text())
    family = {t: ("r4" if t.endswith("_r4") else "q8k" if t == "q8_k" else "ks" if "_ks" in t or t == "iq2_kl" else "k") for t in args.types.split(",")}
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1024, args.cols)).astype(np.float32)
    x[rng.random(x.shape) < 0.001] *= 8
    return variants, family, rng, x


def median_us(cp, f, grid, block, argv, iters: int) -> float:
    """Median CUDA-event time of `iters` launches of `f`, launch i with the arguments argv(i)."""
    ev = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(iters)]
    for i, (a, b) in enumerate(ev):
        a.record()
        f(grid, block, argv(i))
        b.record()
    b.synchronize()
    return statistics.median(cp.cuda.get_elapsed_time(a, b) * 1e3 for a, b in ev)


def time_variants(args: argparse.Namespace) -> int:
    import cupy as cp
    import numpy as np

    from iqrs import _iqrs

    variants, family, rng, x = lab_inputs(args)
    ncs = [int(n) for n in args.nc.split(",")]
    rows, cols = args.rows, args.cols
    units = cols // 32
    yq = cp.asarray(rng.integers(-127, 128, max(ncs) * units * 32, dtype=np.int8))
    yd = cp.asarray(rng.random(max(ncs) * units, dtype=np.float32) * 0.01 + 0.001)
    l2 = cp.cuda.runtime.getDeviceProperties(0)["l2CacheSize"]
    print(f"W {rows}x{cols}; L2 {l2 >> 20} MiB; median of {args.iters} launches, W rotated over copies > 4x L2")
    print("type        nc" + "".join(f"{v['label']:>16}" for v in variants))
    for t, fam in family.items():
        q = _iqrs.quantize(x, t).reshape(1024, -1)
        w = np.tile(q, (-(-rows // 1024), 1))[:rows]
        nbytes = w.size
        copies = max(2, -(-4 * l2 // nbytes) + 1)
        ws = [cp.asarray(w) for _ in range(copies)]
        row_bytes = q.shape[1]
        for nc in ncs + (["dq"] if args.dequant else []):
            cells, ref = [], None
            for v in variants:
                mod = cp.RawModule(path=str(LAB / v["label"] / f"{fam}.cubin"))
                if nc == "dq":
                    f = mod.get_function(f"iqrs_dequant_{t}_bf16")
                    grid, block = (-(-rows * units // 256),), (256,)
                    out = cp.full(rows * cols, 0x7FC1, dtype=cp.uint16)  # a bf16 NaN: poison
                    argv = lambda i: (ws[i % copies], np.uint64(row_bytes), np.int32(rows), np.int32(units), out)
                else:
                    f = mod.get_function(f"iqrs_mmv_{t}_{nc}")
                    warps = macro(v["flags"], "IQRS_MMV_WARPS", 4)
                    knob, default = ("IQRS_MMV_ROWS1", 1) if nc == 1 else ("IQRS_MMV_ROWS2", 2) if nc <= 3 else ("IQRS_MMV_ROWSN", 4)
                    rpw = 4 if t.endswith("_r4") else 2 if nc >= 4 and t in ROWS_MANY_2 else macro(v["flags"], knob, default)
                    grid, block = (-(-rows // (warps * rpw)),), (32, warps)
                    out = cp.full(nc * rows, np.nan, dtype=cp.float32)
                    argv = lambda i: (ws[i % copies], np.uint64(row_bytes), np.int32(rows), np.int32(units), yq, yd, out, np.int32(0))
                for i in range(copies):
                    f(grid, block, argv(i))
                cp.cuda.Device().synchronize()
                res = cp.asnumpy(out)
                if (res == 0x7FC1).any() if nc == "dq" else np.isnan(res).any():
                    sys.exit(f"{v['label']} {t} nc={nc}: output not fully written")
                res = res.view(np.uint16 if nc == "dq" else np.uint32)
                same = "" if ref is None else ("" if np.array_equal(res, ref) else "!")
                if ref is None:
                    ref = res
                us = median_us(cp, f, grid, block, argv, args.iters)
                cells.append(f"{us:7.1f}/{nbytes / us / 1e3:5.0f}{same:1}")
            print(f"{t:12}{nc:>2}" + "".join(f"{c:>16}" for c in cells), flush=True)
    print("(µs / GB/s of W read; nc dq: the bf16 dequantize; '!' = output differs from the first variant's)")
    return 0


def mmq_perm(cols: int):
    """Source index (logical order) of every byte of an MMQ-layout vector (cuda/mmq.cuh)."""
    import numpy as np

    k = np.arange(cols)
    base, r = k & ~127, k & 127
    t, w, b = r >> 5, (r >> 2) & 7, r & 3  # byte 32t + 4w + b holds word w = 2u + h
    return base + 32 * (w >> 1) + 16 * (w & 1) + 4 * t + b


def mmq_function(cp, label: str, fam: str, name: str):
    """An mmq kernel from its family's module or, if not there, from mmq_wide (kernels.cuh)."""
    for module in (fam, "mmq_wide"):
        try:
            return cp.RawModule(path=str(LAB / label / f"{module}.cubin")).get_function(name)
        except Exception:
            continue
    sys.exit(f"{label}: no kernel {name}")


def time_mmq(args: argparse.Namespace) -> int:
    """Times `iqrs_mmq_<type>_<nt>` per variant and vector count, checks its output against a
    float64 product of the dequantized W and the (un-permuted) int8 activations."""
    import cupy as cp
    import numpy as np

    from iqrs import _iqrs

    variants, family, rng, x = lab_inputs(args)
    types = list(family)
    ns = [int(n) for n in args.nc.split(",")]
    rows, cols = args.rows, args.cols
    units = cols // 32
    nmax = max(ns)
    ylog = rng.integers(-127, 128, (nmax, cols), dtype=np.int8)
    ydh = (rng.random((nmax, units // 4), dtype=np.float32) * 0.01 + 0.001).astype(np.float32)
    perm = mmq_perm(cols)
    yq = cp.asarray(np.ascontiguousarray(ylog[:, perm]))
    yd = cp.asarray(ydh)  # one scale per 128 values (mmq.cuh)
    yf = cp.asarray(ylog.astype(np.float64) * np.repeat(ydh, 128, axis=1))
    l2 = cp.cuda.runtime.getDeviceProperties(0)["l2CacheSize"]
    print(f"mmq: W {rows}x{cols}; median of {args.iters} launches, W rotated over copies > 4x L2")
    print("type        n" + "".join(f"{v['label']:>22}" for v in variants))
    for t in types:
        q = _iqrs.quantize(x, t).reshape(1024, -1)
        wd = cp.asarray(_iqrs.dequantize(q.reshape(-1), t, 1024, cols).astype(np.float64))
        w = np.tile(q, (-(-rows // 1024), 1))[:rows]
        nbytes = w.size
        copies = 1 if args.hot else max(2, -(-4 * l2 // nbytes) + 1)
        ws = [cp.asarray(w) for _ in range(copies)]
        row_bytes = q.shape[1]
        for n in ns:
            ref = cp.asnumpy(yf[:n] @ wd.T)  # n x 1024
            cells = []
            for v in variants:
                nt = next((k for k in (1, 2, 4) if 8 * k >= n), 4)  # kernels::mmq_tiles
                mt = 2  # MMQ_MT in mmq.cuh
                warps = macro(v["flags"], "IQRS_MMQ_WARPS", 4)
                f = mmq_function(cp, v["label"], family[t], f"iqrs_mmq_{t}_{nt}")
                grid, block = (-(-n // (8 * nt)), -(-rows // (16 * mt))), (32, warps)
                out = cp.full(n * rows, np.nan, dtype=cp.float32)
                argv = lambda i: (ws[i % copies], np.uint64(row_bytes), np.int32(rows), np.int32(units), yq, yd, np.int32(n), out, np.int32(0))
                f(grid, block, argv(0))
                cp.cuda.Device().synchronize()
                res = cp.asnumpy(out).reshape(n, rows)
                if np.isnan(res).any():
                    sys.exit(f"{v['label']} {t} n={n}: output not fully written")
                err = max(float(np.abs(res[:, r0:r0 + 1024] - ref[:, : min(1024, rows - r0)]).max()) for r0 in range(0, rows, 1024))
                rel = err / float(np.abs(ref).max())
                us = median_us(cp, f, grid, block, argv, args.iters)
                cells.append(f"{us:7.1f}/{nbytes / us / 1e3:5.0f} {rel:7.1e}")
            print(f"{t:12}{n:>2}" + "".join(f"{c:>22}" for c in cells), flush=True)
    print("(µs / GB/s of W read / max error relative to the largest output)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--variant", action="append", required=True, help="label=nvcc flags (e.g. u4=-DIQRS_MMV_UNROLL1=4)")
    b.add_argument("--clean", action="store_true", help="drop the variants built before")
    t = sub.add_parser("time")
    t.add_argument("--types", required=True)
    t.add_argument("--rows", type=int, default=28672)
    t.add_argument("--cols", type=int, default=8192)
    t.add_argument("--iters", type=int, default=30)
    t.add_argument("--nc", default="1", help="comma-separated vector counts (1 to 8)")
    t.add_argument("--dequant", action="store_true", help="also time the bf16 dequantize kernels ('dq' rows)")
    t.add_argument("--mmq", action="store_true", help="time the quantized matrix multiply for --nc vectors instead")
    t.add_argument("--hot", action="store_true", help="(--mmq) one copy of W, so that it stays in L2 if it fits")
    args = p.parse_args()
    if args.cmd == "build":
        return build(args)
    return time_mmq(args) if args.mmq else time_variants(args)


if __name__ == "__main__":
    sys.exit(main())
