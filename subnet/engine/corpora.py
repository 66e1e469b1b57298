"""Training text for the offline tiny experts, made at build time (nothing large is committed).

- `code`: source of a fixed list of pure-Python modules from this interpreter's standard library.
- `math`: arithmetic facts from a seeded generator ("37 + 5 = 42", "(3 + 4) * 2 = 14").
- `general`: English prose, the paragraphs (not the code examples or grammar) of the Python
  documentation topics shipped with the interpreter (`pydoc_data.topics`).
- `data`: structured data from a seeded generator: JSON documents, SQL statements, CSV tables,
  YAML blocks and shell pipelines, named with the general corpus's English words.

All are deterministic for a given Python build; the recipe hash of the experts includes the
corpus digests, so a different stdlib simply builds different (but equally valid) experts.
"""

from __future__ import annotations

import functools
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


# Stdlib modules whose docstrings add to the general corpus (none of them is code training text).
PROSE_FILES = (
    "ast.py",
    "bdb.py",
    "cmd.py",
    "codecs.py",
    "email/message.py",
    "ftplib.py",
    "http/client.py",
    "http/cookiejar.py",
    "imaplib.py",
    "inspect.py",
    "ipaddress.py",
    "logging/__init__.py",
    "mailbox.py",
    "os.py",
    "pickle.py",
    "random.py",
    "smtplib.py",
    "socket.py",
    "subprocess.py",
    "tarfile.py",
    "threading.py",
    "unittest/case.py",
    "urllib/parse.py",
    "urllib/request.py",
    "warnings.py",
)


def docstring_paragraphs(path: Path) -> list[str]:
    """The prose paragraphs of every docstring in one Python source file."""
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return []
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [
        p
        for node in ast.walk(tree)
        if isinstance(node, nodes)
        for p in prose_paragraphs(ast.get_docstring(node) or "")
    ]


@functools.cache
def general_corpus(max_chars: int) -> str:
    """English prose: the interpreter's documentation topics, then docstrings of `PROSE_FILES`,
    up to `max_chars` characters."""
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # some distributions split the stdlib's data into a package
        raise ValueError(
            "the general expert trains on pydoc_data.topics, which this Python lacks; "
            "install the full standard library (e.g. Debian's libpython3-stdlib)"
        ) from err
    parts = [p for name in sorted(topics) for p in prose_paragraphs(topics[name])]
    root = Path(sysconfig.get_paths()["stdlib"])
    for name in PROSE_FILES:
        if (root / name).is_file():
            parts += docstring_paragraphs(root / name)
    return "\n".join(parts)[:max_chars]


@functools.cache
def data_words() -> tuple[str, ...]:
    """Names for tables, columns, files and values: the English words of the general corpus.

    A broad vocabulary keeps the data expert about structure (quotes, braces, keywords,
    separators) rather than about a handful of made-up table names.
    """
    words = re.findall(r"\b[a-z]{3,10}\b", general_corpus(400_000))
    return tuple(sorted(set(words)))


# The names that real schemas use most, mixed with the broad vocabulary.
COMMON = (
    "id name email city country status price qty total amount created_at updated_at user_id "
    "order_id title author year score level type code date time value count active tags"
).split()


def _ident(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return rng.choice(COMMON)
    words = data_words()
    name = rng.choice(words)
    roll = rng.random()
    if roll < 0.25:
        return f"{name}_{rng.choice(('id', 'at', 'count', 'name', 'total', 'code', 'type'))}"
    if roll < 0.4:
        return f"{name}_{rng.choice(words)}"
    return name


def _scalar(rng: random.Random) -> str | int | float | bool | None:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randint(0, 9999)
    if kind == 1:
        return round(rng.uniform(-100, 1000), rng.choice((1, 2, 3)))
    if kind == 2:
        return rng.choice((True, False, None))
    if kind == 3:
        return f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == 4:
        return f"{rng.choice(data_words())}@{rng.choice(data_words())}.org"
    if kind == 5:
        return " ".join(rng.choice(data_words()) for _ in range(rng.randint(2, 4))).capitalize()
    return rng.choice(data_words())


def _record(rng: random.Random, keys: list[str], depth: int = 0) -> dict:
    out: dict = {}
    for k in keys:
        roll = rng.random()
        if roll < 0.08 and depth < 1:
            out[k] = _record(rng, [_ident(rng) for _ in range(rng.randint(1, 3))], depth + 1)
        elif roll < 0.16:
            out[k] = [_scalar(rng) for _ in range(rng.randint(0, 4))]
        else:
            out[k] = _scalar(rng)
    return out


def _sql_value(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return str(v)


def _csv_value(v) -> str:
    text = "" if v is None else str(v)
    return f'"{text}"' if "," in text or " " in text else text


def data_snippet(rng: random.Random) -> str:
    """One JSON document, SQL statement, CSV table, YAML block or shell pipeline."""
    import json

    table = _ident(rng) + rng.choice(("", "s"))
    cols = list(dict.fromkeys(_ident(rng) for _ in range(rng.randint(2, 6))))
    rows = [_record(rng, cols) for _ in range(rng.randint(1, 4))]
    flat = [{c: _scalar(rng) for c in cols} for _ in rows]  # tables hold scalars
    kind = rng.randrange(8)
    if kind == 0:
        doc = rows[0] if len(rows) == 1 else rows
        return json.dumps(doc, indent=rng.choice((None, 2, 4)))
    if kind == 1:
        return "\n".join(json.dumps(r) for r in rows)
    if kind == 2:
        where = " AND ".join(
            f"{c} {rng.choice(('=', '>', '<', '>=', '<>', 'LIKE'))} {_sql_value(flat[0][c])}"
            for c in rng.sample(cols, rng.randint(1, min(2, len(cols))))
        )
        sql = f"SELECT {', '.join(rng.sample(cols, rng.randint(1, len(cols))))} FROM {table}"
        if rng.random() < 0.3:
            other = _ident(rng)
            sql += f" JOIN {other} ON {other}.id = {table}.{other}_id"
        sql += f" WHERE {where}"
        if rng.random() < 0.4:
            sql += f" ORDER BY {rng.choice(cols)}{rng.choice(('', ' DESC'))}"
        if rng.random() < 0.3:
            sql += f" LIMIT {rng.randint(1, 100)}"
        return sql + ";"
    if kind == 3:
        if rng.random() < 0.5:
            values = ",\n  ".join(
                "(" + ", ".join(_sql_value(r[c]) for c in cols) + ")" for r in flat
            )
            return f"INSERT INTO {table} ({', '.join(cols)}) VALUES\n  {values};"
        c = rng.choice(cols)
        return (
            f"UPDATE {table} SET {c} = {_sql_value(_scalar(rng))} WHERE id = {rng.randint(1, 999)};"
            if rng.random() < 0.6
            else f"SELECT {c}, COUNT(*) AS n FROM {table} GROUP BY {c} ORDER BY n DESC;"
        )
    if kind == 4:
        types = ("INTEGER", "TEXT", "REAL", "BOOLEAN", "DATE", "VARCHAR(64)")
        body = [f"  {c} {rng.choice(types)}{rng.choice(('', '', ' NOT NULL'))}" for c in cols]
        return f"CREATE TABLE {table} (\n  id INTEGER PRIMARY KEY,\n" + ",\n".join(body) + "\n);"
    if kind == 5:
        lines = [",".join(cols)] + [",".join(_csv_value(r[c]) for c in cols) for r in flat]
        return "\n".join(lines)
    if kind == 6:
        return "\n".join(
            f"{c}: {json.dumps(v) if isinstance(v, str | list | dict) else v}"
            for c, v in rows[0].items()
        )
    f = f"{table}.{rng.choice(('csv', 'json', 'jsonl', 'log', 'sql', 'tsv'))}"
    c = rng.choice(cols)
    return rng.choice(
        (
            f"$ grep -c {rng.choice(data_words())} {f}",
            f"$ cut -d, -f{rng.randint(1, 5)} {f} | sort | uniq -c | sort -rn | head",
            f"$ jq '.[] | select(.{c} != null) | .{c}' {f}",
            f'$ sqlite3 {table}.db "SELECT COUNT(*) FROM {table};"',
            f"$ awk -F, '{{ s += ${rng.randint(1, 5)} }} END {{ print s }}' {f}",
            f"$ tail -n {rng.randint(5, 50)} {f} | grep -v {c}",
            f"$ find . -name '*.{f.rsplit('.', 1)[1]}' -newer {f} | xargs wc -l",
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
