"""The new per-answer rules as pure tables: complete answers, copies of sampled answers, text,
and which reasons are cheating (no model, no tokenizer)."""

from __future__ import annotations

import math

import pytest

from protocol import GenerateRequest, GenerateResponse, TokenLogprob, Usage
from subnet.validator import verify

EOS, EOT = 0, 1  # a two-id end-of-sequence set


def _resp(tokens, finish="length", text="x"):
    return GenerateResponse(
        request_id="r",
        model="m",
        token_ids=tuple(tokens),
        text=text,
        finish_reason=finish,
        usage=Usage(3, len(tokens)),
        logprobs=tuple(TokenLogprob(t, -0.1) for t in tokens),
    )


def _ref(n, top1=None, end=None, sample=None):
    return verify.Reference(
        logprobs=(-0.1,) * n,
        ranks=(0,) * n,
        top1_logprobs=tuple(top1 or [-0.1] * n),
        eos_logprobs=(None,) * n,
        expected_logprob=-0.1 * n,
        logprob_var=1.0,
        sample_logprobs=tuple(sample or [-0.1] * n),
        end_logprob=end,
    )


GREEDY = GenerateRequest(prompt="p", max_tokens=4, temperature=0.0)
SAMPLED = GenerateRequest(prompt="p", max_tokens=4, temperature=1.0, seed=1)
STOPPING = GenerateRequest(prompt="p", max_tokens=8, stop=("\n",))


@pytest.mark.parametrize(
    "req, resp, ref, full, reason",
    [
        (GREEDY, _resp([5, 6, EOT], "eos"), _ref(3), "ab", "ok"),  # either id ends
        (GREEDY, _resp([5, EOT, 6, 7]), _ref(4), "ab", "skipped_eos"),
        (GREEDY, _resp([5, 6, 7], "eos"), _ref(3), "ab", "bad_shape"),
        # `stop` needs a requested stop sequence in the text of the tokens.
        (GREEDY, _resp([5, 6], "stop"), _ref(2), "ab", "premature_end"),
        (STOPPING, _resp([5, 6], "stop"), _ref(2), "ab", "premature_end"),
        (STOPPING, _resp([5, 6], "stop"), _ref(2), "a\nb", "ok"),
        # Greedy: an end that is not the argmax; a tie within the gap is fine.
        (GREEDY, _resp([5, EOS], "eos"), _ref(2, top1=[-0.1, -0.09]), "a", "ok"),
        (GREEDY, _resp([5, EOS], "eos"), _ref(2, top1=[-0.1, -0.05]), "a", "premature_end"),
        # Sampled: ending where sampling ends with probability 1e-9 (or 0, outside top-p).
        (SAMPLED, _resp([5, EOS], "eos"), _ref(2, end=math.log(1e-9)), "a", "premature_end"),
        (SAMPLED, _resp([5, EOS], "eos"), _ref(2, end=float("-inf")), "a", "premature_end"),
        (SAMPLED, _resp([5, EOS], "eos"), _ref(2, end=math.log(1e-3)), "a", "ok"),
        (GenerateRequest(prompt="p", max_tokens=4, logprobs=True), _resp([5, 6], "error"),
         _ref(2), "a", "error"),
    ],
)  # fmt: skip
def test_complete_answers(req, resp, ref, full, reason):
    # Greedy tie gap: the float32 default 0.02 nats.
    v = verify.verify(
        req, resp, ref, eos_ids={EOS, EOT}, text_before_last="a", text_full=full, expected=None
    )
    assert v.reason == reason, v


def test_text_must_be_the_derived_text_and_is_checked_last():
    resp = _resp([5, 6, 7, 8], text="hello")
    kw = dict(eos_ids={EOS}, text_before_last="", text_full="hello")
    assert verify.verify(GREEDY, resp, _ref(4), expected="hello", **kw).ok
    v = verify.verify(GREEDY, resp, _ref(4), expected="hello!", **kw)
    assert v.reason == "text_mismatch" and "character 5" in v.detail
    # A failing answer keeps its root cause.
    bad = verify.verify(GREEDY, resp, _ref(4, top1=[0, 0, 0, 0]), expected="other", **kw)
    assert bad.reason == "implausible_tokens"


def test_sampled_copies_by_request_key():
    resp = _resp([5, 6, 7, 8])
    kw = dict(eos_ids={EOS}, text_before_last="", copied=True)
    # Copied and improbable under the request's sampling distribution: a replay.
    v = verify.verify(SAMPLED, resp, _ref(4, sample=[-5.0] * 4), **kw)
    assert v.reason == "copycat" and "probability" in v.detail
    # Copied but near-deterministic (probability ~0.67): what an honest sampler repeats.
    assert verify.verify(SAMPLED, resp, _ref(4), **kw).ok
    # Keys: the prompt, and for sampling, seed, temperature and top-p.
    k = verify.request_key
    assert k([1, 2], SAMPLED) != k([1, 2], GenerateRequest(prompt="p", temperature=1.0, seed=2))
    assert k([1, 2], SAMPLED) == k([1, 2], GenerateRequest(prompt="q", temperature=1.0, seed=1))
    assert k([1, 2], GREEDY) == k([1, 2], GenerateRequest(prompt="p", seed=9))
    assert k([1, 2], GREEDY) != k([1, 3], GREEDY)


def test_cheating_reasons():
    assert verify.CHEATING <= set(verify.REASONS)
    assert {"text_mismatch", "premature_end", "copycat", "drift", "logprob_mismatch"} <= (
        verify.CHEATING
    )
    assert not {"ok", "timeout", "error", "unknown_model"} & verify.CHEATING
