"""`dmoe owner`: subnet owner tools, one argparse subcommand each.

Add a subcommand by writing an `_add_<name>(subparsers)` function that registers its parser
with `set_defaults(func=...)` and appending it to `SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from subnet.consensus import MODES


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="run Yuma Consensus epochs offline on a case file or a recorded state",
        description="Run N Yuma epochs on FILE (a validators x miners case or a recorded "
        "local-chain state) and print incentive, dividends and emission per uid.",
    )
    p.add_argument("file", help="JSON case ({'epochs': [...]}) or recorded state ({'state': ...})")
    p.add_argument("--epochs", type=int, default=None, help="epochs to run (default: the file's)")
    p.add_argument("--json", action="store_true", help="print per-epoch results as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="write incentive/dividends over epochs")
    p.add_argument("--mode", choices=MODES, default="float64", help="arithmetic (default float64)")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from subnet.owner import simulate

    try:
        if args.epochs is not None and not 1 <= args.epochs <= simulate.MAX_EPOCHS:
            raise simulate.SimulationError(f"--epochs must be in [1, {simulate.MAX_EPOCHS}]")
        if args.plot:
            simulate.check_plot_path(args.plot)  # before the epochs run, not after
        sim = simulate.load(args.file)
        results = simulate.run(sim, args.epochs, args.mode)
    except simulate.SimulationError as e:
        print(f"dmoe owner simulate: {e}", file=sys.stderr)
        return 2
    if args.plot:
        simulate.plot(sim, results, args.plot)
    if args.json:
        print(json.dumps(simulate.to_json(sim, results)))
        return 0
    from rich.console import Console

    console = Console()
    last = results[-1]
    title = f"epoch {len(results) - 1} ({'Yuma 3' if sim.params.yuma3 else 'Yuma 2'}, {args.mode})"
    console.print(simulate.render_table(sim, last, title))
    console.print(f"emission per epoch: {sim.rao_emission:,} rao; unpaid dust: {last.dust} rao")
    if args.plot:
        console.print(f"plot written to {args.plot}")
    return 0


def _chain_parser(sub: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    from subnet.config import add_common_args

    p = sub.add_parser(name, help=help, description=help)
    add_common_args(p, axon=False)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _add_chain_commands(sub: argparse._SubParsersAction) -> None:
    _chain_parser(sub, "create", "register a new subnet owned by --wallet.name").set_defaults(
        func=_chain, op="create"
    )
    _chain_parser(sub, "start", "start emissions on --netuid (start_call)").set_defaults(
        func=_chain, op="start"
    )
    _chain_parser(sub, "register", "burned-register --wallet.hotkey on --netuid").set_defaults(
        func=_chain, op="register"
    )
    _chain_parser(sub, "status", "the metagraph of --netuid as a table").set_defaults(
        func=_chain, op="status"
    )
    hp = sub.add_parser("hparams", help="read or set hyperparameters")
    hsub = hp.add_subparsers(dest="hcmd", required=True, metavar="get|set")
    _chain_parser(hsub, "get", "print --netuid's hyperparameters").set_defaults(
        func=_chain, op="hparams-get"
    )
    p = _chain_parser(hsub, "set", "set one hyperparameter (raw chain units)")
    p.add_argument("--name", required=True, help="e.g. tempo, kappa, weights_rate_limit")
    p.add_argument("--value", required=True)
    p.add_argument(
        "--sudo-uri",
        default=None,
        help="sign root-only changes with this dev key URI (local chains: //Alice)",
    )
    p.set_defaults(func=_chain, op="hparams-set")


# Which operations sign, and with which key (the coldkey pays or owns; publish signs as hotkey).
_SIGNS = {"create", "start", "register", "hparams-set", "registry-publish"}
_COLDKEY = {"create", "start", "register", "hparams-set"}


def _chain(args: argparse.Namespace) -> int:
    """Every cheap check (flags, wallet, sudo key, registry file) runs before connecting;
    failures raise ConfigError/PreflightError/OwnerError, one line each via `subnet.cli`."""
    import asyncio

    from subnet import preflight
    from subnet.config import common_from_args

    cfg = common_from_args(args)
    sudo = _sudo_key(args.sudo_uri) if getattr(args, "sudo_uri", None) else None
    registry = _registry_file(args.file) if args.op == "registry-publish" else None
    wallet = None
    if args.op in _SIGNS:
        wallet = preflight.load_wallet(cfg.wallet, cfg.subtensor, coldkey=args.op in _COLDKEY)
    out = asyncio.run(_chain_op(args, cfg, wallet, sudo, registry))
    if args.json:
        print(json.dumps(out, default=str))
    else:
        _print_human(args.op, out)
    return 0


def _sudo_key(uri: str):
    from bittensor.sp_core import Keypair

    from subnet.owner.tools import OwnerError

    try:
        return Keypair.create_from_uri(uri)
    except ValueError:
        raise OwnerError(
            f"--sudo-uri {uri!r} is not a key URI (a local chain's sudo key is //Alice)"
        ) from None


def _registry_file(path: Path):
    from subnet.owner.registry import load

    return load(path)  # RegistryError names the problem


async def _chain_op(args: argparse.Namespace, cfg, wallet, sudo, registry) -> dict:
    import asyncio

    from subnet.owner import tools
    from subnet.preflight import connected

    async with connected(cfg.subtensor) as client:
        if args.op == "create":
            return {"netuid": await tools.create_subnet(client, wallet)}
        if args.op == "start":
            await tools.start_subnet(client, wallet, cfg.netuid)
            return {"netuid": cfg.netuid, "started": True}
        if args.op == "register":
            return {"netuid": cfg.netuid, "uid": await tools.register(client, wallet, cfg.netuid)}
        if args.op == "status":
            return await asyncio.wait_for(tools.status(client, cfg.netuid), 30)
        if args.op == "registry-publish":
            await tools.publish_registry(client, wallet, cfg.netuid, registry)
            return {
                "netuid": cfg.netuid,
                "registry": registry.version,
                "sha256": registry.digest(),
            }
        if args.op == "hparams-get":
            return await tools.get_hyperparameters(client, cfg.netuid)
        await tools.set_hyperparameter(client, wallet, cfg.netuid, args.name, args.value, sudo=sudo)
        return {
            "netuid": cfg.netuid,
            args.name: (await tools.get_hyperparameters(client, cfg.netuid)).get(args.name),
        }


def _print_human(op: str, out: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if op == "status":
        console.print(
            f"subnet {out['netuid']}  block {out['block']}  tempo {out['tempo']}  "
            f"({out['blocks_since_last_step']} blocks since the last epoch)"
        )
        t = Table(header_style="bold")
        for col in (
            "uid",
            "hotkey",
            "permit",
            "stake α",
            "incentive",
            "dividends",
            "emission α",
            "axon",
            "expert",
        ):
            t.add_column(col)
        for n in out["neurons"]:
            t.add_row(
                str(n["uid"]),
                n["hotkey"][:10] + "…",
                "✓" if n["validator_permit"] else "",
                f"{n['stake_alpha']:,.2f}",
                f"{n['incentive']:.4f}",
                f"{n['dividends']:.4f}",
                f"{n['emission_alpha']:.4f}",
                n["axon"] or "-",
                n["expert"] or "-",
            )
        console.print(t)
    elif op == "hparams-get":
        t = Table("hyperparameter", "value", header_style="bold")
        for k, v in sorted(out.items()):
            t.add_row(k, str(v))
        console.print(t)
    else:
        console.print(" ".join(f"{k}={v}" for k, v in out.items()))


def _add_registry(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser("registry", help="build or publish the expert registry")
    rsub = rp.add_subparsers(dest="rcmd", required=True, metavar="build|publish")
    b = rsub.add_parser("build", help="write a registry of the experts under a directory")
    b.add_argument("--experts.dir", dest="experts_dir", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--version", type=int, default=1, help="bump on every change")
    b.set_defaults(func=_registry_build)
    p = _chain_parser(rsub, "publish", "commit the registry's digest from the owner hotkey")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_chain, op="registry-publish")


def _registry_build(args: argparse.Namespace) -> int:
    from subnet.owner.registry import RegistryError, build_from_dir, save

    if not args.out.parent.is_dir():
        raise RegistryError(f"--out {args.out}: folder {args.out.parent} does not exist")
    if args.out.is_dir():
        raise RegistryError(
            f"--out {args.out} is a directory; give a file name, e.g. registry.json"
        )
    reg = build_from_dir(args.experts_dir, args.version)
    save(reg, args.out)
    print(f"{args.out}: version {reg.version}, {len(reg.experts)} experts, sha256 {reg.digest()}")
    return 0


SUBCOMMANDS = [_add_simulate, _add_chain_commands, _add_registry]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmoe owner", description="subnet owner tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
