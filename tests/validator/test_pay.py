"""Pay for work, not for claims or hotkeys: real miners, the real validator loop.

- A miner declaring every domain earns what the same honest expert earns declaring one.
- One engine behind two hotkeys (the second relaying to the first in real time) earns, over both
  hotkeys, no more than one engine behind one hotkey: probes up to each hotkey's fair share of its
  declared capacity run at the same time, so the shared engine's speed is shared.
"""

from __future__ import annotations

from dataclasses import replace

from subnet.miner.admission import MetagraphSnapshot, Peer
from subnet.miner.adversary import AdversaryConfig
from tests.validator.helpers import make_validator, validator_config


def _steps_cfg(tmp_path, n: int):
    cfg = validator_config(tmp_path / "s.json", per_step=n)
    return replace(cfg, loop=replace(cfg.loop, probe_wait_s=60.0))


async def test_declaring_more_domains_does_not_raise_pay(
    tmp_path, registry, by_domain, mwallets, signed, start_miner
):
    code = by_domain["code"]
    _, plain = await start_miner(code, mwallets[0], uid=1)
    claims = AdversaryConfig("overclaim")
    _, greedy = await start_miner(code, mwallets[1], uid=2, cheat=claims)
    assert set(greedy.card.domains) == {"code", "math", "general"}
    v = make_validator(_steps_cfg(tmp_path, 2), signed, registry)
    v.set_miners([plain, greedy])
    # Tested in the domains its expert earned, whatever the card says.
    assert v.ledger.task_domains(2) == v.ledger.task_domains(1)
    for _ in range(3):
        await v.step()
    w = v.weight_vector()
    assert w[2] <= 1.3 * w[1], w  # same expert, same engine settings: same pay within noise


async def test_one_engine_behind_two_hotkeys_earns_no_more_than_behind_one(
    tmp_path, registry, by_domain, mwallets, signed, start_miner, vwallet
):
    math = by_domain["math"]
    relay_hk = mwallets[2].hotkey.ss58_address
    # The operator's base miner admits its own relay hotkey as well as the validator.
    snapshot = MetagraphSnapshot(
        block=1,
        peers={
            vwallet.hotkey.ss58_address: Peer(0, 1000.0, True),
            relay_hk: Peer(9, 1000.0, True),
        },
    )
    _, base = await start_miner(math, mwallets[1], uid=2, snapshot=snapshot)
    sybil = AdversaryConfig("sybil", base.url, base.hotkey)
    _, relay = await start_miner(math, mwallets[2], uid=3, cheat=sybil)
    # The same engine measured behind one hotkey, then behind two (one engine on the CPU at a
    # time, so no other engine's load skews the comparison).
    alone = make_validator(_steps_cfg(tmp_path / "a", 1), signed, registry)
    alone.set_miners([base])
    both = make_validator(_steps_cfg(tmp_path / "b", 2), signed, registry)
    both.set_miners([base, relay])
    for _ in range(3):
        await alone.step()
    one = alone.ledger.value(2)
    for _ in range(3):
        report = await both.step()
        assert sorted(report.queried) == [2, 3]  # probed together, every step
        assert set(report.reasons[3]) == {"ok"}  # the relay's answers are honest
    two = both.ledger.value(2) + both.ledger.value(3)
    assert one > 0 and two <= 1.2 * one, (one, both.ledger.value(2), both.ledger.value(3))
