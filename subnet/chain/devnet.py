"""Bootstrap a working subnet on a local chain through the real SDK (tests and `dmoe localnet`).

`bootstrap_subnet` funds every coldkey (in-process chain: directly; server: via the faucet
transfer from the dev account), registers and starts a subnet, registers the validators and
miners with `BurnedRegister` (the SDK's MEV-shielded path), stakes the validators and waits for
an epoch so they hold validator permits. Every step goes through `client.execute`, so this is
also a walk through the owner's real workflow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import bittensor as bt

log = logging.getLogger(__name__)

FUND_TAO = 10_000.0
WAIT_TIMEOUT_S = 120.0


class BootstrapError(RuntimeError):
    """A bootstrap step failed; the message names the step and the chain's error."""


def _check(result: Any, step: str) -> Any:
    if not result.success:
        raise BootstrapError(f"{step}: {result.message}")
    return result


async def fund(
    client: bt.Client, chain: Any, faucet: Any, coldkeys: Sequence[str], tao: float
) -> None:
    """Give each coldkey `tao`: directly on an in-process chain, else by faucet transfer."""
    if chain is not None:
        for ss58 in coldkeys:
            chain.fund(ss58, tao)
        return
    for ss58 in coldkeys:
        _check(await client.execute(bt.Transfer(ss58, tao), faucet), f"fund {ss58}")


async def wait_blocks(client: bt.Client, chain: Any, n: int) -> None:
    """Advance `n` blocks: produce them on an in-process chain, else wait for the timer."""
    if chain is not None and chain.instant:
        chain.produce_blocks(n)
        return
    target = await client.block() + n
    await asyncio.wait_for(client.wait_for_block(target), WAIT_TIMEOUT_S)


async def bootstrap_subnet(
    client: bt.Client,
    chain: Any,
    owner: bt.Wallet,
    validators: Sequence[bt.Wallet] = (),
    miners: Sequence[bt.Wallet] = (),
    stake_tao: float = 100.0,
    *,
    faucet: Any = None,
    fund_tao: float = FUND_TAO,
) -> int:
    """Create, start and populate a subnet; returns its netuid once validators hold permits.

    `chain`: the in-process `LocalChain`, or None for a chain server (then `faucet` is the
    funding keypair, e.g. `subnet.chain.dev_sudo_keypair()`).
    """
    everyone = [owner, *validators, *miners]
    if chain is None and faucet is None:
        from subnet.chain import dev_sudo_keypair

        faucet = dev_sudo_keypair()
    if fund_tao > 0:  # 0: the wallets were funded otherwise (at genesis)
        await fund(client, chain, faucet, [w.coldkeypub.ss58_address for w in everyone], fund_tao)
    created = _check(await client.execute(bt.RegisterSubnet(), owner), "register subnet")
    netuid = int(created.data["netuid"])
    _check(await client.execute(bt.StartCall(netuid=netuid), owner), "start subnet")
    for wallet in [*validators, *miners]:
        _check(
            await client.execute(bt.BurnedRegister(netuid=netuid), wallet),
            f"register {wallet.name}",
        )
    for wallet in validators:
        stake = bt.AddStake(
            hotkey_ss58=wallet.hotkey.ss58_address, netuid=netuid, amount_tao=stake_tao
        )
        _check(await client.execute(stake, wallet), f"stake {wallet.name}")
    tempo = int(await client.query(bt.storage.SubtensorModule.Tempo, [netuid]))
    # Until the next epoch has run (permits go to the staked validators): the rest of the
    # current tempo, not a whole one.
    try:
        since = int(await client.query(bt.storage.SubtensorModule.BlocksSinceLastStep, [netuid]))
    except Exception as err:  # a chain without the item: wait a whole tempo
        log.debug("BlocksSinceLastStep unreadable (%s): waiting a whole tempo", err)
        since = 0
    await wait_blocks(client, chain, max(1, tempo - since) + 1)
    log.info(
        "subnet %d bootstrapped: %d validators, %d miners", netuid, len(validators), len(miners)
    )
    return netuid
