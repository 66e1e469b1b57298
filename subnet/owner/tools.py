"""Subnet-owner operations through the real SDK: the same code on the local chain, `test` and `finney`.

Each function takes a connected `bt.Client` and returns plain data (or raises `OwnerError` with a
message that says what to do). `dmoe owner ...` is the thin CLI over them; anything not here is
one `dmoe btcli ...` away.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import asdict, dataclass
from typing import Any

import bittensor as bt

log = logging.getLogger(__name__)


class OwnerError(RuntimeError):
    """An owner action that failed; the message names the cause and the fix."""


def _ok(result: Any, what: str, payer: bt.Wallet | None = None) -> Any:
    if not result.success:
        from subnet.preflight import chain_hint

        hint = chain_hint(result.message, getattr(result.error, "name", None))
        if payer is not None:
            hint = hint.replace("COLDKEY_SS58", payer.coldkeypub.ss58_address)
        message = result.message.rstrip(". ")
        raise OwnerError(f"{what} failed: {message}" + (f"; {hint}" if hint else ""))
    return result


async def create_subnet(client: bt.Client, owner: bt.Wallet) -> int:
    """Register a new subnet owned by `owner` (its coldkey pays the lock); returns the netuid."""
    result = _ok(await client.execute(bt.RegisterSubnet(), owner), "register subnet", owner)
    return int(result.data["netuid"])


async def start_subnet(client: bt.Client, owner: bt.Wallet, netuid: int) -> None:
    """Start emissions on a registered subnet (subtensor's `start_call`)."""
    _ok(await client.execute(bt.StartCall(netuid=netuid), owner), f"start subnet {netuid}", owner)


async def register(client: bt.Client, wallet: bt.Wallet, netuid: int) -> int:
    """Burned-register `wallet`'s hotkey on `netuid`; returns its uid."""
    _ok(await client.execute(bt.BurnedRegister(netuid=netuid), wallet), "burned register", wallet)
    uid = await client.query(bt.storage.SubtensorModule.Uids, [netuid, wallet.hotkey.ss58_address])
    if uid is None:
        raise OwnerError("registration was accepted but the hotkey has no uid; check the chain log")
    return int(uid)


async def get_hyperparameters(client: bt.Client, netuid: int) -> dict[str, Any]:
    hp = await client.read("subnet_hyperparameters", netuid=netuid)
    if hp is None:
        raise OwnerError(
            f"subnet {netuid} does not exist: check --netuid (or create one: `dmoe owner create`)"
        )
    raw = dict(hp)
    raw.pop("hyperparameters", None)
    return raw


async def set_hyperparameter(
    client: bt.Client,
    owner: bt.Wallet,
    netuid: int,
    name: str,
    value: Any,
    *,
    sudo: Any = None,
) -> None:
    """Owner-settable names go through `SetHyperparameter`; root-only ones need `sudo`.

    On a local chain the sudo key is the dev key (`subnet.chain.dev_sudo_keypair()`); on `test`
    and `finney` root-only parameters belong to the chain's governance, not to subnet owners.
    """
    from bittensor.intents.hyperparameters import OWNER_HYPERPARAMETERS

    setter = ROOT_SETTERS.get(name)
    if name in OWNER_HYPERPARAMETERS:
        try:
            intent = bt.SetHyperparameter(netuid=netuid, name=name, value=value)
        except ValueError as err:
            # The SDK refuses values outside the owner's bounds (e.g. tempo < 360) client-side;
            # root may still set them, which is how a local chain gets fast epochs.
            if sudo is None:
                hint = ""
                if "must be within" in str(err):  # well formed, outside the owner's bounds
                    hint = (
                        " (root may bypass owner bounds: on a local chain pass --sudo-uri //Alice)"
                    )
                raise OwnerError(f"{err}{hint}") from None
            setter = OWNER_HYPERPARAMETERS[name][0]
        else:
            _ok(await client.execute(intent, owner), f"set {name}", owner)
            return
    if setter is None:
        known = sorted({*OWNER_HYPERPARAMETERS, *ROOT_SETTERS})
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            raise OwnerError(f"unknown hyperparameter {name!r}: did you mean {close[0]!r}?")
        raise OwnerError(f"unknown hyperparameter {name!r}; known: {', '.join(known)}")
    if sudo is None:
        raise OwnerError(
            f"{name} is root-only on subtensor: on a local chain pass --sudo-uri //Alice "
            "(its dev sudo key); elsewhere it belongs to the chain's governance"
        )
    from bittensor import calls

    inner = await client.compose(getattr(calls.AdminUtils, setter)(netuid, _as_int(name, value)))
    _ok(await client.submit_call(calls.Sudo.sudo(call=inner), sudo), f"sudo set {name}")


def _as_int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise OwnerError(f"{name} takes an integer in raw chain units, got {value!r}") from None


# Root-only setters a local owner still wants (subtensor keeps them for governance).
ROOT_SETTERS = {
    "weights_rate_limit": "sudo_set_weights_set_rate_limit",
    "kappa": "sudo_set_kappa",
    "max_validators": "sudo_set_max_allowed_validators",
    "activity_cutoff": "sudo_set_activity_cutoff",
    "target_regs_per_interval": "sudo_set_target_registrations_per_interval",
}


@dataclass(frozen=True)
class NeuronStatus:
    uid: int
    hotkey: str
    coldkey: str
    validator_permit: bool
    active: bool
    stake_alpha: float
    incentive: float
    dividends: float
    consensus: float
    trust: float
    emission_alpha: float
    axon: str | None
    expert: str | None  # the model_id in the neuron's on-chain commitment, if any


async def status(client: bt.Client, netuid: int) -> dict[str, Any]:
    """The metagraph as plain data: subnet header + one row per uid."""
    mg = await client.subnets.metagraph(netuid)
    if mg is None:
        raise OwnerError(f"subnet {netuid} does not exist: check --netuid")
    rows = []
    for n in mg.neurons:
        rows.append(
            NeuronStatus(
                uid=n.uid,
                hotkey=n.hotkey,
                coldkey=n.coldkey,
                validator_permit=bool(n.validator_permit),
                active=bool(n.active),
                stake_alpha=n.total_stake.rao / 1e9,
                incentive=float(n.incentive),
                dividends=float(n.dividends),
                consensus=float(n.consensus),
                trust=float(n.trust),
                emission_alpha=n.emission.rao / 1e9,
                axon=n.axon,
                expert=_expert_of(n.commitment),
            )
        )
    return {
        "netuid": netuid,
        "block": mg.block,
        "tempo": mg.tempo,
        "blocks_since_last_step": mg.blocks_since_last_step,
        "owner_hotkey": mg.owner_hotkey,
        "price": mg.price,
        "neurons": [asdict(r) for r in rows],
    }


def _expert_of(commitment: Any) -> str | None:
    if commitment is None or not commitment.data:
        return None
    import json

    try:
        card = json.loads(commitment.data)
    except ValueError:
        return commitment.data[:32]
    if isinstance(card, dict):
        return str(card.get("model_id") or card.get("m") or "?")
    return None


async def publish_registry(client: bt.Client, owner: bt.Wallet, netuid: int, registry: Any) -> None:
    """Commit the registry's version and digest from the subnet owner hotkey."""
    from subnet.chain import commitment_info

    mg = await client.subnets.metagraph(netuid, commitments=False)
    if mg is None:
        raise OwnerError(f"subnet {netuid} does not exist: check --netuid")
    if mg.owner_hotkey != owner.hotkey.ss58_address:
        raise OwnerError(
            f"--wallet.hotkey is not subnet {netuid}'s owner hotkey ({mg.owner_hotkey[:10]}…); "
            "publish with the owner's hotkey"
        )
    call = bt.calls.Commitments.set_commitment(
        netuid=netuid, info=commitment_info(registry.commitment())
    )
    _ok(await client.submit_call(call, owner, signer="hotkey"), "publish registry")


async def published_registry(client: bt.Client, netuid: int) -> str | None:
    """The owner hotkey's commitment text on `netuid` (None if it has none)."""
    mg = await client.subnets.metagraph(netuid, commitments=True)
    if mg is None:
        raise OwnerError(f"subnet {netuid} does not exist: check --netuid")
    owner = next((n for n in mg.neurons if n.hotkey == mg.owner_hotkey), None)
    if owner is None or owner.commitment is None:
        return None
    return owner.commitment.data or None
