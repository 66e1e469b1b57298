"""The admission policy is a pure function of (policy, snapshot, hotkey): table-driven tests."""

from __future__ import annotations

import pytest

from subnet.miner.admission import (
    AdmissionPolicy,
    MetagraphSnapshot,
    Peer,
    TokenBuckets,
    admit,
    quota,
)

SNAP = MetagraphSnapshot(
    block=7,
    peers={
        "big": Peer(1, 900.0, True),
        "small": Peer(2, 100.0, True),
        "tiny": Peer(3, 0.5, True),
        "miner": Peer(4, 0.0, False),
    },
)


@pytest.mark.parametrize(
    "policy, hotkey, allowed, code",
    [
        (AdmissionPolicy(), "big", True, "ok"),
        (AdmissionPolicy(), "nobody", False, "not_registered"),
        (AdmissionPolicy(), "miner", False, "not_validator"),
        (AdmissionPolicy(require_permit=False), "miner", True, "ok"),
        (AdmissionPolicy(min_stake=1.0), "tiny", False, "low_stake"),
        (AdmissionPolicy(require_permit=False, min_stake=1.0), "miner", False, "low_stake"),
        (AdmissionPolicy(min_stake=100.0), "small", True, "ok"),
    ],
)
def test_admit(policy, hotkey, allowed, code):
    d = admit(policy, SNAP, hotkey)
    assert (d.allowed, d.code) == (allowed, code)
    assert allowed or hotkey in d.message or "uid" in d.message


def test_quota_is_proportional_to_stake_with_a_floor():
    p = AdmissionPolicy(
        total_tokens_per_s=1000.0, min_tokens_per_s=5.0, burst_s=10.0, min_burst_tokens=0
    )
    big, small, tiny = (quota(p, SNAP, h)[0] for h in ("big", "small", "tiny"))
    total = 900.0 + 100.0 + 0.5
    assert big == pytest.approx(1000.0 * 900.0 / total)
    assert big / small == pytest.approx(9.0)
    assert tiny == 5.0  # the floor
    assert quota(p, SNAP, "big")[1] == pytest.approx(big * 10.0)


def test_token_bucket_spends_refills_and_refunds():
    b = TokenBuckets(max_callers=2)
    assert b.take("a", 80, rate=10, capacity=100, now=0.0) == 0.0
    assert b.take("a", 30, rate=10, capacity=100, now=0.0) == pytest.approx(1.0)  # 10 short
    assert b.take("a", 30, rate=10, capacity=100, now=1.0) == 0.0  # refilled 10
    assert b.take("a", 101, rate=10, capacity=100, now=1.0) == float("inf")
    b.refund("a", 50, capacity=100)
    assert b.take("a", 50, rate=10, capacity=100, now=1.0) == 0.0
    b.take("b", 1, rate=1, capacity=10, now=0.0)
    b.take("c", 1, rate=1, capacity=10, now=0.0)  # evicts "a", the least recently used
    assert b.take("a", 100, rate=10, capacity=100, now=1.0) == 0.0  # a fresh, full bucket
