"""Peak memory of a /v1/score request: chunked LM head (now) against full logits (before).

    .venv/bin/python scripts/bench_score_memory.py [--tokens 8192] [--full-tokens 2048]
                                                   [--device auto] [--quick]

A random-init Llama with a 151,936-token vocabulary (Qwen2.5's) and a small body (hidden 64,
2 layers), so the vocabulary dominates as it does for real 0.5-7B models. Each measurement runs
in a fresh subprocess: on a CPU the added memory is peak RSS during the request minus RSS
before it; on a GPU, peak allocated minus allocated before. Paths:
- engine:  `HFEngine.score` on one maximum-size request (8,192 tokens, top_k 5), the miner's
           /v1/score path (logit_chunks: the LM head on 110 positions at a time);
- full:    the previous scoring, one forward's full logits and their log-softmax (at
           `--full-tokens`, 2,048 by default: at 8,192 it needs ~20 GB).
Target: engine adds <= 1 GB. Writes bench_results/bench_score_memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VOCAB = 151_936
GB = 1 << 30


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def build(device: str, max_context: int):
    import torch

    from protocol import ExpertCard
    from subnet.engine.archs import config_for
    from subnet.engine.loading import LoadedExpert, pick_device, pick_dtype

    dev = pick_device(device)
    config = config_for("llama", VOCAB, max_context=max_context, initializer_range=0.02)
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config, dtype=pick_dtype("auto", dev)).to(dev).eval()
    card = ExpertCard("bench/vocab-151936", "random", "0" * 64, ("general",), max_context, 1, "hf")
    return LoadedExpert(model, None, card, dev, ROOT, eos_ids=frozenset({0}))


def full_score(model, ids: list[int]) -> float:
    """The scoring before logit_chunks: full logits, full log-softmax, ranks (one sequence)."""
    import torch

    from subnet.engine.scoring import padded_logits

    with torch.inference_mode():
        rows = padded_logits(model, [ids])[0, :-1].float()
        logp = torch.log_softmax(rows, dim=-1)
        target = torch.tensor(ids[1:], device=rows.device)
        chosen = logp.gather(1, target[:, None])[:, 0]
        ranks = (logp > chosen[:, None]).sum(dim=1)
        return float(chosen.sum()) + float(ranks.sum())


def measure(mode: str, tokens: int, device: str) -> dict:
    """One path in this process: memory added by one request of `tokens` tokens."""
    import torch

    from protocol import ScoreRequest
    from subnet.engine.hf import HFEngine

    torch.set_num_threads(1)
    expert = build(device, max(tokens, 64))
    cuda = expert.device.type == "cuda"
    ids = [int(x) for x in torch.randint(2, VOCAB, (tokens,), generator=torch.Generator())]

    async def engine_score(n: int) -> None:
        engine = HFEngine.create(expert, max_batch=1)
        await engine.start()
        try:
            await engine.score(ScoreRequest(token_ids=tuple(ids[:n]), start=1, top_k=5))
        finally:
            await engine.stop()

    def run(n: int) -> None:
        if mode == "engine":
            asyncio.run(engine_score(n))
        else:
            full_score(expert.model, ids[:n])

    run(16)  # warm-up: kernels and allocator pools, tiny next to the measured peak
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    before_rss = rss_bytes()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    run(tokens)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {
        "mode": mode,
        "tokens": tokens,
        "device": str(expert.device),
        "rss_before_gb": before_rss / GB,
        "rss_peak_gb": peak / GB,
        "added_gb": max(0, peak - before_rss) / GB if peak > peak_before else 0.0,
        "seconds": seconds,
    }
    if cuda:
        out["gpu_added_gb"] = (torch.cuda.max_memory_allocated() - before) / GB
        out["added_gb"] = out["gpu_added_gb"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--full-tokens", type=int, default=2048, help="0 skips the old path")
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="2,048 tokens, 512 for the old path")
    p.add_argument("--out", default=str(ROOT / "bench_results" / "bench_score_memory.json"))
    p.add_argument("--measure", nargs=2, metavar=("MODE", "TOKENS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], int(args.measure[1]), args.device)))
        return 0
    if args.quick:
        args.tokens, args.full_tokens = 2048, 512
    runs = [("engine", args.tokens)] + ([("full", args.full_tokens)] if args.full_tokens else [])
    results = []
    for mode, tokens in runs:
        cmd = [sys.executable, __file__, "--device", args.device, "--measure", mode, str(tokens)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bench_score_memory: one /v1/score request, vocabulary {VOCAB:,}")
    for col in ("path", "tokens", "device", "RSS before GB", "RSS peak GB", "added GB", "s"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(r["mode"], str(r["tokens"]), r["device"], f"{r['rss_before_gb']:.2f}",
                      f"{r['rss_peak_gb']:.2f}", f"{r['added_gb']:.2f}", f"{r['seconds']:.1f}")  # fmt: skip
    Console().print(table)
    engine = results[0]
    summary = {"engine_added_gb": engine["added_gb"], "target_gb": 1.0,
               "ok": engine["added_gb"] <= 1.0}  # fmt: skip
    if len(results) > 1:
        full = results[1]
        per_token = full["added_gb"] / full["tokens"]
        summary["full_added_gb_per_1k_tokens"] = per_token * 1000
        summary["full_extrapolated_gb_at_engine_tokens"] = per_token * engine["tokens"]
        print(f"full logits: {per_token * 1000:.2f} GB per 1,000 tokens, "
              f"~{per_token * engine['tokens']:.1f} GB at {engine['tokens']} tokens")  # fmt: skip
    print(f"engine adds {engine['added_gb']:.2f} GB at {engine['tokens']} tokens (target <= 1 GB)")
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"args": vars(args), "results": results, "summary": summary}, indent=2)
    )
    print(f"wrote {out}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
