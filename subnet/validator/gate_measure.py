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

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
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


class GateTrainer:
    """Feeds the gate from what the validator sees anyway, off the event loop and bounded.

    `offer(text)` queues a prompt (a task's, or an organic request's after its answer was
    verified); `train_once()` (the scoring loop's, once a step) measures up to `per_batch` of the newest queued prompts on every
    reference expert in a worker thread and folds them into the gate on the event loop (the
    gate is read by `rank` there, so it is never mutated from another thread). At most
    `max_pending` prompts wait; older ones are dropped: the gate wants recent traffic, not all
    of it. A failed measurement is logged and the batch skipped; the gate stays as it was.

    Prompts alone, not (prompt, answer) pairs: every expert's likelihood of a prompt is a fair
    reading, whereas an answer inflates its producer's, and dropping the producer would leave
    each expert's model without the very prompts it is routed (its own domain).
    """

    def __init__(
        self,
        gate: Any,
        registry: Any,
        *,
        domains: Callable[[], Mapping[str, Sequence[str]]] | None = None,
        per_batch: int = 8,
        max_pending: int = 64,
    ) -> None:
        self.gate = gate
        self.registry = registry
        self.domains = domains  # the experts' earned domains, for the gate's cold-start rule
        self.per_batch = max(1, per_batch)
        self.pending: deque[str] = deque(maxlen=max(1, max_pending))
        self.observed = 0
        self.failures = 0
        # weights hash -> (prompts the gate routed to it, mean measured quality on them)
        self.quality: dict[str, tuple[int, float]] = {}

    def offer(self, text: str) -> None:
        if text and text.strip():
            self.pending.append(text)

    async def train_once(self) -> int:
        """Measure and learn from up to `per_batch` queued prompts; returns observations made."""
        batch = [self.pending.pop() for _ in range(min(self.per_batch, len(self.pending)))]
        if not batch:
            return 0
        try:
            measured = await asyncio.to_thread(measure_quality, self.registry, batch)
        except (RuntimeError, ValueError, IndexError) as err:  # a model or tokenizer failure
            self.failures += 1
            log.warning("gate training skipped %d prompts: %s: %s", len(batch), type(err), err)
            return 0
        domains = self.domains() if self.domains is not None else None
        made = 0
        for text, quality in zip(batch, measured, strict=True):
            if not quality:
                continue
            # The routed expert's measured quality, read before the gate learns from it.
            pick = self.gate.rank(text, domains or list(quality))[0][0]
            q = quality.get(pick)
            if q is not None and math.isfinite(q):
                n, mean = self.quality.get(pick, (0, 0.0))
                self.quality[pick] = (n + 1, mean + (q - mean) / (n + 1))
            if self.gate.observe(text, quality, domains):
                made += 1
        self.observed += made
        return made

    def status(
        self, earned: Mapping[str, Sequence[str]], demand: Mapping[str, float]
    ) -> dict[str, dict[str, Any]]:
        """Per reference expert (by model id): its earned domains and demand, the gate's
        evidence, and the prompts the gate routed to it with their mean measured quality."""
        experts: Mapping[str, Any] = getattr(self.registry, "experts", self.registry)
        evidence = self.gate.evidence()
        out = {}
        for h, e in experts.items():
            n, quality = self.quality.get(h, (0, None))
            out[e.card.model_id] = {
                "weights_hash": h,
                "domains": list(earned.get(h, ())),
                "demand": demand.get(h, 0.0),
                "gate_observations": evidence.get(h, 0),
                "routed_prompts": n,
                "quality": quality,
            }
        return out
