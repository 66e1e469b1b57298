"""pick_tokens: greedy rows take the argmax, a seeded row draws the same token whatever its batch
mates, top-p keeps at least the argmax, and draws follow the tempered distribution."""

from __future__ import annotations

import torch

from subnet.engine.sampling import make_generator, pick_tokens

VOCAB = 50


def _logits(rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 3


def test_greedy_rows_take_the_argmax():
    logits = _logits(4)
    toks = pick_tokens(logits, [0.0] * 4, [1.0] * 4, [None] * 4)
    assert toks.tolist() == logits.argmax(dim=-1).tolist()
    assert toks.dtype == torch.long and toks.device == logits.device


def test_a_seeded_row_ignores_its_batch_mates():
    logits = _logits(5, seed=1)
    for top_p in (1.0, 0.8):
        alone = [
            pick_tokens(logits[2:3], [0.9], [top_p], [make_generator(seed, logits.device)]).item()
            for seed in range(20)
        ]
        crowded = []
        for seed in range(20):
            gens = [None, make_generator(99), make_generator(seed), None, make_generator(7)]
            toks = pick_tokens(logits, [0.0, 1.3, 0.9, 0.0, 0.7], [1.0, 0.5, top_p, 1.0, 1.0], gens)
            crowded.append(toks[2].item())
        assert crowded == alone
        assert len(set(alone)) > 1  # really sampled


def test_a_tiny_top_p_keeps_only_the_argmax():
    logits = _logits(3, seed=2)
    gens = [make_generator(s) for s in range(3)]
    toks = pick_tokens(logits, [1.0] * 3, [1e-6] * 3, gens)
    assert toks.tolist() == logits.argmax(dim=-1).tolist()


def test_draws_follow_the_tempered_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    temperature, n = 0.7, 4000
    gen = make_generator(123)
    counts = torch.zeros(4)
    for _ in range(n):
        counts[pick_tokens(logits, [temperature], [1.0], [gen]).item()] += 1
    want = torch.softmax(logits[0] / temperature, dim=-1)
    assert (counts / n - want).abs().max() < 0.03
