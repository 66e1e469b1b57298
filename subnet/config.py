"""Configuration shared by every dmoe process: bittensor-style flags parsed once into frozen dataclasses.

Each entry point (`neurons/*.py`) builds an argparse parser, calls `add_common_args` (and its own
flags), then `common_from_args` to get validated, frozen config. Flags fall back to environment
variables (listed next to each flag) and then to defaults. Nothing else in the project reads argv
or the environment. Process-specific config lives beside the process (`subnet/miner/config.py`,
`subnet/validator/config.py`, `subnet/chain/config.py`) and embeds these blocks.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WALLET_PATH = "~/.bittensor/wallets"
# The local chain's default endpoint; `dmoe localnet` and `dmoe chain` use it too.
DEFAULT_LOCAL_ENDPOINT = "localchain://127.0.0.1:9944"
NETWORKS = ("local", "test", "finney")


class ConfigError(ValueError):
    """A bad flag or environment value. The message says which and how to fix it."""


@dataclass(frozen=True)
class WalletConfig:
    name: str = "default"  # --wallet.name / BT_WALLET_NAME: the coldkey's directory
    hotkey: str = "default"  # --wallet.hotkey / BT_WALLET_HOTKEY: the hotkey's file name
    path: Path = Path(DEFAULT_WALLET_PATH).expanduser()  # --wallet.path / BT_WALLET_PATH

    def load(self):  # -> bittensor.Wallet; imported lazily so configs stay cheap to build
        import bittensor as bt

        return bt.Wallet(self.name, self.hotkey, path=str(self.path))


@dataclass(frozen=True)
class SubtensorConfig:
    # --subtensor.network / BT_NETWORK: local | test | finney | ws(s)://host:port | localchain://h:p
    network: str = "local"
    # --subtensor.chain_endpoint / BT_CHAIN_ENDPOINT: overrides the endpoint the network implies
    chain_endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        """What `subnet.chain.make_client` connects to."""
        if self.chain_endpoint:
            return self.chain_endpoint
        if self.network == "local":
            return DEFAULT_LOCAL_ENDPOINT
        return self.network


@dataclass(frozen=True)
class AxonConfig:
    ip: str = "127.0.0.1"  # --axon.ip / DMOE_AXON_IP: the address to bind
    port: int = 8091  # --axon.port / DMOE_AXON_PORT: 0 picks a free port (tests)
    external_ip: str | None = None  # --axon.external_ip: what to advertise if not `ip`
    external_port: int | None = None  # --axon.external_port

    @property
    def advertised_ip(self) -> str:
        return self.external_ip or self.ip


@dataclass(frozen=True)
class LoggingConfig:
    debug: bool = False  # --logging.debug / DMOE_LOG_DEBUG=1
    logging_dir: Path | None = None  # --logging.logging_dir: also write logs to DIR/<process>.log

    def apply(self, process: str) -> None:
        level = logging.DEBUG if self.debug else logging.INFO
        handlers: list[logging.Handler] = [logging.StreamHandler()]
        if self.logging_dir is not None:
            self.logging_dir.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(self.logging_dir / f"{process}.log"))
        logging.basicConfig(
            level=level,
            format=f"%(asctime)s %(levelname)s {process} %(name)s: %(message)s",
            handlers=handlers,
            force=True,
        )


@dataclass(frozen=True)
class CommonConfig:
    netuid: int
    wallet: WalletConfig
    subtensor: SubtensorConfig
    axon: AxonConfig
    logging: LoggingConfig


def add_common_args(parser: argparse.ArgumentParser, *, axon: bool = True) -> None:
    """The familiar subnet flags. Defaults are None so env fallbacks can apply after parsing."""
    g = parser.add_argument_group("subnet")
    g.add_argument(
        "--netuid", type=int, default=None, help="subnet id (env DMOE_NETUID; default 1)"
    )
    g.add_argument(
        "--wallet.name", dest="wallet_name", default=None, help="coldkey name (env BT_WALLET_NAME)"
    )
    g.add_argument(
        "--wallet.hotkey",
        dest="wallet_hotkey",
        default=None,
        help="hotkey name (env BT_WALLET_HOTKEY)",
    )
    g.add_argument(
        "--wallet.path",
        dest="wallet_path",
        default=None,
        help=f"wallets dir (env BT_WALLET_PATH; default {DEFAULT_WALLET_PATH})",
    )
    g.add_argument(
        "--subtensor.network",
        dest="network",
        default=None,
        help="local | test | finney | ws://host:port (env BT_NETWORK; default local)",
    )
    g.add_argument(
        "--subtensor.chain_endpoint",
        dest="chain_endpoint",
        default=None,
        help="explicit endpoint, e.g. localchain://127.0.0.1:9944 or wss://... (env BT_CHAIN_ENDPOINT)",
    )
    if axon:
        g.add_argument(
            "--axon.ip",
            dest="axon_ip",
            default=None,
            help="bind address (env DMOE_AXON_IP; default 127.0.0.1)",
        )
        g.add_argument(
            "--axon.port",
            dest="axon_port",
            type=int,
            default=None,
            help="bind port (env DMOE_AXON_PORT; default 8091)",
        )
        g.add_argument(
            "--axon.external_ip",
            dest="axon_external_ip",
            default=None,
            help="address to advertise on chain",
        )
        g.add_argument(
            "--axon.external_port",
            dest="axon_external_port",
            type=int,
            default=None,
            help="port to advertise on chain",
        )
    g.add_argument(
        "--logging.debug",
        dest="logging_debug",
        action="store_true",
        default=None,
        help="debug logs (env DMOE_LOG_DEBUG=1)",
    )
    g.add_argument(
        "--logging.logging_dir",
        dest="logging_dir",
        default=None,
        help="also write logs under this directory",
    )


def _pick(value, env: Mapping[str, str], key: str, default):
    if value is not None:
        return value
    if key in env and env[key] != "":
        return env[key]
    return default


def _as_int(raw, flag: str, lo: int, hi: int) -> int:
    try:
        v = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} must be an integer, got {raw!r}") from None
    if not lo <= v <= hi:
        raise ConfigError(f"{flag} must be in [{lo}, {hi}], got {v}")
    return v


_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def validate_network(network: str) -> str:
    if network in NETWORKS or re.match(r"^(wss?|localchain)://[^\s/]+(:\d+)?/?$", network):
        return network
    raise ConfigError(
        f"--subtensor.network {network!r} is not a network: use one of {', '.join(NETWORKS)}, "
        "ws://host:port, wss://host:port or localchain://host:port"
    )


def common_from_args(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> CommonConfig:
    """Validate flags (with env fallbacks) into a frozen CommonConfig, or raise ConfigError."""
    env = os.environ if env is None else env
    netuid = _as_int(_pick(args.netuid, env, "DMOE_NETUID", 1), "--netuid", 0, 65535)
    name = _pick(args.wallet_name, env, "BT_WALLET_NAME", "default")
    hotkey = _pick(args.wallet_hotkey, env, "BT_WALLET_HOTKEY", "default")
    for flag, v in (("--wallet.name", name), ("--wallet.hotkey", hotkey)):
        if not _NAME.match(v):
            raise ConfigError(f"{flag} {v!r} must be 1-64 letters, digits, '_', '.' or '-'")
    path = Path(_pick(args.wallet_path, env, "BT_WALLET_PATH", DEFAULT_WALLET_PATH)).expanduser()
    network = validate_network(_pick(args.network, env, "BT_NETWORK", "local"))
    endpoint = _pick(args.chain_endpoint, env, "BT_CHAIN_ENDPOINT", None)
    if endpoint is not None:
        validate_network(endpoint)

    axon = AxonConfig()
    if hasattr(args, "axon_port"):
        ip = _pick(args.axon_ip, env, "DMOE_AXON_IP", "127.0.0.1")
        for flag, v in (("--axon.ip", ip), ("--axon.external_ip", args.axon_external_ip)):
            if v is None:
                continue
            try:
                ipaddress.ip_address(v)
            except ValueError:
                raise ConfigError(
                    f"{flag} {v!r} is not an IP address (e.g. 0.0.0.0 or 203.0.113.7)"
                ) from None
        port = _as_int(_pick(args.axon_port, env, "DMOE_AXON_PORT", 8091), "--axon.port", 0, 65535)
        ext_port = args.axon_external_port
        if ext_port is not None:
            ext_port = _as_int(ext_port, "--axon.external_port", 1, 65535)
        axon = AxonConfig(
            ip=ip, port=port, external_ip=args.axon_external_ip, external_port=ext_port
        )

    debug = (
        args.logging_debug if args.logging_debug is not None else env.get("DMOE_LOG_DEBUG") == "1"
    )
    log_dir = Path(args.logging_dir).expanduser() if args.logging_dir else None
    return CommonConfig(
        netuid=netuid,
        wallet=WalletConfig(name=name, hotkey=hotkey, path=path),
        subtensor=SubtensorConfig(network=network, chain_endpoint=endpoint),
        axon=axon,
        logging=LoggingConfig(debug=bool(debug), logging_dir=log_dir),
    )
