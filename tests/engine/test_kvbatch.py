"""KVBatch: row slots and a shared window keep every live row's keys/values and mask exact
through joins, decode steps, removals, window growth, sliding and widening."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from subnet.engine import kvbatch
from subnet.engine.kvbatch import KVBatch

LAYERS, HEADS, DIM = 2, 2, 3


class _Ref:
    """Expected per-row history: one (layers, heads, dim) tensor per real token."""

    def __init__(self) -> None:
        self.rows: list[list[torch.Tensor]] = []
        self.counter = 0.0

    def fresh(self, *lead: int) -> torch.Tensor:
        n = LAYERS * int(torch.tensor(lead).prod()) * HEADS * DIM
        vals = torch.arange(self.counter + 1, self.counter + 1 + n, dtype=torch.float32)
        self.counter += n
        return vals.reshape(LAYERS, *lead, HEADS, DIM)


def _prefill_group(ref: _Ref, lengths: list[int]) -> tuple[DynamicCache, torch.Tensor, list]:
    """A left-padded prefill cache of len(lengths) rows, like the engine's grouped forward."""
    width = max(lengths)
    toks = ref.fresh(len(lengths), width)  # (L, b, t, H, D)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    histories = []
    for i, n in enumerate(lengths):
        mask[i, width - n :] = 1
        toks[:, i, : width - n] = 0.0  # padding is never read back
        histories.append([toks[:, i, width - n + j] for j in range(n)])
    cache = DynamicCache()
    cache.layers = []
    for layer in range(LAYERS):
        dl = DynamicLayer()
        kv = toks[layer].permute(0, 2, 1, 3).contiguous()  # (b, H, t, D)
        dl.update(kv, -kv)  # initializes the layer (dtype, device) on every transformers 4.56+
        cache.layers.append(dl)
    return cache, mask, histories


def _decode(batch: KVBatch, ref: _Ref, rows: list[list[torch.Tensor]]) -> None:
    batch.extend_mask()
    new = ref.fresh(batch.rows)  # (L, n, H, D)
    for layer, cache_layer in enumerate(batch.cache.layers):
        kv = new[layer].unsqueeze(2)  # (n, H, 1, D)
        cache_layer.update(kv, -kv)
    for i in range(batch.rows):
        rows[i].append(new[:, i])


def _check(batch: KVBatch, rows: list[list[torch.Tensor]]) -> None:
    assert batch.rows == len(rows)
    if not rows:
        return
    mask = batch.mask
    assert mask.shape[0] == len(rows)
    assert batch.positions().flatten().tolist() == [len(h) for h in rows]
    assert mask.any(dim=0)[0], "the window starts at a column some row uses"
    for layer, cache_layer in enumerate(batch.cache.layers):
        keys, values = cache_layer.keys, cache_layer.values
        assert keys.shape[2] == mask.shape[1]
        for i, hist in enumerate(rows):
            real = mask[i].bool()
            got = keys[i][:, real].permute(1, 0, 2)  # (t, H, D)
            want = torch.stack([h[layer] for h in hist])
            assert torch.equal(got, want), f"row {i} layer {layer}"
            assert torch.equal(values[i][:, real].permute(1, 0, 2), -want)


@pytest.mark.parametrize("seed", range(6))
def test_random_joins_steps_and_removals_keep_every_row_exact(seed, monkeypatch):
    monkeypatch.setattr(kvbatch, "MIN_TIME", 16)  # small buffers: growth and sliding happen
    monkeypatch.setattr(kvbatch, "HEADROOM", 4)
    rng = random.Random(seed)
    ref = _Ref()
    batch = KVBatch(max_rows=6)
    rows: list[list[torch.Tensor]] = []
    for _ in range(120):
        op = rng.random()
        if op < 0.25 or not rows:
            groups = []
            for _ in range(rng.randint(1, 2)):
                cache, mask, hist = _prefill_group(
                    ref, [rng.randint(1, 30) for _ in range(rng.randint(1, 3))]
                )
                groups.append((cache, mask))
                rows.extend(hist)
            batch.join(groups)  # may exceed max_rows: the slots grow
        elif op < 0.4:
            gone = rng.sample(range(len(rows)), rng.randint(1, len(rows)))
            order = batch.remove(gone)
            assert sorted(order) == [i for i in range(len(rows)) if i not in gone]
            rows = [rows[i] for i in order]
        else:
            _decode(batch, ref, rows)
        _check(batch, rows)


def test_emptied_batch_restarts_and_long_rows_grow_the_time_axis(monkeypatch):
    monkeypatch.setattr(kvbatch, "MIN_TIME", 8)
    monkeypatch.setattr(kvbatch, "HEADROOM", 2)
    ref = _Ref()
    batch = KVBatch(max_rows=2)
    cache, mask, rows = _prefill_group(ref, [3, 5])
    batch.join([(cache, mask)])
    for _ in range(40):  # past the initial 8 columns several times over
        _decode(batch, ref, rows)
    _check(batch, rows)
    assert batch.remove([0, 1]) == [] and batch.rows == 0 and batch.mask is None
    cache, mask, rows = _prefill_group(ref, [50])  # longer than the old buffer
    batch.join([(cache, mask)])
    _decode(batch, ref, rows)
    _check(batch, rows)


def test_decode_layer_refuses_more_than_one_token():
    ref = _Ref()
    batch = KVBatch(max_rows=2)
    cache, mask, _ = _prefill_group(ref, [4])
    batch.join([(cache, mask)])
    batch.extend_mask()
    with pytest.raises(ValueError, match="one new token"):
        batch.cache.layers[0].update(torch.zeros(1, HEADS, 2, DIM), torch.zeros(1, HEADS, 2, DIM))
