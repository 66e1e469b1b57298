"""Token choice and stop detection: small pure functions the batcher applies per sequence.

Sampling is per sequence with its own `torch.Generator`, so a seeded request draws the same
tokens whatever else is in the batch. Reported log-probabilities are always those of the raw
model distribution (log-softmax of the logits, no temperature or top-p), the quantity validators
recompute with `score_batch`.
"""

from __future__ import annotations

import torch


def make_generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed % (1 << 63))
    return g


def choose(
    logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None
) -> int:
    """Pick the next token from one row of float32 logits."""
    if temperature <= 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < top_p
        sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
        pick = torch.multinomial(sorted_p, 1, generator=gen)
        return int(order[pick])
    return int(torch.multinomial(probs, 1, generator=gen))


def find_stop(text: str, stops: tuple[str, ...], searched: int) -> int | None:
    """Index of the earliest stop sequence in `text`, looking only past what was searched before."""
    best = None
    for s in stops:
        i = text.find(s, max(0, searched - len(s) + 1))
        if i >= 0 and (best is None or i < best):
            best = i
    return best


def stable_length(text: str, stops: tuple[str, ...]) -> int:
    """How much of `text` can be streamed now without revealing a stop sequence or half a char.

    Text that could still turn into a stop sequence is held back; a trailing U+FFFD means the
    tokenizer has an incomplete UTF-8 sequence that the next token may complete.
    """
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
