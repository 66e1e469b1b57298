"""The text users receive, derived from the token ids a miner streams — never the miner's text.

A miner could stream honest token ids (which verify) next to any text it likes (an
advertisement); so the gateway ignores the `text` fields and decodes the ids itself with the
reference tokenizer of the declared expert, incrementally: each new token decodes a short window
and keeps the difference, so multi-byte characters and tokenizers that merge across token
boundaries come out as decoding the whole answer would. The stream ends where an honest engine
ends: at an end-of-sequence token (excluded from the text), at a stop sequence (the text is cut
before it, and text that could still become one is held back), or at `max_tokens`. Whatever a
miner sends past that end never reaches the user.
"""

from __future__ import annotations

from collections.abc import Iterable

from subnet.engine.sampling import find_stop, stable_length


class TextStream:
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
        """The stream is over: whatever text is left (as the engine does, an incomplete
        character at the very end is dropped)."""
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
