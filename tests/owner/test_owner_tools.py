"""Owner tooling through the real SDK: create, start, register, hyperparameters, status."""

from __future__ import annotations

import pytest
from bittensor.sp_core import Keypair

from subnet.owner import tools


async def test_owner_workflow_in_process(local_chain, chain_client, make_wallet):
    owner, miner = make_wallet("own-owner"), make_wallet("own-miner")
    for w in (owner, miner):
        local_chain.fund(w.coldkeypub.ss58_address, 5000)
    netuid = await tools.create_subnet(chain_client, owner)
    await tools.start_subnet(chain_client, owner, netuid)
    uid = await tools.register(chain_client, miner, netuid)
    assert uid >= 1  # uid 0 is the owner hotkey

    # Owner-settable name through SetHyperparameter.
    await tools.set_hyperparameter(chain_client, owner, netuid, "immunity_period", 77)
    assert (await tools.get_hyperparameters(chain_client, netuid))["immunity_period"] == 77

    # Root-only name: refused without sudo, with a message that says what to do ...
    with pytest.raises(tools.OwnerError, match="root-only"):
        await tools.set_hyperparameter(chain_client, owner, netuid, "weights_rate_limit", 3)
    # ... and accepted with the local chain's dev sudo key.
    alice = Keypair.create_from_uri("//Alice")
    await tools.set_hyperparameter(chain_client, owner, netuid, "weights_rate_limit", 3, sudo=alice)
    assert (await tools.get_hyperparameters(chain_client, netuid))["weights_rate_limit"] == 3

    # Below the owner's bound (tempo >= 360) only root may go; the SDK refuses it client-side.
    with pytest.raises(tools.OwnerError, match="--sudo"):
        await tools.set_hyperparameter(chain_client, owner, netuid, "tempo", 12)
    await tools.set_hyperparameter(chain_client, owner, netuid, "tempo", 12, sudo=alice)
    assert (await tools.get_hyperparameters(chain_client, netuid))["tempo"] == 12

    with pytest.raises(tools.OwnerError, match="unknown hyperparameter"):
        await tools.set_hyperparameter(chain_client, owner, netuid, "warp_speed", 1)

    st = await tools.status(chain_client, netuid)
    assert st["netuid"] == netuid and {n["uid"] for n in st["neurons"]} == {0, uid}
    assert next(n for n in st["neurons"] if n["uid"] == uid)["hotkey"] == miner.hotkey.ss58_address

    with pytest.raises(tools.OwnerError, match="does not exist"):
        await tools.status(chain_client, 999)
