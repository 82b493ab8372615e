"""Whole-model operations on GGUF files — the engines behind ``iqrs quantize``, ``iqrs repack``
and ``iqrs stats``.

Which tensors get quantized follows ik_llama.cpp's quantize tool (``src/llama-quantize.cpp``):

* only weights (names ending in ``weight``) with 2 or 3 dimensions (3: stacked experts); never
  norms (``*_norm.weight``), the MoE router (``ffn_gate_inp``), position embeddings, token types,
  Mamba's ``ssm_conv1d`` / ``ssm_x`` / ``ssm_dt``, T5's ``attn_rel_b``, or integer tensors;
* the type is the one asked for, unless a ``--custom-q`` rule matches the name (``re.search``,
  first matching rule wins), as with ``llama-quantize --pure --custom-q``. iqrs does not apply
  the reference's built-in mixes (e.g. Q6_K for ``output.weight``): write rules for those;
* a tensor whose rows do not split into the type's blocks (256 values for the IQK types) keeps
  its type (the reference falls back to types iqrs does not write); ``_r4`` types are replaced by
  their base type for ``token_embd`` and for matrices whose row count is not a multiple of 4;
* a tensor already of the chosen type is copied unchanged; others are decoded to float32 and
  quantized (with the importance matrix entry of the tensor, if any).

Everything is driven by iqrs's type registry: any registered type can be asked for.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import _legacy, gguf
from ._qtensor import quantize, type_info, types
from .imatrix import Imatrix

__all__ = [
    "CustomRule",
    "TensorPlan",
    "file_type_of",
    "parse_rules",
    "plan_quantization",
    "plan_repack",
    "quantize_model",
    "repack_model",
    "should_quantize",
    "stats_model",
    "writable_types",
]

#: ``enum llama_ftype`` values (``general.file_type``) by type name, from ik_llama.cpp's llama.h.
FILE_TYPES: Dict[str, int] = {
    "f32": 0, "f16": 1, "q8_0": 7, "bf16": 32,
    "iq2_k": 138, "iq3_k": 139, "iq4_k": 140, "iq5_k": 141, "iq6_k": 142, "iq4_ks": 145,
    "iq2_ks": 147, "iq4_kss": 148, "iq5_ks": 150, "iq2_kt": 151, "iq3_kt": 152, "iq4_kt": 153,
    "iq3_ks": 154, "iq2_kl": 155, "iq1_kt": 156, "iq2_k_r4": 338, "iq3_k_r4": 339,
    "iq4_k_r4": 340, "iq5_k_r4": 341, "iq4_ks_r4": 345, "iq5_ks_r4": 350,
}  # fmt: skip

QUANTIZATION_VERSION = 2  # GGML_QNT_VERSION
SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")
TOKEN_EMBEDDINGS = ("token_embd.weight", "per_layer_token_embd.weight")
CHUNK_WEIGHTS = 1 << 22  # weights decoded and quantized per call (bounds memory, paces progress)


def file_type_of(type_name: str) -> Optional[int]:
    """The ``general.file_type`` (llama_ftype) of a model mostly of ``type_name``, if it has one."""
    return FILE_TYPES.get(type_name.lower())


def writable_types() -> List[str]:
    """Types ``iqrs quantize`` can produce: every registered type and the plain ggml types
    F32, F16, BF16 and Q8_0."""
    return [t.name for t in types()] + [n for n in _legacy.ENCODERS if n not in {t.name for t in types()}]


def _target(name: str) -> gguf.GGMLType:
    """A type ``iqrs quantize`` can produce, by name."""
    try:
        t = gguf.ggml_type(name)
    except gguf.GGUFError:
        t = None
    if t is None or not (t.iqk or t.name.lower() in _legacy.ENCODERS):
        raise ValueError(f"unknown quantization type {name!r}; iqrs can write: {', '.join(writable_types())}")
    return t


@dataclass(frozen=True)
class CustomRule:
    """A ``regex=type`` rule: tensors whose name matches (``re.search``) get ``type``."""

    pattern: "re.Pattern[str]"
    type: gguf.GGMLType

    def __str__(self) -> str:
        return f"{self.pattern.pattern}={self.type.name}"


def parse_rules(specs: Sequence[str]) -> List[CustomRule]:
    """Parse ``--custom-q`` values: comma-separated ``regex=type`` items (several values add up).

    Raises:
        ValueError: an item without ``=``, a bad regex or an unknown type (the message says which).
    """
    rules = []
    for spec in specs:
        for item in spec.split(","):
            if not item.strip():
                continue
            pattern, eq, tname = item.rpartition("=")
            if not eq or not pattern:
                raise ValueError(f"bad --custom-q rule {item!r}: expected regex=type")
            try:
                rx = re.compile(pattern)
            except re.error as e:
                raise ValueError(f"bad regex {pattern!r} in --custom-q rule {item!r}: {e}") from None
            rules.append(CustomRule(rx, _target(tname.strip())))
    return rules


def should_quantize(t: gguf.TensorInfo) -> Tuple[bool, str]:
    """Whether the reference's quantize tool would quantize ``t`` at all, and if not, why."""
    name = t.name
    if t.type.name in ("i8", "i16", "i32", "i64"):
        return False, "integer tensor"
    if not name.endswith("weight"):
        return False, "not a weight"
    if len(t.shape) < 2:
        return False, "1-D"
    if "_norm.weight" in name:
        return False, "norm"
    if "ffn_gate_inp.weight" in name:
        return False, "expert router"
    if name in ("position_embd.weight", "token_types.weight"):
        return False, "positions / token types"
    if any(s in name for s in ("ssm_conv1d", "ssm_x.weight", "ssm_dt.weight")):
        return False, "Mamba ssm"
    if "attn_rel_b.weight" in name:
        return False, "relative position bias"
    return True, ""


def _base_of(t: gguf.GGMLType) -> Optional[gguf.GGMLType]:
    """The registered base type of an interleaved (``_r4``) type."""
    if t.rows_per_group > 1 and t.name.endswith(f"_r{t.rows_per_group}"):
        try:
            b = gguf.ggml_type(t.name[: -len(f"_r{t.rows_per_group}")])
        except gguf.GGUFError:
            return None
        return b if b.iqk and b.rows_per_group == 1 else None
    return None


def _interleaved_of(t: gguf.GGMLType) -> Optional[gguf.GGMLType]:
    """The registered ``_r4`` type of a base type."""
    if t.iqk and t.rows_per_group == 1:
        try:
            r = gguf.ggml_type(t.name + "_r4")
        except gguf.GGUFError:
            return None
        return r if r.iqk and r.rows_per_group == 4 else None
    return None


def _rows_per_matrix(shape: Sequence[int]) -> int:
    return int(shape[-2]) if len(shape) >= 2 else 1


@dataclass
class TensorPlan:
    """What happens to one tensor.

    Attributes:
        tensor: the source tensor.
        target: its type in the output.
        action: ``"quantize"`` (decode, then quantize / convert) or ``"copy"`` (bytes unchanged),
            or ``"repack"`` (IQK base ↔ ``_r4``).
        reason: why this type (``"default"``, ``"rule <regex>"``, ``"norm"``, ...).
        imatrix_key: the importance-matrix entry used, if any.
    """

    tensor: gguf.TensorInfo
    target: gguf.GGMLType
    action: str
    reason: str
    imatrix_key: Optional[str] = None

    @property
    def nbytes(self) -> int:
        """Output size in bytes."""
        return self.target.nbytes(self.tensor.shape)


def plan_quantization(
    model: gguf.GGUFFile, type: str, rules: Sequence[CustomRule] = (), imatrix: Optional[Imatrix] = None
) -> List[TensorPlan]:
    """Decide every tensor's output type (see the module docstring for the rules).

    Raises:
        ValueError: unknown type; a split model; an imatrix entry whose length does not match its
            tensor (an imatrix for another model), or an imatrix matching no tensor at all.
    """
    default = _target(type)
    count = model.get("split.count", 1)
    if isinstance(count, int) and count > 1:
        raise ValueError(f"{model.path} is part {model.get('split.no', 0) + 1} of a {count}-file split model; merge the parts first (llama-gguf-split --merge)")
    plans = []
    for t in model.tensors:
        ok, why = should_quantize(t)
        if not ok:
            plans.append(TensorPlan(t, t.type, "copy", why))
            continue
        rule = next((r for r in rules if r.pattern.search(t.name)), None)
        want, reason = (rule.type, f"rule {rule.pattern.pattern}") if rule else (default, "default")
        if t.shape[-1] % want.block_size:
            plans.append(TensorPlan(t, t.type, "copy", f"{t.shape[-1]} columns do not fit {want.name} blocks of {want.block_size}"))
            continue
        if want.rows_per_group > 1:
            base = _base_of(want)
            if t.name in TOKEN_EMBEDDINGS or _rows_per_matrix(t.shape) % want.rows_per_group:
                why = "token embeddings" if t.name in TOKEN_EMBEDDINGS else f"{_rows_per_matrix(t.shape)} rows"
                if base is None:
                    plans.append(TensorPlan(t, t.type, "copy", f"{why}: no {want.name}"))
                    continue
                want, reason = base, f"{reason}; {why}: {base.name} instead of {want.name}"
        if want.id == t.type.id:
            plans.append(TensorPlan(t, t.type, "copy", f"already {want.name}"))
            continue
        if not t.type.decodable:
            plans.append(TensorPlan(t, t.type, "copy", f"iqrs cannot decode {t.type.name}"))
            continue
        key = None
        if imatrix is not None and want.iqk:
            key = imatrix.lookup(t.name)
            if key is not None:
                try:
                    imatrix.for_tensor(t.name, t.shape)  # checks the length
                except ValueError:
                    if t.name not in TOKEN_EMBEDDINGS:
                        raise
                    key = None  # the reference ignores a mismatched token_embd entry
        plans.append(TensorPlan(t, want, "quantize", reason, key))
    if imatrix is not None and imatrix.entries and not any(p.imatrix_key for p in plans):
        if any(p.action == "quantize" and p.target.iqk for p in plans):
            raise ValueError(f"the imatrix{' ' + imatrix.path if imatrix.path else ''} has no entry for any tensor of {model.path}; is it for another model?")
    return plans


def _main_type(plans: Sequence[TensorPlan]) -> Optional[gguf.GGMLType]:
    """The type holding most of the quantized weights."""
    weights: Dict[int, Tuple[int, gguf.GGMLType]] = {}
    for p in plans:
        if p.target.iqk or p.action != "copy":
            n, _ = weights.get(p.target.id, (0, p.target))
            weights[p.target.id] = (n + p.tensor.n_elements, p.target)
    return max(weights.values(), key=lambda v: v[0])[1] if weights else None


@dataclass
class Progress:
    """Callbacks for a long operation (the CLI draws a progress bar with them)."""

    start: Callable[[int, int], None] = lambda n_tensors, n_weights: None
    tensor: Callable[[int, TensorPlan], None] = lambda index, plan: None
    advance: Callable[[int], None] = lambda n_weights: None
    done: Callable[[], None] = lambda: None


@dataclass
class Report:
    """What an operation did: the plans, sizes and timing."""

    plans: List[TensorPlan]
    seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    weights_processed: int = 0
    notes: List[str] = field(default_factory=list)


def _output_fields(model: gguf.GGUFFile, main: Optional[gguf.GGMLType]) -> Dict[str, gguf.MetaValue]:
    fields = {k: v for k, v in model.fields.items() if k not in SPLIT_KEYS}
    fields["general.quantization_version"] = gguf.MetaValue(gguf.ValueType.UINT32, QUANTIZATION_VERSION)
    ft = file_type_of(main.name) if main is not None else None
    if ft is not None:
        fields["general.file_type"] = gguf.MetaValue(gguf.ValueType.UINT32, ft)
    else:
        fields.pop("general.file_type", None)
    return fields


def _row_chunks(plan: TensorPlan) -> Iterator[Tuple[int, int, int]]:
    """(matrix, first row, end row) chunks of a tensor, rows counted over the whole tensor,
    each a whole number of the source's and the target's row groups, about CHUNK_WEIGHTS each."""
    shape = plan.tensor.shape
    rows, cols = _rows_per_matrix(shape), shape[-1]
    n_mat = math.prod(shape[:-2]) if len(shape) > 2 else 1
    g = max(plan.target.rows_per_group, plan.tensor.type.rows_per_group)
    step = max(g, CHUNK_WEIGHTS // max(1, cols) // g * g)
    for m in range(n_mat):
        for r in range(0, rows, step):
            yield m, m * rows + r, m * rows + min(rows, r + step)


def _quantized_chunks(plan: TensorPlan, imatrix: Optional[Imatrix], advance: Callable[[int], None]) -> Iterator[np.ndarray]:
    """The output bytes of a tensor, chunk by chunk (decode → quantize or encode)."""
    t, target = plan.tensor, plan.target
    im = imatrix.for_tensor(t.name, t.shape) if (imatrix is not None and plan.imatrix_key) else None
    cols = t.shape[-1]
    for m, r0, r1 in _row_chunks(plan):
        x = t.decode_rows(r0, r1)
        try:
            if target.iqk:
                out = quantize(x, target.name, imatrix=None if im is None else im[m]).data
            else:
                out = _legacy.encode(target.name, x)
        except ValueError as e:
            raise ValueError(f"tensor {t.name!r} (rows {r0}..{r1 - 1}): {e}") from None
        advance((r1 - r0) * cols)
        yield out


def quantize_model(
    src: gguf.PathLike,
    dst: gguf.PathLike,
    type: str,
    rules: Sequence[CustomRule] = (),
    imatrix: Optional[Imatrix] = None,
    dry_run: bool = False,
    progress: Optional[Progress] = None,
    imatrix_name: Optional[str] = None,
) -> Report:
    """Quantize a GGUF model to ``type`` with per-tensor ``rules``; write ``dst`` (GGUF v3).

    Metadata is copied, ``general.quantization_version`` and ``general.file_type`` set, split keys
    dropped, and with an imatrix the ``quantize.imatrix.*`` keys recorded as ik_llama.cpp does.
    ``dst`` appears only when complete. With ``dry_run``, nothing is written.
    """
    progress = progress or Progress()
    model = gguf.read(src)
    plans = plan_quantization(model, type, rules, imatrix)
    report = Report(plans, bytes_in=sum(p.tensor.nbytes for p in plans if p.tensor.type.block_size))
    report.bytes_out = sum(p.nbytes for p in plans)
    requant = sorted({p.tensor.type.name for p in plans if p.action == "quantize" and p.tensor.type.name not in ("f32", "f16", "bf16", "f64")})
    if requant:
        report.notes.append(f"requantized from already quantized types ({', '.join(requant)}): quality is lower than from the original weights")
    if imatrix is not None:
        missing = [p.tensor.name for p in plans if p.action == "quantize" and p.target.iqk and p.imatrix_key is None]
        if missing:
            report.notes.append(f"no imatrix entry for {len(missing)} tensor(s), e.g. {missing[0]}")
    if dry_run:
        return report
    fields = _output_fields(model, _target(type))
    if imatrix is not None:
        fields["quantize.imatrix.file"] = gguf.MetaValue(gguf.ValueType.STRING, imatrix_name or imatrix.path or "")
        if imatrix.datasets:
            fields["quantize.imatrix.dataset"] = gguf.MetaValue(gguf.ValueType.STRING, imatrix.datasets[0])
        fields["quantize.imatrix.entries_count"] = gguf.MetaValue(gguf.ValueType.INT32, len(imatrix.entries))
        if imatrix.chunk_count > 0:
            fields["quantize.imatrix.chunks_count"] = gguf.MetaValue(gguf.ValueType.INT32, imatrix.chunk_count)
    work = sum(p.tensor.n_elements for p in plans if p.action == "quantize")
    t0 = time.perf_counter()
    with gguf.GGUFWriter(dst, fields) as w:
        for p in plans:
            w.add_tensor_info(p.tensor.name, p.tensor.shape, p.target)
        progress.start(len(plans), work)
        for i, p in enumerate(plans):
            progress.tensor(i, p)
            if p.action == "copy":
                w.write_tensor(p.tensor.name, p.tensor.data)
            else:
                w.write_tensor(p.tensor.name, _quantized_chunks(p, imatrix, progress.advance))
                report.weights_processed += p.tensor.n_elements
            p.tensor.release()
        progress.done()
    report.seconds = time.perf_counter() - t0
    return report


def plan_repack(model: gguf.GGUFFile, unpack: bool = False, pattern: Optional[str] = None) -> List[TensorPlan]:
    """Which tensors ``iqrs repack`` converts: IQK base types → their ``_r4`` type (or, with
    ``unpack``, ``_r4`` → base), for tensors whose name matches ``pattern`` (all by default),
    except token embeddings and matrices whose row count is not a multiple of 4."""
    try:
        rx = re.compile(pattern) if pattern else None
    except re.error as e:
        raise ValueError(f"bad regex {pattern!r}: {e}") from None
    plans = []
    for t in model.tensors:
        target = (_base_of(t.type) if unpack else _interleaved_of(t.type)) if t.type.iqk else None
        why = ""
        if target is None:
            why = "not an IQK type" if not t.type.iqk else f"no {'base' if unpack else '_r4'} type for {t.type.name}"
        elif rx is not None and not rx.search(t.name):
            why, target = "not matched", None
        elif not unpack and t.name in TOKEN_EMBEDDINGS:
            why, target = "token embeddings", None
        elif not unpack and _rows_per_matrix(t.shape) % target.rows_per_group:
            why, target = f"{_rows_per_matrix(t.shape)} rows", None
        plans.append(TensorPlan(t, target, "repack", "") if target is not None else TensorPlan(t, t.type, "copy", why))
    return plans


def repack_model(src: gguf.PathLike, dst: gguf.PathLike, unpack: bool = False, pattern: Optional[str] = None, progress: Optional[Progress] = None) -> Report:
    """Convert every eligible IQK tensor between its base type and its ``_r4`` row-interleaved
    type (lossless both ways) with ``QTensor.repack``; copy the rest; write ``dst``."""

    progress = progress or Progress()
    model = gguf.read(src)
    plans = plan_repack(model, unpack, pattern)
    report = Report(plans, bytes_in=sum(p.tensor.nbytes for p in plans if p.tensor.type.block_size))
    report.bytes_out = sum(p.nbytes for p in plans)
    if not any(p.action == "repack" for p in plans):
        raise ValueError(f"{model.path}: nothing to {'unpack' if unpack else 'repack'} (no tensor of a type with {'a base' if unpack else 'an _r4'} counterpart)")
    t0 = time.perf_counter()
    with gguf.GGUFWriter(dst, _output_fields(model, _main_type(plans))) as w:
        for p in plans:
            w.add_tensor_info(p.tensor.name, p.tensor.shape, p.target)
        progress.start(len(plans), sum(p.tensor.n_elements for p in plans if p.action == "repack"))
        for i, p in enumerate(plans):
            progress.tensor(i, p)
            if p.action == "copy":
                w.write_tensor(p.tensor.name, p.tensor.data)
            else:
                w.write_tensor(p.tensor.name, p.tensor.qtensor().repack(p.target.name).data)  # type: ignore[attr-defined]
                progress.advance(p.tensor.n_elements)
                report.weights_processed += p.tensor.n_elements
        progress.done()
    report.seconds = time.perf_counter() - t0
    return report


@dataclass
class ErrorStats:
    """Quantization error of one tensor under one type.

    Attributes:
        sse: Σ (x - q)²; ``wsse``: Σ w_col (x - q)² (w = imatrix, or 1).
        sum_sq: Σ x²; ``n``: values; ``wsum``: Σ over rows of Σ w_col.
        nbytes: quantized size of the rows measured.
    """

    sse: float
    wsse: float
    sum_sq: float
    n: int
    wsum: float
    nbytes: int

    @property
    def rmse(self) -> float:
        """Root mean squared error."""
        return math.sqrt(self.sse / self.n)

    @property
    def wrmse(self) -> float:
        """Importance-weighted RMSE: ``sqrt(Σ w (x-q)² / Σ w)``."""
        return math.sqrt(self.wsse / self.wsum)

    @property
    def rel(self) -> float:
        """RMSE relative to the RMS of the weights."""
        return math.sqrt(self.sse / self.sum_sq) if self.sum_sq > 0 else 0.0

    @property
    def bpw(self) -> float:
        """Bits per weight (row metadata included)."""
        return 8.0 * self.nbytes / self.n

    def __add__(self, o: "ErrorStats") -> "ErrorStats":
        return ErrorStats(self.sse + o.sse, self.wsse + o.wsse, self.sum_sq + o.sum_sq, self.n + o.n, self.wsum + o.wsum, self.nbytes + o.nbytes)


def _sample_rows(rows: int, max_rows: Optional[int], group: int) -> np.ndarray:
    """Row indices: all, or ``max_rows`` in whole groups spread evenly over the matrix."""
    if not max_rows or rows <= max_rows:
        return np.arange(rows)
    n_groups = max(1, max_rows // group)
    starts = np.linspace(0, rows // group - 1, n_groups).round().astype(int) * group
    return (starts[:, None] + np.arange(group)).reshape(-1)


def stats_model(
    src: gguf.PathLike,
    type_names: Sequence[str],
    imatrix: Optional[Imatrix] = None,
    pattern: Optional[str] = None,
    max_rows: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> Dict[str, Dict[str, ErrorStats]]:
    """Quantization error of every quantizable tensor (matching ``pattern``) under each type.

    Returns ``{tensor name: {type name: ErrorStats}}``; a type that does not fit a tensor's shape
    is absent for it. ``max_rows`` measures that many rows per matrix (spread evenly) instead of
    all of them.
    """
    progress = progress or Progress()
    tinfos = [type_info(n) for n in type_names]
    try:
        rx = re.compile(pattern) if pattern else None
    except re.error as e:
        raise ValueError(f"bad regex {pattern!r}: {e}") from None
    model = gguf.read(src)
    chosen = [t for t in model.tensors if should_quantize(t)[0] and t.type.decodable and (rx is None or rx.search(t.name))]
    if not chosen:
        raise ValueError(f"{model.path}: no quantizable tensor{' matches ' + repr(pattern) if pattern else ''}")
    group = max(ti.rows_per_group for ti in tinfos)
    out: Dict[str, Dict[str, ErrorStats]] = {}
    progress.start(len(chosen), sum(t.n_elements for t in chosen) * len(tinfos))
    for i, t in enumerate(chosen):
        progress.tensor(i, TensorPlan(t, t.type, "stats", ""))
        im = imatrix.for_tensor(t.name, t.shape) if imatrix is not None else None
        rows, cols = _rows_per_matrix(t.shape), t.shape[-1]
        n_mat = t.n_elements // (rows * cols)
        idx = _sample_rows(rows, max_rows, group)
        res: Dict[str, ErrorStats] = {}
        for m in range(n_mat):
            full = t.decode_rows(m * rows, (m + 1) * rows)
            x = np.ascontiguousarray(full[idx])
            w = im[m].astype(np.float64) if im is not None else np.ones(cols)
            x64 = x.astype(np.float64)
            for ti in tinfos:
                progress.advance(t.n_elements // n_mat)
                if cols % ti.block_size or x.shape[0] % ti.rows_per_group:
                    continue
                q = quantize(x, ti.name, imatrix=None if im is None else im[m])
                e = (x64 - q.dequantize().astype(np.float64)) ** 2
                s = ErrorStats(float(e.sum()), float((e * w).sum()), float((x64**2).sum()), x.size, float(w.sum() * x.shape[0]), q.nbytes)
                res[ti.name] = res[ti.name] + s if ti.name in res else s
        out[t.name] = res
    progress.done()
    return out
