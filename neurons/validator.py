"""`dmoe validator`: score miners, set weights once per tempo, and serve the OpenAI gateway.

dmoe validator --netuid 1 --wallet.name W --wallet.hotkey H --subtensor.network local \\
    [--gateway.port 8000 --gateway.api_keys sk-1] [--dry-run] [--experts-dir DIR]

Reference experts (to verify answers) come from --experts-dir; without it the offline tiny
experts are built into ~/.dmoe/experts (DMOE_EXPERTS_DIR) on first use, like the miner's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from subnet.config import ConfigError
from subnet.validator.config import ValidatorConfig, add_validator_args, validator_config_from_args

log = logging.getLogger("neurons.validator")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dmoe validator", description="score miners, set weights")
    add_validator_args(parser)
    args = parser.parse_args(argv)
    try:
        config = validator_config_from_args(args)
    except ConfigError as err:
        print(f"dmoe validator: {err}", file=sys.stderr)
        return 2
    config.common.logging.apply("validator")
    return asyncio.run(run(config))


async def run(config: ValidatorConfig) -> int:
    from subnet import preflight

    # Cheap checks first (PreflightError, one line via subnet.cli): wallet, gateway port,
    # registry file, chain, subnet, registration and permit, all before any model is touched.
    common = config.common
    wallet = preflight.load_wallet(common.wallet, common.subtensor)
    if config.gateway.port is not None:
        preflight.port_free(config.gateway.host, config.gateway.port, "--gateway.port")
    registry_file = None
    if config.registry_path is not None:
        from subnet.owner.registry import load

        registry_file = load(config.registry_path)  # RegistryError names the problem
    async with preflight.connected(common.subtensor) as client:
        problem = await preflight.validator_ready(
            client, common.netuid, common.wallet, common.subtensor, wallet.hotkey.ss58_address
        )
        if problem is not None and not config.allow_no_permit:
            raise preflight.PreflightError(f"{problem} (or pass --allow-no-permit to start anyway)")
        if problem is not None:
            log.warning("starting anyway (--allow-no-permit): %s", problem)
        if registry_file is not None:
            status, why = await _registry_status(client, common.netuid, registry_file)
            if status == "mismatch":
                print(f"dmoe validator: {why}", file=sys.stderr)
                return 2
            log.log(logging.INFO if status == "ok" else logging.WARNING, "%s", why)
        return await _validate(config, wallet, client, registry_file)


async def _validate(config: ValidatorConfig, wallet, client, registry_file) -> int:
    from subnet.engine.experts import build_tiny_experts
    from subnet.engine.loading import ExpertLoadError
    from subnet.miner.config import DEFAULT_EXPERTS_DIR
    from subnet.net import SignedClient
    from subnet.validator.gateway import Gateway
    from subnet.validator.loop import Validator
    from subnet.validator.state import StateStore
    from subnet.validator.verifier import ExpertRegistry, Verifier

    experts_dir = config.experts_dir
    if experts_dir is None:
        experts_dir = Path(os.environ.get("DMOE_EXPERTS_DIR") or DEFAULT_EXPERTS_DIR).expanduser()
        log.info("reference experts: tiny experts in %s (built if absent)", experts_dir)
        await asyncio.to_thread(build_tiny_experts, experts_dir)
    try:
        registry = await asyncio.to_thread(
            ExpertRegistry.load_dir,
            experts_dir,
            device=config.verify.device,
            dtype=config.verify.dtype,
        )
    except ExpertLoadError as err:
        print(f"dmoe validator: {err}", file=sys.stderr)
        return 2
    if registry_file is not None:
        dropped = registry.restrict(registry_file.hashes)
        if dropped:
            log.info("not in the owner's registry, ignored: %s", ", ".join(dropped))
        if not registry.experts:
            print(
                f"dmoe validator: none of the reference experts in {experts_dir} is in the "
                f"registry {config.registry_path}; download the registered models",
                file=sys.stderr,
            )
            return 2
    signed = SignedClient.create(wallet.hotkey)
    gateway = None
    try:
        validator = Validator(
            config,
            signed=signed,
            verifier=Verifier(registry),
            store=StateStore(config.state_path),
            client=client,
            wallet=wallet,
            owner_domains=(
                {e.weights_hash: e.domains for e in registry_file.experts}
                if registry_file
                else None
            ),
        )
        await validator.refresh_metagraph()
        if config.gateway.port is not None:
            gateway = Gateway(validator, config.gateway, config.router)
            await gateway.start(config.gateway.host, config.gateway.port)
            print(f"dmoe gateway on http://{config.gateway.host}:{gateway.port}/v1", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(
            f"dmoe validator on subnet {config.common.netuid}: {len(validator.miners)} miners, "
            f"state {config.state_path}{' (dry run)' if config.weights.dry_run else ''}",
            flush=True,
        )
        await validator.run(stop)
    finally:
        if gateway is not None:
            await gateway.stop()
        await signed.close()
    return 0


async def _registry_status(client, netuid: int, registry) -> tuple[str, str]:
    """Whether the registry file is the one the subnet owner published on chain."""
    from subnet.owner.registry import check_published
    from subnet.owner.tools import OwnerError, published_registry

    try:
        text = await asyncio.wait_for(published_registry(client, netuid), 30)
    except OwnerError as err:
        return "mismatch", str(err)
    return check_published(registry, text)
