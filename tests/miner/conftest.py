"""Miner fixtures: real servers on 127.0.0.1:0 with a test-size expert and a fixed metagraph."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from subnet.miner.admission import AdmissionPolicy, MetagraphSnapshot, Peer
from subnet.miner.config import MinerConfig, ServerConfig
from subnet.miner.server import MinerServer
from subnet.net import SignedClient
from tests.builders import local_miner_config


@pytest.fixture(scope="session")
def math_expert(tiny_experts):
    from subnet.engine.loading import load_expert

    torch.set_num_threads(1)
    return load_expert(tiny_experts["math"], device="cpu")


@pytest.fixture(scope="session")
def wallets(make_wallet):
    names = ("miner", "v1", "v2", "lowstake", "plain", "stranger")
    return {n: make_wallet(f"mn-{n}") for n in names}


@pytest.fixture(scope="session")
def snapshot(wallets) -> MetagraphSnapshot:
    def hk(n):
        return wallets[n].hotkey.ss58_address

    return MetagraphSnapshot(
        block=100,
        peers={
            hk("miner"): Peer(0, 0.0, False),
            hk("v1"): Peer(1, 1000.0, True),
            hk("v2"): Peer(2, 1000.0, True),
            hk("lowstake"): Peer(3, 1.0, True),
            hk("plain"): Peer(4, 50.0, False),
        },
    )


def miner_config(**server) -> MinerConfig:
    cfg = local_miner_config(replace(ServerConfig(max_new_tokens=64, drain_s=5), **server))
    return replace(cfg, publish=True)


@pytest.fixture
async def start_miner(math_expert, wallets, snapshot):
    """start_miner(config=None) -> a started MinerServer; all are stopped at teardown."""
    started: list[MinerServer] = []

    async def start(config: MinerConfig | None = None) -> MinerServer:
        config = config or miner_config(policy=AdmissionPolicy(min_stake=10.0))
        server = MinerServer.create(
            config, wallet=wallets["miner"], expert=math_expert, snapshot=snapshot
        )
        await server.start()
        started.append(server)
        return server

    yield start
    for s in started:
        await s.stop()


@pytest.fixture
async def signed(wallets):
    """signed(name) -> a SignedClient for that wallet's hotkey; closed at teardown."""
    clients: list[SignedClient] = []

    def make(name: str) -> SignedClient:
        c = SignedClient.create(wallets[name].hotkey)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()
