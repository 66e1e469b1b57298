"""Which miners serve a request, pure: expert preference, bans, exploration, hedge delays.

`pick` takes the experts (weights hashes) in the gate's order of preference for the request and
returns miners to try: the first preferred expert's miners by score, then the next expert's, and
so on; banned and saturated miners are skipped; with probability `explore` the last slot goes to
a random eligible miner of the preferred expert outside the top-k, so new miners earn organic
evidence. `Bans` applies exponential backoff to miners whose requests fail in transport (a
success clears it) and holds a miner caught cheating for a fixed time that no answer clears
before its verification has run. `hedge_delay` says when to send a backup request.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RouterConfig:
    top_k: int = 3  # candidates returned per request (first + failover/hedge backups)
    explore: float = 0.1  # chance that one slot goes to a random non-top miner
    ban_base_s: float = 2.0
    ban_max_s: float = 300.0
    cheat_ban_s: float = 600.0  # a miner caught cheating gets no users for this long
    hedge_factor: float = 2.0  # backup after this many expected TTFTs without a token
    hedge_min_s: float = 0.05
    hedge_max_s: float = 5.0
    default_ttft_s: float = 0.5  # expected TTFT for a miner with no measurements yet


@dataclass(frozen=True)
class Candidate:
    uid: int
    expert: str  # weights hash of the expert it serves
    score: float  # the validator's value of this miner
    inflight: int = 0
    capacity: int = 1
    expected_ttft_s: float | None = None


class Bans:
    """uid -> (transport failures, banned until, cheat ban until). Bounded LRU."""

    def __init__(self, cfg: RouterConfig, max_entries: int = 4096):
        self.cfg = cfg
        self.max_entries = max_entries
        self._state: OrderedDict[int, tuple[int, float, float]] = OrderedDict()

    def failure(self, uid: int, now: float) -> float:
        """Record a transport failure; returns the ban duration in seconds."""
        failures, _, cheat = self._state.get(uid, (0, 0.0, 0.0))
        failures += 1
        duration = min(self.cfg.ban_max_s, self.cfg.ban_base_s * 2 ** (failures - 1))
        self._put(uid, (failures, now + duration, cheat))
        return duration

    def cheat(self, uid: int, now: float) -> None:
        """A verification failure: banned for `cheat_ban_s`, whatever it answers meanwhile."""
        failures, until, _ = self._state.get(uid, (0, 0.0, 0.0))
        self._put(uid, (failures, until, now + self.cfg.cheat_ban_s))

    def success(self, uid: int) -> None:
        """A request completed: clears transport failures only (a cheat ban runs its course)."""
        entry = self._state.get(uid)
        if entry is not None:
            if entry[2] > 0:
                self._state[uid] = (0, 0.0, entry[2])
            else:
                self._state.pop(uid)

    def banned(self, uid: int, now: float) -> bool:
        entry = self._state.get(uid)
        return entry is not None and (entry[1] > now or entry[2] > now)

    def _put(self, uid: int, entry: tuple[int, float, float]) -> None:
        self._state[uid] = entry
        self._state.move_to_end(uid)
        while len(self._state) > self.max_entries:
            self._state.popitem(last=False)


def pick(
    candidates: list[Candidate],
    preference: Sequence[str],
    *,
    now: float,
    bans: Bans,
    rng: random.Random,
    cfg: RouterConfig,
) -> list[int]:
    """Ordered uids to try (empty when nobody can serve).

    Miners of the preferred experts come first, expert by expert; when none of them is usable,
    the best of the others serve (another expert answering beats refusing the user).
    """
    usable = [c for c in candidates if not bans.banned(c.uid, now) and c.inflight < c.capacity]
    rank = {e: i for i, e in enumerate(preference)}
    inside = [c for c in usable if c.expert in rank]
    pool = inside or usable
    # Ties (e.g. all unscored) are broken at random so load spreads.
    ranked = sorted(pool, key=lambda c: (rank.get(c.expert, 0), -c.score, rng.random()))
    chosen = ranked[: cfg.top_k]
    head = chosen[0].expert if chosen else None
    rest = [c for c in ranked[cfg.top_k :] if c.expert == head]
    if rest and rng.random() < cfg.explore:
        # Exploration takes the last slot (the first when only one slot exists, and then the
        # best miner stays behind it as the fallback).
        explored = rng.choice(rest)
        chosen = [explored, chosen[0]] if cfg.top_k == 1 else [*chosen[:-1], explored]
    return [c.uid for c in chosen]


def hedge_delay(expected_ttft_s: float | None, cfg: RouterConfig) -> float:
    """Seconds to wait for the first token before sending a backup request."""
    ttft = expected_ttft_s if expected_ttft_s is not None else cfg.default_ttft_s
    return min(cfg.hedge_max_s, max(cfg.hedge_min_s, cfg.hedge_factor * ttft))
