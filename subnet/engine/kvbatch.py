"""The running batch's KV cache: fixed row slots, rows join after their prefill and leave when done.

Every layer's keys and values live in one preallocated buffer of `max_rows` row slots by a time
axis with headroom. Live rows are slots 0..n-1 and share one time window [start, end): rows are
left-padded (mask 0) so each row's newest token sits in the window's last column, and RoPE
positions come from each row's own count of real tokens, so padding never shifts a sequence.

Joining writes the newcomers' prefill KV into the next free slots, right-aligned to the window
(widening it to the left when a newcomer is longer). Leaving moves the last live rows into the
holes and narrows the window past columns that are padding in every remaining row. Both cost
the rows that move, never the whole batch: the earlier version re-stacked or re-selected the
entire cache on every join and leave, which cost ~9 ms per event at 32 rows (bench_miner,
C=32: 0.5 s of a 3.7 s run). A decode step writes one column in place; the time axis doubles
(or slides the window back to column 0) when it runs out, so those copies are amortized.

Sliding-window layers (gemma2/3, mistral, phi3, qwen2) keep their full history here like the
others: the model's own cache keeps only the last `window - 1` keys of such a layer, which no
shared time axis can hold. Each row's real tokens are contiguous and end in the window's last
column, so column distance is token distance and the model's sliding mask (built over columns)
hides exactly what lies outside the window. The cost is memory: a sliding layer holds the whole
context rather than the window.

Stale values in slots and columns outside a row's mask are finite (buffers start zeroed and
only ever hold real keys and values) and masked out, so they never reach an attention output.

Why padded rather than per-sequence caches: one forward per decode step for the whole batch.
Per-sequence caches need one forward per sequence per step (the naive miner's cost profile;
scripts/bench_miner.py measures it as the "naive" column).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

HEADROOM = 64  # free columns added past the window whenever the time axis is (re)allocated
MIN_TIME = 256  # the first allocation's time axis: a prompt plus a typical answer, without growing


@dataclass
class _Window:
    """Shared by all layers of one batch: live rows 0..n-1, time columns [start, end)."""

    n: int = 0
    start: int = 0
    end: int = 0


class SlotLayer(DynamicLayer):
    """One layer's keys/values in a (slots, heads, time, dim) buffer; `keys`/`values` are views
    of the live rows and window. A decode step's `update` writes the window's last column."""

    def __init__(self, win: _Window, k_buf: torch.Tensor, v_buf: torch.Tensor) -> None:
        super().__init__()
        self.win, self.k, self.v = win, k_buf, v_buf
        self.dtype, self.device, self.is_initialized = k_buf.dtype, k_buf.device, True
        self.show(win.end)

    def show(self, end: int) -> None:
        w = self.win
        self.keys = self.k[: w.n, :, w.start : end]
        self.values = self.v[: w.n, :, w.start : end]

    def update(self, key_states, value_states, *args, **kwargs):
        if key_states.shape[-2] != 1:
            raise ValueError("a batch cache layer takes one new token per row (decode only)")
        w = self.win
        self.k[: w.n, :, w.end - 1 : w.end] = key_states
        self.v[: w.n, :, w.end - 1 : w.end] = value_states
        self.show(w.end)
        return self.keys, self.values


class KVBatch:
    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.win = _Window()
        self.cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None  # (slots, time) 1 = real token

    @property
    def rows(self) -> int:
        return self.win.n

    @property
    def mask(self) -> torch.Tensor | None:
        if self._mask is None or self.win.n == 0:
            return None
        return self._mask[: self.win.n, self.win.start : self.win.end]

    def positions(self) -> torch.Tensor:
        """Position id of the next token of each row: its number of real tokens so far."""
        mask = self.mask
        assert mask is not None
        return mask.sum(dim=1, keepdim=True)

    def extend_mask(self) -> torch.Tensor:
        """Open the column of a decode step's new token; returns the step's attention mask."""
        w = self.win
        assert self._mask is not None and w.n
        if w.end == self._mask.shape[1]:
            self._relayout(
                shift=-w.start if w.start > w.end // 2 else 0, grow=w.start <= w.end // 2
            )
        self._mask[: w.n, w.end] = 1
        w.end += 1
        for layer in self._layers:
            layer.show(w.end - 1)  # the past only: `update` adds the new column
        return self._mask[: w.n, w.start : w.end]

    def join(self, caches: list[tuple[DynamicCache, torch.Tensor]]) -> None:
        """Add newcomer rows (prefill caches, each with its left-padded mask) in free slots."""
        w = self.win
        template = caches[0][0]
        # The first prefill cache becomes the batch's cache object: read its layers first.
        caches = [(list(cache.layers), mask) for cache, mask in caches]
        new_rows = sum(m.shape[0] for _, m in caches)
        width = max(m.shape[1] for _, m in caches)
        if self.cache is None:
            self._allocate(template, max(self.max_rows, new_rows), max(MIN_TIME, width + HEADROOM))
        if w.n == 0:  # empty: the window restarts where the newcomers end
            w.start = w.end = width
            if w.end + 1 > self._mask.shape[1]:
                self._relayout()
        if w.n + new_rows > self._mask.shape[0]:  # more than max_rows: grow rather than fail
            self._relayout(rows=w.n + new_rows)
        if w.end - width < 0:  # a newcomer is longer than the window has room on the left
            self._relayout(shift=width - w.end)
        start = min(w.start, w.end - width)
        self._mask[: w.n, start : w.start] = 0
        at = w.n
        for layers, mask in caches:
            b, t = mask.shape
            self._mask[at : at + b, start : w.end - t] = 0
            self._mask[at : at + b, w.end - t : w.end] = mask
            for layer, new in zip(self._layers, layers, strict=True):
                layer.k[at : at + b, :, w.end - t : w.end] = new.keys
                layer.v[at : at + b, :, w.end - t : w.end] = new.values
            at += b
        w.n, w.start = at, start
        self._show()

    def remove(self, gone: list[int]) -> list[int]:
        """Drop rows `gone`; returns the old index of each remaining row, in its new order.

        The last live rows move into the holes (one row copy each), then the window's left
        edge moves past columns no remaining row uses.
        """
        w = self.win
        drop = set(gone)
        order = [i for i in range(w.n) if i not in drop]
        if not order:
            w.n = w.start = w.end = 0
            self._show()
            return []
        n = len(order)
        holes = [i for i in range(n) if i in drop]
        movers = [i for i in order if i >= n]
        for hole, mover in zip(holes, movers, strict=True):
            self._mask[hole, w.start : w.end] = self._mask[mover, w.start : w.end]
            for layer in self._layers:
                layer.k[hole, :, w.start : w.end] = layer.k[mover, :, w.start : w.end]
                layer.v[hole, :, w.start : w.end] = layer.v[mover, :, w.start : w.end]
        new_order = list(range(n))
        for hole, mover in zip(holes, movers, strict=True):
            new_order[hole] = mover
        w.n = n
        live = self._mask[:n, w.start : w.end].any(dim=0).nonzero()
        w.start += int(live[0]) if len(live) else w.end - w.start
        self._show()
        return new_order

    def clear(self) -> None:
        self.win.n = self.win.start = self.win.end = 0
        self._show()

    # --- buffers
    @property
    def _layers(self) -> list[SlotLayer]:
        return self.cache.layers if self.cache is not None else []

    def _show(self) -> None:
        for layer in self._layers:
            layer.show(self.win.end)

    def _allocate(self, template: DynamicCache, rows: int, time: int) -> None:
        """Buffers shaped after a prefill cache; that cache object becomes the batch's cache."""
        layers = []
        for layer in template.layers:
            k, v = layer.keys, layer.values
            k_buf = k.new_zeros((rows, k.shape[1], time, k.shape[3]))
            v_buf = v.new_zeros((rows, v.shape[1], time, v.shape[3]))
            layers.append((k_buf, v_buf))
        mask_device = template.layers[0].keys.device
        self._mask = torch.zeros((rows, time), dtype=torch.long, device=mask_device)
        self.cache = template
        self.cache.layers = [SlotLayer(self.win, k, v) for k, v in layers]

    def _relayout(self, *, rows: int | None = None, shift: int = 0, grow: bool = False) -> None:
        """Move the live window `shift` columns (left when negative), with `rows` slots and the
        time axis doubled when `grow` (or too small). A pure move stays in the same buffers,
        copying only the live window: a fresh zeroed buffer costs far more than the rows."""
        w = self.win
        rows = max(rows or 0, self._mask.shape[0])
        time = self._mask.shape[1] * (2 if grow else 1)
        time = max(time, w.end + shift + HEADROOM)
        src, dst = slice(w.start, w.end), slice(w.start + shift, w.end + shift)
        if rows == self._mask.shape[0] and time == self._mask.shape[1]:
            if shift:  # the clone makes overlapping source and destination safe
                self._mask[: w.n, dst] = self._mask[: w.n, src].clone()
                for layer in self._layers:
                    layer.k[: w.n, :, dst] = layer.k[: w.n, :, src].clone()
                    layer.v[: w.n, :, dst] = layer.v[: w.n, :, src].clone()
        else:
            mask = self._mask.new_zeros((rows, time))
            mask[: w.n, dst] = self._mask[: w.n, src]
            self._mask = mask
            for layer in self._layers:
                k = layer.k.new_zeros((rows, layer.k.shape[1], time, layer.k.shape[3]))
                v = layer.v.new_zeros((rows, layer.v.shape[1], time, layer.v.shape[3]))
                k[: w.n, :, dst] = layer.k[: w.n, :, src]
                v[: w.n, :, dst] = layer.v[: w.n, :, src]
                layer.k, layer.v = k, v
        w.start += shift
        w.end += shift
        self._show()


def select_rows(
    cache: DynamicCache, mask: torch.Tensor, rows: list[int]
) -> tuple[DynamicCache, torch.Tensor]:
    """Keep only `rows` of a prefill cache (some newcomers finished on their first token)."""
    idx = torch.tensor(rows, dtype=torch.long, device=mask.device)
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, idx)
        layer.values = layer.values.index_select(0, idx)
    return cache, mask.index_select(0, idx)
