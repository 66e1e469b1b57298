"""Teacher-forced scoring: log-probabilities and ranks of given tokens in one batched forward.

Shared by the miner's `/v1/score` and the validator's verifier, so both compute exactly the same
numbers. Pure function of (model, ids): no I/O, no state. Log-probabilities are of the model's
unmodified distribution (float32 log-softmax of the logits; no temperature, no top-p).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ScoreResult:
    """For tokens `start..len-1` of one sequence: logprob, rank (0 = argmax), optional top-k."""

    logprobs: list[float]
    ranks: list[int]
    top: list[list[tuple[int, float]]]


@torch.inference_mode()
def padded_logits(model, sequences: list[list[int]]) -> torch.Tensor:
    """Logits of one right-padded forward over `sequences` (batch x longest x vocab).

    Shared by the engine's scoring path and the validator's verification prefill, so both read
    the declared model exactly the same way.
    """
    device = next(model.parameters()).device
    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits


def score_batch(
    model, sequences: list[list[int]], starts: list[int], top_k: int = 0
) -> list[ScoreResult]:
    """One right-padded forward over all sequences; `starts[i] >= 1` is the first scored token."""
    if len(sequences) != len(starts):
        raise ValueError("sequences and starts must have the same length")
    if not sequences:
        return []
    for seq, start in zip(sequences, starts, strict=True):
        if not 1 <= start < len(seq):
            raise ValueError(f"start {start} out of range for a sequence of {len(seq)} tokens")
    logits = padded_logits(model, sequences)
    results = []
    for i, (seq, start) in enumerate(zip(sequences, starts, strict=True)):
        # Position p predicts token p + 1.
        rows = logits[i, start - 1 : len(seq) - 1].float()
        logp = torch.log_softmax(rows, dim=-1)
        target = torch.tensor(seq[start:], dtype=torch.long, device=rows.device)
        chosen = logp.gather(1, target[:, None])[:, 0]
        ranks = (logp > chosen[:, None]).sum(dim=1)
        top: list[list[tuple[int, float]]] = []
        if top_k > 0:
            vals, idx = logp.topk(min(top_k, logp.shape[-1]), dim=-1)
            top = [
                list(zip(r_idx.tolist(), r_val.tolist(), strict=True))
                for r_idx, r_val in zip(idx, vals, strict=True)
            ]
        results.append(ScoreResult(chosen.tolist(), ranks.tolist(), top))
    return results
