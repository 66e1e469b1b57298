"""`dmoe localnet` configuration: one frozen dataclass, parsed once in `neurons/localnet.py`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from subnet.config import ConfigError

DEFAULT_DATA_DIR = Path(".data/localnet")


@dataclass(frozen=True)
class LocalnetConfig:
    data_dir: Path = DEFAULT_DATA_DIR  # chain db, wallets, logs, validator state, history, plot
    miners: int = 4  # honest miners; they take the offline experts in turn (code, math, general,
    # data, code, ...): four cover the mixture
    validators: int = 2
    block_time: float = 0.25  # seconds per block (subtensor: 12)
    tempo: int = 20  # blocks per epoch
    epochs: int = 4  # stop after this many epochs with every neuron up (0: run until Ctrl-C)
    stake_tao: float = 1000.0  # stake each validator adds to its hotkey
    experts_dir: Path | None = None  # tiny experts cache (default: DATA_DIR/../experts)
    experts_size: str = "default"  # "default" (~1 min to build) or "test" (seconds)
    dashboard: bool = True  # live terminal table; off prints one line per epoch
    fresh: bool = False  # wipe DATA_DIR first instead of resuming from it
    debug: bool = False
    # One extra cheating miner per name (subnet.miner.adversary.ADVERSARIES), for the subnet's
    # own reliability runs: the summary then checks that honest miners take the incentive.
    adversaries: tuple[str, ...] = ()
    # Simulated users (subnet.localnet.users): requests per second over all gateways, and the
    # share of each domain in their prompts (empty: even).
    users_rps: float = 0.5
    users_mix: tuple[tuple[str, float], ...] = ()

    @property
    def experts_path(self) -> Path:
        return self.experts_dir or self.data_dir.parent / "experts"


def add_localnet_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="resumes from here")
    p.add_argument("--miners", type=int, default=4, help="honest miners (4 cover every expert)")
    p.add_argument("--validators", type=int, default=2)
    p.add_argument("--block-time", type=float, default=0.25, help="seconds per block")
    p.add_argument("--tempo", type=int, default=20, help="blocks per epoch")
    p.add_argument("--epochs", type=int, default=4, help="stop after N epochs; 0 = until Ctrl-C")
    p.add_argument("--stake", type=float, default=1000.0, help="TAO each validator stakes")
    p.add_argument("--experts-dir", type=Path, default=None, help="tiny experts cache")
    p.add_argument("--experts-size", choices=["default", "test"], default="default")
    p.add_argument("--no-dashboard", action="store_true", help="plain log lines instead")
    p.add_argument("--fresh", action="store_true", help="wipe the data dir and start over")
    p.add_argument("--logging.debug", dest="debug", action="store_true")
    p.add_argument(
        "--users-rps",
        type=float,
        default=0.5,
        help="simulated user requests per second through the gateways (0: none)",
    )
    p.add_argument(
        "--users-mix",
        default="",
        help="share of each domain in user prompts, e.g. math=8,code=1 (default: even)",
    )
    p.add_argument(
        "--adversaries",
        default="",
        help="comma-separated cheats (subnet.miner.adversary), one extra miner each; 'all' for every one",
    )


def localnet_config_from_args(a: argparse.Namespace) -> LocalnetConfig:
    if not 1 <= a.miners <= 32:
        raise ConfigError(f"--miners must be in [1, 32], got {a.miners}")
    if not 1 <= a.validators <= 16:
        raise ConfigError(f"--validators must be in [1, 16], got {a.validators}")
    if not 0.05 <= a.block_time <= 12:
        raise ConfigError(f"--block-time must be in [0.05, 12] seconds, got {a.block_time}")
    if not 5 <= a.tempo <= 1000:
        raise ConfigError(f"--tempo must be in [5, 1000] blocks, got {a.tempo}")
    if a.epochs < 0:
        raise ConfigError("--epochs must be >= 0 (0 runs until Ctrl-C)")
    if a.stake <= 0:
        raise ConfigError("--stake must be > 0 TAO")
    adversaries = _adversaries(a.adversaries)
    if not 0 <= a.users_rps <= 50:
        raise ConfigError(f"--users-rps must be in [0, 50], got {a.users_rps}")
    return LocalnetConfig(
        data_dir=a.data_dir.expanduser().resolve(),
        miners=a.miners,
        validators=a.validators,
        block_time=a.block_time,
        tempo=a.tempo,
        epochs=a.epochs,
        stake_tao=a.stake,
        experts_dir=a.experts_dir.expanduser().resolve() if a.experts_dir else None,
        experts_size=a.experts_size,
        dashboard=not a.no_dashboard,
        fresh=a.fresh,
        debug=a.debug,
        adversaries=adversaries,
        users_rps=a.users_rps,
        users_mix=_mix(a.users_mix),
    )


def _mix(value: str) -> tuple[tuple[str, float], ...]:
    from subnet.localnet.users import PROMPTS

    out = []
    for part in (p.strip() for p in (value or "").split(",") if p.strip()):
        domain, _, share = part.partition("=")
        try:
            weight = float(share)
        except ValueError:
            weight = -1.0
        if domain not in PROMPTS or not weight >= 0:
            raise ConfigError(
                f"--users-mix: {part!r} is not DOMAIN=SHARE with DOMAIN one of "
                f"{', '.join(PROMPTS)} and SHARE >= 0 (e.g. math=3,code=1)"
            )
        out.append((domain, weight))
    if out and sum(w for _, w in out) <= 0:
        raise ConfigError("--users-mix: at least one share must be > 0")
    return tuple(out)


def _adversaries(value: str) -> tuple[str, ...]:
    from subnet.miner.adversary import ADVERSARIES

    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    if names == ["all"]:
        return ADVERSARIES
    unknown = [n for n in names if n not in ADVERSARIES]
    if unknown:
        raise ConfigError(
            f"--adversaries: unknown {', '.join(unknown)}; choose from {', '.join(ADVERSARIES)} or 'all'"
        )
    if len(set(names)) != len(names):
        raise ConfigError("--adversaries: each name at most once")
    return tuple(names)
