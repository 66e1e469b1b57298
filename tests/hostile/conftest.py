"""Hostile-input fixtures: a real miner and a real chain server, each in a background loop."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from subnet.chain.config import ChainConfig
from subnet.chain.local.chain import LocalChain
from subnet.chain.local.server import ChainServer
from subnet.miner.admission import AdmissionPolicy, MetagraphSnapshot, Peer
from subnet.miner.config import MinerConfig, ServerConfig
from subnet.miner.server import MinerServer
from tests.builders import local_miner_config
from tests.fixtures_chain import fast_genesis
from tests.hostile.rawhttp import Background

MAX_BODY = 64 * 1024
MAX_NEW = 8  # generations in the fuzz stay tiny; larger max_tokens is a 400


@pytest.fixture(scope="session")
def hwallets(make_wallet):
    names = ("miner", "val", "val2", "lowstake", "plain", "stranger")
    return {n: make_wallet(f"hostile-{n}") for n in names}


def hostile_snapshot(hwallets) -> MetagraphSnapshot:
    def hk(n: str) -> str:
        return hwallets[n].hotkey.ss58_address

    return MetagraphSnapshot(
        block=7,
        peers={
            hk("miner"): Peer(0, 0.0, False),
            hk("val"): Peer(1, 1000.0, True),
            hk("val2"): Peer(2, 1000.0, True),
            hk("lowstake"): Peer(3, 1.0, True),
            hk("plain"): Peer(4, 50.0, False),
        },
    )


def hostile_miner_config(**engine) -> MinerConfig:
    policy = AdmissionPolicy(min_stake=10.0, total_tokens_per_s=1e6, min_burst_tokens=1e6)
    server = ServerConfig(max_body_bytes=MAX_BODY, max_new_tokens=MAX_NEW, drain_s=2, policy=policy)
    return local_miner_config(server, **({"max_batch": 4, "max_queue": 8} | engine))


@pytest.fixture(scope="session")
def hostile_expert(tiny_experts):
    from subnet.engine.loading import load_expert

    torch.set_num_threads(1)
    return load_expert(tiny_experts["math"], device="cpu")


@dataclass
class Running:
    bg: Background
    server: object
    port: int
    hotkey: str = ""


@pytest.fixture(scope="module")
def bg_miner(hostile_expert, hwallets):
    bg = Background()

    async def start() -> MinerServer:
        server = MinerServer.create(
            hostile_miner_config(),
            wallet=hwallets["miner"],
            expert=hostile_expert,
            snapshot=hostile_snapshot(hwallets),
        )
        await server.start()
        return server

    server = bg.run(start())
    yield Running(bg, server, server.port, server.hotkey)
    bg.run(server.stop())
    bg.close()


@pytest.fixture(scope="module")
def bg_chain(tmp_path_factory):
    bg = Background()
    config = ChainConfig(
        data_dir=tmp_path_factory.mktemp("hostile-chain"),
        port=0,
        block_time=3600.0,
        instant=True,
        max_request_bytes=MAX_BODY,
    )

    async def start() -> ChainServer:
        srv = ChainServer(LocalChain.create(fast_genesis(), config.data_dir), config)
        await srv.start()
        return srv

    srv = bg.run(start())
    yield Running(bg, srv, srv.port)
    bg.run(srv.stop())
    bg.close()
