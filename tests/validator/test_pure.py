"""Table-driven tests of the validator's pure decisions (no model, no network)."""

from __future__ import annotations

import random

import pytest

from protocol import GenerateRequest, GenerateResponse, TokenLogprob, Usage
from subnet.validator import tasks, verify, weights

EOS = 0


def _resp(tokens, claimed=None, finish="length"):
    claimed = claimed if claimed is not None else [-0.1] * len(tokens)
    return GenerateResponse(
        request_id="r",
        model="m",
        token_ids=tuple(tokens),
        text="x",
        finish_reason=finish,
        usage=Usage(3, len(tokens)),
        logprobs=tuple(TokenLogprob(t, lp) for t, lp in zip(tokens, claimed, strict=True)),
    )


def _ref(lps, top1=None, eos=None, expected=None, var=1.0, outside=0):
    n = len(lps)
    return verify.Reference(
        logprobs=tuple(lps),
        ranks=tuple(0 for _ in lps),
        top1_logprobs=tuple(top1 if top1 is not None else lps),
        eos_logprobs=tuple(eos if eos is not None else [None] * n),
        expected_logprob=sum(lps) if expected is None else expected,
        logprob_var=var,
        outside_nucleus=outside,
    )


GREEDY = GenerateRequest(prompt="p", max_tokens=4, temperature=0.0)
SAMPLED = GenerateRequest(prompt="p", max_tokens=4, temperature=1.0, seed=1)


@pytest.mark.parametrize(
    "req,resp,ref,copied,reason",
    [
        (GREEDY, _resp([5, 6, 7, 8]), _ref([-0.1] * 4), False, "ok"),
        (GREEDY, _resp([5, 6, 7, 8, 9]), _ref([-0.1] * 5), False, "ignored_max_tokens"),
        (GREEDY, _resp([5, 6]), _ref([-0.1] * 2), False, "bad_shape"),  # length after 2/4
        (
            GREEDY,
            _resp([5, 6, 7, 8]),
            _ref([-0.1, -3, -0.1, -0.1], top1=[-0.1] * 4),
            False,
            "implausible_tokens",
        ),
        (
            GREEDY,
            _resp([5, 6, 7, 8]),
            _ref([-0.1, -3, -0.1, -0.1], top1=[-0.1] * 4, eos=[None, -0.1, None, None]),
            False,
            "skipped_eos",
        ),
        (GREEDY, _resp([5, EOS, 7, 8]), _ref([-0.1] * 4), False, "skipped_eos"),
        (
            GREEDY,
            _resp([5, 6, 7, 8], claimed=[-0.1, -0.1, -2.0, -0.1]),
            _ref([-0.1] * 4),
            False,
            "logprob_mismatch",
        ),
        (GREEDY, _resp([5, 6, 7, 8]), None, False, "unknown_model"),
        (GREEDY, _resp([5, 6, 7, 8] * 2), _ref([-0.1] * 8), True, "ignored_max_tokens"),
        (SAMPLED, _resp([5, 6, 7, 8], claimed=[-2.0] * 4), _ref([-2.0] * 4), False, "ok"),
        (
            SAMPLED,
            _resp([5, 6, 7, 8], claimed=[-12.0] * 4),
            _ref([-12.0] * 4, expected=-8.0),
            False,
            "implausible_tokens",
        ),
        (SAMPLED, _resp([5, 6, 7, 8]), _ref([-0.1] * 4, outside=1), False, "implausible_tokens"),
        (
            GREEDY,
            _resp([5, 6, 7, 8]),
            _ref([-0.1, -3, -0.1, -0.1], top1=[-0.1] * 4),
            True,
            "copycat",
        ),
        (GREEDY, _resp([5, 6, 7, 8]), _ref([-0.1] * 4), True, "ok"),  # the model's own answer
        (
            SAMPLED,
            _resp([5, 6, 7, 8], claimed=[-1.0] * 4),
            _ref([-1.0] * 4, eos=[None, -1e-6, None, None]),
            False,
            "skipped_eos",
        ),
    ],
)
def test_verify_table(req, resp, ref, copied, reason):
    v = verify.verify(req, resp, ref, eos_id=EOS, text_before_last="", copied=copied)
    assert v.reason == reason, v
    assert v.ok == (reason == "ok")


def test_verify_copycat_and_stop():
    req = GenerateRequest(prompt="p", max_tokens=10, stop=("\n\n",))
    resp = _resp(list(range(1, 11)))
    v = verify.verify(req, resp, _ref([-0.1] * 10), eos_id=EOS, text_before_last="a", copied=True)
    assert v.ok
    v = verify.verify(req, resp, _ref([-0.1] * 10), eos_id=EOS, text_before_last="a\n\nb")
    assert v.reason == "ignored_stop"


@pytest.mark.parametrize(
    "view,last_set,due",
    [
        (weights.EpochView(105, 10, 5, 2, -1), -1, True),
        (weights.EpochView(102, 10, 2, 2, -1), -1, False),  # too early in the tempo
        (weights.EpochView(106, 10, 6, 2, 105), 105, False),  # already set this tempo
        (weights.EpochView(116, 10, 6, 2, 105), 105, True),  # next tempo
        (weights.EpochView(116, 10, 6, 20, 105), 105, False),  # rate limited
        (weights.EpochView(116, 10, 6, 2, 105, weights_version=9), 105, False),
    ],
)
def test_weights_due(view, last_set, due):
    assert weights.weights_due(view, last_set, weights.WeightsConfig())[0] is due


def test_tasks_are_fresh_and_shaped_like_requests():
    rng = random.Random(1)
    seen = set()
    for domain in tasks.DOMAINS:
        for _ in range(50):
            t = tasks.make_task(domain, rng)
            req = GenerateRequest.from_dict(t.request.to_dict())  # valid on the wire
            text = req.prompt if req.prompt is not None else req.messages[-1].content
            assert "{" not in text.replace("{}", "") or domain in ("code", "data")
            seen.add(text)
        assert tasks.heldout_text(domain)
    assert len(seen) >= 148  # fresh randomness: (almost) no two prompts alike
