"""`dmoe miner`: serve an expert to validators.

dmoe miner --netuid 1 --wallet.name W --wallet.hotkey H --subtensor.network local \\
    --axon.port 8091 --expert code [--register] [--min-stake X] [--no-require-permit]

`--expert` is a model directory, a Hugging Face id (with --expert.revision), or `code` / `math`
for the offline tiny experts (built into --experts.dir on first use, about a minute on CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from subnet.config import ConfigError
from subnet.miner.config import MinerConfig, add_miner_args, miner_config_from_args

log = logging.getLogger("neurons.miner")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dmoe miner", description="serve an expert model")
    add_miner_args(parser)
    args = parser.parse_args(argv)
    try:
        config = miner_config_from_args(args)
    except ConfigError as err:
        print(f"dmoe miner: {err}", file=sys.stderr)
        return 2
    config.common.logging.apply("miner")
    return asyncio.run(run(config))


async def run(config: MinerConfig) -> int:
    from subnet import preflight

    # Cheap checks first (PreflightError, one line via subnet.cli): a miner that cannot work
    # says so in seconds, before any expert is built, downloaded or loaded.
    common = config.common
    wallet = preflight.load_wallet(common.wallet, common.subtensor, coldkey=config.register)
    preflight.port_free(common.axon.ip, common.axon.port, "--axon.port")
    await asyncio.to_thread(preflight.device_usable, config.engine.device)
    async with preflight.connected(common.subtensor) as client:
        await preflight.miner_ready(
            client, common.netuid, wallet, common.wallet, common.subtensor, register=config.register
        )
        return await _serve(config, wallet, client)


async def _serve(config: MinerConfig, wallet, client) -> int:
    import bittensor as bt

    from subnet.engine.experts import CARD_FILE, build_tiny_experts
    from subnet.engine.loading import ExpertLoadError
    from subnet.miner.chain import ChainCallFailed, NotRegistered
    from subnet.miner.server import MinerServer

    try:
        tiny = config.engine.tiny_dir
        if tiny is not None and not (Path(config.engine.expert) / CARD_FILE).is_file():
            log.info("building the tiny experts into %s (about a minute)", tiny)
            await asyncio.to_thread(build_tiny_experts, tiny)
        server = await asyncio.to_thread(MinerServer.create, config, wallet=wallet, client=client)
        if config.adversary:  # hidden test-only flag: this miner cheats on purpose
            from subnet.miner.adversary import install_from_config

            await asyncio.to_thread(install_from_config, server, config)
    except ExpertLoadError as err:
        print(f"dmoe miner: {err}", file=sys.stderr)
        return 2
    try:
        await server.start()
    except (NotRegistered, ChainCallFailed, bt.ChainError, OSError, TimeoutError) as err:
        print(f"dmoe miner: cannot start: {err}", file=sys.stderr)
        await server.stop()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"dmoe miner serving {server.engine.card.model_id} on {server.url}", flush=True)
    await stop.wait()
    log.info("shutting down: draining in-flight requests")
    await server.stop()
    return 0
