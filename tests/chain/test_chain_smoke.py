"""Smoke: the fixture chain bootstraps a subnet through the real SDK."""

from __future__ import annotations

from tests.fixtures_chain import bootstrap_subnet


async def test_bootstrap_gives_validators_permits(local_chain, chain_client, make_wallet):
    owner, v1, m1 = make_wallet("owner"), make_wallet("v1"), make_wallet("m1")
    netuid = await bootstrap_subnet(chain_client, local_chain, owner, [v1], [m1], stake_tao=100)
    mg = await chain_client.subnets.metagraph(netuid)
    by_hotkey = {n.hotkey: n for n in mg.neurons}
    assert by_hotkey[v1.hotkey.ss58_address].validator_permit
    assert len(mg.neurons) == 3
