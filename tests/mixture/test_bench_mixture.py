"""A short run of the mixture benchmark's core (`scripts/bench_mixture.py`) on the test experts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_mixture.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_mixture", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_mixture"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_mixture", None)


def test_eval_set_is_held_out_and_mixed(bench):
    from subnet.engine import corpora

    used = set(corpora.STDLIB_FILES) | set(corpora.PROSE_FILES)
    assert not used & set(bench.EVAL_FILES) and not used & set(bench.TRAIN_FILES)
    assert not set(bench.EVAL_FILES) & set(bench.TRAIN_FILES)
    items = bench.eval_set(12)
    assert {it.domain for it in items} == {"code", "math", "general", "data"}
    assert all(it.prompt and it.continuation for it in items)
    training = corpora.code_corpus(400_000) + corpora.general_corpus(400_000)
    assert not any(it.prompt in training for it in items if it.domain in ("code", "general"))
    seen = set(corpora.math_corpus(400_000).splitlines())
    checkable = [it for it in items if it.answer is not None]
    assert checkable and not any(
        f"{it.prompt.splitlines()[-1]} {it.answer}" in seen for it in checkable
    )
    train = bench.train_stream(40, exclude=frozenset(it.prompt for it in items))
    prompts = {t if isinstance(t, str) else t[0] for t in train}
    assert not prompts & {it.prompt for it in items}


def test_core_run_reports_every_routing(bench, mixture):
    experts = {e.card.weights_hash: e for e in mixture.values()}
    res = bench.run_bench(experts, bench.eval_set(8), bench.train_stream(64), checkpoints=(0, 32))
    names = ("best_single", "oracle", "regex_gate", "learned_gate")
    oracle = res["oracle"]["mean_logprob"]
    for name in names:
        assert res[name]["mean_logprob"] <= oracle + 1e-9
        assert 0.0 <= res[name]["oracle_agreement"] <= 1.0
        acc = res[name]["accuracy"]
        assert acc is None or 0.0 <= acc <= 1.0
    assert res["oracle"]["oracle_agreement"] == 1.0
    assert set(res["per_domain"]) == {"code", "math", "general", "data"}
    best = res["best_single"]["mean_logprob"]
    expected = (res["learned_gate"]["mean_logprob"] - best) / (oracle - best)
    assert res["gap_closed"] == pytest.approx(expected)
    assert [c["observations"] for c in res["learning_curve"]] == [0, 32, 64]
    assert res["gate_latency_ms"]["rank_p50"] > 0
    # the hook for routes measured elsewhere: the oracle's own routes score as the oracle
    hook = bench.score_routes(
        res["_items"], res["_hashes"], res["_q"], res["_acc"], res["_routes"]["oracle"]
    )
    assert hook["mean_logprob"] == pytest.approx(oracle)
    with pytest.raises(ValueError, match="routes for"):
        bench.score_routes(res["_items"], res["_hashes"], res["_q"], res["_acc"], [])
