"""The running batch's padded KV cache: rows join after their prefill and leave when finished.

All rows share one time axis. Rows are left-padded (mask 0) so every row's newest token sits in
the last column; RoPE positions come from each row's own count of real tokens, so padding never
shifts a sequence. Joining pads the shorter of (batch, newcomers) on the left; leaving selects
rows and trims columns that are padding in every remaining row, so the cache stays as long as
the longest live sequence, not the longest ever seen.

Why padded rather than per-sequence caches: one forward per decode step for the whole batch.
Per-sequence caches need one forward per sequence per step (the naive miner's cost profile;
scripts/bench_miner.py measures it as the "naive" column).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """A KV layer in a buffer with headroom: a decode step writes one column in place.

    The stock DynamicLayer concatenates on every step, copying the whole cache (measured: a
    third of a decode step at batch 32, ~110 tokens). Here capacity doubles when full, so the
    copying is amortized; `keys`/`values` are views of the filled part.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.adopt(keys, values)

    def adopt(self, keys: torch.Tensor, values: torch.Tensor, headroom: int = 64) -> None:
        b, h, t, d = keys.shape
        self._k = keys.new_empty((b, h, t + headroom, d))
        self._v = values.new_empty((b, values.shape[1], t + headroom, values.shape[3]))
        self._k[:, :, :t] = keys
        self._v[:, :, :t] = values
        self._len = t
        self.keys, self.values = self._k[:, :, :t], self._v[:, :, :t]
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True

    def stack(self, parts: list[tuple[torch.Tensor, torch.Tensor]], headroom: int = 64) -> None:
        """Append rows below ours, all right-aligned (left-padded with zeros) to one width.

        One copy of everything into the new buffer, rather than pad + concatenate + adopt.
        """
        parts = [(self.keys, self.values), *parts]
        width = max(k.shape[2] for k, _ in parts)
        rows = sum(k.shape[0] for k, _ in parts)
        _, h, _, d = self.keys.shape
        k_buf = self._k.new_zeros((rows, h, width + headroom, d))
        v_buf = self._v.new_zeros(
            (rows, self.values.shape[1], width + headroom, self.values.shape[3])
        )
        at = 0
        for k, v in parts:
            b, t = k.shape[0], k.shape[2]
            k_buf[at : at + b, :, width - t : width] = k
            v_buf[at : at + b, :, width - t : width] = v
            at += b
        self._k, self._v, self._len = k_buf, v_buf, width
        self.keys, self.values = k_buf[:, :, :width], v_buf[:, :, :width]

    def update(self, key_states, value_states, *args, **kwargs):
        n = key_states.shape[-2]
        if self._len + n > self._k.shape[-2]:
            self.adopt(self.keys, self.values, headroom=max(64, self._len + n))
        self._k[:, :, self._len : self._len + n] = key_states
        self._v[:, :, self._len : self._len + n] = value_states
        self._len += n
        self.keys, self.values = self._k[:, :, : self._len], self._v[:, :, : self._len]
        return self.keys, self.values


def _pad_left(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    extra = width - t.shape[dim]
    if extra <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = extra
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class KVBatch:
    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [rows, time], 1 = real token

    @property
    def rows(self) -> int:
        return 0 if self.mask is None else self.mask.shape[0]

    def positions(self) -> torch.Tensor:
        """Position id of the next token of each row: its number of real tokens so far."""
        assert self.mask is not None
        return self.mask.sum(dim=1, keepdim=True)

    def extend_mask(self) -> torch.Tensor:
        """Mask for a decode step (one new real token per row); becomes the batch's mask."""
        assert self.mask is not None
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.rows, 1))], dim=1)
        return self.mask

    def join(self, caches: list[tuple[DynamicCache, torch.Tensor]]) -> None:
        """Append newcomer rows (prefill caches, each with its left-padded mask) below ours."""
        masks = [m for _, m in caches]
        parts = [c for c, _ in caches]
        if self.cache is None or self.rows == 0:
            first, parts = parts[0], parts[1:]
            first.layers = [GrowingLayer(layer.keys, layer.values) for layer in first.layers]
            self.cache, self.mask = first, masks[0]
            masks = masks[1:]
            if not parts:
                return
        width = max(self.mask.shape[1], *(m.shape[1] for m in masks))
        for i, mine in enumerate(self.cache.layers):
            mine.stack([(c.layers[i].keys, c.layers[i].values) for c in parts])
        self.mask = torch.cat([_pad_left(m, width, 1) for m in (self.mask, *masks)])

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows` (in this order); drop all-padding columns on the left."""
        if self.cache is None or self.mask is None:
            return
        if not rows:
            self.cache, self.mask = None, None
            return
        idx = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        mask = self.mask.index_select(0, idx)
        live = mask.any(dim=0).nonzero()
        start = int(live[0]) if len(live) else mask.shape[1]
        self.mask = mask[:, start:]
        for layer in self.cache.layers:
            layer.adopt(
                layer.keys.index_select(0, idx.to(layer.keys.device))[:, :, start:],
                layer.values.index_select(0, idx.to(layer.values.device))[:, :, start:],
            )


def select_rows(
    cache: DynamicCache, mask: torch.Tensor, rows: list[int]
) -> tuple[DynamicCache, torch.Tensor]:
    """Keep only `rows` of a prefill cache (some newcomers finished on their first token)."""
    idx = torch.tensor(rows, dtype=torch.long, device=mask.device)
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, idx)
        layer.values = layer.values.index_select(0, idx)
    return cache, mask.index_select(0, idx)
