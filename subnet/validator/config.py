"""The validator's configuration: common subnet flags plus loop, weights and gateway settings."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from subnet.config import CommonConfig, ConfigError, add_common_args, common_from_args
from subnet.validator.apikeys import KeyFileError, read_keys_file
from subnet.validator.router import RouterConfig
from subnet.validator.sampling import SamplingConfig
from subnet.validator.scoring import ScoringConfig
from subnet.validator.weights import WeightsConfig

DEFAULT_STATE_DIR = "~/.dmoe/validator"


@dataclass(frozen=True)
class LoopConfig:
    step_s: float = 12.0  # one scoring step per this many seconds (about a block on finney)
    query_timeout_s: float = 30.0  # one generation, end to end
    first_token_timeout_s: float = 10.0  # no byte for this long = timeout
    metagraph_refresh_s: float = 60.0
    chain_timeout_s: float = 30.0  # any single chain read
    card_timeout_s: float = 5.0  # GET /v1/card when the chain holds no card
    seed: int | None = None  # task randomness; None = fresh entropy (tests pass a number)
    # How long a step waits for its probes before verifying what has arrived; the rest are
    # verified by a later step. None = max(2 steps, 10 s).
    probe_wait_s: float | None = None
    # A probe keeps its streams busy this long; the verified tokens that arrive within it are
    # the miner's served throughput sample.
    probe_window_s: float = 6.0

    def probe_wait(self, step_s: float) -> float:
        if self.probe_wait_s is not None:
            return self.probe_wait_s
        return max(2 * step_s, 10.0, self.probe_window_s + 4.0)


@dataclass(frozen=True)
class GatewayConfig:
    port: int | None = None  # --gateway.port; None = no gateway
    host: str = "127.0.0.1"  # --gateway.host
    api_keys: tuple[str, ...] = ()  # --gateway.api_keys (comma list) / DMOE_API_KEYS
    # --gateway.api_keys_file / DMOE_API_KEYS_FILE: one key (and optional label) per line,
    # re-read when it changes (see subnet.validator.apikeys); keys stay out of the process list.
    api_keys_file: Path | None = None
    api_keys_reload_s: float = 5.0  # how often the key file's mtime is checked, at most
    requests_per_minute: float = 60.0  # per key
    burst: int = 10  # requests a key may send at once before the rate applies
    max_body_bytes: int = 1 << 20
    max_tokens_cap: int = 512  # larger max_tokens are refused (400)
    # Share of organic answers verified like tasks. A caught cheat loses a tempo of pay, so a
    # miner cheating on n of its organic answers in a tempo is caught with 1 - (1 - p)^n
    # (p = 0.25: 94% at n = 10, 99.9% at n = 25); see docs/THREAT_MODEL.md.
    verify_share: float = 0.25
    request_timeout_s: float = 60.0


VERIFY_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class VerifyConfig:
    # Where and in what precision the reference experts run. "auto": CUDA and bfloat16 when a
    # GPU is present, else CPU and float32. Tolerances follow the pair (miner's card dtype, this).
    device: str = "auto"  # --verify.device auto|cpu|cuda|cuda:N
    dtype: str = "auto"  # --verify.dtype auto|float32|bfloat16|float16


def _check_verify_device(device: str) -> str:
    kind, _, index = device.partition(":")
    if device in ("auto", "cpu", "cuda") or (kind == "cuda" and index.isdigit()):
        return device
    raise ConfigError(f"--verify.device must be auto, cpu, cuda or cuda:N, got {device!r}")


@dataclass(frozen=True)
class ValidatorConfig:
    common: CommonConfig
    experts_dir: Path | None = None  # reference experts; None = build/reuse the tiny experts
    state_path: Path = Path(DEFAULT_STATE_DIR).expanduser() / "state.json"
    # The owner's expert registry (subnet.owner.registry); None = every reference expert counts.
    registry_path: Path | None = None
    loop: LoopConfig = field(default_factory=LoopConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    # Start even if miners will refuse this validator (unregistered, no stake or no permit):
    # it then warns once per tempo. Without it the validator refuses to start, naming the fix.
    allow_no_permit: bool = False
    verify: VerifyConfig = field(default_factory=VerifyConfig)


def add_validator_args(parser: argparse.ArgumentParser) -> None:
    add_common_args(parser, axon=False)
    g = parser.add_argument_group("validator")
    g.add_argument("--dry-run", action="store_true", help="score and log weights, never set them")
    g.add_argument(
        "--experts.dir",
        "--experts-dir",
        dest="experts_dir",
        default=None,
        help="reference experts (default: tiny experts)",
    )
    g.add_argument("--state.path", dest="state_path", default=None, help="scores file")
    g.add_argument(
        "--registry",
        dest="registry_path",
        default=None,
        help="the owner's expert registry file; experts not in it score 0 (unknown_model)",
    )
    g.add_argument("--step-s", type=float, default=None, help="seconds per scoring step")
    g.add_argument(
        "--metagraph-refresh-s",
        dest="refresh_s",
        type=float,
        default=None,
        help="seconds between metagraph reads (default 60)",
    )
    g.add_argument("--sample-size", type=int, default=None, help="miners queried per step")
    g.add_argument("--gateway.port", dest="gateway_port", type=int, default=None)
    g.add_argument("--gateway.host", dest="gateway_host", default=None)
    g.add_argument(
        "--gateway.api_keys",
        dest="gateway_api_keys",
        default=None,
        help="comma-separated API keys (env DMOE_API_KEYS); visible in the process list, so "
        "prefer --gateway.api_keys_file outside localnets",
    )
    g.add_argument(
        "--gateway.api_keys_file",
        dest="gateway_api_keys_file",
        default=None,
        help="file of API keys, one 'KEY [LABEL]' a line, reloaded when it changes "
        "(env DMOE_API_KEYS_FILE)",
    )
    g.add_argument("--gateway.rpm", dest="gateway_rpm", type=float, default=None)
    g.add_argument(
        "--max-probe-streams",
        dest="max_probe_streams",
        type=int,
        default=None,
        help="concurrent tasks per probed miner, at most (default 16; never above our fair "
        "share of its declared capacity)",
    )
    g.add_argument(
        "--probe-window-s",
        dest="probe_window_s",
        type=float,
        default=None,
        help="seconds a probe keeps a miner's share of streams busy (default 6)",
    )
    g.add_argument(
        "--scoring.half-life-blocks",
        dest="half_life_blocks",
        type=float,
        default=None,
        help="evidence half-life in blocks (default: tempo / 5)",
    )
    g.add_argument(
        "--gateway.verify-share",
        dest="gateway_verify_share",
        type=float,
        default=None,
        help="share of organic answers verified like tasks (default 0.25)",
    )
    g.add_argument(
        "--allow-no-permit",
        action="store_true",
        help="start even without registration, stake or validator permit (warns every tempo)",
    )
    g.add_argument(
        "--verify.device",
        dest="verify_device",
        default=None,
        help="device of the reference experts: auto (GPU when present), cpu, cuda, cuda:N",
    )
    g.add_argument(
        "--verify.dtype",
        dest="verify_dtype",
        default=None,
        choices=VERIFY_DTYPES,
        help="precision of the reference experts (auto: bfloat16 on a GPU, else float32)",
    )


def validator_config_from_args(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> ValidatorConfig:
    env = os.environ if env is None else env
    common = common_from_args(args, env)
    if args.step_s is not None and not 0.1 <= args.step_s <= 3600:
        raise ConfigError(f"--step-s must be in [0.1, 3600], got {args.step_s}")
    if args.sample_size is not None and not 1 <= args.sample_size <= 1024:
        raise ConfigError(f"--sample-size must be in [1, 1024], got {args.sample_size}")
    if args.gateway_port is not None and not 0 <= args.gateway_port <= 65535:
        raise ConfigError(f"--gateway.port must be in [0, 65535], got {args.gateway_port}")
    keys_raw = args.gateway_api_keys or env.get("DMOE_API_KEYS", "")
    keys = tuple(k.strip() for k in keys_raw.split(",") if k.strip())
    keys_file_raw = args.gateway_api_keys_file or env.get("DMOE_API_KEYS_FILE")
    keys_file = Path(keys_file_raw).expanduser() if keys_file_raw else None
    from_file = 0
    if keys_file is not None:
        try:
            from_file = len(read_keys_file(keys_file))
        except KeyFileError as err:
            raise ConfigError(f"--gateway.api_keys_file: {err}") from None
    if args.gateway_port is not None and not keys and not from_file:
        raise ConfigError(
            "--gateway.port needs API keys: --gateway.api_keys_file FILE (one key a line), "
            "DMOE_API_KEYS_FILE, --gateway.api_keys K1,K2 or DMOE_API_KEYS"
        )
    experts = Path(args.experts_dir).expanduser() if args.experts_dir else None
    if experts is not None and not experts.is_dir():
        raise ConfigError(f"--experts-dir {experts} is not a directory (dmoe experts build)")
    if args.refresh_s is not None and not 1 <= args.refresh_s <= 3600:
        raise ConfigError(f"--metagraph-refresh-s must be in [1, 3600], got {args.refresh_s}")
    if args.max_probe_streams is not None and not 1 <= args.max_probe_streams <= 256:
        raise ConfigError(f"--max-probe-streams must be in [1, 256], got {args.max_probe_streams}")
    if args.half_life_blocks is not None and not 1 <= args.half_life_blocks <= 100_000:
        raise ConfigError(
            f"--scoring.half-life-blocks must be in [1, 100000], got {args.half_life_blocks}"
        )
    if args.probe_window_s is not None and not 0.1 <= args.probe_window_s <= 600:
        raise ConfigError(f"--probe-window-s must be in [0.1, 600], got {args.probe_window_s}")
    share = args.gateway_verify_share
    if share is not None and not 0.0 <= share <= 1.0:
        raise ConfigError(f"--gateway.verify-share must be in [0, 1], got {share}")
    loop = LoopConfig()
    if args.step_s is not None:
        loop = replace(loop, step_s=args.step_s)
    if args.refresh_s is not None:
        loop = replace(loop, metagraph_refresh_s=args.refresh_s)
    if args.probe_window_s is not None:
        loop = replace(loop, probe_window_s=args.probe_window_s)
    sampling = SamplingConfig()
    if args.sample_size:
        sampling = replace(sampling, per_step=args.sample_size)
    if args.max_probe_streams:
        sampling = replace(sampling, max_probe_streams=args.max_probe_streams)
    gw = GatewayConfig(
        port=args.gateway_port,
        host=args.gateway_host or "127.0.0.1",
        api_keys=keys,
        api_keys_file=keys_file,
        requests_per_minute=args.gateway_rpm or GatewayConfig.requests_per_minute,
        verify_share=GatewayConfig.verify_share if share is None else share,
    )
    state_path = (
        Path(args.state_path).expanduser()
        if args.state_path
        else Path(DEFAULT_STATE_DIR).expanduser()
        / f"{common.wallet.name}-{common.wallet.hotkey}-{common.netuid}.json"
    )
    verify = VerifyConfig(
        device=_check_verify_device(getattr(args, "verify_device", None) or "auto"),
        dtype=getattr(args, "verify_dtype", None) or "auto",
    )
    return ValidatorConfig(
        common=common,
        experts_dir=experts,
        state_path=state_path,
        registry_path=Path(args.registry_path).expanduser() if args.registry_path else None,
        loop=loop,
        sampling=sampling,
        scoring=ScoringConfig(half_life_blocks=args.half_life_blocks),
        weights=WeightsConfig(dry_run=bool(args.dry_run)),
        gateway=gw,
        allow_no_permit=bool(getattr(args, "allow_no_permit", False)),
        verify=verify,
    )
