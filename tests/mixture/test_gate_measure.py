"""measure_quality: the gate's evidence, read from the reference experts in batched forwards."""

from __future__ import annotations

import math

from subnet.engine.scoring import score_batch
from subnet.validator.gate_measure import measure_quality

TEXTS = {
    "code": "def merge(left, right):\n    out = []\n    for item in left:\n        out.append(item)\n",
    "math": "12 + 30 = 42\n7 * 8 = 56\n(3 + 4) * 2 = 14\n90 - 45 = 45\n",
    "data": 'SELECT name, city FROM users WHERE age > 30;\n{"id": 7, "name": "ada"}\n',
}


def test_each_expert_fits_its_own_text_best(mixture):
    by_hash = {e.card.weights_hash: d for d, e in mixture.items()}
    experts = {e.card.weights_hash: e for e in mixture.values()}
    measured = measure_quality(experts, list(TEXTS.values()), batch=2)
    for domain, q in zip(TEXTS, measured, strict=True):
        assert set(q) == set(experts) and all(math.isfinite(v) for v in q.values())
        assert by_hash[max(q, key=q.get)] == domain, (domain, q)


def test_a_pair_scores_only_the_continuation(mixture):
    e = mixture["math"]
    tok = e.tokenizer
    prompt, cont = "12 + 30 =", " 42\n"
    (q,) = measure_quality({"m": e}, [(prompt, cont)])
    ids = [tok.eos_token_id, *tok.encode(prompt), *tok.encode(cont)]
    start = 1 + len(tok.encode(prompt))
    (ref,) = score_batch(e.model, [ids], [start])
    assert abs(q["m"] - sum(ref.logprobs) / len(ref.logprobs)) < 1e-5
    (whole,) = measure_quality({"m": e}, [prompt + cont])
    assert whole["m"] != q["m"]


def test_long_short_and_empty_texts(mixture):
    e = mixture["code"]
    limit = e.card.max_context
    long_prompt = "x = 1\n" * (2 * limit)
    got = measure_quality(
        {"c": e}, [(long_prompt, "y = 2\n"), ("p", "z" * 10 * limit), ("p", ""), ""]
    )
    assert math.isfinite(got[0]["c"]) and math.isfinite(got[1]["c"])
    assert got[2] == {} and got[3] == {}
    assert measure_quality({"c": e}, []) == []
