"""Verdicts on a localnet run with cheating miners (`dmoe localnet --adversaries ...`).

Pure functions over what the run left behind: the last epoch's incentives (honest miners must
take at least `HONEST_SHARE` of what miners earn) and the validators' logs, where every zero
score is a line `uid N <domain> scored 0: <reason> <detail>` (`subnet.validator.loop`). Each
cheater gets a summary line with the reasons the validators gave; one no validator ever scored
zero is reported as not caught.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
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


def honest_share(row: EpochRow) -> tuple[float, float]:
    """(honest miners' incentive, cheaters' incentive) in one epoch."""
    honest = sum(u.incentive for u in row.uids if u.role == "miner")
    cheat = sum(u.incentive for u in row.uids if u.role == "cheater")
    return honest, cheat


def cheat_checks(last: EpochRow, reasons: dict[int, Counter[str]]) -> list[tuple[str, bool, str]]:
    """The summary's checks for a run with cheaters (none when it had none)."""
    cheaters = [u for u in last.uids if u.role == "cheater"]
    if not cheaters:
        return []
    honest, cheat = honest_share(last)
    total = honest + cheat
    share = honest / total if total > 0 else 0.0
    paid = ", ".join(f"{u.label} {u.incentive:.3f}" for u in cheaters if u.incentive > 0)
    checks = [
        (
            f"honest miners take >= {HONEST_SHARE:.0%} of miner incentive",
            total > 0 and share >= HONEST_SHARE,
            f"honest {share:.1%}" + (f"; cheaters paid: {paid}" if paid else "; cheaters 0"),
        )
    ]
    for u in cheaters:
        got = reasons.get(u.uid, Counter())
        detail = ", ".join(f"{r}×{n}" for r, n in got.most_common()) or "never scored 0"
        checks.append((f"{u.label} caught by validators", bool(got), detail))
    return checks
