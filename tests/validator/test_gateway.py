"""The OpenAI-compatible gateway through the official `openai` client, against real miners."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from subnet.validator.gateway import Gateway
from subnet.validator.scoring import Tally
from tests.validator.helpers import (
    make_validator,
    random_tokens,
    start_gateway,
    validator_config,
)

KEY = "sk-test-1"


@pytest.fixture
async def network(tmp_path, registry, by_domain, mwallets, signed, start_miner):
    """A validator with an honest code miner (uid 1) and an honest math miner (uid 2)."""
    _, code = await start_miner(by_domain["code"], mwallets[0], uid=1)
    _, math = await start_miner(by_domain["math"], mwallets[1], uid=2)
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([code, math])
    return v


async def _gateway(v, **cfg) -> Gateway:
    return await start_gateway(v, KEY, **cfg)


def _client(gw, key=KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{gw.port}/v1", api_key=key, max_retries=0, timeout=30
    )


async def test_openai_client_stream_and_non_stream_routes_by_domain(network):
    gw = await _gateway(network)
    try:
        client = _client(gw)
        models = await client.models.list()
        assert {"code", "math", "dmoe/tiny-code"} <= {m.id for m in models.data}
        raw = await client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": "def merge(a, b):\n    return"}],
            max_tokens=12,
            temperature=0,
        )
        assert raw.headers["x-dmoe-uid"] == "1"  # code prompt -> the code expert
        chat = raw.parse()
        assert chat.choices[0].message.content and chat.usage.completion_tokens > 0
        assert chat.choices[0].finish_reason in ("stop", "length")

        done = await client.completions.create(model="math", prompt="12 + 7 =", max_tokens=8)
        assert done.choices[0].text and done.usage.completion_tokens == 8

        stream = await client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "What is 40 + 2 ="}],
            max_tokens=10,
            stream=True,
        )
        parts, finishes = [], []
        async for chunk in stream:
            parts.append(chunk.choices[0].delta.content or "")
            finishes.append(chunk.choices[0].finish_reason)
        assert "".join(parts) and finishes[-1] in ("stop", "length")

        cstream = await client.completions.create(
            model="code", prompt="import os\n", max_tokens=6, stream=True
        )
        texts = [c.choices[0].text async for c in cstream]
        assert "".join(texts)
    finally:
        await gw.stop()


async def test_failover_when_a_miner_dies_mid_stream(network, by_domain, mwallets, start_scripted):
    math = by_domain["math"]
    dying = await start_scripted(
        random_tokens(len(math.tokenizer)), mwallets[2], 3, math.card, die_mid_stream=True
    )
    network.set_miners([*network.miners.values(), dying])
    # The dying miner looks best, so it is tried first.
    block = network.ledger.block()
    network.state.put(3, dying.hotkey, Tally(block, 10, 10, tokens=900, seconds=1))
    network.state.put(2, network.miners[2].hotkey, Tally(block, 10, 10, tokens=500, seconds=1))
    gw = await _gateway(network, verify_share=0.0)
    try:
        stream = await _client(gw).completions.create(
            model="math", prompt="3 + 4 =", max_tokens=12, stream=True
        )
        texts = [c.choices[0].text async for c in stream]
        assert len("".join(texts)) > 4  # the backup continued after the first miner died
        assert gw.ledger.banned(3)
    finally:
        await gw.stop()


async def test_rejects_bad_keys_malformed_bodies_and_over_limit(network):
    gw = await _gateway(network, requests_per_minute=1, burst=2, max_tokens_cap=64)
    url = f"http://127.0.0.1:{gw.port}/v1"
    try:
        with pytest.raises(openai.AuthenticationError):
            await _client(gw, key="sk-wrong").models.list()
        async with aiohttp.ClientSession() as s:
            auth = {"Authorization": f"Bearer {KEY}"}
            async with s.post(f"{url}/chat/completions", data=b"{not json", headers=auth) as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == "malformed_json"
            body = {
                "model": "auto",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 10_000,
            }
            async with s.post(f"{url}/chat/completions", json=body, headers=auth) as r:
                err = (await r.json())["error"]
                assert r.status == 400 and err["param"] == "max_tokens"
            async with s.post(f"{url}/completions", json={"prompt": "x"}, headers=auth) as r:
                assert r.status == 429 and "Retry-After" in r.headers  # burst of 2 spent
                assert (await r.json())["error"]["code"] == "rate_limit_exceeded"
    finally:
        await gw.stop()
