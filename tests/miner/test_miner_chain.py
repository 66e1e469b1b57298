"""End to end on the in-process local chain, through the real SDK: the miner refuses to start
unregistered, registers when asked, advertises its endpoint, commits its card, and admits a
validator that the chain's metagraph (not a hand-made snapshot) says holds a permit."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from protocol import ExpertCard, GenerateRequest
from subnet.miner import client as mc
from subnet.miner.chain import NotRegistered
from subnet.miner.server import MinerServer
from subnet.net import SignedClient
from tests.miner.conftest import miner_config


async def test_miner_on_local_chain(local_chain, chain_client, make_wallet, math_expert):
    owner, val, miner = make_wallet("e2e-owner"), make_wallet("e2e-val"), make_wallet("e2e-miner")
    from tests.fixtures_chain import bootstrap_subnet

    other = make_wallet("e2e-other-miner")
    netuid = await bootstrap_subnet(chain_client, local_chain, owner, [val], [other], stake_tao=100)
    local_chain.fund(miner.coldkeypub.ss58_address, 1000)  # pays the burn of --register
    config = miner_config()
    config = replace(config, common=replace(config.common, netuid=netuid))

    refused = MinerServer.create(config, wallet=miner, expert=math_expert, client=chain_client)
    with pytest.raises(NotRegistered, match="--register"):
        await refused.start()

    server = MinerServer.create(
        replace(config, register=True), wallet=miner, expert=math_expert, client=chain_client
    )
    await server.start()
    client = SignedClient.create(val.hotkey)
    try:
        mg = await chain_client.subnets.metagraph(netuid)
        me = next(n for n in mg.neurons if n.hotkey == miner.hotkey.ss58_address)
        assert me.axon == f"127.0.0.1:{server.port}"
        card = ExpertCard.from_dict(json.loads(me.commitment.data))
        assert card.weights_hash == math_expert.card.weights_hash
        ok = await mc.generate(
            client, server.url, server.hotkey, GenerateRequest(prompt="4 +", max_tokens=3)
        )
        assert ok.usage.completion_tokens == 3
        owner_client = SignedClient.create(make_wallet("e2e-stranger").hotkey)  # not registered
        try:
            with pytest.raises(mc.MinerError) as err:
                await mc.generate(
                    owner_client, server.url, server.hotkey, GenerateRequest(prompt="4 +")
                )
            assert err.value.status == 403
        finally:
            await owner_client.close()
    finally:
        await client.close()
        await server.stop()
