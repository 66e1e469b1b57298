"""The scoring loop against real miner servers (tiny experts) and scripted adversaries."""

from __future__ import annotations

from dataclasses import replace

from tests.validator.helpers import make_validator, random_tokens, replay, validator_config


async def test_honest_pass_adversaries_fail_with_reason(
    tmp_path, registry, by_domain, mwallets, signed, start_miner, start_scripted
):
    math, code = by_domain["math"], by_domain["code"]
    _, honest_math = await start_miner(math, mwallets[0], uid=1)
    _, honest_code = await start_miner(code, mwallets[1], uid=2)
    # A miner serving the code expert's weights under the math expert's card.
    _, wrong = await start_miner(code, mwallets[2], uid=3, card=math.card)
    rnd = await start_scripted(random_tokens(len(math.tokenizer)), mwallets[3], 4, math.card)
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([honest_math, honest_code, wrong, rnd])
    reasons: dict[int, list[str]] = {1: [], 2: [], 3: [], 4: []}
    for _ in range(2):
        report = await v.step()
        assert sorted(report.queried) == [1, 2, 3, 4]
        for uid, got in report.reasons.items():
            # A probe keeps our fair share of the declared capacity (all of it here) busy:
            # at least one task per stream.
            assert len(got) >= v.miners[uid].card.capacity
            reasons[uid] += got
    assert set(reasons[1]) == {"ok"} and set(reasons[2]) == {"ok"}
    assert set(reasons[4]) <= {"implausible_tokens", "ignored_stop"}  # a stop list crossed
    assert reasons[3].count("ok") <= 2
    assert set(reasons[3]) <= {"ok", "implausible_tokens", "logprob_mismatch", "copycat"}
    # Honest miners rank above the cheats.
    w = v.weight_vector()
    assert min(w[1], w[2]) > max(w.get(3, 0.0), w.get(4, 0.0))


async def test_echo_of_another_answer_is_copycat(
    tmp_path, registry, by_domain, mwallets, signed, start_miner, start_scripted
):
    code = by_domain["code"]
    _, honest = await start_miner(code, mwallets[0], uid=1)
    # The seed picks the tasks: with this one the recorded answer is no run of whitespace the
    # model would give anywhere (that echo passes by design, see below).
    v = make_validator(validator_config(tmp_path / "s.json", seed=7), signed, registry)
    v.set_miners([honest])
    first = (await v.step()).results[1][0].response
    echo = await start_scripted(replay(first), mwallets[1], 2, code.card)
    v.set_miners([honest, echo])
    caught: list[str] = []
    for _ in range(6):
        report = await v.step()
        assert set(report.reasons[1]) == {"ok"}
        # A stale answer is a copy, runs past the new task's stop sequence, claims `stop` with
        # no stop sequence (premature_end), or its cut text no longer matches its tokens
        # (text_mismatch): each is caught as such.
        allowed = {"ok", "copycat", "ignored_stop", "premature_end", "text_mismatch"}
        assert set(report.reasons[2]) <= allowed, report.reasons[2]
        caught += [r for r in report.reasons[2] if r != "ok"]
    # An echo that the declared model would itself produce for the new prompt (tiny models often
    # continue with the same whitespace) is accepted by design; the rest are caught.
    assert len(caught) >= 2


async def test_evidence_only_for_queried_and_restart_keeps_it(
    tmp_path, registry, by_domain, mwallets, signed, start_miner
):
    math = by_domain["math"]
    miners = [(await start_miner(math, mwallets[i], uid=i + 1))[1] for i in range(3)]
    cfg = validator_config(tmp_path / "s.json", per_step=1)
    v = make_validator(cfg, signed, registry)
    v.set_miners(miners)
    report = await v.step()
    (queried,) = report.queried
    for m in miners:
        count = v.state.tally(m.uid).count
        assert count >= m.card.capacity if m.uid == queried else count == 0
    before = v.state.tally(queried)
    assert v.ledger.value(queried) > 0 and before.tokens > 0 and before.seconds > 0
    # A restart: a fresh Validator on the same file sees the same evidence before doing anything.
    again = make_validator(cfg, signed, registry)
    assert again.state.tally(queried) == before
    again.set_miners([replace(m, hotkey="5Changed") if m.uid == queried else m for m in miners])
    assert again.state.tally(queried).count == 0  # re-registered uid: reset


async def test_refusals_cost_like_failures_and_dead_miners_do_not_stop_the_loop(
    tmp_path, registry, by_domain, mwallets, signed, start_miner, start_scripted
):
    math = by_domain["math"]
    _, honest = await start_miner(math, mwallets[0], uid=1)
    busy = await start_scripted(lambda req: None, mwallets[1], 2, math.card)
    dead = replace(honest, uid=3, hotkey=mwallets[2].hotkey.ss58_address, url="http://127.0.0.1:9")
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([honest, busy, dead])
    report = await v.step()
    assert set(report.reasons[1]) == {"ok"} and set(report.reasons[3]) == {"error"}
    # A 429 within our fair share (capacity 8, all of it ours) is a failed sample.
    assert set(report.reasons[2]) == {"refused"}
    assert v.state.tally(2).refused == v.state.tally(2).samples > 0
    assert v.ledger.backed_off(2)
    report = await v.step()
    # While it makes us wait (Retry-After 2 s), each probe it would get is refused too.
    assert set(report.reasons[2]) == {"refused"} and v.state.tally(2).count >= 2
    assert v.ledger.value(2) == 0.0 and v.ledger.value(3) == 0.0 and v.ledger.value(1) > 0
    assert set(v.weight_vector()) == {1}
