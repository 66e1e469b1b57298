"""What a localnet records each epoch, and the checks and plot made from it at the end.

Pure data in, plain data out: `EpochRow`s come from the metagraph after each epoch; `summarize`
turns them into the verdicts a newcomer reads (every honest miner earns, validators earn dividends,
the owner earns its cut, emissions add up); `plot` draws incentive and emission per uid over epochs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class UidRow:
    uid: int
    hotkey: str
    role: str  # "owner" | "validator" | "miner" | "other"
    label: str  # wallet name, e.g. "miner-1 (code)"
    incentive: float
    dividends: float
    emission_rao: int  # alpha rao emitted to this uid in the last epoch
    stake_rao: int
    validator_permit: bool


@dataclass(frozen=True)
class EpochRow:
    epoch: int
    block: int
    uids: tuple[UidRow, ...]
    minted_rao: int = 0  # alpha the chain minted for this subnet over the epoch, if known
    owner_cut_rao: int = 0  # alpha the owner's hotkey gained at this epoch (its cut)


@dataclass
class Summary:
    epochs: int
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (what, ok, detail)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


def summarize(history: list[EpochRow]) -> Summary:
    """Verdicts over the last recorded epoch (and over the run for the owner and emission totals)."""
    s = Summary(epochs=len(history))
    if not history:
        s.checks.append(("at least one epoch ran", False, "no epoch recorded"))
        return s
    last = history[-1]
    miners = [u for u in last.uids if u.role == "miner"]
    validators = [u for u in last.uids if u.role == "validator"]
    zero = [u.label for u in miners if u.incentive <= 0]
    s.checks.append(
        (
            "every miner has non-zero incentive",
            bool(miners) and not zero,
            "all earning" if not zero else f"no incentive: {', '.join(zero)}",
        )
    )
    no_div = [u.label for u in validators if u.dividends <= 0]
    s.checks.append(
        (
            "every validator earns dividends",
            bool(validators) and not no_div,
            "all earning" if not no_div else f"no dividends: {', '.join(no_div)}",
        )
    )
    total_cut = sum(r.owner_cut_rao for r in history)
    s.checks.append(
        ("the owner received its cut", total_cut > 0, f"{total_cut / 1e9:.3f} α over the run")
    )
    checked = [r for r in history if r.minted_rao]
    bad = []
    for r in checked:
        paid = sum(u.emission_rao for u in r.uids if u.role != "owner") + r.owner_cut_rao
        # Each payment is floored to whole rao, so up to one rao per uid may stay unpaid.
        if not 0 <= r.minted_rao - paid <= len(r.uids) + 1:
            bad.append(f"epoch {r.epoch}: minted {r.minted_rao}, paid {paid}")
    if checked:
        s.checks.append(
            (
                "emissions add up to what was minted",
                not bad,
                f"{len(checked)} epochs balance to the rao" if not bad else "; ".join(bad),
            )
        )
    return s


def save(history: list[EpochRow], path: Path) -> None:
    path.write_text(json.dumps([asdict(r) for r in history], indent=1))


def load(path: Path) -> list[EpochRow]:
    if not path.exists():
        return []
    rows = json.loads(path.read_text())
    return [
        EpochRow(
            epoch=r["epoch"],
            block=r["block"],
            uids=tuple(UidRow(**u) for u in r["uids"]),
            minted_rao=r.get("minted_rao", 0),
            owner_cut_rao=r.get("owner_cut_rao", 0),
        )
        for r in rows
    ]


def plot(history: list[EpochRow], path: Path, experts: tuple = ()) -> Path:
    """Incentive and emission (alpha) per uid over epochs, and with `experts` (the mixture's
    `ExpertRow`s) the routing view: per expert, routed share of users beside incentive share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if experts:
        fig, (ax_i, ax_e, ax_r) = plt.subplots(1, 3, figsize=(16, 4.2))
        _routing_panel(ax_r, experts)
    else:
        fig, (ax_i, ax_e) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels: dict[int, str] = {}
    for r in history:
        for u in r.uids:
            labels[u.uid] = f"uid {u.uid} {u.label}"
    epochs = [r.epoch for r in history]
    for uid, label in sorted(labels.items()):
        inc = [next((u.incentive for u in r.uids if u.uid == uid), 0.0) for r in history]
        # The owner's cut is staked to its hotkey rather than paid as uid emission: show it.
        emi = [
            next(
                (
                    r.owner_cut_rao if u.role == "owner" else u.emission_rao
                    for u in r.uids
                    if u.uid == uid
                ),
                0,
            )
            / 1e9
            for r in history
        ]
        ax_i.plot(epochs, inc, marker="o", label=label)
        ax_e.plot(epochs, emi, marker="o", label=label)
    ax_i.set_title("incentive per uid")
    ax_e.set_title("emission per uid (α per epoch; owner: its cut)")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_i, ax_e):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax_e.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _routing_panel(ax, experts: tuple) -> None:
    """Bars per expert: share of users routed to it, of demand, and of miner incentive."""
    names = [e.expert for e in experts]
    x = range(len(names))
    series = (
        ("routed (users)", [e.routed_share or 0.0 for e in experts]),
        ("demand (validators)", [e.demand_share or 0.0 for e in experts]),
        ("incentive", [e.incentive_share for e in experts]),
    )
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series):
        ax.bar([i + (k - 1) * width for i in x], values, width, label=label)
    ax.set_xticks(list(x), names)
    ax.set_ylabel("share")
    ax.set_title("routing: share per expert")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
