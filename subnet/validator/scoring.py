"""Scores, pure: one reward per queried answer, an EMA per (miner, domain), weights from EMAs.

reward = quality × speed × reliability, each in [0, 1]:
- quality: 0 when verification failed, else the declared expert's fit to the task's domain
  (`domain_fit`: its per-token likelihood on held-out domain text relative to the best expert
  the validator knows for that domain), so a code expert answering math earns less;
- speed: 0.5 + 0.5 × mean(min(1, median_ttft / ttft), min(1, tps / median_tps)) against the
  peers verified in the same step: being faster than the median earns no more than the median
  (no race to the bottom), being slower costs at most half the reward;
- reliability: 0 for a timeout or error (the EMA then carries the failure rate).

A `429` is not a sample: the miner is not updated at all. Miners not queried are untouched —
their EMA does not decay between samples, and `evidence` counts what a score rests on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ScoringConfig:
    ema_alpha: float = 0.1  # weight of a new sample; ~10 samples to move most of the way
    speed_floor: float = 0.5  # the share of the reward that speed cannot take away
    # A score resting on fewer samples than this is scaled down linearly (new miners ramp up).
    min_evidence: int = 4


@dataclass(frozen=True)
class Stat:
    """EMA of rewards for one (miner, domain), the samples it rests on, and its last update."""

    ema: float = 0.0
    evidence: int = 0
    failures: int = 0
    last_reason: str = ""
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "ema": self.ema,
            "evidence": self.evidence,
            "failures": self.failures,
            "last_reason": self.last_reason,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Stat:
        ema = float(d.get("ema", 0.0))
        if not math.isfinite(ema) or not 0.0 <= ema <= 1.0:
            ema = 0.0
        return cls(
            ema=ema,
            evidence=max(0, int(d.get("evidence", 0))),
            failures=max(0, int(d.get("failures", 0))),
            last_reason=str(d.get("last_reason", ""))[:64],
            updated_at=float(d.get("updated_at", 0.0)),
        )


@dataclass(frozen=True)
class Sample:
    """What one query produced, as the scoring sees it."""

    uid: int
    domain: str
    verified: bool
    reason: str  # verify reason, or "timeout" / "error"
    domain_fit: float = 1.0
    ttft_s: float | None = None
    tokens_per_s: float | None = None


def domain_fit(mean_logprob: float, best_mean_logprob: float) -> float:
    """exp(mean − best): the ratio of per-token likelihoods; 1 for the best expert of a domain."""
    return math.exp(min(0.0, mean_logprob - best_mean_logprob))


def speed_factor(
    ttft_s: float, tps: float, median_ttft: float, median_tps: float, floor: float
) -> float:
    t = min(1.0, median_ttft / ttft_s) if ttft_s > 0 else 1.0
    r = min(1.0, tps / median_tps) if median_tps > 0 else 1.0
    return floor + (1.0 - floor) * (t + r) / 2.0


def rewards(samples: Iterable[Sample], cfg: ScoringConfig = ScoringConfig()) -> dict[int, float]:
    """Reward in [0, 1] per sample's uid (one sample per uid per step)."""
    samples = list(samples)
    ok = [s for s in samples if s.verified and s.ttft_s is not None and s.tokens_per_s]
    med_ttft = statistics.median(s.ttft_s for s in ok) if ok else 0.0
    med_tps = statistics.median(s.tokens_per_s for s in ok) if ok else 0.0
    out: dict[int, float] = {}
    for s in samples:
        if not s.verified:
            out[s.uid] = 0.0
            continue
        speed = 1.0
        if s.ttft_s is not None and s.tokens_per_s:
            speed = speed_factor(s.ttft_s, s.tokens_per_s, med_ttft, med_tps, cfg.speed_floor)
        out[s.uid] = max(0.0, min(1.0, s.domain_fit)) * speed
    return out


def update(stat: Stat, reward: float, reason: str, now: float, cfg: ScoringConfig) -> Stat:
    """The EMA after one more sample. The first sample sets the EMA outright."""
    reward = max(0.0, min(1.0, reward))
    ema = reward if stat.evidence == 0 else (1 - cfg.ema_alpha) * stat.ema + cfg.ema_alpha * reward
    return replace(
        stat,
        ema=ema,
        evidence=stat.evidence + 1,
        failures=stat.failures + (reason != "ok"),
        last_reason=reason,
        updated_at=now,
    )


def miner_score(
    stats: Mapping[str, Stat], domain_shares: Mapping[str, float], cfg: ScoringConfig
) -> float:
    """One number per miner: domain EMAs weighted by each domain's share of traffic, with
    a confidence ramp for thin evidence."""
    total = 0.0
    for domain, share in domain_shares.items():
        st = stats.get(domain)
        if st is None or st.evidence == 0:
            continue
        confidence = min(1.0, st.evidence / max(1, cfg.min_evidence))
        total += share * st.ema * confidence
    return total


def normalize(scores: Mapping[int, float]) -> dict[int, float]:
    """Scores → weights summing to 1 (zeros dropped); empty when nobody earned anything."""
    clean = {u: s for u, s in scores.items() if math.isfinite(s) and s > 0}
    total = sum(clean.values())
    if total <= 0:
        return {}
    return {u: s / total for u, s in sorted(clean.items())}
