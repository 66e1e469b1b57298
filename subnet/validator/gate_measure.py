"""The gate's evidence: each reference expert's mean per-token log-likelihood of some texts.

`measure_quality` runs one right-padded forward per expert and chunk of texts through
`engine.scoring.score_batch` (the same forward the verifier and the miners' scoring path use)
and returns, per text, weights hash -> mean log-probability (nats per token). A text is either
a string (every token after the first is scored) or a (prompt, continuation) pair (only the
continuation's tokens are scored, given the prompt: how well the expert would have answered).
It blocks on the models: the validator calls it through `asyncio.to_thread`.

Evidence for the gate should not favour whoever produced it: an expert's likelihood of its own
answer is inflated (it chose those tokens), so when a pair's continuation is a miner's answer,
drop the producing expert's entry before `Gate.observe` (the others' readings are fair).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from subnet.engine.scoring import score_batch

log = logging.getLogger(__name__)

Text = str | tuple[str, str]


def measure_quality(
    registry_or_experts: Any, texts: Sequence[Text], *, batch: int = 16
) -> list[dict[str, float]]:
    """Per text, weights hash -> mean token log-likelihood; texts too short to score (no
    scored token) get an empty dict. `registry_or_experts` is an `ExpertRegistry` or a mapping
    weights hash -> `LoadedExpert`."""
    experts: Mapping[str, Any] = getattr(registry_or_experts, "experts", registry_or_experts)
    out: list[dict[str, float]] = [{} for _ in texts]
    for weights_hash, expert in experts.items():
        seqs = [_tokens(expert, t) for t in texts]
        todo = [i for i, s in enumerate(seqs) if s is not None]
        for lo in range(0, len(todo), batch):
            chunk = todo[lo : lo + batch]
            results = score_batch(
                expert.model, [seqs[i][0] for i in chunk], [seqs[i][1] for i in chunk]
            )
            for i, r in zip(chunk, results, strict=True):
                out[i][weights_hash] = sum(r.logprobs) / len(r.logprobs)
    return out


def _tokens(expert: Any, text: Text) -> tuple[list[int], int] | None:
    """(token ids, first scored position) within the expert's context, or None if nothing
    is left to score. The prompt is cut from the left when the pair does not fit."""
    tok = expert.tokenizer
    prompt, cont = ("", text) if isinstance(text, str) else text
    start_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    head = [start_id] if start_id is not None else []
    p = head + tok.encode(prompt, add_special_tokens=False)
    c = tok.encode(cont, add_special_tokens=False)
    limit = int(expert.card.max_context)
    c = c[: max(0, limit - 1)]
    p = p[-(limit - len(c)) :] if len(p) + len(c) > limit else p
    if not p:  # no BOS and no prompt: the first continuation token is the context
        p, c = c[:1], c[1:]
    if not c:
        return None
    return p + c, len(p)
