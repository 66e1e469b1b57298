"""Frozen configuration of the `dmoe chain` server process (parsed once in neurons/chain.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 9944
MAX_REQUEST_BYTES = 1 << 20  # 1 MiB: the largest honest request is a 4096-uid weights row


@dataclass(frozen=True)
class ChainConfig:
    data_dir: Path  # --data-dir: SQLite database, btcli caches, logs
    host: str = "127.0.0.1"  # --host: bind address
    port: int = DEFAULT_PORT  # --port: 0 picks a free port (tests)
    genesis: Path | None = None  # --genesis: TOML file (default subnet/data/genesis.toml)
    block_time: float | None = None  # --block-time: seconds; None = the genesis value
    instant: bool = False  # --instant: seal a block per submission (benchmarks), timer too
    max_request_bytes: int = MAX_REQUEST_BYTES
    debug: bool = False  # --debug: verbose logging


@dataclass(frozen=True)
class FaucetConfig:
    data_dir: Path  # --data-dir: where the chain keeps its genesis (for the faucet key)
    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    addresses: tuple[str, ...] = ()  # SS58... to fund
    amount_tao: float = 1000.0  # --amount
