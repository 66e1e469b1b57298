"""`dmoe chain`: run the local chain server; `dmoe chain faucet`: fund local keys.

dmoe chain --data-dir DIR --port PORT [--genesis FILE] [--block-time S] [--instant]
dmoe chain faucet --data-dir DIR --port PORT SS58... [--amount TAO]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
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
    if argv and argv[0] == "faucet":
        a = _faucet_parser().parse_args(argv[1:])
        cfg = FaucetConfig(a.data_dir, a.port, a.host, tuple(a.addresses), a.amount)
        return asyncio.run(_faucet(cfg))
    a = _serve_parser().parse_args(argv)
    if a.block_time is not None and a.block_time <= 0:
        print("dmoe chain: --block-time must be > 0 (use --instant for per-submission blocks)")
        return 2
    cfg = ChainConfig(a.data_dir, a.host, a.port, a.genesis, a.block_time, a.instant, debug=a.debug)
    logging.basicConfig(
        level=logging.DEBUG if cfg.debug else logging.INFO,
        format="%(asctime)s %(levelname)s chain %(name)s: %(message)s",
    )
    return asyncio.run(_serve(cfg))


async def _serve(cfg: ChainConfig) -> int:
    from subnet.chain.local.genesis import GenesisError
    from subnet.chain.local.server import ChainServer

    try:
        server = ChainServer.create(cfg)
    except GenesisError as err:
        print(f"dmoe chain: {err}", file=sys.stderr)
        return 2
    (cfg.data_dir / GENESIS_JSON).write_text(json.dumps(server.chain.genesis.to_dict()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(f"dmoe chain listening on localchain://{cfg.host}:{server.port}", flush=True)
    await stop.wait()
    await server.stop()
    return 0


async def _faucet(cfg: FaucetConfig) -> int:
    import bittensor as bt
    from bittensor_core import Keypair

    from subnet.chain import make_client
    from subnet.chain.local.genesis import Genesis

    path = cfg.data_dir / GENESIS_JSON
    if not path.exists():
        print(f"dmoe chain faucet: {path} not found; start `dmoe chain --data-dir {cfg.data_dir}`")
        return 2
    genesis = Genesis.from_stored(json.loads(path.read_text()))
    faucet = Keypair.create_from_uri(genesis.faucet_uri)
    failed = 0
    async with make_client(f"localchain://{cfg.host}:{cfg.port}") as client:
        for ss58 in cfg.addresses:
            try:
                result = await client.execute(bt.Transfer(ss58, cfg.amount_tao), faucet)
            except (bt.ChainError, ValueError) as err:
                print(f"{ss58}: refused: {err}")
                failed += 1
                continue
            print(
                f"{ss58}: {'funded ' + str(cfg.amount_tao) + ' TAO' if result.success else result.message}"
            )
            failed += 0 if result.success else 1
    return 1 if failed else 0
