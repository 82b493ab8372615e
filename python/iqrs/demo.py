"""``iqrs demo``: quantize the bundled sample matrix to every type and show what each costs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

import iqrs


def load_sample() -> tuple[np.ndarray, np.ndarray]:
    """The bundled sample: a 256 x 4096 float16 weight matrix (heavy-tailed, per-row and
    per-channel scales, a few outlier channels) and its per-column importance matrix."""
    with np.load(Path(__file__).with_name("data") / "sample.npz") as z:
        return z["weight"].astype(np.float32), z["imatrix"]


def weighted_rmse(x: np.ndarray, q: np.ndarray, w: Optional[np.ndarray]) -> float:
    """``sqrt(Σ w_j (x_ij - q_ij)² / Σ w_j)`` over all rows (w = 1 without an imatrix)."""
    err = (x.astype(np.float64) - q.astype(np.float64)) ** 2
    if w is None:
        return float(np.sqrt(err.mean()))
    w = w.astype(np.float64)
    return float(np.sqrt((err * w).sum() / (w.sum() * x.shape[0])))


def run(types: Optional[Sequence[str]] = None, use_imatrix: bool = True) -> int:
    x, imatrix = load_sample()
    im = imatrix if use_imatrix else None
    names = [iqrs.type_info(t).name for t in types] if types else [t.name for t in iqrs.types()]
    rms = float(np.sqrt((x.astype(np.float64) ** 2).mean()))
    print(f"iqrs {iqrs.__version__} — sample matrix {x.shape[0]}x{x.shape[1]}, "
          f"{'with' if im is not None else 'without'} imatrix, ISA {iqrs.get_isa()}, {iqrs.get_num_threads()} threads")
    y = np.random.default_rng(1).standard_normal(x.shape[1]).astype(np.float32)
    header = f"{'type':<10} {'id':>4} {'bpw':>7} {'rmse':>10} {'rel':>7} {'w-rmse':>10} {'quantize':>12} {'dequant':>10} {'mat-vec':>10}"
    print(header)
    print("-" * len(header))
    for name in names:
        t0 = time.perf_counter()
        q = iqrs.quantize(x, name, imatrix=im)
        tq = time.perf_counter() - t0
        td = float("inf")
        for _ in range(3):  # best of 3: the first call also pays for faulting in a fresh array
            t0 = time.perf_counter()
            d = q.dequantize()
            td = min(td, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(5):
            q @ y
        tm = (time.perf_counter() - t0) / 5
        rmse = weighted_rmse(x, d, None)
        wr = weighted_rmse(x, d, im)
        info = q.type_info
        print(f"{name:<10} {info.ggml_id:>4} {q.bpw:>7.4f} {rmse:>10.3e} {rmse / rms:>7.4f} {wr:>10.3e} "
              f"{x.size / tq / 1e6:>7.2f} Mw/s {d.nbytes / td / 1e9:>5.2f} GB/s {q.nbytes / tm / 1e9:>5.2f} GB/s")
    print("rel = rmse / rms(x); w-rmse weights columns by the imatrix; dequant: GB/s of float32 written (best of 3); "
          "mat-vec: GB/s of quantized weights read (hot cache).")
    return 0
