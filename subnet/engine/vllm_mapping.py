"""Pure translations between the protocol and vLLM, importing neither vLLM nor torch.

- `sampling_fields(req, eos_ids)`: the `SamplingParams` fields of a GenerateRequest. vLLM
  neither detokenises nor sees stop strings: the engine applies the reference bookkeeping
  (`subnet.engine.sequence.Seq`) to the token ids, so text and finish reasons are HFEngine's.
- `token_logprob(token_id, entry, top_k)`: one vLLM per-position logprob entry as a TokenLogprob.
- `score_response(req, prompt_logprobs)`: vLLM prompt logprobs as a ScoreResponse.

vLLM entries map token id -> an object with `.logprob` and `.rank` (1 = argmax, counted with
`>=`); the protocol's rank is 0 = argmax (counted with `>`), the same number unless the token
ties with a better one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from protocol import GenerateRequest, ScoreRequest, ScoreResponse, TokenLogprob

# Log-softmax of the model's logits before temperature and top-p: the quantity the verifier
# recomputes (`score_batch`, `reference_prefill`). vLLM's "processed_logprobs" would be those of
# the sampling distribution instead, and fail `logprob_mismatch` on every sampled answer.
LOGPROBS_MODE = "raw_logprobs"


def sampling_fields(req: GenerateRequest, eos_ids: frozenset[int]) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for `req` (output kind set by the caller)."""
    sampled = req.temperature > 0.0
    return {
        "n": 1,
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p if sampled else 1.0,
        # A seed makes vLLM draw from the request's own generator: the same seed gives the same
        # tokens whatever else is in the batch (as HFEngine's per-sequence generators do).
        "seed": req.seed if sampled else None,
        # The engine's end-of-sequence set (generation config and tokenizer united), not only the
        # tokenizer's: the same set the reference engine stops on.
        "stop_token_ids": sorted(eos_ids),
        # 0 returns the chosen token's logprob alone; k adds the top k.
        "logprobs": req.top_logprobs if req.logprobs else None,
        "detokenize": False,
    }


def top_pairs(entry: Mapping[int, Any], k: int) -> tuple[tuple[int, float], ...]:
    """The k most likely (token id, logprob) of an entry, best first."""
    ranked = sorted(
        (
            (int(t), float(lp.logprob))
            for t, lp in entry.items()
            if lp.rank is not None and lp.rank <= k
        ),
        key=lambda pair: -pair[1],
    )
    return tuple(ranked[:k])


def token_logprob(token_id: int, entry: Mapping[int, Any], top_k: int) -> TokenLogprob:
    """The chosen token's logprob (+ the top `top_k` alternatives) from one vLLM entry."""
    if token_id not in entry:
        raise ValueError(f"vLLM returned no logprob for the chosen token {token_id}")
    top = top_pairs(entry, top_k) if top_k else ()
    return TokenLogprob(int(token_id), float(entry[token_id].logprob), top)


def score_response(
    req: ScoreRequest, prompt_logprobs: Sequence[Mapping[int, Any] | None]
) -> ScoreResponse:
    """`req.token_ids[start:]` scored from vLLM's prompt logprobs (entry p predicts token p)."""
    if len(prompt_logprobs) != len(req.token_ids):
        raise ValueError(
            f"vLLM returned {len(prompt_logprobs)} prompt logprobs for {len(req.token_ids)} tokens"
        )
    logprobs: list[float] = []
    ranks: list[int] = []
    top: list[tuple[tuple[int, float], ...]] = []
    for pos in range(req.start, len(req.token_ids)):
        entry = prompt_logprobs[pos]
        tok = req.token_ids[pos]
        if entry is None or tok not in entry:
            raise ValueError(f"vLLM returned no prompt logprob for token {pos}")
        logprobs.append(float(entry[tok].logprob))
        ranks.append(max(0, int(entry[tok].rank) - 1))
        if req.top_k:
            top.append(top_pairs(entry, req.top_k))
    return ScoreResponse(
        request_id=req.request_id, logprobs=tuple(logprobs), ranks=tuple(ranks), top=tuple(top)
    )
