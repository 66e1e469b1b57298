"""Every cheat of `subnet.miner.adversary` as a real miner process on a localnet, next to honest
miners, two validators and simulated users, for a few epochs: honest work takes at least 95% of
miner incentive, every cheat that does not do honest work earns at most 5% of an honest miner's
and is scored zero by a validator with its reason, and the ones that do honest work under a lie
(overclaim, sybil) earn no more than honest work (the summary's checks, from the validators' logs
and the last epoch's incentives; honest work under a lie against the later half of the epochs).

Both modes run every cheat (the old ones and each class of issue 13) as a miner process. The
short mode runs in the default suite (CI, every landing) on the `test`-size experts with four 30 s
epochs; the long mode (`-m slow`) on the default experts with longer epochs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from subnet.miner.adversary import ADVERSARIES
from tests.faults.reliability import record

ROOT = Path(__file__).resolve().parents[2]
SHORT = tuple(ADVERSARIES)  # every cheat, also in the short mode (issue 13: proof on every landing)


def _run(
    data: Path, experts: Path, size: str, cheats: tuple[str, ...], *, tempo: int, epochs: int
) -> tuple[dict, str]:
    cmd = [sys.executable, "-m", "subnet.cli", "localnet", "--data-dir", str(data),
           "--experts-dir", str(experts), "--experts-size", size,
           "--miners", "2", "--validators", "2", "--adversaries", ",".join(cheats),
           "--users-rps", "1", "--block-time", "1", "--tempo", str(tempo),
           "--epochs", str(epochs), "--no-dashboard", "--fresh"]  # fmt: skip
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    out = proc.stdout + proc.stderr
    assert (data / "summary.json").is_file(), out[-4000:]
    summary = json.loads((data / "summary.json").read_text())
    summary["returncode"] = proc.returncode
    return summary, out


def _check(summary: dict, data: Path, out: str, name: str, cheats: tuple[str, ...]) -> None:
    last = json.loads((data / "history.json").read_text())[-1]
    table = [
        {"label": u["label"], "role": u["role"], "incentive": u["incentive"]}
        for u in last["uids"]
        if u["role"] in ("miner", "cheater")
    ]
    record(name, {"epochs": summary["epochs"], "seconds": summary.get("seconds"),
                  "checks": summary["checks"], "table": table,
                  "last_weights": _last_weights(data, last),
                  "users": summary.get("users")})  # fmt: skip
    failed = [c for c in summary["checks"] if not c["ok"]]
    assert not failed, (failed, out[-3000:])
    checked = " ".join(c["what"] for c in summary["checks"])
    for cheat in cheats:
        assert f"cheat-{cheat} " in checked, cheat  # every cheat has its verdicts
    assert summary["returncode"] == 0, out[-3000:]


def test_cheaters_earn_nothing_short(tmp_path, tiny_experts):
    data = tmp_path / "ln"
    experts = Path(tiny_experts["code"]).parent
    summary, out = _run(data, experts, "test", SHORT, tempo=30, epochs=4)
    _check(summary, data, out, "localnet_adversaries", SHORT)


@pytest.mark.slow
def test_cheaters_earn_nothing_long(tmp_path):
    from subnet.engine.experts import build_tiny_experts

    experts = build_tiny_experts(Path(tempfile.gettempdir()) / "dmoe-default-experts")
    data = tmp_path / "ln"
    cheats = tuple(ADVERSARIES)
    summary, out = _run(data, Path(experts["code"]).parent, "default", cheats, tempo=60, epochs=5)
    _check(summary, data, out, "localnet_adversaries_long", cheats)


def _last_weights(data: Path, last: dict) -> dict[str, dict[str, float]]:
    """Each validator's last weight vector (from its log), by miner label: what it paid before
    Yuma's consensus clipped outliers."""
    labels = {u["uid"]: u["label"] for u in last["uids"]}
    out = {}
    for log in sorted((data / "logs").glob("validator-*.log")):
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if "weights set" in ln]
        if lines:
            pairs = re.findall(r"(\d+):([0-9.]+)", lines[-1].split("netuid=")[-1])
            out[log.stem] = {labels.get(int(u), u): float(w) for u, w in pairs}
    return out
