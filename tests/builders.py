"""Config builders shared by test modules: a miner bound to 127.0.0.1:0 with test-friendly limits."""

from __future__ import annotations

from subnet.config import AxonConfig, CommonConfig, LoggingConfig, SubtensorConfig, WalletConfig
from subnet.miner.config import EngineConfig, MinerConfig, ServerConfig


def local_common(netuid: int = 1) -> CommonConfig:
    """Defaults everywhere except the axon: loopback, port 0 (the OS picks a free port)."""
    return CommonConfig(
        netuid=netuid,
        wallet=WalletConfig(),
        subtensor=SubtensorConfig(),
        axon=AxonConfig(ip="127.0.0.1", port=0),
        logging=LoggingConfig(),
    )


def local_miner_config(
    server: ServerConfig, *, max_batch: int = 8, max_queue: int = 8, netuid: int = 1
) -> MinerConfig:
    """A miner config for an in-process server whose expert the test passes in directly."""
    return MinerConfig(
        common=local_common(netuid),
        engine=EngineConfig(expert="unused", max_batch=max_batch, max_queue=max_queue),
        server=server,
        publish=False,
    )
