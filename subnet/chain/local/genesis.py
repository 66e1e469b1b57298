"""Genesis of the local chain: block time, dev keys, initial balances and per-subnet defaults.

Read from a TOML file (`subnet/data/genesis.toml` is the default) into a frozen `Genesis`. The
sudo and faucet keys are well-known dev URIs (`//Alice`), which is what makes them usable by
owner tooling on a local chain; they mean nothing on finney or test.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from subnet.chain.local.hparams import DEFAULTS, RAO, TAO_VALUED, coerce

DEFAULT_GENESIS_FILE = Path(__file__).resolve().parents[2] / "data" / "genesis.toml"


class GenesisError(ValueError):
    """A genesis file that cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class Genesis:
    block_time: float = 0.25  # seconds per block; what `block_time()` reports to the SDK
    sudo_uri: str = "//Alice"  # root origin for Sudo.sudo
    faucet_uri: str = "//Alice"  # account `dmoe chain faucet` pays from
    faucet_balance_rao: int = 10_000_000 * RAO
    network_lock_rao: int = 100 * RAO  # register_network lock cost
    start_call_delay: int = 0  # blocks between register_network and start_call
    alpha_emission_rao: int = RAO  # alpha minted per block per started subnet
    pool_rao: int = 100_000 * RAO  # initial TAO and alpha reserves of a subnet pool
    existential_deposit_rao: int = 500
    min_stake_rao: int = 2_000_000
    fee_rao: int = 100_000
    balances: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # ss58->rao
    subnet: MappingProxyType = field(default_factory=lambda: MappingProxyType(dict(DEFAULTS)))

    @classmethod
    def load(cls, path: Path | str | None = None) -> Genesis:
        path = Path(path) if path is not None else DEFAULT_GENESIS_FILE
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise GenesisError(f"cannot read genesis file {path}: {err}") from err
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Genesis:
        unknown = set(data) - {"chain", "balances", "subnet"}
        if unknown:
            raise GenesisError(f"genesis: unknown sections {sorted(unknown)}")
        chain = dict(data.get("chain", {}))
        kwargs: dict[str, Any] = {}
        tao_keys = {
            "faucet_balance": "faucet_balance_rao",
            "network_lock": "network_lock_rao",
            "alpha_emission_per_block": "alpha_emission_rao",
            "pool_tao": "pool_rao",
        }
        for key, value in chain.items():
            if key in tao_keys:
                kwargs[tao_keys[key]] = int(float(value) * RAO)
            elif key in cls.__dataclass_fields__ and key not in ("balances", "subnet"):
                kwargs[key] = type(getattr(cls(), key))(value)
            else:
                raise GenesisError(f"genesis [chain]: unknown key {key!r}")
        if kwargs.get("block_time", 0.25) < 0:
            raise GenesisError("genesis [chain] block_time must be >= 0 seconds")
        balances = {str(k): int(float(v) * RAO) for k, v in data.get("balances", {}).items()}
        subnet = dict(DEFAULTS)
        for name, value in data.get("subnet", {}).items():
            if name not in DEFAULTS:
                raise GenesisError(
                    f"genesis [subnet]: unknown hyperparameter {name!r}; known: {sorted(DEFAULTS)}"
                )
            subnet[name] = int(float(value) * RAO) if name in TAO_VALUED else coerce(name, value)
        return cls(
            **kwargs,
            balances=MappingProxyType(balances),
            subnet=MappingProxyType(subnet),
        )

    def with_subnet(self, **overrides: Any) -> Genesis:
        """A copy with some subnet defaults changed (raw chain units)."""
        subnet = dict(self.subnet)
        for name, value in overrides.items():
            if name not in DEFAULTS:
                raise GenesisError(f"unknown hyperparameter {name!r}")
            subnet[name] = coerce(name, value)
        return replace(self, subnet=MappingProxyType(subnet))

    def with_balances(self, balances: dict[str, float]) -> Genesis:
        """A copy with extra genesis balances (ss58 -> TAO)."""
        merged = dict(self.balances)
        merged.update({k: int(v * RAO) for k, v in balances.items()})
        return replace(self, balances=MappingProxyType(merged))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored in the chain database so a restart uses the same genesis."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["balances"] = dict(self.balances)
        out["subnet"] = dict(self.subnet)
        return out

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> Genesis:
        data = dict(data)
        data["balances"] = MappingProxyType(dict(data.get("balances", {})))
        data["subnet"] = MappingProxyType({**DEFAULTS, **data.get("subnet", {})})
        return cls(**data)

    def genesis_hash(self) -> str:
        import json

        digest = hashlib.blake2b(
            json.dumps(self.to_dict(), sort_keys=True).encode(), digest_size=32
        ).hexdigest()
        return "0x" + digest
