"""Everything the validator knows about each miner, in one place: declared, measured, owed.

- declared: its endpoint and expert card (`MinerInfo`), from the metagraph;
- measured: decayed evidence (`scoring.Tally`: samples, verified answers, refusals, served
  throughput, strikes), accumulated verification statistics, and live figures that are not
  worth keeping across restarts (requests in flight, time to first token, `Retry-After`);
- owed: its value and its share of the weight vector (`scoring.pool_weights`).

The scoring loop, the gateway and the router read and write miners only through this class, so
each rule lives once: what a refusal costs, when an answer counts, how evidence ages, which
expert a miner serves and which domains that expert is tested in, who is banned.

Blocks: evidence ages in blocks. The ledger keeps a block clock from the last chain read
(block + elapsed / block time); without a chain it runs on 12-second blocks of wall time.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from subnet.validator import domains as domain_rules
from subnet.validator import evidence as drift
from subnet.validator import router, scoring
from subnet.validator.query import MinerInfo
from subnet.validator.state import ValidatorState

log = logging.getLogger(__name__)

DEFAULT_BLOCK_S = 12.0
# Drift evidence ages this many times slower than the tallies: it takes a few hundred verified
# tokens to tell 2%-perturbed weights from honest precision noise, more than one half-life of
# probes holds. (The tests' false-positive bound holds however long evidence accumulates.)
EVIDENCE_HALF_LIVES = 10.0


@dataclass
class Live:
    """In-memory figures of one miner (lost on restart, rebuilt within a few steps)."""

    inflight: int = 0
    last_queried: float = 0.0  # monotonic seconds; 0 = never
    ttft_s: float | None = None  # EMA, for hedging
    tokens_per_s: float | None = None  # per-stream EMA (display)
    backoff_until: float = 0.0  # monotonic; from a 429's Retry-After
    backoff_counts: bool = False  # the 429 came within our fair share: waiting costs the miner


@dataclass
class ChainView:
    block: float = 0.0
    at: float = field(default_factory=time.monotonic)
    block_s: float = DEFAULT_BLOCK_S
    tempo: int | None = None
    stake_share: float = 1.0  # our stake / all permit holders' stake


class Ledger:
    def __init__(
        self,
        state: ValidatorState,
        scoring_cfg: scoring.ScoringConfig,
        router_cfg: router.RouterConfig,
        evidence_th: drift.EvidenceThresholds | None = None,
    ) -> None:
        self.state = state
        self.evidence_th = evidence_th or drift.EvidenceThresholds()
        self.cfg = scoring_cfg
        self.router_cfg = router_cfg
        self.bans = router.Bans(router_cfg)
        self.miners: dict[int, MinerInfo] = {}
        self.live: dict[int, Live] = {}
        self.chain = ChainView()
        self.step_s = 12.0  # the scoring loop's period (evidence must outlive a few steps)
        # weights hash -> measured fit per domain / the domains it earned (set by set_experts)
        self.fit: dict[str, dict[str, float]] = {}
        self.earned: dict[str, tuple[str, ...]] = {}

    # --- declared
    def sync(self, miners: Iterable[MinerInfo], hotkeys: Mapping[int, str] | None = None) -> None:
        """The miners now on the subnet; `hotkeys` (all uids) resets re-registered slots."""
        self.miners = {m.uid: m for m in miners}
        self.state.sync_hotkeys(
            hotkeys if hotkeys is not None else {m.uid: m.hotkey for m in self.miners.values()}
        )
        self.live = {u: self.live.get(u, Live()) for u in self.miners}

    def set_experts(
        self,
        fit: Mapping[str, Mapping[str, float]],
        owner_domains: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """The verifiable experts (weights hash -> held-out fit per domain) and the domains each
        earned (the owner's registry ∩ measured fit; see `domains.earned_domains`)."""
        self.fit = {h: dict(f) for h, f in fit.items()}
        self.earned = domain_rules.earned_domains(self.fit, owner_domains)

    def expert(self, uid: int) -> str | None:
        """The weights hash uid serves, when the validator can verify it (else None)."""
        m = self.miners.get(uid)
        if m is None or m.card is None or m.card.weights_hash not in self.fit:
            return None
        return m.card.weights_hash

    def task_domains(self, uid: int) -> tuple[str, ...]:
        """Domains uid is tested in: its expert's earned domains, whatever its card claims."""
        h = self.expert(uid)
        if h is not None and self.earned.get(h):
            return self.earned[h]
        return ("general",)

    def serving(self) -> list[MinerInfo]:
        return [m for m in self.miners.values() if m.card is not None]

    # --- the chain's clock and our stake
    def observe_chain(
        self,
        block: int,
        *,
        tempo: int | None = None,
        stake_share: float | None = None,
        block_s: float | None = None,
    ) -> None:
        self.chain.block, self.chain.at = float(block), time.monotonic()
        if tempo:
            self.chain.tempo = int(tempo)
        if stake_share is not None and math.isfinite(stake_share):
            self.chain.stake_share = min(1.0, max(0.0, stake_share))
        if block_s and block_s > 0:
            self.chain.block_s = float(block_s)

    def block(self) -> float:
        c = self.chain
        if c.block <= 0:
            return time.monotonic() / c.block_s
        return c.block + (time.monotonic() - c.at) / c.block_s

    @property
    def half_life(self) -> float:
        # At least three steps' worth of blocks: a half-life shorter than the sampling period
        # (a fast local chain) would leave no evidence to judge by.
        floor = 3.0 * self.step_s / self.chain.block_s
        return max(scoring.half_life(self.cfg, self.chain.tempo), floor)

    @property
    def strike_blocks(self) -> float:
        return self.cfg.strike_tempos * (self.chain.tempo or 360)

    # --- live figures
    def _live(self, uid: int) -> Live:
        return self.live.setdefault(uid, Live())

    @contextlib.contextmanager
    def claim(self, uid: int) -> Iterator[None]:
        """One request in flight to uid for the duration of the block."""
        live = self._live(uid)
        live.inflight += 1
        live.last_queried = time.monotonic()
        try:
            yield
        finally:
            live.inflight = max(0, live.inflight - 1)

    def inflight(self, uid: int) -> int:
        return self._live(uid).inflight

    def capacity(self, uid: int) -> int:
        """Concurrent requests uid declares it serves (its card; 1 when unknown)."""
        m = self.miners.get(uid)
        return max(1, m.card.capacity) if m is not None and m.card is not None else 1

    def fair_share(self, uid: int) -> int:
        """Requests we may have in flight to uid before a refusal stops counting against it."""
        return scoring.fair_share(self.capacity(uid), self.chain.stake_share)

    def note_timing(self, uid: int, ttft_s: float | None, tokens_per_s: float | None) -> None:
        live = self._live(uid)
        if ttft_s is not None:
            live.ttft_s = ttft_s if live.ttft_s is None else 0.8 * live.ttft_s + 0.2 * ttft_s
        if tokens_per_s is not None:
            prev = live.tokens_per_s
            live.tokens_per_s = tokens_per_s if prev is None else 0.8 * prev + 0.2 * tokens_per_s

    def expected_ttft(self, uid: int) -> float | None:
        return self._live(uid).ttft_s

    def backed_off(self, uid: int, now: float | None = None) -> bool:
        """Whether uid asked us to wait (a `Retry-After` still running)."""
        return self._live(uid).backoff_until > (time.monotonic() if now is None else now)

    # --- evidence
    def record(
        self, uid: int, samples: list[scoring.Sample], *, probe_seconds: float = 0.0
    ) -> scoring.Tally | None:
        """Add samples for uid (one concurrent probe when `probe_seconds` > 0)."""
        m = self.miners.get(uid)
        if m is None or not samples:
            return None
        block = self.block()
        tally = scoring.add(
            self.state.tally(uid),
            samples,
            block,
            self.half_life,
            probe_seconds=probe_seconds,
            strike_blocks=self.strike_blocks,
        )
        self.state.put(uid, m.hotkey, tally)
        if any(s.reason in scoring.CHEATS for s in samples):
            self.bans.cheat(uid, time.monotonic())
        verified = [s for s in samples if s.reason == "ok" and s.stats]
        if verified and (v := self._drift(uid, verified, block)) is not None:
            # (the loop's log format, "uid N <where> scored 0: <reason>": localnet checks read it)
            log.warning("uid %d evidence scored 0: drift %s", uid, v.detail)
            return self.record(uid, [scoring.Sample("drift")])
        return tally

    def _drift(self, uid: int, samples: list[scoring.Sample], block: float):
        """Fold verified answers into uid's drift evidence; a failed verdict when it shows
        weights other than the declared ones (every answer passing on its own)."""
        raw = self.state.evidence.get(uid) or {}
        at = raw.get("block", block)
        ev = drift.Evidence.from_dict(raw)
        age = max(0.0, block - at) if isinstance(at, int | float) else 0.0
        ev = drift.decay(ev, 0.5 ** (age / (self.half_life * EVIDENCE_HALF_LIVES)))
        for s in samples:
            ev = drift.add(ev, s.stats or {}, greedy=s.greedy)
        self.state.evidence[uid] = {**ev.to_dict(), "block": block}
        return drift.judge(ev, self.evidence_th)

    def drift_scores(self, uid: int) -> dict[str, float]:
        """Each drift test's statistic over its threshold (> 1 fails), for the status page."""
        ev = drift.Evidence.from_dict(self.state.evidence.get(uid) or {})
        return drift.scores(ev, self.evidence_th)

    def refusal(self, uid: int, retry_after_s: float | None, *, within_share: bool) -> None:
        """A `429`: counts as a failed sample when we were within our fair share; either way
        we wait for its Retry-After (capped) before asking again — and while we wait, every
        probe we would have sent counts as refused (`skipped_probe`)."""
        live = self._live(uid)
        live.backoff_until = time.monotonic() + min(300.0, max(1.0, retry_after_s or 1.0))
        live.backoff_counts = within_share
        if within_share:
            self.record(uid, [scoring.Sample("refused")])

    def skipped_probe(self, uid: int, n: int, *, seconds: float) -> bool:
        """A probe not sent because uid asked us to wait: when that wait followed a refusal
        within our share, every stream of the probe counts as refused, and its window as served
        nothing. Returns whether it did."""
        if not self._live(uid).backoff_counts:
            return False
        self.record(uid, [scoring.Sample("refused")] * max(1, n), probe_seconds=seconds)
        return True

    def transport_failure(self, uid: int) -> None:
        self.bans.failure(uid, time.monotonic())

    def transport_success(self, uid: int) -> None:
        self.bans.success(uid)

    def banned(self, uid: int) -> bool:
        return self.bans.banned(uid, time.monotonic())

    # --- demand (what users ask for, per expert)
    def note_demand(self, expert: str, weight: float = 1.0) -> None:
        block = self.block()
        w, at = self.state.demand.get(expert, (0.0, block))
        w *= 0.5 ** (max(0.0, block - at) / self.half_life)
        self.state.demand[expert] = (w + weight, block)

    def demand(self) -> dict[str, float]:
        block = self.block()
        return {
            h: w * 0.5 ** (max(0.0, block - at) / self.half_life)
            for h, (w, at) in self.state.demand.items()
        }

    # --- routing
    def preference(self, domain: str) -> list[str]:
        """Served experts for a domain, best measured fit first (the cold-start gate): those that
        earned the domain, then the others (an answer from another expert beats none)."""
        served = {h for u in self.miners if (h := self.expert(u)) is not None}
        by_fit = sorted(served, key=lambda h: (-self.fit.get(h, {}).get(domain, -1e9), h))
        inside = set(domain_rules.experts_for(domain, self.earned))
        return [h for h in by_fit if h in inside] + [h for h in by_fit if h not in inside]

    def candidates(
        self, model_id: str | None = None, max_tokens: int = 1
    ) -> list[router.Candidate]:
        """Miners the gateway may route to: verifiable experts only (their text is derived with
        the reference tokenizer and a share of answers verified) whose cards allow `max_tokens`
        new tokens, optionally one model id."""
        block = self.block()
        out = []
        for uid, m in self.miners.items():
            h = self.expert(uid)
            if h is None or (model_id is not None and m.card.model_id != model_id):
                continue
            if m.card.max_new_tokens < max_tokens:
                continue
            out.append(
                router.Candidate(
                    uid=uid,
                    expert=h,
                    score=self.value(uid, block),
                    inflight=self.inflight(uid),
                    capacity=self.fair_share(uid),
                    expected_ttft_s=self.expected_ttft(uid),
                )
            )
        return out

    # --- owed
    def value(self, uid: int, block: float | None = None) -> float:
        block = self.block() if block is None else block
        return scoring.value(self.state.tally(uid), block, self.half_life, self.cfg)

    def weights(self) -> dict[int, float]:
        """The weight vector: demand-following pools per expert, split by value."""
        block = self.block()
        values = {uid: self.value(uid, block) for uid in self.miners}
        expert_of = {uid: h for uid in self.miners if (h := self.expert(uid)) is not None}
        served = {expert_of[u] for u, v in values.items() if v > 0 and u in expert_of}
        shares = scoring.demand_shares(served, self.demand(), self.cfg.demand_floor)
        return scoring.pool_weights(values, expert_of, shares)

    def status(self) -> dict[str, Any]:
        """Plain data per miner (the gateway's /v1/status, the localnet dashboard)."""
        block = self.block()
        out: dict[str, Any] = {}
        for uid, m in self.miners.items():
            t = scoring.aged(self.state.tally(uid), block, self.half_life)
            live = self._live(uid)
            out[m.hotkey] = {
                "uid": uid,
                "expert": m.card.model_id if m.card else None,
                "domains": list(self.task_domains(uid)),
                "requests": t.count,
                "verified": max(0, t.count - t.failures),
                "pass_rate": scoring.pass_rate(t),
                "served_tokens_per_s": scoring.throughput(t),
                "tokens_per_s": live.tokens_per_s,
                "ttft_s": live.ttft_s,
                "score": self.value(uid, block),
                "struck": block < t.strike_until,
                "last_reason": t.last_reason or None,
            }
        return out
