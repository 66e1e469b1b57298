"""The `dmoe` console script: one command, a subcommand per process or tool.

Each subcommand lives in its own module exposing `main(argv: list[str]) -> int`; importing lazily
keeps `dmoe --help` fast and lets a tool that needs torch not slow down one that does not.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "chain": ("neurons.chain", "run the local chain server (and `dmoe chain faucet` to fund keys)"),
    "miner": ("neurons.miner", "serve an expert model to validators"),
    "validator": (
        "neurons.validator",
        "score miners, set weights, serve the OpenAI-compatible gateway",
    ),
    "localnet": (
        "neurons.localnet",
        "run a whole local subnet: chain, miners, validators, dashboard",
    ),
    "status": ("neurons.status", "one-shot view of a running localnet"),
    "owner": (
        "neurons.owner",
        "subnet owner tools: create, start, hparams, register, status, simulate",
    ),
    "experts": ("neurons.experts", "build the offline tiny experts"),
    "btcli": ("neurons.btcli", "the SDK's btcli, pointed at the local chain"),
    "bench": ("neurons.bench", "run a benchmark from scripts/bench_*.py"),
}


def usage() -> str:
    lines = ["usage: dmoe <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {doc}" for name, (_, doc) in SUBCOMMANDS.items()]
    lines += ["", "Run `dmoe <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"dmoe: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
