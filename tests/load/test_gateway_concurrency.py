"""50 concurrent streaming clients (official `openai` client, one API key each) through one
validator gateway to two real tiny-expert miners: every stream completes with content and a
finish reason, and the gateway is still healthy afterwards. (200 clients, with TTFT and RSS:
`scripts/bench_load.py --only gateway`.)"""

from __future__ import annotations

import asyncio

import httpx2
import openai
import pytest
import torch

from subnet.config import AxonConfig, CommonConfig, LoggingConfig, SubtensorConfig, WalletConfig
from subnet.miner.admission import AdmissionPolicy, MetagraphSnapshot, Peer
from subnet.miner.config import EngineConfig, MinerConfig, ServerConfig
from subnet.miner.server import MinerServer
from subnet.net import SignedClient
from subnet.validator.config import GatewayConfig, LoopConfig, ValidatorConfig
from subnet.validator.gateway import Gateway
from subnet.validator.loop import Validator
from subnet.validator.query import MinerInfo
from subnet.validator.router import RouterConfig
from subnet.validator.state import StateStore
from subnet.validator.verifier import ExpertRegistry, Verifier

CLIENTS = 50


def _common() -> CommonConfig:
    axon = AxonConfig(ip="127.0.0.1", port=0)
    return CommonConfig(1, WalletConfig(), SubtensorConfig(), axon, LoggingConfig())


@pytest.fixture
async def gateway(tiny_experts, make_wallet, tmp_path):
    torch.set_num_threads(1)
    reg = ExpertRegistry.load_dir(next(iter(tiny_experts.values())).parent)
    vw = make_wallet("load-gw-validator")
    snapshot = MetagraphSnapshot(1, {vw.hotkey.ss58_address: Peer(0, 1000.0, True)})
    cfg = MinerConfig(
        common=_common(),
        engine=EngineConfig(expert="unused", max_batch=16, max_queue=CLIENTS),
        server=ServerConfig(
            max_new_tokens=64,
            drain_s=2,
            policy=AdmissionPolicy(total_tokens_per_s=1e9, min_burst_tokens=1e9),
        ),  # fmt: skip
        publish=False,
    )
    servers, infos = [], []
    for uid, expert in enumerate(reg.experts.values(), start=1):
        w = make_wallet(f"load-gw-miner{uid}")
        server = MinerServer.create(cfg, wallet=w, expert=expert, snapshot=snapshot)
        await server.start()
        servers.append(server)
        infos.append(MinerInfo(uid, server.hotkey, server.url, server.engine.card))
    signed = SignedClient.create(vw.hotkey)
    vcfg = ValidatorConfig(common=_common(), state_path=tmp_path / "s.json",
                           loop=LoopConfig(step_s=3600, seed=1))  # fmt: skip
    v = Validator(vcfg, signed=signed, verifier=Verifier(reg), store=StateStore(vcfg.state_path))
    v.set_miners(infos)
    keys = tuple(f"sk-load-{i}" for i in range(CLIENTS))
    gw = Gateway(v, GatewayConfig(port=0, api_keys=keys, verify_share=0.0), RouterConfig())
    await gw.start("127.0.0.1", 0)
    yield gw, keys
    await gw.stop()
    await signed.close()
    for s in servers:
        await s.stop()


async def test_fifty_concurrent_streams_all_complete(gateway):
    gw, keys = gateway
    base = f"http://127.0.0.1:{gw.port}/v1"
    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    go = asyncio.Event()
    async with httpx2.AsyncClient(limits=limits) as http:

        async def one(i: int) -> tuple[str, str | None]:
            c = openai.AsyncOpenAI(base_url=base, api_key=keys[i], http_client=http,
                                   max_retries=0, timeout=60)  # fmt: skip
            await go.wait()
            stream = await c.chat.completions.create(
                model="auto", stream=True, max_tokens=8,
                messages=[{"role": "user", "content": f"What is {i} + {i % 7} ="}],
            )  # fmt: skip
            parts, finish = [], None
            async for chunk in stream:
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
                    finish = chunk.choices[0].finish_reason or finish
            return "".join(parts), finish

        tasks = [asyncio.create_task(one(i)) for i in range(CLIENTS)]
        await asyncio.sleep(0.05)
        go.set()  # all at once
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors[:3]
        # Every stream ends properly; an answer may be empty when the model's first token is EOS.
        assert all(finish in ("stop", "length") for _, finish in results), results
        assert sum(1 for text, _ in results if text) >= 0.9 * CLIENTS, results
        health = await http.get(f"{base[:-3]}/health", timeout=5)
        assert health.status_code == 200
