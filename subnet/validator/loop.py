"""The scoring loop: sample miners, probe them, verify, record, set weights once per tempo.

One event loop. Network awaits carry timeouts; model work (verification) runs in a thread. A
miner that fails scores zero with a logged reason; nothing a miner does stops the loop. What is
known about each miner lives in the `Ledger` (declared card, evidence, live figures, what it is
owed); this module only decides when to ask and hands the outcomes over.

A step probes each sampled miner for a window (`probe_window_s`), keeping up to its fair share
of concurrent tasks in flight (our stake's share of its declared capacity, capped by
`max_probe_streams`), all miners at once, so hotkeys that share one engine share its speed; the
verified tokens that arrive within the window are its served-throughput sample. A miner that
asked us to wait (`Retry-After`) after refusing within our share is not asked again until then,
and every probe it would have received counts as refused.

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
from subnet.validator.gate import Gate
from subnet.validator.gate_measure import GateTrainer
from subnet.validator.lag import LoopLag
from subnet.validator.ledger import Ledger
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.openai_format import prompt_text
from subnet.validator.query import MinerInfo, QueryResult, query
from subnet.validator.state import StateStore, ValidatorState
from subnet.validator.traffic import TrafficProfile
from subnet.validator.verifier import Item, Verifier
from subnet.validator.weights import EpochView, WeightSetter, weights_due

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Probe:
    """One probe of one miner: what was asked and answered within a window."""

    window_s: float
    deadline: float  # monotonic end of the window
    asks: list[tuple[tasks.Task, QueryResult]]
    # per ask: sent on one of the first fair-share streams (a refusal there counts)
    within_share: list[bool] = field(default_factory=list)


@dataclass
class StepReport:
    queried: list[int] = field(default_factory=list)
    results: dict[int, list[QueryResult]] = field(default_factory=dict)
    # uid -> each probe request's reason ("ok", a verification reason, timeout, error, refused)
    reasons: dict[int, list[str]] = field(default_factory=dict)
    wall_s: float = 0.0
    network_s: float = 0.0  # time spent awaiting miners
    verify_s: float = 0.0

    def reason(self, uid: int) -> str:
        """The first failure among uid's probe requests, else "ok"."""
        return next((r for r in self.reasons.get(uid, []) if r != "ok"), "ok")


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
        owner_domains: dict[str, tuple[str, ...]] | None = None,
    ):
        self.cfg = cfg
        self.signed = signed
        self.verifier = verifier
        self.store = store
        self.state: ValidatorState = store.load()  # before anything can write
        # What users send (the gateway records it); tasks are made of it.
        self.traffic = TrafficProfile.from_dict(store.load_side("traffic") or {})
        self.ledger = Ledger(self.state, cfg.scoring, cfg.router, verifier.table.evidence)
        self.ledger.set_experts(verifier.registry.fit, owner_domains)
        self.ledger.step_s = max(cfg.loop.step_s, 1e-3)
        # The learned gate (`route`): saved beside the traffic profile, trained from the prompts
        # of verified answers (tasks here, organic ones in the gateway).
        self.gate = _load_gate(store)
        self.gate_trainer = GateTrainer(
            self.gate, verifier.registry, domains=lambda: self.ledger.earned
        )
        self.client = client
        self.wallet = wallet
        self.setter = (
            WeightSetter(client, wallet, cfg.common.netuid, cfg.weights) if client else None
        )
        self.rng = random.Random(cfg.loop.seed)
        self._jitter = random.Random()  # weights-check timing only: keeps `rng` reproducible
        self._demand_rng = random.Random(cfg.loop.seed)  # demand prompts' text, likewise
        self._last_refresh = 0.0
        self._probing: dict[int, asyncio.Task] = {}  # uid -> its probe still in flight
        self.lag = LoopLag()  # started with the first step (timing judgements need it)
        self._standing_alarm = preflight.TempoWarner()
        self.metrics = ValidatorMetrics()

    @property
    def miners(self) -> dict[int, MinerInfo]:
        return self.ledger.miners

    # --- miners
    def set_miners(self, miners: list[MinerInfo]) -> None:
        self.ledger.sync(miners)

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
        self.ledger.sync(miners, {n.uid: n.hotkey for n in mg.neurons})
        self.ledger.observe_chain(
            int(mg.block), tempo=int(mg.tempo), stake_share=_stake_share(mg.neurons, own)
        )
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
        """Launch probes for the sampled miners, wait for them up to `probe_wait_s`, then verify
        and record every probe that has finished (this step's and earlier stragglers'). A miner
        that hangs or drips holds only its own probe, never the step."""
        t0 = time.monotonic()
        self.lag.start()
        report = StepReport()
        led = self.ledger
        cands = [
            sampling.Candidate(
                uid=m.uid,
                evidence=led.state.tally(m.uid).count,
                last_queried=led.live[m.uid].last_queried if m.uid in led.live else 0.0,
                inflight=led.inflight(m.uid),
                capacity=led.fair_share(m.uid),
            )
            for m in led.serving()
            if m.uid not in self._probing
        ]
        chosen = sampling.choose(cands, t0, self.rng, self.cfg.sampling)
        report.queried = chosen
        launched = []
        for uid in chosen:
            n = sampling.probe_size(
                led.capacity(uid), led.inflight(uid), self.cfg.sampling.max_probe_streams
            )
            if led.backed_off(uid):
                # It asked us to wait after refusing within our share: each probe stream of our
                # share is a refusal too (waiting out a Retry-After is not free).
                share = min(n, led.fair_share(uid))
                if led.skipped_probe(uid, share, seconds=self.cfg.loop.probe_window_s):
                    report.reasons[uid] = ["refused"] * share
                continue
            task = asyncio.create_task(self._probe(uid, n), name=f"probe-{uid}")
            self._probing[uid] = task
            launched.append(task)
        self._note_task_demand()
        if launched:
            await asyncio.wait(launched, timeout=self.cfg.loop.probe_wait(self.cfg.loop.step_s))
        report.network_s = time.monotonic() - t0
        finished = [u for u, t in self._probing.items() if t.done()]
        done = {u: self._probing.pop(u).result() for u in finished}
        report.results = {u: [r for _, r in probe.asks] for u, probe in done.items()}

        # Verify in arrival order, so a copy is the later of two identical answers.
        answered = sorted(
            (
                (uid, i, job, r)
                for uid, probe in done.items()
                for i, (job, r) in enumerate(probe.asks)
                if r.status == "ok"
            ),
            key=lambda x: x[3].finished_at,
        )
        items = [
            Item(self.miners[uid].card.weights_hash, job.request, r.response, uid)
            for uid, _, job, r in answered
            if uid in self.miners and self.miners[uid].card is not None
        ]
        answered = [a for a in answered if a[0] in self.miners and self.miners[a[0]].card]
        tv = time.monotonic()
        verdicts = await asyncio.to_thread(self.verifier.verify_many, items) if items else []
        report.verify_s = time.monotonic() - tv
        verdict_of = {(uid, i): v for (uid, i, _, _), v in zip(answered, verdicts, strict=True)}
        for item, verdict in zip(items, verdicts, strict=True):
            if verdict.ok:
                self.gate_trainer.offer(prompt_text(item.request))
        # One bounded batch per step, beside verification (model work in a thread): never while
        # the next probes stream, whose timing judgements a busy interpreter would blur.
        await self.gate_trainer.train_once()

        for uid, probe in done.items():
            if uid not in self.miners:  # left the subnet while we asked
                continue
            samples = [
                self._sample(
                    uid, job, r, verdict_of.get((uid, i)), probe.deadline, probe.within_share[i]
                )
                for i, (job, r) in enumerate(probe.asks)
            ]
            report.reasons[uid] = [s.reason for s in samples]
            led.record(uid, samples, probe_seconds=probe.window_s)
        self.state.step += 1
        self.store.save(self.state)
        report.wall_s = time.monotonic() - t0
        self.metrics.step_s.observe(report.wall_s)
        return report

    def _sample(
        self,
        uid: int,
        task: tasks.Task,
        r: QueryResult,
        verdict,
        deadline: float,
        within_share: bool = True,
    ) -> scoring.Sample:
        """What one probe request is worth: its verified tokens that arrived in the window."""
        led = self.ledger
        if r.status == "busy":
            self.metrics.verdicts.labels(reason="refused").inc()
            if not within_share:
                # Beyond our share of its capacity: its right, no penalty — and no back-off
                # either, which would pause the streams of our share (a score frozen by one
                # 429 with a long Retry-After); that stream just ends.
                return scoring.Sample(scoring.BEYOND_SHARE)
            led.refusal(uid, r.retry_after_s, within_share=True)
            log.info("uid %d %s scored 0: refused (429 within our share)", uid, task.domain)
            return scoring.Sample("refused")
        if r.status == "ok":
            reason, detail = verdict.reason, verdict.detail
            if reason == "ok" and r.code:  # verified, but held back and released at once
                reason, detail = r.code, r.reason
            led.note_timing(uid, r.ttft_s, r.tokens_per_s)
        else:
            reason = r.code if r.status == "invalid" else r.status
            detail = r.reason
        if reason == scoring.UNJUDGED:  # our loop stalled while it streamed: no verdict
            log.info("uid %d %s not timed (our loop stalled): %s", uid, task.domain, detail)
            return scoring.Sample(reason)
        if reason != "ok":
            log.info("uid %d %s scored 0: %s %s", uid, task.domain, reason, detail)
        self.metrics.verdicts.labels(reason=reason).inc()
        if reason != "ok":
            return scoring.Sample(reason)
        tokens = sum(t <= deadline for t in r.token_times)
        greedy = task.request.temperature == 0
        return scoring.Sample(reason, tokens, stats=verdict.stats, greedy=greedy)

    async def _probe(self, uid: int, streams: int) -> Probe:
        """Keep `streams` requests to uid in flight for the probe window: each stream sends a
        new task when its last one is answered, until the window ends (or it has sent
        `max_requests_per_stream`, or its last request failed). Answers still streaming when
        the window ends are completed and verified, but only tokens that arrived inside it pay:
        the tokens an engine delivers in a window are the same however many hotkeys they are
        counted under."""
        window = self.cfg.loop.probe_window_s
        deadline = time.monotonic() + window
        domains = self.ledger.task_domains(uid)
        asks: list[tuple[tasks.Task, QueryResult]] = []
        within: list[bool] = []
        share = self.ledger.fair_share(uid)

        async def stream(k: int) -> None:
            for _ in range(self.cfg.sampling.max_requests_per_stream):
                if time.monotonic() >= deadline:
                    return
                domain = tasks.pick_domain(self.rng, domains, self.traffic)
                card = self.miners[uid].card if uid in self.miners else None
                task = tasks.make_task(domain, self.rng, self.traffic, for_uid=uid, card=card)
                result = await self._ask(uid, task)
                asks.append((task, result))
                within.append(k < share)
                if result.status != "ok":
                    return  # a refusal or failure ends this stream's share of the probe

        await asyncio.gather(*(stream(k) for k in range(streams)))
        return Probe(window, deadline, asks, within)

    async def _ask(self, uid: int, task: tasks.Task) -> QueryResult:
        m = self.miners[uid]
        with self.ledger.claim(uid):
            return await query(
                self.signed,
                m,
                task.request,
                timeout_s=self.cfg.loop.query_timeout_s,
                first_token_timeout_s=self.cfg.loop.first_token_timeout_s,
                lag=self.lag,
            )

    def route(self, text: str) -> list[str]:
        """Every verifiable expert (weights hash) for a prompt, best first: the learned gate,
        over the registered experts whether or not a miner serves them now (demand must not
        follow supply; the router skips experts nobody serves)."""
        return [h for h, _ in self.gate.rank(text, self.ledger.earned)]

    def _note_task_demand(self) -> None:
        """Demand before (and beside) users: which expert the gate picks for a few prompts drawn
        from the task mix."""
        weight = self.cfg.scoring.synthetic_demand_weight
        if weight <= 0:
            return
        for _ in range(self.cfg.sampling.demand_prompts):
            domain = tasks.pick_domain(self.rng, tasks.DOMAINS, self.traffic)
            task = tasks.make_task(domain, self._demand_rng, self.traffic)
            preferred = self.route(prompt_text(task.request))
            if preferred:
                self.ledger.note_demand(preferred[0], weight)

    def status(self) -> dict[str, Any]:
        """Plain-data view of what this validator knows (served at the gateway's /v1/status)."""
        return {
            "hotkey": self.signed.ss58_address,
            "step": self.state.step,
            "block": self.ledger.block(),
            "last_weights_block": self.state.last_weights_block,
            "last_weights": {str(k): v for k, v in (self.state.last_weights or {}).items()},
            "demand": self.ledger.demand(),
            "experts": self.gate_trainer.status(self.ledger.earned, self.ledger.demand()),
            "traffic": self.traffic.summary(),
            "miners": self.ledger.status(),
        }

    # --- weights
    def weight_vector(self) -> dict[int, float]:
        return self.ledger.weights()

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
            self.save_traffic()  # once a tempo: they are large and change slowly
        return outcome.ok

    def save_traffic(self) -> None:
        """The side files: the traffic profile and the learned gate."""
        self.store.save_side("traffic", self.traffic.to_dict())
        self.store.save_side("gate", self.gate.to_dict())

    async def _epoch_view(self, netuid: int) -> EpochView:
        mg = await self.client.subnets.metagraph(netuid, commitments=False)
        hp = await self.client.subnets.subnet_hyperparameters(netuid)
        me = mg.by_hotkey(self.signed.ss58_address)
        self.ledger.observe_chain(int(mg.block), tempo=int(mg.tempo))
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
                step = asyncio.create_task(self.step(), name="step")
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not step.done():  # stop requested: a step cut short records nothing
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await step
                    break
                report = step.result()
                log.info(
                    "step %d: queried %d, ok %d/%d, %.2fs (network %.2fs, verify %.2fs)",
                    self.state.step,
                    len(report.queried),
                    sum(r == "ok" for rs in report.reasons.values() for r in rs),
                    sum(len(rs) for rs in report.reasons.values()),
                    report.wall_s,
                    report.network_s,
                    report.verify_s,
                )
                delay = max(0.0, self.cfg.loop.step_s - (time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            weights.cancel()
            for probe in self._probing.values():
                probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await weights
            await asyncio.gather(*self._probing.values(), return_exceptions=True)
            self._probing.clear()
            await self.lag.stop()
            self.save_traffic()

    async def _weights_loop(self, stop: asyncio.Event) -> None:
        """Check about every two blocks whether weights are due (`weights_due` decides)."""
        if self.client is None:
            return
        try:
            block_time = float(await asyncio.wait_for(self.client.block_time(), 30))
        except (TimeoutError, bt.ChainError, bt.RpcConnectionError, OSError) as err:
            log.warning("cannot read the block time (%s); assuming 12 s", err)
            block_time = 12.0
        self.ledger.chain.block_s = block_time
        period = min(max(2 * block_time, 0.5), 30.0)
        while not stop.is_set():
            await self.maybe_set_weights()
            # Jittered, so a period that is a whole number of tempos cannot phase-lock the
            # checks to one point of the tempo (a fast local chain: 0.5 s = 10 blocks = a tempo).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period * (0.5 + self._jitter.random()))


def _load_gate(store: StateStore) -> Gate:
    """The saved gate; a damaged one is replaced by a fresh gate (which starts from the
    rule), with a log line either way."""
    gate = Gate.from_dict(store.load_side("gate"))
    log.info(
        "gate: %d expert models, %d observations, %s",
        len(gate.heads),
        gate.steps,
        "learned ranking trusted" if gate.trusted() else "rule cold start",
    )
    return gate


def _stake_share(neurons, own_hotkey: str) -> float:
    """Our stake over all validator-permit holders' stake (1.0 when unknown)."""
    total = mine = 0.0
    for n in neurons:
        stake = float(getattr(getattr(n, "total_stake", None), "rao", 0) or 0)
        if getattr(n, "validator_permit", False) or n.hotkey == own_hotkey:
            total += stake
        if n.hotkey == own_hotkey:
            mine = stake
    return mine / total if total > 0 else 1.0


def _card_from_commitment(commitment: Any) -> ExpertCard | None:
    if commitment is None or not getattr(commitment, "data", ""):
        return None
    try:
        return ExpertCard.from_dict(json.loads(commitment.data))
    except (ValueError, ProtocolError, TypeError) as err:
        log.debug("unreadable card commitment: %s", err)
        return None
