"""Rewrite README.md's figures block from the benchmarks' JSON in bench_results/.

    .venv/bin/python scripts/render_figures.py [--results bench_results] [--readme README.md]
        [--machine "2 CPU cores shared with other work, no GPU"] [--check]

Every `scripts/bench_*.py` (and `scripts/gpu_check.sh`) writes one JSON under bench_results/;
this script turns each file it knows into a compact table (key figures, the command that
regenerates them, when the file was written and what the JSON says about the machine) and
replaces the text between `<!-- figures:begin -->` and `<!-- figures:end -->` in the README, so
no figure in it is typed by hand. Files it has no renderer for are named on stderr and skipped;
a file that does not parse, or lacks a figure its renderer needs, stops the run with the file and
the missing key named (the README is left as it was). `--check` exits 1 when the block is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
PY = ".venv/bin/python scripts/"


class FigureError(ValueError):
    """A results file that cannot be rendered; the message names the file and the key."""


@dataclass(frozen=True)
class Figures:
    name: str  # bench_results file stem
    what: str  # one line: what was measured
    command: str  # what regenerates the file
    machine: str  # what the JSON says about the machine ("" when nothing)
    rows: list[tuple[str, str]]  # (figure, value)


class Doc:
    """A loaded JSON document whose lookups name the file and the key when they fail."""

    def __init__(self, path: Path, data: Any):
        self.path, self.data = path, data

    def get(self, dotted: str, default: Any = ...) -> Any:
        node = self.data
        for part in dotted.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif (
                isinstance(node, list)
                and part.lstrip("-").isdigit()
                and -len(node) <= int(part) < len(node)
            ):
                node = node[int(part)]
            elif default is not ...:
                return default
            else:
                raise FigureError(f"{self.path}: missing '{dotted}' (rerun the benchmark)")
        return node

    def num(self, dotted: str) -> float:
        v = self.get(dotted)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise FigureError(f"{self.path}: '{dotted}' is {v!r}, not a number")
        return float(v)


def _flags(pairs: list[tuple[str, Any, Any]]) -> str:
    """' --flag value' for each (flag, value, default) whose value is not the default."""
    out = ""
    for flag, value, default in pairs:
        if value != default and value is not None:
            out += f" {flag}" if value is True else f" {flag} {value}"
    return out


class Rows(list):
    """(figure, value) rows; `add` formats numbers looked up in a Doc (scaled by `k`)."""

    def __init__(self, doc: Doc):
        super().__init__()
        self.doc = doc

    def add(self, label: str, fmt: str, *keys: str, k: float = 1.0) -> None:
        self.append((label, fmt.format(*(self.doc.num(key) * k for key in keys))))


# --- one renderer per results file -------------------------------------------------------------
def yuma(d: Doc) -> Figures:
    rows, fixed_max = Rows(d), 0
    index = {(d.num(f"results.{i}.uids"), d.num(f"results.{i}.yuma")): i
             for i in range(len(d.get("results")))}  # fmt: skip
    for n in sorted({n for n, _ in index}):
        if (n, 2) not in index or (n, 3) not in index:
            raise FigureError(f"{d.path}: {n:.0f} uids lacks a Yuma 2 or a Yuma 3 row")
        y2, y3 = f"results.{index[n, 2]}", f"results.{index[n, 3]}"
        size = f"{d.num(f'{y2}.validators'):.0f}×{n:.0f}"
        rows.add(f"float64 epoch {size}, Yuma 2 / 3", "{:.1f} / {:.1f} ms",
                 f"{y2}.float64_ms", f"{y3}.float64_ms")  # fmt: skip
        if d.get(f"{y2}.fixed_ms") is not None and d.get(f"{y3}.fixed_ms") is not None:
            fixed_max = max(fixed_max, int(n))
            rows.add(f"fixed-point (bit-exact) {size}, Yuma 2 / 3", "{:.2f} / {:.2f} s",
                     f"{y2}.fixed_ms", f"{y3}.fixed_ms", k=1e-3)  # fmt: skip
    machine = _machine(d.get("meta.cpu_count", None), d.get("meta.load_average", None),
                       f"cores {d.get('meta.affinity', '?')}")  # fmt: skip
    flags = "" if fixed_max >= 4096 else f" --fixed-max-uids {fixed_max}"
    what = "one Yuma epoch, float64 default and bit-exact fixed point (target < 50 ms at 256×4096)"
    return Figures("bench_yuma", what, f"{PY}bench_yuma.py{flags}", machine, rows)


def chain(d: Doc) -> Figures:
    rows = Rows(d)
    for n in sorted(d.get("metagraph"), key=int):
        rows.add(f"metagraph @{n} uids, in-process / chain process", "{:.1f} / {:.1f} ms",
                 f"metagraph.{n}.inprocess_ms", f"metagraph.{n}.server_ms")  # fmt: skip
    for n in sorted(d.get("epoch"), key=int):
        rows.add(f"epoch @{n} uids / the block that runs it", "{:.1f} / {:.1f} ms",
                 f"epoch.{n}.epoch_ms", f"epoch.{n}.block_with_epoch_ms")  # fmt: skip
    signers = {"inprocess": "in-process", "server": "chain process, bt.Wallet signers",
               "server_keypair": "chain process, Keypair signers"}  # fmt: skip
    for key in d.get("set_weights"):
        rows.add(f"SetWeights/s, 8 validators, {signers.get(key, key)}", "{:.0f}",
                 f"set_weights.{key}.set_weights_per_s")  # fmt: skip
    machine = _machine(d.get("cpus", None), d.get("loadavg_start", None))
    what = "local chain via the SDK (targets: metagraph @256 < 20 ms, ≥ 200 SetWeights/s)"
    return Figures("bench_chain", what, f"{PY}bench_chain.py [--quick]", machine, rows)


def score_memory(d: Doc) -> Figures:
    rows = Rows(d)
    for i in range(len(d.get("results"))):
        old = d.get(f"results.{i}.mode") != "engine"
        what = "full logits (the old path)" if old else "/v1/score, chunked LM head"
        tokens = f"{d.num(f'results.{i}.tokens'):,.0f}"
        rows.add(f"{what}, {tokens} tokens, vocabulary 151,936", "+{:.2f} GB",
                 f"results.{i}.added_gb")  # fmt: skip
    if d.get("summary.full_extrapolated_gb_at_engine_tokens", None) is not None:
        rows.add("full logits at the engine's tokens (extrapolated)", "+{:.1f} GB",
                 "summary.full_extrapolated_gb_at_engine_tokens")  # fmt: skip
    flags = _flags([("--quick", d.get("args.quick", False), False),
                    ("--device", d.get("args.device", "auto"), "auto")])  # fmt: skip
    what = "memory a maximum-size /v1/score request adds (target ≤ 1 GB)"
    machine = f"device {d.get('results.0.device', '?')}"
    return Figures("bench_score_memory", what, f"{PY}bench_score_memory.py{flags}", machine, rows)


def validator(d: Doc) -> Figures:
    rows = Rows(d)
    if "verify_256" in d.data:
        rows.add("verify / generate a 256-token answer (p50; target ≤ 10%)", "{:.1f} / {:.0f} ms",
                 "verify_256.verify_s_p50", "verify_256.generate_s_p50", k=1e3)  # fmt: skip
    for key, what in (("gateway", ""), ("gateway_logprobs5", ", logprobs=5")):
        if key in d.data:
            rows.add(f"gateway overhead p50 / p95{what} (target p50 ≤ 5 ms)",
                     "{:.2f} / {:.2f} ms", f"{key}.overhead_ms_p50", f"{key}.overhead_ms_p95")  # fmt: skip
    if "step_64" in d.data:
        # Its "ok" count is not shown: bench_validator counts it wrongly since probes return a
        # list of reasons per miner (always 0).
        rows.add("a step over 64 miners (probe window included): wall / validator's own work",
                 "{:.0f} / {:.0f} ms", "step_64.wall_s", "step_64.outside_network_s", k=1e3)  # fmt: skip
    if not rows:
        raise FigureError(f"{d.path}: none of verify_256, gateway, step_64 (rerun the benchmark)")
    flags = _flags([("--size", d.get("size", "test"), "test")])
    what = "verification cost, gateway overhead, one scoring step"
    return Figures("bench_validator", what, f"{PY}bench_validator.py{flags}",
                   d.get("platform", ""), rows)  # fmt: skip


def tasks(d: Doc) -> Figures:
    rows, modes = Rows(d), d.get("modes")
    labels = {"old": "template tasks (before)", "cold": "cold start", "warm": "on organic prompts"}
    for mode in (m for m in labels if m in modes):
        rows.add(f"detector AUC, tasks vs users: {labels[mode]}", "{:.3f}", f"modes.{mode}.auc_all")
    if not rows:
        raise FigureError(f"{d.path}: 'modes' holds none of {', '.join(labels)}")
    a = d.get("args", {})
    flags = _flags([("--warm", a.get("warm"), 2000), ("--eval", a.get("eval"), 2000),
                    ("--seed", a.get("seed"), 0)])  # fmt: skip
    what = "can a miner tell tasks from users' requests? (AUC 0.5: no; target ≤ 0.6)"
    return Figures("bench_tasks", what, f"{PY}bench_tasks.py{flags}", "", rows)


def miner(d: Doc) -> Figures:
    results = d.get("results")
    if not isinstance(results, dict) or not results:
        raise FigureError(f"{d.path}: 'results' holds no concurrency level")
    c = max(results, key=int)
    rows, at = Rows(d), f"results.{c}"
    for path in (p for p in ("engine", "miner", "vllm", "vllm-miner", "static", "naive")
                 if p in results[c]):  # fmt: skip
        rows.add(f"C={c}: {path} tok/s, TTFT p50", "{:.0f}, {:.0f} ms",
                 f"{at}.{path}.tokens_per_s", f"{at}.{path}.ttft_p50_ms")  # fmt: skip
    for path in (p for p in ("engine", "miner", "vllm") if p in results[c]):
        if "static" in results[c] and "naive" in results[c]:
            mine, static, naive = (
                d.num(f"{at}.{p}.tokens_per_s") for p in (path, "static", "naive")
            )
            ratios = f"{mine / static:.2f}× / {mine / naive:.1f}×"
            rows.append((f"C={c}: {path} vs static batch / vs naive", ratios))
    a = d.get("args", {})
    flags = _flags([("--quick", a.get("quick"), False), ("--size", a.get("size"), "default"),
                    ("--device", a.get("device"), "cpu"), ("--vllm", a.get("vllm"), False),
                    ("--burst", a.get("steady") is False, False),
                    ("--repeat", a.get("repeat"), 1)])  # fmt: skip
    if not a.get("quick"):
        flags += _flags([("--levels", a.get("levels"), "1,8,32,64"),
                         ("--max-tokens", a.get("max_tokens"), 64), ("--rounds", a.get("rounds"), 3)])  # fmt: skip
    device = f"device {a.get('device', '?')}, dtype {a.get('dtype', 'auto')}"
    machine = _machine(None, d.get("loadavg.0", None), device)
    what = (f"continuous batching vs static batch vs naive, {a.get('max_tokens', '?')} new "
            "tokens (targets at C=32: ≥ 10× naive, ≥ 0.8× static)")  # fmt: skip
    py = PY.replace(".venv/", ".venv-vllm/") if a.get("vllm") else PY  # its own environment
    return Figures(d.path.stem, what, f"{py}bench_miner.py{flags}", machine, rows)


def mixture(d: Doc) -> Figures:
    rows = Rows(d)
    for gate in ("best_single", "regex_gate", "learned_gate", "oracle"):
        label = gate.replace("_", " ")
        rows.add(f"mean log-likelihood per token, {label}", "{:.3f} nats", f"{gate}.mean_logprob")
    rows.add("gap to the oracle closed: learned gate / regex rule (target ≥ 0.9)",
             "{:.3f} / {:.3f}", "gap_closed", "regex_gap_closed")  # fmt: skip
    rows.add("gate rank latency p50", "{:.3f} ms", "gate_latency_ms.rank_p50")
    c = d.get("config", {})
    flags = _flags([("--size", c.get("size"), "default"), ("--train", c.get("train"), 1600),
                    ("--eval", c.get("eval_per_domain"), 60)])  # fmt: skip
    what = "does routing by the learned gate beat the best single expert?"
    return Figures("bench_mixture", what, f"{PY}bench_mixture.py{flags}", "", rows)


def calibrate(d: Doc) -> Figures:
    """Honest false positives and detection per (miner/validator precision) pair and size."""
    rows = Rows(d)
    totals: dict[str, list[float]] = {}  # pair -> [false positives, honest answers], all sizes
    for size, v in sorted(d.get("sizes").items()):
        for pair in sorted(v.get("pairs", {})):
            base = f"sizes.{size}.pairs.{pair}"
            honest = d.num(f"{base}.evidence_honest.answers")
            fp = d.num(f"{base}.false_positives")
            t = totals.setdefault(pair, [0.0, 0.0])
            t[0], t[1] = t[0] + fp, t[1] + honest
            det = d.get(f"{base}.detection_rate", {})
            worst = min(det.values(), default=float("nan"))
            hard = ", ".join(f"{k} {x:.0%}" for k, x in sorted(det.items()) if x < 0.99)
            runs = d.get(f"{base}.evidence_perturbed_2%", {})
            drift = (f"; 2% perturbed weights drift in {runs.get('orders_drift')}/"
                     f"{runs.get('orders')} orders, median {runs.get('answers_to_drift_median')} "
                     "answers") if runs else ""  # fmt: skip
            rows.append((f"{size} experts, {pair}",
                         f"{fp:.0f} false positives / {honest:.0f} honest answers; detection "
                         f"min {worst:.0%}" + (f" (below 99%: {hard})" if hard else "")
                         + drift))  # fmt: skip
    for pair, (fp, honest) in sorted(totals.items()):
        rows.append(
            (f"all sizes, {pair}", f"{fp:.0f} false positives / {honest:.0f} honest answers")
        )
    if not rows:
        raise FigureError(f"{d.path}: no pairs under 'sizes'")
    what = "verifier: honest false positives and cheat detection per precision pair"
    return Figures("calibrate_verify", what, f"{PY}calibrate_verify.py --write", "", rows)


def gate(d: Doc) -> Figures:
    rows = Rows(d)
    for i in range(len(d.get("rows"))):
        rows.add(f"{d.get(f'rows.{i}.op')}, {d.num(f'rows.{i}.experts'):.0f} experts, "
                 f"{d.get(f'rows.{i}.gate')}, {d.get(f'rows.{i}.prompt')} prompt: p50 / p95",
                 "{:.3f} / {:.3f} ms", f"rows.{i}.p50_ms", f"rows.{i}.p95_ms")  # fmt: skip
    if not rows:
        raise FigureError(f"{d.path}: no rows")
    what = "the learned gate's cost per request (target rank p50 ≤ 2 ms)"
    return Figures("bench_gate", what, f"{PY}bench_gate.py", "", rows)


def load(d: Doc) -> Figures:
    rows = Rows(d)
    if "miner" in d.data:
        refusals = d.get("miner.all_refusals_429_retry_after")
        rows.append(("miner at 4× capacity: every refusal a 429 + Retry-After", str(refusals)))
        rows.add("miner: admitted TTFT p99, peak RSS", "{:.0f} ms, {:.0f} MB",
                 "miner.ttft_p99_ms", "miner.peak_rss_mb")  # fmt: skip
    if "gateway" in d.data:
        clients = d.get("gateway.clients")
        rows.add(f"gateway: {clients} streaming clients, success with one retry", "{:.1%}",
                 "gateway.success_rate")  # fmt: skip
    if "chain" in d.data:
        rows.add("chain: set-weights failed / metagraph reads failed", "{:.0f} / {:.0f}",
                 "chain.set_weights_failed", "chain.metagraph_failed")  # fmt: skip
    what = "load and refusals: miner, gateway and chain"
    return Figures("bench_load", what, f"{PY}bench_load.py [--quick]", "", rows)


def gpu_check(d: Doc) -> Figures:
    rows = [(str(k), str(v)) for k, v in d.get("rows").items()]
    steps = ", ".join(f"{k} {v}" for k, v in d.get("steps").items())
    rows.append(("steps (exit status)", steps))
    flags = " --quick" if d.get("quick", False) else ""
    what = "engine correctness and speed on this machine's device"
    return Figures("gpu_check", what, f"bash scripts/gpu_check.sh{flags}",
                   f"device {d.get('device')}", rows)  # fmt: skip


RENDERERS: dict[str, Callable[[Doc], Figures]] = {
    "bench_yuma": yuma,
    "bench_chain": chain,
    "bench_score_memory": score_memory,
    "bench_validator": validator,
    "bench_tasks": tasks,
    "bench_miner": miner,
    "bench_miner_burst": miner,
    "bench_miner_vllm": miner,
    "bench_mixture": mixture,
    "bench_load": load,
    "gpu_check": gpu_check,
    "bench_gate": gate,
    "calibrate_verify": calibrate,
    "calibrate_verify_test": calibrate,
    "calibrate_verify_default": calibrate,
}
# Results that another file already summarises (gpu_check.json rolls up check_engine.json).
SUMMARISED = frozenset({"check_engine"})


def _machine(cpus: Any, load: Any, extra: str = "") -> str:
    parts = []
    if isinstance(cpus, int):
        parts.append(f"{cpus} CPUs")
    if isinstance(load, int | float):
        parts.append(f"load average {load:.1f} at start")
    if extra:
        parts.append(extra)
    return ", ".join(parts)


# --- the block -------------------------------------------------------------------------------
def load_doc(path: Path) -> Doc:
    try:
        return Doc(path, json.loads(path.read_text()))
    except json.JSONDecodeError as err:
        raise FigureError(f"{path}: not valid JSON ({err}); rerun the benchmark") from None


def render_file(path: Path) -> Figures | None:
    """The figures of one results file, None when no renderer knows it."""
    renderer = RENDERERS.get(path.stem)
    if renderer is None:
        return None
    doc = load_doc(path)
    if not isinstance(doc.data, dict):
        raise FigureError(f"{path}: expected a JSON object, got {type(doc.data).__name__}")
    try:
        return renderer(doc)
    except (TypeError, KeyError, AttributeError, IndexError, ValueError) as err:
        if isinstance(err, FigureError):
            raise
        raise FigureError(f"{path}: unexpected shape ({type(err).__name__}: {err})") from None


def table(fig: Figures, written: datetime) -> str:
    when = written.strftime("%Y-%m-%d %H:%M UTC")
    head = f"**{fig.name}**: {fig.what}  \n`{fig.command}` · {when}"
    if fig.machine:
        head += f" · {fig.machine}"
    lines = [head, "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in fig.rows]
    return "\n".join(lines)


def render_block(results: Path, machine: str = "") -> tuple[str, list[str]]:
    """(the block's text between the markers, results files with no renderer)."""
    parts, unknown = [], []
    for path in sorted(results.glob("*.json")):
        fig = render_file(path)
        if fig is None:
            if path.stem not in SUMMARISED:
                unknown.append(path.name)
            continue
        written = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        parts.append(table(fig, written))
    intro = (
        "<!-- generated by scripts/render_figures.py from bench_results/*.json: rerun the "
        "benchmarks and that script, never edit by hand -->"
    )
    if machine:
        intro += f"\nFigures measured on {machine}; indicative only."
    if not parts:
        parts.append("No benchmark results yet: run `dmoe bench NAME`, then this script.")
    return "\n" + intro + "\n\n" + "\n\n".join(parts) + "\n", unknown


def replace_block(text: str, block: str, readme: Path) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise FigureError(f"{readme}: needs the markers {BEGIN} ... {END} (in that order)")
    return text[: start + len(BEGIN)] + block + text[end:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "bench_results")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--machine", default="", help="where the figures were measured (one phrase)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the block is out of date")
    args = ap.parse_args(argv)
    try:
        if not args.results.is_dir():
            raise FigureError(f"{args.results}: no such directory (run a benchmark first)")
        block, unknown = render_block(args.results, args.machine)
        text = args.readme.read_text()
        new = replace_block(text, block, args.readme)
    except (FigureError, OSError) as err:
        print(f"render_figures: {err}", file=sys.stderr)
        return 2
    for name in unknown:
        print(
            f"render_figures: no renderer for {name}; skipped (add one to RENDERERS)",
            file=sys.stderr,
        )
    if args.check:
        stale = new != text
        print("render_figures: block is " + ("stale" if stale else "up to date"))
        return 1 if stale else 0
    args.readme.write_text(new)
    print(
        f"render_figures: wrote {args.readme} ({new.count('**bench_') + new.count('**gpu_')} tables)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
