"""The float epoch's block kernels against brute-force definitions (ties, masks, odd shapes)."""

from __future__ import annotations

import numpy as np
import pytest

from subnet.consensus.dense import (
    block_buffers,
    scatter_rows,
    sparse_rows,
    transpose_into,
    weighted_median_cols,
)
from subnet.consensus.types import SparseRows


def brute_median(stake, scores, kappa, participants):
    out = []
    for col in scores.T:
        cand = [(col[i], stake[i]) for i in range(len(col)) if participants[i]]
        if not cand:
            out.append(0.0)
            continue
        ok = [x for x, _ in cand if sum(s for y, s in cand if y >= x) >= kappa]
        out.append(max(ok) if ok else min(x for x, _ in cand))
    return np.array(out)


@pytest.mark.parametrize("seed", range(6))
def test_weighted_median_matches_definition_with_ties_and_masks(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        rows, cols = int(rng.integers(1, 12)), int(rng.integers(1, 9))
        scores = rng.integers(0, 5, (rows, cols)) / 7.0  # many ties and zeros
        stake = rng.random(rows) * (rng.random(rows) < 0.8)
        stake = stake / stake.sum() if stake.sum() else stake
        participants = rng.random(rows) < 0.7
        kappa = float(rng.choice([0.0, 0.3, 32767 / 65535, 0.5, 1.0]))
        got, reached = weighted_median_cols(stake, scores, kappa, participants)
        want = brute_median(np.where(participants, stake, 0.0), scores, kappa, participants)
        assert got.tolist() == want.tolist()
        total = np.where(participants, stake, 0.0).sum()
        if participants.any() and abs(total - kappa) > 1e-12:  # sums round in sort order
            assert (reached == (total >= kappa)).all()


def test_weighted_median_separates_close_scores_and_returns_exact_values():
    base = 0.123456789
    scores = np.array([[base], [np.nextafter(base, 1)], [base * (1 + 1e-9)]])
    got, _ = weighted_median_cols(np.array([0.2, 0.2, 0.6]), scores, 0.5)
    assert got[0] == scores[2, 0]  # the 0.6-stake row alone reaches kappa
    got, _ = weighted_median_cols(np.array([0.6, 0.2, 0.2]), scores, 0.5)
    assert got[0] in scores[:2, 0]  # within 2**-40: either neighbour, never a blend


@pytest.mark.parametrize("shape", [(1, 1), (3, 700), (65, 257), (300, 70)])
def test_transpose_into_matches_numpy(shape):
    src = np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape)
    dst = np.empty(shape[::-1], dtype=np.int64)
    assert np.array_equal(transpose_into(src, dst), src.T)


def test_scatter_rows_handles_every_row_form():
    n = 10
    rows = [
        [(2, 5), (3, 6), (4, 7)],  # one run, tuples
        np.array([[0, 1], [5, 0], [9, 65535]]),  # gaps, explicit zero, array
        [(8, 3), (10, 4), (-1, 9)],  # out of range uids are ignored
        [],
        np.array([[3, 2], [4, 1]]),  # skipped below
    ]
    uids = np.arange(len(rows))
    out = np.zeros((len(rows), n))
    present = np.zeros((len(rows), n), dtype=bool)
    scatter_rows(rows, uids, out, present, skip=np.array([False] * 4 + [True]))
    want = np.zeros_like(out)
    want[0, 2:5] = [5, 6, 7]
    want[1, [0, 5, 9]] = [1, 0, 65535]
    want[2, 8] = 3
    assert np.array_equal(out, want)
    assert present[1].tolist() == [i in (0, 5, 9) for i in range(n)]
    assert not present[3:].any()


def reference_rows(values, col_scale, uids, n, keep):
    floats, stored = [[] for _ in range(n)], [[] for _ in range(n)]
    for k, uid in enumerate(uids):
        cols = np.flatnonzero(values[k] > 0)
        floats[uid] = [(c, values[k, c]) for c in cols]
        if keep[k]:
            scale = np.ones(n) if col_scale is None else col_scale
            stored[uid] = [(c, int(np.floor(values[k, c] / scale[c] * 65535))) for c in cols]
    return floats, stored


@pytest.mark.parametrize("runs", [True, False])
@pytest.mark.parametrize("scaled", [True, False])
def test_sparse_rows_matches_nonzero_reference(runs, scaled):
    rng = np.random.default_rng(int(runs) * 2 + int(scaled))
    n, uids = 12, np.array([1, 4, 5, 9])
    values = rng.random((len(uids), n))
    if runs:
        values[:, :3] = 0.0  # every row: uids 3..11
    else:
        values[rng.random(values.shape) < 0.4] = 0.0
        values[2] = 0.0
    col_scale = values.max(axis=0) if scaled else None
    keep = np.array([True, False, True, True])
    floats, stored = sparse_rows(values, col_scale, uids, n, keep, np.empty(values.size))
    want_f, want_u = reference_rows(values, col_scale, uids, n, keep)
    for uid in range(n):
        assert np.asarray(floats[uid]).reshape(-1, 2).tolist() == [
            [float(c), v] for c, v in want_f[uid]
        ]
        assert np.asarray(stored[uid]).reshape(-1, 2).tolist() == [list(p) for p in want_u[uid]]
        assert np.asarray(stored[uid]).dtype == np.int64


def test_block_buffers_are_reused_and_not_shared_while_held():
    with block_buffers(2, 100) as first:
        held = [b.__array_interface__["data"][0] for b in first]
        with block_buffers(2, 100) as nested:  # a second holder gets its own memory
            assert not {b.__array_interface__["data"][0] for b in nested} & set(held)
    with block_buffers(2, 50) as again:
        assert [b.__array_interface__["data"][0] for b in again] == held


@pytest.mark.parametrize("form", ["run", "gaps", "partial"])
def test_scatter_rows_reads_csr_rows_like_lists(form):
    rng = np.random.default_rng(7)
    n = 9
    if form == "run":
        rows = [[(j, int(rng.integers(0, 99))) for j in range(3, 8)] for _ in range(4)]
    else:
        rows = [
            [(j, int(rng.integers(0, 99))) for j in range(-1, n + 1) if rng.random() < 0.5]
            for _ in range(4)
        ]
        rows[2] = []
    csr = SparseRows.from_rows(rows)
    assert [r.tolist() for r in csr] == [[list(p) for p in r] for r in rows]
    assert csr.to_lists() == rows
    uids = np.array([0, 1, 3]) if form == "partial" else np.arange(4)
    skip = np.array([False, True, False] if form == "partial" else [False] * 4)
    got, want = np.zeros((len(uids), n)), np.zeros((len(uids), n))
    got_p, want_p = np.zeros(got.shape, dtype=bool), np.zeros(got.shape, dtype=bool)
    scatter_rows(csr, uids, got, got_p, skip=skip, divisor=7.0)
    scatter_rows(rows, uids, want, want_p, skip=skip, divisor=7.0)
    assert np.array_equal(got, want) and np.array_equal(got_p, want_p)


@pytest.mark.parametrize("form", ["run", "gaps", "partial", "empty"])
def test_scatter_rows_zero_clears_what_no_entry_writes(form):
    n = 8
    run = [(j, j + 1) for j in range(2, 6)]
    rows = {
        "run": [run, run, run],
        "gaps": [run, [(0, 4), (7, 0), (9, 1)], []],
        "partial": [run, run, run],
        "empty": [[], [], []],
    }[form]
    skip = np.array([False, True, False]) if form == "partial" else None
    for given in (rows, SparseRows.from_rows(rows)):
        want = np.zeros((3, n))
        scatter_rows(rows, np.arange(3), want, skip=skip)
        got = np.full((3, n), np.nan)
        scatter_rows(given, np.arange(3), got, skip=skip, zero=True)
        assert np.array_equal(got, want)


def test_weighted_median_with_more_rows_than_16_index_bits():
    rng = np.random.default_rng(3)
    rows = (1 << 16) + 5
    scores = rng.integers(0, 50, (rows, 2)) / 49.0
    stake = rng.random(rows)
    stake /= stake.sum()
    got, reached = weighted_median_cols(stake, scores, 0.5)
    for c in range(2):  # the definition, vectorised: best score first, running stake
        order = np.argsort(-scores[:, c], kind="stable")
        above = np.cumsum(stake[order])
        vals = scores[order, c]
        ok = above >= 0.5  # stake scoring >= vals[k] counts all ties of vals[k]
        last_of_value = np.r_[vals[1:] != vals[:-1], True]
        assert got[c] == vals[np.flatnonzero(ok & last_of_value)[0]]
    assert reached.all()
