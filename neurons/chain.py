"""`dmoe chain`: run the local chain server; `dmoe chain faucet`: fund local keys.

dmoe chain --data-dir DIR --port PORT [--genesis FILE] [--block-time S] [--instant]
dmoe chain faucet --data-dir DIR --port PORT SS58... [--amount TAO]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import sqlite3
import sys
from pathlib import Path

from subnet.chain.config import DEFAULT_PORT, ChainConfig, FaucetConfig

GENESIS_JSON = "genesis.json"


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dmoe chain", description="run the local chain server")
    p.add_argument("--data-dir", type=Path, required=True, help="database and caches directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    p.add_argument("--genesis", type=Path, default=None, help="genesis TOML (first start only)")
    p.add_argument("--block-time", type=float, default=None, help="seconds per block")
    p.add_argument("--instant", action="store_true", help="also seal a block per submission")
    p.add_argument("--debug", action="store_true")
    return p


def _faucet_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dmoe chain faucet", description="fund local keys")
    p.add_argument("addresses", nargs="+", metavar="SS58")
    p.add_argument("--data-dir", type=Path, required=True, help="the chain's data directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--amount", type=float, default=1000.0, help="TAO per address")
    return p


def main(argv: list[str]) -> int:
    from subnet.config import ConfigError

    try:
        if argv and argv[0] == "faucet":
            a = _faucet_parser().parse_args(argv[1:])
            return asyncio.run(_faucet(_faucet_config(a)))
        a = _serve_parser().parse_args(argv)
        cfg = _chain_config(a)
    except ConfigError as err:
        prog = "dmoe chain faucet" if argv and argv[0] == "faucet" else "dmoe chain"
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if cfg.debug else logging.INFO,
        format="%(asctime)s %(levelname)s chain %(name)s: %(message)s",
    )
    return asyncio.run(_serve(cfg))


def _check_port(port: int) -> int:
    from subnet.config import ConfigError

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535] (0 picks a free one), got {port}")
    return port


def _chain_config(a: argparse.Namespace) -> ChainConfig:
    from subnet.config import ConfigError

    if a.block_time is not None and not (0 < a.block_time < math.inf):
        raise ConfigError("--block-time must be > 0 (use --instant for per-submission blocks)")
    if a.data_dir.exists() and not a.data_dir.is_dir():
        raise ConfigError(f"--data-dir {a.data_dir} is a file, not a directory")
    if a.genesis is not None and not a.genesis.is_file():
        raise ConfigError(f"--genesis {a.genesis} is not a file (default: the bundled genesis)")
    port = _check_port(a.port)
    return ChainConfig(a.data_dir, a.host, port, a.genesis, a.block_time, a.instant, debug=a.debug)


def _faucet_config(a: argparse.Namespace) -> FaucetConfig:
    from bittensor_core import Keypair

    from subnet.config import ConfigError

    if not (0 < a.amount < math.inf):
        raise ConfigError(f"--amount must be a positive number of TAO, got {a.amount}")
    for ss58 in a.addresses:
        try:
            Keypair(ss58_address=ss58)
        except ValueError:
            raise ConfigError(
                f"{ss58!r} is not an SS58 address (a coldkey's, e.g. from "
                "`btcli wallet list`, starting with 5)"
            ) from None
    port = _check_port(a.port)
    return FaucetConfig(a.data_dir, port, a.host, tuple(a.addresses), a.amount)


async def _serve(cfg: ChainConfig) -> int:
    from subnet.chain.local.server import ChainServer

    # Genesis, port and data-dir lock are checked before the database is written; their
    # errors (GenesisError, PreflightError, DataDirBusy) are one line each via subnet.cli.
    try:
        server = ChainServer.create(cfg)
    except sqlite3.DatabaseError as err:
        print(
            f"dmoe chain: {cfg.data_dir} holds a database that is not a dmoe chain's ({err}): "
            "pass another --data-dir",
            file=sys.stderr,
        )
        return 2
    try:
        (cfg.data_dir / GENESIS_JSON).write_text(json.dumps(server.chain.genesis.to_dict()))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        print(f"dmoe chain listening on localchain://{cfg.host}:{server.port}", flush=True)
        await stop.wait()
    finally:
        await server.stop()
    return 0


async def _faucet(cfg: FaucetConfig) -> int:
    import bittensor as bt
    from bittensor_core import Keypair

    from subnet.chain.local.genesis import Genesis
    from subnet.config import SubtensorConfig
    from subnet.preflight import connected

    path = cfg.data_dir / GENESIS_JSON
    if not path.exists():
        print(
            f"dmoe chain faucet: {path} not found: pass the --data-dir of a running "
            f"`dmoe chain` (start one with `dmoe chain --data-dir {cfg.data_dir}`)",
            file=sys.stderr,
        )
        return 2
    genesis = Genesis.from_stored(json.loads(path.read_text()))
    faucet = Keypair.create_from_uri(genesis.faucet_uri)
    failed = 0
    endpoint = SubtensorConfig(chain_endpoint=f"localchain://{cfg.host}:{cfg.port}")
    fix = f"start it (`dmoe chain --data-dir {cfg.data_dir}`) or pass the --port it listens on"
    async with connected(endpoint, fix) as client:
        for ss58 in cfg.addresses:
            try:
                result = await client.execute(bt.Transfer(ss58, cfg.amount_tao), faucet)
            except (bt.ChainError, ValueError) as err:
                print(f"{ss58}: refused: {err}", file=sys.stderr)
                failed += 1
                continue
            if result.success:
                print(f"{ss58}: funded {cfg.amount_tao} TAO")
            else:
                print(f"{ss58}: refused: {result.message}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0
