"""Localnet plumbing: children die with their process group; summaries judge what they should."""

from __future__ import annotations

import os
import sys
import time

from subnet.localnet.history import EpochRow, UidRow, plot, summarize
from subnet.localnet.procs import ChildDied, ProcessGroup


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


async def test_stop_all_kills_children_and_grandchildren(tmp_path):
    group = ProcessGroup()
    # A child that ignores SIGTERM and spawns a grandchild: only SIGKILL of the group ends both.
    code = (
        "import signal, subprocess, sys, time;"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "open(sys.argv[1], 'w').write(str(p.pid)); time.sleep(60)"
    )
    pidfile = tmp_path / "grandchild.pid"
    child = group.start_argv(
        "stubborn", [sys.executable, "-c", code, str(pidfile)], tmp_path / "c.log"
    )
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text():
            break
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    assert _alive(child.proc.pid) and _alive(grandchild)
    t0 = time.monotonic()
    await group.stop_all(grace=0.5)
    assert time.monotonic() - t0 < 5
    time.sleep(0.2)
    assert not _alive(child.proc.pid)
    assert not _alive(grandchild)
    await group.stop_all(grace=0.5)  # idempotent


async def test_wait_ready_reports_a_dead_child_with_its_log(tmp_path):
    group = ProcessGroup()
    group.start_argv(
        "crasher",
        [sys.executable, "-c", "print('boom: bad flag'); raise SystemExit(3)"],
        tmp_path / "x.log",
    )

    async def never() -> bool:
        return False

    try:
        await group.wait_ready("crasher", never, timeout=10)
    except ChildDied as err:
        assert "boom: bad flag" in str(err) and "3" in str(err)
    else:
        raise AssertionError("expected ChildDied")


def _row(uid, role, inc, div, emi):
    return UidRow(uid, f"hk{uid}", role, f"{role}-{uid}", inc, div, emi, 10**9, role == "validator")


def test_summary_verdicts(tmp_path):
    good = EpochRow(
        1,
        20,
        (
            _row(0, "owner", 0, 0, 0),
            _row(1, "validator", 0, 1.0, 410),
            _row(2, "miner", 0.6, 0, 245),
            _row(3, "miner", 0.4, 0, 164),
        ),
        minted_rao=1000,
        owner_cut_rao=180,
    )
    s = summarize([good])
    assert s.ok, s.checks
    bad = EpochRow(
        2,
        40,
        (
            _row(1, "validator", 0, 0.0, 500),
            _row(2, "miner", 1.0, 0, 400),
            _row(3, "miner", 0.0, 0, 0),
        ),
        minted_rao=1000,
    )
    s = summarize([bad])
    failed = {what for what, ok, _ in s.checks if not ok}
    assert failed == {
        "every miner has non-zero incentive",
        "every validator earns dividends",
        "the owner received its cut",
        "emissions add up to what was minted",
    }
    out = plot([good, bad], tmp_path / "p.png")
    assert out.stat().st_size > 5000
