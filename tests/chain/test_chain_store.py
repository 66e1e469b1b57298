"""Everything the chain holds survives a reopen of its SQLite store (catches missed touches)."""

from __future__ import annotations

import bittensor as bt

from subnet.chain import make_client
from subnet.chain.local.chain import LocalChain
from subnet.chain.local.runtime import metagraph
from tests.fixtures_chain import bootstrap_subnet, fast_genesis


async def test_reopened_store_equals_live_state(tmp_path, make_wallet):
    chain = LocalChain.create(fast_genesis(), tmp_path / "chain")
    owner, v1, m1, m2 = (make_wallet(n) for n in ("owner", "v1", "m1", "m2"))
    async with make_client("local", chain=chain) as client:
        netuid = await bootstrap_subnet(client, chain, owner, [v1], [m1, m2], stake_tao=50)
        await client.execute(bt.ServeAxon(netuid=netuid, ip="10.0.0.1", port=9000), m1)
        chain.produce_blocks(2)
        assert (
            await client.execute(bt.SetWeights(netuid=netuid, weights={2: 1, 3: 3}), v1)
        ).success
        chain.produce_blocks(25)
    live = chain.state
    reopened = LocalChain.create(None, tmp_path / "chain")
    again = reopened.state
    assert again.block == live.block
    assert (again.balances, again.nonces, again.owners) == (live.balances, live.nonces, live.owners)
    assert again.stake == live.stake and again.hotkey_alpha == live.hotkey_alpha
    assert metagraph(again, again.subnets[netuid]) == metagraph(live, live.subnets[netuid])
    assert again.subnets[netuid].out.bonds == live.subnets[netuid].out.bonds
    assert any(live.subnets[netuid].out.bonds)
    chain.close()
    reopened.close()
