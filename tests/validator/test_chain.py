"""Weights land on the in-process local chain; after an epoch the honest miner earns the most."""

from __future__ import annotations

from dataclasses import replace

from subnet.miner.server import MinerServer
from subnet.validator.verify import REASONS
from tests.fixtures_chain import bootstrap_subnet
from tests.validator.conftest import _miner_config
from tests.validator.helpers import make_validator, validator_config


async def test_weights_on_chain_honest_miner_gets_highest_incentive(
    tmp_path, local_chain, chain_client, make_wallet, registry, by_domain, signed, vwallet
):
    owner = make_wallet("vc-owner")
    honest_w, wrong_w = make_wallet("vc-honest"), make_wallet("vc-wrong")
    netuid = await bootstrap_subnet(
        chain_client, local_chain, owner, [vwallet], [honest_w, wrong_w], stake_tao=100
    )
    math, code = by_domain["math"], by_domain["code"]
    config = replace(_miner_config(), common=replace(_miner_config().common, netuid=netuid))
    config = replace(config, publish=True)
    servers = [
        MinerServer.create(config, wallet=honest_w, expert=math, client=chain_client),
        # Serves the code weights while declaring the math expert's card.
        MinerServer.create(
            config, wallet=wrong_w, expert=replace(code, card=math.card), client=chain_client
        ),
    ]
    for s in servers:
        await s.start()
    try:
        cfg = validator_config(tmp_path / "s.json", netuid=netuid)
        v = make_validator(cfg, signed, registry, client=chain_client, wallet=vwallet)
        await v.refresh_metagraph()
        mg = await chain_client.subnets.metagraph(netuid)
        uid = {n.hotkey: n.uid for n in mg.neurons}
        honest, wrong = uid[honest_w.hotkey.ss58_address], uid[wrong_w.hotkey.ss58_address]
        assert {honest, wrong} <= set(v.miners)
        assert v.miners[honest].card.weights_hash == math.card.weights_hash  # from the chain
        for _ in range(4):
            report = await v.step()
            got = {r for rs in report.reasons.values() for r in rs}
            assert got <= set(REASONS) | {"refused"}, got
        assert v.ledger.value(honest) > 0 and v.ledger.value(wrong) == 0.0
        set_ok = False
        for _ in range(12):
            if await v.maybe_set_weights():
                set_ok = True
                break
            local_chain.produce_blocks(1)
        assert set_ok and v.state.last_weights_block > 0
        assert not await v.maybe_set_weights()  # once per tempo
        weights = await chain_client.weights.weights(netuid)
        own = uid[vwallet.hotkey.ss58_address]
        assert weights[own][honest] > weights[own].get(wrong, 0.0)
        local_chain.produce_blocks(12)  # past the next epoch (tempo 10)
        mg = await chain_client.subnets.metagraph(netuid)
        inc = {n.uid: n.incentive for n in mg.neurons}
        assert inc[honest] > 0 and inc[honest] == max(inc.values())
    finally:
        for s in servers:
            await s.stop()
