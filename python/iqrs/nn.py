"""PyTorch modules with quantized weights (needs PyTorch).

::

    >>> layer = iqrs.nn.Linear.from_linear(model.fc, "iq4_kss")   # quantize an nn.Linear
    >>> layer = layer.cuda()                                       # bytes move like any buffer
    >>> y = layer(x)                                               # x on the same device
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from ._qtensor import QTensor, quantize, type_info
from .cuda import CudaQTensor, linear

__all__ = ["Linear"]


class Linear(torch.nn.Module):
    """``y = x · Wᵀ + b`` with ``W`` stored quantized (inference only: no gradients).

    The quantized bytes are the buffer ``qweight`` (1-D ``torch.uint8``), so ``.to()``,
    ``.cuda()`` and ``state_dict()`` handle them like any tensor; the bias, if any, is a
    parameter. On a GPU the product runs through :func:`iqrs.linear`; on the CPU through
    :class:`QTensor` (activations quantized to Q8_K, as ik_llama.cpp's CPU backend does).

    Args:
        weight: the quantized weight, ``(out_features, in_features)``: a :class:`QTensor` or a
            :class:`~iqrs.cuda.CudaQTensor`.
        bias: optional tensor of ``out_features`` values.
    """

    qweight: torch.Tensor

    def __init__(self, weight: Any, bias: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        if isinstance(weight, QTensor):
            data = torch.from_numpy(np.array(weight.data))
        elif isinstance(weight, CudaQTensor):
            data = weight.data
        else:
            raise TypeError(f"weight must be a QTensor or a CudaQTensor, got {type(weight).__name__}")
        self.qtype = weight.type
        self.out_features, self.in_features = weight.shape
        self.register_buffer("qweight", data)
        if bias is not None:
            if tuple(bias.shape) != (self.out_features,):
                raise ValueError(f"bias must have shape ({self.out_features},), got {tuple(bias.shape)}")
            self.bias = torch.nn.Parameter(bias.detach().clone(), requires_grad=False)
        else:
            self.register_parameter("bias", None)

    @classmethod
    def from_linear(cls, linear_layer: torch.nn.Linear, type: str, imatrix: Any = None) -> "Linear":
        """Quantize a ``torch.nn.Linear`` to ``type`` (its ``in_features`` must be a multiple of
        256); the result sits on the layer's device. ``imatrix``: one importance weight per input
        feature (see :func:`iqrs.quantize`)."""
        if not isinstance(linear_layer, torch.nn.Linear):
            raise TypeError(f"expected a torch.nn.Linear, got {builtins_type(linear_layer).__name__}")
        w = linear_layer.weight.detach()
        q = quantize(w.to(device="cpu", dtype=torch.float32).numpy(), type, imatrix=imatrix)
        layer = cls(q, linear_layer.bias)
        return layer.to(w.device)

    def quantized_weight(self) -> Any:
        """The quantized weight as a :class:`QTensor` (CPU) or :class:`~iqrs.cuda.CudaQTensor`
        (GPU), sharing this module's bytes."""
        info = type_info(self.qtype)
        shape = (self.out_features, self.in_features)
        if self.qweight.device.type == "cuda":
            return CudaQTensor._wrap(self.qweight, info, shape)
        return QTensor._wrap(self.qweight.numpy(), info, shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device != self.qweight.device:
            raise ValueError(f"input is on {x.device} but the layer is on {self.qweight.device}; move one of them (.to())")
        w = self.quantized_weight()
        if isinstance(w, CudaQTensor):
            return linear(x, w, self.bias)
        x2 = x.detach().reshape(-1, self.in_features)
        y = (w @ x2.t()).t().to(x.dtype)  # QTensor @ torch CPU tensor → torch tensor (rows, n)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, type={self.qtype}, bias={self.bias is not None}"


builtins_type = type  # `type` is shadowed by a parameter above
