"""Calibrate the verifier on honest output and measure its false-positive rate.

    .venv/bin/python scripts/calibrate_verify.py [--n 1200] [--size test|default]

Honest answers come from the miner's own engine (HFEngine, continuous batching, KV cache,
float32 on CPU) and from a second implementation (Hugging Face `generate`), greedy and sampled,
for synthetic tasks of every domain on each tiny expert. Every one must pass (false-positive
rate 0). The script prints the margins (greedy max gap, logprob error, z-scores) next to the
thresholds in use and the detection rate on random-token and wrong-model answers, and writes
bench_results/calibrate_verify.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def honest_engine_answers(expert, reqs):
    from subnet.engine.hf import HFEngine

    engine = HFEngine.create(expert, max_batch=32, max_queue=len(reqs) + 1)
    await engine.start()
    try:
        return await asyncio.gather(*(engine.complete(r) for r in reqs))
    finally:
        await engine.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1200, help="honest answers in total")
    ap.add_argument("--size", default="test", choices=("test", "default"))
    ap.add_argument("--out", default=str(ROOT / "bench_results" / "calibrate_verify.json"))
    args = ap.parse_args()

    import torch

    from protocol import GenerateResponse, TokenLogprob
    from subnet.engine.experts import build_tiny_experts
    from subnet.validator import tasks
    from subnet.validator.honest import honest_generate
    from subnet.validator.verifier import ExpertRegistry, Item, Verifier
    from subnet.validator.verify import Thresholds

    torch.set_num_threads(1)
    out_dir = Path(tempfile.gettempdir()) / f"dmoe-tiny-experts-{args.size}"
    paths = build_tiny_experts(out_dir, size=args.size)
    registry = ExpertRegistry.load_dir(next(iter(paths.values())).parent)
    by_domain = {e.card.domains[0]: e for e in registry.experts.values()}
    rng = random.Random(2024)
    verifier = Verifier(registry)
    t0 = time.time()
    honest: list[tuple[str, str, Item]] = []  # (source, expert domain, item)
    for dom, expert in by_domain.items():
        per = args.n // len(by_domain)
        reqs = [tasks.make_task(rng.choice(tasks.DOMAINS), rng).request for _ in range(per)]
        n_engine = per * 3 // 4
        answers = asyncio.run(honest_engine_answers(expert, reqs[:n_engine]))
        answers += [honest_generate(expert, r) for r in reqs[n_engine:]]
        for i, (r, a) in enumerate(zip(reqs, answers, strict=True)):
            src = "engine" if i < n_engine else "hf-generate"
            honest.append((src, dom, Item(expert.card.weights_hash, r, a)))
    gen_s = time.time() - t0
    t1 = time.time()
    verdicts = verifier.verify_many([it for _, _, it in honest])
    verify_s = time.time() - t1
    fails = [(s, d, v) for (s, d, _), v in zip(honest, verdicts, strict=True) if not v.ok]
    greedy = [
        v for (_, _, it), v in zip(honest, verdicts, strict=True) if it.request.temperature == 0
    ]
    sampled = [
        v for (_, _, it), v in zip(honest, verdicts, strict=True) if it.request.temperature > 0
    ]
    zs = [v.stats["z"] for v in sampled if "z" in v.stats]
    gaps = [v.stats.get("max_gap", 0.0) for v in greedy]
    errs = [v.stats.get("max_logprob_err", 0.0) for v in verdicts]

    # Detection: random tokens and the other expert's answers under each declared card.
    cheats = []
    for (_src, dom, it), _v in list(zip(honest, verdicts, strict=True))[
        :: max(1, len(honest) // 300)
    ]:
        expert = by_domain[dom]
        other = next(e for d, e in by_domain.items() if d != dom)
        ids = [rng.randrange(2, len(expert.tokenizer)) for _ in it.response.token_ids]
        rnd = replace(
            it.response,
            token_ids=tuple(ids),
            logprobs=tuple(TokenLogprob(t, -1.0) for t in ids),
        )
        cheats.append(("random", Item(it.weights_hash, it.request, rnd)))
        wrong: GenerateResponse = honest_generate(other, it.request)
        cheats.append(("wrong_model", Item(it.weights_hash, it.request, wrong)))
    fresh = Verifier(registry)  # no copy memory from the honest run
    cheat_verdicts = fresh.verify_many([c for _, c in cheats])
    detection: dict[str, Counter] = {}
    for (kind, _), v in zip(cheats, cheat_verdicts, strict=True):
        detection.setdefault(kind, Counter())[v.reason] += 1

    result = {
        "size": args.size,
        "honest_answers": len(honest),
        "by_source": dict(Counter(s for s, _, _ in honest)),
        "greedy": len(greedy),
        "sampled": len(sampled),
        "false_positives": len(fails),
        "false_positive_rate": len(fails) / len(honest),
        "failures": [f"{s}/{d}: {v.reason} {v.detail}" for s, d, v in fails[:20]],
        "greedy_max_gap_observed": max(gaps) if gaps else None,
        "max_logprob_err_observed": max(errs) if errs else None,
        "z_min": min(zs) if zs else None,
        "z_median": statistics.median(zs) if zs else None,
        "thresholds": asdict(Thresholds()),
        "detection": {k: dict(c) for k, c in detection.items()},
        "detection_rate": {k: 1 - c.get("ok", 0) / sum(c.values()) for k, c in detection.items()},
        "generate_s": round(gen_s, 2),
        "verify_s": round(verify_s, 2),
        "platform": f"torch {torch.__version__}, float32 CPU",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"{'honest answers':28} {len(honest)} ({result['by_source']})")
    print(f"{'greedy / sampled':28} {len(greedy)} / {len(sampled)}")
    print(f"{'false positives':28} {len(fails)}  (rate {result['false_positive_rate']:.4f})")
    th = Thresholds()
    print(
        f"{'greedy max gap':28} {result['greedy_max_gap_observed']:.2e}  (threshold {th.greedy_max_gap})"
    )
    print(
        f"{'max |claimed - ref| logprob':28} {result['max_logprob_err_observed']:.2e}  (threshold {th.logprob_tol})"
    )
    print(
        f"{'sampled z min / median':28} {result['z_min']:.2f} / {result['z_median']:.2f}  (threshold {th.sampled_min_z})"
    )
    for k, rate in result["detection_rate"].items():
        print(f"{'detected ' + k:28} {rate:.1%}  {result['detection'][k]}")
    for line in result["failures"]:
        print("  FP:", line)
    print(f"wrote {args.out}")
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main())
