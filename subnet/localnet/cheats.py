"""Verdicts on a localnet run with cheating miners (`dmoe localnet --adversaries ...`).

Pure functions over what the run left behind: the last epoch's incentives (honest miners must
take at least `HONEST_SHARE` of what miners earn; honest work under a lie is compared on the
later half of the epochs, averaged: `settled`) and the validators' logs, where every zero
score is a line `uid N <domain> scored 0: <reason> <detail>` (`subnet.validator.loop`). Each
cheater gets a summary line with the reasons the validators gave; one no validator ever scored
zero is reported as not caught.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from subnet.localnet.history import EpochRow

HONEST_SHARE = 0.95
_ZERO = re.compile(r"uid (\d+) \S+ scored 0: (\S+)")


def zero_reasons(log_lines: Iterable[str]) -> dict[int, Counter[str]]:
    """uid -> how often each reason was given for a zero score."""
    out: dict[int, Counter[str]] = {}
    for line in log_lines:
        m = _ZERO.search(line)
        if m:
            out.setdefault(int(m.group(1)), Counter())[m.group(2)] += 1
    return out


def reasons_from_logs(log_paths: Iterable[Path]) -> dict[int, Counter[str]]:
    merged: dict[int, Counter[str]] = {}
    for path in log_paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for uid, c in zero_reasons(text.splitlines()).items():
            merged.setdefault(uid, Counter()).update(c)
    return merged


# Cheats whose work is honest: their lie is a claim (overclaim: every domain on its card) or a
# second hotkey on one engine (sybil, with its base). They must earn no more than honest work,
# not nothing: they count with the honest miners and are checked against the best of them.
HONEST_WORK = frozenset({"overclaim", "sybil"})
NO_GAIN = 1.2  # ... within this factor of the best honest miner serving the same expert
CHEAT_SHARE = 0.05  # every other cheat: at most this share of an honest miner's incentive


def _label_cheat(label: str) -> str:
    """'cheat-sybil (code)' -> 'sybil'; '' for a non-cheat label."""
    name = label.split(" ", 1)[0]
    return name.removeprefix("cheat-") if name.startswith("cheat-") else ""


def honest_share(row: EpochRow) -> tuple[float, float]:
    """(honest work's incentive, cheaters' incentive) in one epoch."""
    honest = cheat = 0.0
    for u in row.uids:
        if u.role == "miner" or (u.role == "cheater" and _label_cheat(u.label) in HONEST_WORK):
            honest += u.incentive
        elif u.role == "cheater":
            cheat += u.incentive
    return honest, cheat


def settled(history: list[EpochRow]) -> EpochRow:
    """The later half of the run's epochs (validators start with no evidence, and set their
    first weights at different times), each uid's incentive averaged: one epoch of a short run
    on shared cores is noisy."""
    rows = history[len(history) // 2 :]  # the later half: the first epochs are warm-up
    by_uid: dict[int, list[float]] = {}
    for row in rows:
        for u in row.uids:
            by_uid.setdefault(u.uid, []).append(u.incentive)
    last = rows[-1]
    uids = tuple(replace(u, incentive=sum(by_uid[u.uid]) / len(by_uid[u.uid])) for u in last.uids)
    return replace(last, uids=uids)


def _expert(label: str) -> str:
    return label.rsplit("(", 1)[-1].rstrip(")") if "(" in label else "-"


def cheat_checks(
    last: EpochRow, reasons: dict[int, Counter[str]], mean: EpochRow | None = None
) -> list[tuple[str, bool, str]]:
    """The summary's checks for a run with cheaters (none when it had none).

    Cheats are judged on the last epoch (what a caught cheat earns once the evidence of its
    early honest answers has aged). Honest work under a lie (overclaim, sybil) is compared with
    honest miners on `mean` (`settled`: the later half of the epochs, averaged), since the ratio of
    two miners' pay in one epoch of a short run on shared cores is noisy."""
    mean = mean or last
    cheaters = [u for u in last.uids if u.role == "cheater"]
    if not cheaters:
        return []
    honest, cheat = honest_share(last)
    total = honest + cheat
    share = honest / total if total > 0 else 0.0
    paid = ", ".join(
        f"{u.label} {u.incentive:.3f}"
        for u in cheaters
        if u.incentive > 0 and _label_cheat(u.label) not in HONEST_WORK
    )
    checks = [
        (
            f"honest miners take >= {HONEST_SHARE:.0%} of miner incentive",
            total > 0 and share >= HONEST_SHARE,
            f"honest {share:.1%}" + (f"; cheaters paid: {paid}" if paid else "; cheaters 0"),
        )
    ]
    miners = [u for u in last.uids if u.role == "miner" and not u.label.startswith("sybil-base")]
    mean_honest = sum(u.incentive for u in miners) / len(miners) if miners else 0.0
    for u in cheaters:
        name = _label_cheat(u.label)
        if name in HONEST_WORK:
            avg = {m.uid: m.incentive for m in mean.uids}
            # Honest engines of the same expert: honest miners, and the other honest-work
            # cheats that run one engine on one hotkey (overclaim: its lie is proven not to pay).
            engines = [*miners, *(c for c in cheaters if _label_cheat(c.label) == "overclaim")]
            same = [
                avg.get(m.uid, 0.0)
                for m in engines
                if m.uid != u.uid and _expert(m.label) == _expert(u.label)
            ]
            best = max(same, default=mean_honest)
            mine = avg.get(u.uid, 0.0) + sum(
                avg.get(m.uid, 0.0) for m in last.uids if m.label.startswith(f"{name}-base")
            )
            what = "with its base miner " if name == "sybil" else ""
            checks.append(
                (
                    f"{u.label} {what}earns no more than honest work",
                    mine <= NO_GAIN * best + 1e-9,
                    f"{mine:.3f} vs best honest {best:.3f}",
                )
            )
            continue
        got = reasons.get(u.uid, Counter())
        detail = ", ".join(f"{r}×{n}" for r, n in got.most_common()) or "never scored 0"
        checks.append((f"{u.label} caught by validators", bool(got), detail))
        checks.append(
            (
                f"{u.label} earns <= {CHEAT_SHARE:.0%} of an honest miner",
                u.incentive <= CHEAT_SHARE * mean_honest + 1e-9,
                f"{u.incentive:.4f} vs honest mean {mean_honest:.3f}",
            )
        )
    return checks
