"""Fast epoch: subtensor's sparse `epoch_mechanism` vectorised in float64 numpy.

Only uids that hold a weight or bond row take part in matrix work, so a 4096-uid subnet with
256 validators costs a 256 x 4096 dense block, and every block-sized array lives in one of
five buffers reused through the epoch (ops run in place; kernels in `dense.py`). Sparse
semantics are kept where they matter: an explicit zero weight is an entry and an absent one
is not, which only the Yuma 3 liquid-alpha bond deletion can see, so presence is tracked only
there; elsewhere an entry exists exactly where its value is > 0. Matches `epoch_fixed` to
~1e-9; stored u16 values can differ by one where the chain's truncation lands on a boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from subnet.consensus.dense import block_buffers, scatter_rows, sparse_rows, weighted_median_cols
from subnet.consensus.types import (
    U16_MAX,
    EpochResult,
    SparseRow,
    SparseRows,
    SubnetState,
    YumaParams,
)

_SCALE = float(1 << 32)


def _normalize(x: np.ndarray) -> np.ndarray:
    total = x.sum()
    return x / total if total != 0 else x


def _quantize(x: np.ndarray) -> np.ndarray:
    """Truncate proportions to I32F32 as the chain does where its error is amplified later."""
    return np.floor(x * _SCALE) / _SCALE


def _col_sums(m: np.ndarray) -> np.ndarray:
    """Column sums with 0 replaced by 1, so dividing leaves an all-zero column at zero."""
    sums = m.sum(axis=0)
    sums[sums == 0] = 1.0
    return sums


def _to_u16(x: np.ndarray) -> list[int]:
    return np.clip(np.floor(x * U16_MAX), 0, U16_MAX).astype(np.int64).tolist()


def _mask_weights(
    state: SubnetState,
    uids: np.ndarray,
    owner: int | None,
    w: np.ndarray,
    present: np.ndarray | None,
) -> None:
    """Drop self-weights (owner exempt), weights older than their target's registration and,
    with commit-reveal, weights committed before it; in place on `w` (and `present`)."""
    rows = np.arange(len(uids))
    diag = uids != owner if owner is not None else np.ones(len(uids), dtype=bool)
    w[rows[diag], uids[diag]] = 0.0
    if present is not None:
        present[rows[diag], uids[diag]] = False
    bar = np.asarray(state.block_at_registration, dtype=np.int64)
    if not len(bar):
        return
    last_update = np.asarray(state.last_update, dtype=np.int64)[uids]
    stale_rows = [last_update[:, None] <= bar[None, :]] if (last_update <= bar.max()).any() else []
    if state.commit_blocks is not None:
        cbl = np.array(
            [np.iinfo(np.int64).max if c is None else c for c in state.commit_blocks],
            dtype=np.int64,
        )[uids]
        if (cbl < bar.max()).any():
            stale_rows.append(cbl[:, None] < bar[None, :])
    for stale in stale_rows:
        w[stale] = 0.0
        if present is not None:
            present[stale] = False


_CHUNK_BYTES = 256 << 10  # a few of these fit in L2 at once


def _row_chunks(rows: int, n: int) -> list[slice]:
    """Row slices of about _CHUNK_BYTES of float64 each, for long elementwise sequences that
    would otherwise stream the whole block from memory once per step."""
    step = max(1, _CHUNK_BYTES // (8 * max(n, 1)))
    return [slice(i, i + step) for i in range(0, rows, step)]


def _liquid_ema(
    params: YumaParams,
    wb: np.ndarray,
    b: np.ndarray,
    consensus: np.ndarray,
    x: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """Yuma 3 liquid alpha: per-entry sigmoid EMA rate from how far W_b is from consensus
    (rising) or from B (falling); `x` and `out` are scratch, `out` is returned as the EMA."""
    lo, hi = params.alpha_low / U16_MAX, params.alpha_high / U16_MAX
    k = params.alpha_sigmoid_steepness / -100.0
    # wb, b and consensus lie in [0, 1]: the chain's clamp of d to [0, 1] only cuts below 0,
    # and its clamp of the exponent to [-20, 20] only bites when |k| / 2 > 20.
    falling = np.subtract(b, wb, out=out)
    np.subtract(wb, consensus[None, :], out=x)
    np.maximum(x, 0.0, out=x)
    # d = b - wb where b > wb: branch-free (a masked copy on a mixed mask is ~8x slower);
    # rising is zeroed where falling, then max() picks falling there and rising (>= 0) elsewhere.
    x *= falling <= 0
    np.maximum(x, falling, out=x)
    x *= k
    if abs(k) > 40.0:
        x -= 0.5 * k  # k * (d - 0.5)
        np.clip(x, -20.0, 20.0, out=x)
        np.exp(x, out=x)
        x += 1.0
        np.divide(hi - lo, x, out=x)
    else:  # (hi - lo) / (1 + e^(k(d - 1/2))) = (hi - lo) e^(k/2) / (e^(k/2) + e^(kd))
        half = float(np.exp(0.5 * k))
        np.exp(x, out=x)
        x += half
        np.divide((hi - lo) * half, x, out=x)
    x += lo  # alpha in [lo, hi] up to rounding (the chain's clamp)
    # (1 - alpha) b + alpha wb = b - alpha (b - wb): one product fewer.
    x *= falling
    ema = np.subtract(b, x, out=out)
    return np.minimum(ema, 1.0, out=ema)


class _BlockOut(NamedTuple):
    consensus: np.ndarray
    validator_trust: np.ndarray
    trust: np.ndarray
    incentive: np.ndarray
    dividends: np.ndarray
    bonds: list[np.ndarray]
    new_bonds: list[np.ndarray]


def _block_outputs(
    state: SubnetState,
    params: YumaParams,
    owner: int | None,
    permit: np.ndarray,
    new_permit: np.ndarray,
    active_stake: np.ndarray,
    uids: np.ndarray,
    bufs: tuple[np.ndarray, ...],
) -> _BlockOut:
    """Everything that needs the (uids x n) weight and bond blocks; `bufs` are four flat
    scratch buffers of len(uids) * n (w, then the median's three, which later hold the
    clipped weights, the bonds and the liquid-alpha rates). Nothing returned aliases them."""
    n = state.n
    shape = (len(uids), n)
    w = bufs[0].reshape(shape)
    pool = bufs[1:]
    liquid_possible = params.yuma3 and params.liquid_alpha
    track = liquid_possible and params.bonds_penalty in (0, U16_MAX)
    present = np.zeros(shape, dtype=bool) if track else None
    scatter_rows(state.weights, uids, w, present, skip=~permit[uids], zero=True)
    _mask_weights(state, uids, owner, w, present)
    row_sums = w.sum(axis=1)
    row_sums[row_sums == 0] = 1.0
    w *= 1.0 / row_sums[:, None]  # a multiply pass is ~3x cheaper than a divide pass

    a_rows = active_stake[uids]
    preranks = a_rows @ w if len(uids) else np.zeros(n)

    # Consensus over validators with active stake; those without a block row score 0.
    part = np.flatnonzero(active_stake > 0)
    u = _normalize(active_stake[part])
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[uids] = np.arange(len(uids))
    in_block = row_of[part] >= 0
    u_rows = np.zeros(len(uids))
    u_rows[row_of[part[in_block]]] = u[in_block]
    is_part = np.zeros(len(uids), dtype=bool)
    is_part[row_of[part[in_block]]] = True
    kappa = params.kappa / U16_MAX
    consensus, reached = weighted_median_cols(u_rows, w, kappa, is_part, pool)
    if not in_block.all():
        consensus[~reached] = 0.0  # the outside rows' zeros are the column minimum

    clipped = np.minimum(w, consensus[None, :], out=pool[0].reshape(shape))
    validator_trust = np.zeros(n)
    validator_trust[uids] = clipped.sum(axis=1)
    ranks = a_rows @ clipped if len(uids) else np.zeros(n)
    trust = np.divide(ranks, preranks, out=np.zeros(n), where=preranks != 0)
    incentive = _normalize(ranks)

    # W_b: clipped weights blended by the bonds penalty. Its presence (liquid alpha only):
    # clipping drops entries above a zero consensus; a blend keeps only positive entries.
    wb_has = present
    if params.bonds_penalty == 0:
        wb, spare = w, clipped
    else:
        if params.bonds_penalty == U16_MAX:
            if present is not None:
                # Only columns with a positive weight can lose one (a column gather is slow).
                weighted = np.ones(len(uids)) @ w > 0
                zero_cols = np.flatnonzero((consensus == 0) & weighted)
                if len(zero_cols):
                    present[:, zero_cols] &= ~(w[:, zero_cols] > 0)
        else:
            clipped -= w
            clipped *= params.bonds_penalty / U16_MAX
            clipped += w  # w + beta * (clipped - w)
        wb, spare = clipped, w

    if state.last_mechanism_step_block:
        last_tempo = state.last_mechanism_step_block + 1
    else:
        last_tempo = max(state.current_block - params.tempo, 0)
    b = pool[1].reshape(shape)
    scatter_rows(state.bonds, uids, b, divisor=U16_MAX if params.yuma3 else 1.0, zero=True)
    bar = np.asarray(state.block_at_registration, dtype=np.int64)
    dropped = np.flatnonzero(last_tempo <= bar)  # bonds to uids registered since last tempo
    if len(dropped):
        b[:, dropped] = 0.0
    alpha = 1.0 - params.bonds_moving_avg / 1_000_000
    col_scale = None
    dividends = np.zeros(n)

    if params.yuma3:  # b holds bonds / 65535 (proportions)
        if liquid_possible and np.any(consensus != 0):
            if wb_has is None:
                wb_has = wb > 0
            x, ema = pool[2].reshape(shape), spare.reshape(shape)
            for rows in _row_chunks(len(uids), n):  # 18 elementwise steps, L2-resident
                _liquid_ema(params, wb[rows], b[rows], consensus, x[rows], ema[rows])
            # Bonds absent from W_b are deleted (sparse quirk); touch only columns with gaps.
            gaps = np.flatnonzero(~wb_has.all(axis=0) & (np.ones(len(uids)) @ b > 0))
            if 2 * len(gaps) > n:
                ema *= wb_has
            elif len(gaps):
                ema[:, gaps] *= wb_has[:, gaps]
        else:
            ema = np.multiply(wb, alpha, out=wb)
            b *= 1 - alpha
            ema += b  # alpha * W_b + (1 - alpha) * B
        # column-normalised bonds @ incentive, with the normalisation moved onto incentive
        dividends[uids] = (ema @ (incentive / _col_sums(ema))) * a_rows
    else:
        # alpha * colnorm(W_b * a) + (1 - alpha) * colnorm(B), with each column's scale and
        # alpha applied in one pass per term instead of a normalise pass and a scale pass.
        b *= (1 - alpha) / _col_sums(b)
        delta = np.multiply(wb, a_rows[:, None], out=wb)
        delta *= alpha / _col_sums(delta)
        ema = np.add(delta, b, out=delta)
        ema *= 1.0 / _col_sums(ema)
        dividends[uids] = ema @ incentive
        col_scale = ema.max(axis=0, initial=0.0)  # Yuma 2 stores max-upscaled bonds

    # An entry exists where its EMA is > 0 (absent W_b and B entries are 0 in the block).
    bonds, new_bonds = sparse_rows(ema, col_scale, uids, n, new_permit[uids], bufs[2])
    return _BlockOut(
        consensus, validator_trust, trust, incentive, _normalize(dividends), bonds, new_bonds
    )


def _row_lengths(rows: Sequence[SparseRow], n: int) -> np.ndarray:
    if isinstance(rows, SparseRows):
        return rows.row_lengths()
    return np.fromiter(map(len, rows), dtype=np.int64, count=n)


def epoch_float(state: SubnetState, params: YumaParams, rao_emission: int) -> EpochResult:
    n = state.n
    owner = state.owner_uid if state.owner_uid is not None and state.owner_uid < n else None
    last_update = np.asarray(state.last_update, dtype=np.int64)
    active = last_update + params.activity_cutoff >= state.current_block

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
    has_row = _row_lengths(state.weights, n) > 0
    has_row |= _row_lengths(state.bonds, n) > 0
    uids = np.flatnonzero(has_row)
    with block_buffers(4, len(uids) * n) as bufs:
        blk = _block_outputs(state, params, owner, permit, new_permit, active_stake, uids, bufs)
    consensus, validator_trust, trust, incentive, dividends = blk[:5]

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
        bonds=blk.bonds,
        new_bonds=blk.new_bonds,
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
