"""Importance matrices in the two file formats users have, mapped to a model's tensors.

* **Legacy ``.dat``** (ik_llama.cpp's ``llama-imatrix`` writes and reads it): ``i32`` entry count;
  per entry ``i32`` name length, the name, ``i32 ncall``, ``i32 nval``, ``nval`` f32 values (the
  sums of squared activations scaled to ``ncall`` calls); then optionally ``i32`` chunk count,
  ``i32`` dataset-name length and the dataset name. The importance of column ``j`` is
  ``values[j] / ncall``.
* **GGUF imatrix** (mainline llama.cpp): per weight ``<name>.in_sum2`` (f32, ``(n_mat, cols)``:
  sums of squared activations, one row per expert) and ``<name>.counts`` (f32, ``(n_mat, 1)``:
  tokens seen); metadata ``imatrix.datasets``, ``imatrix.chunk_count``, ``imatrix.chunk_size``.
  The importance is ``in_sum2 / counts`` per expert (all ones for an expert that saw no tokens).

Both arrive at one vector per weight tensor: ``cols`` values for a matrix, ``experts * cols`` for
stacked expert matrices, looked up by tensor name as ik_llama.cpp's quantize tool does.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from . import gguf

__all__ = ["Imatrix", "ImatrixEntry", "read", "write_dat", "write_gguf"]


@dataclass
class ImatrixEntry:
    """Raw statistics of one weight tensor.

    Attributes:
        sums: f32 sums of squared activations, ``n_mat * cols`` values (expert-major).
        counts: f32 per-matrix counts (``n_mat`` values), or one count for all (``.dat``'s ncall).
    """

    sums: np.ndarray
    counts: np.ndarray

    @property
    def values(self) -> np.ndarray:
        """The importance per column (f32): ``sums / count`` per matrix. A zero count leaves the
        sums as they are for ``.dat`` (as ik_llama.cpp does) and gives ones for a GGUF expert
        that saw no tokens (as llama.cpp does)."""
        s = self.sums.astype(np.float32).reshape(-1)
        c = self.counts.astype(np.float32).reshape(-1)
        if c.size == 1:
            return s / c[0] if c[0] > 0 else s.copy()
        m = s.reshape(c.size, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(c[:, None] > 0, m / c[:, None], np.float32(1))
        return out.astype(np.float32).reshape(-1)


@dataclass
class Imatrix:
    """An importance matrix: one :class:`ImatrixEntry` per weight tensor, by tensor name.

    Attributes:
        entries: ``{tensor name: ImatrixEntry}`` in file order.
        datasets: names of the calibration data sets.
        chunk_count: calibration chunks processed (0 when unknown).
        chunk_size: tokens per chunk (GGUF imatrix only; 0 when unknown).
        path: the file it was read from, if any.
    """

    entries: Dict[str, ImatrixEntry] = field(default_factory=dict)
    datasets: List[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0
    path: Optional[str] = None

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __getitem__(self, name: str) -> np.ndarray:
        """The importance vector of tensor ``name`` (exact name)."""
        return self.entries[name].values

    def lookup(self, name: str) -> Optional[str]:
        """The entry to use for tensor ``name``, with ik_llama.cpp's substitutions: ``ffn_gate``
        uses ``ffn_up``'s (same input), merged/unmerged expert ``gate_up`` names stand in for each
        other, and ``attn_v_b`` / ``attn_kv_b`` share activations (MLA). None if there is none."""
        if name in self.entries:
            return name
        subs = [
            ("ffn_up_exps.weight", "ffn_gate_up_exps.weight"),
            ("ffn_gate_exps.weight", "ffn_gate_up_exps.weight"),
            ("ffn_gate_exps.weight", "ffn_up_exps.weight"),
            ("ffn_gate_up_exps.weight", "ffn_up_exps.weight"),
            ("ffn_gate.weight", "ffn_up.weight"),
            (".attn_v_b.weight", ".attn_kv_b.weight"),
            (".attn_kv_b.weight", ".attn_v_b.weight"),
        ]
        for a, b in subs:
            pos = name.find(a)
            if pos >= 0:
                alt = name[:pos] + b
                if alt in self.entries:
                    return alt
        return None

    def for_tensor(self, name: str, shape: Sequence[int]) -> Optional[np.ndarray]:
        """The importance of tensor ``name`` of numpy ``shape`` as an ``(n_mat, cols)`` float32
        array (``n_mat`` = experts for 3-D tensors, else 1), or None when the imatrix has no entry.

        Raises:
            ValueError: the entry's length is not ``n_mat * cols`` (an imatrix for another model),
                or it has non-finite or negative values.
        """
        key = self.lookup(name)
        if key is None:
            return None
        cols = int(shape[-1])
        n_mat = math.prod(int(s) for s in shape[:-2])  # stacked experts: one vector each
        v = self.entries[key].values
        if v.size != n_mat * cols:
            what = f"{n_mat} x {cols} = {n_mat * cols}" if n_mat > 1 else f"{cols}"
            src = f" (from {self.path})" if self.path else ""
            via = f" (used for {name!r})" if key != name else ""
            raise ValueError(
                f"imatrix entry {key!r}{via}{src} has {v.size} values but the tensor needs {what}; is the imatrix for another model?"
            )
        if not np.isfinite(v).all():
            raise ValueError(f"imatrix entry {key!r} contains non-finite values")
        if (v < 0).any():
            raise ValueError(f"imatrix entry {key!r} contains negative values")
        return v.reshape(n_mat, cols)


def _entry_values(sums: np.ndarray, counts: np.ndarray) -> ImatrixEntry:
    return ImatrixEntry(np.ascontiguousarray(sums, dtype=np.float32).reshape(-1), np.ascontiguousarray(counts, dtype=np.float32).reshape(-1))


def read(path: "os.PathLike[str] | str") -> Imatrix:
    """Read an importance matrix, ``.dat`` or GGUF (recognized by content, not name).

    Raises:
        ValueError: a truncated or malformed file (the message says which entry), or no entries.
        OSError: the file cannot be opened.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head == gguf.GGUF_MAGIC:
        return _read_gguf(path)
    return _read_dat(path)


def _read_dat(path: str) -> Imatrix:
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt: str, what: str) -> int:
        nonlocal pos
        n = struct.calcsize(fmt)
        if pos + n > len(data):
            raise ValueError(f"{path}: truncated imatrix file: {what} at byte {pos}")
        (v,) = struct.unpack_from(fmt, data, pos)
        pos += n
        return v

    def take_bytes(n: int, what: str) -> bytes:
        nonlocal pos
        if n < 0 or pos + n > len(data):
            raise ValueError(f"{path}: truncated imatrix file: {what} at byte {pos}")
        b = data[pos : pos + n]
        pos += n
        return b

    n_entries = take("<i", "the entry count")
    if n_entries < 1:
        raise ValueError(f"{path}: not an imatrix file (entry count {n_entries})")
    im = Imatrix(path=path)
    for i in range(n_entries):
        length = take("<i", f"the name length of entry {i + 1}")
        if not 0 < length <= 4096:
            raise ValueError(f"{path}: not an imatrix file (entry {i + 1} has a name of {length} bytes)")
        try:
            name = take_bytes(length, f"the name of entry {i + 1}").decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not an imatrix file (entry {i + 1} has a name that is not UTF-8)") from None
        ncall = take("<i", f"the call count of {name!r}")
        nval = take("<i", f"the value count of {name!r}")
        if nval < 1:
            raise ValueError(f"{path}: imatrix entry {name!r} has {nval} values")
        vals = np.frombuffer(take_bytes(4 * nval, f"the values of {name!r}"), dtype="<f4")
        im.entries[name] = _entry_values(vals, np.array([ncall], np.float32))
    if pos < len(data):
        im.chunk_count = take("<i", "the chunk count")
        n = take("<i", "the dataset name length")
        im.datasets = [take_bytes(n, "the dataset name").decode("utf-8", errors="replace")]
    return im


def _read_gguf(path: str) -> Imatrix:
    f = gguf.read(path)
    im = Imatrix(path=path)
    ds = f.get("imatrix.datasets", [])
    im.datasets = [ds] if isinstance(ds, str) else [str(d) for d in ds]
    im.chunk_count = int(f.get("imatrix.chunk_count", 0))
    im.chunk_size = int(f.get("imatrix.chunk_size", 0))
    sums: Dict[str, gguf.TensorInfo] = {}
    counts: Dict[str, gguf.TensorInfo] = {}
    for t in f.tensors:
        if t.name.endswith(".in_sum2"):
            sums[t.name[: -len(".in_sum2")]] = t
        elif t.name.endswith(".counts"):
            counts[t.name[: -len(".counts")]] = t
    if not sums:
        raise ValueError(f"{path}: a GGUF file without imatrix data (no '<name>.in_sum2' tensors)")
    for name, s in sums.items():
        c = counts.get(name)
        if c is None:
            raise ValueError(f"{path}: imatrix entry {name!r} has sums but no counts")
        sv = np.asarray(s.dequantize(), np.float32).reshape(-1)
        cv = np.asarray(c.dequantize(), np.float32).reshape(-1)
        if cv.size == 0 or sv.size % cv.size:
            raise ValueError(f"{path}: imatrix entry {name!r} has {sv.size} sums for {cv.size} counts")
        im.entries[name] = _entry_values(sv, cv)
    return im


def write_dat(path: "os.PathLike[str] | str", im: Imatrix) -> None:
    """Write ``im`` in the legacy ``.dat`` format (read back by ik_llama.cpp and :func:`read`).

    Entries read from a ``.dat`` keep their raw values and call count; others are written as
    their importance with ``ncall = 1``, which ``.dat`` readers turn back into the same values.
    """
    out = [struct.pack("<i", len(im.entries))]
    for name, e in im.entries.items():
        if e.counts.size == 1 and e.counts[0] == int(e.counts[0]) and e.counts[0] >= 0:
            ncall, vals = int(e.counts[0]), e.sums
        else:
            ncall, vals = 1, e.values
        b = name.encode("utf-8")
        out += [struct.pack("<i", len(b)), b, struct.pack("<ii", ncall, vals.size), np.asarray(vals, "<f4").tobytes()]
    ds = (im.datasets[0] if im.datasets else "").encode("utf-8")
    out += [struct.pack("<ii", im.chunk_count, len(ds)), ds]
    _atomic_write(os.fspath(path), b"".join(out))


def write_gguf(path: "os.PathLike[str] | str", im: Imatrix) -> None:
    """Write ``im`` as a GGUF imatrix (``<name>.in_sum2`` / ``<name>.counts``, read by
    llama.cpp and :func:`read`). A single ``.dat`` call count becomes every matrix's count."""
    fields = {
        "general.type": "imatrix",
        "imatrix.datasets": gguf.MetaValue(gguf.ValueType.ARRAY, list(im.datasets), gguf.ValueType.STRING),
        "imatrix.chunk_count": gguf.MetaValue(gguf.ValueType.UINT32, int(im.chunk_count)),
        "imatrix.chunk_size": gguf.MetaValue(gguf.ValueType.UINT32, int(im.chunk_size)),
    }
    arrays = []
    for name, e in im.entries.items():
        if e.counts.size == 1 and e.counts[0] > 0:
            sums, counts = e.sums.reshape(1, -1), e.counts.reshape(1, 1)
        elif e.counts.size == 1:
            sums, counts = e.values.reshape(1, -1), np.ones((1, 1), np.float32)
        else:
            sums, counts = e.sums.reshape(e.counts.size, -1), e.counts.reshape(-1, 1)
        arrays += [(name + ".in_sum2", np.asarray(sums, np.float32)), (name + ".counts", np.asarray(counts, np.float32))]
    with gguf.GGUFWriter(path, fields) as w:
        for n, a in arrays:
            w.add_tensor_info(n, a.shape, "f32")
        for n, a in arrays:
            w.write_tensor(n, a)


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.part"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
