"""GPU support: quantized weights in GPU memory, decoded and multiplied on PyTorch CUDA tensors.

::

    >>> import torch, iqrs
    >>> cq = iqrs.quantize(w, "iq4_kss").cuda()              # CudaQTensor on cuda:0
    >>> y = iqrs.linear(x, cq)                               # x: (..., cols) float32/16 or bfloat16
    >>> cq.dequantize(torch.bfloat16)                        # (rows, cols) on the GPU

``iqrs.linear`` computes ``x · Wᵀ`` (as ``torch.nn.functional.linear``): for up to 5-8 activation
vectors (by type) with mat-vec kernels on the quantized bytes (activations quantized to Q8_1 —
blocks of 32 with an f32 scale — on the GPU, exact integer dot products per block); up to 32 with
the quantized matrix multiply (W decoded to int8 in registers, int8 tensor-core products on
activations quantized with one scale per 128 values); for more, by decoding W to bfloat16 and a
cuBLAS GEMM with float32 accumulation (:func:`auto_method` says which). All work is queued on
PyTorch's current stream; outputs are PyTorch tensors, nothing goes through the host. No autograd.

``import iqrs`` never needs a GPU, CUDA libraries or PyTorch; this module's functions that touch
tensors import PyTorch when called.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Tuple

import numpy as np

from . import _iqrs
from ._qtensor import QTensor, TypeInfo

__all__ = ["CudaQTensor", "auto_method", "build_info", "device_count", "device_info", "is_available", "linear"]

_METHODS = ("auto", "mmv", "mmq", "fused", "gemm_bf16", "gemm_f16")


def is_available() -> bool:
    """Whether iqrs can run on a GPU here: built with CUDA kernels, a driver and a device."""
    return bool(_iqrs.cuda_status()[0])


def device_count() -> int:
    """Number of usable CUDA devices (0 without a GPU or without CUDA support in this build)."""
    return int(_iqrs.cuda_device_count())


def device_info(device: Any = 0) -> Dict[str, Any]:
    """Facts about a GPU: ``name``, ``compute_capability``, ``total_memory``, ``multiprocessors``,
    ``l2_cache_bytes``, ``driver_version`` and ``kernels`` (``"sm_90"`` when the library holds
    machine code for it, else how it runs).

    Raises:
        RuntimeError: no usable GPU (the message says why) or no CUDA support in this build.
    """
    ok, why = _iqrs.cuda_status()
    if not ok:
        raise RuntimeError(why)
    return dict(_iqrs.cuda_device_info(_device_index(device)))


def build_info() -> Dict[str, Any]:
    """How the GPU kernels were built: ``compiled`` (bool), ``nvcc`` ("13.0") and ``archs``
    (the ``sm_XX`` with machine code; newer GPUs compile the PTX of the newest at load time)."""
    compiled, (major, minor), archs = _iqrs.cuda_build_info()
    return {"compiled": bool(compiled), "nvcc": f"{major}.{minor}" if compiled else None, "archs": [f"sm_{a}" for a in archs]}


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("iqrs's GPU API works on PyTorch tensors: pip install torch") from None
    return torch


def _device_index(device: Any) -> int:
    if isinstance(device, bool):
        raise TypeError("device must be an int, 'cuda', 'cuda:N' or a torch.device")
    if isinstance(device, int):
        index = device
    else:
        torch = _torch()
        try:
            d = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"not a device: {device!r} ({e})") from None
        if d.type != "cuda":
            raise ValueError(f"not a CUDA device: {device!r}")
        index = d.index if d.index is not None else torch.cuda.current_device()
    if index < 0:
        raise ValueError(f"device index must be >= 0, got {index}")
    return index


_DTYPE_NAMES: Dict[Any, str] = {}


def _dtype_name(dtype: Any, what: str) -> str:
    if not _DTYPE_NAMES:
        torch = _torch()
        _DTYPE_NAMES.update({torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"})
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        raise TypeError(f"{what} must be torch.float32, torch.float16 or torch.bfloat16, got {dtype}")
    return name


def _stream(device_index: int) -> int:
    """PyTorch's current stream on a device, as a CUstream address."""
    torch = _torch()
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)  # skips making a Stream object
    return int(raw(device_index)) if raw is not None else int(torch.cuda.current_stream(device_index).cuda_stream)


def _check_out(out: Any, shape: Tuple[int, ...], dtype: Any, device: Any) -> None:
    torch = _torch()
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype or out.device != device or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {dtype} tensor of shape {tuple(shape)} on {device}, got {out.dtype} {tuple(out.shape)} on {out.device}"
                         + ("" if out.is_contiguous() else " (not contiguous)"))


class CudaQTensor:
    """A quantized ``(rows, cols)`` matrix in GPU memory, in ik_llama.cpp's byte layout.

    Made by :meth:`QTensor.cuda`. The bytes live in a ``torch.uint8`` CUDA tensor (:attr:`data`),
    so PyTorch's allocator, streams and ``.to()`` apply to them as to any tensor.
    """

    __slots__ = ("_data", "_info", "_shape")

    def __init__(self) -> None:  # pragma: no cover - use QTensor.cuda()
        raise TypeError("create a CudaQTensor with QTensor.cuda()")

    @classmethod
    def _wrap(cls, data: Any, info: TypeInfo, shape: Tuple[int, int]) -> "CudaQTensor":
        torch = _torch()
        rows, cols = int(shape[0]), int(shape[1])
        if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8 or data.device.type != "cuda" or data.dim() != 1 or not data.is_contiguous():
            raise ValueError("the bytes of a CudaQTensor must be a contiguous 1-D torch.uint8 CUDA tensor")
        if data.numel() != rows * info.row_size(cols):
            raise ValueError(f"{data.numel()} bytes do not hold a {info.name} tensor of shape {(rows, cols)} ({rows * info.row_size(cols)} bytes)")
        self = object.__new__(cls)
        self._data = data
        self._info = info
        self._shape = (rows, cols)
        return self

    @classmethod
    def from_qtensor(cls, q: QTensor, device: Any = 0) -> "CudaQTensor":
        """Copy a :class:`QTensor`'s bytes to a GPU (same as ``q.cuda(device)``)."""
        ok, why = _iqrs.cuda_status()
        if not ok:
            raise RuntimeError(why)
        torch = _torch()
        index = _device_index(device)
        with warnings.catch_warnings():  # the numpy bytes are read-only; they are only copied
            warnings.simplefilter("ignore", UserWarning)
            host = torch.from_numpy(q.data)
        return cls._wrap(host.to(torch.device("cuda", index)), q.type_info, q.shape)

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
    def device(self) -> Any:
        """The ``torch.device`` holding the bytes."""
        return self._data.device

    @property
    def data(self) -> Any:
        """The bytes: a 1-D ``torch.uint8`` CUDA tensor (no copy)."""
        return self._data

    @property
    def nbytes(self) -> int:
        """Size of the quantized data in bytes."""
        return int(self._data.numel())

    @property
    def bpw(self) -> float:
        """Bits per weight: ``8 * nbytes / (rows * cols)``."""
        return 8.0 * self.nbytes / (self._shape[0] * self._shape[1])

    def __len__(self) -> int:
        return self._shape[0]

    def __repr__(self) -> str:
        return f"CudaQTensor(type={self.type!r}, shape={self.shape}, bpw={self.bpw:.4f}, device='{self.device}')"

    # -- moves -----------------------------------------------------------------------------
    def cpu(self) -> QTensor:
        """The same tensor in host memory, as a :class:`QTensor` (bytes unchanged)."""
        arr = np.ascontiguousarray(self._data.cpu().numpy())
        return QTensor._wrap(arr, self._info, self._shape)

    def cuda(self, device: Any = 0) -> "CudaQTensor":
        """This tensor on another GPU (itself if it is there already)."""
        torch = _torch()
        target = torch.device("cuda", _device_index(device))
        return self if self._data.device == target else CudaQTensor._wrap(self._data.to(target), self._info, self._shape)

    # -- compute ---------------------------------------------------------------------------
    def dequantize(self, dtype: Any = None, *, out: Any = None) -> Any:
        """Decode to a ``(rows, cols)`` CUDA tensor of ``dtype`` (torch.float32 by default,
        torch.float16 or torch.bfloat16). float32 is bit-identical to :meth:`QTensor.dequantize`;
        the 16-bit types are those values rounded to nearest-even. ``out``: a tensor to write into."""
        torch = _torch()
        dtype = torch.float32 if dtype is None else dtype
        name = _dtype_name(dtype, "dtype")
        if out is None:
            out = torch.empty(self._shape, dtype=dtype, device=self.device)
        else:
            _check_out(out, self._shape, dtype, self.device)
        index = self.device.index
        rows, cols = self._shape
        _iqrs.cuda_dequantize(self._info.name, rows, cols, self._data.data_ptr(), index, out.data_ptr(), name, _stream(index))
        return out

    def __matmul__(self, x: Any) -> Any:
        """``W @ x`` for a CUDA tensor ``x`` of shape ``(cols,)`` → ``(rows,)`` or ``(cols, n)`` →
        ``(rows, n)`` (a transposed view of :func:`linear`'s result), in x's dtype."""
        torch = _torch()
        if not isinstance(x, torch.Tensor):
            return NotImplemented
        rows, cols = self._shape
        if x.dim() == 1:
            return linear(x, self)
        if x.dim() == 2:
            if x.shape[0] != cols:
                raise ValueError(f"cq @ x: the matrix has {cols} columns but x has shape {tuple(x.shape)}; expected ({cols},) or ({cols}, n)")
            return linear(x.t(), self).t()
        raise ValueError(f"cq @ x: x must have shape ({cols},) or ({cols}, n), got {tuple(x.shape)}")

    def matmul(self, x: Any) -> Any:
        """``self @ x``; see :meth:`__matmul__`."""
        return self.__matmul__(x)


def auto_method(qtype: str, n: int, shape: Tuple[int, int] = (4096, 4096), device: Any = None) -> str:
    """The path ``linear(..., method="auto")`` takes for ``n`` activation vectors of type
    ``qtype``: ``"mmv"``, ``"mmq"``, ``"fused"`` or ``"gemm_bf16"`` (each measured fastest there).

    Args:
        qtype: the weights' type.
        n: activation vectors.
        shape: ``(rows, cols)`` of the weights (the fused kernel's range depends on their size).
        device: the GPU (an int, ``"cuda:N"`` or a ``torch.device``); by default the current one
            where a GPU is available, else the paths of a GPU without warpgroup MMA (no fused
            kernel: only compute capability 9.0 has it).

    >>> iqrs.cuda.auto_method("iq4_ks", 1), iqrs.cuda.auto_method("iq4_ks", 16), iqrs.cuda.auto_method("iq4_ks", 512)
    ('mmv', 'mmq', 'gemm_bf16')
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if len(shape) != 2 or any(not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1 for v in shape):
        raise ValueError(f"shape must be (rows, cols) of positive integers, got {shape!r}")
    if device is None and is_available():
        device = _torch().cuda.current_device()
    index = None if device is None else _device_index(device)
    return _iqrs.cuda_auto_method(qtype, int(n), int(shape[0]), int(shape[1]), index)


def linear(x: Any, weight: CudaQTensor, bias: Any = None, *, out: Any = None, method: str = "auto") -> Any:
    """``x · Wᵀ (+ bias)`` like ``torch.nn.functional.linear``, with quantized weights on a GPU.

    Args:
        x: CUDA tensor of shape ``(..., cols)``, float32, float16 or bfloat16, on the weights' device.
        weight: the :class:`CudaQTensor` ``W`` of shape ``(rows, cols)``.
        bias: optional tensor of ``rows`` values, added in x's dtype.
        out: optional contiguous tensor of shape ``(..., rows)`` and x's dtype to write into.
        method: ``"auto"`` (mat-vec for up to 4-8 vectors by type, the quantized matrix
            multiply up to 32 (64 for some types), on compute capability 9.0 the fused kernel up
            to 128 or 256 by the matrix's size, else bf16 GEMM: :func:`auto_method`), or force
            ``"mmv"`` (Q8_1 activations, dp4a), ``"mmq"`` (int8 activations with one scale per
            128 values, W decoded to int8 in registers, int8 tensor-core products), ``"fused"``
            (W decoded tile by tile into shared memory as bf16, bf16 tensor-core products; on
            compute capability 9.0 by warpgroup MMA, its warpgroups specialized into decoders
            and multipliers), ``"gemm_bf16"`` or ``"gemm_f16"`` (W dequantized in slabs,
            cuBLAS). Only the GEMM paths hold a dequantized copy of W.

    Returns:
        A tensor of shape ``(..., rows)`` with x's dtype and device.
    """
    torch = _torch()
    if not isinstance(weight, CudaQTensor):
        raise TypeError(f"weight must be a CudaQTensor (QTensor.cuda()), got {type(weight).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
    rows, cols = weight._shape
    data = weight._data
    device = data.device
    if x.device != device:
        raise ValueError(f"x is on {x.device} but the weights are on {device}")
    name = _dtype_name(x.dtype, "x")
    shape = x.shape
    if len(shape) == 0 or shape[-1] != cols:
        raise ValueError(f"x must have shape (..., {cols}), got {tuple(shape)}")
    if bias is not None and (not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (rows,)):
        raise ValueError(f"bias must be a tensor of shape ({rows},)")
    lead = tuple(shape[:-1])
    x2 = x if len(shape) == 2 else x.reshape(-1, cols)
    if not x2.is_contiguous():
        x2 = x2.contiguous()
    n = x2.shape[0]
    if out is None:
        out = torch.empty(lead + (rows,), dtype=x.dtype, device=device)
    else:
        _check_out(out, lead + (rows,), x.dtype, device)
    index = device.index
    _iqrs.cuda_linear(weight._info.name, rows, cols, data.data_ptr(), index, x2.data_ptr(), name, n, out.data_ptr(), _stream(index), method)
    if bias is not None:
        out.add_(bias.to(device=out.device, dtype=out.dtype))
    return out
