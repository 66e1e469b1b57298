"""The vLLM backend's pure translations: requests to SamplingParams fields, vLLM logprob entries
to the protocol (no vLLM needed; entries are the plain `.logprob` / `.rank` records vLLM returns)."""

from __future__ import annotations

from types import SimpleNamespace as Lp

import pytest

from protocol import GenerateRequest, ScoreRequest
from subnet.engine.vllm_mapping import (
    LOGPROBS_MODE,
    sampling_fields,
    score_response,
    token_logprob,
)

EOS = frozenset({7, 0})


@pytest.mark.parametrize(
    "req, want",
    [
        (
            GenerateRequest(prompt="x", max_tokens=5, seed=3, top_p=0.5),
            dict(temperature=0.0, top_p=1.0, seed=None, logprobs=0, max_tokens=5),
        ),
        (
            GenerateRequest(prompt="x", temperature=0.7, top_p=0.9, seed=11, top_logprobs=4),
            dict(temperature=0.7, top_p=0.9, seed=11, logprobs=4),
        ),
        (
            GenerateRequest(prompt="x", temperature=1.0, logprobs=False, top_logprobs=3),
            dict(seed=None, logprobs=None),
        ),
    ],
)
def test_sampling_fields(req, want):
    fields = sampling_fields(req, EOS)
    assert {k: fields[k] for k in want} == want
    # The engine's whole EOS set; vLLM neither detokenises nor sees stop strings.
    assert fields["stop_token_ids"] == [0, 7] and fields["detokenize"] is False
    assert "stop" not in fields and fields["n"] == 1
    assert LOGPROBS_MODE == "raw_logprobs"


def test_token_logprob_keeps_the_chosen_and_the_top_k():
    # A sampled token outside the top 2 comes with its own rank; top is best first.
    entry = {5: Lp(logprob=-0.2, rank=1), 9: Lp(logprob=-1.9, rank=2), 3: Lp(logprob=-4.0, rank=6)}
    lp = token_logprob(3, entry, 2)
    assert (lp.token_id, lp.logprob) == (3, -4.0)
    assert lp.top == ((5, -0.2), (9, -1.9))
    assert token_logprob(5, entry, 0).top == ()
    with pytest.raises(ValueError, match="no logprob for the chosen token 4"):
        token_logprob(4, entry, 2)


def test_score_response_shifts_ranks_to_zero_based_and_starts_at_start():
    ids = (10, 11, 12, 13)
    plps = [
        None,
        {11: Lp(logprob=-0.5, rank=1), 20: Lp(logprob=-1.5, rank=2)},
        {12: Lp(logprob=-3.0, rank=4), 21: Lp(logprob=-0.1, rank=1), 22: Lp(logprob=-2.0, rank=2)},
        {13: Lp(logprob=-0.3, rank=1), 23: Lp(logprob=-1.6, rank=2)},
    ]
    resp = score_response(ScoreRequest(token_ids=ids, start=2, top_k=2, request_id="r"), plps)
    assert resp.request_id == "r"
    assert resp.logprobs == (-3.0, -0.3) and resp.ranks == (3, 0)
    assert resp.top == (((21, -0.1), (22, -2.0)), ((13, -0.3), (23, -1.6)))
    assert score_response(ScoreRequest(token_ids=ids, start=1), plps).top == ()


def test_score_response_refuses_an_incomplete_answer():
    ids = (10, 11, 12)
    with pytest.raises(ValueError, match="2 prompt logprobs for 3 tokens"):
        score_response(ScoreRequest(token_ids=ids), [None, {11: Lp(logprob=-1.0, rank=1)}])
    with pytest.raises(ValueError, match="no prompt logprob for token 2"):
        score_response(ScoreRequest(token_ids=ids), [None, {11: Lp(logprob=-1.0, rank=1)}, {}])
