"""The ``iqrs`` command line: ``quantize``, ``repack``, ``info``, ``stats`` (GGUF models), and
``demo``, ``bench``. Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from typing import Dict, List, Optional, Sequence, TextIO

import iqrs

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


# --------------------------------------------------------------------------------------------
# formatting helpers
# --------------------------------------------------------------------------------------------


def _count(n: float) -> str:
    """1234567 → '1.23 M'."""
    for unit, k in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n:.0f}"


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


def _shape(shape: Sequence[int]) -> str:
    return " x ".join(str(s) for s in shape)


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _table(rows: List[List[str]], header: List[str], right: Sequence[int] = (), out: Optional[TextIO] = None) -> None:
    """Print an aligned text table; columns whose index is in ``right`` align right."""
    out = out or sys.stdout
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def line(r: List[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    print(line(header), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in rows:
        print(line(r), file=out)


class ProgressBar:
    """A progress bar on stderr: tensor index and name, shape, types, a bar, percent of the
    weights to process, throughput and time left. Without a terminal it prints one line per
    tensor instead, so logs stay readable."""

    def __init__(self, verb: str, stream: Optional[TextIO] = None) -> None:
        self.verb = verb
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.n_tensors = self.total = self.done_weights = 0
        self.t0 = self.last = 0.0
        self.label = ""

    def start(self, n_tensors: int, n_weights: int) -> None:
        self.n_tensors, self.total = n_tensors, max(1, n_weights)
        self.t0 = time.perf_counter()

    def tensor(self, index: int, plan: "iqrs.convert.TensorPlan") -> None:
        t = plan.tensor
        arrow = f"{t.type.name} -> {plan.target.name}" if plan.action in ("quantize", "repack") else ("" if plan.action == "stats" else f"{t.type.name} (kept)")
        size = f" ({_mib(t.nbytes)} MiB)" if t.type.block_size else ""
        self.label = f"[{index + 1:>{len(str(self.n_tensors))}}/{self.n_tensors}] {t.name} {_shape(t.shape)}{size} {arrow}".rstrip()
        if self.tty:
            self._draw(force=True)
        else:
            print(f"{self.verb} {self.label}", file=self.stream, flush=True)

    def advance(self, n: int) -> None:
        self.done_weights += n
        if self.tty:
            self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        frac = min(1.0, self.done_weights / self.total)
        elapsed = now - self.t0
        rate = self.done_weights / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done_weights) / rate if rate > 0 else 0.0
        tail = f"{100 * frac:5.1f}% {rate / 1e6:7.2f} Mw/s ETA {_duration(eta)}"
        width = shutil.get_terminal_size((100, 20)).columns
        bar_w = 20
        label_w = max(10, width - len(tail) - bar_w - 5)
        label = self.label if len(self.label) <= label_w else self.label[: label_w - 1] + "~"
        filled = int(bar_w * frac)
        self.stream.write(f"\r{label:<{label_w}} |{'#' * filled}{'.' * (bar_w - filled)}| {tail}")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * (shutil.get_terminal_size((100, 20)).columns - 1) + "\r")
            self.stream.flush()

    def as_progress(self) -> "iqrs.convert.Progress":
        from .convert import Progress

        return Progress(self.start, self.tensor, self.advance, self.done)


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


def _set_threads(n: Optional[int]) -> None:
    if n is not None:
        if n < 1:
            raise ValueError(f"--threads must be >= 1, got {n}")
        iqrs.set_num_threads(n)


def _load_imatrix(path: Optional[str]) -> "Optional[iqrs.imatrix.Imatrix]":
    if path is None:
        return None
    from . import imatrix

    return imatrix.read(path)


def _type_summary(plans: Sequence["iqrs.convert.TensorPlan"]) -> List[List[str]]:
    """Rows of (type, tensors, weights, MiB, bpw) over the output types, then a total row."""
    by: Dict[str, List[int]] = {}
    for p in plans:
        s = by.setdefault(p.target.name, [0, 0, 0])
        s[0] += 1
        s[1] += p.tensor.n_elements
        s[2] += p.nbytes
    rows = [[k, str(v[0]), _count(v[1]), _mib(v[2]), f"{8 * v[2] / max(1, v[1]):.4f}"] for k, v in sorted(by.items(), key=lambda kv: -kv[1][2])]
    n, w, b = (sum(v[i] for v in by.values()) for i in range(3))
    rows.append(["total", str(n), _count(w), _mib(b), f"{8 * b / max(1, w):.4f}"])
    return rows


def cmd_quantize(a: argparse.Namespace) -> int:
    from . import convert

    _set_threads(a.threads)
    rules = convert.parse_rules(a.custom_q or [])
    im = _load_imatrix(a.imatrix)
    bar = ProgressBar("quantizing")
    report = convert.quantize_model(a.input, a.output, a.type, rules, im, dry_run=a.dry_run, progress=bar.as_progress(), imatrix_name=a.imatrix)
    plans = report.plans
    if a.dry_run:
        rows = [
            [p.tensor.name, _shape(p.tensor.shape), p.tensor.type.name, p.target.name if p.action == "quantize" else "=", _mib(p.nbytes), p.reason + (f" [imatrix: {p.imatrix_key}]" if p.imatrix_key and p.imatrix_key != p.tensor.name else "")]
            for p in plans
        ]
        _table(rows, ["tensor", "shape", "from", "to", "MiB", "why"], right=(4,))
        print()
    _table(_type_summary(plans), ["type", "tensors", "weights", "MiB", "bpw"], right=(1, 2, 3, 4))
    n_q = sum(p.action == "quantize" for p in plans)
    ratio = 100.0 * report.bytes_out / max(1, report.bytes_in)
    print(f"\n{a.input}: {_mib(report.bytes_in)} MiB -> {_mib(report.bytes_out)} MiB ({ratio:.1f}%), {n_q} of {len(plans)} tensors quantized")
    if not a.dry_run:
        s = max(report.seconds, 1e-9)
        print(f"wrote {a.output} in {s:.2f} s: {n_q / s:.2f} tensors/s, {report.weights_processed / s / 1e6:.2f} M weights/s ({iqrs.get_num_threads()} threads)")
    else:
        print("dry run: nothing written")
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_repack(a: argparse.Namespace) -> int:
    from . import convert

    _set_threads(a.threads)
    bar = ProgressBar("unpacking" if a.unpack else "repacking")
    report = convert.repack_model(a.input, a.output, unpack=a.unpack, pattern=a.pattern, progress=bar.as_progress())
    _table(_type_summary(report.plans), ["type", "tensors", "weights", "MiB", "bpw"], right=(1, 2, 3, 4))
    n = sum(p.action == "repack" for p in report.plans)
    print(f"\nwrote {a.output}: {n} of {len(report.plans)} tensors {'unpacked' if a.unpack else 'repacked'} in {report.seconds:.2f} s")
    return 0


def _short_value(v: "iqrs.gguf.MetaValue", width: int = 60) -> str:
    import numpy as np

    from .gguf import MetaValue, ValueType

    if v.type == ValueType.ARRAY:
        items = [x.plain() if isinstance(x, MetaValue) else x for x in v.value[:4]]
        shown = ", ".join(repr(x) if isinstance(x, str) else str([y.item() if isinstance(y, np.generic) else y for y in x]) if isinstance(x, (list, np.ndarray)) else str(x) for x in items)
        s = f"[{len(v.value)} x {v.item_type.name.lower() if v.item_type is not None else '?'}] {shown}{', ...' if len(v.value) > 4 else ''}"
    elif v.type == ValueType.STRING:
        s = repr(v.value)
    else:
        s = str(v.value)
    s = s.replace("\n", "\\n")
    return s if len(s) <= width else s[: width - 3] + "..."


def cmd_info(a: argparse.Namespace) -> int:
    from . import gguf

    m = gguf.read(a.file)
    print(f"{m.path}: GGUF v{m.version}, {len(m.fields)} metadata keys, {len(m.tensors)} tensors, alignment {m.alignment}, {_mib(m.file_size)} MiB")
    if not a.no_metadata:
        print()
        _table([[k, v.type.name.lower(), _short_value(v)] for k, v in m.fields.items()], ["key", "type", "value"])
    print()
    rows = []
    by: Dict[str, List[int]] = {}
    for t in m.tensors:
        known = t.type.block_size > 0
        nb = t.nbytes if known else 0
        rows.append([t.name, t.type.name, _shape(t.shape), _mib(nb) if known else "?", f"{t.bpw:.4f}" if known else "?"])
        s = by.setdefault(t.type.name, [0, 0, 0])
        s[0] += 1
        s[1] += t.n_elements
        s[2] += nb
    _table(rows, ["tensor", "type", "shape", "MiB", "bpw"], right=(3, 4))
    print()
    srows = [[k, str(v[0]), _count(v[1]), _mib(v[2]), f"{8 * v[2] / max(1, v[1]):.4f}"] for k, v in sorted(by.items(), key=lambda kv: -kv[1][2])]
    n, w, b = (sum(v[i] for v in by.values()) for i in range(3))
    srows.append(["total", str(n), _count(w), _mib(b), f"{8 * b / max(1, w):.4f}"])
    _table(srows, ["type", "tensors", "weights", "MiB", "bpw"], right=(1, 2, 3, 4))
    return 0


def cmd_stats(a: argparse.Namespace) -> int:
    from . import convert

    names = [iqrs.type_info(t).name for t in a.types.split(",") if t.strip()]
    if not names:
        raise ValueError("--types needs at least one type")
    plt = None
    if a.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ValueError("--plot needs matplotlib, which is not installed (pip install matplotlib)") from None
    _set_threads(a.threads)
    im = _load_imatrix(a.imatrix)
    bar = ProgressBar("measuring")
    res = convert.stats_model(a.input, names, im, pattern=a.tensors, max_rows=a.max_rows, progress=bar.as_progress())
    rows = []
    for tname, per in res.items():
        for ty in names:
            s = per.get(ty)
            if s is None:
                rows.append([tname, ty, "-", "-", "-", "-"])
            else:
                rows.append([tname, ty, f"{s.bpw:.4f}", f"{s.rmse:.4e}", f"{s.wrmse:.4e}", f"{s.rel:.4f}"])
    header = ["tensor", "type", "bpw", "rmse", "w-rmse" if im is not None else "w-rmse (=rmse)", "rel"]
    _table(rows, header, right=(2, 3, 4, 5))
    print()
    summary = []
    totals = {}
    for ty in names:
        parts = [per[ty] for per in res.values() if ty in per]
        if not parts:
            summary.append([ty, "0", "-", "-", "-", "-"])
            continue
        tot = parts[0]
        for p in parts[1:]:
            tot = tot + p
        totals[ty] = tot
        summary.append([ty, str(len(parts)), f"{tot.bpw:.4f}", f"{tot.rmse:.4e}", f"{tot.wrmse:.4e}", f"{tot.rel:.4f}"])
    _table(summary, ["type", "tensors", "bpw", "rmse", header[4], "rel"], right=(1, 2, 3, 4, 5))
    print("\nrel = rmse / rms(weights); w-rmse weights each column by the imatrix; totals pool all measured weights")
    if plt is not None and totals:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        xs = [totals[t].bpw for t in totals]
        ys = [totals[t].wrmse / math.sqrt(totals[t].sum_sq / totals[t].n) for t in totals]
        ax.plot(xs, ys, "o")
        for t, x, y in zip(totals, xs, ys):
            ax.annotate(t, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("bits per weight")
        ax.set_ylabel(("imatrix-weighted " if im is not None else "") + "RMSE / RMS(weights)")
        ax.set_yscale("log")
        ax.set_title(os.path.basename(a.input))
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(a.plot, dpi=120)
        print(f"plot: {a.plot}")
    return 0


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``iqrs`` and its subcommands."""
    parser = argparse.ArgumentParser(prog="iqrs", description="IQK weight quantization (ik_llama.cpp-compatible formats).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    type_list = ", ".join(t.name for t in iqrs.types())

    p = sub.add_parser(
        "quantize",
        help="quantize a GGUF model (BF16/F16/F32/Q8_0/...) to an IQK type",
        description=(
            "Quantize a GGUF model. Weights with 2 or 3 dimensions get TYPE (or the type of the first "
            "--custom-q rule matching their name); 1-D tensors, norms, the MoE router and position "
            "embeddings stay as they are; a tensor whose rows do not split into the type's blocks keeps "
            "its type; _r4 types fall back to their base type for token_embd and row counts not a "
            f"multiple of 4. Types: {type_list}; rules may also name f32, f16, bf16 or q8_0."
        ),
    )
    p.add_argument("input", metavar="IN", help="source GGUF file")
    p.add_argument("output", metavar="OUT", help="output GGUF file (written only when complete)")
    p.add_argument("type", metavar="TYPE", help="default quantization type")
    p.add_argument("--imatrix", metavar="F", help="importance matrix: legacy .dat or GGUF imatrix")
    p.add_argument("--custom-q", metavar="RULES", action="append", help='"regex=type,regex=type": per-tensor types (first match wins; may repeat)')
    p.add_argument("--threads", type=int, metavar="N", help="threads (default: all cores)")
    p.add_argument("--dry-run", action="store_true", help="show what each tensor would become; write nothing")

    p = sub.add_parser("repack", help="convert IQK tensors to their _r4 row-interleaved types (or back)", description=(
        "Repack every IQK tensor whose type has an _r4 variant (except token_embd and matrices whose row "
        "count is not a multiple of 4) into that variant, losslessly; with --unpack, the reverse."))
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--unpack", action="store_true", help="convert _r4 tensors back to their base types")
    p.add_argument("--pattern", metavar="REGEX", help="only tensors whose name matches")
    p.add_argument("--threads", type=int, metavar="N")

    p = sub.add_parser("info", help="list a GGUF file's metadata and tensors (types, shapes, sizes, bpw)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--no-metadata", action="store_true", help="list tensors only")

    p = sub.add_parser("stats", help="quantization error of every tensor of a model under several types", description=(
        "Quantize every quantizable tensor with each type and report RMSE, imatrix-weighted RMSE and bpw, "
        "per tensor and pooled per type; --plot draws error against bits per weight (needs matplotlib)."))
    p.add_argument("input", metavar="IN")
    p.add_argument("--types", required=True, metavar="T1,T2", help=f"types to compare ({type_list})")
    p.add_argument("--imatrix", metavar="F")
    p.add_argument("--tensors", metavar="REGEX", help="only tensors whose name matches")
    p.add_argument("--max-rows", type=int, metavar="N", help="measure N rows per matrix (spread evenly) instead of all")
    p.add_argument("--plot", metavar="PNG", help="write a plot of error against bpw")
    p.add_argument("--threads", type=int, metavar="N")

    p_demo = sub.add_parser("demo", help="quantize the bundled sample matrix to every type; print bpw, error and speed")
    p_demo.add_argument("--types", help="comma-separated types (default: all)")
    p_demo.add_argument("--no-imatrix", action="store_true", help="quantize without the bundled importance matrix")
    p_bench = sub.add_parser("bench", help="benchmark quantize / dequantize / mat-vec against the reference's numbers")
    from .bench import add_arguments

    add_arguments(p_bench)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``iqrs``; returns the exit status (0 ok, 1 usage, 2 error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"quantize": cmd_quantize, "repack": cmd_repack, "info": cmd_info, "stats": cmd_stats}
    try:
        if args.command in commands:
            return commands[args.command](args)
        if args.command == "demo":
            from .demo import run

            return run(types=args.types.split(",") if args.types else None, use_imatrix=not args.no_imatrix)
        if args.command == "bench":
            from .bench import run as run_bench

            return run_bench(args)
    except KeyboardInterrupt:
        print("\niqrs: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError, KeyError, MemoryError) as e:
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename and e.strerror:
            msg = f"{e.filename}: {e.strerror}"
        print(f"\niqrs: error: {' '.join(msg.split())}" if sys.stderr.isatty() else f"iqrs: error: {' '.join(msg.split())}", file=sys.stderr)
        return EXIT_ERROR
    parser.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())
