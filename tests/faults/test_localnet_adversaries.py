"""Two honest miners and one miner per cheat, as real processes on a localnet, for several epochs:
the honest miners take at least 95% of miner incentive, and every cheater is scored zero by a
validator with its reason (the summary's checks, built from the validators' logs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from subnet.miner.adversary import ADVERSARIES
from tests.faults.reliability import record

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_honest_miners_take_the_incentive_and_every_cheat_is_caught(tmp_path, tiny_experts):
    data = tmp_path / "ln"
    # Slow blocks and a long tempo: a validator step that includes the hanging and dripping
    # cheaters lasts up to its 30 s query timeout, and each cheater must be queried a few times.
    cmd = [sys.executable, "-m", "subnet.cli", "localnet", "--data-dir", str(data),
           "--experts-dir", str(Path(tiny_experts["code"]).parent), "--experts-size", "test",
           "--miners", "2", "--validators", "2", "--adversaries", ",".join(ADVERSARIES),
           "--block-time", "0.5", "--tempo", "30", "--epochs", "8", "--no-dashboard", "--fresh"]  # fmt: skip
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
                                    "table": table})  # fmt: skip
    checks = {c["what"]: c for c in summary["checks"]}
    share = checks["honest miners take >= 95% of miner incentive"]
    assert share["ok"], (share, out[-3000:])
    for name in ADVERSARIES:
        caught = next(c for w, c in checks.items() if w.startswith(f"cheat-{name} "))
        assert caught["ok"], (caught, out[-3000:])
    assert proc.returncode == 0, out[-3000:]
