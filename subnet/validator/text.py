"""The text of an answer, derived from its token ids with the reference tokenizer.

A miner's `text` is never trusted: the validator sends users `expected_text` (or, streaming,
what `TextStream` releases, which adds up to the same string), and verification fails an answer
whose `text` differs (`text_mismatch`). The derivation is what the project's engine does
(`subnet.engine.sequence` and `hf.py`): special tokens skipped, a final end-of-sequence
excluded, a `stop` answer cut before the earliest stop sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from protocol import GenerateRequest, GenerateResponse
from subnet.engine.sampling import find_stop, stable_length


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
    """Incremental derivation for a streamed answer (the gateway's): `feed(ids)` returns the text
    that can go to the user now, `finish()` the rest; joined, it equals `expected_text`.

    A miner could stream honest token ids next to any text it likes (an advertisement), so the
    gateway never forwards a miner's text. Each new token decodes a short window and keeps the
    difference, so multi-byte characters and tokenizers that merge across token boundaries come
    out as decoding the whole answer would. The stream ends where an honest engine ends: at an
    end-of-sequence token (excluded from the text), at a stop sequence (the text is cut before
    it, and text that could still become one is held back), or at `max_tokens`. Whatever a
    miner sends past that end never reaches the user.
    """

    def __init__(self, tokenizer, eos_ids: Iterable[int], stop: tuple[str, ...], max_tokens: int):
        self.tokenizer = tokenizer
        self.eos_ids = frozenset(eos_ids)
        self.stop = stop
        self.max_tokens = max_tokens
        self.ids: list[int] = []  # tokens taken (the final EOS included)
        self.text = ""  # the derived text so far (cut at a stop sequence once one appears)
        self.sent = 0  # characters handed out
        self.end = ""  # "", or why the stream ended: "eos", "stop", "length"
        self._prefix_at = 0
        self._read_at = 0
        self._searched = 0

    def feed(self, token_ids: Iterable[int]) -> str:
        """Take streamed tokens; returns the text that can go to the user now."""
        for t in token_ids:
            if self.end:
                break
            self.ids.append(int(t))
            if t in self.eos_ids:
                self.end = "eos"
                break
            self._decode()
            if self.stop:
                at = find_stop(self.text, self.stop, self._searched)
                self._searched = len(self.text)
                if at is not None:
                    self.text = self.text[:at]
                    self.end = "stop"
                    break
            if len(self.ids) >= self.max_tokens:
                self.end = "length"
        return self._take(final=bool(self.end))

    def finish(self) -> str:
        """The stream is over: whatever text is left. As the engine does, an answer that did not
        end on a stop sequence ends with the whole answer decoded at once (what the incremental
        decoder held back, an unfinished character, goes out now)."""
        if self.end != "stop" and self.ids:
            ids = self.ids[:-1] if self.end == "eos" else self.ids
            full = readable_text(self.tokenizer, ids)
            if full.startswith(self.text):
                self.text = full
        return self._take(final=True)

    def _decode(self) -> None:
        # The engine's incremental rule (subnet.engine.sequence.Seq.detokenize): decode a short
        # window before the new tokens and keep the difference once it is a whole character.
        dec = self.tokenizer.decode
        before = dec(self.ids[self._prefix_at : self._read_at], skip_special_tokens=True)
        after = dec(self.ids[self._prefix_at :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self._prefix_at, self._read_at = self._read_at, len(self.ids)

    def _take(self, *, final: bool) -> str:
        end = len(self.text) if final else stable_length(self.text, self.stop)
        out = self.text[self.sent : max(end, self.sent)]
        self.sent = max(end, self.sent)
        return out
