"""`dmoe btcli ...`: the SDK's own btcli (`bittensor.cli`), pointed at the local chain.

    dmoe btcli [--endpoint localchain://127.0.0.1:9944] [--data-dir DIR] <btcli args...>
    dmoe btcli --data-dir .data/chain hparams set --netuid 1 --name immunity_period --value 100 \
        -w owner -y

btcli only knows real JSON-RPC nodes, so this wrapper swaps its `Client` factory for one that
injects the local chain's `Substrate` (the SDK version is pinned, see pyproject) and runs it under
the "local" network label with its BTCLI_* caches inside the chain's data directory.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from subnet.config import DEFAULT_LOCAL_ENDPOINT

CACHE_FILES = {
    "BTCLI_CONFIG": "btcli.json",
    "BTCLI_TOKEN_SYMBOLS_CACHE": "btcli_token_symbols.json",
    "BTCLI_SUBNET_NAMES_CACHE": "btcli_subnet_names.json",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dmoe btcli",
        description="the SDK's btcli against the local chain; other arguments go to btcli",
        add_help=False,
    )
    p.add_argument(
        "--endpoint", default=os.environ.get("BT_CHAIN_ENDPOINT", DEFAULT_LOCAL_ENDPOINT)
    )
    p.add_argument("--data-dir", type=Path, default=Path(".data/chain"), help="chain data dir")
    return p


def main(argv: list[str]) -> int:
    import bittensor as bt
    import bittensor.cli.context as cli_context
    from bittensor.cli.main import main as btcli_main

    from subnet.chain import LOCAL_LABEL, is_local, local_substrate

    ours, rest = _parser().parse_known_args(argv)
    if not is_local(ours.endpoint):
        print(f"dmoe btcli: {ours.endpoint!r} is not a local chain; use `btcli` directly")
        return 2
    ours.data_dir.mkdir(parents=True, exist_ok=True)
    for var, name in CACHE_FILES.items():
        os.environ[var] = str(ours.data_dir / name)
    os.environ["BT_NETWORK"] = LOCAL_LABEL

    def client_factory(network: str, *args, **kwargs) -> bt.Client:
        return bt.Client(LOCAL_LABEL, substrate=local_substrate(ours.endpoint))

    original = cli_context.Client
    cli_context.Client = client_factory
    saved_argv = sys.argv
    sys.argv = ["btcli", *rest]
    try:
        btcli_main()
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        cli_context.Client = original
        sys.argv = saved_argv
    return 0
