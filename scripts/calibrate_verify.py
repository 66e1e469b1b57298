"""Calibrate the verifier per (miner precision, validator precision) pair and measure it.

    .venv/bin/python scripts/calibrate_verify.py --write       # both sizes, every CPU pair
    .venv/bin/python scripts/calibrate_verify.py --size test --n 400 --miner-dtypes float32

For each tiny expert size and each pair, honest answers come from the miner's own engine
(HFEngine, continuous batching, KV cache) and from a second implementation (Hugging Face
`generate`), with the model loaded in the miner's precision: greedy and sampled synthetic tasks
of every domain, a quarter of them with stop sequences, one in eight 256 tokens long. Every one must pass (false-positive rate
0). Pass 1 verifies with loose thresholds and records the margins (greedy gap, claimed-logprob
error, z-scores, end-of-sequence probability); the pair's thresholds are those margins times a
safety factor (never tighter than the float32 defaults); pass 2 verifies again with them and
counts false positives and detections:

- another expert's answers under the declared card, random tokens;
- weights perturbed by 2%, 5%, 10% of each tensor's standard deviation (per answer), and by 2%
  through the per-miner evidence (`subnet.validator.evidence`): answers until `drift`;
- cheats of issue 13: an advertisement in `text` (text_mismatch), answers cut after 1-3 tokens
  with an end-of-sequence (premature_end) or a `stop` without a stop sequence, sampled answers
  replayed for another prompt or another seed (copycat).

Honest evidence runs over every honest answer of a pair in many random orders, judged after each
answer: the drift test must never fire. `--write` stores the thresholds, with the figures they
rest on, in subnet/data/verify_thresholds.json (what the verifier loads); every run writes
bench_results/calibrate_verify.json. Device: `--device cpu` (default) or `cuda` — a GPU run
measures the GPU pairs and should be merged with the CPU table (`--merge`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
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

STOPS = ("\n", "\n\n", ")", " =", ":", ",")
LONG = 256  # max_tokens of one request in eight
PERTURB_EVIDENCE = 0.02
PERTURB_ANSWER = (0.02, 0.05, 0.10)
SAFETY = 3.0  # thresholds = worst honest margin x this
SHUFFLES = 20  # random orders of a pair's answers for the evidence runs


def make_requests(n: int, rng: random.Random, tokenizer=None, max_context: int = 1 << 20):
    from subnet.engine.prompt import encode_prompt
    from subnet.validator import tasks

    reqs = []
    for i in range(n):
        r = tasks.make_task(rng.choice(tasks.DOMAINS), rng).request
        if i % 4 == 3:  # exercise stop sequences (the engine cuts text before them)
            r = replace(r, stop=tuple(rng.sample(STOPS, rng.randint(1, 2))))
        if i % 8 == 5 and tokenizer is not None:  # long answers: more chances for near-ties
            room = max_context - len(encode_prompt(tokenizer, r))
            r = replace(r, max_tokens=max(r.max_tokens, min(LONG, room)))
        reqs.append(r)
    return reqs


def honest_answers(expert, reqs):
    """Three quarters from the engine, a quarter from HF generate."""
    from subnet.engine.offline import complete_all
    from subnet.validator.honest import honest_generate

    k = len(reqs) * 3 // 4
    answers = asyncio.run(complete_all(expert, reqs[:k]))
    return answers + [honest_generate(expert, r) for r in reqs[k:]]


def load(path, dtype: str, device: str, perturb_fraction: float = 0.0, seed: int = 0):
    """The expert in `dtype`; perturbed in float32 first (a cheater's own weights), then cast."""
    from subnet.engine.loading import DTYPES, load_expert
    from subnet.engine.perturb import perturb

    if not perturb_fraction:
        return load_expert(path, device=device, dtype=dtype)
    e = load_expert(path, device=device, dtype="float32")
    perturb(e.model, perturb_fraction, seed)
    e.model.to(DTYPES[dtype])
    return replace(e, card=replace(e.card, dtype=dtype))


def loose_table():
    from subnet.validator.evidence import EvidenceThresholds
    from subnet.validator.thresholds import DTYPES, PairThresholds, ThresholdTable, pair_key
    from subnet.validator.verify import Thresholds

    loose = Thresholds(
        greedy_max_gap=1e9, sampled_min_z=-1e9, max_outside_nucleus=10**9, logprob_tol=1e9,
        eos_sure_logprob=1.0, end_min_logprob=-1e9, copy_max_logprob=-1e9,
    )  # fmt: skip
    pairs = {pair_key(m, v): PairThresholds(loose, 1e-6) for m in DTYPES for v in DTYPES}
    return ThresholdTable(pairs, EvidenceThresholds())


def lp_ratio(verdicts) -> float:
    from subnet.validator import evidence

    ev = evidence.Evidence()
    for v in verdicts:
        ev = evidence.add(ev, v.stats, greedy=False)
    return evidence.lp_ratio(ev)


def margins(items, verdicts) -> dict:
    greedy = [v for it, v in zip(items, verdicts, strict=True) if it.request.temperature == 0]
    sampled = [v for it, v in zip(items, verdicts, strict=True) if it.request.temperature > 0]
    ends = [v.stats["end_logprob"] for v in sampled if "end_logprob" in v.stats]
    lp_n = sum(v.stats.get("lp_n", 0.0) for v in verdicts)
    return {
        "answers": len(items),
        "greedy": len(greedy),
        "sampled": len(sampled),
        "tokens": int(sum(v.stats.get("tokens", 0.0) for v in verdicts)),
        "max_gap": max((v.stats.get("max_gap", 0.0) for v in greedy), default=0.0),
        "max_logprob_err": max((v.stats.get("max_logprob_err", 0.0) for v in verdicts), default=0),
        "lp_mse": sum(v.stats.get("lp_err_sq", 0.0) for v in verdicts) / max(lp_n, 1.0),
        "lp_noise_mse": sum(v.stats.get("lp_noise_sq", 0.0) for v in verdicts) / max(lp_n, 1.0),
        "lp_ratio": lp_ratio(verdicts),
        "z_min": min((v.stats["z"] for v in sampled if "z" in v.stats), default=0.0),
        "z_median": statistics.median([v.stats["z"] for v in sampled if "z" in v.stats] or [0]),
        "end_logprob_min": min(ends, default=0.0),
        "eos_endings_sampled": len(ends),
        "not_ok_loose": dict(Counter(v.reason for v in verdicts if not v.ok)),
    }


def derive(pair: str, measured: list[dict]) -> dict:
    """A pair's thresholds from its worst margins over every size measured."""
    from subnet.validator.verify import Thresholds

    base = Thresholds()
    gap = max(m["max_gap"] for m in measured)
    err = max(m["max_logprob_err"] for m in measured)
    z = min(m["z_min"] for m in measured)
    mse = max(m["lp_mse"] for m in measured)
    th = replace(
        base,
        greedy_max_gap=round(max(base.greedy_max_gap, SAFETY * gap), 4),
        logprob_tol=round(max(base.logprob_tol, SAFETY * err), 4),
        sampled_min_z=min(base.sampled_min_z, math.floor(z - 2.0)),
    )
    # float32 on both sides has no simulated noise: the floor is the yardstick (a miner on
    # other float32 kernels, a GPU, rounds differently from the validator's CPU).
    floor = max(1e-6, SAFETY * mse) if pair == "float32/float32" else 1e-6
    return {"thresholds": asdict(th), "noise_floor": floor}


def evidence_runs(stats_seq: list[tuple[dict, bool]], th, rng, shuffles: int) -> dict:
    """Judge after every answer, in `shuffles` random orders: when does `drift` first fire?"""
    from subnet.validator import evidence as ev_mod

    first: list[int | None] = []
    worst = Counter()
    for _ in range(shuffles):
        seq = stats_seq[:]
        rng.shuffle(seq)
        ev = ev_mod.Evidence()
        hit = None
        for k, (stats, greedy) in enumerate(seq, start=1):
            ev = ev_mod.add(ev, stats, greedy=greedy)
            for name, s in ev_mod.scores(ev, th).items():
                worst[name] = max(worst[name], s)
            if hit is None and ev_mod.judge(ev, th) is not None:
                hit = k
        first.append(hit)
    caught = [k for k in first if k is not None]
    return {
        "answers": len(stats_seq),
        "orders": shuffles,
        "orders_drift": len(caught),
        "answers_to_drift_median": statistics.median(caught) if caught else None,
        "answers_to_drift_max": max(caught) if caught else None,
        "worst_score": {k: round(v, 3) for k, v in worst.items()},  # > 1 fires
    }


def cheats(expert, other_answers, honest, rng):
    """Cheating answers built from honest ones: (kind, Item)."""
    from protocol import TokenLogprob, Usage
    from subnet.validator.verifier import Item
    from subnet.validator.verify import expected_text

    tok, h = expert.tokenizer, expert.card.weights_hash
    eos = min(expert.eos_ids)
    out = []
    for it, wrong in zip(honest, other_answers, strict=False):
        req, resp = it.request, it.response
        out.append(("wrong_model", Item(h, req, wrong, dtype=it.dtype)))
        ids = [rng.randrange(2, len(tok)) for _ in resp.token_ids]
        rnd = replace(resp, token_ids=tuple(ids), text=expected_text(tok, req, ids, "length"),
                      logprobs=tuple(TokenLogprob(t, -1.0) for t in ids))  # fmt: skip
        out.append(("random", Item(h, req, rnd, dtype=it.dtype)))
    for it in honest:
        req, resp = it.request, it.response
        ad = replace(resp, text=resp.text + " Buy cheap tokens at example.com")
        out.append(("text_ad", Item(h, req, ad, dtype=it.dtype)))
        if len(resp.token_ids) > 4 and req.max_tokens > 4:
            k = rng.randint(1, 3)
            ids = [*resp.token_ids[:k], eos]
            lps = (*resp.logprobs[:k], TokenLogprob(eos, -1.0))
            cut = replace(resp, token_ids=tuple(ids), logprobs=lps, finish_reason="eos",
                          usage=Usage(resp.usage.prompt_tokens, k + 1),
                          text=expected_text(tok, req, ids, "eos"))  # fmt: skip
            out.append(("cut_eos", Item(h, req, cut, dtype=it.dtype)))
            ids = list(resp.token_ids[:k])
            stop = replace(resp, token_ids=tuple(ids), logprobs=resp.logprobs[:k],
                           finish_reason="stop", usage=Usage(resp.usage.prompt_tokens, k),
                           text=expected_text(tok, req, ids, "stop"))  # fmt: skip
            out.append(("cut_stop", Item(h, req, stop, dtype=it.dtype)))
    return out


def replays(honest, expert, rng):
    """Sampled answers replayed: for another prompt, and for the same prompt with a new seed."""
    from protocol import Usage
    from subnet.validator.verifier import Item
    from subnet.validator.verify import expected_text

    tok, h = expert.tokenizer, expert.card.weights_hash
    sampled = [it for it in honest if it.request.temperature > 0 and not it.request.stop]
    out = []
    for a, b in zip(sampled, sampled[1:] + sampled[:1], strict=True):
        for kind, req in (
            ("replay_prompt", b.request),
            ("replay_seed", replace(a.request, seed=rng.randrange(1 << 62), request_id="x")),
        ):
            old = a.response
            n = min(req.max_tokens, len(old.token_ids))
            finish = "length" if n == req.max_tokens else old.finish_reason
            if finish == "length" and n < req.max_tokens:
                continue  # would fail its shape anyway
            ids = old.token_ids[:n]
            resp = replace(old, request_id=req.request_id, token_ids=ids,
                           logprobs=old.logprobs[:n], finish_reason=finish,
                           usage=Usage(old.usage.prompt_tokens, n),
                           text=expected_text(tok, req, ids, finish))  # fmt: skip
            out.append((kind, a, Item(h, req, resp, dtype=a.dtype)))
    return out


def cheat_detection(registry, table, honest, by_dom, wrong, rng, args) -> dict[str, Counter]:
    from subnet.validator.verifier import Verifier

    detect: dict[str, Counter] = {}
    built, rp = [], []
    for dom, e in by_dom.items():
        mine = [it for it in honest if it.weights_hash == e.card.weights_hash]
        built += cheats(e, wrong[dom], mine[: args.n_cheat], rng)
        rp += replays(mine, e, rng)
    cv = Verifier(registry, table).verify_many([it for _, it in built])
    for (kind, _), v in zip(built, cv, strict=True):
        detect.setdefault(kind, Counter())[v.reason] += 1
    rv = Verifier(registry, table)
    for kind, orig, item in rp:  # the original first, then its replay
        rv.verify_many([orig])
        (v,) = rv.verify_many([item])
        detect.setdefault(kind, Counter())[v.reason] += 1
    return detect


def run_size(size: str, args, rng: random.Random) -> dict:
    import torch

    from subnet.engine.experts import build_tiny_experts
    from subnet.engine.offline import complete_all
    from subnet.validator.evidence import EvidenceThresholds
    from subnet.validator.verifier import ExpertRegistry, Item, Verifier

    paths = build_tiny_experts(Path(tempfile.gettempdir()) / f"dmoe-tiny-experts-{size}", size=size)
    per = args.n // len(paths)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(next(iter(paths.values())))  # one tokenizer for all
    max_context = json.loads((next(iter(paths.values())) / "expert.json").read_text())[
        "max_context"
    ]
    reqs = {dom: make_requests(per, rng, tok, max_context) for dom in paths}
    timing = Counter()
    honest: dict[str, list] = {}  # miner dtype -> Items
    pert_answers: dict[tuple[str, float], list] = {}
    wrong: dict[str, list] = {}
    for mdt in args.miner_dtypes:
        honest[mdt] = []
        for dom, path in paths.items():
            t0 = time.time()
            e = load(path, mdt, args.device)
            answers = honest_answers(e, reqs[dom])
            honest[mdt] += [Item(e.card.weights_hash, r, a, dtype=mdt)
                            for r, a in zip(reqs[dom], answers, strict=True)]  # fmt: skip
            for frac in PERTURB_ANSWER if mdt == args.miner_dtypes[0] else ():
                if frac != PERTURB_EVIDENCE:
                    pe = load(path, mdt, args.device, frac, seed=7)
                    ans = asyncio.run(complete_all(pe, reqs[dom][: args.n_cheat]))
                    pert_answers.setdefault((mdt, frac), []).extend(
                        Item(e.card.weights_hash, r, a, dtype=mdt)
                        for r, a in zip(reqs[dom], ans, strict=False)
                    )
            pe = load(path, mdt, args.device, PERTURB_EVIDENCE, seed=7)
            ans = asyncio.run(complete_all(pe, reqs[dom][: args.n_pert]))
            pert_answers.setdefault((mdt, PERTURB_EVIDENCE), []).extend(
                Item(e.card.weights_hash, r, a, dtype=mdt)
                for r, a in zip(reqs[dom], ans, strict=False)
            )
            timing[f"generate {mdt}"] += time.time() - t0
            print(f"  [{size}] generated {mdt} {dom} ({time.time() - t0:.0f}s)", flush=True)
    for dom in paths:  # the other expert answering this one's requests
        other = next(p for d, p in paths.items() if d != dom)
        oe = load(other, args.miner_dtypes[0], args.device)
        wrong[dom] = asyncio.run(complete_all(oe, reqs[dom][: args.n_cheat]))

    out: dict = {"pairs": {}, "timing_s": {}}
    for vdt in args.validator_dtypes:
        t0 = time.time()
        registry = ExpertRegistry.load_dir(
            next(iter(paths.values())).parent, device=args.device, dtype=vdt
        )
        by_dom = {e.card.domains[0]: e for e in registry.experts.values()}
        # Pass 1: loose thresholds, margins per pair.
        verifier = Verifier(registry, loose_table())
        measured = {}
        for mdt in args.miner_dtypes:
            vs = verifier.verify_many(honest[mdt])
            measured[f"{mdt}/{vdt}"] = margins(honest[mdt], vs)
        # Pass 2: derived thresholds, false positives and detection.
        table = args.table_for(measured)
        ev_th: EvidenceThresholds = table.evidence
        verifier = Verifier(registry, table)
        for mdt in args.miner_dtypes:
            pair = f"{mdt}/{vdt}"
            t1 = time.time()
            vs = verifier.verify_many(honest[mdt])
            verify_s = time.time() - t1
            fails = [(it, v) for it, v in zip(honest[mdt], vs, strict=True) if not v.ok]
            row = measured[pair]
            row.update(
                false_positives=len(fails),
                failures=[f"{v.reason}: {v.detail}" for _, v in fails[:10]],
                verify_s=round(verify_s, 2),
            )
            seq = [(v.stats, it.request.temperature == 0) for it, v in zip(honest[mdt], vs,
                                                                          strict=True)]  # fmt: skip
            row["evidence_honest"] = evidence_runs(seq, ev_th, rng, SHUFFLES)
            detect: dict[str, Counter] = {}
            fresh = Verifier(registry, table)
            for frac in PERTURB_ANSWER:
                items = pert_answers.get((mdt, frac))
                if not items:
                    continue
                pv = fresh.verify_many(items)
                detect[f"perturbed_{frac:.0%}"] = Counter(v.reason for v in pv)
                if frac == PERTURB_EVIDENCE:
                    pm = margins(items, pv)
                    row["perturbed_2%_lp_mse"] = pm["lp_mse"]
                    row["perturbed_2%_lp_ratio"] = pm["lp_ratio"]
                    seq = [(v.stats, it.request.temperature == 0)
                           for it, v in zip(items, pv, strict=True)]  # fmt: skip
                    row["evidence_perturbed_2%"] = evidence_runs(seq, ev_th, rng, SHUFFLES)
            # Cheats under every declared precision (judged with that pair's thresholds).
            detect.update(cheat_detection(registry, table, honest[mdt], by_dom, wrong, rng, args))
            row["detection"] = {k: dict(c) for k, c in detect.items()}
            row["detection_rate"] = {
                k: round(1 - c.get("ok", 0) / sum(c.values()), 4) for k, c in detect.items()
            }
            out["pairs"][pair] = row
        timing[f"verify {vdt}"] += time.time() - t0
        print(f"  [{size}] verified as {vdt} ({time.time() - t0:.0f}s)", flush=True)
    out["timing_s"] = {k: round(v, 1) for k, v in timing.items()}
    out["platform"] = f"torch {torch.__version__}, {args.device}"
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="test,default", help="comma list of test, default")
    # 500 per size: 1,000 honest answers per precision pair over the two sizes (~1 h on 2 cores).
    ap.add_argument("--n", type=int, default=500, help="honest answers per pair and size")
    ap.add_argument("--n-pert", type=int, default=240, help="2%%-perturbed answers per expert")
    ap.add_argument("--n-cheat", type=int, default=150, help="cheating answers per kind/expert")
    ap.add_argument("--miner-dtypes", default="float32,bfloat16,float16")
    ap.add_argument("--validator-dtypes", default="float32,bfloat16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--write", action="store_true", help="write subnet/data/verify_thresholds.json")
    ap.add_argument("--merge", action="store_true", help="keep pairs of the table not measured")
    ap.add_argument("--out", default=str(ROOT / "bench_results" / "calibrate_verify.json"))
    args = ap.parse_args()
    args.miner_dtypes = args.miner_dtypes.split(",")
    args.validator_dtypes = args.validator_dtypes.split(",")
    sizes = args.size.split(",")

    import torch

    from subnet.validator.evidence import EvidenceThresholds
    from subnet.validator.thresholds import TABLE_PATH, ThresholdTable

    torch.set_num_threads(1)
    rng = random.Random(2024)
    # Thresholds of a pair rest on every size measured so far in this run (pass 1 of each).
    seen: dict[str, list[dict]] = {}

    def table_for(measured: dict[str, dict]) -> ThresholdTable:
        for pair, m in measured.items():
            seen.setdefault(pair, []).append(m)
        return ThresholdTable.from_dict(build_table(seen))

    def build_table(seen: dict[str, list[dict]]) -> dict:
        pairs = {pair: derive(pair, ms) for pair, ms in seen.items()}
        return {"pairs": pairs, "evidence": EvidenceThresholds().to_dict()}

    args.table_for = table_for
    t0 = time.time()
    results = {size: run_size(size, args, rng) for size in sizes}
    final = build_table(seen)
    report = {"sizes": results, "table": final, "wall_s": round(time.time() - t0, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    fp = print_report(results, final)
    if args.write:
        write_table(final, results, args, TABLE_PATH)
    print(f"wrote {args.out}" + (f" and {TABLE_PATH}" if args.write else ""))
    return 0 if not fp else 1


def print_report(results: dict, table: dict) -> int:
    total_fp = 0
    head = f"{'size':8} {'pair':18} {'honest':>6} {'FP':>3} {'gap':>7} {'|err|':>7} {'z min':>6}"
    print(head + f" {'mse':>8} {'noise':>8} {'ev FP':>6} {'2% ev (answers)':>16}")
    for size, res in results.items():
        for pair, r in res["pairs"].items():
            total_fp += r["false_positives"] + r["evidence_honest"]["orders_drift"]
            pe = r.get("evidence_perturbed_2%") or {}
            got = f"{pe.get('orders_drift', 0)}/{pe.get('orders', 0)}"
            when = f"{pe.get('answers_to_drift_median')}/{pe.get('answers_to_drift_max')}"
            print(
                f"{size:8} {pair:18} {r['answers']:6} {r['false_positives']:3} "
                f"{r['max_gap']:7.4f} {r['max_logprob_err']:7.4f} {r['z_min']:6.2f} "
                f"{r['lp_mse']:8.2e} {r['lp_noise_mse']:8.2e} "
                f"{r['evidence_honest']['orders_drift']:>3}/{r['evidence_honest']['orders']:<2} "
                f"{got:>6} {when:>9}"
            )
            for kind, rate in r["detection_rate"].items():
                print(f"{'':28} detected {kind:16} {rate:7.2%}  {r['detection'][kind]}")
            for line in r["failures"]:
                print(f"{'':28} FP: {line}")
    print("thresholds:")
    for pair, entry in table["pairs"].items():
        t = entry["thresholds"]
        print(
            f"  {pair:18} greedy_max_gap {t['greedy_max_gap']:<7} logprob_tol "
            f"{t['logprob_tol']:<7} sampled_min_z {t['sampled_min_z']:<5} "
            f"noise_floor {entry['noise_floor']:.1e}"
        )
    return total_fp


def write_table(final: dict, results: dict, args, path: Path) -> None:
    data = {
        "about": "Verifier thresholds per (miner dtype)/(validator dtype) pair, with the honest "
        "margins they rest on. Regenerate: python scripts/calibrate_verify.py --write",
        "device": args.device,
        "pairs": {},
        "evidence": final["evidence"],
    }
    if args.merge and path.is_file():
        data["pairs"] = json.loads(path.read_text()).get("pairs", {})
    for pair, entry in final["pairs"].items():
        figures = {}
        for size, res in results.items():
            r = res["pairs"].get(pair)
            if r is None:
                continue
            figures[size] = {
                k: r[k]
                for k in ("answers", "false_positives", "max_gap", "max_logprob_err", "z_min",
                          "lp_mse", "lp_noise_mse", "end_logprob_min", "detection_rate")
            }  # fmt: skip
            figures[size]["evidence_honest_drift"] = r["evidence_honest"]["orders_drift"]
            pe = r.get("evidence_perturbed_2%") or {}
            figures[size]["perturbed_2%_answers_to_drift"] = [
                pe.get("answers_to_drift_median"),
                pe.get("answers_to_drift_max"),
            ]
        data["pairs"][pair] = {**entry, "measured_on": args.device, "figures": figures}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
