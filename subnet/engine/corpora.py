"""Training text for the offline tiny experts, made at build time (nothing large is committed).

- `code`: source of a fixed list of pure-Python modules from this interpreter's standard library.
- `math`: arithmetic facts from a seeded generator ("37 + 5 = 42", "(3 + 4) * 2 = 14").

Both are deterministic for a given Python build; the recipe hash of the experts includes the
corpus digest, so a different stdlib simply builds different (but equally valid) experts.
"""

from __future__ import annotations

import hashlib
import random
import sysconfig
from pathlib import Path

# Pure-Python modules that exist in every CPython 3.11+ build; order matters (it is the corpus).
STDLIB_FILES = (
    "textwrap.py",
    "string.py",
    "bisect.py",
    "heapq.py",
    "functools.py",
    "fnmatch.py",
    "shlex.py",
    "colorsys.py",
    "graphlib.py",
    "keyword.py",
    "operator.py",
    "queue.py",
    "sched.py",
    "glob.py",
    "difflib.py",
    "fractions.py",
    "statistics.py",
    "json/decoder.py",
    "json/encoder.py",
    "json/__init__.py",
    "dataclasses.py",
    "copy.py",
    "enum.py",
    "argparse.py",
    "typing.py",
)


def code_corpus(max_chars: int) -> str:
    """Concatenated stdlib source, up to `max_chars` characters."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    total = 0
    for name in STDLIB_FILES:
        path = root / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    return "\n".join(parts)[:max_chars]


def math_line(rng: random.Random) -> str:
    kind = rng.randrange(5)
    a, b, c = rng.randint(0, 99), rng.randint(0, 99), rng.randint(1, 12)
    if kind == 0:
        return f"{a} + {b} = {a + b}"
    if kind == 1:
        return f"{a} - {b} = {a - b}"
    if kind == 2:
        return f"{c} * {b % 13} = {c * (b % 13)}"
    if kind == 3:
        return f"({a} + {b}) * {c} = {(a + b) * c}"
    return f"{a * c} / {c} = {a}"


def math_corpus(max_chars: int, seed: int = 1234) -> str:
    """Generated arithmetic, one fact per line, up to `max_chars` characters."""
    rng = random.Random(seed)
    lines: list[str] = []
    total = 0
    while total < max_chars:
        line = math_line(rng)
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)[:max_chars]


CORPORA = {"code": code_corpus, "math": math_corpus}


def corpus(domain: str, max_chars: int) -> str:
    if domain not in CORPORA:
        raise ValueError(f"unknown corpus {domain!r}; known: {', '.join(CORPORA)}")
    return CORPORA[domain](max_chars)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
