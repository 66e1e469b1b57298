"""btauth/1 between real wallets over a real aiohttp server on port 0."""

from __future__ import annotations

import time

import pytest
from aiohttp import web
from bittensor import http_auth

from subnet.net import CALLER, RAW_BODY, SignedClient, btauth_middleware


@pytest.fixture
async def server(make_wallet):
    miner = make_wallet("auth-miner")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {"caller": request[CALLER].hotkey_ss58, "len": len(request[RAW_BODY])}
        )

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(
        middlewares=[btauth_middleware(miner.hotkey.ss58_address, max_body_bytes=4096)]
    )
    app.router.add_post("/v1/echo", echo)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", miner.hotkey.ss58_address
    await runner.cleanup()


@pytest.fixture
async def client(make_wallet):
    c = SignedClient.create(make_wallet("auth-validator").hotkey)
    yield c
    await c.close()


async def _raw_post(client: SignedClient, url: str, body: bytes, headers: dict[str, str]):
    async with client.session.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_valid_request_reaches_handler_with_caller(server, client):
    base, miner = server
    status, data = await client.post_json(base + "/v1/echo", {"x": 1}, receiver_ss58=miner)
    assert status == 200
    assert data["caller"] == client.ss58_address and data["len"] > 0


async def test_public_path_needs_no_signature(server, client):
    base, _ = server
    async with client.session.get(base + "/health") as resp:
        assert resp.status == 200


async def test_unsigned_request_is_401(server, client):
    base, _ = server
    status, data = await _raw_post(client, base + "/v1/echo", b"{}", {})
    assert status == 401 and data["error"] == "MalformedAuth" and data["message"]


async def test_tampered_body_is_401(server, client):
    base, miner = server
    headers = client.sign("POST", base + "/v1/echo", b'{"x":1}', miner)
    status, data = await _raw_post(client, base + "/v1/echo", b'{"x":2}', headers)
    assert status == 401 and data["error"] == "BadSignature"


async def test_wrong_receiver_is_401(server, client, make_wallet):
    base, _ = server
    other = make_wallet("auth-other").hotkey.ss58_address
    headers = client.sign("POST", base + "/v1/echo", b"{}", other)
    status, data = await _raw_post(client, base + "/v1/echo", b"{}", headers)
    assert status == 401 and data["error"] == "WrongReceiver"


@pytest.mark.parametrize("offset_s, reason", [(-60, "older"), (+30, "future")])
async def test_stale_and_future_dated_are_401(server, client, offset_s, reason):
    base, miner = server
    nonce = time.time_ns() + int(offset_s * 1e9)
    headers = http_auth.sign(
        client.hotkey,
        method="POST",
        path="/v1/echo",
        body=b"{}",
        receiver_ss58=miner,
        nonce_ns=nonce,
    )
    status, data = await _raw_post(client, base + "/v1/echo", b"{}", headers)
    assert status == 401 and data["error"] == "StaleRequest" and reason in data["message"]


async def test_replayed_request_is_401(server, client):
    base, miner = server
    headers = client.sign("POST", base + "/v1/echo", b"{}", miner)
    status, _ = await _raw_post(client, base + "/v1/echo", b"{}", headers)
    assert status == 200
    status, data = await _raw_post(client, base + "/v1/echo", b"{}", headers)
    assert status == 401 and data["error"] == "ReplayedRequest"


async def test_oversized_body_is_413_before_verification(server, client):
    base, miner = server
    big = b"x" * 10_000
    status, data = await client.post_json(
        base + "/v1/echo", {"pad": big.decode()}, receiver_ss58=miner
    )
    assert status == 413 and data["error"] == "body_too_large"
