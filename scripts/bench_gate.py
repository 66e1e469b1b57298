"""Request-time cost of the learned gate, as the gateway pays it (target: p50 <= 2 ms).

    .venv/bin/python scripts/bench_gate.py [--repeats 300]

Times `Gate.rank(prompt, experts)` — what `Validator.route` runs for every `auto` request —
for 4, 16 and 64 experts, on short user prompts and on 2 KiB ones (the gate reads at most the
prompt's last 2 KiB), with the rule's cold start and with trusted learned models, and one
`observe` (the training step, off the request path). No model is loaded: the gate's cost does
not depend on the experts' size, only on their number and the prompt.

Prints a table and writes bench_results/bench_gate.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from subnet.localnet.users import PROMPTS  # noqa: E402
from subnet.validator.gate import Gate  # noqa: E402
from subnet.validator.tasks import DOMAINS  # noqa: E402


def _experts(n: int) -> dict[str, tuple[str, ...]]:
    return {f"{i:064x}": (DOMAINS[i % len(DOMAINS)],) for i in range(n)}


def _long(rng: random.Random) -> str:
    words = [p for ps in PROMPTS.values() for p in ps]
    text = ""
    while len(text) < 2048:
        text += rng.choice(words) + "\n"
    return text


def _trained(experts: dict[str, tuple[str, ...]], prompts: list[str], rng: random.Random) -> Gate:
    gate = Gate()
    for _ in range(3):
        for p in prompts:
            gate.observe(p, {h: rng.uniform(-7.0, -4.0) for h in experts}, experts)
    return gate


def _p(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))]


def run(repeats: int) -> list[dict]:
    rng = random.Random(0)
    short = [p for ps in PROMPTS.values() for p in ps]
    long = [_long(rng) for _ in range(8)]
    rows = []
    for n in (4, 16, 64):
        experts = _experts(n)
        cold, warm = Gate(), _trained(experts, short + long, rng)
        for state, gate in (("cold start", cold), ("learned", warm)):
            for kind, prompts in (("short", short), ("2 KiB", long)):
                ms = []
                for i in range(repeats):
                    p = prompts[i % len(prompts)]
                    t = time.perf_counter()
                    gate.rank(p, experts)
                    ms.append((time.perf_counter() - t) * 1e3)
                rows.append(_row("rank", n, state, kind, ms))
        ms = []
        for i in range(repeats // 4):
            p = short[i % len(short)]
            q = {h: rng.uniform(-7.0, -4.0) for h in experts}
            t = time.perf_counter()
            warm.observe(p, q, experts)
            ms.append((time.perf_counter() - t) * 1e3)
        rows.append(_row("observe", n, "learned", "short", ms))
    return rows


def _row(op: str, n: int, state: str, prompt: str, ms: list[float]) -> dict:
    return {
        "op": op,
        "experts": n,
        "gate": state,
        "prompt": prompt,
        "p50_ms": statistics.median(ms),
        "p95_ms": _p(ms, 0.95),
        "samples": len(ms),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args()
    rows = run(args.repeats)
    from rich.console import Console
    from rich.table import Table

    t = Table(title="gate cost per call (ms; the gateway runs one rank per auto request)")
    for col in ("op", "experts", "gate", "prompt", "p50", "p95"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["op"], str(r["experts"]), r["gate"], r["prompt"],
                  f"{r['p50_ms']:.3f}", f"{r['p95_ms']:.3f}")  # fmt: skip
    Console().print(t)
    worst = max(r["p50_ms"] for r in rows if r["op"] == "rank")
    print(f"worst rank p50: {worst:.3f} ms (target <= 2 ms): {'ok' if worst <= 2 else 'OVER'}")
    out = ROOT / "bench_results" / "bench_gate.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "worst_rank_p50_ms": worst}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
