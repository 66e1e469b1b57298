"""The miner over real HTTP: exact outputs, streaming, cancellation, and every rejection path."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiohttp
import pytest
import torch

from protocol import (
    PROTOCOL_HEADER,
    GenerateChunk,
    GenerateRequest,
    GenerateResponse,
    ScoreRequest,
)
from subnet.engine.prompt import encode_prompt
from subnet.engine.scoring import score_batch
from subnet.miner import client as mc
from subnet.miner.admission import AdmissionPolicy
from subnet.net import SignedClient
from tests.miner.conftest import miner_config


def reference(expert, req: GenerateRequest) -> list[int]:
    ids = encode_prompt(expert.tokenizer, req)
    out = expert.model.generate(torch.tensor([ids]), max_new_tokens=req.max_tokens, do_sample=False)
    return out[0, len(ids) :].tolist()


async def test_generate_matches_model_and_stream_matches_body(start_miner, signed, math_expert):
    server = await start_miner()
    v1 = signed("v1")
    reqs = [GenerateRequest(prompt=p, max_tokens=n) for p, n in (("5 * 6 =", 12), ("77 +", 30))]
    bodies = await asyncio.gather(*(mc.generate(v1, server.url, server.hotkey, r) for r in reqs))
    for req, body in zip(reqs, bodies, strict=True):
        assert list(body.token_ids) == reference(math_expert, req)
        assert body.model == "dmoe/tiny-math"
        chunks, final = [], None
        async for item in mc.generate_stream(v1, server.url, server.hotkey, req):
            if isinstance(item, GenerateChunk):
                chunks.append(item)
            else:
                final = item
        assert isinstance(final, GenerateResponse)
        assert final.token_ids == body.token_ids and final.text == body.text
        assert [t for c in chunks for t in c.token_ids] == list(body.token_ids)
        assert "".join(c.text for c in chunks) == body.text
        assert [lp.logprob for lp in final.logprobs] == pytest.approx(
            [lp.logprob for lp in body.logprobs], abs=1e-4
        )


async def test_score_card_health_metrics(start_miner, signed, math_expert):
    server = await start_miner()
    v1 = signed("v1")
    ids = math_expert.tokenizer.encode("12 + 30 = 42", add_special_tokens=False)
    got = await mc.score(v1, server.url, server.hotkey, ScoreRequest(token_ids=tuple(ids), start=1))
    want = score_batch(math_expert.model, [ids], [1])[0]
    assert list(got.ranks) == want.ranks
    card = await mc.card(v1, server.url, server.hotkey)
    assert card.weights_hash == math_expert.card.weights_hash and card.capacity == 8
    async with aiohttp.ClientSession() as s:
        async with s.get(server.url + "/health") as r:
            assert r.status == 200 and (await r.json())["model"] == "dmoe/tiny-math"
        async with s.get(server.url + "/metrics") as r:
            text = await r.text()
    assert 'dmoe_miner_requests_total{endpoint="score",status="200"} 1.0' in text
    assert "dmoe_miner_batch_size" in text and "dmoe_miner_queue_depth" in text


async def test_disconnect_cancels_and_frees_the_slot(start_miner, signed):
    server = await start_miner()
    v1 = signed("v1")
    req = GenerateRequest(prompt="1 + 1 =", max_tokens=64)
    stream = mc.generate_stream(v1, server.url, server.hotkey, req)
    first = await stream.__anext__()
    assert isinstance(first, GenerateChunk)
    assert server.engine.active == 1
    await stream.aclose()  # closes the connection mid-stream
    for _ in range(200):
        if server.engine.active == 0:
            break
        await asyncio.sleep(0.01)
    assert server.engine.active == 0
    ok = await mc.generate(
        v1, server.url, server.hotkey, GenerateRequest(prompt="2 +", max_tokens=3)
    )
    assert ok.usage.completion_tokens == 3


async def _post(client, server, body: bytes | dict):
    async with client.request(
        "POST", server.url + "/v1/generate", receiver_ss58=server.hotkey, payload=body
    ) as r:
        return r.status, await r.json(), r.headers


@pytest.mark.parametrize(
    "who, body, status, code",
    [
        ("stranger", {"prompt": "1 +"}, 403, "not_registered"),
        ("plain", {"prompt": "1 +"}, 403, "not_validator"),
        ("lowstake", {"prompt": "1 +"}, 403, "low_stake"),
        ("v1", {"prompt": "1 +", "max_tokens": 65}, 400, "max_tokens_too_large"),
        ("v1", b"{not json", 400, "malformed_json"),
        ("v1", {"prompt": "1 +", "version": 2}, 400, "unsupported_version"),
        ("v1", {"prompt": "1 +", "max_tokens": -1}, 400, "invalid_request"),
        ("v1", {"prompt": "1 + 1 = 2\n" * 300, "max_tokens": 64}, 400, "request_rejected"),
        ("v1", b"x" * 70_000, 413, "body_too_large"),
    ],
)
async def test_rejections_then_still_serving(start_miner, signed, who, body, status, code):
    server = await start_miner(
        miner_config(max_body_bytes=64 * 1024, policy=AdmissionPolicy(min_stake=10.0))
    )
    got, err, _ = await _post(signed(who), server, body)
    assert (got, err["error"]) == (status, code)
    assert err["message"]
    ok = await mc.generate(
        signed("v1"), server.url, server.hotkey, GenerateRequest(prompt="3 +", max_tokens=2)
    )
    assert ok.usage.completion_tokens == 2


async def test_unsigned_and_wrong_receiver_are_401(start_miner, signed, wallets):
    server = await start_miner()
    async with aiohttp.ClientSession() as s:
        async with s.post(server.url + "/v1/generate", json={"prompt": "1 +"}) as r:
            assert r.status == 401 and (await r.json())["message"]
    async with signed("v1").request(
        "POST",
        server.url + "/v1/generate",
        receiver_ss58=wallets["v2"].hotkey.ss58_address,
        payload={"prompt": "1 +"},
    ) as r:
        assert r.status == 401


@pytest.mark.parametrize("version", ["2", "0", "one", ""])
async def test_other_protocol_version_header_is_refused_before_auth(start_miner, version):
    """Unsigned on purpose: a 400 naming the version (not a 401) shows the header is checked
    before any signature work; the miner keeps serving."""
    server = await start_miner()
    async with aiohttp.ClientSession() as s:
        async with s.post(
            server.url + "/v1/generate",
            json={"prompt": "1 +"},
            headers={PROTOCOL_HEADER: version},
        ) as r:
            body = await r.json()
            assert (r.status, body["error"], body["field"]) == (
                400,
                "unsupported_version",
                PROTOCOL_HEADER,
            )
            assert "version" in body["message"]
        async with s.post(server.url + "/v1/generate", json={"prompt": "1 +"}) as r:
            assert r.status == 401  # no header: decided by the signature, then the body


async def test_quota_and_capacity_answer_429_with_retry_after(start_miner, signed):
    tight = AdmissionPolicy(
        min_stake=10.0, total_tokens_per_s=0.5, min_tokens_per_s=0.5, min_burst_tokens=40
    )
    cfg = miner_config(policy=tight)
    cfg = replace(cfg, engine=replace(cfg.engine, max_batch=1, max_queue=0))
    server = await start_miner(cfg)
    v1, v2 = signed("v1"), signed("v2")
    big = GenerateRequest(prompt="1 +", max_tokens=50)
    status, err, _ = await _post(v1, server, big.to_dict())
    assert (status, err["error"]) == (429, "quota_exceeded")  # more than the whole burst
    running = mc.generate_stream(
        v1, server.url, server.hotkey, GenerateRequest(prompt="1 +", max_tokens=30)
    )
    assert isinstance(await running.__anext__(), GenerateChunk)
    status, err, headers = await _post(
        v1, server, GenerateRequest(prompt="2 +", max_tokens=30).to_dict()
    )
    assert (status, err["error"]) == (429, "quota_exceeded") and int(headers["Retry-After"]) >= 1
    status, err, headers = await _post(
        v2, server, GenerateRequest(prompt="2 +", max_tokens=5).to_dict()
    )
    assert (status, err["error"]) == (429, "at_capacity") and int(headers["Retry-After"]) >= 1
    async for _ in running:
        pass
    ok = await mc.generate(
        v2, server.url, server.hotkey, GenerateRequest(prompt="3 +", max_tokens=2)
    )
    assert ok.usage.completion_tokens == 2
    async with aiohttp.ClientSession() as s:
        async with s.get(server.url + "/metrics") as r:
            text = await r.text()
    assert 'dmoe_miner_rejections_total{reason="at_capacity"} 1.0' in text
    assert 'dmoe_miner_rejections_total{reason="quota_exceeded"} 2.0' in text


async def test_stop_drains_in_flight_requests(start_miner, signed):
    server = await start_miner()
    v1 = signed("v1")
    req = GenerateRequest(prompt="5 +", max_tokens=40)
    stream = mc.generate_stream(v1, server.url, server.hotkey, req)
    assert isinstance(await stream.__anext__(), GenerateChunk)
    stopping = asyncio.create_task(server.stop())
    await asyncio.sleep(0)  # stop() has begun: the engine takes no new work
    status, err, _ = await _post(v1, server, GenerateRequest(prompt="1 +").to_dict())
    assert (status, err["error"]) == (503, "stopping")
    items = [item async for item in stream]
    assert isinstance(items[-1], GenerateResponse)
    assert items[-1].finish_reason == "length" and items[-1].usage.completion_tokens == 40
    await stopping


async def test_non_streaming_client_that_gives_up_frees_the_slot(start_miner, wallets):
    server = await start_miner(miner_config(max_new_tokens=500))
    client = SignedClient.create(wallets["v1"].hotkey)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await client.post_json(
                server.url + "/v1/generate",
                GenerateRequest(prompt="1 +", max_tokens=500, stream=False).to_dict(),
                receiver_ss58=server.hotkey,
                timeout=0.2,
            )
    finally:
        await client.close()
    for _ in range(300):
        if server.engine.active == 0:
            break
        await asyncio.sleep(0.01)
    assert server.engine.active == 0
    async with aiohttp.ClientSession() as s:
        async with s.get(server.url + "/metrics") as r:
            text = await r.text()
    assert 'dmoe_miner_requests_total{endpoint="generate",status="200"}' not in text
