"""Local-chain fixtures for every team: an in-process chain, a client on it, a ready subnet.

    async def test_x(local_chain, chain_client, make_wallet):
        owner, v, m = make_wallet("owner"), make_wallet("v1"), make_wallet("m1")
        netuid = await bootstrap_subnet(chain_client, local_chain, owner, [v], [m], stake_tao=100)
        local_chain.produce_blocks(5)

Genesis for tests: tempo 10, weights rate limit 2, immunity 5 blocks, instant seal (every
submission makes its own block; `local_chain.produce_blocks(n)` for idle blocks).
"""

from __future__ import annotations

import pytest

from subnet.chain import Genesis, make_client
from subnet.chain.devnet import bootstrap_subnet
from subnet.chain.local.chain import LocalChain

__all__ = ["bootstrap_subnet", "fast_genesis"]


def fast_genesis(**subnet_overrides) -> Genesis:
    """The test genesis; pass hyperparameter overrides in raw chain units."""
    defaults = dict(tempo=10, weights_rate_limit=2, immunity_period=5, activity_cutoff=5000)
    defaults.update(subnet_overrides)
    return Genesis.load().with_subnet(**defaults)


@pytest.fixture
def local_chain():
    """An in-memory LocalChain with the fast test genesis (manual/instant-seal blocks)."""
    chain = LocalChain.create(fast_genesis())
    yield chain
    chain.close()


@pytest.fixture
async def chain_client(local_chain):
    """A real `bt.Client` connected to `local_chain` (network label "local")."""
    client = make_client("local", chain=local_chain)
    async with client:
        yield client
