"""The miner's configuration: common subnet flags plus what it serves and whom it serves.

Parsed once in `neurons/miner.py` (`miner_config_from_args`) into a frozen `MinerConfig`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from protocol import MAX_BODY_BYTES, MAX_NEW_TOKENS
from subnet.config import CommonConfig, ConfigError, add_common_args, common_from_args
from subnet.engine.experts import DEFAULT_EXPERTS_DIR, DOMAINS
from subnet.miner.admission import AdmissionPolicy


@dataclass(frozen=True)
class EngineConfig:
    expert: str  # local directory, a tiny expert name (code, math, general, data), or an HF id
    revision: str | None = None  # pinned hub revision (commit sha) for hub ids
    domains: tuple[str, ...] = ()  # declared domains; empty = what the expert card says
    device: str = "auto"  # auto = cuda if available, else cpu
    dtype: str = "auto"  # auto = bfloat16 on GPU, float32 on CPU
    max_batch: int = 32  # sequences decoded together
    max_queue: int = 64  # requests waiting for a slot before 429
    cpu_threads: int | None = 1  # torch threads on CPU (see HFEngine.create)
    stream_interval_s: float = 0.04  # a stream's tokens go out at most this often (HFEngine.create)
    tiny_dir: Path | None = None  # set when `expert` names a tiny expert: build it there if absent


@dataclass(frozen=True)
class ServerConfig:
    max_body_bytes: int = MAX_BODY_BYTES
    max_new_tokens: int = 512  # per request; tighter than the protocol's ceiling
    refresh_s: float = 60.0  # metagraph refresh period
    drain_s: float = 30.0  # graceful shutdown: how long in-flight requests may finish
    policy: AdmissionPolicy = field(default_factory=AdmissionPolicy)


@dataclass(frozen=True)
class MinerConfig:
    common: CommonConfig
    engine: EngineConfig
    server: ServerConfig = field(default_factory=ServerConfig)
    register: bool = False  # burned-register the hotkey if it is not registered
    publish: bool = True  # serve_axon + commit the expert card on start
    adversary: str | None = None  # tests only: a cheat from subnet.miner.adversary
    adversary_target: str = ""  # tests only: copycat's "URL,HOTKEY"


def add_miner_args(parser: argparse.ArgumentParser) -> None:
    add_common_args(parser)
    g = parser.add_argument_group("miner")
    g.add_argument(
        "--expert",
        default=None,
        help="expert dir, tiny expert name (code|math|general|data) or HF id (env DMOE_EXPERT; default code)",
    )
    g.add_argument("--expert.revision", dest="expert_revision", default=None)
    g.add_argument("--expert.domains", dest="expert_domains", default=None, help="comma list")
    g.add_argument("--experts.dir", dest="experts_dir", default=None, help="tiny experts dir")
    g.add_argument("--device", default="auto")
    g.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    g.add_argument("--max-batch", dest="max_batch", type=int, default=32)
    g.add_argument("--max-queue", dest="max_queue", type=int, default=64)
    g.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=512)
    g.add_argument("--cpu-threads", dest="cpu_threads", type=int, default=1)
    g.add_argument(
        "--stream-interval-ms",
        dest="stream_interval_ms",
        type=float,
        default=EngineConfig.stream_interval_s * 1000.0,
        help="send a stream's tokens at most this often (first token and end at once; 0 = each)",
    )
    g.add_argument("--register", action="store_true", help="burned-register if not registered")
    g.add_argument("--no-publish", dest="publish", action="store_false")
    g.add_argument("--min-stake", dest="min_stake", type=float, default=0.0)
    g.add_argument("--no-require-permit", dest="require_permit", action="store_false")
    g.add_argument("--quota-tokens-per-s", dest="quota_tps", type=float, default=2000.0)
    g.add_argument("--metagraph-refresh-s", dest="refresh_s", type=float, default=60.0)
    # Hidden: run a cheating behaviour (subnet.miner.adversary) for the subnet's own tests.
    g.add_argument("--adversary", default=None, help=argparse.SUPPRESS)
    g.add_argument(
        "--adversary.target", dest="adversary_target", default="", help=argparse.SUPPRESS
    )


def miner_config_from_args(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> MinerConfig:
    import os

    env = os.environ if env is None else env
    common = common_from_args(args, env)
    expert = args.expert or env.get("DMOE_EXPERT") or "code"
    experts_dir = Path(args.experts_dir or env.get("DMOE_EXPERTS_DIR") or DEFAULT_EXPERTS_DIR)
    tiny_dir = None
    if expert in DOMAINS:
        tiny_dir = experts_dir.expanduser()
        expert = str(tiny_dir / expert)
    if not 1 <= args.max_batch <= 1024:
        raise ConfigError(f"--max-batch must be in [1, 1024], got {args.max_batch}")
    if not 0 <= args.max_queue <= 65536:
        raise ConfigError(f"--max-queue must be in [0, 65536], got {args.max_queue}")
    if not 1 <= args.max_new_tokens <= MAX_NEW_TOKENS:
        raise ConfigError(f"--max-new-tokens must be in [1, {MAX_NEW_TOKENS}]")
    if not 0 <= args.stream_interval_ms <= 1000:
        raise ConfigError(
            f"--stream-interval-ms must be in [0, 1000], got {args.stream_interval_ms}"
        )
    if args.min_stake < 0 or args.quota_tps <= 0 or args.refresh_s <= 0:
        raise ConfigError("--min-stake must be >= 0; quota and refresh period must be > 0")
    domains = tuple(d.strip() for d in (args.expert_domains or "").split(",") if d.strip())
    return MinerConfig(
        common=common,
        engine=EngineConfig(
            expert=expert,
            revision=args.expert_revision,
            domains=domains,
            device=args.device,
            dtype=args.dtype,
            max_batch=args.max_batch,
            max_queue=args.max_queue,
            cpu_threads=args.cpu_threads or None,
            stream_interval_s=args.stream_interval_ms / 1000.0,
            tiny_dir=tiny_dir,
        ),
        server=ServerConfig(
            max_new_tokens=args.max_new_tokens,
            refresh_s=args.refresh_s,
            policy=AdmissionPolicy(
                require_permit=args.require_permit,
                min_stake=args.min_stake,
                total_tokens_per_s=args.quota_tps,
            ),
        ),
        register=args.register,
        publish=args.publish,
        adversary=args.adversary,
        adversary_target=args.adversary_target,
    )
