"""`dmoe status [--data-dir DIR] [--json]`: a one-shot view of a running localnet.

Reads the localnet's layout from its data directory, the metagraph from its chain and each
validator's public `/v1/status`, and prints the same table as the live dashboard.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path

from subnet.localnet.config import DEFAULT_DATA_DIR


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="dmoe status", description=__doc__)
    p.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the localnet's data dir"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    layout_file = args.data_dir / "localnet.json"
    if not layout_file.exists():
        print(
            f"dmoe status: no localnet in {args.data_dir} (start one with `dmoe localnet`, "
            "or pass --data-dir)",
            file=sys.stderr,
        )
        return 2
    import bittensor as bt

    from subnet.localnet.view import LocalnetLayout
    from subnet.preflight import root_cause

    try:
        layout = LocalnetLayout.load(args.data_dir.resolve())
    except (ValueError, KeyError, TypeError) as err:
        print(
            f"dmoe status: {layout_file} is unreadable ({type(err).__name__}: {err}): "
            "restart the localnet (`dmoe localnet --fresh` starts over)",
            file=sys.stderr,
        )
        return 2
    try:
        view = asyncio.run(_view(layout))
    except (OSError, TimeoutError, bt.ChainError, bt.RpcConnectionError) as err:
        print(
            f"dmoe status: the localnet's chain does not answer ({root_cause(err)}): start it "
            f"again with `dmoe localnet --data-dir {args.data_dir}`",
            file=sys.stderr,
        )
        return 1
    if view is None:
        print("dmoe status: the localnet has no subnet yet", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(view), default=str))
    else:
        from rich.console import Console

        from subnet.localnet.dashboard import render

        Console().print(render(view))
    return 0


async def _view(layout):
    import aiohttp

    from subnet.chain import make_client
    from subnet.localnet.history import load
    from subnet.localnet.view import collect_view

    data_dir = layout.data_dir
    if layout.netuid is None:
        return None
    client = make_client(layout.chain_endpoint)
    async with client:
        mg = await asyncio.wait_for(client.subnets.metagraph(layout.netuid), 10)
        # Hotkeys are in the layout once the subnet is bootstrapped (the netuid is saved with them).
        async with aiohttp.ClientSession() as http:
            return await collect_view(mg, layout, http, len(load(data_dir / "history.json")), 0)
