"""The localnet's terminal view: one `rich` table built from plain data, redrawn about once a second.

`render(view)` is pure (view in, renderable out) so the same table serves the live dashboard,
`dmoe status`, and the end-of-run summary.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class DashRow:
    uid: int
    role: str
    label: str
    expert: str = "-"
    requests: int | None = None  # validator queries answered by this miner (summed over validators)
    verified_rate: float | None = None  # fraction of checked answers that passed verification
    tokens_per_s: float | None = None
    score: float | None = None  # mean validator score across domains
    incentive: float = 0.0
    dividends: float = 0.0
    emission_rao: int = 0
    stake_rao: int = 0
    serving: bool = True


@dataclass(frozen=True)
class NetView:
    netuid: int
    block: int
    tempo: int
    blocks_until_epoch: int
    epochs_done: int
    epochs_target: int | None
    rows: tuple[DashRow, ...]
    note: str = ""


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render(view: NetView) -> Group:
    target = f"/{view.epochs_target}" if view.epochs_target else ""
    head = Text.assemble(
        ("dmoe localnet", "bold cyan"),
        f"  netuid {view.netuid}   block {view.block}   ",
        (f"epoch {view.epochs_done}{target}", "bold"),
        f"   next epoch in {view.blocks_until_epoch} blocks (tempo {view.tempo})",
    )
    table = Table(show_lines=False, header_style="bold", expand=False)
    for col, justify in (
        ("uid", "right"),
        ("role", "left"),
        ("neuron", "left"),
        ("expert", "left"),
        ("requests", "right"),
        ("verified", "right"),
        ("tok/s", "right"),
        ("score", "right"),
        ("incentive", "right"),
        ("dividends", "right"),
        ("emission α", "right"),
        ("stake α", "right"),
    ):
        table.add_column(col, justify=justify)
    for r in sorted(view.rows, key=lambda r: r.uid):
        style = {"owner": "magenta", "validator": "green", "miner": "yellow"}.get(r.role, "")
        table.add_row(
            str(r.uid),
            Text(r.role, style=style),
            r.label + ("" if r.serving else " (down)"),
            r.expert,
            _num(r.requests, "d"),
            "-" if r.verified_rate is None else f"{r.verified_rate:.0%}",
            _num(r.tokens_per_s, ".0f"),
            _num(r.score, ".3f"),
            f"{r.incentive:.3f}",
            f"{r.dividends:.3f}",
            f"{r.emission_rao / 1e9:.3f}",
            f"{r.stake_rao / 1e9:,.1f}",
        )
    parts = [head, table]
    if view.note:
        parts.append(Text(view.note, style="dim"))
    return Group(*parts)
