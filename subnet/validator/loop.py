"""The scoring loop: sample miners, send tasks, verify, score, save, set weights once per tempo.

One event loop. Network awaits carry timeouts; model work (verification) runs in a thread. A
miner that fails scores zero with a logged reason; nothing a miner does stops the loop. Per-peer
state is bounded by the subnet's size (uids) and by LRU maps (backoffs, recent outputs).

Miners come from the metagraph (axon endpoint; expert card from the chain commitment, else
`GET /v1/card`), or from `set_miners` when running without a chain (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import bittensor as bt

from protocol import ExpertCard, ProtocolError
from subnet import preflight
from subnet.miner import client as miner_client
from subnet.net import SignedClient
from subnet.validator import sampling, scoring, tasks
from subnet.validator.config import ValidatorConfig
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.query import MinerInfo, QueryResult, query
from subnet.validator.state import StateStore, ValidatorState
from subnet.validator.verifier import Item, Verifier
from subnet.validator.weights import EpochView, WeightSetter, weights_due

log = logging.getLogger(__name__)


@dataclass
class StepReport:
    queried: list[int] = field(default_factory=list)
    results: dict[int, QueryResult] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)
    rewards: dict[int, float] = field(default_factory=dict)
    wall_s: float = 0.0
    network_s: float = 0.0  # time spent awaiting miners
    verify_s: float = 0.0


class Validator:
    def __init__(
        self,
        cfg: ValidatorConfig,
        *,
        signed: SignedClient,
        verifier: Verifier,
        store: StateStore,
        client: bt.Client | None = None,
        wallet: Any = None,
    ):
        self.cfg = cfg
        self.signed = signed
        self.verifier = verifier
        self.store = store
        self.state: ValidatorState = store.load()  # before anything can write
        self.client = client
        self.wallet = wallet
        self.setter = (
            WeightSetter(client, wallet, cfg.common.netuid, cfg.weights) if client else None
        )
        self.rng = random.Random(cfg.loop.seed)
        self.miners: dict[int, MinerInfo] = {}
        self.last_queried: dict[int, float] = {}
        self.inflight: dict[int, int] = {}
        self.backoff = sampling.Backoff429(cfg.sampling)
        self.ttft_ema: dict[int, float] = {}  # for the router's hedging
        self.tps_ema: dict[int, float] = {}  # tokens/s as measured here (status, dashboard)
        self._last_refresh = 0.0
        self._standing_alarm = preflight.TempoWarner()
        self.metrics = ValidatorMetrics()

    # --- miners
    def set_miners(self, miners: list[MinerInfo]) -> None:
        self.miners = {m.uid: m for m in miners}
        self.state.sync_hotkeys({m.uid: m.hotkey for m in miners})

    async def refresh_metagraph(self) -> None:
        """Read the metagraph; keep the previous view if the chain does not answer."""
        if self.client is None:
            return
        netuid = self.cfg.common.netuid
        try:
            mg = await asyncio.wait_for(
                self.client.subnets.metagraph(netuid, commitments=True),
                self.cfg.loop.chain_timeout_s,
            )
        except (TimeoutError, bt.ChainError, bt.RpcConnectionError, OSError) as err:
            log.warning("metagraph refresh failed, keeping the previous one: %s", err)
            return
        if mg is None:
            log.error("subnet %d does not exist on this chain (check --netuid)", netuid)
            return
        own = self.signed.ss58_address
        # Miners refuse a validator without permit: say so loudly, once per tempo.
        problem = preflight.validator_problem(
            preflight.standing_of(mg, own), netuid, own, "btcli subnets register", "btcli stake add"
        )
        if self._standing_alarm.check(int(mg.block), int(mg.tempo), problem):
            log.warning("this validator cannot work: %s; miners answer it 403", problem)
        miners = []
        for n in mg.neurons:
            if n.hotkey == own or not n.axon:
                continue
            card = _card_from_commitment(mg.commitments[n.uid])
            prev = self.miners.get(n.uid)
            if card is None and prev is not None and prev.hotkey == n.hotkey:
                card = prev.card
            miners.append(MinerInfo(n.uid, n.hotkey, f"http://{n.axon}", card))
        self.state.sync_hotkeys({n.uid: n.hotkey for n in mg.neurons})
        self.miners = {m.uid: m for m in miners}
        await self._fetch_missing_cards()
        self._last_refresh = time.monotonic()

    async def _fetch_missing_cards(self) -> None:
        missing = [m for m in self.miners.values() if m.card is None]

        async def fetch(m: MinerInfo) -> None:
            try:
                card = await asyncio.wait_for(
                    miner_client.card(self.signed, m.url, m.hotkey), self.cfg.loop.card_timeout_s
                )
            except (TimeoutError, miner_client.MinerError, ProtocolError, OSError) as err:
                log.info("uid %d: no expert card (%s)", m.uid, err)
                return
            except Exception as err:  # aiohttp/json errors of a broken miner: isolate per peer
                log.info("uid %d: card fetch failed (%s: %s)", m.uid, type(err).__name__, err)
                return
            self.miners[m.uid] = MinerInfo(m.uid, m.hotkey, m.url, card)

        await asyncio.gather(*(fetch(m) for m in missing))

    # --- one step
    async def step(self) -> StepReport:
        t0 = time.monotonic()
        report = StepReport()
        now = time.monotonic()
        serving = [m for m in self.miners.values() if m.card is not None]
        cands = [
            sampling.Candidate(
                uid=m.uid,
                evidence=sum(s.evidence for s in self.state.stats.get(m.uid, {}).values()),
                last_queried=self.last_queried.get(m.uid, 0.0),
                inflight=self.inflight.get(m.uid, 0),
                capacity=m.card.capacity,
                blocked_until=self.backoff.until(m.uid),
            )
            for m in serving
        ]
        chosen = sampling.choose(cands, now, self.rng, self.cfg.sampling)
        report.queried = chosen
        jobs = {}
        for uid in chosen:
            m = self.miners[uid]
            domains = [d for d in m.card.domains if d in tasks.DOMAINS] or ["general"]
            jobs[uid] = tasks.make_task(self.rng.choice(domains), self.rng)
        t_net = time.monotonic()
        results = await asyncio.gather(*(self._ask(uid, jobs[uid]) for uid in chosen))
        report.network_s = time.monotonic() - t_net
        report.results = {r.uid: r for r in results}

        # Verify in arrival order, so a copy is the later of two identical answers.
        answered = sorted((r for r in results if r.status == "ok"), key=lambda r: r.finished_at)
        items = [
            Item(self.miners[r.uid].card.weights_hash, jobs[r.uid].request, r.response, r.uid)
            for r in answered
        ]
        tv = time.monotonic()
        verdicts = await asyncio.to_thread(self.verifier.verify_many, items) if items else []
        report.verify_s = time.monotonic() - tv
        by_uid = {r.uid: v for r, v in zip(answered, verdicts, strict=True)}

        samples = []
        for r in results:
            m = self.miners[r.uid]
            if r.status == "busy":
                self.backoff.note(r.uid, time.monotonic(), r.retry_after_s)
                log.info("uid %d busy (429); backing off, no penalty", r.uid)
                continue
            domain = jobs[r.uid].domain
            if r.status == "ok":
                v = by_uid[r.uid]
                reason = v.reason
                if r.ttft_s is not None:
                    prev = self.ttft_ema.get(r.uid, r.ttft_s)
                    self.ttft_ema[r.uid] = 0.8 * prev + 0.2 * r.ttft_s
                if r.tokens_per_s is not None:
                    prev = self.tps_ema.get(r.uid, r.tokens_per_s)
                    self.tps_ema[r.uid] = 0.8 * prev + 0.2 * r.tokens_per_s
            else:
                reason = r.status
            if reason != "ok":
                detail = r.reason or (by_uid[r.uid].detail if r.uid in by_uid else "")
                log.info("uid %d %s scored 0: %s %s", r.uid, domain, reason, detail)
            report.reasons[r.uid] = reason
            self.metrics.verdicts.labels(reason=reason).inc()
            samples.append(
                scoring.Sample(
                    uid=r.uid,
                    domain=domain,
                    verified=reason == "ok",
                    reason=reason,
                    domain_fit=self.verifier.registry.domain_fit(m.card.weights_hash, domain),
                    ttft_s=r.ttft_s,
                    tokens_per_s=r.tokens_per_s,
                )
            )
        report.rewards = scoring.rewards(samples, self.cfg.scoring)
        wall = time.time()
        for s in samples:
            prev = self.state.stat(s.uid, s.domain)
            new = scoring.update(prev, report.rewards[s.uid], s.reason, wall, self.cfg.scoring)
            self.state.put(s.uid, self.miners[s.uid].hotkey, s.domain, new)
        self.state.step += 1
        self.store.save(self.state)
        report.wall_s = time.monotonic() - t0
        self.metrics.step_s.observe(report.wall_s)
        return report

    async def _ask(self, uid: int, task: tasks.Task) -> QueryResult:
        m = self.miners[uid]
        self.inflight[uid] = self.inflight.get(uid, 0) + 1
        self.last_queried[uid] = time.monotonic()
        try:
            return await query(
                self.signed,
                m,
                task.request,
                timeout_s=self.cfg.loop.query_timeout_s,
                first_token_timeout_s=self.cfg.loop.first_token_timeout_s,
            )
        finally:
            self.inflight[uid] -= 1

    def status(self) -> dict[str, Any]:
        """Plain-data view of what this validator knows (served at the gateway's /v1/status)."""
        shares = self.domain_shares()
        miners = {}
        for uid, m in self.miners.items():
            stats = self.state.stats.get(uid, {})
            evidence = sum(s.evidence for s in stats.values())
            failures = sum(s.failures for s in stats.values())
            miners[m.hotkey] = {
                "uid": uid,
                "expert": m.card.model_id if m.card else None,
                "requests": evidence,
                "verified": max(0, evidence - failures),
                "tokens_per_s": self.tps_ema.get(uid),
                "ttft_s": self.ttft_ema.get(uid),
                "score": scoring.miner_score(stats, shares, self.cfg.scoring),
                "last_reason": max(stats.values(), key=lambda s: s.updated_at).last_reason
                if stats
                else None,
            }
        return {
            "hotkey": self.signed.ss58_address,
            "step": self.state.step,
            "last_weights_block": self.state.last_weights_block,
            "last_weights": {str(k): v for k, v in (self.state.last_weights or {}).items()},
            "miners": miners,
        }

    # --- weights
    def domain_shares(self) -> dict[str, float]:
        """Each domain that some miner serves counts equally."""
        served = {d for m in self.miners.values() if m.card for d in m.card.domains}
        served &= set(tasks.DOMAINS)
        return {d: 1.0 / len(served) for d in served} if served else {}

    def weight_vector(self) -> dict[int, float]:
        shares = self.domain_shares()
        scores = {
            uid: scoring.miner_score(self.state.stats.get(uid, {}), shares, self.cfg.scoring)
            for uid in self.miners
        }
        return scoring.normalize(scores)

    async def maybe_set_weights(self) -> bool:
        if self.setter is None:
            return False
        netuid = self.cfg.common.netuid
        try:
            view = await asyncio.wait_for(self._epoch_view(netuid), self.cfg.loop.chain_timeout_s)
        except (TimeoutError, bt.ChainError, bt.RpcConnectionError, OSError) as err:
            log.warning("cannot read epoch state: %s", err)
            return False
        due, why = weights_due(view, self.state.last_weights_block, self.cfg.weights)
        if not due:
            log.debug("weights not due: %s", why)
            return False
        vector = self.weight_vector()
        outcome = await self.setter.set(vector)
        self.metrics.weights.labels(ok=str(outcome.ok).lower()).inc()
        if outcome.ok:
            self.state.last_weights = vector
            self.state.last_weights_block = view.block
            self.store.save(self.state)
        return outcome.ok

    async def _epoch_view(self, netuid: int) -> EpochView:
        mg = await self.client.subnets.metagraph(netuid, commitments=False)
        hp = await self.client.subnets.subnet_hyperparameters(netuid)
        me = mg.by_hotkey(self.signed.ss58_address)
        return EpochView(
            block=int(mg.block),
            tempo=int(mg.tempo),
            blocks_since_last_step=int(mg.blocks_since_last_step),
            weights_rate_limit=int(hp.get("weights_rate_limit", 0)),
            last_update=int(me.last_update) if me is not None else -1,
            weights_version=int(hp.get("weights_version", 0)),
        )

    # --- run
    async def run(self, stop: asyncio.Event) -> None:
        """Steps until `stop` is set; weights are watched by their own task, on the chain's clock.

        Weights must not ride on the step cadence: a step period that is a multiple of the epoch
        period would check at the same phase of every tempo and could never land in the window.
        """
        weights = asyncio.create_task(self._weights_loop(stop), name="weights")
        try:
            while not stop.is_set():
                if weights.done():
                    weights.result()  # a crashed weights task stops the validator, loudly
                started = time.monotonic()
                # With no miners known yet (a subnet still starting), look again every few seconds.
                period = self.cfg.loop.metagraph_refresh_s if self.miners else 5.0
                if self.client is not None and started - self._last_refresh >= period:
                    await self.refresh_metagraph()
                report = await self.step()
                log.info(
                    "step %d: queried %d, ok %d, %.2fs (network %.2fs, verify %.2fs)",
                    self.state.step,
                    len(report.queried),
                    sum(1 for r in report.reasons.values() if r == "ok"),
                    report.wall_s,
                    report.network_s,
                    report.verify_s,
                )
                delay = max(0.0, self.cfg.loop.step_s - (time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            weights.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await weights

    async def _weights_loop(self, stop: asyncio.Event) -> None:
        """Check every two blocks whether weights are due (`weights_due` decides)."""
        if self.client is None:
            return
        try:
            block_time = float(await asyncio.wait_for(self.client.block_time(), 30))
        except (TimeoutError, bt.ChainError, bt.RpcConnectionError, OSError) as err:
            log.warning("cannot read the block time (%s); assuming 12 s", err)
            block_time = 12.0
        period = min(max(2 * block_time, 0.5), 30.0)
        while not stop.is_set():
            await self.maybe_set_weights()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)


def _card_from_commitment(commitment: Any) -> ExpertCard | None:
    if commitment is None or not getattr(commitment, "data", ""):
        return None
    try:
        return ExpertCard.from_dict(json.loads(commitment.data))
    except (ValueError, ProtocolError, TypeError) as err:
        log.debug("unreadable card commitment: %s", err)
        return None
