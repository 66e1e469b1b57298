"""The verifier shell: reference experts by weights hash, one batched prefill per expert.

`ExpertRegistry` loads the validator's reference copies (a directory of expert directories)
keyed by weights hash, and measures each one's fit to every task domain (mean token
log-likelihood on held-out domain text). `Verifier.verify_many` turns a batch of answers into
verdicts: cheap checks first, then one `reference_prefill` per expert over prompt + returned
tokens (+ EOS, to read the end-of-sequence probability after the last token), then the pure
`verify.verify`. It blocks on the model: call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from protocol import ExpertCard, GenerateRequest, GenerateResponse
from subnet.engine.loading import ExpertLoadError, LoadedExpert, load_expert
from subnet.engine.prompt import encode_prompt
from subnet.engine.scoring import score_batch
from subnet.validator import tasks
from subnet.validator.prefill import reference_prefill
from subnet.validator.verify import (
    Reference,
    Thresholds,
    Verdict,
    check_reference,
    label_copy,
    precheck,
)

log = logging.getLogger(__name__)


class ExpertRegistry:
    """weights_hash -> reference expert, and domain -> best held-out mean logprob."""

    def __init__(self, experts: dict[str, LoadedExpert], fit: dict[str, dict[str, float]]):
        self.experts = experts
        self.fit = fit  # weights_hash -> domain -> mean logprob on held-out text

    @classmethod
    def load_dir(cls, root: Path, domains: tuple[str, ...] = tasks.DOMAINS) -> ExpertRegistry:
        experts: dict[str, LoadedExpert] = {}
        root = Path(root)
        dirs = [root] if any(root.glob("*.safetensors")) else sorted(root.iterdir())
        for d in dirs:
            if not d.is_dir() or not any(d.glob("*.safetensors")):
                continue
            try:
                e = load_expert(d, device="cpu", dtype="float32")
            except ExpertLoadError as err:
                log.warning("skipping reference expert %s: %s", d, err)
                continue
            experts[e.card.weights_hash] = e
        if not experts:
            raise ExpertLoadError(
                f"no reference experts under {root}; build them with `dmoe experts build`"
            )
        fit = {h: heldout_fit(e, domains) for h, e in experts.items()}
        for h, e in experts.items():
            log.info("reference expert %s %s fit %s", e.card.model_id, h[:12], fit[h])
        return cls(experts, fit)

    def restrict(self, allowed: frozenset[str]) -> list[str]:
        """Keep only experts whose weights hash is allowed (the owner's registry); returns the
        model ids dropped. Answers from dropped experts then verify as `unknown_model`."""
        dropped = [e.card.model_id for h, e in self.experts.items() if h not in allowed]
        self.experts = {h: e for h, e in self.experts.items() if h in allowed}
        self.fit = {h: f for h, f in self.fit.items() if h in allowed}
        return dropped

    def get(self, weights_hash: str) -> LoadedExpert | None:
        return self.experts.get(weights_hash)

    def domain_fit(self, weights_hash: str, domain: str) -> float:
        from subnet.validator.scoring import domain_fit

        mine = self.fit.get(weights_hash, {}).get(domain)
        if mine is None:
            return 0.0
        best = max(f.get(domain, mine) for f in self.fit.values())
        return domain_fit(mine, best)

    def cards(self) -> list[ExpertCard]:
        return [e.card for e in self.experts.values()]


def heldout_fit(expert: LoadedExpert, domains: tuple[str, ...]) -> dict[str, float]:
    """Mean token logprob of the expert on each domain's held-out text (one forward each)."""
    out: dict[str, float] = {}
    limit = expert.card.max_context
    for domain in domains:
        ids = expert.tokenizer.encode(tasks.heldout_text(domain), add_special_tokens=False)
        ids = ids[:limit]
        if len(ids) < 2:
            continue
        (res,) = score_batch(expert.model, [ids], [1])
        out[domain] = sum(res.logprobs) / len(res.logprobs)
    return out


@dataclass(frozen=True)
class Item:
    """One answer to verify: what was asked, what came back, which weights were declared."""

    weights_hash: str
    request: GenerateRequest
    response: GenerateResponse
    uid: int = -1


class RecentOutputs:
    """Bounded map: hash of an answer's tokens -> hash of the prompt it answered."""

    def __init__(self, max_entries: int = 8192):
        self.max_entries = max_entries
        self._seen: OrderedDict[bytes, bytes] = OrderedDict()

    @staticmethod
    def _key(ids) -> bytes:
        return hashlib.blake2b(repr(tuple(ids)).encode(), digest_size=16).digest()

    def seen_elsewhere(self, prompt_ids: list[int], output_ids) -> bool:
        """True if the same output was seen for a different prompt; records this one."""
        out_key, prompt_key = self._key(output_ids), self._key(prompt_ids)
        prior = self._seen.get(out_key)
        if prior is None:
            self._seen[out_key] = prompt_key
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
        return prior is not None and prior != prompt_key


class Verifier:
    def __init__(
        self,
        registry: ExpertRegistry,
        thresholds: Thresholds = Thresholds(),
        recent: RecentOutputs | None = None,
    ):
        self.registry = registry
        self.th = thresholds
        self.recent = recent if recent is not None else RecentOutputs()

    def verify_many(self, items: list[Item]) -> list[Verdict]:
        """Verdicts in the order of `items` (which should be the order answers arrived in)."""
        verdicts: list[Verdict | None] = [None] * len(items)
        pending: dict[str, list[tuple[int, list[int]]]] = {}
        copies: dict[int, bool] = {}
        for i, item in enumerate(items):
            expert = self.registry.get(item.weights_hash)
            tok = (expert or next(iter(self.registry.experts.values()))).tokenizer
            eos = tok.eos_token_id
            ids = item.response.token_ids
            prompt = encode_prompt(tok, item.request)
            before_last = tok.decode(list(ids[:-1])) if len(ids) > 1 else ""
            copied = self.recent.seen_elsewhere(prompt, ids) if ids else False
            if expert is not None and len(prompt) + len(ids) > expert.card.max_context:
                verdicts[i] = Verdict.fail("bad_shape", "prompt + answer exceed the context")
                continue
            if any(t >= len(tok) for t in ids):
                # Would index past the embedding table: refuse before it reaches the model.
                verdicts[i] = Verdict.fail("bad_shape", "token id outside the vocabulary")
                continue
            verdicts[i] = precheck(
                item.request,
                item.response,
                known_model=expert is not None,
                eos_id=eos,
                text_before_last=before_last,
                th=self.th,
            )
            if verdicts[i] is None:
                pending.setdefault(item.weights_hash, []).append((i, prompt))
                copies[i] = copied
        for weights_hash, group in pending.items():
            expert = self.registry.experts[weights_hash]
            eos = expert.tokenizer.eos_token_id
            refs = self._prefill(expert, group, items)
            for (i, _), ref in zip(group, refs, strict=True):
                v = check_reference(
                    items[i].request, items[i].response, ref, eos_id=eos, th=self.th
                )
                verdicts[i] = label_copy(v, copies.get(i, False))
        return [v if v is not None else Verdict.fail("error", "not verified") for v in verdicts]

    def _prefill(self, expert: LoadedExpert, group, items) -> list[Reference]:
        return reference_prefill(
            expert.model,
            [prompt for _, prompt in group],
            [list(items[i].response.token_ids) for i, _ in group],
            [items[i].request.temperature for i, _ in group],
            [items[i].request.top_p for i, _ in group],
            expert.tokenizer.eos_token_id,
            expert.card.max_context,
        )
