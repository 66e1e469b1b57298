"""Cheats that only pay when users are present, against a real gateway, real miners and the
official `openai` client: users receive only text derived from verified token ids; refusing
users costs what failing them costs; serving users a cheap model is caught by organic
verification and struck; a completed answer does not clear a ban before its verification."""

from __future__ import annotations

import asyncio

import openai
import pytest

from subnet.miner.adversary import AdversaryConfig
from subnet.miner.adversary.content import AD
from subnet.validator.config import GatewayConfig
from subnet.validator.gateway import Gateway
from subnet.validator.router import RouterConfig
from tests.validator.helpers import make_validator, random_tokens, validator_config

KEY = "sk-test-1"
# User-like prompts: none of the task templates' fingerprints.
USERS = [
    "Please write a python function that reverses a linked list",
    "explain recursion to a ten year old",
    "what does the walrus operator do in python?",
]


async def _gateway(v, **cfg) -> Gateway:
    defaults = dict(port=0, api_keys=(KEY,), verify_share=1.0)
    defaults.update(cfg)
    gw = Gateway(v, GatewayConfig(**defaults), RouterConfig(explore=0.0, top_k=3))
    await gw.start("127.0.0.1", 0)
    return gw


def _client(gw) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{gw.port}/v1", api_key=KEY, max_retries=0, timeout=30
    )


async def _settle(gw) -> None:
    """Let background organic verifications finish."""
    while gw._tasks:
        await asyncio.gather(*list(gw._tasks), return_exceptions=True)


async def test_users_receive_derived_text_and_a_lying_miner_is_struck(
    tmp_path, registry, by_domain, mwallets, signed, start_miner
):
    code = by_domain["code"]
    _, liar = await start_miner(code, mwallets[0], uid=1, cheat=AdversaryConfig("lie_text"))
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([liar])
    gw = await _gateway(v)
    try:
        client = _client(gw)
        chat = await client.chat.completions.create(
            model="code", messages=[{"role": "user", "content": USERS[0]}], max_tokens=16
        )
        assert chat.choices[0].message.content and AD.strip() not in chat.choices[0].message.content
        await _settle(gw)
        assert v.ledger.banned(1)  # text_mismatch: a strike and a ban
        assert v.ledger.value(1) == 0.0 and v.state.tally(1).last_reason == "text_mismatch"
        with pytest.raises(openai.APIStatusError):  # nobody else serves: 503, not the liar
            await client.completions.create(model="code", prompt=USERS[1], max_tokens=8)
    finally:
        await gw.stop()


async def test_streamed_text_comes_from_the_tokens(
    tmp_path, registry, by_domain, mwallets, signed, start_miner
):
    code = by_domain["code"]
    _, liar = await start_miner(code, mwallets[0], uid=1, cheat=AdversaryConfig("lie_text"))
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([liar])
    gw = await _gateway(v, verify_share=0.0)
    try:
        stream = await _client(gw).completions.create(
            model="code", prompt="import os\n", max_tokens=12, stream=True
        )
        text = "".join([c.choices[0].text async for c in stream])
        assert text and AD.strip() not in text
    finally:
        await gw.stop()


async def test_refusing_users_costs_like_failing_them(
    tmp_path, registry, by_domain, mwallets, signed, start_miner
):
    math = by_domain["math"]
    _, choosy = await start_miner(math, mwallets[0], uid=1, cheat=AdversaryConfig("refuse_users"))
    _, honest = await start_miner(math, mwallets[1], uid=2)
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([choosy, honest])
    gw = await _gateway(v, verify_share=0.0)
    try:
        client = _client(gw)
        # Both unscored: which is tried first is a coin flip; nine flips miss the refuser with
        # probability 1/512.
        for prompt in USERS * 3:
            done = await client.completions.create(model="math", prompt=prompt, max_tokens=8)
            assert done.choices[0].text  # failed over to the honest miner
        t = v.state.tally(1)
        assert t.refused >= 1 and t.refused == t.samples  # each refusal is a failed sample
        assert v.state.tally(2).refused == 0
    finally:
        await gw.stop()


async def test_a_cheap_model_for_users_is_caught_by_organic_verification(
    tmp_path, registry, by_domain, mwallets, signed, start_miner, start_scripted
):
    math = by_domain["math"]
    cheap = await start_scripted(random_tokens(len(math.tokenizer)), mwallets[0], 1, math.card)
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([cheap])
    gw = await _gateway(v)
    try:
        done = await _client(gw).completions.create(model="math", prompt=USERS[2], max_tokens=8)
        assert done.choices[0].text is not None
        await _settle(gw)
        assert v.ledger.banned(1) and v.ledger.value(1) == 0.0
        # random tokens with made-up logprobs: whichever check speaks first
        assert v.state.tally(1).last_reason in {"implausible_tokens", "logprob_mismatch"}
        v.ledger.transport_success(1)  # a later completed answer does not lift a cheat ban
        assert v.ledger.banned(1)
    finally:
        await gw.stop()
