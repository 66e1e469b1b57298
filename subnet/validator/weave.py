"""Weave fresh randomness into an organic prompt so that it still reads like the user's own.

A task built on a recent user prompt must differ from it where it matters (a cached or copied
answer must not fit), yet carry no mark a classifier could learn. So nothing is added: one to
three of the prompt's own numbers, identifiers, names or words are replaced, each everywhere it
occurs, by another of the same kind and about the same length taken from the other organic
prompts of the domain (`Vocab`), and for a word only one that users wrote after the same word
("the difference" may become "the average", never "the bicycle"). The replacements then follow
the users' own frequencies, every new word pair is one users wrote, and the prompt keeps its
length and shape. Worked equations that hold ("12 + 7 = 19")
are left alone: a wrong fact would be a tell. Later positions are preferred, since the
continuation depends most on the end of the prompt.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import operator
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

KINDS = ("num", "ident", "name", "word")
_WEIGHT = {"num": 4.0, "ident": 3.0, "name": 3.0, "word": 1.0}
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_EQUATION = re.compile(r"[\d(][\d\s+\-*/()]*[-+*/][\d\s+\-*/()]*=[ \t]*-?\d+")
_RESERVED = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "cls"}
# Function words carry the grammar: swapping one would read wrong, and a classifier would see it.
_STOP = frozenset(
    """about above after again against along among another around because been before being
    below between both could does doing during each either every from further have having here
    itself just many might more most much must never other ought over same should since some
    such than that their theirs them themselves then there these they this those through under
    until upon very were what when where which while whom whose will with within without would
    your yours yourself shall cannot into onto also only even still""".split()
)
_MAX_CHANGES = 3
_CONTEXT = 8  # characters before a token that decide its kind


@dataclass(frozen=True)
class Vocab:
    """Replaceable tokens seen in a domain's organic prompts, with repeats (draws follow their
    frequency): by kind, and by (kind, the word just before)."""

    by_kind: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    after: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Cand:
    kind: str
    weight: float
    prevs: frozenset[str]  # the words right before its copies ("" at a line or clause start)


_NAME = re.compile(r"[A-Z][a-z]{2,}")
_CAMEL = re.compile(r"[a-z]+[A-Z][A-Za-z0-9]*")
_WORDLIKE = re.compile(r"[a-z]{5,}")
_AFTER_WORD = re.compile(r"[a-z,;:] $")
_IMPORT = re.compile(r"\b(import|from)\s+$")


def kind_of(token: str, before: str) -> str | None:
    """The kind of a token given the text just before it, or None when it is not replaceable
    here (a keyword, a builtin, a capital at a sentence start, a function word)."""
    if token.isdigit():
        return "num" if len(token) <= 9 else None
    if token in _RESERVED or token.startswith("__"):
        return None
    if "_" in token.strip("_") or _CAMEL.fullmatch(token):
        return "ident"
    if _NAME.fullmatch(token):
        # A capital after a lowercase word is a name; at a sentence start it is just a capital.
        return "name" if _AFTER_WORD.search(before) else None
    if _WORDLIKE.fullmatch(token) and token not in _STOP:
        return "word"
    return None


def _pinned(token: str, before: str) -> bool:
    """An attribute (`os.path`) or an imported module belongs to a library: renaming it anywhere
    would break the code around it."""
    if token.isdigit():
        return False
    return before.endswith(".") or _IMPORT.search(before) is not None


def _scan(text: str):
    """(token, kind or None, previous word or "", start) for each token of the text."""
    prev_end, prev = -1, ""
    for m in _TOKEN.finditer(text):
        tok = m.group()
        before = text[max(0, m.start() - _CONTEXT) : m.start()]
        # Context only across a single space: after a newline or punctuation nothing pairs.
        left = prev if m.start() == prev_end + 1 and text[prev_end] == " " else ""
        yield tok, kind_of(tok, before), left, m.start(), _pinned(tok, before)
        prev_end, prev = m.end(), tok.lower()


def tokens_by_kind(texts: Iterable[str]) -> tuple[tuple[str, str, str], ...]:
    """(kind, token, previous word) for every replaceable token of the texts, in order."""
    return tuple(
        (kind, tok, left)
        for text in texts
        for tok, kind, left, _, pinned in _scan(text)
        if kind is not None and not pinned
    )


def build_vocab(triples: Iterable[tuple[str, str, str]]) -> Vocab:
    by_kind: dict[str, list[str]] = {k: [] for k in KINDS}
    after: dict[tuple[str, str], list[str]] = {}
    for kind, token, left in triples:
        by_kind[kind].append(token)
        if left:
            after.setdefault((kind, left), []).append(token)
    return Vocab({k: tuple(v) for k, v in by_kind.items()}, {k: tuple(v) for k, v in after.items()})


def _equation_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _EQUATION.finditer(text):
        lhs, _, rhs = m.group().rpartition("=")
        value = _arith(lhs)
        if value is not None and value == int(rhs):
            spans.append(m.span())
    return spans


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _arith(expr: str) -> int | None:
    """Value of a small integer expression (+ - * and parentheses), None for anything else."""

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            a, b = ev(node.left), ev(node.right)
            if b and a % b == 0:
                return a // b
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError("not integer arithmetic")

    try:
        return ev(ast.parse(expr.strip(), mode="eval").body)
    except (SyntaxError, ValueError, RecursionError):
        return None


def candidates(texts: Sequence[str]) -> dict[str, _Cand]:
    """Replaceable tokens of the editable texts; later tokens weigh more."""
    total = sum(len(t) for t in texts) or 1
    kinds: dict[str, tuple[str, float]] = {}
    prevs: dict[str, set[str]] = {}
    pinned: set[str] = set()
    offset = 0
    for text in texts:
        frozen = _equation_spans(text)
        for tok, kind, left, start, pin in _scan(text):
            if pin or any(a <= start < b for a, b in frozen):
                pinned.add(tok)  # every copy is replaced, so one pinned copy pins them all
            elif kind is not None:
                # A lone digit is mostly structure (`== 0`, `[1]`), a longer number a quantity.
                weight = _WEIGHT["word"] if kind == "num" and len(tok) == 1 else _WEIGHT[kind]
                kinds[tok] = (kind, weight * (0.5 + (offset + start) / total))
            prevs.setdefault(tok, set()).add(left)
        offset += len(text)
    return {t: _Cand(k, w, frozenset(prevs[t])) for t, (k, w) in kinds.items() if t not in pinned}


def _fits(kind: str, old: str, new: str, taken: set[str]) -> bool:
    if new in taken:
        return False
    if kind == "num":
        return len(new) == len(old)
    return abs(len(new) - len(old)) <= 3 and (kind != "ident" or ("_" in new) == ("_" in old))


def _replacement(
    cand: _Cand, old: str, vocab: Vocab, rng: random.Random, taken: set[str], strict: bool
) -> str | None:
    kind = cand.kind
    if kind != "num" and strict and any(cand.prevs):
        # Only what users wrote after the same word: every new word pair is an organic one.
        words = {p for p in cand.prevs if p}
        pool = [w for p in sorted(words) for w in vocab.after.get((kind, p), ())]
    else:
        pool = list(vocab.by_kind.get(kind, ()))
    pool = [w for w in pool if _fits(kind, old, w, taken)]
    if len(set(pool)) >= (3 if kind == "num" or not strict else 2):
        return rng.choice(pool)
    if kind == "num":
        for _ in range(8):
            lo = 0 if len(old) == 1 or old.startswith("0") else 10 ** (len(old) - 1)
            new = str(rng.randrange(lo, 10 ** len(old))).zfill(len(old))
            if new not in taken:
                return new
        return None
    if kind == "ident" and "_" in old and not strict:
        # Swap one part of the name for a word users wrote: merge_intervals -> merge_ranges.
        parts = old.split("_")
        words = [w for w in vocab.by_kind.get("word", ()) if w not in parts]
        if words:
            i = rng.choice([j for j, p in enumerate(parts) if p])
            parts[i] = rng.choice(words)
            new = "_".join(parts)
            return new if new not in taken else None
    return None


def weave(
    texts: Sequence[str], vocab: Vocab, rng: random.Random
) -> tuple[tuple[str, ...], str] | None:
    """(texts with 1-3 tokens replaced everywhere, nonce), or None when nothing can change.
    Replacements in an organic context are tried first; looser ones only when none fits."""
    cands = candidates(texts)
    if not cands:
        return None
    taken = {m.group() for t in texts for m in _TOKEN.finditer(t)}
    tokens = sorted(cands)
    weights = [cands[t].weight for t in tokens]
    want = 1 + (rng.random() < 0.5) + (rng.random() < 0.25)
    changes: dict[str, str] = {}
    for strict in (True, False):
        for _ in range(4 * _MAX_CHANGES):
            if changes and not strict or len(changes) >= want or len(changes) == len(tokens):
                break
            old = rng.choices(tokens, weights)[0]
            if old in changes:
                continue
            new = _replacement(cands[old], old, vocab, rng, taken, strict)
            if new is not None:
                changes[old] = new
                taken.add(new)
    if not changes:
        return None
    pattern = re.compile(
        "|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in sorted(changes, key=len, reverse=True))
    )
    out = tuple(pattern.sub(lambda m: changes[m.group()], t) for t in texts)
    if out == tuple(texts):
        return None
    nonce = ",".join(f"{a}>{b}" for a, b in sorted(changes.items()))[:200]
    return out, nonce
