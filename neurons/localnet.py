"""`dmoe localnet`: run a whole local subnet (chain, miners, validators) and report what it paid."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from subnet.config import ConfigError, LoggingConfig
from subnet.localnet.config import add_localnet_args, localnet_config_from_args


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dmoe localnet", description=__doc__)
    add_localnet_args(parser)
    try:
        config = localnet_config_from_args(parser.parse_args(argv))
    except ConfigError as err:
        print(f"dmoe localnet: {err}", file=sys.stderr)
        return 2
    config.data_dir.mkdir(parents=True, exist_ok=True)
    LoggingConfig(debug=config.debug, logging_dir=config.data_dir / "logs").apply("localnet")

    from subnet.localnet.runner import Localnet, write_report

    async def run() -> int:
        import time

        t0 = time.monotonic()
        net = Localnet.create(config)
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            summary = await net.run()
        except asyncio.CancelledError:
            print("\nstopped; every process was shut down. Resume with the same --data-dir.")
            return 130
        print(write_report(net, summary, time.monotonic() - t0))
        return 0 if summary.ok else 1

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        print("\ninterrupted; every process was shut down. Resume with the same --data-dir.")
        return 130
    except (ValueError, RuntimeError, TimeoutError) as err:
        print(f"dmoe localnet: {err}", file=sys.stderr)
        return 1
