"""Four offline experts with one tokenizer, each the best on its own domain's held-out text."""

from __future__ import annotations

import random

from subnet.engine.experts import DOMAINS
from subnet.validator import tasks
from subnet.validator.openai_format import classify
from subnet.validator.verifier import heldout_fit


def test_four_experts_one_tokenizer(mixture):
    assert set(mixture) == set(DOMAINS) and len(DOMAINS) >= 4
    vocab = mixture["code"].tokenizer.get_vocab()
    for domain, e in mixture.items():
        assert e.tokenizer.get_vocab() == vocab
        assert e.card.domains == (domain,) and e.card.model_id == f"dmoe/tiny-{domain}"
    assert len({e.card.weights_hash for e in mixture.values()}) == len(mixture)


def test_each_expert_is_best_on_its_own_heldout_text(mixture):
    fit = {d: heldout_fit(e, tasks.DOMAINS) for d, e in mixture.items()}
    for domain in DOMAINS:
        own = fit[domain][domain]
        runner_up = max(fit[o][domain] for o in DOMAINS if o != domain)
        # nats per token; the seconds-to-build test size separates the domains by >= 0.1
        # (general prose is the closest call: code docstrings are prose too)
        assert own > runner_up + 0.1, (domain, fit)


def test_data_domain_tasks_and_cold_start_rule():
    rng = random.Random(5)
    prompts = [tasks.make_prompt("data", rng)[0] for _ in range(100)]
    assert len(set(prompts)) > 90
    assert all(classify(p) == "data" for p in prompts)
    assert classify("SELECT name, city FROM users WHERE age > 30") == "data"
    assert classify('[{"id": 1, "ok": true}]') == "data"
    assert classify("name,city,visits\nAda,Lima,3") == "data"
    assert classify("Please select one from the menu.") == "general"
    assert classify("import json\n") == "code"
    assert tasks.heldout_text("data")
