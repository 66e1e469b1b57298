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
    for _ in range(4):
        report = await v.step()
        assert sorted(report.queried) == [1, 2, 3, 4]
        for uid, reason in report.reasons.items():
            reasons[uid].append(reason)
    assert reasons[1] == ["ok"] * 4 and reasons[2] == ["ok"] * 4
    assert set(reasons[4]) == {"implausible_tokens"}
    assert reasons[3].count("ok") <= 1
    assert set(reasons[3]) <= {"ok", "implausible_tokens", "logprob_mismatch", "copycat"}
    # Honest miners rank above the cheats.
    w = v.weight_vector()
    assert min(w[1], w[2]) > max(w.get(3, 0.0), w.get(4, 0.0))


async def test_echo_of_another_answer_is_copycat(
    tmp_path, registry, by_domain, mwallets, signed, start_miner, start_scripted
):
    code = by_domain["code"]
    _, honest = await start_miner(code, mwallets[0], uid=1)
    v = make_validator(validator_config(tmp_path / "s.json", seed=3), signed, registry)
    v.set_miners([honest])
    first = (await v.step()).results[1].response
    echo = await start_scripted(replay(first), mwallets[1], 2, code.card)
    v.set_miners([honest, echo])
    copycat = 0
    for _ in range(4):
        report = await v.step()
        assert report.reasons[1] == "ok"
        reason = report.reasons[2]
        # A shorter echo claims `stop` with no stop sequence (premature_end), and a cut echo's
        # text no longer matches its tokens (text_mismatch): both are caught as such.
        assert reason in ("ok", "copycat", "premature_end", "text_mismatch"), reason
        if reason != "ok":
            copycat += 1
    # An echo that the declared model would itself produce for the new prompt (tiny models often
    # continue with the same whitespace) is accepted by design; the rest are caught.
    assert copycat >= 2


async def test_ema_updates_only_queried_and_restart_keeps_scores(
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
        evidence = v.state.stat(m.uid, "math").evidence
        assert evidence == (1 if m.uid == queried else 0)
    before = v.state.stat(queried, "math")
    assert before.ema > 0
    # A restart: a fresh Validator on the same file sees the same scores before doing anything.
    again = make_validator(cfg, signed, registry)
    assert again.state.stat(queried, "math") == before
    again.set_miners([replace(m, hotkey="5Changed") if m.uid == queried else m for m in miners])
    assert again.state.stat(queried, "math").evidence == 0  # re-registered uid: reset


async def test_busy_and_dead_miners_do_not_stop_the_loop(
    tmp_path, registry, by_domain, mwallets, signed, start_miner, start_scripted
):
    math = by_domain["math"]
    _, honest = await start_miner(math, mwallets[0], uid=1)
    busy = await start_scripted(lambda req: None, mwallets[1], 2, math.card)
    dead = replace(honest, uid=3, hotkey=mwallets[2].hotkey.ss58_address, url="http://127.0.0.1:9")
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([honest, busy, dead])
    report = await v.step()
    assert report.reasons[1] == "ok" and report.reasons[3] == "error"
    assert 2 not in report.reasons and v.state.stat(2, "math").evidence == 0  # 429: no sample
    assert v.backoff.until(2) > 0
    report = await v.step()
    assert 2 not in report.queried  # backing off
    assert v.state.stat(3, "math").ema == 0.0
