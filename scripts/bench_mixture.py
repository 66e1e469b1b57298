"""Mixture benchmark (offline): does routing by the learned gate beat the best single expert?

    .venv/bin/python scripts/bench_mixture.py [--size default|test] [--train 400] [--eval 60]

1. Builds (or reuses) the offline experts and loads them as the validator's reference copies.
2. Builds a held-out, mixed-domain evaluation set that is neither training text nor task
   templates (stdlib modules the code expert never saw, docstrings and license prose, fresh
   arithmetic in symbols and in words, structured data over other tables), and a separate
   training stream: the validator's own synthetic tasks mixed with organic-like prompts.
3. Measures every expert on every item: mean per-token log-likelihood of the reference
   continuation given the prompt (`gate_measure.measure_quality`), and exact-match accuracy of
   its greedy answer where one is checkable (symbolic arithmetic).
4. Routes each item by: the best single expert, the oracle (best expert per item), the
   regular-expression gate (`openai_format.classify` -> the expert declaring that domain) and
   the learned gate (`subnet.validator.gate`, trained online on the training stream the way the
   validator would: `observe(prompt, measured qualities)`), and reports
   `gap_closed = (learned - best_single) / (oracle - best_single)`. Target >= 0.9, above regex.

Writes bench_results/bench_mixture.json and bench_mixture.png. The hook for routing measured
elsewhere (a gateway on a localnet): `--export-eval FILE` writes the evaluation prompts, and
`--routes NAME=FILE` scores a JSON list of the weights hash each item was routed to
(`score_routes`), reported beside the offline gates.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import statistics
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from subnet.engine import corpora  # noqa: E402
from subnet.validator import tasks  # noqa: E402
from subnet.validator.gate import Gate, GateConfig  # noqa: E402
from subnet.validator.gate_measure import measure_quality  # noqa: E402
from subnet.validator.openai_format import classify  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])
# Stdlib modules in no expert's corpus (`corpora.STDLIB_FILES`, `corpora.PROSE_FILES`); the
# evaluation and the training stream never share a file.
EVAL_FILES = ("calendar.py", "csv.py", "pprint.py", "shutil.py", "tempfile.py", "contextlib.py")
TRAIN_FILES = ("base64.py", "gettext.py", "mimetypes.py", "optparse.py", "locale.py", "uuid.py")
WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()


@dataclass(frozen=True)
class Item:
    domain: str
    prompt: str
    continuation: str
    answer: int | None = None  # checkable: the integer a greedy answer must start with


# ---- the items -------------------------------------------------------------------------------


def _split(text: str, rng: random.Random, lo: int = 40, hi: int = 120) -> tuple[str, str] | None:
    """Cut prose at a word boundary: the first lo..hi characters prompt the rest."""
    cut = text.rfind(" ", lo, hi)
    if cut < 0 or len(text) - cut < 40:
        return None
    return text[:cut], text[cut : cut + 300]


def code_items(files: tuple[str, ...]) -> list[Item]:
    """Function bodies from stdlib modules: from the signature, or a fragment from the middle
    (what users paste: no `def`, often none of the rule's code markers either)."""
    out = []
    for name in files:
        path = STDLIB / name
        if not path.is_file():
            continue
        src = path.read_text(encoding="utf-8", errors="replace")
        lines = src.splitlines()
        for node in ast.walk(ast.parse(src)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            doc = node.body[0] if ast.get_docstring(node) else None
            skip = set(range(doc.lineno, doc.end_lineno + 1)) if doc else set()
            body = [
                lines[i - 1]
                for i in range(node.lineno, node.end_lineno + 1)
                if i not in skip
                and lines[i - 1].strip()
                and not lines[i - 1].strip().startswith("#")
            ]
            if len(body) < 5:
                continue
            at = 0 if len(out) % 2 == 0 or len(body) < 9 else len(body) // 2 - 1
            part = body[at : at + 8]
            indent = min(len(b) - len(b.lstrip()) for b in part)
            part = [b[indent:] for b in part]
            out.append(Item("code", "\n".join(part[:2]) + "\n", "\n".join(part[2:]) + "\n"))
    return out


def prose_items(files: tuple[str, ...], rng: random.Random, license_half: int) -> list[Item]:
    """English prose: docstring paragraphs of stdlib modules, and one half of the license."""
    paras = [
        p
        for name in files
        if (STDLIB / name).is_file()
        for p in corpora.docstring_paragraphs(STDLIB / name)
    ]
    lic = STDLIB / "LICENSE.txt"
    if lic.is_file():
        ps = corpora.prose_paragraphs(lic.read_text(encoding="utf-8", errors="replace"))
        paras += list(dict.fromkeys(ps))[license_half::2]  # its licenses repeat paragraphs
    out = []
    for p in paras:
        if len(p) >= 120 and (cut := _split(p, rng)):
            out.append(Item("general", *cut))
    return out


def math_items(rng: random.Random, n: int, seen: set[str]) -> list[Item]:
    """Arithmetic in symbols (checkable, facts the math expert never saw) and in words."""
    out: list[Item] = []
    while len(out) < n:
        a, b, c = rng.randint(0, 99), rng.randint(0, 99), rng.randint(2, 12)
        op, val = rng.choice((("+", a + b), ("-", a - b), ("*", c * (b % 13))))
        a = c if op == "*" else a
        b = b % 13 if op == "*" else b
        fact = f"{a} {op} {b} = {val}"
        kind = rng.randrange(3)
        if kind < 2 and fact not in seen:
            ctx = [corpora.math_line(rng) for _ in range(kind)]
            prompt = "\n".join([*ctx, f"{a} {op} {b} ="])
            out.append(Item("math", prompt, f" {val}\n{corpora.math_line(rng)}\n", val))
        elif kind == 2 and op != "-":
            x, y = rng.randint(0, 12), rng.randint(0, 12)
            verb, res = rng.choice((("plus", x + y), ("times", x * y)))
            wx, wy = WORDS[x], WORDS[y]
            q = rng.choice((f"What is {wx} {verb} {wy}?", f"How much is {x} {verb} {y}?"))
            out.append(Item("math", q, f" {wx.capitalize()} {verb} {wy} is {res}."))
    return out


TABLES = {
    "books": ("title", "author", "year", "pages"),
    "flights": ("code", "origin", "destination", "seats"),
    "stations": ("station", "date", "temperature", "rainfall"),
    "accounts": ("account_id", "owner", "balance", "currency"),
}
VALUES = {
    "title": ["Field notes", "Letters home", "The long road", "Small hours", "Salt and iron"],
    "author": ["Ada Lovelace", "Mary Shelley", "Rosalind Franklin", "Alan Turing"],
    "code": ["TP204", "LH1172", "AF83", "KL1391", "IB3110"],
    "origin": ["LIS", "OPO", "AMS", "CDG", "MAD"],
    "destination": ["FRA", "BCN", "OSL", "ATH", "DUB"],
    "station": ["valencia", "bergen", "windhoek", "tromso", "seville"],
    "owner": ["ada", "mary", "rosalind", "alan", "grace"],
    "currency": ["EUR", "USD", "NOK", "GBP"],
}


def _val(col: str, rng: random.Random):
    if col in VALUES:
        return rng.choice(VALUES[col])
    if col == "date":
        return f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if col in ("temperature", "rainfall", "balance"):
        return round(rng.uniform(0, 40 if col != "balance" else 5000), 1)
    return rng.randint(1, 1999 if col in ("year", "account_id") else 400)


def data_items(rng: random.Random, n: int) -> list[Item]:
    """JSON, SQL, CSV and shell over tables the data expert never saw."""
    out = []
    for _ in range(n):
        table = rng.choice(sorted(TABLES))
        cols = TABLES[table]
        rows = [{c: _val(c, rng) for c in cols} for _ in range(3)]
        lit = [", ".join(repr(r[c]) for c in cols) for r in rows]
        kind = rng.randrange(6)
        if kind == 5:  # rows of a table already on the screen, no header
            text = "\n".join(",".join(str(r[c]) for c in cols) for r in rows)
            cut = text.index("\n") + 1
        elif kind == 0:
            text = json.dumps(rows, indent=2)
            cut = text.index("\n", text.index(f'"{cols[1]}"'))
        elif kind == 1:
            text = f"INSERT INTO {table} ({', '.join(cols)}) VALUES\n" + ",\n".join(
                f"  ({v})" for v in lit
            )
            cut = text.index("\n") + 1
        elif kind == 2:
            text = "\n".join([",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows])
            cut = text.index("\n") + 1
        elif kind == 3:
            by, key, val = cols[1], rng.choice(cols[2:]), repr(rows[0][cols[0]])
            ask, sql = rng.choice(
                (
                    (
                        f"Write a SQL query that counts the {table} per {by}.",
                        f"SELECT {by}, COUNT(*) AS n FROM {table} GROUP BY {by} ORDER BY n DESC;",
                    ),
                    (
                        f"Which query gives the {key} of the {table} whose {cols[0]} is {val}?",
                        f"SELECT {key} FROM {table} WHERE {cols[0]} = {val};",
                    ),
                    (
                        f"I need the {rng.randint(2, 20)} {table} with the highest {key}, please.",
                        f"SELECT * FROM {table} ORDER BY {key} DESC LIMIT 10;",
                    ),
                )
            )
            text = f"{ask}\n{sql}"
            cut = len(ask) + 1
        else:
            text = f"$ head -n 3 {table}.csv\n{','.join(cols)}\n" + "\n".join(
                ",".join(str(r[c]) for c in cols) for r in rows[:2]
            )
            cut = text.index("\n") + 1
        out.append(Item("data", text[:cut], text[cut:]))
    return out


def function_questions(rng: random.Random, n: int) -> list[Item]:
    """Short code requests in plain language, answered with code."""
    ops = {"sum": "a + b", "difference": "a - b", "product": "a * b", "larger": "max(a, b)"}
    out = []
    for _ in range(n):
        what = rng.choice(sorted(ops))
        name = rng.choice(("combine", "pair_value", "merge_two", "calc", "apply_op"))
        name += str(rng.randint(1, 99))
        q = rng.choice(
            (
                f"Write a Python function {name}(a, b) that returns the {what} of a and b.",
                f"How do I get the {what} of two numbers a and b in Python, as {name}?",
                f"Python: {name} should give back the {what} of its two arguments.",
            )
        )
        out.append(Item("code", q + "\n", f"def {name}(a, b):\n    return {ops[what]}\n"))
    return out


def eval_set(per_domain: int, seed: int = 7) -> list[Item]:
    """The held-out evaluation items: `per_domain` of each of code, math, general, data."""
    rng = random.Random(seed)
    seen = set(corpora.math_corpus(400_000).splitlines())
    code = code_items(EVAL_FILES)
    pools = {
        "code": rng.sample(code, min(len(code), per_domain - per_domain // 5))
        + function_questions(rng, per_domain // 5),
        "math": math_items(rng, per_domain, seen),
        "general": prose_items(EVAL_FILES, rng, 0),
        "data": data_items(rng, per_domain),
    }
    items = [it for pool in pools.values() for it in rng.sample(pool, min(per_domain, len(pool)))]
    rng.shuffle(items)
    return items


def train_stream(
    n: int, seed: int = 11, exclude: frozenset[str] = frozenset()
) -> list[str | tuple[str, str]]:
    """What a validator measures as it runs: half its synthetic task prompts (the whole prompt
    is the evidence), half organic-like requests with the answer that came back. Prompts in
    `exclude` (the evaluation set's) are left out."""
    rng = random.Random(seed)
    seen = set(corpora.math_corpus(400_000).splitlines())
    per = max(1, n // 8)
    organic = (
        code_items(TRAIN_FILES)[: per - per // 5]
        + function_questions(rng, per // 5)
        + math_items(rng, per, seen)
        + prose_items(TRAIN_FILES, rng, 1)[:per]
        + data_items(rng, per)
    )
    stream: list[str | tuple[str, str]] = [
        (it.prompt, it.continuation) for it in organic if it.prompt not in exclude
    ]
    while len(stream) < n:
        stream.append(tasks.make_prompt(rng.choice(tasks.DOMAINS), rng)[0])
    rng.shuffle(stream)
    return stream[:n]


# ---- measuring and routing -------------------------------------------------------------------


def greedy_correct(experts: dict, items: list[Item]) -> np.ndarray:
    """items x experts: 1 if the expert's greedy answer starts with the right integer, else 0;
    NaN for items without a checkable answer."""
    import torch

    out = np.full((len(items), len(experts)), np.nan)
    for j, e in enumerate(experts.values()):
        tok = e.tokenizer
        for i, it in enumerate(items):
            if it.answer is None:
                continue
            ids = torch.tensor(
                [[tok.eos_token_id, *tok.encode(it.prompt, add_special_tokens=False)]]
            )
            with torch.inference_mode():
                gen = e.model.generate(
                    ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id
                )
            text = tok.decode(gen[0, ids.shape[1] :].tolist(), skip_special_tokens=True)
            m = re.match(r"\s*(-?\d+)", text)
            out[i, j] = float(m is not None and int(m.group(1)) == it.answer)
    return out


def matrix(quality: list[dict[str, float]], hashes: list[str]) -> np.ndarray:
    return np.array([[q.get(h, np.nan) for h in hashes] for q in quality], dtype=float)


def score_routes(
    items: list[Item], hashes: list[str], q: np.ndarray, acc: np.ndarray, routes: list[str]
) -> dict:
    """Quality of a routing: mean log-likelihood of the chosen expert per item (and by domain),
    exact-match accuracy where checkable, and the share of items routed to the oracle's pick.
    `routes[i]` is the weights hash item i went to (from any gate, offline or a gateway)."""
    if len(routes) != len(items):
        raise ValueError(f"{len(routes)} routes for {len(items)} items")
    col = np.array([hashes.index(h) for h in routes])
    rows = np.arange(len(items))
    chosen = q[rows, col]
    checkable = ~np.isnan(acc[:, 0])
    domains = sorted({it.domain for it in items})
    by = {
        d: float(np.mean([c for c, it in zip(chosen, items, strict=True) if it.domain == d]))
        for d in domains
    }
    return {
        "mean_logprob": float(np.mean(chosen)),
        "accuracy": float(np.mean(acc[rows, col][checkable])) if checkable.any() else None,
        "oracle_agreement": float(np.mean(col == np.argmax(q, axis=1))),
        "by_domain": by,
    }


def gate_routes(gate: Gate, items: list[Item], cards: dict[str, tuple[str, ...]]) -> list[str]:
    return [gate.rank(it.prompt, cards)[0][0] for it in items]


def regex_routes(items: list[Item], cards: dict[str, tuple[str, ...]], fallback: str) -> list[str]:
    by_domain = {d: h for h, ds in cards.items() for d in ds}
    return [by_domain.get(classify(it.prompt), fallback) for it in items]


def gap(x: float, best: float, oracle: float) -> float:
    return (x - best) / (oracle - best) if oracle > best else 1.0


def run_bench(
    experts: dict,
    items: list[Item],
    stream: list[str | tuple[str, str]],
    *,
    checkpoints: tuple[int, ...] = (0, 25, 50, 100, 200, 400, 800, 1200),
    gate_cfg: GateConfig = GateConfig(),
) -> dict:
    """The whole offline benchmark over loaded experts (weights hash -> LoadedExpert)."""
    hashes = list(experts)
    cards = {h: tuple(e.card.domains) for h, e in experts.items()}
    q = matrix(measure_quality(experts, [(it.prompt, it.continuation) for it in items]), hashes)
    keep = ~np.isnan(q).any(axis=1)
    items, q = [it for it, k in zip(items, keep, strict=True) if k], q[keep]
    acc = greedy_correct(experts, items)
    single = hashes[int(np.argmax(q.mean(axis=0)))]
    routes = {
        "best_single": [single] * len(items),
        "oracle": [hashes[j] for j in np.argmax(q, axis=1)],
        "regex_gate": regex_routes(items, cards, single),
    }
    train_q = measure_quality(experts, stream)
    gate, curve = Gate(gate_cfg), []
    for k, (text, qual) in enumerate(zip(stream, train_q, strict=True), start=1):
        if k - 1 in checkpoints:
            curve.append((k - 1, gate_routes(gate, items, cards)))
        gate.observe(text if isinstance(text, str) else text[0], qual, cards)
    curve.append((len(stream), gate_routes(gate, items, cards)))
    routes["learned_gate"] = curve[-1][1]
    out = {name: score_routes(items, hashes, q, acc, r) for name, r in routes.items()}
    best, oracle = out["best_single"]["mean_logprob"], out["oracle"]["mean_logprob"]
    out["gap_closed"] = gap(out["learned_gate"]["mean_logprob"], best, oracle)
    out["regex_gap_closed"] = gap(out["regex_gate"]["mean_logprob"], best, oracle)
    out["learning_curve"] = [
        {
            "observations": k,
            "gap_closed": gap(score_routes(items, hashes, q, acc, r)["mean_logprob"], best, oracle),
        }
        for k, r in curve
    ]
    out["per_domain"] = {
        d: {name: out[name]["by_domain"][d] for name in routes} for d in out["oracle"]["by_domain"]
    }
    out["per_domain_items"] = {d: sum(it.domain == d for it in items) for d in out["per_domain"]}
    out["experts"] = {
        h: {
            "model_id": experts[h].card.model_id,
            "domains": list(cards[h]),
            "mean_logprob": float(q[:, j].mean()),
            "oracle_share": float(np.mean(np.argmax(q, axis=1) == j)),
        }
        for j, h in enumerate(hashes)
    }
    out["best_single"]["expert"] = experts[single].card.model_id
    out["gate_latency_ms"] = gate_latency(gate, items, cards)
    out["gate_evidence"] = {experts[h].card.model_id: n for h, n in gate.evidence().items()}
    out["_routes"], out["_items"], out["_hashes"], out["_q"], out["_acc"] = (
        routes,
        items,
        hashes,
        q,
        acc,
    )
    return out


def gate_latency(gate: Gate, items: list[Item], cards: dict) -> dict:
    """p50/p95 of one `rank` and one `observe` call (ms), over the evaluation prompts."""
    ranks, observes = [], []
    probe = Gate.from_dict(gate.to_dict(), gate.cfg)
    fake = {h: -3.0 for h in cards}
    for it in items:
        t = time.perf_counter()
        gate.rank(it.prompt, cards)
        ranks.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        probe.observe(it.prompt, fake)
        observes.append((time.perf_counter() - t) * 1e3)
    return {
        "rank_p50": statistics.median(ranks),
        "rank_p95": float(np.percentile(ranks, 95)),
        "observe_p50": statistics.median(observes),
        "prompt_chars_p50": statistics.median(len(it.prompt) for it in items),
    }


# ---- report ----------------------------------------------------------------------------------

GATES = ("best_single", "oracle", "regex_gate", "learned_gate")


def print_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    domains = list(res["per_domain"])
    t = Table(title="mixture benchmark: mean log-likelihood per token (nats; higher is better)")
    for col in ("routing", "all", *domains, "accuracy", "picks oracle's"):
        t.add_column(col, justify="right")
    for name in (*GATES, *[k for k in res.get("extra_routes", {})]):
        r = res[name] if name in GATES else res["extra_routes"][name]
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.2f}"
        t.add_row(
            name,
            f"{r['mean_logprob']:.3f}",
            *[f"{r['by_domain'][d]:.3f}" for d in domains],
            acc,
            f"{r['oracle_agreement']:.2f}",
        )
    con = Console()
    con.print(t)
    lat = res["gate_latency_ms"]
    con.print(
        f"gap closed: learned {res['gap_closed']:.3f}, regex {res['regex_gap_closed']:.3f}  "
        f"(best single: {res['best_single']['expert']}; items per domain "
        f"{res['per_domain_items']})\n"
        f"gate latency: rank p50 {lat['rank_p50']:.3f} ms, p95 {lat['rank_p95']:.3f} ms; "
        f"observe p50 {lat['observe_p50']:.3f} ms (prompts of {lat['prompt_chars_p50']:.0f} "
        "chars median)"
    )


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    domains = list(res["per_domain"])
    width = 0.2
    for k, name in enumerate(GATES):
        vals = [res["per_domain"][d][name] for d in domains]
        ax1.bar([i + k * width for i in range(len(domains))], vals, width, label=name)
    ax1.set_xticks([i + 1.5 * width for i in range(len(domains))], domains)
    ax1.set_ylabel("mean log-likelihood per token (nats)")
    ax1.set_title("quality of the routed expert, by domain")
    ax1.legend(fontsize=8)
    curve = res["learning_curve"]
    ax2.plot(
        [c["observations"] for c in curve],
        [c["gap_closed"] for c in curve],
        "o-",
        label="learned gate",
    )
    ax2.axhline(res["regex_gap_closed"], color="gray", ls="--", label="regex gate")
    ax2.axhline(0.9, color="green", ls=":", label="target 0.9")
    ax2.set_xscale("symlog", linthresh=25)
    ax2.set_xlabel("observations (validator measurements)")
    ax2.set_ylabel("gap closed (best single -> oracle)")
    ax2.set_title("learned gate, trained online")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_experts(size: str, experts_dir: Path | None) -> dict:
    from subnet.engine.buildbar import build_with_bar
    from subnet.engine.loading import load_expert

    default = "dmoe-tiny-experts-test" if size == "test" else "dmoe-experts"
    out = experts_dir or Path(
        os.environ.get("DMOE_EXPERTS_DIR") or Path(tempfile.gettempdir()) / default
    )
    paths = build_with_bar(out, size)
    loaded = [load_expert(p, device="cpu", dtype="float32") for p in paths.values()]
    return {e.card.weights_hash: e for e in loaded}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="default", choices=["default", "test"])
    p.add_argument("--experts-dir", type=Path, default=None, help="build/reuse experts here")
    p.add_argument("--eval", type=int, default=60, help="evaluation items per domain")
    p.add_argument("--train", type=int, default=1600, help="training observations")
    p.add_argument("--export-eval", type=Path, help="write the evaluation items (JSON) and exit")
    p.add_argument(
        "--routes",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="score routes measured elsewhere: FILE holds a JSON list of weights hashes, one "
        "per evaluation item in --export-eval order (e.g. what a localnet gateway chose)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench_results" / "bench_mixture.json")
    args = p.parse_args()

    items = eval_set(args.eval)
    if args.export_eval:
        args.export_eval.write_text(json.dumps([asdict(it) for it in items], indent=1))
        print(f"wrote {len(items)} evaluation items to {args.export_eval}")
        return 0
    experts = load_experts(args.size, args.experts_dir)
    t0 = time.monotonic()
    stream = train_stream(args.train, exclude=frozenset(it.prompt for it in items))
    res = run_bench(experts, items, stream)
    res["extra_routes"] = {}
    for spec in args.routes:
        name, _, file = spec.partition("=")
        routes = json.loads(Path(file).read_text())
        if len(routes) != len(items) or len(res["_items"]) != len(items):
            print(f"--routes {name}: {len(routes)} routes for {len(items)} items", file=sys.stderr)
            return 2
        res["extra_routes"][name] = score_routes(
            items, res["_hashes"], res["_q"], res["_acc"], routes
        )
    res["seconds"] = time.monotonic() - t0
    res["config"] = {"size": args.size, "eval_per_domain": args.eval, "train": args.train}
    print_table(res)
    public = {k: v for k, v in res.items() if not k.startswith("_")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(public, indent=2))
    plot(res, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
