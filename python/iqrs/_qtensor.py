"""The quantized-tensor type and the conversions around it (the Rust core does the work)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from . import _iqrs

__all__ = ["QTensor", "TypeInfo", "quantize", "type_info", "types"]


@dataclass(frozen=True)
class TypeInfo:
    """Static facts of a quantization type (all sizes as ik_llama.cpp lays tensors out).

    Attributes:
        name: ggml's lower-case name, e.g. ``"iq4_ks"``.
        ggml_id: the ``enum ggml_type`` value stored in GGUF files.
        block_size: weights per block (256 for every IQK type).
        block_bytes: bytes per block of one row.
        row_meta_bytes: bytes at the head of every row (a row scale), 0 if none.
        rows_per_group: rows interleaved together (4 for ``_r4`` types, else 1).
        bpw: nominal bits per weight of the blocks, row metadata excluded.
    """

    name: str
    ggml_id: int
    block_size: int
    block_bytes: int
    row_meta_bytes: int
    rows_per_group: int
    bpw: float

    def row_size(self, cols: int) -> int:
        """Bytes of one row of ``cols`` weights (row metadata included)."""
        return _iqrs.row_size(self.name, cols)


_TYPES = tuple(TypeInfo(*t) for t in _iqrs.types())
_BY_NAME = {t.name: t for t in _TYPES}


def types() -> list[TypeInfo]:
    """Every quantization type iqrs implements (quantize, dequantize and dot product)."""
    return list(_TYPES)


def type_info(name: str) -> TypeInfo:
    """The :class:`TypeInfo` of a type name (case-insensitive)."""
    if not isinstance(name, str):
        raise TypeError(f"type must be a str such as 'iq4_ks', got {type(name).__name__}")
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise ValueError(f"unknown quantization type {name!r}; known types: {known}") from None


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _as_f32(x: Any, what: str, ndim: int) -> np.ndarray:
    """Converts numpy (any float dtype), torch CPU tensors and sequences to contiguous float32."""
    if _is_torch(x):
        if x.device.type != "cpu":
            raise ValueError(f"{what} is a torch tensor on {x.device}; move it to the CPU first (x.cpu())")
        if not x.dtype.is_floating_point:
            raise TypeError(f"{what} must hold floating-point values, got torch {x.dtype}")
        x = x.detach().to(dtype=__import__("torch").float32).contiguous().numpy()
    elif not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{what} must be an array-like of floats: {e}") from None
    if x.dtype.kind != "f":
        if x.dtype.kind in "iub" and x.size == 0:
            x = x.astype(np.float32)
        else:
            raise TypeError(f"{what} must hold floating-point values (float16/32/64), got dtype {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{what} must be {ndim}-D, got shape {tuple(x.shape)}")
    return np.ascontiguousarray(x, dtype=np.float32)


def quantize(x: Any, type: str, *, imatrix: Any = None) -> "QTensor":
    """Quantize a 2-D matrix row by row, exactly as ik_llama.cpp lays the tensor out.

    Args:
        x: ``(rows, cols)`` float matrix: a numpy array (float16/32/64), a torch CPU tensor or a
            nested sequence. ``cols`` must be a multiple of 256; values must be finite.
        type: a type name from :func:`types`, e.g. ``"iq4_kss"``.
        imatrix: optional importance matrix: ``cols`` non-negative weights, one per column (the
            mean squared activation of that input channel). Weighted error is what it minimises.

    Returns:
        A :class:`QTensor`.

    Raises:
        ValueError: bad shape, non-finite values (the message names the first), imatrix of the
            wrong length or with negative values, unknown type.
        TypeError: non-float input.
    """
    info = type_info(type)
    xs = _as_f32(x, "x", 2)
    im = None
    if imatrix is not None:
        im = _as_f32(imatrix, "imatrix", 1)
    data = _iqrs.quantize(xs, info.name, im)
    return QTensor._wrap(data, info, xs.shape)


class QTensor:
    """A quantized ``(rows, cols)`` matrix in ik_llama.cpp's byte layout.

    Create one with :func:`quantize` or :meth:`QTensor.from_bytes`. ``q @ x`` multiplies it with
    float32 activations the way the reference's CPU backend does (x quantized to Q8_K, exact
    integer dot products per block).
    """

    __slots__ = ("_data", "_info", "_shape")
    __array_priority__ = 1000  # so ndarray @ QTensor / QTensor @ ndarray reach us

    def __init__(self) -> None:  # pragma: no cover - use quantize() or from_bytes()
        raise TypeError("create a QTensor with iqrs.quantize() or QTensor.from_bytes()")

    @classmethod
    def _wrap(cls, data: np.ndarray, info: TypeInfo, shape: Sequence[int]) -> "QTensor":
        self = object.__new__(cls)
        data.flags.writeable = False
        self._data = data
        self._info = info
        self._shape = (int(shape[0]), int(shape[1]))
        return self

    @classmethod
    def from_bytes(cls, buf: Union[bytes, bytearray, memoryview, np.ndarray], type: str, shape: Tuple[int, int]) -> "QTensor":
        """Wrap bytes in the reference's layout (e.g. read from a GGUF file) as a QTensor.

        The size must be exactly ``rows * row_size(cols)``; the bytes are copied once.
        """
        info = type_info(type)
        try:
            rows, cols = (int(s) for s in shape)
        except Exception:
            raise ValueError(f"shape must be (rows, cols), got {shape!r}") from None
        if isinstance(buf, np.ndarray):
            arr = np.ascontiguousarray(buf).view(np.uint8).reshape(-1).copy()
        elif isinstance(buf, (bytes, bytearray, memoryview)):
            arr = np.frombuffer(bytes(buf), dtype=np.uint8).copy()
        else:
            raise TypeError(f"buf must be bytes-like or a numpy array, got {builtins_type(buf).__name__}")
        if rows <= 0 or cols <= 0 or cols % info.block_size or rows % info.rows_per_group:
            raise ValueError(
                f"shape {(rows, cols)} is not valid for {info.name}: cols must be a positive multiple of "
                f"{info.block_size}" + (f" and rows a positive multiple of {info.rows_per_group}" if info.rows_per_group > 1 else "")
            )
        expected = rows * info.row_size(cols)
        if arr.size != expected:
            raise ValueError(f"buffer has {arr.size} bytes but a {info.name} tensor of shape {(rows, cols)} needs {expected}")
        return cls._wrap(arr, info, (rows, cols))

    # -- facts -----------------------------------------------------------------------------
    @property
    def type(self) -> str:
        """The type name, e.g. ``"iq4_kss"``."""
        return self._info.name

    @property
    def type_info(self) -> TypeInfo:
        """The :class:`TypeInfo` of this tensor's type."""
        return self._info

    @property
    def shape(self) -> Tuple[int, int]:
        """``(rows, cols)`` of the matrix it represents."""
        return self._shape

    @property
    def nbytes(self) -> int:
        """Size of the quantized data in bytes (row metadata included)."""
        return int(self._data.size)

    @property
    def bpw(self) -> float:
        """Bits per weight actually used: ``8 * nbytes / (rows * cols)``."""
        return 8.0 * self.nbytes / (self._shape[0] * self._shape[1])

    @property
    def data(self) -> np.ndarray:
        """The bytes as a read-only uint8 array (no copy)."""
        return self._data

    def to_bytes(self) -> bytes:
        """The tensor in the reference's byte layout — exactly what a GGUF file stores."""
        return self._data.tobytes()

    # -- compute ---------------------------------------------------------------------------
    def dequantize(self, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Decode to a float32 array of :attr:`shape` (bit-identical to ik_llama.cpp's decode;
        IQ6_K decodes with its value table, see the docs).

        ``out``: an optional C-contiguous, writeable float32 array of :attr:`shape` to decode
        into (no allocation: the fastest way to decode the same shape repeatedly); it is returned.
        """
        rows, cols = self._shape
        if out is None:
            return _iqrs.dequantize(self._data, self._info.name, rows, cols)
        if not isinstance(out, np.ndarray) or out.dtype != np.float32:
            raise TypeError(f"out must be a float32 numpy array, got {type(out).__name__}"
                            + (f" of dtype {out.dtype}" if isinstance(out, np.ndarray) else ""))
        if out.shape != self._shape:
            raise ValueError(f"out has shape {out.shape}, expected {self._shape}")
        if not (out.flags.c_contiguous and out.flags.writeable):
            raise ValueError("out must be C-contiguous and writeable")
        _iqrs.dequantize_into(self._data, self._info.name, rows, cols, out)
        return out

    def repack(self, type: str) -> "QTensor":
        """The same tensor in another layout: a base type's ``_r4`` form (``"iq4_k"`` →
        ``"iq4_k_r4"``) or back. A pure byte shuffle, exact both ways; ``_r4`` needs the number of
        rows to be a multiple of 4.

        Raises:
            ValueError: the types are not a type and its ``_r4`` form, or the rows do not fit.
        """
        info = type_info(type)
        rows, cols = self._shape
        data = _iqrs.repack(self._data, self._info.name, info.name, rows, cols)
        return QTensor._wrap(data, info, self._shape)

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        out = self.dequantize()
        return out if dtype is None else out.astype(dtype)

    def matmul(self, x: Any) -> Any:
        """``self @ x`` for ``x`` of shape ``(cols,)`` or ``(cols, n)``; see :meth:`__matmul__`."""
        return self.__matmul__(x)

    def __matmul__(self, x: Any) -> Any:
        """Multiply by float activations ``x`` of shape ``(cols,)`` → ``(rows,)`` or ``(cols, n)`` →
        ``(rows, n)``, as ik_llama.cpp defines the product: each activation vector is quantized to
        Q8_K and dotted exactly (integer sums per block) with every weight row. A torch CPU tensor
        in gives a torch tensor out."""
        rows, cols = self._shape
        torch_in = _is_torch(x)
        if torch_in or isinstance(x, np.ndarray):
            ndim = x.ndim if not torch_in else x.dim()
        else:
            try:
                x = np.asarray(x)
            except Exception:
                return NotImplemented
            ndim = x.ndim
        if ndim not in (1, 2):
            raise ValueError(f"q @ x: x must have shape ({cols},) or ({cols}, n), got {tuple(x.shape)}")
        xs = _as_f32(x, "x", ndim)
        if xs.shape[0] != cols:
            raise ValueError(f"q @ x: the matrix has {cols} columns but x has shape {xs.shape}; expected ({cols},) or ({cols}, n)")
        if ndim == 1:
            out = _iqrs.matmul(self._data, self._info.name, rows, cols, xs.reshape(1, cols))[:, 0]
        else:
            if xs.shape[1] == 0:
                out = np.zeros((rows, 0), dtype=np.float32)
            else:
                out = _iqrs.matmul(self._data, self._info.name, rows, cols, np.ascontiguousarray(xs.T))
        if torch_in:
            import torch

            return torch.from_numpy(np.ascontiguousarray(out))
        return out

    def cuda(self, device: Any = 0) -> Any:
        """Copy to a GPU: an :class:`iqrs.cuda.CudaQTensor` on ``device`` (an index, ``"cuda:N"``
        or a ``torch.device``) for :func:`iqrs.linear` and GPU dequantization. Needs PyTorch."""
        from .cuda import CudaQTensor

        return CudaQTensor.from_qtensor(self, device)

    def __len__(self) -> int:
        return self._shape[0]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QTensor):
            return NotImplemented
        return self._info == other._info and self._shape == other._shape and np.array_equal(self._data, other._data)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"QTensor(type={self.type!r}, shape={self.shape}, bpw={self.bpw:.4f}, nbytes={self.nbytes})"

    def __reduce__(self):  # pickling: bytes + type + shape
        return (QTensor.from_bytes, (self.to_bytes(), self.type, self.shape))


builtins_type = type  # `type` is shadowed by parameters above
