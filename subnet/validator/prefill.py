"""The validator's reference prefill: one batched forward over prompt + returned tokens.

Same layout and numerics as the engine's `score_batch` (right-padded batch, attention mask,
float32 log-softmax of the unmodified logits), plus what sampled answers need: for each
position, the mean and variance of log p(token) under the distribution an honest sampler draws
from (temperature, then top-p), each returned token's log-probability under that distribution,
and whether it lies inside the top-p nucleus. Summed over an answer,
(Σ log p(t_i) − Σ mean_i) / sqrt(Σ var_i) is ~N(0, 1) for honest sampling whatever the model,
so one z-score threshold serves every expert.

End of sequence is a set of ids (`LoadedExpert.eos_ids`): the probability of ending at a
position is the sum over the set.
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from subnet.engine.scoring import padded_logits
from subnet.validator.verify import Reference, Simulated

# A token this close to the nucleus boundary (cumulative probability) still counts as inside:
# a miner's float16/bfloat16 softmax can move the boundary slightly.
NUCLEUS_SLACK = 0.02
Z_CLIP = 4.0  # nats: a sampled token's deviation counts at most this far below its mean


@torch.inference_mode()
def reference_prefill(
    model,
    prompts: list[list[int]],
    answers: list[list[int]],
    temperatures: list[float],
    top_ps: list[float],
    eos_ids: Collection[int] | int,
    max_context: int,
) -> list[Reference]:
    """One forward over every prompt + answer; a Reference per answer.

    The logits at the last answer token give the end-of-sequence probability after it, so
    nothing is appended (`max_context` bounds what the caller may pass, not checked here).
    """
    eos = torch.tensor(sorted({eos_ids} if isinstance(eos_ids, int) else set(eos_ids)))
    seqs = [[*p, *a] for p, a in zip(prompts, answers, strict=True)]
    logits = padded_logits(model, seqs)
    eos = eos.to(logits.device)
    out = []
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        n, start = len(a), len(p)
        rows = logits[i, start - 1 : start + n].float()  # row j predicts answer token j
        logp = torch.log_softmax(rows, dim=-1)
        target = torch.tensor(a, dtype=torch.long, device=rows.device)
        chosen = logp[:n].gather(1, target[:, None])[:, 0]
        top1 = logp[:n].max(dim=-1).values
        ranks = (logp[:n] > chosen[:, None]).sum(dim=1)
        end_lp = torch.logsumexp(logp[:, eos], dim=-1)  # n + 1 rows: after the last token too
        sampled = _sampling(rows[:n], logp[:n], target, eos, temperatures[i], top_ps[i])
        out.append(
            Reference(
                logprobs=tuple(chosen.tolist()),
                ranks=tuple(ranks.tolist()),
                top1_logprobs=tuple(top1.tolist()),
                eos_logprobs=tuple(end_lp[:n].tolist()),
                final_eos_logprob=float(end_lp[n]),
                **sampled,
            )
        )
    return out


@torch.inference_mode()
def simulate(model, prompts: list[list[int]], answers: list[list[int]]) -> list[Simulated]:
    """What an honest miner serving `model` claims for each answer: the raw log-probability
    of each returned token and of the argmax at its position."""
    seqs = [[*p, *a] for p, a in zip(prompts, answers, strict=True)]
    logits = padded_logits(model, seqs)
    out = []
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        logp = torch.log_softmax(logits[i, len(p) - 1 : len(p) + len(a) - 1].float(), -1)
        target = torch.tensor(a, dtype=torch.long, device=logp.device)
        chosen = logp.gather(1, target[:, None])[:, 0]
        out.append(Simulated(tuple(chosen.tolist()), tuple(logp.max(-1).values.tolist())))
    return out


def _sampling(rows, logp, target, eos, temperature: float, top_p: float) -> dict:
    """What an honest sampler's distribution q (temperature, then top-p) says about the tokens:
    Σ mean and Σ variance of log p(t) for t ~ q, tokens outside the nucleus, log q(t_i),
    log q(end) at the last position, Σ q(argmax) and Σ q(argmax)(1 − q(argmax))."""
    if temperature <= 0:
        return {}
    tempered = torch.log_softmax(rows / temperature, dim=-1)
    q = tempered.exp()
    sorted_q, order = q.sort(dim=-1, descending=True)
    before = sorted_q.cumsum(dim=-1) - sorted_q  # mass strictly ahead of each token
    keep = torch.zeros_like(before, dtype=torch.bool).scatter(1, order, before < top_p)
    if top_p >= 1.0:  # the engine then draws from every token (no cumulative-sum rounding)
        keep = torch.ones_like(keep)
    log_mass = torch.logsumexp(tempered.masked_fill(~keep, float("-inf")), dim=-1)
    logq = (tempered - log_mass[:, None]).masked_fill(~keep, float("-inf"))
    q = logq.exp()
    safe = torch.where(keep, logp, torch.zeros_like(logp))
    mean = (q * safe).sum(dim=-1)
    var = ((q * safe.square()).sum(dim=-1) - mean.square()).clamp(min=0)
    # The same for each token's deviation from its mean clipped at -Z_CLIP nats: an honestly
    # sampled rare token then moves the score by at most Z_CLIP (heavy lower tails).
    dev = (safe - mean[:, None]).clamp(min=-Z_CLIP)
    dev_mean = (q * dev).sum(dim=-1)
    dev_var = ((q * dev.square()).sum(dim=-1) - dev_mean.square()).clamp(min=0)
    chosen_dev = (logp.gather(1, target[:, None])[:, 0] - mean).clamp(min=-Z_CLIP)
    # Inside-the-nucleus test with slack: tempered mass ahead of the returned token < top_p.
    ahead = (tempered.exp() * (logp > logp.gather(1, target[:, None]))).sum(dim=-1)
    outside = int((ahead >= top_p + NUCLEUS_SLACK).sum())
    # A token just outside the nucleus (within the slack) gets its un-truncated probability.
    token_logq = torch.where(
        keep.gather(1, target[:, None])[:, 0],
        logq.gather(1, target[:, None])[:, 0],
        tempered.gather(1, target[:, None])[:, 0],
    )
    top_q = q.max(dim=-1).values
    return {
        "expected_logprob": float(mean.sum()),
        "logprob_var": float(var.sum()),
        "clipped_dev": float((chosen_dev - dev_mean).sum()),
        "clipped_var": float(dev_var.sum()),
        "outside_nucleus": outside,
        "sample_logprobs": tuple(token_logq.tolist()),
        "end_logprob": float(torch.logsumexp(logq[-1, eos], dim=-1)),
        "top1_expected": float(top_q.sum()),
        "top1_var": float((top_q * (1 - top_q)).sum()),
    }
