"""What a miner is owed, table-driven: evidence ageing, refusals, strikes, throughput, demand
pools, earned domains, routing, sampling and the state file. No model, no network."""

from __future__ import annotations

import json
import random

import pytest

from subnet.validator import domains, router, sampling, scoring
from subnet.validator.state import StateStore, ValidatorState

CFG = scoring.ScoringConfig()
HL = 72.0  # a tempo of 360 blocks / 5
OK = scoring.Sample("ok", tokens=48)


def run(schedule, *, hl=HL, seconds=1.0):
    """Feed (block, [reasons]) probes; returns the tally."""
    t = scoring.Tally()
    for block, reasons in schedule:
        samples = [scoring.Sample(r, 48 if r == "ok" else 0) for r in reasons]
        t = scoring.add(t, samples, block, hl, probe_seconds=seconds, strike_blocks=360)
    return t


def test_evidence_halves_every_half_life():
    t = run([(0, ["ok"] * 4)])
    assert scoring.aged(t, HL, HL).samples == pytest.approx(2.0)
    assert scoring.aged(t, 2 * HL, HL).tokens == pytest.approx(48.0)
    assert scoring.aged(t, -5, HL) == t  # the past never grows evidence


def test_a_refusal_costs_what_a_failure_costs_whatever_was_refused():
    base = [(b, ["ok"] * 4) for b in range(0, 120, 12)]
    refused = run([*base, (120, ["ok", "ok", "ok", "refused"])])
    timed_out = run([*base, (120, ["ok", "ok", "ok", "timeout"])])
    answered = run([*base, (120, ["ok"] * 4)])
    v = [scoring.value(t, 120, HL, CFG) for t in (refused, timed_out, answered)]
    assert v[0] == pytest.approx(v[1]) and v[0] < v[2]


def test_a_miner_that_stops_answering_loses_95_percent_within_a_tempo():
    # One probe every 12 blocks for two tempos, then 429 to everything for one tempo.
    earned = [(b, ["ok"] * 4) for b in range(0, 720, 12)]
    t = run(earned)
    before = scoring.value(t, 720, HL, CFG)
    after = run([*earned, *[(b, ["refused"] * 4) for b in range(720, 1080, 12)]])
    assert scoring.value(after, 1080, HL, CFG) <= 0.05 * before
    # Vanishing (every probe a timeout) costs the same.
    gone = run([*earned, *[(b, ["timeout"] * 4) for b in range(720, 1080, 12)]])
    assert scoring.value(gone, 1080, HL, CFG) <= 0.05 * before


def test_a_caught_cheat_earns_nothing_for_a_tempo_then_recovers_slowly():
    t = run([(b, ["ok"] * 4) for b in range(0, 360, 12)])
    t = scoring.add(t, [scoring.Sample("copycat")], 360, HL, strike_blocks=360)
    assert scoring.value(t, 361, HL, CFG) == 0.0 and scoring.value(t, 719, HL, CFG) == 0.0
    assert scoring.value(t, 721, HL, CFG) > 0.0
    assert "timeout" not in scoring.CHEATS and "refused" not in scoring.CHEATS


@pytest.mark.parametrize("tokens,share", [(48, 1.0), (3, 3 / 48), (0, 0.0)])
def test_pay_counts_the_useful_tokens_delivered(tokens, share):
    full = scoring.add(scoring.Tally(), [OK] * 4, 10, HL, probe_seconds=1.0)
    short = scoring.add(
        scoring.Tally(), [scoring.Sample("ok", tokens)] * 4, 10, HL, probe_seconds=1.0
    )
    ratio = scoring.value(short, 10, HL, CFG) / scoring.value(full, 10, HL, CFG)
    assert ratio == pytest.approx(share)


def test_one_engine_behind_two_hotkeys_earns_what_it_earns_behind_one():
    # Probed together, two hotkeys on one engine each serve half its tokens in the same time.
    one = {1: scoring.add(scoring.Tally(), [OK] * 8, 10, HL, probe_seconds=1.0)}
    half = [scoring.Sample("ok", 24)] * 8
    two = {u: scoring.add(scoring.Tally(), half, 10, HL, probe_seconds=1.0) for u in (2, 3)}
    honest = {4: one[1]}
    for engine in (one, two):
        tallies = {**engine, **honest}
        values = {u: scoring.value(t, 10, HL, CFG) for u, t in tallies.items()}
        w = scoring.pool_weights(values, {u: "h" for u in values}, {"h": 1.0})
        assert sum(w[u] for u in engine) == pytest.approx(0.5)


def test_demand_shares_and_pools():
    shares = scoring.demand_shares(["a", "b"], {"a": 9.0, "b": 1.0}, 0.2)
    assert shares == pytest.approx({"a": 0.1 + 0.8 * 0.9, "b": 0.1 + 0.8 * 0.1})
    assert scoring.demand_shares(["a", "b"], {}, 0.2) == {"a": 0.5, "b": 0.5}
    assert scoring.demand_shares([], {"a": 1.0}, 0.2) == {}
    values = {1: 2.0, 2: 1.0, 3: 5.0, 4: 0.0}
    w = scoring.pool_weights(values, {1: "a", 2: "a", 3: "b", 4: "b"}, {"a": 0.75, "b": 0.25})
    assert w == pytest.approx({1: 0.5, 2: 0.25, 3: 0.25})
    # An expert whose miners earn nothing gives its share to the others.
    w = scoring.pool_weights({1: 1.0, 3: 0.0}, {1: "a", 3: "b"}, {"a": 0.5, "b": 0.5})
    assert w == {1: 1.0}


@pytest.mark.parametrize(
    "capacity,share,expected", [(32, 0.5, 16), (32, 0.01, 1), (8, 1.0, 8), (3, 0.4, 1)]
)
def test_fair_share(capacity, share, expected):
    assert scoring.fair_share(capacity, share) == expected


def test_declared_domains_are_earned_not_claimed():
    fit = {
        "code": {"code": -4.7, "math": -6.6, "general": -4.5},
        "math": {"code": -6.5, "math": -3.4, "general": -6.0},
    }
    earned = domains.earned_domains(fit)
    assert earned == {"code": ("code", "general"), "math": ("math",)}
    owner = {"code": ("code",), "math": ("math", "code", "general")}  # the owner's registry
    assert domains.earned_domains(fit, owner) == {"code": ("code",), "math": ("math",)}
    # An expert the owner lists for nothing it is good at is still tested where it fits best.
    assert domains.earned_domains(fit, {"code": (), "math": ()})["code"] == ("general",)
    assert domains.best_expert("math", fit, ["code", "math"]) == "math"


def test_router_follows_preference_and_keeps_cheat_bans():
    cfg = router.RouterConfig(top_k=2, explore=0.0)
    bans = router.Bans(cfg)
    cands = [
        router.Candidate(1, "code", 0.9),
        router.Candidate(2, "code", 0.5),
        router.Candidate(3, "math", 1.0),
        router.Candidate(4, "code", 0.99, inflight=2, capacity=2),
    ]
    rng = random.Random(0)
    assert router.pick(cands, ["code"], now=0, bans=bans, rng=rng, cfg=cfg) == [1, 2]
    assert router.pick(cands, ["math", "code"], now=0, bans=bans, rng=rng, cfg=cfg) == [3, 1]
    assert bans.failure(1, 0.0) == 2.0 and bans.failure(1, 0.0) == 4.0
    assert router.pick(cands, ["code"], now=1, bans=bans, rng=rng, cfg=cfg) == [2]
    bans.success(1)
    assert not bans.banned(1, 1.0)
    bans.cheat(2, 1.0)
    bans.success(2)  # an answer arriving before verification does not clear a cheat ban
    assert bans.banned(2, 2.0) and not bans.banned(2, 1.0 + cfg.cheat_ban_s)
    assert router.pick(cands, ["code"], now=2, bans=bans, rng=rng, cfg=cfg) == [1]
    assert router.pick(cands, ["other"], now=2, bans=bans, rng=rng, cfg=cfg) == [3, 1]
    assert router.hedge_delay(0.1, cfg) == pytest.approx(0.2)
    explore = router.RouterConfig(top_k=1, explore=1.0)
    many = [router.Candidate(i, "code", i / 10) for i in range(5)]
    got = router.pick(many, ["code"], now=0, bans=router.Bans(explore), rng=rng, cfg=explore)
    assert got[-1] == 4 and got[0] != 4


def test_sampling_prefers_low_evidence_and_probes_fill_the_fair_share():
    cfg = sampling.SamplingConfig(per_step=1)
    rng = random.Random(0)
    cands = [
        sampling.Candidate(1, evidence=100, last_queried=99.0),
        sampling.Candidate(2, evidence=0, last_queried=0.0),
        sampling.Candidate(4, evidence=0, last_queried=0.0, inflight=1, capacity=1),
    ]
    picks = [sampling.choose(cands, 100.0, rng, cfg)[0] for _ in range(200)]
    assert set(picks) <= {1, 2} and picks.count(2) > 150
    assert sampling.probe_size(16, 0, 8) == 8
    assert sampling.probe_size(16, 10, 8) == 6
    assert sampling.probe_size(1, 1, 8) == 1
    assert sampling.probe_size(4, 0, 16) == 4  # the whole declared capacity, not our share


def test_state_roundtrip_restart_hotkey_reset_and_old_files(tmp_path):
    path = tmp_path / "state.json"
    store = StateStore(path)
    with pytest.raises(RuntimeError):
        store.save(ValidatorState())
    state = store.load()
    t1 = run([(0, ["ok"] * 3)])
    state.put(1, "hk1", t1)
    state.put(2, "hk2", run([(0, ["timeout"])]))
    state.demand["a"] = (3.0, 10.0)
    state.last_weights = {1: 0.6, 2: 0.4}
    store.save(state)
    again = StateStore(path).load()
    assert again.tally(1) == t1 and again.tally(2).failures == 1
    assert again.demand == {"a": (3.0, 10.0)}
    store.save_side("traffic", {"n": 1})
    assert StateStore(path).load_side("traffic") == {"n": 1}
    store.side_path("gate").write_text("{torn")
    assert StateStore(path).load_side("gate") is None  # moved aside, not fatal
    assert list(tmp_path.glob("state.gate.json.corrupt-*"))
    assert again.last_weights == {1: 0.6, 2: 0.4}
    assert again.sync_hotkeys({1: "hk1", 2: "other"}) == [2]
    assert again.tally(1) == t1 and again.tally(2).count == 0
    assert json.loads(json.dumps(again.to_dict()))["version"] == 2
    # A damaged file is moved aside, never overwritten; garbage numbers read as defaults.
    path.write_text("{not json")
    assert StateStore(path).load().tallies == {} and list(tmp_path.glob("state.json.corrupt-*"))
    bad = {"samples": "x", "passed": 1e9, "tokens": float("nan"), "count": -3}
    t = scoring.Tally.from_dict(bad)
    assert (t.samples, t.passed, t.tokens, t.count) == (0.0, 0.0, 0.0, 0)
    # Version 1 (an EMA per miner and domain) converts: samples and pass rate carry over.
    v1 = {
        "version": 1,
        "hotkeys": {"3": "hk3"},
        "stats": {"3": {"code": {"ema": 0.5, "evidence": 8, "failures": 4}}},
        "last_weights_block": 7,
    }
    path.write_text(json.dumps(v1))
    old = StateStore(path).load()
    assert old.hotkeys == {3: "hk3"} and old.last_weights_block == 7
    assert scoring.pass_rate(old.tally(3)) == pytest.approx(0.5) and old.tally(3).count == 8


def test_a_refusal_beyond_our_share_is_no_sample():
    t = scoring.add(scoring.Tally(), [scoring.Sample("ok", 10)], 0.0, 10.0, probe_seconds=1.0)
    after = scoring.add(t, [scoring.Sample(scoring.BEYOND_SHARE)] * 3, 0.0, 10.0)
    assert after == t
    worse = scoring.add(t, [scoring.Sample("refused")], 0.0, 10.0)
    assert worse.samples == t.samples + 1 and worse.refused == 1


def test_an_untimed_burst_is_no_sample_but_its_window_counts():
    t = scoring.add(scoring.Tally(), [scoring.Sample("ok", 10)], 0.0, 10.0, probe_seconds=1.0)
    after = scoring.add(t, [scoring.Sample(scoring.UNJUDGED)], 0.0, 10.0, probe_seconds=1.0)
    assert after.samples == t.samples and after.passed == t.passed
    assert after.seconds == t.seconds + 1.0  # no tokens paid for that window
