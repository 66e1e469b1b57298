"""Training text for the offline tiny experts, made at build time (nothing large is committed).

- `code`: source of a fixed list of pure-Python modules from this interpreter's standard library.
- `math`: arithmetic facts from a seeded generator ("37 + 5 = 42", "(3 + 4) * 2 = 14").
- `general`: English prose, the paragraphs (not the code examples or grammar) of the Python
  documentation topics shipped with the interpreter (`pydoc_data.topics`).
- `data`: structured data from a seeded generator: JSON records, SQL statements, CSV tables and
  shell pipelines over them.

All are deterministic for a given Python build; the recipe hash of the experts includes the
corpus digests, so a different stdlib simply builds different (but equally valid) experts.
"""

from __future__ import annotations

import hashlib
import random
import re
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


def prose_paragraphs(doc: str) -> list[str]:
    """The prose paragraphs of one documentation topic, each unwrapped onto one line.

    Indented blocks (code examples, grammar rules), headings and paragraphs that are mostly
    symbols are dropped: the general expert should learn English, not Python.
    """
    out = []
    for block in re.split(r"\n\s*\n", doc):
        lines = block.split("\n")
        if any(line.startswith("   ") for line in lines):
            continue
        if re.fullmatch(r"[*=\-^~]+", lines[-1].strip() or "-"):
            continue
        text = re.sub(r"\s+", " ", " ".join(line.strip() for line in lines))
        letters = sum(c.isalpha() or c == " " for c in text)
        if len(text) >= 60 and letters >= 0.85 * len(text):
            out.append(text)
    return out


def general_corpus(max_chars: int) -> str:
    """English prose from the interpreter's documentation topics, up to `max_chars` characters."""
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # some distributions split the stdlib's data into a package
        raise ValueError(
            "the general expert trains on pydoc_data.topics, which this Python lacks; "
            "install the full standard library (e.g. Debian's libpython3-stdlib)"
        ) from err
    parts = [p for name in sorted(topics) for p in prose_paragraphs(topics[name])]
    return "\n".join(parts)[:max_chars]


# Vocabulary of the structured-data generator: tables, their columns (name -> value kind), values.
TABLES = {
    "users": {"id": "int", "name": "person", "email": "email", "city": "city", "age": "age"},
    "orders": {"id": "int", "user_id": "int", "item": "item", "qty": "qty", "price": "price"},
    "products": {"id": "int", "item": "item", "price": "price", "stock": "qty"},
    "events": {"id": "int", "kind": "status", "user_id": "int", "created_at": "date"},
    "invoices": {"id": "int", "user_id": "int", "total": "price", "status": "status"},
    "sensors": {"id": "int", "city": "city", "reading": "price", "created_at": "date"},
}
VALUES = {
    "person": "alice bob carol dmitri elena farid grace hiro ines jonas keiko liam".split(),
    "city": "lisbon oslo nairobi kyoto lima quebec tallinn porto hanoi dakar perth".split(),
    "item": "lamp chair desk mug pen notebook cable kettle shelf fan clock plant".split(),
    "status": "open paid shipped failed pending active closed retry".split(),
}
FILES = "data.csv users.json orders.csv app.log events.jsonl backup.sql report.csv".split()


def _value(kind: str, rng: random.Random) -> str | int | float:
    if kind in VALUES:
        return rng.choice(VALUES[kind])
    if kind == "email":
        return f"{rng.choice(VALUES['person'])}{rng.randint(1, 99)}@example.org"
    if kind == "date":
        return f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == "price":
        return round(rng.uniform(1, 500), 2)
    if kind == "age":
        return rng.randint(18, 90)
    return rng.randint(1, 999 if kind == "int" else 20)


def _sql_literal(v: str | int | float) -> str:
    return f"'{v}'" if isinstance(v, str) else str(v)


def data_snippet(rng: random.Random) -> str:
    """One JSON record list, SQL statement, CSV table or shell pipeline (several lines)."""
    import json

    table = rng.choice(sorted(TABLES))
    cols = TABLES[table]
    names = list(cols)
    pick = sorted(rng.sample(names, rng.randint(2, len(names))), key=names.index)
    rows = [{c: _value(cols[c], rng) for c in pick} for _ in range(rng.randint(1, 4))]
    kind = rng.randrange(6)
    if kind == 0:
        return json.dumps(rows[0] if len(rows) == 1 else rows, indent=rng.choice((None, 2)))
    if kind == 1:
        col = rng.choice(pick)
        op = rng.choice(("=", ">", "<", ">=")) if cols[col] not in VALUES else "="
        where = f"{col} {op} {_sql_literal(rows[0][col])}"
        tail = rng.choice(("", f" ORDER BY {pick[0]}", f" LIMIT {rng.randint(1, 50)}"))
        return f"SELECT {', '.join(pick)} FROM {table} WHERE {where}{tail};"
    if kind == 2:
        values = ", ".join("(" + ", ".join(_sql_literal(r[c]) for c in pick) + ")" for r in rows)
        return f"INSERT INTO {table} ({', '.join(pick)}) VALUES {values};"
    if kind == 3:
        types = {"int": "INTEGER", "price": "REAL", "age": "INTEGER", "qty": "INTEGER"}
        body = ",\n".join(f"  {c} {types.get(cols[c], 'TEXT')}" for c in names)
        return f"CREATE TABLE {table} (\n{body}\n);"
    if kind == 4:
        lines = [",".join(pick)] + [",".join(str(r[c]) for c in pick) for r in rows]
        return "\n".join(lines)
    f = rng.choice(FILES)
    word = rng.choice(VALUES[rng.choice(sorted(VALUES))])
    return rng.choice(
        (
            f"$ grep -c {word} {f}",
            f"$ cut -d, -f{rng.randint(1, 4)} {f} | sort | uniq -c | sort -rn | head -{rng.randint(3, 10)}",
            f"$ jq '.[] | select(.{pick[0]} == {json.dumps(rows[0][pick[0]])})' {f}",
            f'$ sqlite3 shop.db "SELECT COUNT(*) FROM {table};"',
            f"$ wc -l {f}",
            f"$ head -n {rng.randint(2, 20)} {f} | column -t -s,",
        )
    )


def data_corpus(max_chars: int, seed: int = 4321) -> str:
    """Generated JSON, SQL, CSV and shell, one snippet per paragraph, up to `max_chars`."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < max_chars:
        part = data_snippet(rng)
        parts.append(part)
        total += len(part) + 1
    return "\n".join(parts)[:max_chars]


CORPORA = {
    "code": code_corpus,
    "math": math_corpus,
    "general": general_corpus,
    "data": data_corpus,
}


def corpus(domain: str, max_chars: int) -> str:
    if domain not in CORPORA:
        raise ValueError(f"unknown corpus {domain!r}; known: {', '.join(CORPORA)}")
    return CORPORA[domain](max_chars)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
