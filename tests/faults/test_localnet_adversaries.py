"""Two honest miners and one miner per cheat, as real processes on a localnet, for several epochs:
the honest miners take at least 95% of miner incentive, and every cheater is scored zero by a
validator with its reason (the summary's checks, built from the validators' logs)."""

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


@pytest.mark.slow
def test_honest_miners_take_the_incentive_and_every_cheat_is_caught(tmp_path):
    from subnet.engine.experts import build_tiny_experts

    # The localnet's default experts (~1.4M parameters, cached after a ~1 min first build). With
    # the smaller `test` experts a continuation barely depends on the prompt, so the replayer's
    # stale answers pass verification and it is paid (docs/RELIABILITY.md, known limits).
    experts = build_tiny_experts(Path(tempfile.gettempdir()) / "dmoe-default-experts")
    data = tmp_path / "ln"
    # A validator step waits for every miner it queried, so the dripping and hanging cheaters
    # stretch each step to the 30 s query timeout, and weights are only set between steps, in
    # the second half of a tempo. A 70 s tempo (1 s blocks) leaves a 35 s window, so every
    # validator sets weights once per epoch; with a 15 s tempo its 30 s steps phase-lock to the
    # tempo and can miss the window every time.
    cmd = [sys.executable, "-m", "subnet.cli", "localnet", "--data-dir", str(data),
           "--experts-dir", str(Path(experts["code"]).parent), "--experts-size", "default",
           "--miners", "2", "--validators", "2", "--adversaries", ",".join(ADVERSARIES),
           "--block-time", "1", "--tempo", "70", "--epochs", "4", "--no-dashboard", "--fresh"]  # fmt: skip
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    out = proc.stdout + proc.stderr
    summary = json.loads((data / "summary.json").read_text())
    last = json.loads((data / "history.json").read_text())[-1]
    table = [
        {"label": u["label"], "role": u["role"], "incentive": u["incentive"]}
        for u in last["uids"]
        if u["role"] in ("miner", "cheater")
    ]
    record("localnet_adversaries", {"epochs": summary["epochs"], "checks": summary["checks"],
                                    "table": table, "last_weights": _last_weights(data, last)})  # fmt: skip
    checks = {c["what"]: c for c in summary["checks"]}
    share = checks["honest miners take >= 95% of miner incentive"]
    assert share["ok"], (share, out[-3000:])
    for name in ADVERSARIES:
        caught = next(c for w, c in checks.items() if w.startswith(f"cheat-{name} "))
        assert caught["ok"], (caught, out[-3000:])
    assert proc.returncode == 0, out[-3000:]


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
