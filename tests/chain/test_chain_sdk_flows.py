"""SDK-flow conformance through the real `bt.Client`, against the in-process chain and the server.

One subnet lifecycle per backend: create, start, register owner + 2 validators + 3 miners
(shielded BurnedRegister), serve endpoints, publish a commitment, stake, set weights (success and
the chain's error cases), then epochs whose metagraph equals `subnet.consensus.epoch` run
directly on the same state, read back through the SDK.
"""

from __future__ import annotations

import bittensor as bt
import numpy as np
import pytest
from bittensor import calls

from subnet.chain import commitment_info
from subnet.chain.local.epoch import OWNER_CUT_U16
from subnet.consensus import SubnetState, YumaParams, coinbase_split, epoch
from tests.fixtures_chain import bootstrap_subnet


async def _raw_weights(client, wallet, netuid, dests, weights, version_key=0):
    call = calls.SubtensorModule.set_mechanism_weights(netuid, 0, dests, weights, version_key)
    return await client.submit_call(call, wallet, signer="hotkey")


def _error(result) -> str | None:
    return result.error.name if result.error else None


async def test_subnet_lifecycle_and_weights_errors(backend, make_wallet):
    chain, client = backend
    owner = make_wallet("owner")
    v1, v2 = make_wallet("v1"), make_wallet("v2")
    miners = [make_wallet(f"m{i}") for i in range(3)]
    netuid = await bootstrap_subnet(client, chain, owner, [v1, v2], miners, stake_tao=100)

    mg = await client.subnets.metagraph(netuid)
    uid = {n.hotkey: n.uid for n in mg.neurons}
    assert mg.neurons[0].hotkey == owner.hotkey.ss58_address  # owner hotkey at uid 0
    assert len(mg.neurons) == 6
    assert mg.neurons[uid[v1.hotkey.ss58_address]].validator_permit
    assert mg.neurons[uid[v1.hotkey.ss58_address]].alpha_stake.rao > 90 * 10**9
    miner_uids = [uid[m.hotkey.ss58_address] for m in miners]

    # Serving and commitments (miners publish their expert card this way).
    for port, m in zip((8091, 8092, 8093), miners, strict=True):
        served = await client.execute(bt.ServeAxon(netuid=netuid, ip="127.0.0.1", port=port), m)
        assert served.success, served.message
    card = b'{"model_id":"tiny/code","revision":"abc"}'
    call = calls.Commitments.set_commitment(netuid, commitment_info(card))
    assert (await client.submit_call(call, miners[0], signer="hotkey")).success
    mg = await client.subnets.metagraph(netuid)
    assert mg.neurons[miner_uids[0]].axon == "127.0.0.1:8091"
    assert mg.neurons[uid[v1.hotkey.ss58_address]].axon is None
    assert mg.commitments[miner_uids[0]].data == card.decode()

    # Weights: success, then each of the chain's refusals by its subtensor error name.
    weights = dict(zip(miner_uids, (0.2, 0.3, 0.5), strict=True))
    for v in (v1, v2):
        result = await client.execute(bt.SetWeights(netuid=netuid, weights=weights), v)
        assert result.success, result.message
    with pytest.raises(bt.ChainError) as raised:  # SDK preflight sees the rate limit
        await client.execute(bt.SetWeights(netuid=netuid, weights=weights), v1)
    assert raised.value.code == bt.ErrorCode.RATE_LIMITED
    rate_limited = await _raw_weights(client, v1, netuid, miner_uids, [1, 1, 1])
    assert _error(rate_limited) == "SettingWeightsTooFast"
    no_permit = await _raw_weights(client, miners[1], netuid, miner_uids, [1, 1, 1])
    assert _error(no_permit) == "NeuronNoValidatorPermit"
    chain.produce_blocks(4)
    assert _error(await _raw_weights(client, v1, netuid, [99, 3], [1, 1])) == (
        "UidVecContainInvalidOne"
    )
    assert _error(await _raw_weights(client, v1, netuid, [3, 3], [1, 1])) == "DuplicateUids"
    owner_set = await client.execute(
        bt.SetHyperparameter(netuid=netuid, name="min_allowed_weights", value=3), owner
    )
    assert owner_set.success, owner_set.message
    assert _error(await _raw_weights(client, v1, netuid, [3, 4], [1, 1])) == "WeightVecLengthIsLow"
    owner_set = await client.execute(
        bt.SetHyperparameter(netuid=netuid, name="weights_version", value=7), owner
    )
    assert owner_set.success, owner_set.message
    stale = await _raw_weights(client, v1, netuid, miner_uids, [1, 1, 1], version_key=6)
    assert _error(stale) == "IncorrectWeightVersionKey"
    ok = await _raw_weights(client, v1, netuid, miner_uids, [1, 2, 3], version_key=7)
    assert ok.success, ok.message
    weights_row = await client.query(bt.storage.SubtensorModule.Weights, [netuid, 1])
    assert [tuple(p) for p in weights_row] == [(3, 21845), (4, 43690), (5, 65535)]

    # Several epochs, each checked against the Yuma module run directly on the same state.
    for _ in range(3):
        await _check_next_epoch(client, chain, netuid)


async def _check_next_epoch(client, chain, netuid: int) -> None:
    mg = await client.subnets.metagraph(netuid)
    tempo = int(mg.raw["tempo"])
    due = int(mg.raw["last_step"]) + tempo
    chain.produce_blocks(due - chain.block - 1)  # stop one block before the epoch
    before = await client.subnets.metagraph(netuid)
    state, params = await _epoch_inputs(client, netuid, before, block=due)
    pending = int(before.raw["pending_alpha_emission"]) + chain.genesis.alpha_emission_rao
    split = coinbase_split(pending, OWNER_CUT_U16)
    expected = epoch(state, params, split.epoch_emission)
    chain.produce_blocks(1)
    after = await client.subnets.metagraph(netuid)
    assert int(after.raw["last_step"]) == due
    n = len(after.neurons)
    got_incentive = [round(x.incentive * 65535) for x in after.neurons]
    got_dividends = [round(x.dividends * 65535) for x in after.neurons]
    assert got_incentive == list(expected.incentive_u16)
    assert got_dividends == list(expected.dividends_u16)
    assert [x.emission.rao for x in after.neurons] == [int(e) for e in expected.emission]
    assert [x.validator_permit for x in after.neurons] == list(expected.new_validator_permits)
    assert sum(expected.incentive_u16) > 0 and sum(expected.dividends_u16) > 0
    # Emission is staked back: every validator's stake grew by exactly its epoch emission.
    for i in range(n):
        if expected.validator_emission[i]:
            grew = after.neurons[i].alpha_stake.rao - before.neurons[i].alpha_stake.rao
            assert grew >= expected.validator_emission[i]


async def _epoch_inputs(client, netuid: int, mg, *, block: int):
    """SubnetState and YumaParams built only from what the SDK reads back."""
    n = len(mg.neurons)
    weights = dict(await client.query_map(bt.storage.SubtensorModule.Weights, [netuid]))
    bonds = dict(await client.query_map(bt.storage.SubtensorModule.Bonds, [netuid]))
    hp = await client.read("subnet_hyperparameters", netuid=netuid)
    bonds_penalty = await client.query(bt.storage.SubtensorModule.BondsPenalty, [netuid])
    state = SubnetState(
        n=n,
        stake=np.array([x.alpha_stake.rao for x in mg.neurons], dtype=np.float64),
        weights=[[tuple(p) for p in weights.get(i, [])] for i in range(n)],
        bonds=[[tuple(p) for p in bonds.get(i, [])] for i in range(n)],
        block_at_registration=[x.block_at_registration for x in mg.neurons],
        last_update=[x.last_update for x in mg.neurons],
        validator_permit=[x.validator_permit for x in mg.neurons],
        current_block=block,
        last_mechanism_step_block=int(mg.raw["last_step"]),
        owner_uid=0,
    )
    params = YumaParams(
        kappa=int(hp["kappa"]),
        bonds_moving_avg=int(hp["bonds_moving_avg"]),
        bonds_penalty=int(bonds_penalty),
        yuma3=int(hp["yuma_version"]) == 3,
        liquid_alpha=bool(hp["liquid_alpha_enabled"]),
        alpha_low=int(hp["alpha_low"]),
        alpha_high=int(hp["alpha_high"]),
        max_allowed_validators=int(hp["max_validators"]),
        activity_cutoff=int(hp["activity_cutoff"]),
        tempo=int(hp["tempo"]),
    )
    return state, params
