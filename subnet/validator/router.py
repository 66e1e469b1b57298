"""The gate of the mixture of experts, pure: which miners serve a request, bans and hedge delays.

`pick` ranks the miners declaring the request's domain by their score for that domain, skips
banned and saturated ones, and returns the top-k in order; with probability `explore` one slot
goes to a random eligible miner outside the top-k, so new miners earn organic evidence.
`Bans` applies exponential backoff (base × 2^(failures-1), capped) to failing miners; a success
clears it. `hedge_delay` says when to send a backup request: when the first has not produced a
token within a multiple of its expected time to first token.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class RouterConfig:
    top_k: int = 3  # candidates returned per request (first + failover/hedge backups)
    explore: float = 0.1  # chance that one slot goes to a random non-top miner
    ban_base_s: float = 2.0
    ban_max_s: float = 300.0
    hedge_factor: float = 2.0  # backup after this many expected TTFTs without a token
    hedge_min_s: float = 0.05
    hedge_max_s: float = 5.0
    default_ttft_s: float = 0.5  # expected TTFT for a miner with no measurements yet


@dataclass(frozen=True)
class Expert:
    uid: int
    domains: tuple[str, ...]
    score: float  # the validator's score of this miner for the domain being routed
    inflight: int = 0
    capacity: int = 1
    expected_ttft_s: float | None = None


class Bans:
    """uid -> (failures, banned_until). Bounded LRU so departed miners do not accumulate."""

    def __init__(self, cfg: RouterConfig, max_entries: int = 4096):
        self.cfg = cfg
        self.max_entries = max_entries
        self._state: OrderedDict[int, tuple[int, float]] = OrderedDict()

    def failure(self, uid: int, now: float) -> float:
        """Record a failure; returns the ban duration in seconds."""
        failures = self._state.get(uid, (0, 0.0))[0] + 1
        duration = min(self.cfg.ban_max_s, self.cfg.ban_base_s * 2 ** (failures - 1))
        self._state[uid] = (failures, now + duration)
        self._state.move_to_end(uid)
        while len(self._state) > self.max_entries:
            self._state.popitem(last=False)
        return duration

    def success(self, uid: int) -> None:
        self._state.pop(uid, None)

    def banned(self, uid: int, now: float) -> bool:
        entry = self._state.get(uid)
        return entry is not None and entry[1] > now


def pick(
    experts: list[Expert],
    domain: str,
    *,
    now: float,
    bans: Bans,
    rng: random.Random,
    cfg: RouterConfig,
) -> list[int]:
    """Ordered uids to try for a request in `domain` (empty when nobody can serve it).

    Miners declaring the domain come first; when none is eligible the best of the others serve
    (a code expert answering a general question beats refusing the user).
    """
    usable = [e for e in experts if not bans.banned(e.uid, now) and e.inflight < e.capacity]
    inside = [e for e in usable if domain in e.domains]
    pool = inside or usable
    # Ties (e.g. all unscored) are broken at random so load spreads.
    ranked = sorted(pool, key=lambda e: (-e.score, rng.random()))
    chosen = ranked[: cfg.top_k]
    rest = ranked[cfg.top_k :]
    if rest and chosen and rng.random() < cfg.explore:
        # Exploration takes the last slot, or the first when only one slot exists, and the
        # explored miner still falls back to the best one.
        explored = rng.choice(rest)
        chosen = [explored, *chosen[:-1]] if cfg.top_k == 1 else [*chosen[:-1], explored]
        if cfg.top_k == 1:
            chosen.append(ranked[0])
    return [e.uid for e in chosen]


def hedge_delay(expected_ttft_s: float | None, cfg: RouterConfig) -> float:
    """Seconds to wait for the first token before sending a backup request."""
    ttft = expected_ttft_s if expected_ttft_s is not None else cfg.default_ttft_s
    return min(cfg.hedge_max_s, max(cfg.hedge_min_s, cfg.hedge_factor * ttft))
