"""The local chain's state: accounts, stake, subnets and their neurons, as plain data.

Mutations go through the concern modules (accounts, subnets, staking, weights, admin, epoch); each
one calls `ChainState.touch(kind, key)` so the store writes exactly what a block changed, in the
block's single SQLite transaction. Per-uid epoch outputs live in numpy arrays on the subnet (one
blob per subnet in the store) because an epoch rewrites all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Per-uid epoch outputs stored as u16 fractions (what the metagraph shows).
U16_OUTPUTS = ("rank", "trust", "consensus", "incentive", "dividends", "validator_trust", "pruning")
EMPTY_AXON = {
    "block": 0,
    "version": 0,
    "ip": 0,
    "port": 0,
    "ip_type": 0,
    "protocol": 0,
    "placeholder1": 0,
    "placeholder2": 0,
}


@dataclass
class Neuron:
    hotkey: str
    coldkey: str
    registered_at: int
    last_update: int
    axon: dict | None = None
    weights: list[tuple[int, int]] = field(default_factory=list)  # sparse u16 row, by uid

    def to_dict(self) -> dict[str, Any]:
        return {
            "hotkey": self.hotkey,
            "coldkey": self.coldkey,
            "registered_at": self.registered_at,
            "last_update": self.last_update,
            "axon": self.axon,
            "weights": [list(p) for p in self.weights],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Neuron:
        return cls(
            hotkey=d["hotkey"],
            coldkey=d["coldkey"],
            registered_at=int(d["registered_at"]),
            last_update=int(d["last_update"]),
            axon=d.get("axon"),
            weights=[(int(u), int(w)) for u, w in d.get("weights", [])],
        )


@dataclass
class EpochOutputs:
    """Per-uid results of the last epoch, index = uid."""

    u16: dict[str, np.ndarray] = field(
        default_factory=lambda: {k: np.zeros(0, np.int64) for k in U16_OUTPUTS}
    )
    emission: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # alpha rao
    permit: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    active: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    bonds: list[list[tuple[int, int]]] = field(default_factory=list)  # stored u16 rows

    def grow(self) -> None:
        """Room for one more uid (a fresh registration starts at zero)."""
        for k in U16_OUTPUTS:
            self.u16[k] = np.append(self.u16[k], 0)
        self.emission = np.append(self.emission, 0)
        self.permit = np.append(self.permit, False)
        self.active = np.append(self.active, True)
        self.bonds.append([])

    def reset(self, uid: int) -> None:
        """A replaced uid starts from zero; bonds held on it are dropped by the next epoch mask."""
        for k in U16_OUTPUTS:
            self.u16[k][uid] = 0
        self.emission[uid] = 0
        self.permit[uid] = False
        self.active[uid] = True
        self.bonds[uid] = []


@dataclass
class Subnet:
    netuid: int
    owner_coldkey: str
    owner_hotkey: str
    registered_at: int
    locked: int
    symbol: str
    hparams: dict[str, Any]
    name: str = ""
    first_emission_block: int | None = None
    last_epoch_block: int = 0
    epoch_index: int = 0
    pending_emission: int = 0  # alpha rao minted since the last epoch
    tao_in: int = 0  # pool reserves, rao
    alpha_in: int = 0
    regs_this_block: int = 0
    regs_block: int = 0
    neurons: list[Neuron] = field(default_factory=list)
    uids: dict[str, int] = field(default_factory=dict)  # hotkey -> uid
    out: EpochOutputs = field(default_factory=EpochOutputs)
    commitments: dict[str, dict] = field(default_factory=dict)  # hotkey -> CommitmentOf record

    META = (
        "netuid", "owner_coldkey", "owner_hotkey", "registered_at", "locked", "symbol", "hparams",
        "name", "first_emission_block", "last_epoch_block", "epoch_index", "pending_emission",
        "tao_in", "alpha_in", "regs_this_block", "regs_block", "commitments",
    )  # fmt: skip

    def meta(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.META}

    @property
    def price(self) -> float:
        """TAO per alpha of the subnet pool."""
        return self.tao_in / self.alpha_in if self.alpha_in else 1.0


@dataclass
class ChainState:
    block: int = 0
    balances: dict[str, int] = field(default_factory=dict)  # ss58 -> free rao
    nonces: dict[str, int] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # hotkey -> coldkey
    stake: dict[tuple[str, str, int], int] = field(default_factory=dict)  # (hk, ck, netuid)
    hotkey_alpha: dict[tuple[int, str], int] = field(default_factory=dict)  # (netuid, hk) total
    subnets: dict[int, Subnet] = field(default_factory=dict)
    dirty: set[tuple[str, Any]] = field(default_factory=set)
    # Bumped by every mutation (they all touch): with `block`, what a cached read answer is for.
    version: int = 0

    def touch(self, kind: str, key: Any) -> None:
        self.dirty.add((kind, key))
        self.version += 1

    def subnet(self, netuid: Any) -> Subnet | None:
        try:
            return self.subnets.get(int(netuid))
        except (TypeError, ValueError):
            return None

    def add_balance(self, ss58: str, rao: int) -> None:
        self.balances[ss58] = self.balances.get(ss58, 0) + int(rao)
        self.touch("account", ss58)

    def add_stake(self, hotkey: str, coldkey: str, netuid: int, alpha: int) -> None:
        key = (hotkey, coldkey, netuid)
        self.stake[key] = self.stake.get(key, 0) + int(alpha)
        total = (netuid, hotkey)
        self.hotkey_alpha[total] = self.hotkey_alpha.get(total, 0) + int(alpha)
        self.touch("stake", key)

    def alpha_of(self, netuid: int, hotkey: str) -> int:
        return self.hotkey_alpha.get((netuid, hotkey), 0)
