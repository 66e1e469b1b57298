"""Bit-exact epoch: subtensor's sparse `epoch_mechanism` in emulated I32F32 fixed point.

A line-by-line port of the chain's arithmetic (see `fixed.py` for the number semantics): same
masks, same iteration order (ascending uid, sparse row order), same flooring. Slow (pure
Python ints) but exact; `epoch_float.py` is the fast path and is tested against this one.
"""

from __future__ import annotations

import numpy as np

from subnet.consensus import fixed as fx
from subnet.consensus.fixed import ONE
from subnet.consensus.types import EpochResult, SparseRow, SubnetState, YumaParams

Row = list[tuple[int, int]]


def _row_pairs(row: SparseRow, n: int) -> list[tuple[int, int]]:
    """(uid, u16) pairs of a stored row, dropping uids >= n as `get_weights_sparse` does."""
    pairs = row.tolist() if isinstance(row, np.ndarray) else row
    return [(int(j), int(v)) for j, v in pairs if 0 <= int(j) < n]


def _normalize(x: list[int]) -> list[int]:
    total = sum(x)
    return x if total == 0 else [fx.div(v, total) for v in x]


def _col_normalize(m: list[Row], n: int) -> list[Row]:
    sums = [0] * n
    for row in m:
        for j, v in row:
            sums[j] += v
    return [[(j, fx.div(v, sums[j]) if sums[j] != 0 else v) for j, v in row] for row in m]


def _weighted_median(stake: list[int], score: list[int], minority: int, hi: int) -> int:
    """subtensor's deterministic mid-pivot quickselect for the stake-weighted median."""
    part = list(range(len(stake)))
    lo = 0
    for _ in range(len(stake) + 1):
        if not part:
            return 0
        if len(part) == 1:
            return score[part[0]]
        pivot = score[part[len(part) // 2]]
        lo_stake = hi_stake = 0
        lower: list[int] = []
        upper: list[int] = []
        for idx in part:
            s = score[idx]
            if s == pivot:
                continue
            if s < pivot:
                lo_stake += stake[idx]
                lower.append(idx)
            else:
                hi_stake += stake[idx]
                upper.append(idx)
        if minority < lo + lo_stake and lower:
            part, hi = lower, lo + lo_stake
        elif hi - hi_stake <= minority and upper:
            part, lo = upper, hi - hi_stake
        else:
            return pivot
    return 0


def _consensus(active_stake: list[int], weights: list[Row], n: int, kappa: int) -> list[int]:
    use_stake = _normalize([s for s in active_stake if s > 0])
    stake_sum = sum(use_stake)
    minority = stake_sum - kappa
    columns: list[list[int] | None] = [None] * n  # None: every participant scores 0
    k = 0
    for i, s in enumerate(active_stake):
        if s <= 0:
            continue
        for j, v in weights[i]:
            col = columns[j]
            if col is None:
                col = columns[j] = [0] * len(use_stake)
            col[k] = v
        k += 1
    # An all-zero column always yields its pivot, 0, whatever the stakes.
    return [
        0 if col is None else _weighted_median(use_stake, col, minority, stake_sum)
        for col in columns
    ]


def _alpha_sigmoid(c: int, w: int, b: int, lo: int, hi: int, steep: int) -> int:
    diff_buy = min(max(w - c, 0), ONE)
    diff_sell = min(max(b - w, 0), ONE)
    diff = diff_buy if w >= b else diff_sell
    x = fx.mul(fx.div(steep << 32, -100 << 32), diff - fx.HALF)
    sigmoid = fx.div(ONE, ONE + fx.exp(x))
    alpha = lo + fx.mul(sigmoid, hi - lo)
    return min(max(alpha, lo), hi)


def _ema_alpha(params: YumaParams) -> int:
    """1 - bonds_moving_avg/1e6, divided in I64F64 then cut to I32F32 (floor)."""
    return ONE - (((params.bonds_moving_avg << 64) // 1_000_000) >> 32)


def epoch_fixed(state: SubnetState, params: YumaParams, rao_emission: int) -> EpochResult:
    n = state.n
    owner = state.owner_uid if state.owner_uid is not None and state.owner_uid < n else None
    cb = state.current_block
    bar = [int(b) for b in state.block_at_registration]
    last_update = [int(u) for u in state.last_update]
    active = [u + params.activity_cutoff >= cb for u in last_update]

    # Stake: threshold (owner exempt), normalise in I64F64, cut to I32F32.
    s64 = [fx.i64f64_from_number(s) for s in state.stake]
    s64 = [0 if (s >> 64) < params.stake_threshold and i != owner else s for i, s in enumerate(s64)]
    total64 = sum(s64)
    stake = [((s << 64) // total64) >> 32 if total64 else s >> 32 for s in s64]

    # Permits: old ones mask this epoch; new ones (top-k non-zero stake) decide bond storage.
    permit = [bool(p) for p in state.validator_permit]
    if owner is not None:
        permit[owner] = True
    new_permit = [s != 0 for s in stake]
    k = params.max_allowed_validators
    if n >= k:
        for i in sorted(range(n), key=lambda i: stake[i])[: n - k]:
            new_permit[i] = False
    if owner is not None:
        new_permit[owner] = True

    active_stake = _normalize([s if active[i] and permit[i] else 0 for i, s in enumerate(stake)])

    # Weights: permit rows, diagonal (owner kept), outdated, commit-reveal; row-normalise.
    commit = state.commit_blocks
    weights: list[Row] = []
    for i in range(n):
        row: Row = []
        if permit[i]:
            cbi = commit[i] if commit is not None and commit[i] is not None else None
            for j, v in _row_pairs(state.weights[i], n):
                if (j == i and i != owner) or last_update[i] <= bar[j]:
                    continue
                if cbi is not None and cbi < bar[j]:
                    continue
                row.append((j, v << 32))
        total = sum(v for _, v in row)
        if total > 0:
            row = [(j, fx.div(v, total)) for j, v in row]
        weights.append(row)

    def matmul(m: list[Row]) -> list[int]:
        out = [0] * n
        for i, row in enumerate(m):
            a = active_stake[i]
            for j, v in row:
                out[j] += fx.mul(a, v)
        return out

    preranks = matmul(weights)
    kappa = (params.kappa << 32) // fx.U16_MAX
    consensus = _consensus(active_stake, weights, n, kappa)
    clipped: list[Row] = []
    for row in weights:
        out: Row = []
        for j, v in row:
            c = consensus[j]
            if c < v:
                if c > 0:
                    out.append((j, c))
            else:
                out.append((j, v))
        clipped.append(out)
    validator_trust = [sum(v for _, v in row) for row in clipped]
    ranks = matmul(clipped)
    trust = [fx.div(r, p) for r, p in zip(ranks, preranks, strict=True)]
    ranks = _normalize(ranks)
    incentive = ranks

    # Weights for bonds: W + beta (W_clipped - W); sparse shortcut at beta 0 and 1.
    beta = (params.bonds_penalty << 32) // fx.U16_MAX
    if beta == 0:
        wb = weights
    elif beta == ONE:
        wb = clipped
    else:
        wb = []
        for r1, r2 in zip(weights, clipped, strict=True):
            d1, d2 = dict(r1), dict(r2)
            row = []
            for j in sorted(set(d1) | set(d2)):
                v1 = d1.get(j, 0)
                val = v1 + fx.mul(beta, d2.get(j, 0) - v1)
                if val > 0:
                    row.append((j, val))
            wb.append(row)

    # Bonds of miners (re)registered since the last epoch are dropped.
    if state.last_mechanism_step_block:
        last_tempo = state.last_mechanism_step_block + 1
    else:
        last_tempo = max(cb - params.tempo, 0)
    stored = [
        [(j, v) for j, v in _row_pairs(state.bonds[i], n) if not last_tempo <= bar[j]]
        for i in range(n)
    ]

    alpha = _ema_alpha(params)
    if params.yuma3:
        bonds = [[(j, (v << 32) // fx.U16_MAX) for j, v in row] for row in stored]
        ema: list[Row] = []
        if params.liquid_alpha and any(c != 0 for c in consensus):
            lo = (params.alpha_low << 32) // fx.U16_MAX
            hi = (params.alpha_high << 32) // fx.U16_MAX
            steep = params.alpha_sigmoid_steepness
            for w_row, b_row in zip(wb, bonds, strict=True):
                old = dict(b_row)
                row = []
                # Only columns present in the new weights survive (mat_ema_alpha_sparse).
                for j, w in w_row:
                    b = old.get(j, 0)
                    a = _alpha_sigmoid(consensus[j], w, b, lo, hi, steep)
                    val = min(fx.mul(ONE - a, b) + max(fx.mul(a, w), 0), ONE)
                    if val > 0:
                        row.append((j, val))
                ema.append(row)
        else:
            ema = _mat_ema(wb, bonds, alpha)
        ema_norm = _col_normalize(ema, n)
        per_validator = [sum(fx.mul(v, incentive[j]) for j, v in row) for row in ema_norm]
        dividends = _normalize(
            [fx.mul(t, a) for t, a in zip(per_validator, active_stake, strict=True)]
        )
        bonds_out = ema
        store = ema
    else:
        bonds = _col_normalize([[(j, v << 32) for j, v in row] for row in stored], n)
        delta = _col_normalize(
            [[(j, fx.mul(v, active_stake[i])) for j, v in row] for i, row in enumerate(wb)], n
        )
        ema = _col_normalize(_mat_ema(delta, bonds, alpha), n)
        dividends = _normalize([sum(fx.mul(incentive[j], v) for j, v in row) for row in ema])
        bonds_out = ema
        col_max = [0] * n
        for row in ema:
            for j, v in row:
                col_max[j] = max(col_max[j], v)
        store = [[(j, fx.div(v, col_max[j]) if col_max[j] else v) for j, v in row] for row in ema]

    new_bonds = [
        np.array(
            [(j, fx.to_u16(v)) for j, v in row] if new_permit[i] else [], dtype=np.int64
        ).reshape(-1, 2)
        for i, row in enumerate(store)
    ]

    # Emission: normalise I + D; zero-sum fallback pays (active) stake to validators.
    combined = [i + d for i, d in zip(incentive, dividends, strict=True)]
    esum = sum(combined)
    if esum != 0:
        server = [fx.div(x, esum) for x in incentive]
        validator = [fx.div(x, esum) for x in dividends]
        combined_n = _normalize(combined)
    else:
        server = list(incentive)
        fallback = stake if sum(active_stake) == 0 else active_stake
        validator = list(fallback)
        combined_n = list(fallback)

    def rao(x: list[int]) -> list[int]:
        return [(v * rao_emission) >> 32 for v in x]

    return EpochResult(
        mode="fixed",
        active=np.array(active, dtype=bool),
        stake=_floats(stake),
        active_stake=_floats(active_stake),
        consensus=_floats(consensus),
        ranks=_floats(ranks),
        trust=_floats(trust),
        validator_trust=_floats(validator_trust),
        incentive=_floats(incentive),
        dividends=_floats(dividends),
        pruning_scores=_floats(combined_n),
        new_validator_permits=new_permit,
        bonds=[
            np.array([(j, fx.to_float(v)) for j, v in row], dtype=np.float64).reshape(-1, 2)
            for row in bonds_out
        ],
        new_bonds=new_bonds,
        server_emission=rao(server),
        validator_emission=rao(validator),
        emission=rao(combined_n),
        rao_emission=rao_emission,
        stake_u16=[fx.to_u16(x) for x in stake],
        consensus_u16=[fx.to_u16(x) for x in consensus],
        ranks_u16=[fx.to_u16(x) for x in ranks],
        trust_u16=[fx.to_u16(x) for x in trust],
        validator_trust_u16=[fx.to_u16(x) for x in validator_trust],
        incentive_u16=[fx.to_u16(x) for x in incentive],
        dividends_u16=[fx.to_u16(x) for x in dividends],
        pruning_scores_u16=_max_upscale_u16(combined_n),
    )


def _mat_ema(new: list[Row], old: list[Row], alpha: int) -> list[Row]:
    """`mat_ema_sparse`: alpha*new + (1-alpha)*old over the union of entries, keep > 0."""
    out: list[Row] = []
    for new_row, old_row in zip(new, old, strict=True):
        acc: dict[int, int] = {}
        for j, v in new_row:
            acc[j] = acc.get(j, 0) + fx.mul(alpha, v)
        for j, v in old_row:
            acc[j] = acc.get(j, 0) + fx.mul(ONE - alpha, v)
        out.append([(j, acc[j]) for j in sorted(acc) if acc[j] > 0])
    return out


def _max_upscale_u16(x: list[int]) -> list[int]:
    """`vec_max_upscale_to_u16` for proportions (max <= 1)."""
    top = max(x, default=0)
    if top == 0:
        return [fx.to_u16(v) for v in x]
    return [min(fx.round_to_int(fx.div(v * fx.U16_MAX, top)), fx.U16_MAX) for v in x]


def _floats(x: list[int]) -> np.ndarray:
    return np.array(x, dtype=np.float64) / ONE
