"""Storage reads of the local chain in the decoded shapes bittensor-core's codec produces.

`ValueQuery` items return their default on a miss (0, False, [], a zero struct) and `OptionQuery`
items return None (`Uids`, `Axons`, `FirstEmissionBlockNumber`, ...): the SDK relies on both.
Reads are of head state; a `block_hash` pin is accepted and ignored (documented limitation).
"""

from __future__ import annotations

from typing import Any

from subnet.chain.local.genesis import Genesis
from subnet.chain.local.hparams import DEFAULTS, STORAGE_ITEMS
from subnet.chain.local.state import U16_OUTPUTS, ChainState, Subnet

MECHANISM_STRIDE = 4096  # netuid_index = mecid * 4096 + netuid

# Per-uid vectors keyed by netuid: storage item -> epoch output (u16) name.
_U16_VECTORS = {
    "Rank": "rank",
    "Trust": "trust",
    "Consensus": "consensus",
    "Incentive": "incentive",
    "Dividends": "dividends",
    "ValidatorTrust": "validator_trust",
    "PruningScores": "pruning",
}
assert set(_U16_VECTORS.values()) <= set(U16_OUTPUTS)


class UnknownItem(LookupError):
    """A storage item or runtime API the local chain does not model."""


def _sn(state: ChainState, params: list) -> Subnet | None:
    if not params:
        return None
    try:
        return state.subnets.get(int(params[0]) % MECHANISM_STRIDE)
    except (TypeError, ValueError):
        return None


def account_info(state: ChainState, ss58: str) -> dict:
    return {
        "nonce": state.nonces.get(ss58, 0),
        "consumers": 0,
        "providers": 1,
        "sufficients": 0,
        "data": {"free": state.balances.get(ss58, 0), "reserved": 0, "frozen": 0, "flags": 0},
    }


def query(state: ChainState, genesis: Genesis, module: str, item: str, p: list) -> Any:
    if module == "System" and item == "Account":
        return account_info(state, str(p[0]))
    if module == "System" and item == "Number":
        return state.block
    if module == "Sudo" and item == "Key":
        from bittensor_core import Keypair

        return Keypair.create_from_uri(genesis.sudo_uri).ss58_address
    if module == "Commitments" and item == "CommitmentOf":
        sn = _sn(state, p)
        return sn.commitments.get(str(p[1])) if sn and len(p) > 1 else None
    if module == "Commitments" and item == "RevealedCommitments":
        return None
    if module != "SubtensorModule":
        raise UnknownItem(f"{module}.{item}")
    return _subtensor(state, item, p)


def _subtensor(state: ChainState, item: str, p: list) -> Any:
    sn = _sn(state, p)
    if item in STORAGE_ITEMS:
        name = STORAGE_ITEMS[item]
        return sn.hparams[name] if sn else DEFAULTS[name]
    if item in _U16_VECTORS:
        return sn.out.u16[_U16_VECTORS[item]].tolist() if sn else []
    simple = {
        "NetworksAdded": lambda: sn is not None,
        "SubnetworkN": lambda: len(sn.neurons) if sn else 0,
        "SubnetOwner": lambda: sn.owner_coldkey if sn else None,
        "SubnetOwnerHotkey": lambda: sn.owner_hotkey if sn else None,
        "SubnetLocked": lambda: sn.locked if sn else 0,
        "LastUpdate": lambda: [x.last_update for x in sn.neurons] if sn else [],
        "ValidatorPermit": lambda: sn.out.permit.tolist() if sn else [],
        "Active": lambda: sn.out.active.tolist() if sn else [],
        "Emission": lambda: sn.out.emission.tolist() if sn else [],
        "SubnetEpochConsensus": lambda: "Yuma",
        "LastEpochBlock": lambda: sn.last_epoch_block if sn else 0,
        "LastMechansimStepBlock": lambda: sn.last_epoch_block if sn else 0,
        "SubnetEpochIndex": lambda: sn.epoch_index if sn else 0,
        "PendingEpochAt": lambda: 0,
        "BlocksSinceLastStep": lambda: state.block - sn.last_epoch_block if sn else 0,
        "NetworkRegisteredAt": lambda: sn.registered_at if sn else 0,
        "FirstEmissionBlockNumber": lambda: sn.first_emission_block if sn else None,
        "AlphaValues": lambda: (
            (sn.hparams["alpha_low"], sn.hparams["alpha_high"])
            if sn
            else (DEFAULTS["alpha_low"], DEFAULTS["alpha_high"])
        ),
        "TokenSymbol": lambda: sn.symbol if sn else "",
        "SubnetTAO": lambda: sn.tao_in if sn else 0,
        "SubnetAlphaIn": lambda: sn.alpha_in if sn else 0,
        "PendingEmission": lambda: sn.pending_emission if sn else 0,
        "TotalNetworks": lambda: len(state.subnets),
        "SubnetEmissionEnabled": lambda: True,
        "BurnRegistrationsThisInterval": lambda: 0,
        "RegistrationsThisBlock": lambda: (
            sn.regs_this_block if sn and sn.regs_block == state.block else 0
        ),
    }
    if item in simple:
        return simple[item]()
    if item == "Uids":  # OptionQuery: None means "not registered"
        return sn.uids.get(str(p[1])) if sn and len(p) > 1 else None
    if item == "Keys":
        uid = int(p[1]) if len(p) > 1 else -1
        return sn.neurons[uid].hotkey if sn and 0 <= uid < len(sn.neurons) else None
    if item == "Axons":
        uid = sn.uids.get(str(p[1])) if sn and len(p) > 1 else None
        return sn.neurons[uid].axon if uid is not None else None
    if item == "BlockAtRegistration":
        uid = int(p[1]) if len(p) > 1 else -1
        return sn.neurons[uid].registered_at if sn and 0 <= uid < len(sn.neurons) else 0
    if item == "Weights":
        uid = int(p[1]) if len(p) > 1 else -1
        return list(sn.neurons[uid].weights) if sn and 0 <= uid < len(sn.neurons) else []
    if item == "Bonds":
        uid = int(p[1]) if len(p) > 1 else -1
        return list(sn.out.bonds[uid]) if sn and 0 <= uid < len(sn.out.bonds) else []
    if item == "Owner":
        return state.owners.get(str(p[0]))
    if item == "TotalHotkeyAlpha":
        return state.alpha_of(int(p[1]), str(p[0])) if len(p) > 1 else 0
    if item == "Alpha":  # (hotkey, coldkey, netuid) -> U64F64 shares; 1 share = 1 alpha rao
        key = (str(p[0]), str(p[1]), int(p[2])) if len(p) > 2 else None
        return {"bits": state.stake.get(key, 0) << 64} if key else {"bits": 0}
    raise UnknownItem(f"SubtensorModule.{item}")


def query_map(state: ChainState, module: str, item: str, p: list) -> list:
    sn = _sn(state, p)
    key = (module, item)
    if key == ("SubtensorModule", "TokenSymbol"):
        return [(n, s.symbol) for n, s in state.subnets.items()]
    if key == ("SubtensorModule", "NetworksAdded"):
        return [(n, True) for n in state.subnets]
    if key == ("SubtensorModule", "SubnetOwner"):
        return [(n, s.owner_coldkey) for n, s in state.subnets.items()]
    if module == "SubtensorModule" and item in STORAGE_ITEMS and not p:
        return [(n, s.hparams[STORAGE_ITEMS[item]]) for n, s in state.subnets.items()]
    if key == ("SubtensorModule", "SubnetworkN"):
        return [(n, len(s.neurons)) for n, s in state.subnets.items()]
    if key == ("SubtensorModule", "Uids"):
        return [(x.hotkey, uid) for uid, x in enumerate(sn.neurons)] if sn else []
    if key == ("SubtensorModule", "Keys"):
        return [(uid, x.hotkey) for uid, x in enumerate(sn.neurons)] if sn else []
    if key == ("SubtensorModule", "Axons"):
        return [(x.hotkey, x.axon) for x in sn.neurons if x.axon] if sn else []
    if key == ("SubtensorModule", "Weights"):
        return (
            [(uid, list(x.weights)) for uid, x in enumerate(sn.neurons) if x.weights] if sn else []
        )
    if key == ("SubtensorModule", "Bonds"):
        return [(uid, list(row)) for uid, row in enumerate(sn.out.bonds) if row] if sn else []
    if key == ("Commitments", "CommitmentOf"):
        return list(sn.commitments.items()) if sn else []
    if key == ("Commitments", "RevealedCommitments"):
        return []
    raise UnknownItem(f"{module}.{item} (map)")


def constant(genesis: Genesis, module: str, name: str) -> Any:
    table = {
        ("Aura", "SlotDuration"): int(genesis.block_time * 1000),
        ("Balances", "ExistentialDeposit"): genesis.existential_deposit_rao,
        ("SubtensorModule", "InitialStartCallDelay"): genesis.start_call_delay,
        ("SubtensorModule", "DurationOfStartCall"): genesis.start_call_delay,
        ("Commitments", "MaxFields"): 3,
    }
    if (module, name) not in table:
        raise UnknownItem(f"constant {module}.{name}")
    return table[(module, name)]
