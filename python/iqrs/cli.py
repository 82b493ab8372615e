"""The ``iqrs`` command line: ``iqrs demo``, ``iqrs bench``."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="iqrs", description="IQK weight quantization (ik_llama.cpp-compatible formats).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_demo = sub.add_parser("demo", help="quantize the bundled sample matrix to every type; print bpw, error and speed")
    p_demo.add_argument("--types", help="comma-separated types (default: all)")
    p_demo.add_argument("--no-imatrix", action="store_true", help="quantize without the bundled importance matrix")
    p_bench = sub.add_parser("bench", help="benchmark quantize / dequantize / mat-vec against the reference's numbers")
    from .bench import add_arguments

    add_arguments(p_bench)
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run

            return run(types=args.types.split(",") if args.types else None, use_imatrix=not args.no_imatrix)
        if args.command == "bench":
            from .bench import run as run_bench

            return run_bench(args)
    except (ValueError, TypeError, OSError) as e:
        print(f"iqrs: error: {e}", file=sys.stderr)
        return 2
    parser.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())
