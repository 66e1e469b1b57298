"""Which miners a scoring step queries, pure.

Each step samples `k` serving miners without replacement, with probability proportional to
(1 + age / age_scale) / (1 + evidence): miners with little evidence or not seen for a while come
first, but everyone keeps a chance. A miner answering `429` is skipped until its `Retry-After`
has passed (`Backoff429`) and is not penalised beyond the missed sample; a miner whose in-flight
requests fill its declared capacity is skipped this step.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingConfig:
    per_step: int = 16  # miners queried per step
    age_scale_s: float = 120.0  # a miner unseen this long counts double
    max_backoff_s: float = 300.0  # a Retry-After longer than this is capped


@dataclass(frozen=True)
class Candidate:
    uid: int
    evidence: int  # samples its current scores rest on (sum over domains)
    last_queried: float  # monotonic seconds; 0 = never
    inflight: int = 0
    capacity: int = 1
    blocked_until: float = 0.0  # from a 429's Retry-After


def priority(c: Candidate, now: float, cfg: SamplingConfig) -> float:
    age = now - c.last_queried if c.last_queried > 0 else cfg.age_scale_s * 10
    return (1.0 + max(0.0, age) / cfg.age_scale_s) / (1.0 + c.evidence)


def choose(
    candidates: list[Candidate], now: float, rng: random.Random, cfg: SamplingConfig
) -> list[int]:
    """Up to `cfg.per_step` uids, weighted-sampled without replacement (Efraimidis-Spirakis)."""
    eligible = [c for c in candidates if c.blocked_until <= now and c.inflight < c.capacity]
    keyed = []
    for c in eligible:
        w = priority(c, now, cfg)
        keyed.append((rng.random() ** (1.0 / w), c.uid))
    keyed.sort(reverse=True)
    return [uid for _, uid in keyed[: cfg.per_step]]


class Backoff429:
    """uid -> time until which it asked us to wait. Bounded: oldest entries fall out."""

    def __init__(self, cfg: SamplingConfig, max_entries: int = 4096):
        self.cfg = cfg
        self.max_entries = max_entries
        self._until: OrderedDict[int, float] = OrderedDict()

    def note(self, uid: int, now: float, retry_after_s: float | None) -> None:
        wait = min(self.cfg.max_backoff_s, max(1.0, retry_after_s or 1.0))
        self._until[uid] = now + wait
        self._until.move_to_end(uid)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)

    def until(self, uid: int) -> float:
        return self._until.get(uid, 0.0)
