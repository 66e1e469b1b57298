"""Which miners a scoring step queries and how hard, pure.

Each step samples `k` serving miners without replacement, with probability proportional to
(1 + age / age_scale) / (1 + evidence): miners with little evidence or not seen for a while come
first, but everyone keeps a chance. A miner whose in-flight requests already fill our fair share
of its capacity is skipped this step. Each chosen miner is probed with as many concurrent tasks
as our fair share allows (`probe_size`), so served throughput is measured under real load.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingConfig:
    per_step: int = 16  # miners queried per step
    age_scale_s: float = 120.0  # a miner unseen this long counts double
    # Concurrent tasks per probed miner, at most (and at most our fair share of its capacity):
    # bounds the validator's verification cost per step.
    max_probe_streams: int = 16
    # Requests one probe stream sends within its window, at most: a safety bound on the answers
    # a step verifies. It must stay well above what a fast miner completes in a window: a cap
    # that binds measures every fast engine alike and pays a second hotkey on the same engine.
    max_requests_per_stream: int = 64
    # Prompts per step drawn from the task mix and routed by the gate to count demand before
    # (and beside) organic traffic.
    demand_prompts: int = 4


@dataclass(frozen=True)
class Candidate:
    uid: int
    evidence: int  # samples its current scores rest on
    last_queried: float  # monotonic seconds; 0 = never
    inflight: int = 0
    capacity: int = 1  # our fair share of its declared capacity


def priority(c: Candidate, now: float, cfg: SamplingConfig) -> float:
    age = now - c.last_queried if c.last_queried > 0 else cfg.age_scale_s * 10
    return (1.0 + max(0.0, age) / cfg.age_scale_s) / (1.0 + c.evidence)


def choose(
    candidates: list[Candidate], now: float, rng: random.Random, cfg: SamplingConfig
) -> list[int]:
    """Up to `cfg.per_step` uids, weighted-sampled without replacement (Efraimidis-Spirakis)."""
    eligible = [c for c in candidates if c.inflight < c.capacity]
    keyed = []
    for c in eligible:
        w = priority(c, now, cfg)
        keyed.append((rng.random() ** (1.0 / w), c.uid))
    keyed.sort(reverse=True)
    return [uid for _, uid in keyed[: cfg.per_step]]


def probe_size(capacity: int, inflight: int, max_streams: int) -> int:
    """Concurrent tasks for one probe: the miner's whole declared capacity (what is in flight
    aside), capped, at least one.

    Measuring at full capacity, not at our fair share, is what makes one engine behind two
    hotkeys earn one engine's pay: probed together, the two hotkeys split its batch. Measured at
    a fraction of it, each would find the engine half idle and be paid as a whole engine.
    Refusals count only for the first fair-share streams (`Ledger.fair_share`)."""
    return max(1, min(max_streams, capacity - inflight))
