"""Cross-check with ik_llama.cpp itself (a development check, not part of CI: it needs a build of
ik_llama.cpp's ggml, which CI cannot fetch): write a GGUF file with one tensor of every iqrs type
(quantized by iqrs from the reference's benchmark distribution), load it with ik_llama.cpp's GGUF
reader, decode every tensor with ggml's own type traits, and compare with iqrs's decoding.

    python scripts/ik_llama_check/check.py PATH/TO/ik-check [--rows 64] [--cols 4096]

`ik-check` (ik-check.cpp beside this file, built as CMakeLists.txt there says) loads the file as
ik_llama.cpp's model loader does and decodes each tensor with ggml's type traits. Prints one
line per type; exits non-zero if any type differs (IQ6_K is compared against the reference's own
CPU decoder, which uses a polynomial instead of the table — its difference is reported, not
failed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import iqrs
from iqrs import gguf
from iqrs.bench import gaussian_outliers


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checker", help="the ik-check executable")
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--cols", type=int, default=4096)
    a = p.parse_args()
    x, im = gaussian_outliers(a.rows, a.cols, 0xA4C40000)
    names = [t.name for t in iqrs.types()]
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "all-types.gguf"
        qs = {n: iqrs.quantize(x, n, imatrix=im) for n in names}
        with gguf.GGUFWriter(path, {"general.architecture": "llama", "general.name": "iqrs cross-check"}) as w:
            w.add_tensor_info("reference.f32", x.shape, "f32")
            for n in names:
                w.add_tensor_info(f"{n}.weight", x.shape, n)
            w.write_tensor("reference.f32", x)
            for n in names:
                w.write_tensor(f"{n}.weight", qs[n].data)
        out = subprocess.run([a.checker, str(path), d], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout[-2000:], out.stderr[-2000:])
            print("ik_llama.cpp could not load the file written by iqrs")
            return 1
        listing = [line.split() for line in out.stdout.splitlines()]
        for i, name, type_id, ne0, nrows, decodable in listing:
            t = name[: -len(".weight")] if name.endswith(".weight") else "f32"
            ok = int(type_id) == gguf.ggml_type(t).id
            bad += not ok
            if decodable == "0":
                print(f"{t:<10} ggml type {type_id:>3} {'ok' if ok else 'WRONG ID':<8} loaded; ggml has no CPU decoder for it (an activation type)")
                continue
            ours = x if name == "reference.f32" else qs[name[: -len(".weight")]].dequantize()
            theirs = np.fromfile(Path(d) / f"{i}.f32", np.float32).reshape(int(nrows), int(ne0))
            same = np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))
            note = ""
            if not same:
                diff = float(np.max(np.abs(ours - theirs)))
                note = f"max |difference| {diff:.3g}"
                if t == "iq6_k":
                    note += " (the reference's CPU decoder evaluates a polynomial; FORMATS.md §12)"
                else:
                    bad += 1
            print(f"{t:<10} ggml type {type_id:>3} {'ok' if ok else 'WRONG ID':<8} decoded by ik_llama.cpp: {'bit-identical' if same else note}")
    print("all types load in ik_llama.cpp and decode identically" if not bad else f"{bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
