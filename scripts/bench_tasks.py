"""Can a miner tell the validator's synthetic tasks from user requests? (issue 13, item 4)

Organic traffic: held-out user-like prompts (`subnet/data/tasks/organic_heldout.txt`, neither the
task templates nor the experts' training text) sent as common clients send them (the `openai`
SDK's defaults, an app that sets max_tokens, LangChain's temperature 0.7 with system prompts,
greedy evaluation harnesses with seeds, stop lists, nucleus sampling, SDKs that send random
seeds), turned into miner requests by the gateway's own `openai_format.to_generate` and routed
by its domain classifier. A detector (logistic regression over every request field + word
n-grams + overlap with the public templates) is trained to tell tasks from those requests, with
5-fold cross-validation grouped by the underlying prompt (a task and the user prompt it was
built on never sit on both sides of a split); the strongest of three regularisations counts.

Modes: `old` (main's tasks: templates, max_tokens from {16, 32, 48, 64}, temperature from
{0, 0.7, 1.0}), `cold` (no organic traffic recorded yet), `warm` (after --warm organic requests,
while traffic keeps flowing). Prints a table, writes bench_results/bench_tasks.json.

    .venv/bin/python scripts/bench_tasks.py [--warm 2000] [--eval 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol import ChatMessage, ExpertCard, GenerateRequest  # noqa: E402
from subnet.validator import openai_format as oai  # noqa: E402
from subnet.validator import tasks  # noqa: E402
from subnet.validator.traffic import TrafficProfile, content_key  # noqa: E402

HELDOUT = tasks.DATA_DIR / "organic_heldout.txt"
MAX_TOKENS_CAP = 512  # the gateway's default cap
# The miners' expert: a production model's context, and the miner's default --max-new-tokens.
CARD = ExpertCard("org/model", "main", "0" * 64, tasks.DOMAINS, 8192, 8, "vllm", 512)
MINERS = 64  # serving miners the gateway spreads users over (a subnet has up to 256 uids)
LAMBDAS = (1e-4, 1e-3, 1e-2)
APP_SYSTEMS = (
    "You are a helpful assistant.",
    "You are a senior Python developer. Answer concisely.",
    "You are a patient math tutor. Show your steps.",
    "Answer in at most three sentences.",
    "You are Ada, the support assistant of a small online bookshop.",
)


@dataclass(frozen=True)
class Prompt:
    gid: int  # which held-out prompt (the cross-validation group)
    domain: str
    chat: bool
    turns: tuple[tuple[str, str], ...]  # chat turns, or (("prompt", text),)


def load_heldout(path: Path = HELDOUT) -> list[Prompt]:
    out: list[Prompt] = []
    for block in re.split(r"^=== ", path.read_text(encoding="utf-8"), flags=re.M)[1:]:
        header, _, body = block.partition("\n")
        domain, kind = header.split()
        body = body.rstrip("\n")
        if kind == "completion":
            turns: tuple[tuple[str, str], ...] = (("prompt", body),)
        elif body.startswith("--- "):
            parts = re.split(r"^--- (\w+)\n", body, flags=re.M)[1:]
            turns = tuple((parts[i], parts[i + 1].rstrip("\n")) for i in range(0, len(parts), 2))
        else:
            turns = (("user", body),)
        out.append(Prompt(len(out), domain, kind == "chat", turns))
    return out


# --- organic clients: the body each sends (fields it leaves out are the gateway's defaults)
def _sdk_defaults(rng: random.Random) -> dict:
    return {}


def _app_max_tokens(rng: random.Random) -> dict:
    key = rng.choice(("max_tokens", "max_completion_tokens"))
    return {key: rng.choice((100, 150, 200, 256, 300, 500))}


def _langchain(rng: random.Random) -> dict:
    return {"temperature": 0.7, "system": rng.random() < 0.5}


def _greedy_harness(rng: random.Random) -> dict:
    body: dict = {"temperature": 0, "max_tokens": rng.choice((128, 256, 512))}
    if rng.random() < 0.4:
        body["seed"] = rng.choice((0, 42, 1234))
    return body


def _stop_lists(rng: random.Random) -> dict:
    stop = rng.choice((["\n\n"], ["```"], ["Q:", "\n\n"], "\n", ["User:"]))
    return {"stop": stop, "temperature": rng.choice((0.2, 0.5)), "max_tokens": 200}


def _nucleus(rng: random.Random) -> dict:
    return {"temperature": rng.choice((0.9, 1.2)), "top_p": rng.choice((0.9, 0.95))}


def _random_seed(rng: random.Random) -> dict:
    return {"seed": rng.randrange(1 << 31), "system": True}


CLIENTS: tuple[tuple[float, Callable[[random.Random], dict]], ...] = (
    (0.33, _sdk_defaults),
    (0.15, _app_max_tokens),
    (0.20, _langchain),
    (0.12, _greedy_harness),
    (0.08, _stop_lists),
    (0.06, _nucleus),
    (0.06, _random_seed),
)


def organic_request(p: Prompt, rng: random.Random) -> tuple[GenerateRequest, str]:
    """(the request a miner receives, the gateway's domain) for one user request."""
    client = rng.choices([c for _, c in CLIENTS], [w for w, _ in CLIENTS])[0]
    body = client(rng)
    system = body.pop("system", False)
    body["model"] = "auto"
    if p.chat:
        msgs = [{"role": r, "content": c} for r, c in p.turns]
        if system and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": rng.choice(APP_SYSTEMS)})
        body["messages"] = msgs
    else:
        body["prompt"] = p.turns[0][1]
    req = oai.to_generate(body, chat=p.chat, max_tokens_cap=MAX_TOKENS_CAP)
    return req, oai.request_domain("auto", req, {})


def old_task(rng: random.Random) -> GenerateRequest:
    """main's make_task (before issue 13): templates, a fixed field mix, uniform domains."""
    prompt, _ = tasks.make_prompt(rng.choice(tasks.DOMAINS), rng)
    greedy = rng.random() < 0.5
    fields = dict(
        max_tokens=rng.choice((16, 32, 48, 64)),
        temperature=0.0 if greedy else rng.choice((0.7, 1.0)),
        top_p=1.0 if greedy else rng.choice((1.0, 0.95)),
        seed=None if greedy else rng.randrange(1 << 62),
    )
    if rng.random() < 0.5:
        return GenerateRequest(messages=(ChatMessage("user", prompt),), **fields)
    return GenerateRequest(prompt=prompt, **fields)


def simulate(
    mode: str, warm: int, n: int, seed: int, miners: int = MINERS
) -> tuple[list, list, dict]:
    """(organic [(req, gid)], tasks [(req, gid)], info) for one mode."""
    rng = random.Random(seed)
    prompts = load_heldout()
    profile = TrafficProfile()
    key_gid: dict[str, int] = {}
    organic, synthetic = [], []
    origins = {"organic": 0, "template": 0}
    for i in range(warm + n if mode == "warm" else n):
        p = rng.choice(prompts)
        req, domain = organic_request(p, rng)
        key_gid[content_key(req)] = p.gid
        if mode == "warm":
            profile.observe(req, domain, rng.randrange(miners), now=float(i))
        if i < warm and mode == "warm":
            continue
        organic.append((req, p.gid))
        if mode == "old":
            synthetic.append((old_task(rng), -1 - len(synthetic)))
            continue
        uid = rng.randrange(miners)
        domain = tasks.pick_domain(rng, tasks.DOMAINS, profile)
        task = tasks.make_task(domain, rng, profile, for_uid=uid, card=CARD)
        kind, _, key = task.source.partition(":")
        origins[kind] += 1
        synthetic.append((task.request, key_gid.get(key, -1 - len(synthetic))))
    return organic, synthetic, {"origins": origins}


# --- the detector
_WORD = re.compile(r"[A-Za-z_]+|\d+|[^\sA-Za-z_\d]")
_COMMON_MAX = (16, 32, 48, 64, 100, 128, 150, 200, 256, 300, 500, 512)


def _texts(req: GenerateRequest) -> list[tuple[str, str]]:
    if req.prompt is not None:
        return [("prompt", req.prompt)]
    return [(m.role, m.content) for m in req.messages or ()]


def field_features(req: GenerateRequest) -> list[float]:
    roles = [r for r, _ in _texts(req)]
    chars = [len(c) for _, c in _texts(req)]
    t, mt, seed = req.temperature, req.max_tokens, req.seed
    return [
        float(req.messages is not None),
        len(roles),
        float("system" in roles),
        roles.count("user"),
        roles.count("assistant"),
        math.log1p(sum(chars)),
        math.log1p(chars[-1]),
        math.log1p(mt),
        *(float(mt == v) for v in _COMMON_MAX),
        float(mt not in _COMMON_MAX),
        t,
        float(t == 0),
        float(t == 0.7),
        float(t == 1.0),
        req.top_p,
        float(req.top_p < 1),
        float(seed is not None),
        float(seed is not None and seed < 10_000),
        math.log10(1 + seed) if seed is not None else 0.0,
        len(req.stop),
        float(req.top_logprobs > 0),
        float(req.logprobs),
        float(req.stream),
    ]


def text_tokens(req: GenerateRequest, template_bigrams: frozenset) -> tuple[list[str], float]:
    """(word 1-2 grams with number shapes, field values as tokens; share of template bigrams)"""
    toks: list[str] = [f"stop={s!r}" for s in req.stop]
    bigrams = []
    for role, content in _texts(req):
        if role == "system":
            toks.append(f"sys={content}")
            continue
        words = [w.lower() for w in _WORD.findall(content)]
        words += [f"<num{len(w)}>" for w in words if w.isdigit()]
        toks += words
        pairs = [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        toks += pairs
        bigrams += pairs
        if words:
            toks += [f"<first>{words[0]}", f"<last>{words[-1]}"]
    overlap = sum(b in template_bigrams for b in bigrams) / max(1, len(bigrams))
    return toks, overlap


def template_bigrams(seed: int = 7, per_domain: int = 300) -> frozenset:
    """What a detector knows from the public templates: their word pairs, filled many times."""
    rng = random.Random(seed)
    out = set()
    for d in tasks.DOMAINS:
        for _ in range(per_domain):
            words = [w.lower() for w in _WORD.findall(tasks.make_prompt(d, rng)[0])]
            out.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return frozenset(out)


@dataclass
class Sparse:
    """Rows as (column, value) lists in CSR arrays: the n-gram space is large, rows are short."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    dim: int

    def rows(self, idx: np.ndarray) -> Sparse:
        parts = [
            (self.indices[a:b], self.data[a:b])
            for a, b in zip(self.indptr[idx], self.indptr[idx + 1], strict=True)
        ]
        lens = np.array([len(p[0]) for p in parts])
        return Sparse(
            np.concatenate([[0], np.cumsum(lens)]),
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            self.dim,
        )

    def dot(self, w: np.ndarray) -> np.ndarray:
        return np.add.reduceat(self.data * w[self.indices], self.indptr[:-1])

    def tdot(self, r: np.ndarray) -> np.ndarray:
        row = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        return np.bincount(self.indices, weights=self.data * r[row], minlength=self.dim)


def featurize(reqs: list[GenerateRequest], which: str, hash_bits: int = 18) -> Sparse:
    """`fields`, `text` or `all`; fields standardised, n-grams log-counted and L2-normalised."""
    tb = template_bigrams()
    dense = np.array([field_features(r) for r in reqs], dtype=np.float64)
    dense = (dense - dense.mean(0)) / (dense.std(0) + 1e-9)
    n_dense = dense.shape[1]
    indptr, indices, data = [0], [], []
    for i, req in enumerate(reqs):
        cols, vals = [0], [1.0]  # bias
        if which in ("fields", "all"):
            cols += list(range(1, 1 + n_dense))
            vals += list(dense[i])
        if which in ("text", "all"):
            toks, overlap = text_tokens(req, tb)
            counts: dict[int, float] = {}
            for t in toks:
                h = 2 + n_dense + (zlib.crc32(t.encode()) & ((1 << hash_bits) - 1))
                counts[h] = counts.get(h, 0.0) + 1.0
            norm = math.sqrt(sum(math.log1p(c) ** 2 for c in counts.values())) or 1.0
            cols.append(1 + n_dense)
            vals.append(overlap)
            for h, c in counts.items():
                cols.append(h)
                vals.append(math.log1p(c) / norm)
        indices += cols
        data += vals
        indptr.append(len(indices))
    # Only columns some row uses: the weight vectors stay as small as the vocabulary.
    used, cols = np.unique(np.array(indices), return_inverse=True)
    return Sparse(np.array(indptr), cols, np.array(data), len(used))


def fit_logreg(x: Sparse, y: np.ndarray, lam: float, steps: int = 300) -> np.ndarray:
    """L2-regularised logistic regression by full-batch Adam."""
    w = np.zeros(x.dim)
    m = np.zeros(x.dim)
    v = np.zeros(x.dim)
    for t in range(1, steps + 1):
        p = 1 / (1 + np.exp(-x.dot(w)))
        g = x.tdot(p - y) / len(y) + lam * w
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return w


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def grouped_cv_auc(
    x: Sparse, y: np.ndarray, groups: np.ndarray, lam: float, folds: int, seed: int, steps: int
) -> float:
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(uniq, rng.permutation(len(uniq)) % folds, strict=True))
    fold = np.array([fold_of[g] for g in groups])
    scores = np.zeros(len(y))
    for k in range(folds):
        test, train = np.where(fold == k)[0], np.where(fold != k)[0]
        w = fit_logreg(x.rows(train), y[train], lam, steps)
        scores[test] = x.rows(test).dot(w)
    return auc(scores, y)


def detect(
    organic: list, synthetic: list, which: str, *, folds: int = 5, seed: int = 0, steps: int = 300
) -> float:
    """The detector's cross-validated AUC (synthetic = positive), its best regularisation."""
    reqs = [r for r, _ in organic] + [r for r, _ in synthetic]
    y = np.array([0] * len(organic) + [1] * len(synthetic), dtype=np.float64)
    groups = np.array([g for _, g in organic] + [g for _, g in synthetic])
    x = featurize(reqs, which)
    return max(grouped_cv_auc(x, y, groups, lam, folds, seed, steps) for lam in LAMBDAS)


# --- organic verification sampling: how often must user answers be checked?
def exposed_tasks(h: float, auc: float) -> float:
    """Share of tasks a miner also cheats on when it cheats on the share `h` of requests its
    detector (of this AUC; equal-variance binormal scores) finds most organic."""
    if h >= 1.0:
        return 1.0
    if auc >= 1.0:
        return 0.0
    nd = NormalDist()
    d = math.sqrt(2) * nd.inv_cdf(max(auc, 0.5))
    return 1 - nd.cdf(d + nd.inv_cdf(1 - h))


def expected_loss(lam: float, ban_windows: float) -> float:
    """Share of a window's reward lost when catches arrive at rate `lam` per window and the first
    one zeroes the score for the rest of the window (then `ban_windows` more windows)."""
    if lam <= 0:
        return 0.0
    return 1 - (1 - math.exp(-lam)) / lam + ban_windows * (1 - math.exp(-lam))


def min_verify_share(
    auc: float, n_org: int, n_task: int, q: float, g: float, ban_windows: float = 0.0
) -> float | None:
    """Smallest share p of organic answers verified (0.001 steps; None: not even p = 1) so that
    cheating on any share h of what the miner takes for organic loses more reward than it saves.

    Per evidence window a miner serves n_org organic answers and n_task tasks, paid evenly per
    answer; a cheap answer saves the share g of an answer's pay (g < 1, or honest serving would
    not pay at all); every task and a share p of organic answers are verified, and a verified
    cheap answer fails with probability q. Catches come at the rate
    lam = q * (p * h * n_org + t(h) * n_task), t from `exposed_tasks`."""
    hs = [i / 100 for i in range(1, 101)]
    for k in range(0, 1001):
        p = k / 1000
        if all(
            expected_loss(q * (p * h * n_org + exposed_tasks(h, auc) * n_task), ban_windows)
            > g * (h * n_org + exposed_tasks(h, auc) * n_task) / (n_org + n_task)
            for h in hs
        ):
            return p
    return None


def deterrence_rows(aucs: dict[str, float]) -> list[dict]:
    rows = []
    for label, a in aucs.items():
        for q in (0.9, 0.2):
            for n_org, n_task in ((20, 20), (100, 20), (500, 90)):
                for g in (0.25, 0.5, 0.9):
                    p = min_verify_share(a, n_org, n_task, q, g)
                    p_ban = min_verify_share(a, n_org, n_task, q, g, ban_windows=1.0)
                    rows.append(
                        {"tasks": label, "auc": a, "q": q, "organic": n_org, "task_n": n_task}
                        | {"g": g, "p": p, "p_ban_1_window": p_ban}
                    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warm", type=int, default=2000, help="organic requests recorded first")
    ap.add_argument("--eval", type=int, default=2000, help="organic requests and tasks compared")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--miners", type=int, default=MINERS, help="miners users are spread over")
    ap.add_argument("--out", type=Path, default=ROOT / "bench_results" / "bench_tasks.json")
    args = ap.parse_args()
    t0 = time.time()
    rows = {}
    for mode in ("old", "cold", "warm"):
        organic, synthetic, info = simulate(mode, args.warm, args.eval, args.seed, args.miners)
        rows[mode] = {
            **{
                f"auc_{w}": round(detect(organic, synthetic, w, seed=args.seed), 3)
                for w in ("fields", "text", "all")
            },
            **info,
        }
    print(
        f"detector AUC, synthetic vs organic ({args.eval} each; 0.5 = indistinguishable, target <= 0.6)"
    )
    print(f"{'mode':<6} {'fields':>7} {'text':>7} {'all':>7}  tasks built on organic prompts")
    for mode, r in rows.items():
        share = (
            r["origins"]["organic"] / max(1, sum(r["origins"].values())) if mode != "old" else 0.0
        )
        print(
            f"{mode:<6} {r['auc_fields']:>7.3f} {r['auc_text']:>7.3f} {r['auc_all']:>7.3f}  {share:.0%}"
        )
    aucs = {"old": rows["old"]["auc_all"], "warm": rows["warm"]["auc_all"]}
    deter = deterrence_rows(aucs)
    print("\nshare p of organic answers to verify so that cheating on users does not pay")
    print("(a caught miner loses its score for the rest of the evidence window; q: chance a")
    print(" verified cheap answer fails; g: share of an answer's pay a cheap answer saves)")
    print(f"{'tasks':<6} {'AUC':>5} {'q':>4} {'organic/window':>14} {'tasks/window':>12}", end="")
    print(f" {'g':>5} {'p':>6} {'p, +1 window ban':>16}")
    for r in deter:
        p, pb = ("> 1" if x is None else f"{x:.3f}" for x in (r["p"], r["p_ban_1_window"]))
        print(
            f"{r['tasks']:<6} {r['auc']:>5.3f} {r['q']:>4} {r['organic']:>14} {r['task_n']:>12} "
            f"{r['g']:>5} {p:>6} {pb:>16}"
        )
    out = {
        "args": {"warm": args.warm, "eval": args.eval, "seed": args.seed, "miners": args.miners},
        "heldout_prompts": len(load_heldout()),
        "modes": rows,
        "verify_share": deter,
        "wall_s": round(time.time() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out} ({out['wall_s']} s)")


if __name__ == "__main__":
    main()
