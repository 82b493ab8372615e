"""``python -m iqrs.bench_gguf``: speed and memory of ``iqrs quantize`` on a BF16 model.

Synthesizes a BF16 GGUF model with the tensor shapes of Llama-3-8B transformer layers (attention
4096x4096 and 1024x4096, FFN 14336x4096 and 4096x14336, norms; 218 M weights, 0.44 GB per layer)
and gaussian-with-outliers weights, then quantizes it to each type (the whole ``iqrs quantize``
path: mmap read, BF16 decode, quantize, streaming write to a temporary file, rename) and reports
tensors/s, weights/s and peak memory: the resident set of the process and its anonymous part (the
memory iqrs allocates, excluding file pages mapped from the model). The reference's per-type
speed (``ggml_quantize_chunk`` alone, same machine class) is shown beside it.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from typing import Dict, Iterator, List, Tuple

import numpy as np

import iqrs

from . import _legacy, convert, gguf
from ._anchors import REFERENCE

LAYER = [
    ("attn_norm.weight", (4096,)),
    ("attn_q.weight", (4096, 4096)),
    ("attn_k.weight", (1024, 4096)),
    ("attn_v.weight", (1024, 4096)),
    ("attn_output.weight", (4096, 4096)),
    ("ffn_norm.weight", (4096,)),
    ("ffn_gate.weight", (14336, 4096)),
    ("ffn_up.weight", (14336, 4096)),
    ("ffn_down.weight", (4096, 14336)),
]


def _chunks(shape: Tuple[int, ...], seed: int, rows_per_chunk: int = 1024) -> Iterator[np.ndarray]:
    """BF16 bytes of a gaussian-with-outliers tensor, generated chunk by chunk."""
    rng = np.random.default_rng(seed)
    if len(shape) == 1:
        yield _legacy.encode("bf16", (1 + 0.1 * rng.standard_normal(shape[0])).astype(np.float32))
        return
    rows, cols = shape
    for r in range(0, rows, rows_per_chunk):
        n = min(rows_per_chunk, rows - r)
        s = rng.uniform(0.01, 0.1, size=(n, 1)).astype(np.float32)
        x = s * rng.standard_normal((n, cols), dtype=np.float32)
        x[rng.uniform(size=(n, cols)) < 0.005] *= 8
        yield _legacy.encode("bf16", x)


def make_bf16_model(path: str, layers: int) -> int:
    """Write the synthetic model; returns its number of weights."""
    fields = {"general.architecture": "llama", "general.name": "iqrs bench (synthetic)", "general.file_type": gguf.MetaValue(gguf.ValueType.UINT32, 32)}
    specs = [(f"blk.{i}.{n}", s) for i in range(layers) for n, s in LAYER]
    with gguf.GGUFWriter(path, fields) as w:
        for n, s in specs:
            w.add_tensor_info(n, s, "bf16")
        for k, (n, s) in enumerate(specs):
            w.write_tensor(n, _chunks(s, k))
    return sum(int(np.prod(s)) for _, s in specs)


class MemorySampler:
    """Samples this process's resident memory (/proc/self/status) every few milliseconds."""

    def __init__(self, period: float = 0.02) -> None:
        self.period = period
        self.peak: Dict[str, int] = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read() -> Dict[str, int]:
        """Current VmRSS / RssAnon / RssFile in bytes."""
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile"):
                    out[k] = int(v.split()[0]) * 1024
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            for k, v in self.read().items():
                self.peak[k] = max(self.peak[k], v)
            time.sleep(self.period)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(args: argparse.Namespace) -> int:
    names = [iqrs.type_info(t).name for t in args.types.split(",")]
    if args.threads:
        iqrs.set_num_threads(args.threads)
    th = iqrs.get_num_threads()
    tmp = tempfile.mkdtemp(prefix="iqrs-bench-", dir=args.dir)
    src = os.path.join(tmp, "model-bf16.gguf")
    t0 = time.perf_counter()
    n = make_bf16_model(src, args.layers)
    print(f"synthetic BF16 model: {args.layers} layer(s), {len(LAYER) * args.layers} tensors, {n / 1e6:.1f} M weights, "
          f"{os.path.getsize(src) / 2**30:.2f} GiB (written in {time.perf_counter() - t0:.1f} s); {th} threads, ISA {iqrs.get_isa()}")
    base = MemorySampler.read()
    print(f"baseline memory: RSS {base['VmRSS'] / 2**20:.0f} MiB, anonymous {base['RssAnon'] / 2**20:.0f} MiB")
    rows: List[str] = []
    for name in names:
        dst = os.path.join(tmp, f"model-{name}.gguf")
        c0 = os.times()
        with MemorySampler() as mem:
            rep = convert.quantize_model(src, dst, name)
        c1 = os.times()
        cpu = (c1.user - c0.user) + (c1.system - c0.system)
        nq = sum(p.action == "quantize" for p in rep.plans)
        wps = rep.weights_processed / rep.seconds
        ref = REFERENCE.get(name, {})
        ref_t, ref_1 = ref.get(f"quantize_noimat_{th}"), ref.get("quantize_noimat_1")

        def vs(v: float, r: "float | None") -> str:
            return f"ref {r / 1e6:8.2f}, {v / r:5.2f}x" if r else "ref      n/a"

        rows.append(
            f"{name:<9} {rep.seconds:7.2f} s {nq / rep.seconds:7.3f} tensors/s {wps / 1e6:8.2f} Mw/s ({vs(wps, ref_t)})  "
            f"CPU {cpu:7.1f} s: {rep.weights_processed / cpu / 1e6:7.2f} Mw per CPU-s ({vs(rep.weights_processed / cpu, ref_1)})  "
            f"peak RSS {mem.peak['VmRSS'] / 2**20:5.0f} MiB (anonymous +{(mem.peak['RssAnon'] - base['RssAnon']) / 2**20:.0f} MiB), "
            f"output {os.path.getsize(dst) / 2**20:.0f} MiB"
        )
        print(rows[-1], flush=True)
        os.unlink(dst)
    print(f"process max RSS (getrusage): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if not args.keep:
        os.unlink(src)
        os.rmdir(tmp)
    else:
        print(f"kept {src}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m iqrs.bench_gguf", description=__doc__.split("\n\n")[0])
    p.add_argument("--types", default="iq4_ks", help="comma-separated types (default: iq4_ks)")
    p.add_argument("--layers", type=int, default=1, help="transformer layers of the synthetic model (default 1: 0.44 GB)")
    p.add_argument("--threads", type=int, help="threads (default: all cores)")
    p.add_argument("--dir", help="where to put the model (default: the system's temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the synthetic model")
    return run(p.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
