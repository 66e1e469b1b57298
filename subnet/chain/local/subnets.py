"""Subnets and neurons: register_network, start_call, burned_register (with pruning), serve_axon,
and commitments. Checks run in subtensor's order and fail with its error names."""

from __future__ import annotations

from subnet.chain.local.accounts import withdraw
from subnet.chain.local.calls import DispatchError, event
from subnet.chain.local.genesis import Genesis
from subnet.chain.local.state import ChainState, Neuron, Subnet
from subnet.consensus import neuron_to_prune

MAX_COMMIT_FIELDS = 3  # subtensor runtime MaxCommitFieldsInner
MAX_RAW_BYTES = 128  # Data::Raw0..Raw128
_SYMBOLS = "αβγδεζηθικλμνξοπρστυφχψω"


def require_subnet(state: ChainState, netuid) -> Subnet:
    sn = state.subnet(netuid)
    if sn is None:
        raise DispatchError("SubnetNotExists")
    return sn


def register_network(state: ChainState, genesis: Genesis, signer: str, p: dict) -> list[dict]:
    hotkey = str(p.get("hotkey") or signer)
    if state.owners.get(hotkey, signer) != signer:
        raise DispatchError("NonAssociatedColdKey")
    withdraw(state, signer, genesis.network_lock_rao, "NotEnoughBalanceToStake")
    netuid = max([0, *state.subnets]) + 1  # netuid 0 is root on subtensor
    sn = Subnet(
        netuid=netuid,
        owner_coldkey=signer,
        owner_hotkey=hotkey,
        registered_at=state.block,
        locked=genesis.network_lock_rao,
        symbol=_SYMBOLS[(netuid - 1) % len(_SYMBOLS)],
        hparams=dict(genesis.subnet),
        name=f"subnet{netuid}",
        last_epoch_block=state.block,
        tao_in=genesis.pool_rao,
        alpha_in=genesis.pool_rao,
    )
    state.subnets[netuid] = sn
    state.owners[hotkey] = signer
    state.touch("owner", hotkey)
    state.touch("neuron", (netuid, _append(sn, Neuron(hotkey, signer, state.block, state.block))))
    state.touch("subnet", netuid)
    state.touch("epoch", netuid)
    return [event("SubtensorModule", "NetworkAdded", [netuid, 0])]


def start_call(state: ChainState, genesis: Genesis, signer: str, p: dict) -> list[dict]:
    sn = require_subnet(state, p["netuid"])
    if sn.owner_coldkey != signer:
        raise DispatchError("NotSubnetOwner")
    if sn.first_emission_block is not None:
        raise DispatchError("FirstEmissionBlockNumberAlreadySet")
    if state.block < sn.registered_at + genesis.start_call_delay:
        raise DispatchError("NeedWaitingMoreBlocksToStarCall")
    sn.first_emission_block = state.block + 1
    state.touch("subnet", sn.netuid)
    return [event("SubtensorModule", "FirstEmissionBlockNumberSet", [sn.netuid, state.block + 1])]


def burned_register(state: ChainState, genesis: Genesis, signer: str, p: dict) -> list[dict]:
    netuid, hotkey = p["netuid"], str(p["hotkey"])
    if int(netuid) == 0:
        raise DispatchError("RegistrationNotPermittedOnRootSubnet")
    sn = require_subnet(state, netuid)
    hp = sn.hparams
    if not hp["registration_allowed"]:
        raise DispatchError("SubNetRegistrationDisabled")
    if sn.regs_block == state.block and sn.regs_this_block >= int(hp["max_regs_per_block"]):
        raise DispatchError("TooManyRegistrationsThisBlock")
    if hotkey in sn.uids:
        raise DispatchError("HotKeyAlreadyRegisteredInSubNet")
    if state.balances.get(signer, 0) < int(hp["burn"]):
        raise DispatchError("NotEnoughBalanceToStake")
    if state.owners.get(hotkey, signer) != signer:
        raise DispatchError("NonAssociatedColdKey")
    replace_uid = None
    if len(sn.neurons) >= int(hp["max_allowed_uids"]):
        owner_uid = sn.uids.get(sn.owner_hotkey)
        replace_uid = neuron_to_prune(
            sn.out.emission.tolist(),
            [x.registered_at for x in sn.neurons],
            state.block,
            int(hp["immunity_period"]),
            immortal_uids=[owner_uid] if owner_uid is not None else [],
            min_non_immune_uids=int(hp["min_non_immune_uids"]),
        )
        if replace_uid is None:
            raise DispatchError("NoNeuronIdAvailable")
    withdraw(state, signer, int(hp["burn"]), "NotEnoughBalanceToStake")
    state.owners[hotkey] = signer
    state.touch("owner", hotkey)
    if sn.regs_block != state.block:
        sn.regs_block, sn.regs_this_block = state.block, 0
    sn.regs_this_block += 1
    neuron = Neuron(hotkey, signer, state.block, state.block)
    if replace_uid is None:
        uid = _append(sn, neuron)
        state.touch("epoch", sn.netuid)
    else:
        uid = replace_uid
        del sn.uids[sn.neurons[uid].hotkey]
        sn.neurons[uid] = neuron
        sn.uids[hotkey] = uid
        sn.out.reset(uid)
        state.touch("epoch", sn.netuid)
    state.touch("neuron", (sn.netuid, uid))
    state.touch("subnet", sn.netuid)
    return [event("SubtensorModule", "NeuronRegistered", [sn.netuid, uid, hotkey])]


def _append(sn: Subnet, neuron: Neuron) -> int:
    uid = len(sn.neurons)
    sn.neurons.append(neuron)
    sn.uids[neuron.hotkey] = uid
    sn.out.grow()
    return uid


def serve_axon(state: ChainState, signer: str, p: dict) -> list[dict]:
    sn = require_subnet(state, p["netuid"])
    uid = sn.uids.get(signer)
    if uid is None:
        raise DispatchError("HotKeyNotRegisteredInNetwork")
    ip_type, ip = int(p["ip_type"]), int(p["ip"])
    if ip_type not in (4, 6):
        raise DispatchError("InvalidIpType")
    if ip < 0 or ip >= (2**32 if ip_type == 4 else 2**128):
        raise DispatchError("InvalidIpAddress")
    neuron = sn.neurons[uid]
    last = (neuron.axon or {}).get("block", 0)
    limit = int(sn.hparams["serving_rate_limit"])
    if last and state.block - last < limit:
        raise DispatchError("ServingRateLimitExceeded")
    neuron.axon = {
        "block": state.block,
        "version": int(p["version"]),
        "ip": ip,
        "port": int(p["port"]),
        "ip_type": ip_type,
        "protocol": int(p["protocol"]),
        "placeholder1": int(p.get("placeholder1", 0)),
        "placeholder2": int(p.get("placeholder2", 0)),
    }
    state.touch("neuron", (sn.netuid, uid))
    return [event("SubtensorModule", "AxonServed", [sn.netuid, signer])]


def set_commitment(state: ChainState, signer: str, p: dict) -> list[dict]:
    sn = require_subnet(state, p["netuid"])
    if signer not in sn.uids:
        raise DispatchError("AccountNotAllowedCommit")
    fields = normalize_fields((p.get("info") or {}).get("fields"))
    sn.commitments[signer] = {"block": state.block, "deposit": 0, "info": {"fields": fields}}
    state.touch("subnet", sn.netuid)
    return [event("Commitments", "Commitment", {"netuid": sn.netuid, "account": signer})]


def normalize_fields(fields) -> list:
    """Flatten `[[{"RawN": data}]]` / `[{"RawN": data}]` into `[{"RawN": "0x…"}]`, checked."""
    if not isinstance(fields, list):
        raise DispatchError("TooManyFieldsInCommitmentInfo", "fields must be a list")
    flat = []
    for item in fields:
        flat.extend(item if isinstance(item, list) else [item])
    if len(flat) > MAX_COMMIT_FIELDS:
        raise DispatchError("TooManyFieldsInCommitmentInfo")
    out = []
    for entry in flat:
        if isinstance(entry, str):  # a unit variant such as "None" or "ResetBondsFlag"
            out.append(entry)
            continue
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise DispatchError("TooManyFieldsInCommitmentInfo", "malformed field")
        ((variant, value),) = entry.items()
        if variant.startswith("Raw"):
            raw = _as_bytes(value)
            if len(raw) > MAX_RAW_BYTES:
                raise DispatchError(
                    "ValueTooLarge", f"Raw fields hold at most {MAX_RAW_BYTES} bytes"
                )
            out.append({f"Raw{len(raw)}": "0x" + raw.hex()})
        else:
            out.append({str(variant): value})
    return out


def _as_bytes(value) -> bytes:
    if isinstance(value, str):
        if value.startswith("0x"):
            try:
                return bytes.fromhex(value[2:])
            except ValueError as err:
                raise DispatchError("ValueTooLarge", "bad hex") from err
        return value.encode()
    if isinstance(value, list):
        return bytes(int(b) & 0xFF for b in value)
    raise DispatchError("ValueTooLarge", "unsupported field payload")
