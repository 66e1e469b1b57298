"""`dmoe bench [NAME [ARGS...]]`: list the benchmarks in scripts/bench_*.py, or run one.

    dmoe bench                    # each benchmark with the first line of its docstring
    dmoe bench chain --quick      # scripts/bench_chain.py --quick, with this Python

Benchmarks are discovered by file name at run time (new `scripts/bench_*.py` appear without
touching this module) and read without being imported: listing stays instant.
"""

from __future__ import annotations

import ast
import difflib
import subprocess
import sys
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
PREFIX = "bench_"


def discover(scripts_dir: Path | None = None) -> dict[str, Path]:
    """{short name: script} for every scripts/bench_*.py, sorted by name."""
    found = sorted((scripts_dir or SCRIPTS_DIR).glob(f"{PREFIX}*.py"))
    return {p.stem[len(PREFIX) :]: p for p in found}


def purpose(script: Path) -> str:
    """The first sentence of the script's module docstring ("" if it has none)."""
    try:
        doc = ast.get_docstring(ast.parse(script.read_text()))
    except (OSError, SyntaxError, ValueError):
        return ""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    return paragraph.split(". ")[0].rstrip(".")


def _listing(benches: dict[str, Path]) -> str:
    width = max(len(n) for n in benches)
    lines = ["usage: dmoe bench NAME [ARGS...]   (ARGS go to the script; try NAME --help)", ""]
    lines += [f"  {name:<{width}}  {purpose(path)}" for name, path in benches.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not SCRIPTS_DIR.is_dir():
        print(
            f"dmoe bench: no benchmarks: {SCRIPTS_DIR} does not exist (the benchmarks ship with "
            "the source checkout; install it editable: `pip install -e .` from a clone)",
            file=sys.stderr,
        )
        return 2
    benches = discover()
    if not benches:
        print(f"dmoe bench: no scripts/bench_*.py in {SCRIPTS_DIR}", file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help", "list"):
        print(_listing(benches))
        return 0
    name = argv[0].removesuffix(".py").removeprefix(PREFIX)
    if name not in benches:
        close = difflib.get_close_matches(name, benches, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        print(
            f"dmoe bench: no benchmark {argv[0]!r}; {hint}available: {', '.join(benches)} "
            "(`dmoe bench` lists them)",
            file=sys.stderr,
        )
        return 2
    return subprocess.call([sys.executable, str(benches[name]), *argv[1:]])
