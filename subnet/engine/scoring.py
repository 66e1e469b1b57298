"""Teacher-forced scoring: log-probabilities and ranks of given tokens, in bounded memory.

`logit_chunks` is the primitive: one right-padded forward of the base model over all sequences
(hidden states: tokens x hidden), then the LM head on at most `max_rows` positions at a time.
Peak memory is a chunk's rows x vocab floats instead of every token's: the full logits and their
log-softmax cost ~17 bytes per token x vocabulary entry (+4.9 GB for 2,048 tokens of a
151,936-token vocabulary, ~20 GB for the 8,192 a /v1/score request may carry).

`score_batch` is built on it and shared by the miner's `/v1/score` and the validator, so both
compute the same numbers. Pure functions of (model, ids): no I/O, no state. Log-probabilities are
of the model's unmodified distribution (float32 log-softmax of the logits; no temperature, no
top-p).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

# Architectures whose causal-LM logits are exactly `lm_head(base_model(...).last_hidden_state)`,
# then tanh soft-capping by `final_logit_softcapping` for gemma2/3 (read in transformers 5.24;
# tests/engine/test_architectures.py checks each against the full forward). Any other model goes
# through its own full forward: its head may scale or mix (Cohere's logit_scale, Granite's
# logits_scaling, multimodal wrappers), so splitting it could change the numbers.
SPLIT_HEAD = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3", "olmo2", "gpt2",
     "gpt_neox"}
)  # fmt: skip
# Float32 logits per chunk: 64 MiB is 110 positions of a 151,936-token vocabulary. A chunk's
# log-softmax and rank comparison add about as much again.
CHUNK_BYTES = 64 << 20


@dataclass(frozen=True)
class ScoreResult:
    """For tokens `start..len-1` of one sequence: logprob, rank (0 = argmax), optional top-k."""

    logprobs: list[float]
    ranks: list[int]
    top: list[list[tuple[int, float]]]


def rows_per_chunk(vocab_size: int, budget_bytes: int = CHUNK_BYTES) -> int:
    return max(1, budget_bytes // (4 * vocab_size))


def _padded(sequences: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def padded_logits(model, sequences: list[list[int]]) -> torch.Tensor:
    """Logits of one right-padded forward over `sequences` (batch x longest x vocab).

    Memory grows with tokens x vocabulary: prefer `logit_chunks`. Kept for callers that have
    not moved yet (the validator's prefill).
    """
    ids, mask = _padded(sequences, next(model.parameters()).device)
    return model(input_ids=ids, attention_mask=mask).logits


def split_head(model):
    """(base model, output head, final soft-cap or None), or None when the model's logits
    cannot be computed from its last hidden state that way (see SPLIT_HEAD)."""
    config = model.config
    if getattr(config, "model_type", None) not in SPLIT_HEAD:
        return None
    base, head = model.base_model, model.get_output_embeddings()
    if base is model:  # base_model_prefix names no attribute (gemma3 in transformers 4.56)
        base = getattr(model, "model", None)
    if head is None or base is model or base is None:
        return None
    return base, head, getattr(config, "final_logit_softcapping", None)


@torch.inference_mode()
def logit_chunks(
    model,
    sequences: list[list[int]],
    spans: list[tuple[int, int]],
    max_rows: int | None = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Next-token logits of chosen positions, a bounded chunk at a time.

    Contract:
    - `sequences[i]` is a non-empty list of token ids; `spans[i] = (lo, hi)` with
      `0 <= lo <= hi <= len(sequences[i])` names the positions wanted. Position p's logits
      predict token p + 1 (p = len - 1 predicts what follows the sequence).
    - One forward over all sequences, right-padded into one batch with an attention mask (the
      layout of `padded_logits`; values agree with it up to float rounding of the head's
      matrix product on fewer rows). The caller bounds the batch's tokens.
    - Yields `(i, p, logits)` in order of i, then p: float32 logits of shape (r, vocab) for
      positions p .. p + r - 1 of sequence i, 1 <= r <= max_rows, on the model's device. Each
      chunk is a fresh tensor; reduce it (log-softmax, gather, top-k) and drop it before the
      next, and peak memory stays at one chunk.
    - `max_rows` defaults to `rows_per_chunk(vocab)` (CHUNK_BYTES of float32 logits).
    - Models outside SPLIT_HEAD run their full forward once per sequence (memory: that
      sequence's tokens x vocab) and yield slices of it.
    """
    if len(spans) != len(sequences):
        raise ValueError("sequences and spans must have the same length")
    device = next(model.parameters()).device
    vocab = model.get_output_embeddings().weight.shape[0]
    max_rows = max_rows or rows_per_chunk(vocab)
    split = split_head(model)
    if split is None:
        for i, (seq, (lo, hi)) in enumerate(zip(sequences, spans, strict=True)):
            ids, mask = _padded([seq], device)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[0]
            for p in range(lo, hi, max_rows):
                yield i, p, logits[p : min(hi, p + max_rows)].float()
            del logits
        return
    base, head, cap = split
    ids, mask = _padded(sequences, device)
    hidden = base(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    for i, (lo, hi) in enumerate(spans):
        for p in range(lo, hi, max_rows):
            logits = head(hidden[i, p : min(hi, p + max_rows)])
            if cap is not None:  # the model's own order of operations, in its own dtype
                logits = torch.tanh(logits / cap) * cap
            yield i, p, logits.float()


def score_batch(
    model,
    sequences: list[list[int]],
    starts: list[int],
    top_k: int = 0,
    max_rows: int | None = None,
) -> list[ScoreResult]:
    """One batched forward over all sequences; `starts[i] >= 1` is the first scored token.

    Every statistic is reduced on the device chunk by chunk and read back in one transfer.
    """
    if len(sequences) != len(starts):
        raise ValueError("sequences and starts must have the same length")
    if not sequences:
        return []
    for seq, start in zip(sequences, starts, strict=True):
        if not 1 <= start < len(seq):
            raise ValueError(f"start {start} out of range for a sequence of {len(seq)} tokens")
    device = next(model.parameters()).device
    targets = [torch.tensor(s, dtype=torch.long, device=device) for s in sequences]
    k = min(top_k, model.get_output_embeddings().weight.shape[0]) if top_k > 0 else 0
    parts: list[torch.Tensor] = []
    spans = [(start - 1, len(seq) - 1) for seq, start in zip(sequences, starts, strict=True)]
    for i, p, logits in logit_chunks(model, sequences, spans, max_rows):
        logp = torch.log_softmax(logits, dim=-1)
        del logits
        target = targets[i][p + 1 : p + 1 + logp.shape[0]]
        chosen = logp.gather(1, target[:, None])
        cols = [chosen, (logp > chosen).sum(dim=1, keepdim=True)]
        if k:
            vals, idx = logp.topk(k, dim=-1)
            cols += [idx, vals]
        parts.append(torch.cat([c.double() for c in cols], dim=1))
    rows = torch.cat(parts).tolist()  # float64 holds ranks, token ids and float32 exactly
    results, at = [], 0
    for seq, start in zip(sequences, starts, strict=True):
        mine, at = rows[at : at + len(seq) - start], at + len(seq) - start
        results.append(
            ScoreResult(
                logprobs=[r[0] for r in mine],
                ranks=[int(r[1]) for r in mine],
                top=[list(zip(map(int, r[2 : 2 + k]), r[2 + k :], strict=True)) for r in mine]
                if k
                else [],
            )
        )
    return results
