"""The validator's reference prefill: one batched forward over prompt + returned tokens.

Same layout and numerics as the engine's `score_batch` (right-padded batch, attention mask,
float32 log-softmax of the unmodified logits), plus what sampled answers need: for each
position, the mean and variance of log p(token) under the distribution an honest sampler draws
from (temperature, then top-p), and whether the returned token lies inside that top-p nucleus.
Summed over an answer, (Σ log p(t_i) − Σ mean_i) / sqrt(Σ var_i) is ~N(0, 1) for honest
sampling whatever the model, so one z-score threshold serves every expert.
"""

from __future__ import annotations

import torch

from subnet.engine.scoring import padded_logits
from subnet.validator.verify import Reference

# A token this close to the nucleus boundary (cumulative probability) still counts as inside:
# a miner's float16/bfloat16 softmax can move the boundary slightly.
NUCLEUS_SLACK = 0.02


@torch.inference_mode()
def reference_prefill(
    model,
    prompts: list[list[int]],
    answers: list[list[int]],
    temperatures: list[float],
    top_ps: list[float],
    eos_id: int,
    max_context: int,
) -> list[Reference]:
    """One forward over every (prompt + answer [+ EOS]); a Reference per answer."""
    seqs = []
    for p, a in zip(prompts, answers, strict=True):
        seq = [*p, *a]
        seqs.append([*seq, eos_id] if len(seq) < max_context else seq)
    logits = padded_logits(model, seqs)
    out = []
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        n, start = len(a), len(p)
        rows = logits[i, start - 1 : len(seqs[i]) - 1].float()  # position j predicts token j+1
        logp = torch.log_softmax(rows, dim=-1)
        target = torch.tensor(a, dtype=torch.long, device=rows.device)
        chosen = logp[:n].gather(1, target[:, None])[:, 0]
        top1 = logp[:n].max(dim=-1).values
        ranks = (logp[:n] > chosen[:, None]).sum(dim=1)
        eos_lp = logp[:n, eos_id]
        mean, var, outside = _sampling_moments(
            rows[:n], logp[:n], target, temperatures[i], top_ps[i]
        )
        out.append(
            Reference(
                logprobs=tuple(chosen.tolist()),
                ranks=tuple(ranks.tolist()),
                top1_logprobs=tuple(top1.tolist()),
                eos_logprobs=tuple(eos_lp.tolist()),
                final_eos_logprob=float(logp[n, eos_id]) if len(logp) > n else None,
                expected_logprob=float(mean),
                logprob_var=float(var),
                outside_nucleus=int(outside),
            )
        )
    return out


def _sampling_moments(rows, logp, target, temperature: float, top_p: float):
    """Σ mean and Σ variance of log p(t) for t ~ q (temperature, top-p), and tokens outside q."""
    if temperature <= 0:
        return 0.0, 0.0, 0
    q = torch.softmax(rows / temperature, dim=-1)
    sorted_q, order = q.sort(dim=-1, descending=True)
    before = sorted_q.cumsum(dim=-1) - sorted_q  # mass strictly ahead of each token
    keep_sorted = before < top_p
    keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)
    q = torch.where(keep, q, torch.zeros_like(q))
    q = q / q.sum(dim=-1, keepdim=True)
    safe = torch.where(q > 0, logp, torch.zeros_like(logp))
    mean = (q * safe).sum(dim=-1)
    var = (q * safe.square()).sum(dim=-1) - mean.square()
    # Inside-the-nucleus test with slack: mass ahead of the returned token must be < top_p.
    ahead = torch.softmax(rows / temperature, dim=-1) * (logp > logp.gather(1, target[:, None]))
    outside = (ahead.sum(dim=-1) >= top_p + NUCLEUS_SLACK).sum()
    return mean.sum(), var.clamp(min=0).sum(), outside
