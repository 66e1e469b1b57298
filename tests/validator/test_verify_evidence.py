"""Per-miner evidence: pure accumulation and tests, then real answers of a model with 2%-noisy
weights (judged `drift`) next to honest bfloat16 serving (never judged)."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from subnet.engine.loading import load_expert
from subnet.engine.perturb import perturb
from subnet.validator import evidence, tasks
from subnet.validator.evidence import Evidence, EvidenceThresholds
from subnet.validator.verifier import Item, Verifier
from tests.validator.helpers import engine_answers

TH = EvidenceThresholds()


def _honest_stats(rng: random.Random, n: int = 40, noise: float = 1e-4) -> dict[str, float]:
    """One answer's stats as an honest miner produces them: errors about the simulated noise."""
    err = sum(rng.gauss(0, 1) ** 2 for _ in range(n)) * noise
    sim = sum(rng.gauss(0, 1) ** 2 for _ in range(n)) * noise
    return {"tokens": n, "lp_n": n, "lp_err_sq": err, "lp_sim_err_sq": err, "lp_noise_sq": sim}


def test_add_decay_and_round_trip():
    ev = evidence.add(Evidence(), {"lp_n": 10, "lp_err_sq": 0.5, "z_num": -2.0}, greedy=False)
    ev = evidence.add(ev, {"lp_n": 5, "gap_sum": 0.1, "bogus": 3.0}, greedy=True)
    assert (ev.answers, ev.greedy_answers, ev.sampled_answers) == (2, 1, 1)
    assert (ev.lp_n, ev.lp_err_sq, ev.z_num, ev.gap_sum) == (15, 0.5, -2.0, 0.1)
    half = evidence.decay(ev, 0.5)
    assert half.lp_n == 7.5 and half.z_num == -1.0 and half.answers == 1.0
    assert evidence.decay(ev, 0.0) == Evidence()
    with pytest.raises(ValueError):
        evidence.decay(ev, 1.5)
    assert Evidence.from_dict(ev.to_dict()) == ev


@pytest.mark.parametrize(
    "raw",
    [None, [], "x", {"lp_n": "many"}, {"lp_n": -3, "z_num": -4.0}, {"lp_err_sq": float("nan")},
     {"answers": True, "lp_n": float("inf")}],
)  # fmt: skip
def test_from_dict_tolerates_garbage(raw):
    ev = Evidence.from_dict(raw)
    assert all(math.isfinite(v) for v in ev.to_dict().values())
    assert ev.lp_n == 0.0
    if isinstance(raw, dict) and "z_num" in raw:
        assert ev.z_num == -4.0  # signed sums keep their sign


def test_add_ignores_non_finite_and_negative_counts():
    ev = evidence.add(Evidence(), {"lp_n": float("nan"), "lp_err_sq": -1.0}, greedy=True)
    assert ev.lp_n == 0.0 and ev.lp_err_sq == 0.0 and ev.answers == 1


def test_honest_noise_never_drifts_and_extra_noise_does():
    rng = random.Random(0)
    honest, noisy = Evidence(), Evidence()
    first = None
    for k in range(2000):
        honest = evidence.add(honest, _honest_stats(rng), greedy=k % 2 == 0)
        assert evidence.judge(honest, TH) is None, (k, honest)
        s = _honest_stats(rng)
        s["lp_err_sq"] *= 3.0  # three times the honest squared error: other weights
        s["lp_sim_err_sq"] *= 3.0
        noisy = evidence.add(noisy, s, greedy=False)
        if first is None and evidence.judge(noisy, TH) is not None:
            first = k + 1
    assert first is not None and first * 40 >= TH.min_lp_tokens and first <= 30
    v = evidence.judge(noisy, TH)
    assert v is not None and v.reason == "drift" and not v.ok and "tokens" in v.detail


def test_sampling_tests_use_a_boundary_that_grows_with_evidence():
    b = [evidence.mixture_bound(v, TH.alpha, TH.rho) for v in (0, 1e2, 1e4, 1e6)]
    assert b == sorted(b)
    assert b[-1] / math.sqrt(1e6 + TH.rho) > b[1] / math.sqrt(1e2 + TH.rho)  # z-level grows
    # A sampler 0.3 nats per token less likely than honest sampling (say, hotter than asked).
    ev = Evidence()
    for _ in range(100):
        ev = evidence.add(ev, {"sampled_n": 40, "z_num": -12.0, "z_var": 40.0}, greedy=False)
    v = evidence.judge(ev, TH)
    assert v is not None and "standard deviations" in v.detail


def _answers(expert, reqs):
    return asyncio.run(engine_answers(expert, reqs))


def _accumulate(verdicts, items) -> tuple[Evidence, int | None]:
    ev, first = Evidence(), None
    for k, (it, v) in enumerate(zip(items, verdicts, strict=True), start=1):
        ev = evidence.add(ev, v.stats, greedy=it.request.temperature == 0)
        if first is None and evidence.judge(ev, TH) is not None:
            first = k
    return ev, first


def test_perturbed_weights_drift_honest_bfloat16_does_not(registry, tiny_experts):
    rng = random.Random(3)
    reqs = [tasks.make_task(rng.choice(tasks.DOMAINS), rng).request for _ in range(40)]
    path = tiny_experts["math"]
    honest = load_expert(path, device="cpu", dtype="bfloat16")
    cheat = load_expert(path, device="cpu", dtype="float32")
    perturb(cheat.model, 0.02, seed=1)
    h = honest.card.weights_hash
    verifier = Verifier(registry)
    items = [
        Item(h, r, a, dtype="bfloat16") for r, a in zip(reqs, _answers(honest, reqs), strict=True)
    ]
    ev, first = _accumulate(verifier.verify_many(items), items)
    assert first is None and ev.lp_n > TH.min_lp_tokens
    # The same weights with 2% noise, declared float32: claimed logprobs drift.
    items = [Item(h, r, a) for r, a in zip(reqs, _answers(cheat, reqs), strict=True)]
    verdicts = Verifier(registry).verify_many(items)
    ev, first = _accumulate(verdicts, items)
    assert first is not None and first <= 30, (first, ev)
