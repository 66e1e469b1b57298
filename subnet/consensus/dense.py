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

from subnet.consensus.types import U16_MAX, SparseRow, SparseRows

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
    zero: bool = False,
) -> None:
    """Write rows `uids` of a sparse u16 matrix, each value / `divisor`, into the zeroed
    block `out` (one row each, none where `skip`). With `zero`, `out` may hold anything and
    gets zeros wherever no entry lands (cheaper than a fill: a row that is one run of uids
    only clears the columns around it).

    Columns outside 0..n-1 are ignored, as on chain. `present` (bool, zeroed) gets True at
    every stored entry, explicit zeros included. Rows that are one run of consecutive uids
    (every validator weighting every miner) take a slice copy instead of a scatter.
    """
    if isinstance(rows, SparseRows):
        _scatter_csr(rows, uids, out, present, skip, divisor, zero)
        return
    n = out.shape[1]
    ramp = np.arange(n, dtype=np.int64)
    skipped = [False] * len(uids) if skip is None else skip.tolist()
    for k, uid in enumerate(uids.tolist()):
        row = rows[uid]
        if skipped[k] or not len(row):
            if zero:
                out[k] = 0.0
            continue
        pairs = as_pairs(row)
        cols, vals = pairs[:, 0], pairs[:, 1]
        lo, m = int(cols[0]), len(cols)
        if 0 <= lo and lo + m <= n and (cols == ramp[lo : lo + m]).all():
            if zero:
                out[k, :lo] = 0.0
                out[k, lo + m :] = 0.0
            dst = out[k, lo : lo + m]
            dst[:] = vals  # a plain cast-copy: a ufunc on strided ints is ~4x slower
            if divisor != 1.0:
                dst /= divisor
            if present is not None:
                present[k, lo : lo + m] = True
            continue
        if zero:
            out[k] = 0.0
        keep = (cols >= 0) & (cols < n)
        if not keep.all():
            cols, vals = cols[keep], vals[keep]
        out[k, cols] = vals / divisor if divisor != 1.0 else vals
        if present is not None:
            present[k, cols] = True


def _scatter_csr(
    rows: SparseRows,
    uids: np.ndarray,
    out: np.ndarray,
    present: np.ndarray | None,
    skip: np.ndarray | None,
    divisor: float,
    zero: bool,
) -> None:
    """`scatter_rows` for CSR input: one vectorised write (a block copy when every selected
    row is the same run of uids, as bonds to every miner are)."""
    n = out.shape[1]
    k_sel = np.arange(len(uids)) if skip is None else np.flatnonzero(~skip)
    sel = uids[k_sel]
    lens = rows.row_lengths()[sel]
    total = int(lens.sum())
    if zero and (total == 0 or len(k_sel) != len(uids)):
        out.fill(0.0)
        zero = False
    if total == 0:
        return
    starts = rows.indptr[sel]
    if total == len(rows.indices):  # the selected rows hold every entry: no gather
        cols, vals = rows.indices, rows.values
    else:
        at = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)
        cols, vals = rows.indices[at], rows.values[at]
    m = int(lens[0])
    lo = int(cols[0])
    if (lens == m).all() and 0 <= lo and lo + m <= n:
        grid = cols.reshape(-1, m)
        if (grid == np.arange(lo, lo + m, dtype=grid.dtype)).all():
            dst_rows = slice(None) if len(k_sel) == len(uids) else k_sel
            if zero:  # every row selected (else filled above)
                out[:, :lo] = 0.0
                out[:, lo + m :] = 0.0
            out[dst_rows, lo : lo + m] = vals.reshape(-1, m)
            if divisor != 1.0:
                out[dst_rows, lo : lo + m] /= divisor
            if present is not None:
                present[dst_rows, lo : lo + m] = True
            return
    if zero:
        out.fill(0.0)
    block_row = np.repeat(k_sel, lens)
    keep = (cols >= 0) & (cols < n)
    if not keep.all():
        block_row, cols, vals = block_row[keep], cols[keep], vals[keep]
    out[block_row, cols] = vals / divisor if divisor != 1.0 else vals
    if present is not None:
        present[block_row, cols] = True


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
    every column. Scores differing only in those bits (< 2**-36 relative, below the
    chain's 2**-32 fixed-point step for any score <= 1) may swap places; the value returned is still an exact
    score of its column.
    """
    rows, cols = scores.shape
    count = rows if participants is None else int(np.count_nonzero(participants))
    if count == 0:
        return np.zeros(cols), np.zeros(cols, dtype=bool)
    bufs = work or tuple(np.empty(scores.size) for _ in range(3))
    # 16 index bits whenever they suffice: the indices then leave the keys as a plain u16
    # cast (a quarter of the bytes to transpose back); 36 mantissa bits still order scores.
    small = rows <= 1 << 16
    bits = 16 if small else rows.bit_length()
    low = np.int64((1 << bits) - 1)
    # Transpose first, then key in place: both bit ops then run over the contiguous
    # (cols, rows) copy with the row index broadcast along it, ~3 ms less than keying the
    # (rows, cols) block and transposing the keys.
    by_col = transpose_into(scores.view(np.int64), bufs[1].view(np.int64).reshape(cols, rows))
    np.bitwise_and(by_col, ~low, out=by_col)
    if participants is not None:
        if not participants.all():
            by_col[:, ~participants] = np.iinfo(np.int64).min  # sign bit: below every score
        stake = np.where(participants, stake, 0.0)
    by_col |= np.arange(rows, dtype=np.int64)
    by_col.view(np.float64).sort(axis=1)  # ascending; the median walks it from the end
    # Row index of each score, worst first, moved back to (position, column) rows, then the
    # stake at each position: the running sum from the best score down is one vectorised
    # add per position (np.cumsum along short rows is ~5x slower).
    above = bufs[0].reshape(rows, cols)
    if small:
        halves = bufs[2].view(np.uint16)
        idx_cr = halves[: scores.size].reshape(cols, rows)
        np.copyto(idx_cr, by_col, casting="unsafe")  # keeps the low 16 bits: the row index
        order = transpose_into(idx_cr, halves[scores.size : 2 * scores.size].reshape(rows, cols))
        np.take(stake, order, out=above, mode="wrap")
    else:
        by_col &= low
        order = by_col.T
        at_pos = np.take(stake, by_col, out=bufs[2].reshape(cols, rows), mode="wrap")
        transpose_into(at_pos, above)
    for i in range(rows - 2, -1, -1):
        np.add(above[i + 1], above[i], out=above[i])  # stake scoring >= position i
    reached = above[0] >= kappa
    # `above` falls along each column, so the positions reaching kappa are a prefix: count
    # them as bytes summed down the columns (count_nonzero(axis=) takes a ~2x slower path).
    spare = bufs[1].view(np.bool_)[: scores.size].reshape(rows, cols) if small else None
    hits = np.greater_equal(above, kappa, out=spare)  # (by_col, in bufs[1], is spent if small)
    pos = np.add.reduce(hits.view(np.uint8), axis=0, dtype=np.intp) - 1
    pos[~reached] = rows - count  # the lowest participant: the column minimum
    at = np.arange(cols)
    return scores[order[pos, at], at], reached


def _csr_indptr(uids: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    per_uid = np.zeros(n, dtype=np.int64)
    per_uid[uids] = counts
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_uid, out=indptr[1:])
    return indptr


def sparse_rows(
    values: np.ndarray,
    col_scale: np.ndarray | None,
    uids: np.ndarray,
    n: int,
    keep_rows: np.ndarray,
    scratch: np.ndarray | None = None,
) -> tuple[SparseRows, SparseRows]:
    """Block entries where `values > 0` back to n CSR rows of width-n uids.

    Returns (float rows `[uid, value]` for every block row, u16 rows `[uid,
    floor(value / col_scale[uid] * 65535)]` only where `keep_rows`); `col_scale` None means 1.
    Other uids get empty rows; every row is in ascending uid order. Three flat arrays instead
    of per-row ones (thousands of small arrays cost more than the values). When every
    non-empty row is the same run of uids (bonds to every miner) the block is copied as is;
    `scratch` (flat float64, values.size) then holds the scaled values.
    """
    rows = len(uids)
    # uids fit 16 bits on every real subnet (<= 4096): a quarter of the memory to write
    uid_type = np.uint16 if n <= 1 << 16 else np.int64
    if rows == 0:
        empty = SparseRows(np.zeros(n + 1, dtype=np.int64), np.zeros(0, uid_type), np.zeros(0))
        return empty, SparseRows(empty.indptr, empty.indices, np.zeros(0, np.uint16))
    has = values > 0
    counts = np.count_nonzero(has, axis=1)
    nz = np.flatnonzero(counts)
    lo = int(has[nz[0]].argmax()) if len(nz) else 0
    m = int(counts[nz[0]]) if len(nz) else 0
    all_rows = len(nz) == rows
    cols = slice(lo, lo + m)
    is_run = (
        len(nz) > 0
        and (counts[nz] == m).all()
        and bool((has[:, cols] if all_rows else has[nz, cols]).all())
    )
    if is_run:
        block = values[:, cols] if all_rows else values[nz, cols]
        vals_f = np.ascontiguousarray(block).reshape(-1)
        grid = np.empty((len(nz), m), dtype=uid_type)
        grid[:] = np.arange(lo, lo + m, dtype=uid_type)  # broadcast copy: np.tile is ~3x slower
        indices = grid.reshape(-1)
    else:
        flat = np.flatnonzero(has)
        vals_f = values.reshape(-1)[flat]
        flat -= np.repeat(np.arange(rows, dtype=np.int64) * values.shape[1], counts)
        indices = flat.astype(uid_type)
    floats = SparseRows(_csr_indptr(uids, counts, n), indices, vals_f)

    kept_counts = np.where(keep_rows, counts, 0)
    if (kept_counts == counts).all():
        kept_idx, kept_f = indices, vals_f
        indptr_u = floats.indptr
        if is_run:  # scale by column as a block: no per-entry gather of col_scale
            kept_f = vals_f.reshape(len(nz), m)
    else:
        keep_entry = np.repeat(keep_rows, counts)
        kept_idx, kept_f = indices[keep_entry], vals_f[keep_entry]
        indptr_u = _csr_indptr(uids, kept_counts, n)
    vals_u = np.empty(kept_f.shape, dtype=np.uint16)
    if col_scale is not None:
        scale = col_scale[cols] if kept_f.ndim == 2 else col_scale[kept_idx]
        out = None if scratch is None else scratch[: kept_f.size].reshape(kept_f.shape)
        kept_f = np.divide(kept_f, scale, out=out)
    # Values are in [0, 1] (Yuma 3 EMA is capped at 1; Yuma 2 divides by the column max):
    # the product fits a u16, and the cast truncates, which is the chain's floor.
    np.multiply(kept_f, U16_MAX, out=vals_u, casting="unsafe")
    return floats, SparseRows(indptr_u, kept_idx, vals_u.reshape(-1))
