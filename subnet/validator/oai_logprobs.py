"""Per-token logprobs for users, aligned with the text derived from the same token ids.

The gateway vouches only for what it derived itself: the tokens whose text reached the user
(`text.TextStream`), each with the log-probability the miner claimed for it (verified on a
share of answers like any claim) and, when asked, the miner's top alternatives. Tokens are fed to
the text stream one at a time so that each keeps its span in the text: a token's string is the
text it added (a token holding half a UTF-8 character has "" and the one completing it the whole
character), so the tokens always join to exactly the text sent, and a piece of streamed text
carries exactly the logprobs of the tokens that produced it. Nothing past the end the stream
stops at (EOS, stop sequence, `max_tokens`) is returned; a token cut by a stop sequence keeps
only its text before the cut. An alternative's string is its text after a plain character, so
that it reads as it would in the text (a leading space stays), cached per tokenizer.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from protocol import ProtocolError, TokenLogprob
from subnet.validator.text import TextStream

# Token strings cached per tokenizer, at most (then the cache starts over): a decode costs
# 5-15 µs, and the same alternatives come back in answer after answer.
MAX_CACHED = 1 << 16
# A chosen token's logprob and its alternatives come from one log-softmax row, so they agree;
# the verifier's own tolerance for claimed logprobs (subnet.validator.verify) bounds the slack.
AGREE_TOL = 0.05


@dataclass(frozen=True)
class TokenInfo:
    token: str  # the text this token added
    logprob: float
    top: tuple[tuple[str, float], ...]  # alternatives, most likely first
    offset: int  # where the token's text starts in the completion


class Logprobs:
    """Feeds one miner's tokens to its TextStream and hands out their logprobs with the text."""

    def __init__(self, derived: TextStream, top_n: int, offset: int = 0):
        self.derived = derived
        self.top_n = top_n
        self.offset = offset  # characters of the completion sent before this miner's text
        self._pending: list[tuple[TokenLogprob, int, int]] = []  # claim, start, end
        self._names = token_texts(derived.tokenizer) if top_n else None

    def feed(self, token_ids: Sequence[int], logprobs: Sequence[TokenLogprob]) -> str:
        """Like `TextStream.feed`; raises ProtocolError when the claims do not line up with the
        tokens (the gateway cannot vouch for them: the miner is failed over)."""
        check(token_ids, logprobs, self.top_n, len(self.derived.tokenizer))
        d = self.derived
        out = []
        for t, lp in zip(token_ids, logprobs, strict=True):
            if d.end:
                break
            start = len(d.text)
            out.append(d.feed((t,)))
            if d.end == "eos":
                break
            self._pending.append((lp, start, len(d.text)))
        return "".join(out)

    def take(self, *, final: bool = False) -> list[TokenInfo]:
        """The tokens whose text has all been sent (every remaining one when `final`). A token
        that adds no text yet (half a character) waits for the one that completes it."""
        d = self.derived
        limit = len(d.text)
        n = len(self._pending)
        if not final:
            n = 0
            for i, (_, s, e) in enumerate(self._pending):
                e = min(e, limit)
                if e > d.sent:
                    break
                if e > min(s, limit):
                    n = i + 1
        batch, self._pending = self._pending[:n], self._pending[n:]
        out = []
        for lp, s, e in batch:
            s, e = min(s, limit), min(e, limit)
            if d.end == "stop" and s >= limit:
                continue  # entirely inside or after the stop sequence
            out.append(TokenInfo(d.text[s:e], lp.logprob, self._top(lp), self.offset + s))
        return out

    def _top(self, lp: TokenLogprob) -> tuple[tuple[str, float], ...]:
        if self._names is None:
            return ()
        alts = sorted(lp.top, key=lambda p: -p[1])[: self.top_n]
        names = self._names.texts([a for a, _ in alts])
        return tuple((name, logprob) for name, (_, logprob) in zip(names, alts, strict=True))


class TokenTexts:
    """Token ids' strings as they read inside a text: decoded after a plain character, so that
    tokenizers which drop a leading space at the start of a text (SentencePiece) keep it."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.anchor = tokenizer.encode("a", add_special_tokens=False)[:1]
        self.prefix = tokenizer.decode(self.anchor, skip_special_tokens=False)
        self._cache: dict[int, str] = {}

    def texts(self, ids: Sequence[int]) -> list[str]:
        missing = [a for a in dict.fromkeys(ids) if a not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > MAX_CACHED:
                self._cache.clear()
            tok = self.tokenizer
            decoded = tok.batch_decode(
                [[*self.anchor, a] for a in missing], skip_special_tokens=False
            )
            for a, text in zip(missing, decoded, strict=True):
                if text.startswith(self.prefix):
                    self._cache[a] = text[len(self.prefix) :]
                else:  # merged with the anchor: alone, then
                    self._cache[a] = tok.decode([a], skip_special_tokens=False)
        return [self._cache[a] for a in ids]


_TEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_texts(tokenizer) -> TokenTexts:
    """The shared cache of a tokenizer's token strings (it lives as long as the tokenizer)."""
    found = _TEXTS.get(tokenizer)
    if found is None:
        found = _TEXTS[tokenizer] = TokenTexts(tokenizer)
    return found


def feed(
    derived: TextStream, lps: Logprobs | None, ids: Sequence[int], logprobs: Sequence[TokenLogprob]
) -> tuple[str, list[TokenInfo]]:
    """Derived text for streamed tokens, and the logprobs (when asked) of those whose text went
    out; without `lps`, exactly `derived.feed`."""
    if lps is None:
        return derived.feed(ids), []
    text = lps.feed(ids, logprobs)
    return text, lps.take()


def check(
    token_ids: Sequence[int], logprobs: Sequence[TokenLogprob], top_n: int, vocab: int
) -> None:
    if len(logprobs) != len(token_ids):
        raise ProtocolError(
            f"{len(logprobs)} logprobs for {len(token_ids)} tokens", code="bad_reply"
        )
    for t, lp in zip(token_ids, logprobs, strict=True):
        if lp.token_id != t:
            raise ProtocolError("logprob entries name other tokens", code="bad_reply")
        if len(lp.top) < top_n:
            raise ProtocolError(
                f"{len(lp.top)} top logprobs where {top_n} were asked", code="bad_reply"
            )
        if any(not 0 <= a < vocab for a, _ in lp.top):
            raise ProtocolError(
                "a top logprob names a token outside the vocabulary", code="bad_reply"
            )
        if lp.top and not _agrees(lp):
            raise ProtocolError(
                "top logprobs contradict the chosen token's logprob", code="bad_reply"
            )


def _agrees(lp: TokenLogprob) -> bool:
    """The alternatives are not verified against the reference like the chosen token's logprob
    is; they must at least agree with it: the same value where the chosen token is among them,
    else none less likely than it (they are the likeliest tokens)."""
    same = [v for a, v in lp.top if a == lp.token_id]
    if same:
        return all(abs(v - lp.logprob) <= AGREE_TOL for v in same)
    return lp.logprob <= min(v for _, v in lp.top) + AGREE_TOL
