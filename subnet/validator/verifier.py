"""The verifier shell: reference experts by weights hash, one batched prefill per expert.

`ExpertRegistry` loads the validator's reference copies (a directory of expert directories)
keyed by weights hash, on the validator's own device and precision (`--verify.device`,
`--verify.dtype`), and measures each one's fit to every task domain (mean token log-likelihood
on held-out domain text). `Verifier.verify_many` turns a batch of answers into verdicts: cheap
checks first (shape, the tokens' text), then one `reference_prefill` per expert over prompt +
returned tokens, then the pure checks of `subnet.validator.verify` with the thresholds of the
(miner precision, validator precision) pair. For the per-miner evidence it also simulates an
honest miner of the declared precision: a copy of the reference in that precision scores the
same tokens once, and its distance to the reference is the yardstick of the miner's claims.
It blocks on the model: call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from protocol import ExpertCard, GenerateRequest, GenerateResponse
from subnet.engine.loading import DTYPES, ExpertLoadError, LoadedExpert, load_expert
from subnet.engine.prompt import encode_prompt
from subnet.engine.scoring import score_batch
from subnet.validator import tasks
from subnet.validator.prefill import reference_prefill, simulate
from subnet.validator.text import answer_texts
from subnet.validator.thresholds import ThresholdTable
from subnet.validator.verify import (
    Simulated,
    Verdict,
    check_reference,
    check_text,
    label_copy,
    precheck,
    request_key,
)

log = logging.getLogger(__name__)


class ExpertRegistry:
    """weights_hash -> reference expert, and domain -> best held-out mean logprob."""

    def __init__(
        self,
        experts: dict[str, LoadedExpert],
        fit: dict[str, dict[str, float]],
        dtype: str = "float32",
    ):
        self.experts = experts
        self.fit = fit  # weights_hash -> domain -> mean logprob on held-out text
        self.dtype = dtype  # the precision every reference runs in (one of DTYPES)

    @classmethod
    def load_dir(
        cls,
        root: Path,
        domains: tuple[str, ...] = tasks.DOMAINS,
        *,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> ExpertRegistry:
        """Every expert directory under `root` on `device` in `dtype` ("auto": CUDA and
        bfloat16 when a GPU is present, else CPU and float32)."""
        experts: dict[str, LoadedExpert] = {}
        root = Path(root)
        dirs = [root] if any(root.glob("*.safetensors")) else sorted(root.iterdir())
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ExpertLoadError(f"--verify.device {device}: no CUDA device here (use cpu)")
        resolved = dtype
        for d in dirs:
            if not d.is_dir() or not any(d.glob("*.safetensors")):
                continue
            try:
                e = load_expert(d, device=device, dtype=dtype)
            except ExpertLoadError as err:
                log.warning("skipping reference expert %s: %s", d, err)
                continue
            experts[e.card.weights_hash] = e
            resolved = e.card.dtype
        if not experts:
            raise ExpertLoadError(
                f"no reference experts under {root}; build them with `dmoe experts build`"
            )
        fit = {h: heldout_fit(e, domains) for h, e in experts.items()}
        for h, e in experts.items():
            log.info("reference expert %s %s fit %s", e.card.model_id, h[:12], fit[h])
        return cls(experts, fit, resolved)

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
    """One answer to verify: what was asked, what came back, which weights were declared, and
    the precision the miner's card says it serves them in."""

    weights_hash: str
    request: GenerateRequest
    response: GenerateResponse
    uid: int = -1
    dtype: str = "float32"


class RecentOutputs:
    """Bounded map: hash of an answer's tokens -> the request (`request_key`) it answered, and
    that request's seed."""

    def __init__(self, max_entries: int = 8192):
        self.max_entries = max_entries
        self._seen: OrderedDict[bytes, tuple[bytes, int | None]] = OrderedDict()

    @staticmethod
    def _key(ids) -> bytes:
        return hashlib.blake2b(repr(tuple(ids)).encode(), digest_size=16).digest()

    def seen_elsewhere(
        self, request: bytes | Sequence[int], output_ids, seed: int | None = None
    ) -> str | None:
        """Whether the same output was seen for a different request (recording this one):
        None (not seen elsewhere), "independent" (the two drew independent randomness: another
        seed, or no seed on either) or "same_seed". `request` is a `request_key` (or, as
        before, the prompt's token ids)."""
        req_key = request if isinstance(request, bytes) else self._key(request)
        out_key = self._key(output_ids)
        prior = self._seen.get(out_key)
        if prior is None:
            self._seen[out_key] = (req_key, seed)
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            return None
        prior_key, prior_seed = prior
        if prior_key == req_key:
            return None
        same = seed is not None and seed == prior_seed
        return "same_seed" if same else "independent"


def simulated_dtype(miner: str, validator: str) -> str | None:
    """The precision whose copy of the reference stands for an honest miner's noise: the
    miner's own when it differs from the validator's; float32 when both serve the same lower
    precision (two bfloat16 runs differ by about one bfloat16 rounding from float32 each);
    None for float32 on both sides (the calibrated floor alone)."""
    if miner != validator:
        return miner
    return None if validator == "float32" else "float32"


class Verifier:
    def __init__(
        self,
        registry: ExpertRegistry,
        table: ThresholdTable | None = None,
        recent: RecentOutputs | None = None,
        *,
        simulate: bool = True,
    ):
        self.registry = registry
        self.table = table if table is not None else ThresholdTable.load()
        self.recent = recent if recent is not None else RecentOutputs()
        self.simulate = simulate  # False: no precision copies (the floor is the yardstick)
        self._sims: dict[tuple[str, str], object] = {}

    def verify_many(self, items: list[Item]) -> list[Verdict]:
        """Verdicts in the order of `items` (which should be the order answers arrived in)."""
        verdicts: list[Verdict | None] = [None] * len(items)
        pending: dict[str, list[tuple[int, list[int]]]] = {}
        copies: dict[int, str | None] = {}
        expected: dict[int, str] = {}
        fallback = next(iter(self.registry.experts.values()))
        for i, item in enumerate(items):
            expert = self.registry.get(item.weights_hash)
            known = expert or fallback
            tok, eos = known.tokenizer, _eos(known)
            req, resp = item.request, item.response
            ids = resp.token_ids
            if any(not 0 <= t < len(tok) for t in ids):
                # Would index past the embedding table: refuse before it reaches the model.
                verdicts[i] = Verdict.fail("bad_shape", "token id outside the vocabulary")
                continue
            prompt = encode_prompt(tok, req)
            if expert is not None and len(prompt) + len(ids) > expert.card.max_context:
                verdicts[i] = Verdict.fail("bad_shape", "prompt + answer exceed the context")
                continue
            texts = answer_texts(tok, req, resp)
            copied = (
                self.recent.seen_elsewhere(request_key(prompt, req), ids, req.seed) if ids else None
            )
            verdicts[i] = precheck(
                req,
                resp,
                known_model=expert is not None,
                eos_ids=eos,
                text_before_last=texts.before_last,
                text_full=texts.full,
                th=self.table.get(item.dtype, self.registry.dtype).answer,
            )
            if verdicts[i] is None:
                pending.setdefault(item.weights_hash, []).append((i, prompt))
                copies[i] = copied
                expected[i] = texts.expected
        for weights_hash, group in pending.items():
            expert = self.registry.experts[weights_hash]
            refs = self._prefill(expert, group, items)
            sims = self._simulate(expert, group, items)
            for (i, _), ref in zip(group, refs, strict=True):
                item = items[i]
                pair = self.table.get(item.dtype, self.registry.dtype)
                v = check_reference(
                    item.request,
                    item.response,
                    ref,
                    eos_ids=_eos(expert),
                    th=pair.answer,
                    sim=sims.get(i),
                    noise_floor=pair.noise_floor,
                )
                copy = copies.get(i)
                v = label_copy(v, copy is not None, pair.answer, independent=copy == "independent")
                verdicts[i] = check_text(v, item.response.text, expected[i])
        return [v if v is not None else Verdict.fail("error", "not verified") for v in verdicts]

    def _prefill(self, expert: LoadedExpert, group, items):
        return reference_prefill(
            expert.model,
            [prompt for _, prompt in group],
            [list(items[i].response.token_ids) for i, _ in group],
            [items[i].request.temperature for i, _ in group],
            [items[i].request.top_p for i, _ in group],
            _eos(expert),
            expert.card.max_context,
        )

    def _simulate(self, expert: LoadedExpert, group, items) -> dict[int, Simulated]:
        """Logprobs an honest miner of each item's declared precision would claim."""
        by_dtype: dict[str, list[tuple[int, list[int]]]] = {}
        for i, prompt in group:
            dt = simulated_dtype(items[i].dtype, self.registry.dtype)
            if self.simulate and dt is not None:
                by_dtype.setdefault(dt, []).append((i, prompt))
        out: dict[int, Simulated] = {}
        for dt, sub in by_dtype.items():
            model = self._sim_model(expert, dt)
            answers = [list(items[i].response.token_ids) for i, _ in sub]
            sims = simulate(model, [p for _, p in sub], answers)
            out.update({i: sim for (i, _), sim in zip(sub, sims, strict=True)})
        return out

    def _sim_model(self, expert: LoadedExpert, dtype: str):
        key = (expert.card.weights_hash, dtype)
        if key not in self._sims:
            log.info("simulating %s miners of %s with a copy", dtype, expert.card.model_id)
            self._sims[key] = copy.deepcopy(expert.model).to(DTYPES[dtype]).eval()
        return self._sims[key]


def _eos(expert: LoadedExpert) -> frozenset[int]:
    """The expert's end-of-sequence set (LoadedExpert built by hand may lack it)."""
    if expert.eos_ids:
        return expert.eos_ids
    eos = expert.tokenizer.eos_token_id
    return frozenset() if eos is None else frozenset({eos})
