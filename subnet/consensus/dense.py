"""Dense-block kernels for the float64 epoch: sparse rows in, weighted median, sparse rows out.

The epoch works on a (rows x n) float64 block holding only the uids that have a weight or
bond row. At 256 x 4096 every full pass over the block costs ~0.5 ms on one core and every
fresh 8 MB array another ~2 ms of page faults, so these kernels write into caller-owned
buffers and avoid strided whole-matrix copies (a plain `.T` copy alone costs ~20 ms).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain

import numpy as np

from subnet.consensus.types import U16_MAX, SparseRow

_TILE_SHORT, _TILE_LONG = 64, 256


# Block buffers kept between epochs: a fresh 8 MB array costs ~2 ms of page faults (numpy
# asks for transparent huge pages), as much as four passes over it. Bounded, one user at a time.
MAX_CACHED_BYTES = 128 << 20
_cache_lock = threading.Lock()
_cache: list[np.ndarray] = []


@contextmanager
def block_buffers(count: int, size: int) -> Iterator[tuple[np.ndarray, ...]]:
    """`count` flat float64 scratch buffers of `size` (contents undefined), reused across
    calls when they fit in MAX_CACHED_BYTES and no other thread holds them."""
    if count * size * 8 > MAX_CACHED_BYTES or not _cache_lock.acquire(blocking=False):
        yield tuple(np.empty(size) for _ in range(count))
        return
    try:
        if len(_cache) < count or _cache[0].size < size:
            _cache[:] = [np.empty(size) for _ in range(count)]
        yield tuple(buf[:size] for buf in _cache[:count])
    finally:
        _cache_lock.release()


def as_pairs(row: SparseRow) -> np.ndarray:
    """A sparse row as an int64 (k, 2) array; list-of-tuples rows avoid numpy's slow path."""
    if isinstance(row, np.ndarray):
        return row.astype(np.int64, copy=False).reshape(-1, 2)
    flat = np.fromiter(chain.from_iterable(row), dtype=np.int64, count=2 * len(row))
    return flat.reshape(-1, 2)


def scatter_rows(
    rows: list[SparseRow],
    uids: np.ndarray,
    out: np.ndarray,
    present: np.ndarray | None = None,
    skip: np.ndarray | None = None,
    divisor: float = 1.0,
) -> None:
    """Write rows `uids` of a sparse u16 matrix, each value / `divisor`, into the zeroed
    block `out` (one row each, none where `skip`).

    Columns outside 0..n-1 are ignored, as on chain. `present` (bool, zeroed) gets True at
    every stored entry, explicit zeros included. Rows that are one run of consecutive uids
    (every validator weighting every miner) take a slice copy instead of a scatter.
    """
    n = out.shape[1]
    ramp = np.arange(n, dtype=np.int64)
    skipped = [False] * len(uids) if skip is None else skip.tolist()
    for k, uid in enumerate(uids.tolist()):
        row = rows[uid]
        if skipped[k] or not len(row):
            continue
        pairs = as_pairs(row)
        cols, vals = pairs[:, 0], pairs[:, 1]
        lo, m = int(cols[0]), len(cols)
        if 0 <= lo and lo + m <= n and (cols == ramp[lo : lo + m]).all():
            dst = out[k, lo : lo + m]
            dst[:] = vals  # a plain cast-copy: a ufunc on strided ints is ~4x slower
            if divisor != 1.0:
                dst /= divisor
            if present is not None:
                present[k, lo : lo + m] = True
            continue
        keep = (cols >= 0) & (cols < n)
        if not keep.all():
            cols, vals = cols[keep], vals[keep]
        out[k, cols] = vals / divisor if divisor != 1.0 else vals
        if present is not None:
            present[k, cols] = True


def _tiles(rows: int, cols: int) -> Iterator[tuple[int, int, int, int]]:
    """(i, j, rows, cols) tiles of a (rows, cols) source for transposing copies: 64 x 256,
    long side along the source's long side, measured fastest (square 128 tiles at width
    4096 hit 4K aliasing; smaller ones pay Python overhead)."""
    tr, tc = (_TILE_SHORT, _TILE_LONG) if rows <= cols else (_TILE_LONG, _TILE_SHORT)
    for i in range(0, rows, tr):
        for j in range(0, cols, tc):
            yield i, j, min(tr, rows - i), min(tc, cols - j)


def transpose_into(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """dst[:] = src.T, tile by tile (a cache-blind strided copy is ~8x slower)."""
    for i, j, di, dj in _tiles(*src.shape):
        dst[j : j + dj, i : i + di] = src[i : i + di, j : j + dj].T
    return dst


def weighted_median_cols(
    stake: np.ndarray,
    scores: np.ndarray,
    kappa: float,
    participants: np.ndarray | None = None,
    work: tuple[np.ndarray, ...] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Per column: max{x : sum of stake scoring >= x is >= kappa}, else the column minimum.

    `stake` (rows,) normalised; `scores` (rows, columns), finite and >= 0; `participants`
    (bool per row, default all) limits the median to those rows. This is the value
    subtensor's mid-pivot quickselect returns. Also returns, per column, whether kappa was
    reached. `work` may hold three flat float64 buffers of scores.size to reuse.

    Each score's bits get its row index in the low mantissa bits: still a float >= 0 that
    sorts like the score, so one `np.sort` of floats (SIMD, ~4x faster than argsort) orders
    every column. Scores differing only in those bits (< 2**-40 relative, far below the
    chain's 2**-32 fixed-point step) may swap places; the value returned is still an exact
    score of its column.
    """
    rows, cols = scores.shape
    count = rows if participants is None else int(np.count_nonzero(participants))
    if count == 0:
        return np.zeros(cols), np.zeros(cols, dtype=bool)
    bufs = work or tuple(np.empty(scores.size) for _ in range(3))
    bits = max(1, (rows - 1).bit_length())
    low = np.int64((1 << bits) - 1)
    keys = bufs[0].view(np.int64).reshape(rows, cols)
    np.bitwise_and(scores.view(np.int64), ~low, out=keys)
    if participants is not None:
        keys[~participants] = np.iinfo(np.int64).min  # sign bit: below every real score
        stake = np.where(participants, stake, 0.0)
    keys |= np.arange(rows, dtype=np.int64)[:, None]
    by_col = transpose_into(keys, bufs[1].view(np.int64).reshape(cols, rows))
    by_col.view(np.float64).sort(axis=1)  # ascending; the median walks it from the end
    by_col &= low  # row index of each score, worst first
    # Stake at each sorted position, moved back to (position, column) rows so the running
    # sum from the best score down is one vectorised add per position (np.cumsum along
    # short rows is ~5x slower).
    at_pos = np.take(stake, by_col, out=bufs[2].reshape(cols, rows), mode="wrap")
    above = transpose_into(at_pos, bufs[0].reshape(rows, cols))
    for i in range(rows - 2, -1, -1):
        np.add(above[i + 1], above[i], out=above[i])  # stake scoring >= position i
    reached = above[0] >= kappa
    pos = np.count_nonzero(above >= kappa, axis=0) - 1  # highest position reaching kappa
    pos[~reached] = rows - count  # the lowest participant: the column minimum
    at = np.arange(cols)
    return scores[by_col[at, pos], at], reached


def sparse_rows(
    values: np.ndarray,
    col_scale: np.ndarray | None,
    uids: np.ndarray,
    n: int,
    keep_rows: np.ndarray,
    scratch: np.ndarray | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Block entries where `values > 0` back to per-uid (k, 2) rows of width-n uids.

    Returns (float rows `[uid, value]` for every block row, u16 rows `[uid,
    floor(value / col_scale[uid] * 65535)]` only where `keep_rows`); `col_scale` None means 1.
    Other uids get empty rows. Every row comes out in ascending uid order. Rows are views of
    two arrays (one allocation each: thousands of small ones cost a page fault per 4 KiB
    in this VM once the allocator trims its heap). When every row is the same run of uids
    (bonds to every miner) both are filled with a few block copies; `scratch` (flat float64,
    values.size) then holds the scaled values.
    """
    empty_f, empty_u = np.zeros((0, 2)), np.zeros((0, 2), dtype=np.int64)
    floats, stored = [empty_f] * n, [empty_u] * n
    if len(uids) == 0:
        return floats, stored
    has = values > 0
    counts = np.count_nonzero(has, axis=1)
    kept_counts = np.where(keep_rows, counts, 0)
    ends, kept_ends = np.cumsum(counts), np.cumsum(kept_counts)
    pairs_f = np.empty((int(ends[-1]), 2))
    pairs_u = np.empty((int(kept_ends[-1]), 2), dtype=np.int64)
    first = has.argmax(axis=1)
    is_run = counts == n - first - has[:, ::-1].argmax(axis=1)  # last + 1 - first
    rows = np.flatnonzero(counts)
    lo, m = (int(first[rows[0]]), int(counts[rows[0]])) if len(rows) else (0, 0)
    if len(rows) and is_run[rows].all() and (first[rows] == lo).all() and (counts[rows] == m).all():
        _fill_runs(pairs_f, pairs_u, values, col_scale, rows, keep_rows, lo, m, scratch)
    else:
        for k in rows.tolist():
            at = np.flatnonzero(has[k])
            vals = values[k, at]
            pf = pairs_f[ends[k] - counts[k] : ends[k]]
            pf[:, 0], pf[:, 1] = at, vals
            if keep_rows[k]:
                pu = pairs_u[kept_ends[k] - counts[k] : kept_ends[k]]
                pu[:, 0] = at
                scaled = vals if col_scale is None else vals / col_scale[at]
                np.multiply(scaled, U16_MAX, out=pu[:, 1], casting="unsafe")  # >= 0: floor
    for k, (uid, end, kept_end) in enumerate(
        zip(uids.tolist(), ends.tolist(), kept_ends.tolist(), strict=True)
    ):
        count = int(counts[k])
        if count:
            floats[uid] = pairs_f[end - count : end]
            if keep_rows[k]:
                stored[uid] = pairs_u[kept_end - count : kept_end]
    return floats, stored


def _fill_runs(
    pairs_f: np.ndarray,
    pairs_u: np.ndarray,
    values: np.ndarray,
    col_scale: np.ndarray | None,
    rows: np.ndarray,
    keep_rows: np.ndarray,
    lo: int,
    m: int,
    scratch: np.ndarray | None,
) -> None:
    """`sparse_rows` when every listed row holds exactly uids lo..lo+m-1."""
    cols = slice(lo, lo + m)
    all_rows = len(rows) == len(values)
    src = values[:, cols] if all_rows else values[rows, cols]
    by_row = pairs_f.reshape(len(rows), m, 2)
    by_row[:, :, 0] = np.arange(lo, lo + m)
    by_row[:, :, 1] = src
    kept = rows[keep_rows[rows]]
    if not len(kept):
        return
    if len(kept) != len(rows):
        src = values[kept, cols]
    if col_scale is not None:
        out = None if scratch is None else scratch[: src.size].reshape(src.shape)
        src = np.divide(src, col_scale[cols], out=out)
    by_row_u = pairs_u.reshape(len(kept), m, 2)
    by_row_u[:, :, 0] = np.arange(lo, lo + m)
    np.multiply(src, U16_MAX, out=by_row_u[:, :, 1], casting="unsafe")  # >= 0: floor
