"""Table-driven tests of the validator's pure decisions (no model, no network)."""

from __future__ import annotations

import json
import random

import pytest

from protocol import GenerateRequest, GenerateResponse, TokenLogprob, Usage
from subnet.validator import router, sampling, scoring, tasks, verify, weights
from subnet.validator.state import StateStore, ValidatorState

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


def test_scoring_rewards_and_ema():
    cfg = scoring.ScoringConfig()
    samples = [
        scoring.Sample(1, "code", True, "ok", 1.0, ttft_s=0.1, tokens_per_s=100),
        scoring.Sample(2, "code", True, "ok", 1.0, ttft_s=0.4, tokens_per_s=25),
        scoring.Sample(3, "code", False, "implausible_tokens", 1.0, ttft_s=0.01, tokens_per_s=1e4),
        scoring.Sample(4, "code", True, "ok", 0.5, ttft_s=0.1, tokens_per_s=100),
    ]
    r = scoring.rewards(samples, cfg)
    assert r[1] == 1.0 and r[3] == 0.0
    assert 0.5 <= r[2] < 1.0
    assert r[4] == pytest.approx(0.5)
    st = scoring.update(scoring.Stat(), 1.0, "ok", 1.0, cfg)
    assert (st.ema, st.evidence) == (1.0, 1)
    st = scoring.update(st, 0.0, "timeout", 2.0, cfg)
    assert st.ema == pytest.approx(0.9) and st.evidence == 2 and st.failures == 1
    stats = {"code": st}
    assert scoring.miner_score(stats, {"code": 0.5, "math": 0.5}, cfg) == pytest.approx(
        0.9 * 0.5 * 0.5
    )
    assert scoring.normalize({1: 3.0, 2: 1.0, 3: 0.0}) == {1: 0.75, 2: 0.25}
    assert scoring.normalize({}) == {}
    assert scoring.domain_fit(-2.0, -1.0) == pytest.approx(0.3679, abs=1e-3)


def test_state_roundtrip_restart_and_hotkey_reset(tmp_path):
    path = tmp_path / "state.json"
    store = StateStore(path)
    with pytest.raises(RuntimeError):
        store.save(ValidatorState())
    state = store.load()
    state.put(1, "hk1", "code", scoring.Stat(ema=0.7, evidence=3))
    state.put(2, "hk2", "math", scoring.Stat(ema=0.4, evidence=1))
    state.last_weights = {1: 0.6, 2: 0.4}
    store.save(state)
    again = StateStore(path).load()
    assert again.stat(1, "code").ema == 0.7 and again.stat(2, "math").evidence == 1
    assert again.last_weights == {1: 0.6, 2: 0.4}
    reset = again.sync_hotkeys({1: "hk1", 2: "other"})
    assert reset == [2]
    assert again.stat(1, "code").ema == 0.7 and again.stat(2, "math").evidence == 0
    path.write_text("{not json")
    fresh = StateStore(path).load()
    assert fresh.stats == {} and list(tmp_path.glob("state.json.corrupt-*"))
    assert json.loads(json.dumps(again.to_dict()))["version"] == 1


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


def test_sampling_prefers_low_evidence_and_respects_backoff():
    cfg = sampling.SamplingConfig(per_step=1)
    rng = random.Random(0)
    cands = [
        sampling.Candidate(1, evidence=100, last_queried=99.0),
        sampling.Candidate(2, evidence=0, last_queried=0.0),
        sampling.Candidate(3, evidence=0, last_queried=0.0, blocked_until=200.0),
        sampling.Candidate(4, evidence=0, last_queried=0.0, inflight=1, capacity=1),
    ]
    picks = [sampling.choose(cands, 100.0, rng, cfg)[0] for _ in range(200)]
    assert set(picks) <= {1, 2} and picks.count(2) > 150
    b = sampling.Backoff429(cfg, max_entries=2)
    for uid in (1, 2, 3):
        b.note(uid, 10.0, 5.0)
    assert b.until(1) == 0.0 and b.until(3) == 15.0


def test_router_pick_bans_and_hedge():
    cfg = router.RouterConfig(top_k=2, explore=0.0)
    bans = router.Bans(cfg)
    experts = [
        router.Expert(1, ("code",), 0.9),
        router.Expert(2, ("code",), 0.5),
        router.Expert(3, ("math",), 1.0),
        router.Expert(4, ("code",), 0.99, inflight=2, capacity=2),
    ]
    rng = random.Random(0)
    assert router.pick(experts, "code", now=0, bans=bans, rng=rng, cfg=cfg) == [1, 2]
    assert bans.failure(1, 0.0) == 2.0 and bans.failure(1, 0.0) == 4.0
    assert router.pick(experts, "code", now=1, bans=bans, rng=rng, cfg=cfg) == [2]
    assert router.pick(experts, "general", now=1, bans=bans, rng=rng, cfg=cfg) == [3, 2]
    bans.success(1)
    assert not bans.banned(1, 1.0)
    assert router.hedge_delay(0.1, cfg) == pytest.approx(0.2)
    assert router.hedge_delay(None, cfg) == pytest.approx(1.0)
    explore = router.RouterConfig(top_k=1, explore=1.0)
    many = [router.Expert(i, ("code",), i / 10) for i in range(5)]
    got = router.pick(many, "code", now=0, bans=router.Bans(explore), rng=rng, cfg=explore)
    assert got[-1] == 4 and got[0] != 4


def test_tasks_are_fresh_and_shaped_like_requests():
    rng = random.Random(1)
    seen = set()
    for domain in tasks.DOMAINS:
        for _ in range(50):
            t = tasks.make_task(domain, rng)
            req = GenerateRequest.from_dict(t.request.to_dict())  # valid on the wire
            text = req.prompt if req.prompt is not None else req.messages[0].content
            assert "{" not in text.replace("{}", "") or domain in ("code", "data")
            seen.add(text)
        assert tasks.heldout_text(domain)
    assert len(seen) >= 148  # fresh randomness: (almost) no two prompts alike
