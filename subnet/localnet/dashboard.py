"""The localnet's terminal view: one `rich` table built from plain data, redrawn about once a second.

`render(view)` is pure (view in, renderable out) so the same table serves the live dashboard,
`dmoe status`, and the end-of-run summary.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
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
    experts: tuple = ()  # subnet.localnet.mixture.ExpertRow per expert: the mixture's view
    note: str = ""


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render(view: NetView) -> Group:
    target = f"/{view.epochs_target}" if view.epochs_target else ""
    head = Text.assemble(
        ("dmoe localnet", "bold cyan"),
        f"  subnet {view.netuid} · block {view.block} · ",
        (f"epoch {view.epochs_done}{target}", "bold"),
        f" · next in {view.blocks_until_epoch}/{view.tempo} blocks",
    )
    # Compact enough for an 80-column terminal: no vertical rules, short headers.
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, collapse_padding=True)
    for col in (
        "uid",
        "neuron",
        "reqs",
        "ok",
        "tok/s",
        "score",
        "incent",
        "divid",
        "emit α",
        "stake α",
    ):
        table.add_column(col, justify="left" if col == "neuron" else "right", no_wrap=True)
    for r in sorted(view.rows, key=lambda r: r.uid):
        style = {"owner": "magenta", "validator": "green", "miner": "yellow"}.get(r.role, "")
        name = r.label if r.expert == "-" else f"{r.label} {r.expert}"
        table.add_row(
            str(r.uid),
            Text(name + ("" if r.serving else " down"), style=style),
            _num(r.requests, "d"),
            "-" if r.verified_rate is None else f"{r.verified_rate:.0%}",
            _num(r.tokens_per_s, ".0f"),
            _num(r.score, ".3f"),
            f"{r.incentive:.3f}",
            f"{r.dividends:.3f}",
            f"{r.emission_rao / 1e9:.3f}",
            f"{r.stake_rao / 1e9:,.0f}",
        )
    parts = [head, table]
    if view.experts:
        parts.append(_experts_table(view.experts))
    if view.note:
        parts.append(Text(view.note, style="dim"))
    return Group(*parts)


def _experts_table(experts) -> Table:
    """Per expert: users routed to it, its share of demand, quality, and its miners' pay."""
    t = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, collapse_padding=True)
    for col in ("expert", "miners", "routed", "demand", "ok", "quality", "incent"):
        t.add_column(col, justify="left" if col == "expert" else "right", no_wrap=True)
    pct = lambda v: "-" if v is None else f"{v:.0%}"  # noqa: E731
    for e in experts:
        t.add_row(
            e.expert,
            str(e.miners),
            pct(e.routed_share),
            pct(e.demand_share),
            pct(e.pass_rate),
            _num(e.quality, ".2f"),
            pct(e.incentive_share),
        )
    return t
