"""Synthetic tasks: the cold start, tasks built on recorded organic prompts, the nonce woven in,
and a small version of the detector benchmark (scripts/bench_tasks.py)."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections import Counter
from pathlib import Path

import pytest

from protocol import ChatMessage, GenerateRequest
from subnet.validator import openai_format as oai
from subnet.validator import tasks
from subnet.validator.traffic import TrafficConfig, TrafficProfile, content_key
from subnet.validator.weave import build_vocab, candidates, kind_of, tokens_by_kind, weave

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_tasks", ROOT / "scripts/bench_tasks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_tasks", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _text(req: GenerateRequest) -> str:
    return req.prompt if req.prompt is not None else req.messages[-1].content


@pytest.mark.parametrize(
    "token,before,kind",
    [
        ("123", "is ", "num"),
        ("1234567890", "", None),  # too long to be a quantity someone typed
        ("merge_sorted", "def ", "ident"),
        ("sumArray", "function ", "ident"),
        ("Alice", "met ", "name"),
        ("Alice", "home. ", None),  # a capital at a sentence start is not known to be a name
        ("difference", "the ", "word"),
        ("between", "the ", None),  # function words carry grammar
        ("print", "", None),  # builtins and keywords stay
        ("return", "", None),
        ("__init__", "def ", None),
    ],
)
def test_kind_of(token, before, kind):
    assert kind_of(token, before) == kind


@pytest.mark.parametrize(
    "text,replaceable,pinned",
    [
        ("17 + 26 = 43\n33 + 48 =", {"33", "48"}, {"17", "26", "43"}),  # worked facts stay true
        ("7 + 5 = 13\n7 * 2 =", {"7", "5", "13", "2"}, set()),  # a wrong fact pins nothing
        ("x = os.path.join(base_dir)", {"base_dir"}, {"path", "join"}),  # library attributes
        ("import numpy\nvalues = numpy.array(raw_data)", {"raw_data", "values"}, {"numpy"}),
        ("Why is the sky blue?", set(), set()),
    ],
)
def test_candidates_leave_facts_and_libraries_alone(text, replaceable, pinned):
    got = set(candidates([text]))
    assert replaceable <= got
    assert not pinned & got


def test_weave_replaces_every_copy_with_a_token_users_wrote_after_the_same_word():
    vocab = build_vocab(
        tokens_by_kind(
            [
                "What is the average of these numbers?",
                "Explain the history of the bicycle.",
                "What is the meaning of this word?",
                "Call parse_duration with 12 and 45 seconds",
            ]
        )
    )
    text = "the difference between the difference and 12 apples"
    for seed in range(30):
        woven = weave([text], vocab, random.Random(seed))
        assert woven is not None
        (out,), nonce = woven
        assert out != text and nonce
        changes = dict(c.split(">") for c in nonce.split(","))
        for old, new in changes.items():
            assert old not in out.split() and out.split().count(new) == text.split().count(old)
            if old == "difference":
                assert new in {"average", "history", "meaning", "bicycle"}
            if old == "12":
                assert len(new) == 2
        assert len(out) - len(text) <= 3 * len(changes)
    assert weave(["Why is the sky blue?"], vocab, random.Random(0)) is None


def test_weave_is_pure_given_the_rng():
    vocab = build_vocab(tokens_by_kind(["Compute 17 * 23 and 41 * 12 for Alice and Bob"]))
    a = weave(["What is 33 * 48 for Grace?"], vocab, random.Random(5))
    assert a == weave(["What is 33 * 48 for Grace?"], vocab, random.Random(5))


@pytest.mark.parametrize("domain", tasks.DOMAINS)
def test_cold_start_tasks_are_valid_fresh_and_pure(domain):
    a = [tasks.make_task(domain, random.Random(i)) for i in range(40)]
    b = [tasks.make_task(domain, random.Random(i)) for i in range(40)]
    for t, u in zip(a, b, strict=True):
        assert t.domain == domain and t.source == "template" and t.nonce
        assert GenerateRequest.from_dict(t.request.to_dict()) is not None  # valid on the wire
        same = {**t.request.to_dict(), "request_id": ""} == {
            **u.request.to_dict(),
            "request_id": "",
        }
        assert same
        assert "{" not in _text(t.request) or domain in ("code", "data")
    assert len({_text(t.request) for t in a}) >= 38


def test_a_domain_without_templates_names_the_fix():
    with pytest.raises(ValueError, match="add subnet/data/tasks/legal_templates.txt"):
        tasks.make_task("legal", random.Random(0))


def _body(client: tasks.ClientShape, rng: random.Random) -> tuple[dict, dict]:
    """An OpenAI body as such a client sends it, and the fields COLD_START should give."""
    body: dict = {"model": "auto"}
    want = {
        "max_tokens": rng.choice(client.max_tokens),
        "temperature": rng.choice(client.temperatures),
        "stop": list(rng.choice(client.stops)),
    }
    default_max = 64 if client.chat else 16
    if want["max_tokens"] != default_max:
        body["max_tokens"] = want["max_tokens"]
    if want["temperature"] != 1.0:
        body["temperature"] = want["temperature"]
    if want["stop"]:
        body["stop"] = want["stop"]
    if client.chat:
        body["messages"] = [{"role": "user", "content": "hi"}]
    else:
        body["prompt"] = "hi"
    return body, want


@pytest.mark.parametrize("client", tasks.COLD_START)
def test_cold_start_clients_are_what_the_gateway_forwards(client):
    rng = random.Random(3)
    for _ in range(5):
        body, want = _body(client, rng)
        req = oai.to_generate(body, chat=client.chat, max_tokens_cap=512)
        got = {"max_tokens": req.max_tokens, "temperature": req.temperature, "stop": list(req.stop)}
        assert got == want
        assert (req.logprobs, req.stream, req.top_logprobs) == (True, True, 0)
    assert sum(c.share for c in tasks.COLD_START) == pytest.approx(1.0)


def _organic(rng: random.Random, i: int) -> GenerateRequest:
    """A made-up user population with its own field distribution, every field used."""
    text = f"Please compute {rng.randrange(10, 99)} * {rng.randrange(10, 99)} for my report {i}"
    kw = dict(
        max_tokens=rng.choice((100, 100, 100, 300)),
        temperature=rng.choice((0.3, 0.0)),
        top_p=0.9,
        seed=rng.choice((None, 7)),
        stop=("###",) if rng.random() < 0.5 else (),
        top_logprobs=rng.choice((0, 5)),
    )
    if i % 3 == 0:
        return GenerateRequest(prompt=text, **kw)
    msgs = (ChatMessage("system", "Be brief."), ChatMessage("user", text))
    return GenerateRequest(messages=msgs, **kw)


def _warm_profile(n: int = 300, cfg: TrafficConfig = TrafficConfig()) -> TrafficProfile:
    rng = random.Random(11)
    profile = TrafficProfile(cfg)
    for i in range(n):
        profile.observe(_organic(rng, i), "math", served_by=i % 4, now=float(i))
    return profile


def test_warm_tasks_follow_the_recorded_field_distribution():
    profile = _warm_profile()
    rng = random.Random(1)
    made = [tasks.make_task("math", rng, profile) for _ in range(600)]
    assert all(t.source.startswith("organic:") for t in made)
    reqs = [t.request for t in made]
    share = Counter(r.max_tokens for r in reqs)
    assert set(share) == {100, 300} and 0.65 < share[100] / len(reqs) < 0.85
    assert {r.temperature for r in reqs} == {0.3, 0.0} and {r.top_p for r in reqs} == {0.9}
    assert {r.seed for r in reqs} == {None, 7}  # a seed people pick is kept as it is
    assert {r.top_logprobs for r in reqs} == {0, 5}
    assert 0.35 < sum(r.stop == ("###",) for r in reqs) / len(reqs) < 0.65
    chat = [r for r in reqs if r.messages is not None]
    assert 0.55 < len(chat) / len(reqs) < 0.8
    assert all([m.role for m in r.messages] == ["system", "user"] for r in chat)
    assert all(r.messages[0].content == "Be brief." for r in chat)  # system prompts unchanged
    organic = {content_key(e.request()) for e in profile.entries("math")}
    assert not organic & {content_key(r) for r in reqs}  # never a user's prompt as sent


def test_random_looking_seeds_are_replaced_by_fresh_ones():
    fields = {"seed": 2_718_281_828, "max_tokens": 10}
    got = {tasks.fresh_fields(fields, random.Random(i))["seed"] for i in range(20)}
    assert len(got) == 20 and all(len(str(s)) == 10 for s in got) and 2_718_281_828 not in got


def test_the_nonce_makes_two_tasks_from_one_organic_prompt_differ():
    profile = TrafficProfile(TrafficConfig(min_pool=1))
    prompt = "Sarah has 12 apples. She gives 5 to Tom and buys 9 more. How many now?"
    profile.observe(GenerateRequest(prompt=prompt), "math", served_by=1, now=0.0)
    for other in ("What is 17 * 23?", "Find the average of 14, 22 and 31 for Bob and Emma."):
        profile.observe(GenerateRequest(prompt=other), "general", served_by=1, now=0.0)
    made = [tasks.make_task("math", random.Random(i), profile) for i in range(20)]
    assert all(t.source == f"organic:{profile.entries('math')[0].key}" for t in made)
    texts = {t.request.prompt for t in made}
    assert prompt not in texts and len(texts) >= 10
    assert len({t.nonce for t in made}) == len(texts)


def test_for_uid_gets_only_prompts_it_never_saw():
    profile = TrafficProfile(TrafficConfig(min_pool=1))
    for i in range(40):
        req = GenerateRequest(prompt=f"Compute {i + 10} * {i + 20} quickly")
        profile.observe(req, "math", served_by={i % 4, 9} if i % 2 else i % 4, now=float(i))
    seen_by = {e.key: e.served_by for e in profile.entries("math")}
    rng = random.Random(0)
    for uid in (0, 1, 2, 3, 9):
        for _ in range(30):
            t = tasks.make_task("math", rng, profile, for_uid=uid)
            assert t.source.startswith("organic:") and uid not in seen_by[t.source[8:]]
    # With nothing it never saw, a miner gets a template rather than a prompt it served.
    only = TrafficProfile(TrafficConfig(min_pool=1))
    only.observe(GenerateRequest(prompt="Compute 12 * 13"), "math", served_by=5, now=0.0)
    assert tasks.make_task("math", rng, only, for_uid=5).source == "template"


def test_a_conversation_and_its_earlier_turns_share_who_saw_them():
    profile = TrafficProfile(TrafficConfig(min_pool=1))
    turn1 = (ChatMessage("user", "Tell me about Lisbon in 1755"),)
    turn2 = (*turn1, ChatMessage("assistant", "An earthquake."), ChatMessage("user", "And Porto?"))
    profile.observe(GenerateRequest(messages=turn1), "general", served_by=3, now=0.0)
    profile.observe(GenerateRequest(messages=turn2), "general", served_by=4, now=1.0)
    assert [e.served_by for e in profile.entries("general")] == [{3, 4}, {3, 4}]
    assert tasks.make_task("general", random.Random(0), profile, for_uid=3).source == "template"


def test_a_prompt_that_comes_back_remembers_who_saw_it_before():
    profile = TrafficProfile(TrafficConfig(pool_size=2))
    again = GenerateRequest(prompt="What is 17 * 23?")
    profile.observe(again, "math", served_by=1, now=0.0)
    for i in range(5):  # pushes it out of the pool
        profile.observe(GenerateRequest(prompt=f"What is {i} + 9?"), "math", served_by=2, now=1.0)
    restored = TrafficProfile.from_dict(profile.to_dict(include_prompts=False))
    for p in (profile, restored):
        p.observe(again, "math", served_by=3, now=2.0)
        assert p.entries("math")[-1].served_by == {1, 3}


def test_pick_domain_follows_the_organic_traffic():
    profile = TrafficProfile()
    for i in range(400):
        domain = "code" if i % 4 else "math"
        profile.observe(GenerateRequest(prompt=f"x{i}"), domain, served_by=0, now=0.0)
    rng = random.Random(0)
    got = Counter(tasks.pick_domain(rng, tasks.DOMAINS, profile) for _ in range(4000))
    assert 0.65 < got["code"] / 4000 < 0.8 and 0.2 < got["math"] / 4000 < 0.3
    assert 0 < got["general"] < 200  # a declared domain users never ask for is still checked
    cold = Counter(tasks.pick_domain(rng, ("code", "math"), None) for _ in range(1000))
    assert 400 < cold["code"] < 600


def test_the_profile_stays_bounded():
    cfg = TrafficConfig(pool_size=8, shapes_size=16, systems_size=2, max_prompt_chars=50)
    profile = TrafficProfile(cfg)
    for i in range(100):
        msgs = (ChatMessage("system", f"sys {i % 5}"), ChatMessage("user", "u" * (i % 80)))
        profile.observe(GenerateRequest(messages=msgs), "general", served_by=i, now=float(i))
    assert len(profile.shapes("general")) == 16 and len(profile.entries("general")) == 8
    assert all(e.shape.chars <= 50 for e in profile.entries("general"))
    assert len(profile.systems("general")) == 2
    for i in range(cfg.max_domains + 5):
        profile.observe(GenerateRequest(prompt="p"), f"d{i}", served_by=0, now=0.0)
    assert len(profile.domains()) == cfg.max_domains


def test_the_profile_round_trips_and_can_drop_the_prompts():
    profile = _warm_profile(40)
    again = TrafficProfile.from_dict(profile.to_dict())
    assert again.to_dict() == profile.to_dict()
    rng_a, rng_b = random.Random(4), random.Random(4)
    a = tasks.make_task("math", rng_a, profile, for_uid=1)
    b = tasks.make_task("math", rng_b, again, for_uid=1)
    assert a.request.to_dict() | {"request_id": ""} == b.request.to_dict() | {"request_id": ""}
    bare = TrafficProfile.from_dict(profile.to_dict(include_prompts=False))
    assert bare.entries("math") == () and len(bare.shapes("math")) == 40
    assert tasks.make_task("math", random.Random(0), bare).source == "template"


GOOD_SHAPE = {"fields": {"max_tokens": 20}, "roles": None, "chars": 3}


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        5,
        "profile",
        [],
        {},
        {"version": 2, "shapes": {"code": [GOOD_SHAPE]}},
        {"version": 1, "shapes": "x", "entries": 7, "systems": None, "observed": "many"},
        {"version": 1, "shapes": {"code": [{"fields": {"max_tokens": -5}, "chars": 1}]}},
        {"version": 1, "shapes": {"code": [{"fields": {"temperature": "hot"}, "chars": 1}]}},
        {"version": 1, "shapes": {"code": [{"fields": {}, "roles": [], "chars": 1}, 3, None]}},
        {"version": 1, "shapes": {"": [GOOD_SHAPE], "code": {"a": 1}}},
        {"version": 1, "entries": {"code": [{"shape": GOOD_SHAPE, "prompt": "p"}]}},  # no shapes
    ],
)
def test_a_garbage_profile_loads_empty(garbage):
    profile = TrafficProfile.from_dict(garbage)
    assert profile.domains() == () and profile.observed == 0
    assert tasks.make_task("code", random.Random(0), profile).source == "template"


def test_bad_records_are_skipped_and_good_ones_kept():
    entry = {"shape": GOOD_SHAPE, "prompt": "Compute 12 * 13 now", "messages": None}
    d = {
        "version": 1,
        "observed": 3,
        "shapes": {"math": [GOOD_SHAPE, {"fields": {"top_p": 9}, "chars": 1}]},
        "entries": {
            "math": [
                {**entry, "served_by": [1, "x", True]},
                {**entry, "served_by": "all"},
                {**entry, "prompt": None, "messages": [["user"]], "served_by": []},
                {**entry, "messages": [["user", "hi"]], "served_by": []},  # both texts
            ]
        },
        "systems": {"math": ["Be brief.", 5, ""]},
    }
    profile = TrafficProfile.from_dict(d)
    assert len(profile.shapes("math")) == 1 and profile.observed == 3
    (only,) = profile.entries("math")
    assert only.served_by == {1} and profile.systems("math") == ("Be brief.",)


def test_detector_cannot_tell_warm_tasks_from_users_as_it_could_on_main():
    """The benchmark in small: 240 user requests against 240 tasks, 3 folds."""
    bench = _bench()
    old = bench.detect(*bench.simulate("old", 0, 240, seed=1)[:2], "all", folds=3, steps=150)
    warm = bench.detect(*bench.simulate("warm", 600, 240, seed=1)[:2], "all", folds=3, steps=150)
    assert old > 0.95
    assert warm < 0.7 and old - warm > 0.3
