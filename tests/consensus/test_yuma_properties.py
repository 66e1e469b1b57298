"""Property tests of the epoch: consensus, robustness, symmetry, bounds and rao accounting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from subnet.consensus import (
    SubnetState,
    YumaParams,
    coinbase_split,
    epoch,
    neuron_to_prune,
)

MODES = ["fixed", "float64"]
# derandomize: every run (CI included) draws the same examples from a hash of the test, without
# the local .hypothesis database, so a failure found once fails again everywhere. Cases that
# random exploration found are pinned below as @example regressions.
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
u16 = st.integers(0, 65535)


@st.composite
def states(draw, min_n: int = 2, max_n: int = 10):
    """Random but well-formed chain states: validators in the low uids weight everyone."""
    n = draw(st.integers(min_n, max_n))
    v = draw(st.integers(1, n))
    # Distinct stakes: permit top-k ties break by uid, which a permutation would change.
    stake = draw(st.lists(st.integers(0, 10**12), min_size=n, max_size=n, unique=True))
    weights = []
    for i in range(n):
        if i < v:
            cols = sorted(draw(st.sets(st.integers(0, n - 1), max_size=n)))
            weights.append([(j, draw(u16)) for j in cols])
        else:
            weights.append([(i, 65535)] if draw(st.booleans()) else [])
    bonds = []
    for i in range(n):
        cols = sorted(draw(st.sets(st.integers(0, n - 1), max_size=n))) if i < v else []
        bonds.append([(j, draw(u16)) for j in cols])
    state = SubnetState(
        n=n,
        stake=stake,
        weights=weights,
        bonds=bonds,
        block_at_registration=draw(st.lists(st.integers(0, 120), min_size=n, max_size=n)),
        last_update=draw(st.lists(st.integers(0, 200), min_size=n, max_size=n)),
        validator_permit=[i < v or draw(st.booleans()) for i in range(n)],
        current_block=200,
    )
    params = YumaParams(
        yuma3=draw(st.booleans()),
        liquid_alpha=draw(st.booleans()),
        bonds_penalty=draw(st.sampled_from([0, 30000, 65535])),
        kappa=draw(st.sampled_from([32767, 40000])),
        max_allowed_validators=draw(st.integers(1, n + 1)),
        activity_cutoff=150,
        tempo=100,
    )
    return state, params


def _permute_row(row, perm):
    return sorted((int(perm[j]), v) for j, v in row)


def permuted(state: SubnetState, perm: np.ndarray) -> SubnetState:
    """The same subnet with uid i renamed perm[i]."""
    inv = np.argsort(perm)

    def vec(x):
        return [x[inv[k]] for k in range(state.n)]

    return SubnetState(
        n=state.n,
        stake=vec(list(state.stake)),
        weights=vec([_permute_row(r, perm) for r in state.weights]),
        bonds=vec([_permute_row(r, perm) for r in state.bonds]),
        block_at_registration=vec(state.block_at_registration),
        last_update=vec(state.last_update),
        validator_permit=vec(state.validator_permit),
        current_block=state.current_block,
    )


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(
    n_val=st.integers(1, 6),
    n_miners=st.integers(1, 6),
    row=st.data(),
)
def test_unanimous_weights_make_consensus(mode, n_val, n_miners, row):
    raw = row.draw(st.lists(st.integers(1, 65535), min_size=n_miners, max_size=n_miners))
    top = max(raw)
    stored = [round(w * 65535 / top) for w in raw]  # set_weights max-upscales the row
    n = n_val + n_miners
    miners = range(n_val, n)
    stake = row.draw(st.lists(st.integers(1, 10**9), min_size=n_val, max_size=n_val))
    state = SubnetState(
        n=n,
        stake=stake + [0] * n_miners,
        weights=[list(zip(miners, stored, strict=True))] * n_val + [[]] * n_miners,
        bonds=[[]] * n,
        block_at_registration=[0] * n,
        last_update=[10] * n,
        validator_permit=[True] * n_val + [False] * n_miners,
        current_block=11,
    )
    r = epoch(state, YumaParams(), 10**9, mode=mode)
    expected = np.array(stored) / sum(stored)
    assert np.allclose(r.consensus[n_val:], expected, atol=1e-8)
    assert np.allclose(r.validator_trust[:n_val], 1.0, atol=1e-8)


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(data=st.data())
def test_minority_stake_cannot_move_consensus(mode, data):
    n_miners = data.draw(st.integers(1, 5))
    honest = data.draw(st.lists(u16, min_size=n_miners, max_size=n_miners))
    honest[0] = 65535  # a max-upscaled row
    rogue_a = data.draw(st.lists(u16, min_size=n_miners, max_size=n_miners))
    rogue_b = data.draw(st.lists(u16, min_size=n_miners, max_size=n_miners))
    # Honest validators hold > kappa of the stake; the rogue one < 1 - kappa.
    majority = data.draw(st.lists(st.integers(10**6, 10**9), min_size=2, max_size=4))
    rogue_stake = data.draw(st.integers(0, sum(majority) * 49 // 51))
    n_val = len(majority) + 1
    n = n_val + n_miners
    miners = list(range(n_val, n))

    def run(rogue_row):
        rows = [list(zip(miners, honest, strict=True))] * len(majority)
        rows.append(list(zip(miners, rogue_row, strict=True)))
        state = SubnetState(
            n=n,
            stake=majority + [rogue_stake] + [0] * n_miners,
            weights=rows + [[]] * n_miners,
            bonds=[[]] * n,
            block_at_registration=[0] * n,
            last_update=[10] * n,
            validator_permit=[True] * n_val + [False] * n_miners,
            current_block=11,
        )
        return epoch(state, YumaParams(), 10**9, mode=mode)

    a, b = run(rogue_a), run(rogue_b)
    assert a.consensus.tolist() == b.consensus.tolist()
    # Ranks still include the rogue's (clipped) weights, so incentive moves by its share at most.
    share = rogue_stake / (sum(majority) + rogue_stake)
    assert np.abs(a.incentive - b.incentive).max() <= 2 * share + 1e-9


# Found by random exploration: the two largest stakes differ by 1 rao, so their I32F32 shares are
# equal at a top-1 permit cut. The chain gives the permit to the higher uid, and only a permitted
# row stores its new bonds, so renaming uids moves the permit and uid 3's bond row with it.
PERMIT_TIE_CASE = (
    SubnetState(
        n=10,
        stake=[4, 5, 6, 9_475_871_788, 0, 1, 2, 3, 73, 9_475_871_789],
        weights=[[]] * 10,
        bonds=[[], [], [], [(0, 1)], [], [], [], [], [], []],
        block_at_registration=[0] * 10,
        last_update=[0] * 10,
        validator_permit=[True] * 4 + [False] * 6,
        current_block=200,
    ),
    YumaParams(
        bonds_penalty=0,
        yuma3=False,
        max_allowed_validators=1,
        activity_cutoff=150,
        tempo=100,
    ),
)


@SETTINGS
@given(case=states(), seed=st.integers(0, 2**32 - 1))
@example(case=PERMIT_TIE_CASE, seed=79)
def test_permuting_uids_permutes_outputs(case, seed):
    state, params = case
    perm = np.random.default_rng(seed).permutation(state.n)
    tied = _permit_tie_group(state, params)
    for mode in MODES:
        a = epoch(state, params, 10**9, mode=mode)
        b = epoch(permuted(state, perm), params, 10**9, mode=mode)
        for name in ("consensus", "incentive", "dividends", "validator_trust", "trust"):
            va, vb = getattr(a, name), getattr(b, name)
            exact = mode == "fixed"
            assert np.allclose(vb[perm], va, rtol=0, atol=0 if exact else 1e-12), name
        assert [b.emission[p] for p in perm] == a.emission or mode == "float64"
        permits_a = a.new_validator_permits
        permits_b = [b.new_validator_permits[p] for p in perm]
        assert all(permits_a[i] == permits_b[i] for i in range(state.n) if i not in tied)
        _assert_higher_uids_win(permits_a, tied)
        _assert_higher_uids_win(b.new_validator_permits, {int(perm[i]) for i in tied})
        for i in range(state.n):
            got = sorted((int(j), int(v)) for j, v in b.new_bonds[perm[i]].tolist())
            want = sorted((int(perm[j]), int(v)) for j, v in a.new_bonds[i].tolist())
            if permits_a[i] != permits_b[i]:
                # run_epoch stores a row's new bonds only under its new permit and clears it
                # otherwise: the run that withheld the permit holds an empty row.
                assert (want if permits_b[i] else got) == []
                continue
            assert got == want or mode == "float64"


def _permit_tie_group(state: SubnetState, params: YumaParams) -> set[int]:
    """Uids whose new permit the chain decides by uid order alone, so that renaming uids may
    legitimately move it (and the bond row stored under it).

    `is_topk_nonzero` stable-sorts the I32F32 stake shares ascending and withholds the first
    n - k: among equal shares the lower uid loses. That matters only when the k-th and (k+1)-th
    largest shares are equal and non-zero (a zero share never gets a permit); the group is every
    uid with that share. Shares are floor(stake * 2**32 / total), as the I64F64 normalise and
    I32F32 cut give them (`states()` sets no owner and no stake threshold).
    """
    stake = [int(x) for x in state.stake]
    total = sum(stake)
    k = params.max_allowed_validators
    if total == 0 or not 0 < k < state.n:
        return set()
    shares = [(x << 32) // total for x in stake]
    ranked = sorted(shares, reverse=True)
    if ranked[k - 1] != ranked[k] or ranked[k] == 0:
        return set()
    return {i for i, x in enumerate(shares) if x == ranked[k]}


def _assert_higher_uids_win(permits: list[bool], group: set[int]) -> None:
    """Within a tie group the permits go to its highest uids (the chain's stable-sort tie-break)."""
    members = sorted(group)
    winners = [u for u in members if permits[u]]
    assert winners == members[len(members) - len(winners) :]


@SETTINGS
@given(case=states(), rao=st.integers(0, 10**12))
def test_bounds_and_rao_accounting(case, rao):
    state, params = case
    for mode in MODES:
        r = epoch(state, params, rao, mode=mode)
        assert np.all(r.validator_trust >= 0) and np.all(r.validator_trust <= 1 + 1e-12)
        for x in (r.consensus, r.incentive, r.dividends, r.trust):
            assert np.all(x >= 0) and np.all(x <= 1 + 1e-12)
        assert all(0 <= v <= 65535 for v in r.validator_trust_u16 + r.consensus_u16)
        # Every minted rao is either paid or reported as dust: the chain's flooring (< 1 rao per
        # payment) plus I32F32 truncation of the shares (a few 2**-32 of the amount each).
        paid = sum(r.server_emission) + sum(r.validator_emission)
        assert paid + r.dust == rao
        assert 0 <= r.dust <= 2 * state.n * (1 + rao / 2**29)
        assert sum(r.emission) <= rao
        # Stored bonds are u16 and only on rows holding a (new) validator permit.
        for i, row in enumerate(r.new_bonds):
            assert len(row) == 0 or r.new_validator_permits[i]
            assert all(0 <= v <= 65535 for _, v in row.tolist())


@SETTINGS
@given(case=states())
def test_float_mode_tracks_fixed_mode(case):
    state, params = case
    a = epoch(state, params, 10**9, mode="fixed")
    b = epoch(state, params, 10**9, mode="float64")
    for name in ("consensus", "incentive", "dividends", "validator_trust"):
        assert np.allclose(getattr(a, name), getattr(b, name), atol=1e-6), name
        assert np.abs(np.subtract(getattr(a, name + "_u16"), getattr(b, name + "_u16"))).max() <= 1
    assert np.abs(np.subtract(a.emission, b.emission)).max() <= 1000  # 1e-6 of 1e9 rao


@settings(derandomize=True)
@given(alpha=st.integers(0, 10**15), cut=u16, root=st.floats(0, 1))
def test_coinbase_split_conserves_rao(alpha, cut, root):
    s = coinbase_split(alpha, cut, root)
    assert s.owner + s.server + s.validator + s.root == alpha
    assert min(s.owner, s.server, s.validator, s.root) >= 0
    assert abs(s.server - (s.validator + s.root)) <= 1


def test_coinbase_split_default_owner_cut():
    s = coinbase_split(1_000_000_000)
    assert s.owner == 1_000_000_000 * 11796 // 65535
    assert s.server + s.validator == 1_000_000_000 - s.owner


def test_neuron_to_prune_order_immunity_and_owner():
    em = [5, 0, 0, 0, 7]
    reg = [0, 50, 10, 10, 0]
    # Lowest emission, then earliest registration, then lowest uid; owner (uid 2) immortal.
    assert neuron_to_prune(em, reg, 1000, 100, immortal_uids=[2], min_non_immune_uids=0) == 3
    # uid 1..3 immune (registered < 100 blocks ago): non-immune preferred while enough remain.
    assert neuron_to_prune(em, reg, 105, 100, min_non_immune_uids=1) == 0
    # Too few non-immune uids left: the best immune candidate goes instead.
    assert neuron_to_prune(em, reg, 105, 100, min_non_immune_uids=2) == 2
    assert neuron_to_prune([1], [0], 10, 0, immortal_uids=[0]) is None
