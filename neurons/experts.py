"""`dmoe experts build [--out DIR] [--size default|test]`: build the offline tiny experts.

Trains a shared byte-level BPE tokenizer and one small Llama-style model per domain (code on
Python stdlib source, math on generated arithmetic); about a minute on 2 CPU cores. Cached: a
second run with the same recipe returns at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from subnet.engine.experts import DEFAULT_EXPERTS_DIR


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dmoe experts", description="offline tiny experts")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the tiny experts")
    b.add_argument("--out", type=Path, default=DEFAULT_EXPERTS_DIR, help="output directory")
    b.add_argument("--size", default="default", choices=["default", "test"])
    args = parser.parse_args(argv)

    out = args.out.expanduser()
    if out.exists() and not out.is_dir():
        print(f"dmoe experts: --out {out} is a file, not a directory", file=sys.stderr)
        return 2

    from subnet.engine.buildbar import build_with_bar

    try:
        paths = build_with_bar(out, args.size)
    except (OSError, ValueError) as err:
        print(f"dmoe experts: {err}", file=sys.stderr)
        return 1
    for domain, path in paths.items():
        print(f"{domain}: {path}")
    return 0
