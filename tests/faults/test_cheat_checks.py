"""The localnet summary's cheater verdicts, from epoch rows and validator log lines (pure)."""

from __future__ import annotations

import argparse

import pytest

from subnet.config import ConfigError
from subnet.localnet.cheats import cheat_checks, zero_reasons
from subnet.localnet.config import add_localnet_args, localnet_config_from_args
from subnet.localnet.history import EpochRow, UidRow
from subnet.miner.adversary import ADVERSARIES


def _row(incentives: dict[str, tuple[str, float]]) -> EpochRow:
    uids = tuple(
        UidRow(uid, f"hk{uid}", role, label, inc, 0.0, 0, 0, False)
        for uid, (label, (role, inc)) in enumerate(incentives.items())
    )
    return EpochRow(epoch=1, block=10, uids=uids)


LOG = """\
2026 INFO validator subnet.validator.loop: uid 2 code scored 0: implausible_tokens 64 tokens outside
2026 INFO validator subnet.validator.loop: uid 2 math scored 0: logprob_mismatch token 3: claimed
2026 INFO validator subnet.validator.loop: uid 2 code scored 0: implausible_tokens greedy token 0
2026 INFO validator subnet.validator.loop: uid 1 busy (429); backing off, no penalty
"""


def test_reasons_are_counted_per_uid():
    got = zero_reasons(LOG.splitlines())
    assert dict(got[2]) == {"implausible_tokens": 2, "logprob_mismatch": 1}
    assert 1 not in got


def test_share_and_caught_verdicts():
    row = _row({"miner-1 (code)": ("miner", 0.5), "miner-2 (math)": ("miner", 0.47),
                "cheat-random (code)": ("cheater", 0.03), "cheat-hang (math)": ("cheater", 0.0)})  # fmt: skip
    checks = {w: (ok, d) for w, ok, d in cheat_checks(row, zero_reasons(LOG.splitlines()))}
    ok, detail = checks["honest miners take >= 95% of miner incentive"]
    assert ok and "97.0%" in detail and "cheat-random (code) 0.030" in detail
    assert checks["cheat-random (code) caught by validators"] == (
        True,
        "implausible_tokens×2, logprob_mismatch×1",
    )
    assert checks["cheat-hang (math) caught by validators"] == (False, "never scored 0")
    row = _row({"miner-1 (code)": ("miner", 0.9), "cheat-replay (code)": ("cheater", 0.1)})
    assert not cheat_checks(row, {})[0][1]  # 90% < 95%
    assert cheat_checks(_row({"miner-1 (code)": ("miner", 1.0)}), {}) == []  # no cheaters


def _parse(*argv: str):
    p = argparse.ArgumentParser()
    add_localnet_args(p)
    return localnet_config_from_args(p.parse_args(list(argv)))


def test_adversaries_flag():
    assert _parse().adversaries == ()
    assert _parse("--adversaries", "random,hang").adversaries == ("random", "hang")
    assert _parse("--adversaries", "all").adversaries == ADVERSARIES
    with pytest.raises(ConfigError, match="unknown nope"):
        _parse("--adversaries", "random,nope")
    with pytest.raises(ConfigError, match="at most once"):
        _parse("--adversaries", "random,random")


def test_layout_adds_one_labelled_miner_per_cheat(tmp_path):
    from subnet.localnet.view import LocalnetLayout

    ports = iter(range(20000, 20100))
    cfg = _parse("--data-dir", str(tmp_path), "--miners", "2", "--adversaries", "copycat,hang")
    lay = LocalnetLayout.load_or_new(cfg, lambda: next(ports))
    cheats = [n for n in lay.neurons if n.adversary]
    assert [n.name for n in cheats] == ["cheat-copycat", "cheat-hang"]
    honest = next(n for n in lay.neurons if n.name == "miner-1")
    honest.hotkey, lay.netuid = "5Honest", 1
    args = lay.neuron_args(cheats[0], cfg)
    target = args[args.index("--adversary.target") + 1]
    assert args[args.index("--adversary") + 1] == "copycat"
    assert target == f"http://127.0.0.1:{honest.port},5Honest"
    assert "--adversary" not in lay.neuron_args(honest, cfg)
    # Resuming with other cheats is refused with the fix named.
    with pytest.raises(ValueError, match="--fresh"):
        LocalnetLayout.load_or_new(_parse("--data-dir", str(tmp_path), "--miners", "2"), lambda: 0)


def test_settled_averages_the_later_half_of_the_epochs():
    from subnet.localnet.cheats import settled

    rows = [
        _row({"miner-1 (code)": ("miner", 0.0), "cheat-random (math)": ("cheater", 1.0)}),
        _row({"miner-1 (code)": ("miner", 0.8), "cheat-random (math)": ("cheater", 0.2)}),
        _row({"miner-1 (code)": ("miner", 1.0), "cheat-random (math)": ("cheater", 0.0)}),
    ]
    got = {u.label: round(u.incentive, 6) for u in settled(rows).uids}
    assert got == {"miner-1 (code)": 0.9, "cheat-random (math)": 0.1}
    assert settled(rows[:1]).uids == rows[0].uids
