"""The miner's chain duties, through the real SDK: register, advertise, publish its card, and
keep the admission snapshot fresh. Works the same on the local chain and on finney/test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import bittensor as bt

from protocol import ExpertCard
from subnet.chain import commitment_info
from subnet.miner.admission import MetagraphSnapshot, Peer

log = logging.getLogger(__name__)

CHAIN_TIMEOUT_S = 60.0  # one chain read or extrinsic (finalization can take a few blocks)


class NotRegistered(RuntimeError):
    """The miner's hotkey holds no uid on the subnet; the message says how to fix it."""


class ChainCallFailed(RuntimeError):
    """An extrinsic the miner needs (register, serve, commit) was refused by the chain."""


async def fetch_snapshot(client: bt.Client, netuid: int) -> MetagraphSnapshot:
    mg = await asyncio.wait_for(
        client.subnets.metagraph(netuid, commitments=False), CHAIN_TIMEOUT_S
    )
    if mg is None:
        raise NotRegistered(f"subnet {netuid} does not exist on this chain (check --netuid)")
    peers = {
        n.hotkey: Peer(
            uid=n.uid, stake=n.total_stake.rao / 1e9, validator_permit=bool(n.validator_permit)
        )
        for n in mg.neurons
    }
    return MetagraphSnapshot(block=int(mg.block), peers=peers)


def card_commitment(card: ExpertCard) -> bytes:
    """The card as compact JSON (ExpertCard.from_dict reads it back); must fit 384 bytes."""
    return json.dumps(card.to_dict(), separators=(",", ":"), sort_keys=True).encode()


async def _execute(client: bt.Client, what: str, coro: Any) -> Any:
    result = await asyncio.wait_for(coro, CHAIN_TIMEOUT_S)
    if not result.success:
        raise ChainCallFailed(f"{what} failed: {result.message}")
    return result


async def ensure_registered(
    client: bt.Client, wallet: bt.Wallet, netuid: int, *, register: bool
) -> MetagraphSnapshot:
    """Return a snapshot in which our hotkey has a uid, registering first if asked to."""
    hotkey = wallet.hotkey.ss58_address
    snap = await fetch_snapshot(client, netuid)
    if hotkey in snap.peers:
        return snap
    if not register:
        raise NotRegistered(
            f"hotkey {hotkey} is not registered on subnet {netuid}; register it "
            f"(dmoe miner ... --register, or btcli subnets register --netuid {netuid})"
        )
    log.info("registering %s on subnet %d (burned registration)", hotkey, netuid)
    await _execute(
        client, "BurnedRegister", client.execute(bt.BurnedRegister(netuid=netuid), wallet)
    )
    snap = await fetch_snapshot(client, netuid)
    if hotkey not in snap.peers:
        raise NotRegistered(f"registration of {hotkey} on subnet {netuid} did not take effect")
    return snap


async def publish(
    client: bt.Client, wallet: bt.Wallet, netuid: int, ip: str, port: int, card: ExpertCard
) -> None:
    """Advertise ip:port (ServeAxon) and commit the expert card (Commitments.set_commitment)."""
    await _execute(
        client, "ServeAxon", client.execute(bt.ServeAxon(netuid=netuid, ip=ip, port=port), wallet)
    )
    call = bt.calls.Commitments.set_commitment(
        netuid=netuid, info=commitment_info(card_commitment(card))
    )
    await _execute(client, "set_commitment", client.submit_call(call, wallet, signer="hotkey"))
    log.info("advertised %s:%d and committed card %s on subnet %d", ip, port, card.model_id, netuid)


async def refresh_forever(client: bt.Client, netuid: int, period_s: float, apply) -> None:
    """Every `period_s`, fetch a snapshot and hand it to `apply`; failures keep the old one."""
    while True:
        await asyncio.sleep(period_s)
        try:
            apply(await fetch_snapshot(client, netuid))
        except (TimeoutError, bt.ChainError, ConnectionError, OSError) as err:
            log.warning("metagraph refresh failed (keeping the previous snapshot): %s", err)


async def cancel(task: asyncio.Task | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
