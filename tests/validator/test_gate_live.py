"""The learned gate in the live validator: it routes `auto` requests, notes demand, learns from
verified prompts off the event loop, survives restarts and damage, and copes with experts that
come and go. Real miners, the real validator and gateway; the tiny experts measure on CPU."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import aiohttp
import pytest

from subnet.validator.gate import Gate
from subnet.validator.gate_measure import GateTrainer
from subnet.validator.gateway import Gateway
from subnet.validator.openai_format import classify
from tests.validator.helpers import (
    make_validator,
    start_gateway,
    validator_config,
)

KEY = "sk-test-gate"
MATH_PROMPTS = ("12 * 4 =", "(3 + 9) * 2 =", "81 - 39 =", "7 * 6 + 1 =")
CODE_PROMPTS = ("def f(x):\n    return x;", "import os\n\ndef main():\n", "for i in range(3): {")


@pytest.fixture
async def four(tmp_path, registry, by_domain, mwallets, signed, start_miner):
    """A validator with one honest miner per expert: code 1, math 2, general 3, data 4."""
    miners = []
    for uid, domain in enumerate(("code", "math", "general", "data"), start=1):
        _, info = await start_miner(by_domain[domain], mwallets[uid - 1], uid=uid)
        miners.append(info)
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners(miners)
    return v


async def _gateway(v, **cfg) -> Gateway:
    return await start_gateway(v, KEY, **cfg)


async def _ask(gw, prompt: str, model: str = "auto") -> int:
    body = {"model": model, "prompt": prompt, "max_tokens": 4, "temperature": 0}
    auth = {"Authorization": f"Bearer {KEY}"}
    url = f"http://127.0.0.1:{gw.port}/v1/completions"
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=auth) as r:
        assert r.status == 200, await r.text()
        return int(r.headers["X-Dmoe-Uid"])


def _hash(registry, domain: str) -> str:
    return next(h for h, e in registry.experts.items() if e.card.domains[0] == domain)


def _teach(gate: Gate, best: dict[str, str], registry, rounds: int = 12) -> None:
    """Evidence that `best[prompt]`'s expert fits each prompt by 1.5 nats over the others."""
    for _ in range(rounds):
        for prompt, domain in best.items():
            quality = {h: -6.0 for h in registry.experts}
            quality[_hash(registry, domain)] = -4.5
            gate.observe(prompt, quality)


async def test_auto_requests_follow_the_learned_gate_not_the_rule(four, registry):
    v = four
    gw = await _gateway(v, verify_share=0.0)
    try:
        # Cold start: the rule. Arithmetic goes to the math expert and counts as its demand.
        assert await _ask(gw, "12 * 4 =") == 2
        assert v.ledger.demand() == {_hash(registry, "math"): pytest.approx(1.0, rel=1e-3)}
        # Evidence that, on this validator's measurements, the general expert answers
        # arithmetic best: once the learned ranking beats the rule, it routes.
        _teach(v.gate, {p: "general" for p in MATH_PROMPTS} | dict.fromkeys(CODE_PROMPTS, "code"),
               registry)  # fmt: skip
        assert v.gate.trusted()
        assert classify("12 * 4 =") == "math"
        assert await _ask(gw, "12 * 4 =") == 3
        assert await _ask(gw, "def f(x):\n    return x;") == 1
        demand = v.ledger.demand()
        assert demand[_hash(registry, "general")] == pytest.approx(1.0, rel=1e-3)
        # A named domain is the user's choice, not the gate's.
        assert await _ask(gw, "12 * 4 =", model="math") == 2
    finally:
        await gw.stop()


async def test_an_expert_leaving_or_joining_keeps_routing(four, registry):
    v = four
    _teach(v.gate, dict.fromkeys(MATH_PROMPTS, "math") | dict.fromkeys(CODE_PROMPTS, "code"),
           registry)  # fmt: skip
    gw = await _gateway(v, verify_share=0.0)
    try:
        assert await _ask(gw, "7 * 6 + 1 =") == 2
        math_miner = v.miners[2]
        # The math miner leaves: its expert is still ranked first, nobody serves it, the next
        # expert's miner answers.
        v.set_miners([m for u, m in v.miners.items() if u != 2])
        assert await _ask(gw, "7 * 6 + 1 =") in (1, 3, 4)
        # The math expert leaves the registry altogether: not ranked, nothing breaks.
        math_h = _hash(registry, "math")
        fit = dict(registry.fit)
        v.ledger.set_experts({h: f for h, f in fit.items() if h != math_h})
        assert math_h not in v.route("7 * 6 + 1 =")
        assert await _ask(gw, "7 * 6 + 1 =") in (1, 3, 4)
        # It comes back (its model kept), with its miner: routed to it again.
        v.ledger.set_experts(fit)
        v.set_miners([*v.miners.values(), math_miner])
        assert v.route("7 * 6 + 1 =")[0] == math_h
        assert await _ask(gw, "7 * 6 + 1 =") == 2
    finally:
        await gw.stop()


async def test_gate_learns_from_verified_prompts_in_a_thread_bounded(four, registry, by_domain):
    v = four
    gw = await _gateway(v, verify_share=1.0)
    try:
        # Organic answers verified by the gateway offer their prompts...
        await _ask(gw, "SELECT name FROM users WHERE id = 3;")
        while gw._tasks:
            await asyncio.gather(*list(gw._tasks), return_exceptions=True)
        assert list(v.gate_trainer.pending) == ["SELECT name FROM users WHERE id = 3;"]
        # ... and a scoring step offers its verified task prompts and learns from one batch.
        report = await v.step()
        assert "ok" in {r for rs in report.reasons.values() for r in rs}
        made = v.gate_trainer.observed
        assert 1 <= made <= v.gate_trainer.per_batch  # one bounded batch per step
        assert set(v.gate.evidence()) == set(registry.experts)
        assert all(n == made for n in v.gate.evidence().values())
        status = v.status()["experts"]
        assert sum(e["routed_prompts"] for e in status.values()) == made
        assert all(e["quality"] is None or e["quality"] < 0 for e in status.values())
    finally:
        await gw.stop()


async def test_measured_quality_trains_the_gate_and_a_failure_is_isolated(registry, caplog):
    gate = Gate()
    cards = {h: e.card.domains for h, e in registry.experts.items()}
    trainer = GateTrainer(gate, registry, domains=lambda: cards, per_batch=4, max_pending=6)
    prompts = ['{"id": 7, "tags": ["a"]}', "SELECT id FROM t;", "class A:\n    def f(self):"]
    for p in prompts * 3:
        trainer.offer(p)
    assert len(trainer.pending) == 6  # bounded: the oldest were dropped
    assert await trainer.train_once() == 4
    assert await trainer.train_once() == 2
    assert await trainer.train_once() == 0
    assert gate.evidence() == dict.fromkeys(registry.experts, 6)
    # What the gate routed (the rule, this early) and the measured quality there: real figures.
    data_h, code_h = _hash(registry, "data"), _hash(registry, "code")
    assert set(trainer.quality) == {data_h, code_h}
    assert sum(n for n, _ in trainer.quality.values()) == 6
    assert all(-12.0 < q < 0.0 for _, q in trainer.quality.values())

    # A reference copy whose forward fails (as an out-of-memory error would).
    broken = GateTrainer(
        gate,
        {data_h: replace(registry.experts[data_h], model=_Failing(registry.experts[data_h].model))},
    )
    broken.offer("x = 1")
    with caplog.at_level(logging.WARNING):
        assert await broken.train_once() == 0
    assert broken.failures == 1 and "gate training skipped" in caplog.text
    assert gate.steps == 6  # the failed batch taught nothing


async def test_gate_is_saved_with_the_traffic_profile_and_damage_starts_fresh(
    tmp_path, registry, signed, caplog
):
    cfg = validator_config(tmp_path / "s.json")
    v = make_validator(cfg, signed, registry)
    _teach(v.gate, dict.fromkeys(MATH_PROMPTS, "general"), registry)
    v.save_traffic()
    again = make_validator(cfg, signed, registry)
    assert again.gate.steps == v.gate.steps > 0
    assert again.route("12 * 4 =") == v.route("12 * 4 =")
    path = again.store.side_path("gate")
    for garbage in ("{not json", '{"version": 1, "experts": {"x": {"w": "@@"}}}', "[1, 2]"):
        path.write_text(garbage)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            fresh = make_validator(cfg, signed, registry)
        assert fresh.gate.steps == 0 and not fresh.gate.heads
        assert "gate: 0 expert models" in caplog.text
        assert fresh.route("12 * 4 =")[0] == _hash(registry, "math")  # the rule's cold start


class _Failing:
    """A reference model whose forward fails (as running out of device memory does)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        if name in ("base_model", "model"):  # no separable trunk: the whole forward runs
            return self
        return getattr(self.inner, name)

    def __call__(self, *args, **kwargs):
        raise RuntimeError("out of memory")
