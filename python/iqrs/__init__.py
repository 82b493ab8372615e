"""iqrs — ik_llama.cpp's IQK weight-quantization formats for Python.

Quantize a matrix, inspect and decode it, multiply with it::

    >>> import numpy as np, iqrs
    >>> w = np.random.default_rng(0).standard_normal((64, 512)).astype(np.float32)
    >>> q = iqrs.quantize(w, "iq4_kss")
    >>> q
    QTensor(type='iq4_kss', shape=(64, 512), bpw=4.0625, nbytes=16640)
    >>> y = q @ np.ones(512, dtype=np.float32)   # weights · Q8_K(x), as ik_llama.cpp computes it
    >>> y.shape
    (64,)

Every format is bit-compatible with ik_llama.cpp: ``q.to_bytes()`` is exactly what a GGUF file
stores for the tensor, and bytes written by ik_llama.cpp decode to exactly its floats.
:mod:`iqrs.gguf` reads and writes whole GGUF models, :mod:`iqrs.imatrix` importance matrices;
the ``iqrs`` command quantizes models (``iqrs quantize --help``).

On NVIDIA GPUs (PyTorch tensors): ``q.cuda()``, :func:`iqrs.linear`, ``iqrs.nn.Linear`` — see
:mod:`iqrs.cuda`.
"""

from __future__ import annotations

from typing import Any

from . import _iqrs, cuda
from ._qtensor import QTensor, TypeInfo, quantize, type_info, types
from . import gguf, imatrix  # noqa: E402  (GGUF files and importance matrices; need the above)
from .cuda import CudaQTensor, linear

__version__: str = _iqrs.__version__

__all__ = [
    "CudaQTensor",
    "QTensor",
    "TypeInfo",
    "available_isas",
    "cuda",
    "get_isa",
    "gguf",
    "imatrix",
    "get_num_threads",
    "linear",
    "quantize",
    "set_isa",
    "set_num_threads",
    "type_info",
    "types",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # iqrs.nn needs PyTorch: imported on first use, so `import iqrs` does not.
    if name == "nn":
        import importlib

        return importlib.import_module(".nn", __name__)
    raise AttributeError(f"module 'iqrs' has no attribute {name!r}")


def get_num_threads() -> int:
    """Number of threads iqrs uses (default: all cores, or ``IQRS_NUM_THREADS``)."""
    return _iqrs.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads for all later operations (``n >= 1``)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _iqrs.set_num_threads(n)


def get_isa() -> str:
    """The CPU instruction set in use: ``"scalar"``, ``"avx2"`` or ``"avx512"``."""
    return _iqrs.get_isa()


def set_isa(name: str) -> str:
    """Force an instruction set for all later operations (also: env ``IQRS_ISA``).

    Every ISA gives bit-identical results; this exists to test and compare them. An ISA the
    CPU lacks falls back to the best one it has; the ISA in force is returned.
    """
    return _iqrs.set_isa(name)


def available_isas() -> list[str]:
    """Instruction sets this CPU can run, weakest first."""
    return list(_iqrs.available_isas())
