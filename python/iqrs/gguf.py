"""GGUF model files: a lazy, memory-mapped reader and a streaming writer (GGUF v3).

Reading::

    >>> m = iqrs.gguf.read("model.gguf")          # parses the header only; tensor data stays on disk
    >>> m.metadata["general.architecture"]
    'llama'
    >>> t = m["blk.0.ffn_down.weight"]            # TensorInfo: name, type, shape (rows, cols), offset
    >>> t.numpy()                                 # F32/F16/... as stored, BF16/Q8_0/k-quants decoded
    >>> m["blk.0.attn_q.weight"].qtensor()        # an IQK tensor as a QTensor (no copy)

Writing, one tensor at a time (peak memory is one tensor, not one model)::

    with iqrs.gguf.GGUFWriter("out.gguf", m.fields) as w:
        for t in m.tensors:
            w.add_tensor_info(t.name, t.shape, t.type_name)
        for t in m.tensors:
            w.write_tensor(t.name, t.data)

The writer puts its output in a temporary file next to the destination and renames it only when
every tensor has been written; a failure or interruption leaves no partial output behind.

Tensor sizes are row-size aware: types that keep a scale at the head of every row (IQ4_KS,
IQ2_KS, ...) take ``row_meta_bytes + blocks * block_bytes`` per row, exactly as ik_llama.cpp lays
them out. The IQK types come from iqrs's registry (:func:`iqrs.types`); the other ggml types a
model file may contain are listed here with their sizes.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import tempfile
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _legacy
from ._qtensor import QTensor, type_info, types

__all__ = [
    "DEFAULT_ALIGNMENT",
    "GGMLType",
    "GGUFError",
    "GGUFFile",
    "GGUFWriter",
    "MetaValue",
    "TensorInfo",
    "ValueType",
    "ggml_type",
    "read",
]

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4

PathLike = Union[str, "os.PathLike[str]"]


class GGUFError(ValueError):
    """A file that is not a valid GGUF file, or a request the file cannot satisfy."""


# --------------------------------------------------------------------------------------------
# ggml types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GGMLType:
    """Storage facts of a ggml tensor type (``ggml_type_traits``).

    Attributes:
        id: the ``enum ggml_type`` value stored in GGUF files.
        name: ggml's name (``"bf16"``, ``"q4_K"``, ``"iq4_ks"``).
        block_size: weights per block (1 for float and integer types).
        block_bytes: bytes per block.
        row_meta_bytes: bytes at the head of every row (IQK row scales), else 0.
        rows_per_group: rows interleaved together (4 for the IQK ``_r4`` types), else 1.
        iqk: True for the types iqrs implements (quantize, dequantize, dot product).
    """

    id: int
    name: str
    block_size: int
    block_bytes: int
    row_meta_bytes: int = 0
    rows_per_group: int = 1
    iqk: bool = False

    def row_size(self, cols: int) -> int:
        """Bytes of one row of ``cols`` values (``ggml_row_size``)."""
        if cols % self.block_size:
            raise GGUFError(f"a {self.name} row of {cols} values is not a whole number of {self.block_size}-value blocks")
        return self.row_meta_bytes + cols // self.block_size * self.block_bytes

    def nbytes(self, shape: Sequence[int]) -> int:
        """Bytes of a tensor of ``shape`` (numpy order: the last axis is the row)."""
        if not shape:
            raise GGUFError("a tensor needs at least one dimension")
        return math.prod(shape[:-1]) * self.row_size(shape[-1])

    @property
    def decodable(self) -> bool:
        """True when :meth:`TensorInfo.dequantize` can decode this type."""
        return self.iqk or self.name.lower() in _legacy.DECODERS

    def __str__(self) -> str:
        return self.name


# The ggml types that are not IQK formats (those come from iqrs's registry): ids, names and sizes
# from ggml.h / ggml.c (type_traits) of ik_llama.cpp. Only storage facts: a model file with these
# can be read, inspected and copied; the ones in _legacy.DECODERS can also be decoded.
_OTHER_TYPES: Tuple[Tuple[int, str, int, int], ...] = (
    (0, "f32", 1, 4),
    (1, "f16", 1, 2),
    (2, "q4_0", 32, 18),
    (3, "q4_1", 32, 20),
    (6, "q5_0", 32, 22),
    (7, "q5_1", 32, 24),
    (8, "q8_0", 32, 34),
    (9, "q8_1", 32, 36),
    (10, "q2_K", 256, 84),
    (11, "q3_K", 256, 110),
    (12, "q4_K", 256, 144),
    (13, "q5_K", 256, 176),
    (14, "q6_K", 256, 210),
    (15, "q8_K", 256, 296),
    (16, "iq2_xxs", 256, 66),
    (17, "iq2_xs", 256, 74),
    (18, "iq3_xxs", 256, 98),
    (19, "iq1_s", 256, 50),
    (20, "iq4_nl", 32, 18),
    (21, "iq3_s", 256, 110),
    (22, "iq2_s", 256, 82),
    (23, "iq4_xs", 256, 136),
    (24, "i8", 1, 1),
    (25, "i16", 1, 2),
    (26, "i32", 1, 4),
    (27, "i64", 1, 8),
    (28, "f64", 1, 8),
    (29, "iq1_m", 256, 56),
    (30, "bf16", 1, 2),
    (39, "mxfp4", 32, 17),
    (133, "q6_0", 32, 26),
)


def _build_type_table() -> Tuple[Dict[int, GGMLType], Dict[str, GGMLType]]:
    by_id = {i: GGMLType(i, n, bs, bb) for i, n, bs, bb in _OTHER_TYPES}
    for t in types():  # the registry wins: iqrs implements these
        by_id[t.ggml_id] = GGMLType(t.ggml_id, t.name, t.block_size, t.block_bytes, t.row_meta_bytes, t.rows_per_group, iqk=True)
    return by_id, {t.name.lower(): t for t in by_id.values()}


_BY_ID, _BY_NAME = _build_type_table()


def ggml_type(t: Union[str, int, GGMLType]) -> GGMLType:
    """The :class:`GGMLType` of a name (case-insensitive) or GGML type id."""
    if isinstance(t, GGMLType):
        return t
    if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
        try:
            return _BY_ID[int(t)]
        except KeyError:
            raise GGUFError(f"unknown GGML type id {int(t)}") from None
    if isinstance(t, str):
        try:
            return _BY_NAME[t.strip().lower()]
        except KeyError:
            raise GGUFError(f"unknown tensor type {t!r}") from None
    raise TypeError(f"a tensor type must be a name or a GGML type id, got {type(t).__name__}")


def _type_or_unknown(type_id: int) -> GGMLType:
    """The type of an id read from a file; unknown ids get a size-less placeholder."""
    return _BY_ID.get(type_id) or GGMLType(type_id, f"type{type_id}", 0, 0)


# --------------------------------------------------------------------------------------------
# metadata values
# --------------------------------------------------------------------------------------------


class ValueType(IntEnum):
    """GGUF metadata value types (``enum gguf_type``)."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


_SCALAR_DTYPE = {
    ValueType.UINT8: np.dtype("<u1"),
    ValueType.INT8: np.dtype("<i1"),
    ValueType.UINT16: np.dtype("<u2"),
    ValueType.INT16: np.dtype("<i2"),
    ValueType.UINT32: np.dtype("<u4"),
    ValueType.INT32: np.dtype("<i4"),
    ValueType.FLOAT32: np.dtype("<f4"),
    ValueType.BOOL: np.dtype("<u1"),
    ValueType.UINT64: np.dtype("<u8"),
    ValueType.INT64: np.dtype("<i8"),
    ValueType.FLOAT64: np.dtype("<f8"),
}
_STRUCT_FMT = {
    ValueType.UINT8: "<B",
    ValueType.INT8: "<b",
    ValueType.UINT16: "<H",
    ValueType.INT16: "<h",
    ValueType.UINT32: "<I",
    ValueType.INT32: "<i",
    ValueType.FLOAT32: "<f",
    ValueType.BOOL: "<B",
    ValueType.UINT64: "<Q",
    ValueType.INT64: "<q",
    ValueType.FLOAT64: "<d",
}
_DTYPE_TO_VT = {v.str: k for k, v in _SCALAR_DTYPE.items() if k != ValueType.BOOL}


@dataclass(frozen=True, eq=False)
class MetaValue:
    """A typed GGUF metadata value.

    ``value`` is a Python int/float/bool/str for scalars; for arrays (``type == ARRAY``) a numpy
    array of ``item_type`` for numeric items, a list of str or bool, or a list of
    :class:`MetaValue` for nested arrays (valid GGUF, but ggml's reader — and so ik_llama.cpp —
    rejects them).
    """

    type: ValueType
    value: Any
    item_type: Optional[ValueType] = None

    def __post_init__(self) -> None:
        if self.type == ValueType.FLOAT32 and isinstance(self.value, (float, int, np.floating)):  # as it will be stored
            object.__setattr__(self, "value", float(np.float32(self.value)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetaValue):
            return NotImplemented
        if (self.type, self.item_type) != (other.type, other.item_type):
            return False
        a, b = self.value, other.value
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return np.array_equal(np.asarray(a), np.asarray(b))
        if self.type in (ValueType.FLOAT32, ValueType.FLOAT64) and isinstance(a, float) and math.isnan(a):
            return isinstance(b, float) and math.isnan(b)
        return bool(a == b)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def of(cls, value: Any) -> "MetaValue":
        """Infer a type for a plain Python value: bool → BOOL, int → INT32 (INT64/UINT64 when
        out of range), float → FLOAT32, str → STRING, sequences and numpy arrays → ARRAY."""
        if isinstance(value, MetaValue):
            return value
        if isinstance(value, (bool, np.bool_)):
            return cls(ValueType.BOOL, bool(value))
        if isinstance(value, (int, np.integer)):
            v = int(value)
            vt = ValueType.INT32 if -(2**31) <= v < 2**31 else ValueType.INT64 if -(2**63) <= v < 2**63 else ValueType.UINT64
            return cls(vt, v)
        if isinstance(value, (float, np.floating)):
            return cls(ValueType.FLOAT32, float(value))
        if isinstance(value, str):
            return cls(ValueType.STRING, value)
        if isinstance(value, np.ndarray):
            if value.dtype == np.bool_:
                return cls(ValueType.ARRAY, [bool(v) for v in value.reshape(-1)], ValueType.BOOL)
            vt = _DTYPE_TO_VT.get(value.dtype.newbyteorder("<").str)
            if vt is None:
                raise GGUFError(f"cannot store a numpy array of dtype {value.dtype} as GGUF metadata")
            return cls(ValueType.ARRAY, value.astype(_SCALAR_DTYPE[vt]).reshape(-1), vt)
        if isinstance(value, (list, tuple)):
            items = [cls.of(v) for v in value]
            kinds = {i.type for i in items}
            if not items:
                return cls(ValueType.ARRAY, [], ValueType.STRING)
            if kinds == {ValueType.STRING}:
                return cls(ValueType.ARRAY, [i.value for i in items], ValueType.STRING)
            if kinds == {ValueType.BOOL}:
                return cls(ValueType.ARRAY, [i.value for i in items], ValueType.BOOL)
            if kinds <= {ValueType.INT32, ValueType.INT64, ValueType.UINT64}:
                vt = ValueType.INT32 if kinds == {ValueType.INT32} else ValueType.INT64
                return cls(ValueType.ARRAY, np.array([i.value for i in items], dtype=_SCALAR_DTYPE[vt]), vt)
            if kinds <= {ValueType.FLOAT32, ValueType.INT32, ValueType.INT64}:
                return cls(ValueType.ARRAY, np.array([i.value for i in items], dtype="<f4"), ValueType.FLOAT32)
            if kinds == {ValueType.ARRAY}:
                return cls(ValueType.ARRAY, items, ValueType.ARRAY)
            raise GGUFError(f"a GGUF array must hold items of one kind, got {sorted(k.name for k in kinds)}")
        raise GGUFError(f"cannot store a {type(value).__name__} as GGUF metadata")

    def plain(self) -> Any:
        """The value as plain Python (arrays of numbers stay numpy arrays)."""
        if self.type == ValueType.ARRAY and self.item_type == ValueType.ARRAY:
            return [v.plain() for v in self.value]
        return self.value


# --------------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------------


class _Cursor:
    """Sequential little-endian reads from a buffer, with truncation reported as GGUFError."""

    def __init__(self, buf: np.ndarray, path: str) -> None:
        self.buf = buf
        self.mv = memoryview(buf)
        self.size = buf.size
        self.pos = 0
        self.path = path

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise GGUFError(f"{self.path}: truncated GGUF file: {what} needs {n} bytes at offset {self.pos}, but the file has {self.size}")

    def scalar(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        (v,) = struct.unpack_from(fmt, self.mv, self.pos)
        self.pos += n
        return v

    def string(self, what: str) -> str:
        n = self.scalar("<Q", what)
        self.need(n, what)
        raw = bytes(self.mv[self.pos : self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GGUFError(f"{self.path}: {what} is not valid UTF-8 ({e})") from None

    def array(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        self.need(count * dtype.itemsize, what)
        a = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).copy()
        self.pos += count * dtype.itemsize
        return a

    def value(self, vt: int, what: str, depth: int = 0) -> MetaValue:
        try:
            vt = ValueType(vt)
        except ValueError:
            raise GGUFError(f"{self.path}: {what} has unknown value type {vt}") from None
        if vt == ValueType.STRING:
            return MetaValue(vt, self.string(what))
        if vt == ValueType.ARRAY:
            it = self.scalar("<I", what)
            n = self.scalar("<Q", what)
            try:
                it = ValueType(it)
            except ValueError:
                raise GGUFError(f"{self.path}: {what} is an array of unknown value type {it}") from None
            if it == ValueType.STRING:
                self.need(8 * n, what)  # every string has at least its length
                return MetaValue(vt, [self.string(what) for _ in range(n)], it)
            if it == ValueType.ARRAY:
                if depth > 8:
                    raise GGUFError(f"{self.path}: {what} nests arrays too deeply")
                self.need(12 * n, what)
                return MetaValue(vt, [self.value(ValueType.ARRAY, what, depth + 1) for _ in range(n)], it)
            a = self.array(_SCALAR_DTYPE[it], n, what)
            if it == ValueType.BOOL:
                return MetaValue(vt, [bool(b) for b in a], it)
            return MetaValue(vt, a, it)
        v = self.scalar(_STRUCT_FMT[vt], what)
        if vt == ValueType.BOOL:
            v = bool(v)
        elif vt in (ValueType.FLOAT32, ValueType.FLOAT64):
            v = float(v)
        return MetaValue(vt, v)


class TensorInfo:
    """One tensor of a GGUF file: name, type, shape and where its bytes are.

    ``shape`` is in numpy order (ggml's ``ne`` reversed): ``(rows, cols)`` for a matrix,
    ``(experts, rows, cols)`` for stacked expert matrices. Nothing is read until asked for.
    """

    __slots__ = ("_file", "name", "type", "shape", "offset")

    def __init__(self, file: "GGUFFile", name: str, type: GGMLType, shape: Tuple[int, ...], offset: int) -> None:
        self._file = file
        self.name = name
        self.type = type
        self.shape = shape
        self.offset = offset  # relative to the start of the data section

    @property
    def type_id(self) -> int:
        """The GGML type id."""
        return self.type.id

    @property
    def type_name(self) -> str:
        """ggml's type name (``"type<id>"`` for an id iqrs does not know)."""
        return self.type.name

    @property
    def ne(self) -> Tuple[int, ...]:
        """ggml's dimensions (``ne[0]`` = values per row)."""
        return tuple(reversed(self.shape))

    @property
    def n_elements(self) -> int:
        """Number of values."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Size of the tensor's data in bytes (row metadata included)."""
        self._need_known()
        return self.type.nbytes(self.shape)

    @property
    def file_offset(self) -> int:
        """Absolute position of the tensor's data in the file."""
        return self._file.data_offset + self.offset

    @property
    def bpw(self) -> float:
        """Bits per weight as stored."""
        return 8.0 * self.nbytes / max(1, self.n_elements)

    def _need_known(self) -> None:
        if self.type.block_size == 0:
            raise GGUFError(f"tensor {self.name!r} has GGML type id {self.type.id}, which iqrs does not know")

    @property
    def data(self) -> np.ndarray:
        """The tensor's bytes as a read-only uint8 array (a view into the memory map, no copy)."""
        return self._file._bytes(self.file_offset, self.nbytes)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """The bytes of rows ``start:stop`` (rows counted over all leading dimensions; no copy)."""
        self._need_known()
        n = math.prod(self.shape[:-1])
        if not 0 <= start <= stop <= n:
            raise GGUFError(f"tensor {self.name!r} has {n} rows; rows {start}:{stop} requested")
        rs = self.type.row_size(self.shape[-1])
        return self._file._bytes(self.file_offset + start * rs, (stop - start) * rs)

    def release(self) -> None:
        """Drop the tensor's pages from this process's resident memory (see
        :meth:`GGUFFile._release`); the data stays readable."""
        if self.type.block_size:
            self._file._release(self.file_offset, self.nbytes)

    def numpy(self) -> np.ndarray:
        """The values as an array of :attr:`shape`: a zero-copy view for F32, F16, F64 and the
        integer types; float32 decoded values for everything else :meth:`dequantize` knows."""
        native = {"f32": "<f4", "f16": "<f2", "f64": "<f8", "i8": "<i1", "i16": "<i2", "i32": "<i4", "i64": "<i8"}
        dt = native.get(self.type.name)
        if dt is not None:
            return self.data.view(dt).reshape(self.shape)
        return self.dequantize()

    def dequantize(self) -> np.ndarray:
        """The values decoded to float32, in :attr:`shape` (F32 data is returned as a view)."""
        return self.decode_rows(0, math.prod(self.shape[:-1])).reshape(self.shape)

    def decode_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (counted over all leading dimensions) decoded to float32, as a
        ``(stop - start, cols)`` matrix. For ``_r4`` types, start and stop must be multiples of 4."""
        self._need_known()
        cols = self.shape[-1]
        if self.type.iqk:
            g = self.type.rows_per_group
            if start % g or stop % g:
                raise GGUFError(f"{self.name}: rows of {self.type.name} are decoded in groups of {g}")
            if stop == start:
                return np.zeros((0, cols), np.float32)
            return QTensor._wrap(self.rows(start, stop), type_info(self.type.name), (stop - start, cols)).dequantize()
        dec = _legacy.DECODERS.get(self.type.name.lower())
        if dec is None:
            raise GGUFError(f"tensor {self.name!r}: iqrs cannot decode type {self.type.name}")
        return dec(self.rows(start, stop)).reshape(stop - start, cols)

    def qtensor(self) -> QTensor:
        """The tensor as a :class:`iqrs.QTensor` (IQK types only; no copy: the QTensor reads the
        memory map). Leading dimensions are flattened into rows: ``(experts * rows, cols)``."""
        if not self.type.iqk:
            raise GGUFError(f"tensor {self.name!r} is {self.type.name}, not a type iqrs implements; use .numpy()")
        rows, cols = math.prod(self.shape[:-1]), self.shape[-1]
        if rows % self.type.rows_per_group or rows == 0:
            raise GGUFError(f"tensor {self.name!r}: {rows} rows are not a positive multiple of {self.type.rows_per_group} ({self.type.name})")
        return QTensor._wrap(self.data, type_info(self.type.name), (rows, cols))

    def __repr__(self) -> str:
        return f"TensorInfo(name={self.name!r}, type={self.type.name!r}, shape={self.shape}, offset={self.offset})"


class GGUFFile:
    """A GGUF file opened by :func:`read`: metadata and tensor infos parsed, data memory-mapped.

    Attributes:
        path: the file's path.
        version: GGUF version (2 or 3).
        alignment: data alignment (``general.alignment``, default 32).
        data_offset: where the data section starts.
        fields: metadata as ``{key: MetaValue}`` in file order (types kept for writing back).
        tensors: the :class:`TensorInfo` of every tensor, in file order.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = str(path)
        try:
            size = os.path.getsize(self.path)
        except OSError as e:
            raise GGUFError(f"{self.path}: {e.strerror or e}") from None
        if size == 0:
            raise GGUFError(f"{self.path}: empty file, not a GGUF file")
        if os.path.isdir(self.path):
            raise GGUFError(f"{self.path}: is a directory, not a GGUF file")
        try:
            with open(self.path, "rb") as f:
                self._mmap: Optional[mmap.mmap] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            self._map: Optional[np.ndarray] = np.frombuffer(self._mmap, dtype=np.uint8)
        except OSError as e:
            raise GGUFError(f"{self.path}: {e.strerror or e}") from None
        cur = _Cursor(self._map, self.path)
        self._parse(cur)

    def _parse(self, cur: _Cursor) -> None:
        if cur.size < 4 or bytes(cur.mv[:4]) != GGUF_MAGIC:
            raise GGUFError(f"{self.path}: not a GGUF file (starts with {bytes(cur.mv[:4])!r}, expected b'GGUF')")
        cur.pos = 4
        self.version = cur.scalar("<I", "the version")
        if self.version not in (2, 3):
            swapped = int.from_bytes(self.version.to_bytes(4, "little"), "big")
            if swapped in (2, 3):
                raise GGUFError(f"{self.path}: a big-endian GGUF file; iqrs reads little-endian files only")
            raise GGUFError(f"{self.path}: GGUF version {self.version} is not supported (2 and 3 are)")
        n_tensors = cur.scalar("<Q", "the tensor count")
        n_kv = cur.scalar("<Q", "the metadata count")
        self.fields: Dict[str, MetaValue] = {}
        for i in range(n_kv):
            key = cur.string(f"metadata key #{i}")
            vt = cur.scalar("<I", f"the type of {key!r}")
            if key in self.fields:
                raise GGUFError(f"{self.path}: duplicate metadata key {key!r}")
            self.fields[key] = cur.value(vt, f"metadata {key!r}")
        al = self.fields.get("general.alignment")
        self.alignment = DEFAULT_ALIGNMENT if al is None else al.value
        if al is not None and (al.type != ValueType.UINT32 or self.alignment <= 0 or self.alignment & (self.alignment - 1)):
            raise GGUFError(f"{self.path}: general.alignment must be a power of two (u32), got {al.value!r}")
        infos = []
        names = set()
        for i in range(n_tensors):
            name = cur.string(f"the name of tensor #{i}")
            n_dims = cur.scalar("<I", f"the dimensions of {name!r}")
            if not 1 <= n_dims <= MAX_DIMS:
                raise GGUFError(f"{self.path}: tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} are valid)")
            ne = [cur.scalar("<Q", f"the shape of {name!r}") for _ in range(n_dims)]
            type_id = cur.scalar("<I", f"the type of {name!r}")
            offset = cur.scalar("<Q", f"the offset of {name!r}")
            if name in names:
                raise GGUFError(f"{self.path}: duplicate tensor name {name!r}")
            names.add(name)
            infos.append((name, tuple(reversed(ne)), type_id, offset))
        self.data_offset = -(-cur.pos // self.alignment) * self.alignment
        self.tensors: List[TensorInfo] = []
        for name, shape, type_id, offset in infos:
            t = TensorInfo(self, name, _type_or_unknown(type_id), shape, offset)
            if offset % self.alignment:
                raise GGUFError(f"{self.path}: tensor {name!r} is at offset {offset}, not a multiple of the alignment {self.alignment}")
            if t.type.block_size:
                if shape[-1] % t.type.block_size:
                    raise GGUFError(f"{self.path}: tensor {name!r} of type {t.type.name} has rows of {shape[-1]} values, not a multiple of {t.type.block_size}")
                end = t.file_offset + t.nbytes
                if end > cur.size:
                    raise GGUFError(
                        f"{self.path}: truncated GGUF file: tensor {name!r} ends at byte {end}, but the file has {cur.size}"
                    )
            self.tensors.append(t)
        self._by_name = {t.name: t for t in self.tensors}

    def _bytes(self, start: int, n: int) -> np.ndarray:
        if self._map is None:
            raise GGUFError(f"{self.path}: the file is closed")
        return self._map[start : start + n]

    def _release(self, start: int, n: int) -> None:
        """Let the kernel drop this process's mapping of bytes ``start:start+n`` (they stay in the
        page cache and are mapped again if touched), so reading a model tensor by tensor keeps
        the resident set at about one tensor."""
        if self._mmap is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        page = mmap.PAGESIZE
        lo, hi = -(-start // page) * page, (start + n) // page * page
        if hi > lo:
            self._mmap.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    # -- access ------------------------------------------------------------------------------
    @property
    def metadata(self) -> Dict[str, Any]:
        """Metadata as plain values ``{key: value}`` (see :attr:`fields` for the types)."""
        return {k: v.plain() for k, v in self.fields.items()}

    def get(self, key: str, default: Any = None) -> Any:
        """A metadata value (plain), or ``default``."""
        v = self.fields.get(key)
        return default if v is None else v.plain()

    def tensor(self, name: str) -> TensorInfo:
        """The tensor called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.path} has no tensor {name!r}") from None

    __getitem__ = tensor

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[TensorInfo]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    @property
    def file_size(self) -> int:
        """Size of the file in bytes."""
        return 0 if self._map is None else int(self._map.size)

    def close(self) -> None:
        """Drop this object's reference to the memory map (arrays handed out keep it alive)."""
        self._map = self._mmap = None

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GGUFFile({self.path!r}, version={self.version}, tensors={len(self.tensors)}, metadata={len(self.fields)})"


def read(path: PathLike) -> GGUFFile:
    """Open a GGUF file (v2 or v3): parse its header and memory-map its data.

    Only the header (metadata and tensor infos) is read; tensor bytes are read from the map when
    asked for. Raises :class:`GGUFError` (a ValueError) for a missing, truncated or invalid file.
    """
    return GGUFFile(path)


# --------------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------------


def _pack_string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _pack_value(v: MetaValue) -> bytes:
    if v.type == ValueType.STRING:
        return _pack_string(str(v.value))
    if v.type == ValueType.ARRAY:
        it = v.item_type
        if it is None:
            raise GGUFError("an array MetaValue needs an item_type")
        items = v.value
        head = struct.pack("<IQ", int(it), len(items))
        if it == ValueType.STRING:
            return head + b"".join(_pack_string(str(s)) for s in items)
        if it == ValueType.ARRAY:
            return head + b"".join(_pack_value(MetaValue.of(x)) for x in items)
        return head + np.asarray(items).astype(_SCALAR_DTYPE[it]).tobytes()
    try:
        if v.type in (ValueType.FLOAT32, ValueType.FLOAT64):
            return np.array(float(v.value), dtype=_SCALAR_DTYPE[v.type]).tobytes()
        return struct.pack(_STRUCT_FMT[v.type], int(v.value))
    except (struct.error, OverflowError):
        raise GGUFError(f"value {v.value!r} does not fit GGUF type {v.type.name}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@dataclass
class _PlannedTensor:
    name: str
    type: GGMLType
    shape: Tuple[int, ...]
    nbytes: int
    offset: int = 0


class GGUFWriter:
    """Writes a GGUF v3 file: metadata and tensor infos first, then tensor data one at a time.

    Declare every tensor with :meth:`add_tensor_info` (its size follows from type and shape), then
    write the data of each, in the same order, with :meth:`write_tensor`. The header is written
    with the first tensor. The file appears at ``path`` only when :meth:`close` (or the end of a
    ``with`` block) finds every tensor written; until then it is a temporary file in the same
    directory, removed on any failure.

    Args:
        path: destination.
        fields: initial metadata (``{key: MetaValue or plain value}``), e.g. ``reader.fields``.
        alignment: data alignment; default: ``general.alignment`` of ``fields``, else 32.
    """

    def __init__(self, path: PathLike, fields: Optional[Mapping[str, Any]] = None, alignment: Optional[int] = None) -> None:
        self.path = Path(path)
        self._tensors: List[_PlannedTensor] = []
        self._next = 0  # index of the next tensor to write
        self._file: Any = None
        self._tmp: Optional[str] = None
        self._closed = True  # until the temporary file exists
        self.fields: Dict[str, MetaValue] = {}
        for k, v in (fields or {}).items():
            self.set(k, v)
        if alignment is not None:
            self.set("general.alignment", MetaValue(ValueType.UINT32, int(alignment)))
        self._open_tmp()
        self._closed = False

    def _open_tmp(self) -> None:
        """Create the temporary output now, so an unwritable destination fails before any work."""
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if self.path.is_dir():
            raise GGUFError(f"{self.path}: is a directory")
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=parent)
        except OSError as e:
            raise GGUFError(f"cannot write {self.path}: {e.strerror or e}") from None
        self._file = os.fdopen(fd, "wb")

    @property
    def alignment(self) -> int:
        """The data alignment in force."""
        v = self.fields.get("general.alignment")
        return DEFAULT_ALIGNMENT if v is None else int(v.value)

    def set(self, key: str, value: Any) -> None:
        """Set a metadata key (a :class:`MetaValue`, or a plain value whose type is inferred)."""
        if self._next:
            raise GGUFError("metadata cannot change once tensor data is being written")
        mv = MetaValue.of(value)
        if key == "general.alignment":
            a = mv.value
            if not isinstance(a, int) or a <= 0 or a & (a - 1):
                raise GGUFError(f"general.alignment must be a power of two, got {a!r}")
            mv = MetaValue(ValueType.UINT32, a)
        self.fields[key] = mv

    def remove(self, key: str) -> None:
        """Remove a metadata key if present."""
        self.fields.pop(key, None)

    def add_tensor_info(self, name: str, shape: Sequence[int], type: Union[str, int, GGMLType]) -> int:
        """Declare a tensor (numpy-order ``shape``); returns its size in bytes."""
        if self._next:
            raise GGUFError("tensor infos cannot be added once tensor data is being written")
        t = ggml_type(type)
        shape = tuple(int(s) for s in shape)
        if not 1 <= len(shape) <= MAX_DIMS or any(s < 0 for s in shape):
            raise GGUFError(f"tensor {name!r}: invalid shape {shape}")
        if any(p.name == name for p in self._tensors):
            raise GGUFError(f"duplicate tensor name {name!r}")
        if t.rows_per_group > 1 and math.prod(shape[:-1]) % t.rows_per_group:
            raise GGUFError(f"tensor {name!r}: {t.name} needs a multiple of {t.rows_per_group} rows, shape is {shape}")
        p = _PlannedTensor(name, t, shape, t.nbytes(shape))
        self._tensors.append(p)
        return p.nbytes

    def _header(self) -> bytes:
        al = self.alignment
        out = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self._tensors), len(self.fields))]
        for k, v in self.fields.items():
            out += [_pack_string(k), struct.pack("<I", int(v.type)), _pack_value(v)]
        offset = 0
        for p in self._tensors:
            p.offset = offset
            ne = tuple(reversed(p.shape))
            out += [_pack_string(p.name), struct.pack("<I", len(ne)), struct.pack(f"<{len(ne)}Q", *ne), struct.pack("<IQ", p.type.id, offset)]
            offset += -(-p.nbytes // al) * al
        head = b"".join(out)
        return head + bytes(-len(head) % al)

    def write_tensor(self, name: str, data: Any) -> None:
        """Write the next tensor's bytes, in the tensor's layout: bytes-like, a numpy array of any
        dtype, or an iterable of such chunks (streamed: only one chunk need exist at a time).
        ``name`` must be the next declared tensor and the total size must match its size."""
        if self._closed:
            raise GGUFError("the writer is closed")
        if self._next >= len(self._tensors):
            raise GGUFError(f"tensor {name!r} was not declared with add_tensor_info")
        p = self._tensors[self._next]
        if p.name != name:
            raise GGUFError(f"tensors must be written in the declared order: expected {p.name!r}, got {name!r}")
        chunks = [data] if isinstance(data, (np.ndarray, bytes, bytearray, memoryview)) else data
        written = 0
        try:
            if self._next == 0:
                self._file.write(self._header())
            for c in chunks:
                buf = memoryview(np.ascontiguousarray(c).reshape(-1).view(np.uint8)) if isinstance(c, np.ndarray) else memoryview(c).cast("B")
                written += buf.nbytes
                if written > p.nbytes:
                    break
                self._file.write(buf)
            if written != p.nbytes:
                more = "+" if written > p.nbytes else ""
                raise GGUFError(f"tensor {name!r}: {written}{more} bytes given, a {p.type.name} tensor of shape {p.shape} has {p.nbytes}")
            self._file.write(bytes(-p.nbytes % self.alignment))
        except OSError as e:
            self.abort()
            raise GGUFError(f"cannot write {self.path}: {e.strerror or e}") from None
        except BaseException:
            self.abort()
            raise
        self._next += 1

    def close(self) -> None:
        """Finish: check every declared tensor was written, then move the file into place."""
        if self._closed:
            return
        if self._next < len(self._tensors):
            missing = self._tensors[self._next].name
            self.abort()
            raise GGUFError(f"{self.path}: not written: tensor {missing!r} and {len(self._tensors) - self._next - 1} more have no data")
        try:
            if not self._tensors:
                self._file.write(self._header())
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self._tmp, 0o666 & ~_umask())  # type: ignore[arg-type]  (mkstemp made it 0600)
            os.replace(self._tmp, self.path)  # type: ignore[arg-type]
        except OSError as e:
            self.abort()
            raise GGUFError(f"cannot write {self.path}: {e.strerror or e}") from None
        self._closed = True

    def abort(self) -> None:
        """Give up: close and remove the temporary file; nothing appears at :attr:`path`."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
        finally:
            if self._tmp and os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def __enter__(self) -> "GGUFWriter":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # an abandoned writer leaves no temporary file behind
        try:
            self.abort()
        except Exception:
            pass
