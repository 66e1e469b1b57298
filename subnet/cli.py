"""The `dmoe` console script: one command, a subcommand per process or tool.

Each subcommand lives in its own module exposing `main(argv: list[str]) -> int`; importing lazily
keeps `dmoe --help` fast and lets a tool that needs torch not slow down one that does not.

This is also the one error path: an expected failure (a bad value, a missing wallet, a chain
that does not answer, a port in use...) escaping a subcommand becomes one line, `dmoe <command>:
<cause and fix>`, and a non-zero exit (`explain`). Anything else is a bug and keeps its
traceback, as does everything under `--logging.debug` (or DMOE_LOG_DEBUG=1).
"""

from __future__ import annotations

import difflib
import errno
import importlib
import os
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
# Words after the command that name a sub-command, so messages say `dmoe owner hparams set:`.
_SUBWORDS = frozenset(
    "faucet create start register status hparams get set registry build publish simulate".split()
)
DEBUG_FLAGS = ("--logging.debug", "--debug")

# Operator errors raised by dmoe's own modules: (module, class, exit code). Looked up in
# sys.modules, so explaining an error never imports anything the command did not.
_OWN_ERRORS = (
    ("subnet.config", "ConfigError", 2),
    ("subnet.owner.simulate", "SimulationError", 2),
    ("subnet.owner.registry", "RegistryError", 2),
    ("subnet.chain.local.genesis", "GenesisError", 2),
    ("subnet.engine.loading", "ExpertLoadError", 2),
    ("subnet.preflight", "PreflightError", 1),
    ("subnet.owner.tools", "OwnerError", 1),
    ("subnet.miner.chain", "NotRegistered", 1),
    ("subnet.miner.chain", "ChainCallFailed", 1),
    ("subnet.chain.devnet", "BootstrapError", 1),
    ("subnet.chain.local.datadir", "DataDirBusy", 1),
)


def usage() -> str:
    lines = ["usage: dmoe <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {doc}" for name, (_, doc) in SUBCOMMANDS.items()]
    lines += ["", "Run `dmoe <command> --help` for a command's options."]
    return "\n".join(lines)


def _is(err: BaseException, module: str, name: str) -> bool:
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(err, cls)


def explain(err: BaseException) -> tuple[int, str] | None:
    """(exit code, one line naming the cause and the fix) for an expected failure, else None."""
    for module, name, code in _OWN_ERRORS:
        if _is(err, module, name):
            return code, _one_line(str(err))
    if _is(err, "bittensor", "ChainError"):
        from subnet.preflight import chain_hint, root_cause

        if "unreachable" in err.message:
            return 1, (
                f"the chain does not answer ({root_cause(err)}): start it (`dmoe chain "
                "--data-dir DIR`, or `dmoe localnet`) or check --subtensor.chain_endpoint"
            )
        hint = chain_hint(err.message, getattr(err, "name", None))
        return 1, _one_line(f"the chain refused: {err.message}" + (f"; {hint}" if hint else ""))
    if _is(err, "bittensor", "RpcConnectionError"):
        return 1, _one_line(
            f"cannot reach the chain ({err}): check the network or --subtensor.chain_endpoint"
        )
    if _is(err, "bittensor_core", "WrongPasswordError"):
        return 1, "wrong password for the key: try again (or check the BT_PW_* variable you set)"
    if _is(err, "bittensor_core", "KeyfileError"):
        return 1, _one_line(
            f"cannot read the wallet key ({err}): check --wallet.* or regenerate it"
        )
    if _is(err, "bittensor", "BittensorError"):
        return 1, _one_line(str(err))
    if isinstance(err, EOFError):
        return 1, (
            "a prompt (a key's password?) got no input because there is no terminal: run the "
            "command in a terminal, or set the key's BT_PW_* variable"
        )
    if isinstance(err, TimeoutError):
        return 1, "timed out waiting for the chain or a peer: check that it runs and is reachable"
    if isinstance(err, OSError):
        return 1, _os_error(err)
    if _is(err, "aiohttp", "ClientError"):
        return 1, _one_line(f"HTTP request failed ({type(err).__name__}: {err})")
    return None


def _os_error(err: OSError) -> str:
    if err.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and not err.filename:
        return _one_line(f"cannot listen: {err.strerror or err}: pick another port or address")
    text = str(err.filename or "")
    if (err.errno == errno.ENOENT and "keyfile" in str(err)) or "/wallets/" in text:
        return _one_line(
            f"wallet key missing ({err}): create it with `btcli wallet create` or pass "
            "--wallet.name / --wallet.hotkey / --wallet.path"
        )
    where = f": {err.filename}" if err.filename else ""
    return _one_line(f"{err.strerror or err}{where}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _prefix(name: str, rest: list[str]) -> str:
    words = [name]
    for word in rest[:2]:
        if word not in _SUBWORDS:
            break
        words.append(word)
    return "dmoe " + " ".join(words)


def _debug(rest: list[str]) -> bool:
    return os.environ.get("DMOE_LOG_DEBUG") == "1" or any(f in rest for f in DEBUG_FLAGS)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        close = difflib.get_close_matches(name, SUBCOMMANDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        print(f"dmoe: unknown command {name!r}; {hint}`dmoe --help` lists them", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(SUBCOMMANDS[name][0])
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        print(f"\n{_prefix(name, rest)}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        explained = explain(err)
        if explained is None or _debug(rest):
            raise
        code, message = explained
        print(f"{_prefix(name, rest)}: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
