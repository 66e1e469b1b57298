"""The engine on this machine's device and precision: equality with `generate`, sampled and
greedy requests, and how often the validator's reference flags honest answers.

    .venv/bin/python scripts/check_engine.py [--device auto] [--dtypes bfloat16,float32] [--quick]

Run by scripts/gpu_check.sh (GPU when present, CPU otherwise). Three checks:
1. equality: every architecture of `subnet.engine.archs` (random-init, sliding windows of 16),
   loaded in each dtype on the device; the engine's continuously batched greedy answers against
   `generate` one request at a time on the same device and dtype, token for token. Float32 must
   be identical; in bfloat16 a padded batch and a lone sequence round differently, so a
   divergence at a near-tie is honest (the verifier's tolerances decide, check 3).
2. requests: the tiny experts, validator-style tasks (half greedy, half sampled at 0.7/1.0 with
   top-p 1/0.95), all at once through the engine: no errors, and seeded sampled requests draw
   the same tokens alone and in the crowd.
3. verifier: every answer of checks 1 and 2 verified by the validator's reference (float32 on
   the CPU, as `ExpertRegistry.load_dir` loads it): false positives by reason (target 0).
Writes bench_results/check_engine.json; exits 1 when a float32 equality or a request fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from protocol import GenerateRequest  # noqa: E402
from subnet.engine.archs import ARCHS, build_random_expert  # noqa: E402
from subnet.engine.experts import build_tiny_experts  # noqa: E402
from subnet.engine.hf import HFEngine  # noqa: E402
from subnet.engine.loading import load_expert  # noqa: E402
from subnet.engine.prompt import encode_prompt  # noqa: E402
from subnet.validator import tasks  # noqa: E402
from subnet.validator.verifier import ExpertRegistry, Item, Verifier  # noqa: E402

PROMPTS = [
    "x = 1",
    "def parse(self, text):\n",
    "import os\nimport sys\n\nclass Reader:\n    def __init__(self, path):\n"
    "        self.path = path\n        self.lines = []\n",
    "12 + 7 =",
    "for i in range(10):\n    print(i, i * i, i ** 3)\n    total += i\nreturn",
]


async def answers(expert, reqs, max_batch: int = 32):
    engine = HFEngine.create(expert, max_batch=max_batch, max_queue=len(reqs) + 1, max_prefill=4)
    await engine.start()
    try:
        return await asyncio.gather(*(engine.complete(r) for r in reqs))
    finally:
        await engine.stop()


@torch.inference_mode()
def generate(expert, req: GenerateRequest) -> list[int]:
    ids = torch.tensor([encode_prompt(expert.tokenizer, req)], device=expert.device)
    out = expert.model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=req.max_tokens,
        do_sample=False,
        eos_token_id=sorted(expert.eos_ids),
        pad_token_id=expert.tokenizer.pad_token_id,
    )
    return out[0, ids.shape[1] :].tolist()


def verify(registry: ExpertRegistry, weights_hash: str, reqs, outs) -> Counter:
    items = [Item(weights_hash, r, a) for r, a in zip(reqs, outs, strict=True)]
    return Counter(v.reason for v in Verifier(registry).verify_many(items))


def check_equality(root: Path, code_dir: Path, device: str, dtypes: list[str]) -> dict:
    out: dict[str, dict] = {}
    for arch in ARCHS:
        path = build_random_expert(arch, code_dir, root / arch)
        registry = ExpertRegistry.load_dir(path)
        for dtype in dtypes:
            expert = load_expert(path, device=device, dtype=dtype)
            reqs = [
                GenerateRequest(prompt=p, max_tokens=12 + 6 * i, logprobs=True)
                for i, p in enumerate(PROMPTS)
            ]
            got = asyncio.run(answers(expert, reqs, max_batch=3))
            same = sum(
                list(a.token_ids) == generate(expert, r) for r, a in zip(reqs, got, strict=True)
            )
            errors = sum(a.finish_reason == "error" for a in got)
            verdicts = verify(registry, expert.card.weights_hash, reqs, got)
            out.setdefault(arch, {})[dtype] = {"identical": same, "total": len(reqs),
                                               "errors": errors, "verdicts": dict(verdicts)}  # fmt: skip
            print(f"equality {arch:12} {dtype:9} {same}/{len(reqs)} identical, "
                  f"verdicts {dict(verdicts)}", flush=True)  # fmt: skip
    return out


def check_requests(experts_dir: Path, device: str, dtype: str, n: int) -> dict:
    paths = build_tiny_experts(experts_dir, size="test")
    registry = ExpertRegistry.load_dir(experts_dir)
    rng = random.Random(14)
    out: dict[str, dict] = {}
    for domain, path in paths.items():
        expert = load_expert(path, device=device, dtype=dtype)
        reqs = [tasks.make_task(rng.choice(tasks.DOMAINS), rng).request for _ in range(n)]
        t0 = time.perf_counter()
        got = asyncio.run(answers(expert, reqs))
        wall = time.perf_counter() - t0
        seeded = [r for r in reqs if r.temperature > 0][:4]
        alone = [asyncio.run(answers(expert, [r]))[0].token_ids for r in seeded]
        crowd = {r.request_id: a.token_ids for r, a in zip(reqs, got, strict=True)}
        verdicts = verify(registry, expert.card.weights_hash, reqs, got)
        out[domain] = {
            "requests": n,
            "greedy": sum(r.temperature == 0 for r in reqs),
            "finish": dict(Counter(a.finish_reason for a in got)),
            "tokens_per_s": sum(a.usage.completion_tokens for a in got) / wall,
            "seeded_reproducible": sum(
                a == crowd[r.request_id] for r, a in zip(seeded, alone, strict=True)
            ),
            "seeded_checked": len(seeded),
            "verdicts": dict(verdicts),
        }
        print(f"requests {domain:6} {dtype:9} {out[domain]}", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--dtypes", default="bfloat16,float32")
    p.add_argument("--requests", type=int, default=200, help="task requests per tiny expert")
    p.add_argument("--quick", action="store_true", help="24 requests per expert")
    p.add_argument("--out", default=str(ROOT / "bench_results" / "check_engine.json"))
    args = p.parse_args()
    if args.quick:
        args.requests = 24
    from subnet.engine.loading import pick_device

    device = str(pick_device(args.device))
    if device == "cpu":
        torch.set_num_threads(1)  # the engine's CPU default; references run alike
    dtypes = args.dtypes.split(",")
    t0 = time.time()
    root = Path(tempfile.mkdtemp(prefix="check-engine-"))
    experts_dir = Path(tempfile.gettempdir()) / "dmoe-tiny-experts-test"
    code_dir = build_tiny_experts(experts_dir, size="test")["code"]
    equality = check_equality(root, code_dir, device, dtypes)
    requests = {d: check_requests(experts_dir, device, d, args.requests) for d in dtypes}
    failed = [
        f"{arch}/{d}" for arch, row in equality.items() for d, r in row.items()
        if r["errors"] or (d == "float32" and r["identical"] < r["total"])
    ] + [
        f"requests/{d}/{dom}" for d, row in requests.items() for dom, r in row.items()
        if r["finish"].get("error") or r["seeded_reproducible"] < r["seeded_checked"]
    ]  # fmt: skip
    result = {
        "device": device,
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "torch": torch.__version__,
        "equality": equality,
        "requests": requests,
        "failed": failed,
        "seconds": time.time() - t0,
    }
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"failed: {failed or 'none'}; wrote {out} ({result['seconds']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
