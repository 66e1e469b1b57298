"""The localnet's view of the mixture: per expert routed share, quality and incentive (pure), the
four-expert layout, mixed users, and the routing panel of the plot."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from subnet.config import ConfigError
from subnet.localnet import history as hist
from subnet.localnet.config import add_localnet_args, localnet_config_from_args
from subnet.localnet.dashboard import DashRow, NetView, render
from subnet.localnet.mixture import (
    expert_rows,
    mean_incentive_shares,
    merge_status,
    mixture_table,
    tracking_gap,
    with_incentive,
)
from subnet.localnet.users import PROMPTS, Users
from subnet.localnet.view import EXPERT_CYCLE, LocalnetLayout


def _parse(*argv):
    p = argparse.ArgumentParser()
    add_localnet_args(p)
    return localnet_config_from_args(p.parse_args(list(argv)))


def _row(uid, expert, incentive, requests=10, ok=1.0, role="miner"):
    return DashRow(uid, role, f"n{uid}", expert, requests, ok, None, None, incentive)


def test_expert_rows_show_routed_share_quality_and_pay():
    rows = [
        DashRow(0, "validator", "validator-1"),
        _row(1, "code", 0.1, requests=10, ok=0.9),
        _row(2, "math", 0.5),
        _row(3, "math", 0.2, requests=30, ok=0.5),
        _row(4, "general", 0.1),
        _row(5, "data", 0.1, requests=0, ok=None),
        _row(6, "math", 0.0, role="cheater"),
    ]
    routed = Counter({1: 2, 2: 10, 3: 6, 4: 1, 5: 1})
    status = {"math": {"demand_share": 0.8, "quality": -4.4}}
    out = {r.expert: r for r in expert_rows(rows, routed, status)}
    assert list(out) == ["code", "data", "general", "math"]
    m = out["math"]
    assert m.miners == 2  # the cheater serves math, but is not an honest miner
    assert m.routed_share == pytest.approx(16 / 20)
    assert m.incentive_share == pytest.approx(0.7)
    assert m.pass_rate == pytest.approx((10 + 15 + 10) / 50)  # every miner serving it
    assert (m.demand_share, m.quality) == (0.8, -4.4)
    assert out["data"].pass_rate is None and out["code"].quality is None
    # Without users, no routed share; the floor spreads 0.2 evenly: expected math 0.05 + 0.64.
    assert expert_rows(rows)[0].routed_share is None
    assert tracking_gap(out.values()) == pytest.approx(
        max(abs(r.incentive_share - (0.05 + 0.8 * r.routed_share)) for r in out.values())
    )
    assert tracking_gap(expert_rows(rows)) is None
    table = mixture_table(out.values())
    assert "math" in table and "80%" in table and "-4.40" in table


def test_incentive_shares_are_averaged_over_epochs():
    def epoch(n, code, math):
        uids = (
            hist.UidRow(0, "v", "validator", "validator-1", 0.0, 1.0, 0, 0, True),
            hist.UidRow(1, "a", "miner", "miner-1 (code)", code, 0.0, 0, 0, False),
            hist.UidRow(2, "b", "miner", "miner-2 (math)", math, 0.0, 0, 0, False),
        )
        return hist.EpochRow(n, 10 * n, uids)

    shares = mean_incentive_shares([epoch(1, 0.0, 0.0), epoch(2, 0.2, 0.6), epoch(3, 0.5, 0.5)])
    assert shares == pytest.approx({"code": (0.25 + 0.5) / 2, "math": (0.75 + 0.5) / 2})
    rows = expert_rows([_row(1, "code", 1.0), _row(2, "math", 0.0)])
    assert [r.incentive_share for r in with_incentive(rows, shares)] == pytest.approx(
        [0.375, 0.625]
    )


def test_merge_status_averages_validators_by_expert_name():
    names = {"dmoe/tiny-math": "math", "dmoe/tiny-code": "code"}
    a = {"experts": {"dmoe/tiny-math": {"demand": 3.0, "quality": -4.0},
                     "dmoe/tiny-code": {"demand": 1.0, "quality": None},
                     "other/model": {"demand": 4.0}}}  # fmt: skip
    b = {"experts": {"dmoe/tiny-math": {"demand": 1.0, "quality": -5.0},
                     "dmoe/tiny-code": {"demand": 1.0}}}  # fmt: skip
    merged = merge_status([a, b, {}, {"experts": {}}], names)
    assert merged["math"] == pytest.approx({"demand_share": (3 / 8 + 1 / 2) / 2, "quality": -4.5})
    assert merged["code"] == pytest.approx({"demand_share": (1 / 8 + 1 / 2) / 2})


def test_four_miners_cover_every_expert_and_cheaters_join_honest_ones(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    cfg = _parse("--data-dir", str(tmp_path / "a"))
    assert cfg.miners == 4
    ports = iter(range(21000, 21100))
    lay = LocalnetLayout.load_or_new(cfg, lambda: next(ports))
    assert [n.expert for n in lay.neurons if n.role == "miner"] == list(EXPERT_CYCLE)
    assert set(EXPERT_CYCLE) == set(PROMPTS) == {"code", "math", "general", "data"}
    two = _parse("--data-dir", str(tmp_path / "b"), "--miners", "2", "--adversaries", "all")
    lay = LocalnetLayout.load_or_new(two, lambda: next(ports))
    assert {n.expert for n in lay.neurons if n.adversary} == {"code", "math"}


def test_users_mix_sends_data_prompts_and_rejects_unknown_domains():
    cfg = _parse("--users-mix", "math=8,data=1")
    users = Users(["http://x"], "k", rps=1, mix=dict(cfg.users_mix))
    domains = Counter(users.request()[0] for _ in range(400))
    assert set(domains) == {"math", "data"} and domains["math"] > 5 * domains["data"]
    with pytest.raises(ConfigError, match="data"):
        _parse("--users-mix", "poetry=1")


def test_dashboard_and_plot_show_the_routing_view(tmp_path):
    rows = (_row(1, "code", 0.2), _row(2, "math", 0.8))
    experts = expert_rows(rows, Counter({1: 1, 2: 9}), {"math": {"quality": -4.2}})
    view = NetView(1, 10, 20, 5, 1, 2, rows, experts=experts)
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(render(view))
    text = console.export_text()
    assert "routed" in text and "90%" in text and "-4.20" in text
    uids = tuple(
        hist.UidRow(r.uid, f"hk{r.uid}", "miner", r.label, r.incentive, 0.0, 0, 0, False)
        for r in rows
    )
    history = [hist.EpochRow(1, 20, uids), hist.EpochRow(2, 40, uids)]
    plain = hist.plot(history, tmp_path / "plain.png")
    routed = hist.plot(history, tmp_path / "routed.png", experts)
    assert routed.stat().st_size > plain.stat().st_size > 5000
