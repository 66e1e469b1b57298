"""Fast epoch: subtensor's sparse `epoch_mechanism` vectorised in float64 numpy.

Only uids that hold a weight or bond row take part in matrix work, so a 4096-uid subnet with
256 validators costs a 256 x 4096 dense block. Sparse semantics are kept with presence masks
(an explicit zero weight is an entry, an absent one is not), which the Yuma 3 liquid-alpha
bond deletion and the clipping drop depend on. Matches `epoch_fixed` to ~1e-9; stored u16
values can differ by one where the chain's truncation lands on a boundary.
"""

from __future__ import annotations

import numpy as np

from subnet.consensus.types import U16_MAX, EpochResult, SparseRow, SubnetState, YumaParams

_SCALE = float(1 << 32)


def _dense(rows: list[SparseRow], uids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows `uids` of a sparse u16 matrix as (values, present) dense blocks of width n."""
    values = np.zeros((len(uids), n))
    present = np.zeros((len(uids), n), dtype=bool)
    parts = [np.asarray(rows[uid], dtype=np.int64).reshape(-1, 2) for uid in uids]
    if not parts:
        return values, present
    flat = np.concatenate(parts)
    if not len(flat):
        return values, present
    which = np.repeat(np.arange(len(uids)) * n, [len(p) for p in parts])
    cols, vals = flat[:, 0], flat[:, 1]
    if cols.min() < 0 or cols.max() >= n:  # the chain ignores uids >= n
        keep = (cols >= 0) & (cols < n)
        which, cols, vals = which[keep], cols[keep], vals[keep]
    at = which + cols  # flat indices: one scatter instead of 2-D fancy indexing
    values.ravel()[at] = vals
    present.ravel()[at] = True
    return values, present


def _normalize(x: np.ndarray) -> np.ndarray:
    total = x.sum()
    return x / total if total != 0 else x


def _quantize(x: np.ndarray) -> np.ndarray:
    """Truncate proportions to I32F32 as the chain does where its error is amplified later."""
    return np.floor(x * _SCALE) / _SCALE


def _col_normalize(m: np.ndarray) -> np.ndarray:
    sums = m.sum(axis=0)
    return np.divide(m, sums, out=m.copy(), where=sums != 0)


def _to_u16(x: np.ndarray) -> list[int]:
    return np.clip(np.floor(x * U16_MAX), 0, U16_MAX).astype(np.int64).tolist()


def _sparse_rows(
    values: np.ndarray,
    to_store: np.ndarray,
    present: np.ndarray,
    uids: np.ndarray,
    n: int,
    keep_rows: np.ndarray,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Dense bond blocks back to per-uid (k, 2) rows: (`values` for all rows, `to_store` as
    u16 only where `keep_rows`); uids outside the block get empty rows."""
    floats = [np.zeros((0, 2))] * n
    stored = [np.zeros((0, 2), dtype=np.int64)] * n
    if len(uids) == 0:
        return floats, stored
    r, c = np.nonzero(present)  # row-major: each row's columns come out ascending
    v = values[r, c]
    u = v if to_store is values else to_store[r, c]
    pairs_f = np.column_stack((c, v))
    pairs_u = np.column_stack((c, np.clip(np.floor(u * U16_MAX), 0, U16_MAX).astype(np.int64)))
    ends = np.cumsum(np.bincount(r, minlength=len(uids)))[:-1]
    for k, (f_row, u_row) in enumerate(
        zip(np.split(pairs_f, ends), np.split(pairs_u, ends), strict=True)
    ):
        floats[uids[k]] = f_row
        if keep_rows[k]:
            stored[uids[k]] = u_row
    return floats, stored


def weighted_median_cols(stake: np.ndarray, scores: np.ndarray, kappa: float) -> np.ndarray:
    """Per column: max{x : sum of stake scoring >= x is >= kappa}, else the column minimum.

    `stake` (participants,) normalised; `scores` (participants, columns). This is the value
    subtensor's mid-pivot quickselect returns.
    """
    if scores.shape[0] == 0:
        return np.zeros(scores.shape[1])
    # Columns as contiguous rows; order among equal scores cannot change the value returned.
    by_col = np.ascontiguousarray(scores.T)
    order = np.argsort(-by_col, axis=1)
    cum = np.cumsum(stake[order], axis=1)
    ok = cum >= kappa
    pos = np.where(ok.any(axis=1), ok.argmax(axis=1), scores.shape[0] - 1)
    cols = np.arange(scores.shape[1])
    return by_col[cols, order[cols, pos]]


def epoch_float(state: SubnetState, params: YumaParams, rao_emission: int) -> EpochResult:
    n = state.n
    owner = state.owner_uid if state.owner_uid is not None and state.owner_uid < n else None
    cb = state.current_block
    bar = np.asarray(state.block_at_registration, dtype=np.int64)
    last_update = np.asarray(state.last_update, dtype=np.int64)
    active = last_update + params.activity_cutoff >= cb

    raw = np.asarray(state.stake, dtype=np.float64).copy()
    below = np.floor(raw) < params.stake_threshold
    if owner is not None:
        below[owner] = False
    raw[below] = 0.0
    # Stake shares are cut to I32F32 on chain; re-normalising a small active subset later
    # amplifies that cut (a 1e-5 share moves by ~1e-5 relative), so emulate it here.
    stake = _quantize(_normalize(raw))

    permit = np.asarray(state.validator_permit, dtype=bool).copy()
    if owner is not None:
        permit[owner] = True
    new_permit = stake != 0
    k = params.max_allowed_validators
    if n >= k:
        new_permit[np.argsort(stake, kind="stable")[: n - k]] = False
    if owner is not None:
        new_permit[owner] = True
    active_stake = _quantize(_normalize(np.where(active & permit, stake, 0.0)))

    # Block rows: every uid with a stored weight or bond row (validators, in practice).
    uids = np.array(
        [i for i in range(n) if len(state.weights[i]) or len(state.bonds[i])], dtype=np.int64
    )
    w_raw, w_has = _dense(state.weights, uids, n)
    w_has &= permit[uids, None]
    diag = uids != owner if owner is not None else np.ones(len(uids), dtype=bool)
    w_has[np.arange(len(uids))[diag], uids[diag]] = False
    w_has &= last_update[uids, None] > bar[None, :]
    if state.commit_blocks is not None:
        cbl = np.array(
            [np.iinfo(np.int64).max if c is None else c for c in state.commit_blocks],
            dtype=np.int64,
        )
        w_has &= ~(cbl[uids, None] < bar[None, :])
    w = np.where(w_has, w_raw, 0.0)
    row_sum = w.sum(axis=1, keepdims=True)
    w = np.divide(w, row_sum, out=w, where=row_sum > 0)

    a_rows = active_stake[uids]
    preranks = a_rows @ w if len(uids) else np.zeros(n)

    # Consensus over validators with active stake (rows outside the block score 0).
    part = np.flatnonzero(active_stake > 0)
    u = _normalize(active_stake[part])
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[uids] = np.arange(len(uids))
    in_block = row_of[part] >= 0
    scores = np.zeros((len(part), n))
    scores[in_block] = w[row_of[part[in_block]]]
    consensus = weighted_median_cols(u, scores, params.kappa / U16_MAX)

    over = w > consensus[None, :]
    clip_has = w_has & ~(over & (consensus[None, :] <= 0))
    clipped = np.where(clip_has, np.minimum(w, consensus[None, :]), 0.0)
    validator_trust = np.zeros(n)
    validator_trust[uids] = clipped.sum(axis=1)
    ranks = a_rows @ clipped if len(uids) else np.zeros(n)
    trust = np.divide(ranks, preranks, out=np.zeros(n), where=preranks != 0)
    incentive = _normalize(ranks)

    if params.bonds_penalty == 0:
        wb, wb_has = w, w_has
    elif params.bonds_penalty == U16_MAX:
        wb, wb_has = clipped, clip_has
    else:
        wb = w + params.bonds_penalty / U16_MAX * (clipped - w)
        wb_has = wb > 0

    if state.last_mechanism_step_block:
        last_tempo = state.last_mechanism_step_block + 1
    else:
        last_tempo = max(cb - params.tempo, 0)
    b_raw, b_has = _dense(state.bonds, uids, n)
    b_has &= ~(last_tempo <= bar)[None, :]
    alpha = 1.0 - params.bonds_moving_avg / 1_000_000

    if params.yuma3:
        b = np.where(b_has, b_raw / U16_MAX, 0.0)
        if params.liquid_alpha and np.any(consensus != 0):
            lo, hi = params.alpha_low / U16_MAX, params.alpha_high / U16_MAX
            diff = np.where(
                wb >= b,
                np.clip(wb - consensus[None, :], 0.0, 1.0),
                np.clip(b - wb, 0.0, 1.0),
            )
            x = np.clip(params.alpha_sigmoid_steepness / -100.0 * (diff - 0.5), -20.0, 20.0)
            alphas = np.clip(lo + (hi - lo) / (1.0 + np.exp(x)), lo, hi)
            ema = np.minimum((1 - alphas) * b + np.maximum(alphas * wb, 0.0), 1.0)
            ema_has = wb_has & (ema > 0)  # bonds absent from W_b are deleted (sparse quirk)
        else:
            ema = alpha * np.where(wb_has, wb, 0.0) + (1 - alpha) * b
            ema_has = (wb_has | b_has) & (ema > 0)
        ema = np.where(ema_has, ema, 0.0)
        per_validator = _col_normalize(ema) @ incentive
        dividends = np.zeros(n)
        dividends[uids] = per_validator * a_rows
        dividends = _normalize(dividends)
        store = ema
    else:
        b = _col_normalize(np.where(b_has, b_raw, 0.0))
        delta = _col_normalize(np.where(wb_has, wb, 0.0) * a_rows[:, None])
        ema = alpha * delta + (1 - alpha) * b
        ema_has = (wb_has | b_has) & (ema > 0)
        ema = _col_normalize(np.where(ema_has, ema, 0.0))
        dividends = np.zeros(n)
        dividends[uids] = ema @ incentive
        dividends = _normalize(dividends)
        col_max = ema.max(axis=0, initial=0.0)
        store = np.divide(ema, col_max, out=ema.copy(), where=col_max != 0)

    # Yuma 2 stores the max-upscaled bonds, Yuma 3 the bonds themselves.
    bonds_rows, new_bonds = _sparse_rows(ema, store, ema_has, uids, n, new_permit[uids])

    combined = incentive + dividends
    esum = combined.sum()
    if esum != 0:
        server, validator, combined_n = incentive / esum, dividends / esum, combined / esum
    else:
        server = incentive
        fallback = stake if active_stake.sum() == 0 else active_stake
        validator = combined_n = fallback

    def rao(x: np.ndarray) -> list[int]:
        return np.floor(x * rao_emission).astype(np.int64).tolist()

    top = combined_n.max(initial=0.0)
    pruning_u16 = (
        _to_u16(combined_n)
        if top == 0
        else np.minimum(np.floor(combined_n * U16_MAX / top + 0.5), U16_MAX).astype(int).tolist()
    )
    return EpochResult(
        mode="float64",
        active=active,
        stake=stake,
        active_stake=active_stake,
        consensus=consensus,
        ranks=incentive,
        trust=trust,
        validator_trust=validator_trust,
        incentive=incentive,
        dividends=dividends,
        pruning_scores=combined_n,
        new_validator_permits=new_permit.tolist(),
        bonds=bonds_rows,
        new_bonds=new_bonds,
        server_emission=rao(server),
        validator_emission=rao(validator),
        emission=rao(combined_n),
        rao_emission=rao_emission,
        stake_u16=_to_u16(stake),
        consensus_u16=_to_u16(consensus),
        ranks_u16=_to_u16(incentive),
        trust_u16=_to_u16(trust),
        validator_trust_u16=_to_u16(validator_trust),
        incentive_u16=_to_u16(incentive),
        dividends_u16=_to_u16(dividends),
        pruning_scores_u16=pruning_u16,
    )
