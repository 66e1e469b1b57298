"""Token choice and stop detection: small functions the batcher applies per step and sequence.

Sampling is per sequence with its own `torch.Generator` on the logits' device, seeded per
request, so a seeded request draws the same tokens whatever else is in the batch (a CPU
generator cannot drive `torch.multinomial` on a GPU). `pick_tokens` returns the step's tokens
as a device tensor: the caller reads everything it needs back in one transfer per step.
Reported log-probabilities are always those of the raw model distribution (log-softmax of the
logits, no temperature or top-p), the quantity validators recompute with `score_batch`.
"""

from __future__ import annotations

import torch


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed % (1 << 63))
    return g


def pick_tokens(
    logits: torch.Tensor,
    temperatures: list[float],
    top_ps: list[float],
    gens: list[torch.Generator | None],
) -> torch.Tensor:
    """One token per row of float32 logits (rows x vocab), as a long tensor on their device.

    Greedy rows (temperature 0) take the argmax. Sampled rows share one softmax (and one sort
    when they use top-p) and draw with their own generator; a row's draw depends only on its
    own logits, parameters and generator, never on its batch mates.
    """
    toks = torch.argmax(logits, dim=-1)
    sampled = [j for j, t in enumerate(temperatures) if t > 0.0]
    if not sampled:
        return toks
    device = logits.device
    idx = torch.tensor(sampled, dtype=torch.long, device=device)
    temps = torch.tensor([temperatures[j] for j in sampled], dtype=logits.dtype, device=device)
    probs = torch.softmax(logits.index_select(0, idx) / temps[:, None], dim=-1)
    nucleus = [k for k, j in enumerate(sampled) if top_ps[j] < 1.0]
    if nucleus:
        at = torch.tensor(nucleus, dtype=torch.long, device=device)
        sorted_p, order = torch.sort(probs.index_select(0, at), dim=-1, descending=True)
        p = torch.tensor([top_ps[sampled[k]] for k in nucleus], dtype=probs.dtype, device=device)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < p[:, None]
        sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
    row_of = {k: r for r, k in enumerate(nucleus)}
    picks = []
    for k, j in enumerate(sampled):
        if k in row_of:
            r = row_of[k]
            picks.append(order[r].gather(0, torch.multinomial(sorted_p[r], 1, generator=gens[j])))
        else:
            picks.append(torch.multinomial(probs[k], 1, generator=gens[j]))
    return toks.index_copy(0, idx, torch.cat(picks))


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
