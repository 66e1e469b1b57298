"""Validator fixtures: reference experts, wallets, honest and scripted miners on 127.0.0.1:0."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
from aiohttp import web

from protocol import GenerateChunk, GenerateRequest, GenerateResponse, decode_json
from subnet.miner.admission import AdmissionPolicy, MetagraphSnapshot, Peer
from subnet.miner.config import MinerConfig, ServerConfig
from subnet.miner.server import MinerServer
from subnet.net import RAW_BODY, SignedClient, btauth_middleware, error_response
from subnet.validator.query import MinerInfo
from subnet.validator.verifier import ExpertRegistry
from tests.builders import local_miner_config


@pytest.fixture(scope="session")
def registry(tiny_experts) -> ExpertRegistry:
    torch.set_num_threads(1)
    return ExpertRegistry.load_dir(next(iter(tiny_experts.values())).parent)


@pytest.fixture(scope="session")
def by_domain(registry):
    """domain -> the registry's LoadedExpert for it."""
    return {e.card.domains[0]: e for e in registry.experts.values()}


@pytest.fixture(scope="session")
def vwallet(make_wallet):
    return make_wallet("val-validator")


@pytest.fixture(scope="session")
def mwallets(make_wallet):
    return [make_wallet(f"val-miner{i}") for i in range(4)]


def _snapshot(vwallet) -> MetagraphSnapshot:
    return MetagraphSnapshot(block=1, peers={vwallet.hotkey.ss58_address: Peer(0, 1000.0, True)})


def _miner_config() -> MinerConfig:
    server = ServerConfig(max_new_tokens=128, drain_s=2, policy=AdmissionPolicy())
    return local_miner_config(server, max_batch=8, max_queue=16)


@pytest.fixture
async def signed(vwallet):
    client = SignedClient.create(vwallet.hotkey)
    yield client
    await client.close()


@pytest.fixture
async def start_miner(vwallet):
    """start_miner(expert, wallet, card=None) -> (MinerServer, MinerInfo) honest real miner."""
    started: list[MinerServer] = []

    async def start(expert, wallet, uid: int, card=None, cheat=None, snapshot=None):
        """`cheat`: an AdversaryConfig installed on the server (with `expert` as its model)."""
        if card is not None:
            expert = replace(expert, card=card)
        server = MinerServer.create(
            _miner_config(), wallet=wallet, expert=expert, snapshot=snapshot or _snapshot(vwallet)
        )
        if cheat is not None:
            from subnet.miner.adversary import install

            install(server, cheat, expert)
        await server.start()
        started.append(server)
        return server, MinerInfo(uid, wallet.hotkey.ss58_address, server.url, server.engine.card)

    yield start
    for s in started:
        await s.stop()


Behaviour = Callable[[GenerateRequest], GenerateResponse]


async def _serve_scripted(
    behaviour: Behaviour, hotkey: str, die_mid_stream: bool
) -> tuple[web.AppRunner, int]:
    async def generate(request: web.Request) -> web.StreamResponse:
        try:
            req = GenerateRequest.from_dict(decode_json(request[RAW_BODY]))
        except ValueError as err:
            return error_response(400, "invalid_request", str(err))
        resp = behaviour(req)
        if resp is None:
            return error_response(429, "busy", "at capacity", retry_after=2.0)
        if not req.stream:
            return web.json_response(resp.to_dict())
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        if die_mid_stream:
            first = GenerateChunk(req.request_id, 0, resp.token_ids[:2], resp.text[:4])
            await out.write(f"data: {json.dumps(first.to_dict())}\n\n".encode())
            await out.drain()
            request.transport.close()  # the miner process dies here
            return out
        await out.write(f"event: done\ndata: {json.dumps(resp.to_dict())}\n\n".encode())
        return out

    app = web.Application(middlewares=[btauth_middleware(hotkey)])
    app.router.add_post("/v1/generate", generate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def start_scripted():
    """start_scripted(behaviour, wallet, uid, card) -> MinerInfo of a scripted fake miner."""
    runners: list[web.AppRunner] = []

    async def start(behaviour: Behaviour, wallet, uid: int, card, die_mid_stream=False):
        runner, port = await _serve_scripted(behaviour, wallet.hotkey.ss58_address, die_mid_stream)
        runners.append(runner)
        url = f"http://127.0.0.1:{port}"
        return MinerInfo(uid, wallet.hotkey.ss58_address, url, card)

    yield start
    for r in runners:
        await r.cleanup()
