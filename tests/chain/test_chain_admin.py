"""Owner hyperparameters (SetHyperparameter, `dmoe btcli hparams set`) and root via Sudo.sudo."""

from __future__ import annotations

import asyncio

import bittensor as bt
import pytest
from bittensor import calls

from neurons import btcli
from subnet.chain import dev_sudo_keypair
from tests.fixtures_chain import bootstrap_subnet


async def test_owner_and_sudo_hyperparameters(backend, make_wallet):
    chain, client = backend
    owner, other = make_wallet("owner"), make_wallet("v1")
    netuid = await bootstrap_subnet(client, chain, owner, [other], [], stake_tao=10)

    ok = await client.execute(
        bt.SetHyperparameter(netuid=netuid, name="immunity_period", value=123), owner
    )
    assert ok.success, ok.message
    assert await client.hyperparameters.immunity_period(netuid) == 123
    assert (await client.read("subnet_hyperparameters", netuid=netuid))["immunity_period"] == 123

    refused = await client.submit_call(calls.AdminUtils.sudo_set_immunity_period(netuid, 7), other)
    assert not refused.success and refused.error.name == "BadOrigin"
    with pytest.raises(ValueError):  # the SDK refuses owner tempo < 360 client-side
        bt.SetHyperparameter(netuid=netuid, name="tempo", value=10)
    root_only = await client.submit_call(
        calls.AdminUtils.sudo_set_weights_set_rate_limit(netuid, 3), owner
    )
    assert not root_only.success and root_only.error.name == "BadOrigin"

    inner = await client.compose(calls.AdminUtils.sudo_set_weights_set_rate_limit(netuid, 3))
    sudo = await client.submit_call(calls.Sudo.sudo(call=inner), dev_sudo_keypair())
    assert sudo.success, sudo.message
    assert await client.hyperparameters.weights_rate_limit(netuid) == 3
    not_sudo = await client.submit_call(calls.Sudo.sudo(call=inner), owner)
    assert not not_sudo.success and not_sudo.error.name == "RequireSudo"


async def test_btcli_hparams_set(backend, make_wallet, wallet_dir, tmp_path):
    chain, client = backend
    if not hasattr(client._substrate.node, "base_url"):
        pytest.skip("btcli runs against the chain server")
    owner = make_wallet("owner")
    netuid = await bootstrap_subnet(client, chain, owner, [], [], stake_tao=10)
    endpoint = client._substrate.node.base_url.replace("http://", "localchain://")
    argv = [
        "--endpoint", endpoint, "--data-dir", str(tmp_path / "btcli"),
        "hparams", "set", "--netuid", str(netuid), "--name", "immunity_period", "--value", "77",
        "-w", "owner", "--wallet-path", str(wallet_dir), "-y", "--json",
    ]  # fmt: skip
    code = await asyncio.to_thread(btcli.main, argv)
    assert code == 0
    assert await client.hyperparameters.immunity_period(netuid) == 77
    assert (tmp_path / "btcli" / "btcli_token_symbols.json").exists()  # caches kept local
