"""The verifier on real answers of the project's engine (tiny experts): derived text, complete
answers, copies of sampled answers, and precision pairs. Honest answers pass; each cheat fails
with its reason."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest

from protocol import GenerateRequest, TokenLogprob, Usage
from subnet.engine.loading import load_expert
from subnet.engine.prompt import encode_prompt
from subnet.validator import evidence, tasks, verify
from subnet.validator.evidence import Evidence
from subnet.validator.prefill import simulate
from subnet.validator.text import TextStream
from subnet.validator.thresholds import ThresholdTable
from subnet.validator.verifier import Item, Verifier
from tests.validator.helpers import engine_answers

STOPS = ("\n", " =", "(", ":")


def _requests(n: int, seed: int) -> list[GenerateRequest]:
    """Task-shaped requests, greedy and sampled, every other one with stop sequences."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = tasks.make_task(rng.choice(tasks.DOMAINS), rng).request
        if r.temperature > 0:  # seeded: the same answers on every run
            r = replace(r, seed=rng.randrange(1 << 31))
        if i % 2:
            r = replace(r, stop=tuple(rng.sample(STOPS, 2)))
        out.append(r)
    return out


@pytest.fixture(scope="module")
def honest(by_domain):
    """(expert, requests, honest engine answers) for the math expert."""
    expert = by_domain["math"]
    reqs = _requests(24, seed=5)
    return expert, reqs, asyncio.run(engine_answers(expert, reqs))


def _items(expert, reqs, answers, dtype="float32"):
    return [
        Item(expert.card.weights_hash, r, a, dtype=dtype)
        for r, a in zip(reqs, answers, strict=True)
    ]


def test_honest_answers_pass_and_their_text_is_derived(registry, honest):
    expert, reqs, answers = honest
    assert {r.temperature > 0 for r in reqs} == {True, False}
    assert any(a.finish_reason == "stop" for a in answers), "no stop sequence was hit"
    for r, a in zip(reqs, answers, strict=True):
        assert a.text == verify.expected_text(expert.tokenizer, r, a.token_ids, a.finish_reason)
    verdicts = Verifier(registry).verify_many(_items(expert, reqs, answers))
    assert [v.reason for v in verdicts] == ["ok"] * len(reqs)
    for v in verdicts:
        assert {"tokens", "lp_n", "lp_err_sq", "lp_noise_sq"} <= set(v.stats)


def test_expected_text_skips_specials_excludes_the_end_and_cuts_at_the_stop(by_domain):
    tok = by_domain["code"].tokenizer
    ids = tok.encode("x = 1\ny = 2", add_special_tokens=False)
    eos = tok.eos_token_id
    req = GenerateRequest(prompt="p", stop=("\n", " = 2"))
    assert verify.expected_text(tok, req, [*ids, eos], "eos") == "x = 1\ny = 2"
    assert verify.expected_text(tok, req, ids, "length") == "x = 1\ny = 2"
    assert verify.expected_text(tok, req, ids, "stop") == "x = 1"  # the earliest stop
    assert verify.expected_text(tok, req, [eos, *ids], "length") == "x = 1\ny = 2"


def test_cheats_on_text_and_endings_fail_with_their_reason(registry, honest):
    expert, reqs, answers = honest
    tok, h, k = expert.tokenizer, expert.card.weights_hash, 2
    items, want = [], []
    for r, a in zip(reqs, answers, strict=True):
        items.append(Item(h, r, replace(a, text=a.text + " visit example.com")))
        want.append("text_mismatch")
        if len(a.token_ids) < 4:
            continue
        ids = list(a.token_ids[:k])
        # `stop` with no stop sequence in the text: the 1-3 token answer of issue 13.
        stopped = replace(a, token_ids=tuple(ids), logprobs=a.logprobs[:k], finish_reason="stop",
                          usage=Usage(a.usage.prompt_tokens, k),
                          text=verify.expected_text(tok, r, ids, "stop"))  # fmt: skip
        items.append(Item(h, r, stopped))
        want.append("premature_end")
    verdicts = Verifier(registry).verify_many(items)
    got = [v.reason for v in verdicts]
    assert got == want, [
        (w, v.reason, v.detail) for w, v in zip(want, verdicts, strict=True) if w != v.reason
    ]


def test_an_end_the_model_finds_implausible_is_premature(registry, honest):
    """Cut after two honest tokens with an end-of-sequence whose true logprob is claimed."""
    expert, reqs, answers = honest
    tok, eos, h, k = expert.tokenizer, min(expert.eos_ids), expert.card.weights_hash, 2
    cut = [
        (r, [*a.token_ids[:k], eos], a)
        for r, a in zip(reqs, answers, strict=True)
        if len(a.token_ids) > 3
    ]
    true = [
        s.logprobs
        for s in simulate(
            expert.model, [encode_prompt(tok, r) for r, _, _ in cut], [ids for _, ids, _ in cut]
        )
    ]
    items = [
        Item(
            h,
            r,
            replace(
                a,
                token_ids=tuple(ids),
                finish_reason="eos",
                logprobs=tuple(TokenLogprob(t, lp) for t, lp in zip(ids, lps, strict=True)),
                usage=Usage(a.usage.prompt_tokens, k + 1),
                text=verify.expected_text(tok, r, ids, "eos"),
            ),
        )  # fmt: skip
        for (r, ids, a), lps in zip(cut, true, strict=True)
    ]
    verdicts = Verifier(registry).verify_many(items)
    th = verify.Thresholds()
    for it, v in zip(items, verdicts, strict=True):
        if it.request.temperature == 0:
            assert v.reason == "premature_end", v  # the honest engine continued: not the argmax
        else:  # sampled: premature exactly when sampling ends there with negligible probability
            implausible = v.stats["end_logprob"] < th.end_min_logprob
            assert v.reason == ("premature_end" if implausible else "ok"), v
    # Both kinds were exercised (the tasks' sampled requests use top_p = 1, where an end the
    # model gives ~0.2% is plausible and passes).
    assert {it.request.temperature > 0 for it in items} == {True, False}


def test_sampled_replays_are_copies_identical_requests_are_not(registry, honest):
    expert, reqs, answers = honest
    sampled = [(r, a) for r, a in zip(reqs, answers, strict=True)
               if r.temperature > 0 and a.finish_reason == "length"]  # fmt: skip
    assert len(sampled) >= 3
    verifier = Verifier(registry)
    for r, a in sampled:
        h = expert.card.weights_hash
        # The same request answered twice (two miners, one seed): no copy.
        again = verifier.verify_many([Item(h, r, a), Item(h, replace(r, request_id="b"), a)])
        assert [v.reason for v in again] == ["ok", "ok"]
        # The same answer for the same prompt with another seed: a replay. A deterministic
        # answer (probability near 1) would pass; these are not.
        (v,) = verifier.verify_many([Item(h, replace(r, seed=(r.seed or 0) + 1), a)])
        if v.stats["sample_logprob"] < verify.Thresholds().copy_max_logprob:
            assert v.reason == "copycat", v
        else:
            assert v.ok, v


def test_copy_rule_spares_deterministicengine_answers():
    stats = {"sample_logprob": -0.01}
    ok = verify.Verdict(True, "ok", "", stats)
    assert verify.label_copy(ok, True) is ok
    unlikely = verify.Verdict(True, "ok", "", {"sample_logprob": -40.0})
    assert verify.label_copy(unlikely, True).reason == "copycat"
    assert verify.label_copy(unlikely, False).ok


def test_bfloat16_miner_verifies_under_its_pair(registry, tiny_experts):
    """Honest bfloat16 answers verify against the float32 reference under the bfloat16/float32
    thresholds (the calibrated table), with a simulated-noise yardstick for the evidence."""
    served = load_expert(tiny_experts["math"], device="cpu", dtype="bfloat16")
    assert served.card.dtype == "bfloat16"
    reqs = _requests(16, seed=9)
    answers = asyncio.run(engine_answers(served, reqs))
    verifier = Verifier(registry, ThresholdTable.load())
    items = _items(served, reqs, answers, dtype="bfloat16")
    verdicts = verifier.verify_many(items)
    assert [v.reason for v in verdicts] == ["ok"] * len(items)
    ev = Evidence()
    for it, v in zip(items, verdicts, strict=True):
        ev = evidence.add(ev, v.stats, greedy=it.request.temperature == 0)
    assert ev.lp_noise_sq > 0 and evidence.lp_ratio(ev) < 1.0  # honest: near a yardstick


def test_text_stream_adds_up_to_the_derived_text(honest):
    """Pushed token by token (or in random chunks), the stream releases exactly expected_text,
    never half a character, never a stop sequence."""
    expert, reqs, answers = honest
    tok, rng = expert.tokenizer, random.Random(0)
    multibyte = GenerateRequest(prompt="p", stop=("€ 1",))
    cases = [(r, a.token_ids, a.finish_reason) for r, a in zip(reqs, answers, strict=True)]
    ids = tok.encode("é x € 2 😀 € 1 z", add_special_tokens=False)
    cases += [(multibyte, ids, "stop"), (replace(multibyte, stop=()), ids, "length")]
    for req, ids, finish in cases:
        stream = TextStream(tok, expert.eos_ids, req.stop, req.max_tokens)
        pieces, i = [], 0
        while i < len(ids):
            n = rng.randint(1, 3)
            pieces.append(stream.feed(ids[i : i + n]))
            i += n
        pieces.append(stream.finish())
        want = verify.expected_text(tok, req, ids, finish)
        assert "".join(pieces) == want
        if "\ufffd" not in want:  # (a tiny model's garbage bytes decode to U+FFFD for good)
            assert all("\ufffd" not in p for p in pieces)
        assert not any(s in "".join(pieces) for s in req.stop) or finish != "stop"
