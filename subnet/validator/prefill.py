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

from subnet.engine.scoring import logit_chunks
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
    max_rows: int | None = None,
) -> list[Reference]:
    """One forward over every prompt + answer; a Reference per answer.

    Logits come a bounded chunk of positions at a time (`logit_chunks`), so memory stays at one
    chunk x vocabulary however long the answers (a 150k-token vocabulary at 8k tokens would be
    gigabytes at once). The logits at the last answer token give the end-of-sequence probability
    after it, so nothing is appended (`max_context` bounds what the caller may pass, not checked
    here).
    """
    eos_set = sorted({eos_ids} if isinstance(eos_ids, int) else set(eos_ids))
    seqs = [[*p, *a] for p, a in zip(prompts, answers, strict=True)]
    # Row j of answer i predicts answer token j; row n predicts what follows the answer.
    spans = [(len(p) - 1, len(p) + len(a)) for p, a in zip(prompts, answers, strict=True)]
    parts: list[list[dict]] = [[] for _ in seqs]
    eos = None
    for i, pos, logits in logit_chunks(model, seqs, spans, max_rows):
        if eos is None:
            eos = torch.tensor(eos_set, device=logits.device)
        n, first = len(answers[i]), pos - spans[i][0]  # answer rows in this chunk: first ..
        logp = torch.log_softmax(logits, dim=-1)
        k = max(0, min(logp.shape[0], n - first))  # rows that predict an answer token
        target = torch.tensor(answers[i][first : first + k], dtype=torch.long, device=logp.device)
        chosen = logp[:k].gather(1, target[:, None])[:, 0]
        part = {
            "chosen": chosen.tolist(),
            "top1": logp[:k].max(dim=-1).values.tolist(),
            "ranks": (logp[:k] > chosen[:, None]).sum(dim=1).tolist(),
            "end": torch.logsumexp(logp[:, eos], dim=-1).tolist(),
        }
        if k:
            part["sampled"] = _sampling(
                logits[:k], logp[:k], target, eos, temperatures[i], top_ps[i]
            )
        parts[i].append(part)
        del logits, logp
    return [_reference(ps, len(a)) for ps, a in zip(parts, answers, strict=True)]


def _reference(parts: list[dict], n: int) -> Reference:
    """One answer's Reference from its chunks (in order)."""
    end = [x for p in parts for x in p["end"]]
    sampled = [p["sampled"] for p in parts if p.get("sampled")]
    merged: dict = {}
    if sampled:
        for key in SUMMED:
            merged[key] = sum(s[key] for s in sampled)
        merged["sample_logprobs"] = tuple(x for s in sampled for x in s["sample_logprobs"])
        merged["end_logprob"] = sampled[-1]["end_logprob"]  # at the last answer position
    return Reference(
        logprobs=tuple(x for p in parts for x in p["chosen"]),
        ranks=tuple(int(x) for p in parts for x in p["ranks"]),
        top1_logprobs=tuple(x for p in parts for x in p["top1"]),
        eos_logprobs=tuple(end[:n]),
        final_eos_logprob=float(end[n]),
        **merged,
    )


# Per-answer sums of `_sampling` that add up over chunks.
SUMMED = (
    "expected_logprob",
    "logprob_var",
    "clipped_dev",
    "clipped_var",
    "outside_nucleus",
    "top1_expected",
    "top1_var",
)


@torch.inference_mode()
def simulate(
    model, prompts: list[list[int]], answers: list[list[int]], max_rows: int | None = None
) -> list[Simulated]:
    """What an honest miner serving `model` claims for each answer: the raw log-probability
    of each returned token and of the argmax at its position (chunked like the prefill)."""
    seqs = [[*p, *a] for p, a in zip(prompts, answers, strict=True)]
    spans = [(len(p) - 1, len(p) + len(a) - 1) for p, a in zip(prompts, answers, strict=True)]
    chosen: list[list[float]] = [[] for _ in seqs]
    top1: list[list[float]] = [[] for _ in seqs]
    for i, pos, logits in logit_chunks(model, seqs, spans, max_rows):
        first = pos - spans[i][0]
        logp = torch.log_softmax(logits, dim=-1)
        target = torch.tensor(
            answers[i][first : first + logp.shape[0]], dtype=torch.long, device=logp.device
        )
        chosen[i] += logp.gather(1, target[:, None])[:, 0].tolist()
        top1[i] += logp.max(-1).values.tolist()
        del logits, logp
    return [Simulated(tuple(c), tuple(t)) for c, t in zip(chosen, top1, strict=True)]


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
