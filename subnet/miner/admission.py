"""Who may use this miner, and how much: pure decisions over a metagraph snapshot.

`admit(policy, snapshot, hotkey)` answers 403 reasons (unregistered, no validator permit, stake
below the minimum). `quota(policy, snapshot, hotkey)` gives each caller a token rate in
proportion to its stake (a floor keeps small validators usable); `TokenBuckets` enforces it.
The snapshot is plain data refreshed in the background from the chain (`subnet.miner.chain`),
never per request; tests build one by hand.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Peer:
    uid: int
    stake: float  # the metagraph's total_stake in whole units (rao / 1e9; alpha on dTAO)
    validator_permit: bool


@dataclass(frozen=True)
class MetagraphSnapshot:
    block: int = 0
    peers: Mapping[str, Peer] = field(default_factory=dict)  # hotkey ss58 -> Peer

    @property
    def validator_stake(self) -> float:
        return sum(p.stake for p in self.peers.values() if p.validator_permit)


@dataclass(frozen=True)
class AdmissionPolicy:
    require_permit: bool = True  # only validators (permit holders) may call
    min_stake: float = 0.0  # callers with less stake are refused
    # Tokens per second shared among callers in proportion to stake (roughly what we can serve).
    total_tokens_per_s: float = 2000.0
    min_tokens_per_s: float = 20.0  # floor for any admitted caller
    burst_s: float = 30.0  # a bucket holds this many seconds of its rate
    min_burst_tokens: float = 4096.0  # so one max-length request always fits


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str = "ok"
    message: str = ""


def admit(policy: AdmissionPolicy, snapshot: MetagraphSnapshot, hotkey: str) -> Decision:
    peer = snapshot.peers.get(hotkey)
    if peer is None:
        return Decision(False, "not_registered", f"{hotkey} is not registered on this subnet")
    if policy.require_permit and not peer.validator_permit:
        return Decision(
            False, "not_validator", f"uid {peer.uid} has no validator permit; only validators"
        )
    if peer.stake < policy.min_stake:
        return Decision(
            False,
            "low_stake",
            f"uid {peer.uid} has stake {peer.stake:.3f}; this miner requires {policy.min_stake}",
        )
    return Decision(True)


def quota(policy: AdmissionPolicy, snapshot: MetagraphSnapshot, hotkey: str) -> tuple[float, float]:
    """(tokens per second, bucket capacity) for an admitted caller."""
    peer = snapshot.peers.get(hotkey)
    total = snapshot.validator_stake if policy.require_permit else _all_stake(snapshot)
    share = (peer.stake / total) if (peer is not None and total > 0) else 0.0
    rate = max(policy.min_tokens_per_s, policy.total_tokens_per_s * share)
    return rate, max(policy.min_burst_tokens, rate * policy.burst_s)


def _all_stake(snapshot: MetagraphSnapshot) -> float:
    return sum(p.stake for p in snapshot.peers.values())


def refill(tokens: float, last: float, now: float, rate: float, capacity: float) -> float:
    return min(capacity, tokens + max(0.0, now - last) * rate)


class TokenBuckets:
    """Per-caller token buckets, bounded in size (least recently used callers are forgotten)."""

    def __init__(self, max_callers: int = 4096) -> None:
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.max_callers = max_callers

    def take(
        self, hotkey: str, cost: float, rate: float, capacity: float, now: float | None = None
    ) -> float:
        """Spend `cost` tokens; returns 0.0 on success, else seconds until it would fit."""
        now = time.monotonic() if now is None else now
        tokens, last = self._state.pop(hotkey, (capacity, now))
        tokens = refill(tokens, last, now, rate, capacity)
        if cost > capacity:
            self._remember(hotkey, tokens, now)
            return float("inf")
        if tokens < cost:
            self._remember(hotkey, tokens, now)
            return (cost - tokens) / rate
        self._remember(hotkey, tokens - cost, now)
        return 0.0

    def refund(self, hotkey: str, amount: float, capacity: float) -> None:
        """Give back tokens charged up front but not used (a generation that stopped early)."""
        if hotkey in self._state and amount > 0:
            tokens, last = self._state[hotkey]
            self._state[hotkey] = (min(capacity, tokens + amount), last)

    def _remember(self, hotkey: str, tokens: float, now: float) -> None:
        self._state[hotkey] = (tokens, now)
        while len(self._state) > self.max_callers:
            self._state.popitem(last=False)
