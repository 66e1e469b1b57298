"""`dmoe owner`: subnet owner tools, one argparse subcommand each.

Add a subcommand by writing an `_add_<name>(subparsers)` function that registers its parser
with `set_defaults(func=...)` and appending it to `SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import sys

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

    if args.epochs is not None and args.epochs < 1:
        print("dmoe owner simulate: --epochs must be >= 1", file=sys.stderr)
        return 2
    try:
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


SUBCOMMANDS = [_add_simulate]


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
