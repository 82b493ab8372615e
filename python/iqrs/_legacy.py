"""ggml's non-IQK tensor types in numpy: decoders for the float types, the 32-weight legacy
formats and the k-quants a source model may contain, and encoders for the few plain types
``iqrs quantize`` can write besides the IQK ones (F32, F16, BF16, Q8_0).

Layouts are ggml's (``ggml-common.h``); the arithmetic reproduces ``dequantize_row_*`` of
``ggml-quants.c`` bit for bit: every scale product there is exact in float32 (an f16 scale has 11
significant bits, a sub-block scale at most 8, a quant at most 6), so the only rounding is the one
of the final multiply or add — and the reference's FMA contraction of ``d*q + m`` (gcc,
``-march=native``) rounds the same exact value once, as the plain float32 operations here do.

Every decoder takes the raw bytes of whole blocks (a 1-D uint8 array) and returns float32 values
in storage order.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

__all__ = ["DECODERS", "ENCODERS", "decode", "encode"]


def _blocks(raw: np.ndarray, nbytes: int) -> np.ndarray:
    """The bytes as a ``(nblocks, nbytes)`` uint8 matrix (no copy)."""
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    if raw.size % nbytes:
        raise ValueError(f"{raw.size} bytes are not a whole number of {nbytes}-byte blocks")
    return raw.reshape(-1, nbytes)


def _f16(b: np.ndarray, at: int) -> np.ndarray:
    """The little-endian f16 at byte ``at`` of every block, as a float32 column."""
    return np.ascontiguousarray(b[:, at : at + 2]).view("<f2").astype(np.float32)


def _u32(b: np.ndarray, at: int) -> np.ndarray:
    """The little-endian u32 at byte ``at`` of every block, as a uint32 column."""
    return np.ascontiguousarray(b[:, at : at + 4]).view("<u4")


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """Low nibbles of ``qs[..., j]`` then high nibbles: ggml's order for 32-weight blocks."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _high_bits(qh: np.ndarray, n: int) -> np.ndarray:
    """Bit ``j`` of the u32 column ``qh`` for j = 0..n-1, as a (nblocks, n) uint8 matrix."""
    return ((qh >> np.arange(n, dtype=np.uint32)) & 1).astype(np.uint8)


def decode_f16(raw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(raw).view("<f2").astype(np.float32)


def decode_bf16(raw: np.ndarray) -> np.ndarray:
    u = np.ascontiguousarray(raw).view("<u2").astype(np.uint32) << 16
    return u.view(np.float32)


def decode_q4_0(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 18)
    q = _nibbles(b[:, 2:18]).astype(np.int8) - np.int8(8)
    return (q.astype(np.float32) * _f16(b, 0)).reshape(-1)


def decode_q4_1(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 20)
    q = _nibbles(b[:, 4:20]).astype(np.float32)
    return (q * _f16(b, 0) + _f16(b, 2)).reshape(-1)


def decode_q5_0(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 22)
    q = _nibbles(b[:, 6:22]) | (_high_bits(_u32(b, 2), 32) << 4)
    return ((q.astype(np.float32) - 16) * _f16(b, 0)).reshape(-1)


def decode_q5_1(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 24)
    q = _nibbles(b[:, 8:24]) | (_high_bits(_u32(b, 4), 32) << 4)
    return (q.astype(np.float32) * _f16(b, 0) + _f16(b, 2)).reshape(-1)


def decode_q8_0(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 34)
    return (b[:, 2:34].view(np.int8).astype(np.float32) * _f16(b, 0)).reshape(-1)


def _shifts2(n: int) -> np.ndarray:
    return (2 * np.arange(n, dtype=np.uint8)).reshape(1, 1, n, 1, 1)


def decode_q2_k(raw: np.ndarray) -> np.ndarray:
    # 16 sub-blocks of 16; weight 128h + 32j + 16k + l = bits 2j of qs[32h + 16k + l], scale 8h + 2j + k.
    b = _blocks(raw, 84)
    sc = b[:, 0:16].reshape(-1, 2, 4, 2, 1)
    qs = b[:, 16:80].reshape(-1, 2, 1, 2, 16)
    q = ((qs >> _shifts2(4)) & 3).astype(np.float32)
    dl = _f16(b, 80).reshape(-1, 1, 1, 1, 1) * (sc & 0x0F).astype(np.float32)
    ml = _f16(b, 82).reshape(-1, 1, 1, 1, 1) * (sc >> 4).astype(np.float32)
    return (dl * q - ml).reshape(-1)


def _q3_k_scales(s: np.ndarray) -> np.ndarray:
    """The 16 6-bit scales of Q3_K (12 packed bytes), minus 32."""
    lo, mid, hi = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    out = np.concatenate(
        [
            (lo & 0x0F) | (((hi >> 0) & 3) << 4),
            (mid & 0x0F) | (((hi >> 2) & 3) << 4),
            (lo >> 4) | (((hi >> 4) & 3) << 4),
            (mid >> 4) | (((hi >> 6) & 3) << 4),
        ],
        axis=1,
    )
    return out.astype(np.int8) - np.int8(32)


def decode_q3_k(raw: np.ndarray) -> np.ndarray:
    # Weight 128h + 32j + 16k + l: low bits 2j of qs[32h + 16k + l], high bit (4h + j) of
    # hmask[16k + l] (clear: subtract 4), scale 8h + 2j + k.
    b = _blocks(raw, 110)
    hm = b[:, 0:32].reshape(-1, 1, 1, 2, 16)
    qs = b[:, 32:96].reshape(-1, 2, 1, 2, 16)
    sc = _q3_k_scales(b[:, 96:108]).reshape(-1, 2, 4, 2, 1).astype(np.float32)
    low = ((qs >> _shifts2(4)) & 3).astype(np.int8)
    bit = (np.arange(8, dtype=np.uint8).reshape(1, 2, 4, 1, 1))
    high = ((hm >> bit) & 1).astype(np.int8)
    q = (low - 4 * (1 - high)).astype(np.float32)
    dl = _f16(b, 108).reshape(-1, 1, 1, 1, 1) * sc
    return (dl * q).reshape(-1)


def _k4_scales_mins(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 6-bit scales and 8 6-bit mins of Q4_K/Q5_K (12 packed bytes)."""
    a, m, c = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    scales = np.concatenate([a & 63, (c & 0x0F) | ((a >> 6) << 4)], axis=1)
    mins = np.concatenate([m & 63, (c >> 4) | ((m >> 6) << 4)], axis=1)
    return scales.astype(np.float32), mins.astype(np.float32)


def _k4_apply(b: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``d*scale*q - dmin*min`` for 8 sub-blocks of 32; ``q`` is (nblocks, 8, 32)."""
    sc, mn = _k4_scales_mins(b[:, 4:16])
    dl = (_f16(b, 0) * sc)[:, :, None]
    ml = (_f16(b, 2) * mn)[:, :, None]
    return (dl * q - ml).reshape(-1)


def decode_q4_k(raw: np.ndarray) -> np.ndarray:
    # Sub-block 2i takes the low nibbles of qs[32i:32i+32], sub-block 2i+1 the high nibbles.
    b = _blocks(raw, 144)
    qs = b[:, 16:144].reshape(-1, 4, 1, 32)
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=2).reshape(-1, 8, 32)
    return _k4_apply(b, q.astype(np.float32))


def decode_q5_k(raw: np.ndarray) -> np.ndarray:
    # As Q4_K, plus bit s of qh[l] as the 5th bit of weight l of sub-block s.
    b = _blocks(raw, 176)
    qs = b[:, 48:176].reshape(-1, 4, 1, 32)
    low = np.concatenate([qs & 0x0F, qs >> 4], axis=2).reshape(-1, 8, 32)
    qh = b[:, 16:48].reshape(-1, 1, 32)
    high = (qh >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)) & 1
    return _k4_apply(b, (low | (high << 4)).astype(np.float32))


def decode_q6_k(raw: np.ndarray) -> np.ndarray:
    # Half h, quarter c, l < 32: weight 128h + 32c + l; low 4 bits from ql[64h + 32(c%2) + l]
    # (nibble c//2), high 2 bits from qh[32h + l] bits 2c; scale 8h + 2c + l//16.
    b = _blocks(raw, 210)
    ql = b[:, 0:128].reshape(-1, 2, 1, 2, 32)
    qh = b[:, 128:192].reshape(-1, 2, 1, 1, 32)
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=2).reshape(-1, 2, 4, 32)
    high = (qh.reshape(-1, 2, 1, 32) >> (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)) & 3
    q = ((low | (high << 4)).astype(np.int8) - np.int8(32)).astype(np.float32).reshape(-1, 2, 4, 2, 16)
    sc = b[:, 192:208].view(np.int8).astype(np.float32).reshape(-1, 2, 4, 2, 1)
    d = _f16(b, 208).reshape(-1, 1, 1, 1, 1)
    return ((d * sc) * q).reshape(-1)


def decode_f32(raw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(raw).view("<f4")


def decode_f64(raw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(raw).view("<f8").astype(np.float32)


#: Decoders by ggml type name (lower case).
DECODERS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "f32": decode_f32,
    "f16": decode_f16,
    "bf16": decode_bf16,
    "f64": decode_f64,
    "q4_0": decode_q4_0,
    "q4_1": decode_q4_1,
    "q5_0": decode_q5_0,
    "q5_1": decode_q5_1,
    "q8_0": decode_q8_0,
    "q2_k": decode_q2_k,
    "q3_k": decode_q3_k,
    "q4_k": decode_q4_k,
    "q5_k": decode_q5_k,
    "q6_k": decode_q6_k,
}


def encode_f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype="<f4").view(np.uint8).reshape(-1)


def encode_f16(x: np.ndarray) -> np.ndarray:
    """Round to nearest even, as F16C / ``ggml_fp32_to_fp16`` do."""
    return np.ascontiguousarray(x, dtype=np.float32).astype("<f2").view(np.uint8).reshape(-1)


def encode_bf16(x: np.ndarray) -> np.ndarray:
    """ggml's float → bf16: round to nearest even; NaN stays a (quiet) NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).reshape(-1)
    rounded = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    out = np.where(nan, (u >> 16) | 64, rounded).astype("<u2")
    return out.view(np.uint8)


def encode_q8_0(x: np.ndarray) -> np.ndarray:
    """``quantize_row_q8_0_ref``: d = amax/127, q = roundf(x * (1/d)) (ties away from zero)."""
    v = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)
    d = np.abs(v).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    p = (v * inv).astype(np.float64)  # the float32 product, rounded like roundf below (exactly)
    q = (np.sign(p) * np.floor(np.abs(p) + 0.5)).astype(np.int8)
    out = np.empty((v.shape[0], 34), dtype=np.uint8)
    out[:, 0:2] = d.astype("<f2").view(np.uint8)
    out[:, 2:] = q.view(np.uint8)
    return out.reshape(-1)


#: Encoders (float32 values → bytes) of the plain types ``iqrs quantize`` can write.
ENCODERS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "f32": encode_f32,
    "f16": encode_f16,
    "bf16": encode_bf16,
    "q8_0": encode_q8_0,
}


def decode(type_name: str, raw: np.ndarray) -> np.ndarray:
    """Decode whole blocks of ``type_name`` to float32 values (storage order)."""
    return DECODERS[type_name.lower()](raw)


def encode(type_name: str, x: np.ndarray) -> np.ndarray:
    """Encode float32 values (a whole number of blocks) as ``type_name`` bytes."""
    return ENCODERS[type_name.lower()](x)
