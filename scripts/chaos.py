"""Run the reliability scenarios and write docs/RELIABILITY.md (one command regenerates it).

    .venv/bin/python scripts/chaos.py [--load]

Runs the hostile-input, authentication and adversarial-miner suites (`tests/hostile`, plus
`tests/faults` and `tests/load` where present, slow ones included) through pytest with a JUnit
report, and turns each scenario into a row: what was tried, how many cases, held or failed.
`--load` also runs `scripts/bench_load.py --quick` and adds its figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RELIABILITY.md"

# test function (without parameters) -> (scenario, what was tried, cases per test run)
SCENARIOS = {
    "test_generate_fuzz": ("miner /v1/generate fuzz", "signed hostile JSON: wrong types, huge "
                           "numbers, NaN, deep nesting, invalid UTF-8, truncations", 100),
    "test_score_fuzz": ("miner /v1/score fuzz", "signed hostile JSON bodies", 100),
    "test_card_and_unknown_routes": ("miner /v1/card + unknown routes", "methods x paths x "
                                     "bodies", 100),
    "test_malformed_http_keeps_serving": ("miner malformed HTTP", "truncated body, 100 kB header, "
                                          "5000 headers, TLS hello, bad chunking", 8),
    "test_rpc_fuzz_changes_nothing": ("chain /rpc fuzz", "hostile envelopes and params for every "
                                      "method; state hash compared", 100),
    "test_each_method_with_hostile_params": ("chain /rpc typed-param abuse", "mistyped params per "
                                             "method", 1),
    "test_malformed_http_is_4xx_or_closed": ("chain malformed HTTP", "truncated, huge header, "
                                             "huge Content-Length, chunk flood, garbage", 1),
    "test_completions_and_chat_fuzz": ("gateway fuzz", "hostile OpenAI bodies on /v1/completions "
                                       "and /v1/chat/completions", 200),
    "test_bad_keys_are_401": ("gateway API keys", "missing, unknown, malformed Bearer keys", 1),
    "test_malformed_http": ("gateway malformed HTTP", "truncated, huge header, huge length", 3),
    "test_bad_signatures_are_401": ("btauth/1 on miner endpoints", "unsigned, tampered body or "
                                    "signature, other path, wrong/no receiver, stale, future, "
                                    "forged signer, garbage nonce", 1),
    "test_replay_is_401": ("replayed requests", "the same signed request twice", 1),
    "test_unadmitted_callers_are_403": ("admission", "unregistered, non-validator, low stake", 1),
    "test_chain_rejects_unsigned_forged_tampered_replayed": ("chain extrinsic auth", "unsigned, "
                                       "zeroed, forged signer, tampered, future, replayed", 6),
    "test_each_cheat_is_caught_with_its_reason": ("adversarial miners", "13 cheats vs 2 honest "
                                                  "miners, 3 validator steps", 45),
}  # fmt: skip


def run_pytest() -> list[dict]:
    report = Path(tempfile.mkdtemp()) / "junit.xml"
    dirs = [d for d in ("tests/hostile", "tests/faults", "tests/load") if (ROOT / d).is_dir()]
    cmd = [sys.executable, "-m", "pytest", *dirs, "-q", "-m", "slow or not slow",
           "-p", "no:cacheprovider", f"--junitxml={report}"]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=False)
    cases = []
    for tc in ET.parse(report).getroot().iter("testcase"):
        failed = tc.find("failure") is not None or tc.find("error") is not None
        skipped = tc.find("skipped") is not None
        cases.append({"name": tc.get("name", "").split("[")[0], "failed": failed,
                      "skipped": skipped, "time": float(tc.get("time", 0))})  # fmt: skip
    return cases


def table(cases: list[dict]) -> list[str]:
    rows = ["| scenario | what was tried | cases | outcome |", "|---|---|---:|---|"]
    by: dict[str, list[dict]] = {}
    for c in cases:
        by.setdefault(c["name"], []).append(c)
    for name, group in by.items():
        scenario, tried, per = SCENARIOS.get(name, (name, "", 1))
        ran = [c for c in group if not c["skipped"]]
        failed = sum(c["failed"] for c in ran)
        outcome = "held" if ran and not failed else ("skipped" if not ran else f"FAILED ({failed})")
        rows.append(f"| {scenario} | {tried} | {len(ran) * per} | {outcome} |")
    return rows


def load_rows(run: bool) -> list[str]:
    path = ROOT / "bench_results" / "bench_load.json"
    if run:
        subprocess.run([sys.executable, "scripts/bench_load.py", "--quick"], cwd=ROOT, check=False)
    if not path.is_file():
        return ["(no load figures: run `scripts/chaos.py --load`)"]
    r = json.loads(path.read_text())
    m, c = r["miner"], r["chain"]
    held_m = "held" if m["all_refusals_429_retry_after"] else "FAILED"
    return [
        "| load scenario | figures | outcome |",
        "|---|---|---|",
        f"| miner at 4x capacity ({m['concurrency']} streams vs capacity {m['capacity']}, "
        f"{m['requests']} requests) | statuses {m['statuses']}; TTFT admitted p50 "
        f"{m['ttft_p50_ms']:.0f} ms / p99 {m['ttft_p99_ms']:.0f} ms; peak RSS "
        f"{m['peak_rss_mb']:.0f} MB | {held_m} (all refusals 429 + Retry-After) |",
        f"| chain process, {c['validators']} validators set weights + {c['readers']} metagraph "
        f"readers per block | {c['blocks']} blocks at {c['block_period_s'] * 1e3:.0f} ms "
        f"(target 250); set-weights {c['set_weights_ok']} ok / {c['set_weights_failed']} failed "
        f"(p99 {c['set_weights_p99_ms']:.0f} ms); metagraph {c['metagraph_reads']} ok / "
        f"{c['metagraph_failed']} failed (p99 {c['metagraph_p99_ms']:.0f} ms) | "
        f"{_chain_outcome(c)} |",
    ]


def _chain_outcome(c: dict) -> str:
    if c["set_weights_failed"] or c["metagraph_failed"]:
        return "FAILED (errors)"
    every_block = c["set_weights_ok"] >= 0.9 * c["validators"] * c["blocks"]
    if every_block:
        return "held"
    return "partial: no errors, but not every client finishes an operation every block"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", action="store_true", help="also run scripts/bench_load.py --quick")
    args = ap.parse_args()
    t = time.time()
    cases = run_pytest()
    lines = [
        "# Reliability",
        "",
        "Generated by `.venv/bin/python scripts/chaos.py --load` "
        f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime(t))} UTC). Hostile requests must get a 4xx "
        "JSON error (never a 5xx or a crash) and change no stored state; cheaters must be caught "
        "with their reason. Malformed HTTP that aiohttp's parser refuses gets its plain-text 400 "
        "or a closed socket (never a 5xx).",
        "",
        *table(cases),
        "",
        *load_rows(args.load),
        "",
        "Known limits (not held, or not yet tried): a copycat or replayer that serves the same "
        "model's answer to an *earlier* prompt passes verification when the tiny experts answer "
        "both prompts alike (about half the time in the adversary test); admission (validators "
        "only) is the defence against relaying. Localnet SIGKILL faults and the 200-client "
        "gateway load are not yet scripted here.",
    ]
    DOC.write_text("\n".join(lines) + "\n")
    print(f"wrote {DOC}")
    return 1 if any(c["failed"] for c in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
