"""What a miner is owed, pure: decayed evidence per miner, its value, and pay that follows demand.

Evidence (`Tally`) is a set of sums that age with a half-life in blocks: every sample is weighed
by 2^(-age / half_life), so a miner that stops answering loses its weight within about a tempo
(half-life = tempo / 5 by default: after one tempo old evidence counts 1/32). Every *opportunity*
is a sample: a verified answer, a failed one, a timeout, and a refusal (`429`) while the validator
was within its fair share of the miner's declared capacity. Refusing therefore costs exactly what
failing costs, whichever request was refused (greedy or sampled, task or user), and cannot be
used to choose which checks a miner faces.

A miner's value = pass rate × served throughput × confidence:
- pass rate = verified answers / samples (refusals, failures and timeouts count against it);
- served throughput = verified useful tokens that arrived within the validator's probe windows
  / the windows' length; a probe keeps up to its fair share of the declared capacity in flight
  for the whole window. Short answers earn in proportion to their tokens, a slow or held-back
  stream delivers fewer tokens in the window, and the tokens one engine delivers in a window are
  the same however many hotkeys they are counted under (hotkeys probed together);
- confidence ramps with the (decayed) number of samples, so thin evidence earns less.
A verdict that proves cheating (`CHEATS`) also sets a strike: the miner earns nothing until the
strike expires (`strike_tempos`), so a cheat caught once costs a tempo of pay.

Pay follows demand (`pool_weights`): each expert (weights hash) gets a share of the validator's
weight equal to the demand routed to it (organic requests, plus a small weight of the
validator's own routing of task prompts) with a floor that keeps new or rare experts explored and
paid; inside an expert's pool, miners split it in proportion to their value. Domains a miner
declares play no part: which expert serves a prompt is the gate's decision, from measurements.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from subnet.validator.verify import CHEATING

# Verdicts that prove a miner did not serve what it declared (or lied about it): a strike.
# Timeouts, transport errors, refusals and `buffered` (a timing judgement that a starved honest
# machine can trip) are failures of service, not proofs of cheating.
# Verdicts that prove the miner did not serve the declared model honestly (the verifier's
# `CHEATING`, `drift` from the per-miner evidence among them), plus a stream that disagreed with
# its own final answer (`query.Assembly`): each sets a strike.
CHEATS = CHEATING | {"stream_mismatch"}
BEYOND_SHARE = "refused_beyond_share"  # a 429 to a probe stream past our fair share
UNJUDGED = "unjudged"  # a burst read while our own loop stalled: timing unknown
NO_SAMPLE = frozenset({BEYOND_SHARE, UNJUDGED})


@dataclass(frozen=True)
class ScoringConfig:
    # Evidence half-life in blocks; None = the subnet's tempo / 5 (read from the chain).
    half_life_blocks: float | None = None
    # Decayed samples below which a value is scaled down linearly (new miners ramp up).
    min_evidence: float = 4.0
    # A caught cheat earns nothing for this many tempos.
    strike_tempos: float = 1.0
    # Share of the weight spread evenly over served experts whatever the demand (exploration).
    demand_floor: float = 0.2
    # A task prompt the validator routes itself counts this much of one organic request
    # (demand before any user arrives, and a steadying prior once they do).
    synthetic_demand_weight: float = 0.1


@dataclass(frozen=True)
class Tally:
    """Decayed evidence about one miner, valued at block `at`."""

    at: float = 0.0  # block the sums are valued at
    samples: float = 0.0  # Σ w: answers, failures, timeouts, refusals within our share
    passed: float = 0.0  # Σ w over verified answers
    refused: float = 0.0  # Σ w over refusals within our share (part of samples)
    tokens: float = 0.0  # Σ w × verified useful tokens that arrived within probe windows
    seconds: float = 0.0  # Σ w × those windows' seconds
    strike_until: float = -1.0  # block until which the miner earns nothing (a caught cheat)
    count: int = 0  # raw samples ever (display)
    failures: int = 0  # raw failed samples ever (display)
    last_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tally:
        """Tolerant: a missing, negative or non-finite number reads as its default."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            v = d.get(f.name, f.default)
            if f.name == "last_reason":
                out[f.name] = str(v)[:64]
            elif f.type == "int":
                out[f.name] = max(0, int(v)) if _finite(v) else 0
            else:
                out[f.name] = float(v) if _finite(v) else f.default
                if f.name not in ("at", "strike_until"):
                    out[f.name] = max(0.0, out[f.name])
        t = cls(**out)
        # Sub-sums larger than their totals mean a damaged file: keep the totals.
        return replace(
            t, passed=min(t.passed, t.samples), refused=min(t.refused, t.samples - t.passed)
        )


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def half_life(cfg: ScoringConfig, tempo: int | None) -> float:
    if cfg.half_life_blocks is not None:
        return max(1e-6, cfg.half_life_blocks)
    return max(1.0, (tempo or 360) / 5.0)


def aged(t: Tally, block: float, hl: float) -> Tally:
    """The tally valued at `block` (sums shrink by 2^(-Δ/half-life); never grow)."""
    if block <= t.at:
        return t
    k = 0.5 ** ((block - t.at) / hl)
    return replace(
        t,
        at=block,
        samples=t.samples * k,
        passed=t.passed * k,
        refused=t.refused * k,
        tokens=t.tokens * k,
        seconds=t.seconds * k,
    )


@dataclass(frozen=True)
class Sample:
    """One opportunity to serve: what came of it, as scoring sees it."""

    reason: str  # "ok", a verification reason, "timeout", "error" or "refused"
    tokens: int = 0  # useful tokens delivered (verified answers only count)
    # The verdict's per-answer sums (`verify.STAT_KEYS`) for the per-miner drift evidence, and
    # whether the answer was greedy; None where nothing was verified against the reference.
    stats: Mapping[str, float] | None = field(default=None, compare=False)
    greedy: bool = False


def add(
    t: Tally,
    samples: Iterable[Sample],
    block: float,
    hl: float,
    *,
    probe_seconds: float = 0.0,
    strike_blocks: float = 0.0,
) -> Tally:
    """The tally after a batch of samples at `block`. `probe_seconds` > 0 marks the batch as one
    probe window: its verified tokens over that window measure served throughput."""
    t = aged(t, block, hl)
    # A refusal beyond our fair share of the miner's capacity is its right, and a burst we could
    # not time is unknown: no sample at all (the probe window still counts its seconds).
    samples = [s for s in samples if s.reason not in NO_SAMPLE]
    if not samples:
        return replace(t, seconds=t.seconds + max(0.0, probe_seconds)) if probe_seconds else t
    ok = [s for s in samples if s.reason == "ok"]
    failed = [s for s in samples if s.reason != "ok"]
    cheat = any(s.reason in CHEATS for s in samples)
    tokens = sum(s.tokens for s in ok)
    return replace(
        t,
        samples=t.samples + len(samples),
        passed=t.passed + len(ok),
        refused=t.refused + sum(s.reason == "refused" for s in samples),
        tokens=t.tokens + (tokens if probe_seconds > 0 else 0.0),
        seconds=t.seconds + (probe_seconds if probe_seconds > 0 else 0.0),
        strike_until=max(t.strike_until, block + strike_blocks) if cheat else t.strike_until,
        count=t.count + len(samples),
        failures=t.failures + len(failed),
        last_reason=(failed[-1] if failed else samples[-1]).reason,
    )


def pass_rate(t: Tally) -> float:
    return t.passed / t.samples if t.samples > 0 else 0.0


def throughput(t: Tally) -> float:
    """Verified useful tokens per second of probe window (decayed)."""
    return t.tokens / t.seconds if t.seconds > 0 else 0.0


def value(t: Tally, block: float, hl: float, cfg: ScoringConfig) -> float:
    """pass rate × served throughput × confidence; 0 while a strike runs."""
    if block < t.strike_until:
        return 0.0
    t = aged(t, block, hl)
    confidence = min(1.0, t.samples / max(1e-9, cfg.min_evidence))
    v = pass_rate(t) * throughput(t) * confidence
    return v if math.isfinite(v) and v > 0 else 0.0


def fair_share(capacity: int, stake_share: float) -> int:
    """Concurrent requests this validator may expect a miner to take: its stake's share of the
    declared capacity (at least one). Refusals within it count against the miner."""
    share = min(1.0, max(0.0, stake_share))
    return max(1, math.floor(capacity * share + 1e-9))


def demand_shares(
    experts: Iterable[str], demand: Mapping[str, float], floor: float
) -> dict[str, float]:
    """Each served expert's share of the weight: `floor` spread evenly, the rest by demand
    (even when no demand was seen)."""
    experts = sorted(set(experts))
    if not experts:
        return {}
    floor = min(1.0, max(0.0, floor))
    seen = {e: max(0.0, demand.get(e, 0.0)) for e in experts}
    total = sum(seen.values())
    if total <= 0 or not math.isfinite(total):
        return {e: 1.0 / len(experts) for e in experts}
    even = floor / len(experts)
    return {e: even + (1.0 - floor) * seen[e] / total for e in experts}


def pool_weights(
    values: Mapping[int, float], expert_of: Mapping[int, str], shares: Mapping[str, float]
) -> dict[int, float]:
    """Each expert's share split among its miners in proportion to value; sums to 1 over the
    experts that have a miner with positive value (others' shares are spread over those)."""
    pools: dict[str, float] = {}
    for uid, v in values.items():
        if v > 0 and math.isfinite(v) and uid in expert_of:
            pools[expert_of[uid]] = pools.get(expert_of[uid], 0.0) + v
    live = {e: shares.get(e, 0.0) for e in pools}
    total_share = sum(live.values())
    if total_share <= 0:
        live = {e: 1.0 for e in pools}
        total_share = float(len(pools))
    out: dict[int, float] = {}
    for uid, v in values.items():
        e = expert_of.get(uid)
        if e in pools and v > 0 and math.isfinite(v):
            out[uid] = live[e] / total_share * v / pools[e]
    return dict(sorted(out.items()))


def normalize(scores: Mapping[int, float]) -> dict[int, float]:
    """Scores → weights summing to 1 (zeros dropped); empty when nobody earned anything."""
    clean = {u: s for u, s in scores.items() if math.isfinite(s) and s > 0}
    total = sum(clean.values())
    if total <= 0:
        return {}
    return {u: s / total for u, s in sorted(clean.items())}


def domain_fit(mean_logprob: float, best_mean_logprob: float) -> float:
    """exp(mean − best): the ratio of per-token likelihoods; 1 for the best expert of a domain."""
    return math.exp(min(0.0, mean_logprob - best_mean_logprob))
