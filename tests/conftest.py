import json
from pathlib import Path

import numpy as np
import pytest

import iqrs

GOLDEN = Path(__file__).parent / "data" / "golden"
TYPES = [t.name for t in iqrs.types()]


def golden_cases():
    """Golden cases (made by ik_llama.cpp itself) of every type iqrs registers."""
    index = json.loads((GOLDEN / "index.json").read_text())
    return [c["dir"] for c in index["cases"] if c["type"] in TYPES]


def read_case(d):
    p = GOLDEN / d
    m = json.loads((p / "manifest.json").read_text())
    f32 = lambda n: np.fromfile(p / n, dtype=np.float32)  # noqa: E731
    case = {
        "manifest": m,
        "type": m["type"],
        "shape": (m["nrows"], m["n_per_row"]),
        "x": f32("input.f32.bin").reshape(m["nrows"], m["n_per_row"]),
        "quant": (p / "quant.bin").read_bytes(),
        "y": f32("y.f32.bin"),
        "y_q8k": (p / "y_q8k.bin").read_bytes(),
        "imatrix": f32("imatrix.f32.bin") if (p / "imatrix.f32.bin").exists() else None,
    }
    deq = "dequant_table.f32.bin" if (p / "dequant_table.f32.bin").exists() else "dequant.f32.bin"
    case["dequant"] = f32(deq).reshape(case["shape"])
    if (p / "dequant_table.f32.bin").exists():
        # dot_exact.f64.bin is the dot of the reference's polynomial decode; iqrs decodes (and
        # multiplies) with the table, so the exact dot is taken over the table decode (IQ6_K).
        case["dot_exact"] = case["dequant"].astype(np.float64) @ q8k_values(case["y"])[0].astype(np.float64)
    elif (p / "dot_exact.f64.bin").exists():
        case["dot_exact"] = np.fromfile(p / "dot_exact.f64.bin", dtype=np.float64)
    return case


def wrmse(x, q, w=None):
    e = (x.astype(np.float64) - q.astype(np.float64)) ** 2
    if w is None:
        return float(np.sqrt(e.mean()))
    w = np.asarray(w, np.float64)
    return float(np.sqrt((e * w).sum() / (w.sum() * x.shape[0])))


def q8k_values(x):
    """The Q8_K-quantized values of activation vectors (rows of x), as the dot products see them."""
    x = np.atleast_2d(np.asarray(x, np.float32))
    return iqrs.quantize(x, "q8_k").dequantize()


@pytest.fixture(autouse=True)
def _restore_isa_and_threads():
    isa, th = iqrs.get_isa(), iqrs.get_num_threads()
    yield
    iqrs.set_isa(isa)
    iqrs.set_num_threads(th)
