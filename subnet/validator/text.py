"""The text of an answer, derived from its token ids with the reference tokenizer.

A miner's `text` is never trusted: the validator sends users `expected_text` (or, streaming,
what `TextStream` releases, which adds up to the same string), and verification fails an answer
whose `text` differs (`text_mismatch`). The derivation is what the project's engine does
(`subnet.engine.sequence` and `hf.py`): special tokens skipped, a final end-of-sequence
excluded, a `stop` answer cut before the earliest stop sequence.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from protocol import GenerateRequest, GenerateResponse


def readable_text(tokenizer: Any, ids: Sequence[int]) -> str:
    """decode(ids) without special tokens: the engine's final text of an answer that ends on
    its length or an end-of-sequence (what its incremental detokenizer held back, an
    unfinished character, goes out at the end)."""
    return tokenizer.decode(list(ids), skip_special_tokens=True)


def earliest_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest occurrence of any stop sequence in `text`, or None."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def expected_text(
    tokenizer: Any, req: GenerateRequest, token_ids: Sequence[int], finish_reason: str
) -> str:
    """The text a user receives for these tokens, and what a miner's `text` must equal."""
    ids = list(token_ids[:-1] if finish_reason == "eos" else token_ids)
    text = readable_text(tokenizer, ids)
    if finish_reason == "stop":
        at = earliest_stop(text, req.stop)
        if at is not None:
            text = text[:at]
    return text


@dataclass(frozen=True)
class Texts:
    """What the tokenizer says about an answer, computed once by the verifier."""

    before_last: str  # readable_text(token_ids[:-1])
    full: str  # readable_text(token_ids), before any stop cut
    expected: str  # expected_text(...)


def answer_texts(tokenizer: Any, req: GenerateRequest, resp: GenerateResponse) -> Texts:
    ids = list(resp.token_ids)
    before = readable_text(tokenizer, ids[:-1]) if len(ids) > 1 else ""
    full = readable_text(tokenizer, ids)
    expected = full
    if resp.finish_reason == "eos":
        expected = before
    elif resp.finish_reason == "stop":
        at = earliest_stop(full, req.stop)
        expected = full[:at] if at is not None else full
    return Texts(before, full, expected)


class TextStream:
    """Incremental `expected_text` for a streamed answer: `push(ids)` returns the text that
    can go out now, `finish(reason)` the rest; all of it joined equals `expected_text`.

    Held back until more tokens come: a trailing U+FFFD (half a character), text that may
    still become a stop sequence, and end-of-sequence ids (excluded from the text anyway).
    Each push decodes the whole answer so far (answers are at most a few thousand tokens).
    """

    def __init__(self, tokenizer: Any, req: GenerateRequest, eos_ids: Collection[int] = ()):
        self.tokenizer = tokenizer
        self.req = req
        self.eos_ids = frozenset(eos_ids)
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = False  # a stop sequence appeared: nothing more goes out

    def push(self, ids: Sequence[int]) -> str:
        self.ids.extend(ids)
        if self.stopped:
            return ""
        text = readable_text(self.tokenizer, [t for t in self.ids if t not in self.eos_ids])
        at = earliest_stop(text, self.req.stop)
        if at is not None:
            self.stopped = True
            return self._release(text[:at])
        return self._release(text[: _stable_length(text, self.req.stop)])

    def finish(self, finish_reason: str) -> str:
        """The rest of the text once the answer is complete."""
        return self._release(expected_text(self.tokenizer, self.req, self.ids, finish_reason))

    def _release(self, text: str) -> str:
        if not text.startswith(self.sent) or len(text) <= len(self.sent):
            return ""  # nothing new (or a tokenizer rewrote earlier text: keep what was sent)
        new, self.sent = text[len(self.sent) :], text
        return new


def _stable_length(text: str, stops: Sequence[str]) -> int:
    """Characters of `text` that can go out: no half character, no possible stop prefix."""
    n = len(text)
    while n > 0 and text[n - 1] == "\ufffd":
        n -= 1
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:k]):
                hold = k
                break
    return max(0, min(n, len(text) - hold))
