"""The mixture as a localnet shows it: per expert, what users were routed to, how good it was, and
what its miners were paid. Pure: plain data in (dashboard rows, the users' served counts, the
validators' per-expert status), `ExpertRow`s out, for the dashboard, the summary and the plot.

Demand-following pay shows as `incentive_share` tracking `routed_share` (with the validators'
floor lifting the experts users rarely ask for): `tracking_gap` is the largest difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ExpertRow:
    expert: str  # the offline expert's name ("code", "math", ...)
    miners: int  # honest miners serving it
    routed_share: float | None  # share of the users' answers its miners served (None: no users)
    demand_share: float | None  # its share of the validators' routed demand (mean over them)
    pass_rate: float | None  # verified / checked answers of its miners, over all validators
    quality: float | None  # mean log-likelihood (nats/token) of the prompts the gate sent it
    incentive_share: float  # its miners' share of all miner incentive

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expert_rows(
    rows: Iterable[Any],
    routed_by_uid: Mapping[int, int] | None = None,
    experts_status: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[ExpertRow, ...]:
    """`rows`: dashboard rows (uid, role, expert, requests, verified_rate, incentive);
    `routed_by_uid`: answers served per uid; `experts_status`: expert name -> the validators'
    merged view (`demand_share`, `quality`), see `merge_status`."""
    miners = [r for r in rows if r.role in ("miner", "cheater") and r.expert != "-"]
    names = sorted({r.expert for r in miners})
    routed = dict(routed_by_uid or {})
    served = sum(routed.values())
    incentive = sum(r.incentive for r in miners)
    status = experts_status or {}
    out = []
    for name in names:
        mine = [r for r in miners if r.expert == name]
        checked = sum(r.requests or 0 for r in mine)
        passed = sum((r.requests or 0) * (r.verified_rate or 0.0) for r in mine)
        s = status.get(name, {})
        out.append(
            ExpertRow(
                expert=name,
                miners=sum(r.role == "miner" for r in mine),
                routed_share=sum(routed.get(r.uid, 0) for r in mine) / served if served else None,
                demand_share=s.get("demand_share"),
                pass_rate=passed / checked if checked else None,
                quality=s.get("quality"),
                incentive_share=sum(r.incentive for r in mine) / incentive if incentive else 0.0,
            )
        )
    return tuple(out)


def merge_status(
    statuses: Iterable[Mapping[str, Any]], expert_of_model: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    """Validators' `/v1/status` "experts" sections -> expert name -> mean demand share and mean
    routed quality over the validators that report them. `expert_of_model`: model id -> name."""
    acc: dict[str, dict[str, list[float]]] = {}
    for st in statuses:
        experts = st.get("experts") or {}
        total = sum(float(e.get("demand") or 0.0) for e in experts.values())
        for model_id, e in experts.items():
            name = expert_of_model.get(model_id)
            if name is None:
                continue
            a = acc.setdefault(name, {"demand_share": [], "quality": []})
            if total > 0:
                a["demand_share"].append(float(e.get("demand") or 0.0) / total)
            if e.get("quality") is not None:
                a["quality"].append(float(e["quality"]))
    return {
        name: {k: sum(v) / len(v) for k, v in a.items() if v} for name, a in sorted(acc.items())
    }


def mean_incentive_shares(history: Iterable[Any]) -> dict[str, float]:
    """Expert name -> its miners' share of miner incentive, averaged over epochs (one epoch's
    incentive is noisy: Yuma over a few validators' samples). `history`: `EpochRow`s whose
    miner labels end in "(expert)"."""
    totals: dict[str, float] = {}
    epochs = 0
    for row in history:
        miners = [u for u in row.uids if u.role in ("miner", "cheater") and "(" in u.label]
        paid = sum(u.incentive for u in miners)
        if paid <= 0:
            continue
        epochs += 1
        for u in miners:
            name = u.label.rsplit("(", 1)[-1].rstrip(")")
            totals[name] = totals.get(name, 0.0) + u.incentive / paid
    return {name: t / epochs for name, t in sorted(totals.items())} if epochs else {}


def with_incentive(rows: Iterable[ExpertRow], shares: Mapping[str, float]) -> tuple[ExpertRow, ...]:
    """The rows with `incentive_share` replaced where `shares` has the expert."""
    return tuple(
        replace(r, incentive_share=shares[r.expert]) if r.expert in shares else r for r in rows
    )


def tracking_gap(rows: Iterable[ExpertRow], floor: float = 0.2) -> float | None:
    """Largest |incentive share - expected share| over experts, where the expected share is the
    floor spread evenly plus the rest by routed share (the validators' `demand_shares`)."""
    rows = [r for r in rows if r.routed_share is not None]
    if not rows:
        return None
    even = floor / len(rows)
    return max(abs(r.incentive_share - (even + (1 - floor) * r.routed_share)) for r in rows)


def mixture_table(rows: Iterable[ExpertRow]) -> str:
    """The summary's plain-text table of the mixture."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.0%}"

    lines = [
        f"{'expert':<9} {'miners':>6} {'routed':>7} {'demand':>7} {'verified':>8} "
        f"{'quality':>8} {'incentive':>9}"
    ]
    for r in rows:
        quality = "-" if r.quality is None else f"{r.quality:.2f}"
        lines.append(
            f"{r.expert:<9} {r.miners:>6} {pct(r.routed_share):>7} {pct(r.demand_share):>7} "
            f"{pct(r.pass_rate):>8} {quality:>8} {pct(r.incentive_share):>9}"
        )
    return "\n".join(lines)
