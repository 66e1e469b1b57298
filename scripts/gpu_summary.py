"""The summary table of scripts/gpu_check.sh, from the JSON its steps wrote under bench_results/.

    .venv/bin/python scripts/gpu_summary.py --device cuda [--quick] check_engine=0 ...

Each `name=rc` names a step and its exit status. Writes bench_results/gpu_check.json; exits 1
when a step failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "bench_results"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def engine_rows(r: dict) -> list[tuple[str, str]]:
    rows = []
    dtypes = sorted({d for row in r["equality"].values() for d in row})
    for d in dtypes:
        cells = [row[d] for row in r["equality"].values() if d in row]
        same = sum(c["identical"] for c in cells)
        total = sum(c["total"] for c in cells)
        errors = sum(c["errors"] for c in cells)
        rows.append((f"engine = generate, {len(cells)} archs, {d}",
                     f"{same}/{total} identical, {errors} errors"))  # fmt: skip
    for d, per in r["requests"].items():
        n = sum(x["requests"] for x in per.values())
        errors = sum(x["finish"].get("error", 0) for x in per.values())
        seeded = sum(x["seeded_reproducible"] for x in per.values())
        checked = sum(x["seeded_checked"] for x in per.values())
        flagged = sum(c for x in per.values() for k, c in x["verdicts"].items() if k != "ok")
        tps = sum(x["tokens_per_s"] for x in per.values()) / len(per)
        rows.append((f"task requests, tiny experts, {d}",
                     f"{n} ({errors} errors), seeded same alone/crowded {seeded}/{checked}, "
                     f"{tps:.0f} tok/s"))  # fmt: skip
        rows.append((f"verifier false positives, {d} miner", f"{flagged}/{n}"))
    return rows


def miner_rows(r: dict) -> list[tuple[str, str]]:
    level = "32" if "32" in r["results"] else max(r["results"], key=int)
    row = r["results"][level]
    cells = [f"{path} {row[path]['tokens_per_s']:.0f}" for path in row]
    ratio = row["engine"]["tokens_per_s"] / row["static"]["tokens_per_s"]
    return [(f"bench_miner tok/s at C={level}", ", ".join(cells) + f" (engine/static {ratio:.2f})")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    p.add_argument("rcs", nargs="*", help="step=exit status")
    args = p.parse_args()
    rcs = {k: int(v) for k, v in (x.split("=", 1) for x in args.rcs)}
    rows: list[tuple[str, str]] = []
    if (r := load("check_engine")) is not None:
        rows += engine_rows(r)
    if (r := load("bench_score_memory")) is not None:
        s, e = r["summary"], r["results"][0]
        rows.append((f"/v1/score memory, {e['tokens']} tokens, vocab 151,936",
                     f"+{s['engine_added_gb']:.2f} GB (full logits would add "
                     f"{s.get('full_extrapolated_gb_at_engine_tokens', float('nan')):.1f} GB)"))  # fmt: skip
    if (r := load("bench_miner")) is not None:
        rows += miner_rows(r)
    if "calibrate_verify" in rcs and (r := load("calibrate_verify")) is not None:
        rows.append(("calibrate_verify false positives",
                     f"{r['false_positives']}/{r['honest_answers']}, detection "
                     f"{r.get('detection_rate')}"))  # fmt: skip
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gpu_check on {args.device}{' (quick)' if args.quick else ''}")
    table.add_column("check")
    table.add_column("result")
    for name, rc in rcs.items():
        table.add_row(f"step {name}", "ok" if rc == 0 else f"FAILED (exit {rc})")
    for check, result in rows:
        table.add_row(check, result)
    Console(width=160).print(table)
    out = RESULTS / "gpu_check.json"
    out.write_text(json.dumps({"device": args.device, "quick": args.quick, "steps": rcs,
                               "rows": dict(rows), "time": time.time()}, indent=2))  # fmt: skip
    print(f"wrote {out}")
    return 1 if any(rcs.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
