"""The model calls of one engine step, with no engine state: a group prefill into a fresh cache,
the batch's decode forward, and the step's read-back of tokens in one device-to-host transfer.

Called on the engine's worker thread, which runs under `torch.inference_mode()`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from subnet.engine.kvbatch import KVBatch
from subnet.engine.sampling import pick_tokens


def cache_kwarg(model) -> str:
    """The forward argument (and output field) that carries the KV cache: transformers 5
    renamed `past_key_values` to `cache` (the old name is deprecated, gone in 5.40)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def position_table_size(model) -> int | float:
    """Rows of a learned absolute-position table (gpt2's `wpe`), else unbounded (RoPE, ALiBi).

    A card may declare a longer context than such a table holds; past it the model indexes out
    of range, so requests must stop there.
    """
    sizes = [
        m.num_embeddings
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Embedding) and ("wpe" in name or "position" in name)
    ]
    return min(sizes) if sizes else float("inf")


def prefill(model, cache_kw: str, prompts: list[list[int]], pad_id: int, device):
    """One forward over left-padded `prompts` (sorted by length, ascending); returns the new
    cache, the padding mask and each row's last-position logits."""
    width = len(prompts[-1])
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[i, width - len(prompt) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    # A plain cache keeps every layer's full history: the model's default one keeps only the
    # last `window - 1` keys of a sliding-window layer (gemma2/3, mistral, phi3), which the
    # batch's shared time axis cannot hold. The decode step's sliding mask hides what lies
    # beyond the window (a row's tokens are contiguous, so columns count positions).
    kw = {cache_kw: DynamicCache(), "use_cache": True, "logits_to_keep": 1}
    if len(prompts) == 1:  # no padding: exactly the model's own single-sequence forward
        out = model(input_ids=ids, **kw)
    else:
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, **kw)
    return getattr(out, cache_kw), mask, out.logits[:, -1, :]


def decode(model, cache_kw: str, batch: KVBatch, last: list[int], device) -> torch.Tensor:
    """One decode step for every row of `batch` (`last`: each row's newest token); logits."""
    ids = torch.tensor(last, dtype=torch.long, device=device)[:, None]
    positions = batch.positions()
    mask = batch.extend_mask()
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        **{cache_kw: batch.cache},
    )
    return out.logits[:, -1, :]


@dataclass(frozen=True)
class Pick:
    """One row's outcome of a step: its token, that token's logprob, the top-k, or not finite."""

    token: int
    logprob: float
    finite: bool
    top: tuple[tuple[int, float], ...]


def read_step(
    logits: torch.Tensor,
    temperatures: list[float],
    top_ps: list[float],
    gens: list[torch.Generator | None],
    top_k: list[int],
) -> list[Pick]:
    """Choose each row's token and read back everything the host needs in one transfer (on a
    GPU each `.tolist()` waits for the queue). Logprobs are of the raw distribution."""
    logits = logits.float()
    # A row whose logits are not finite (a poisoned weight, an overflow in float16) is reported
    # as such; zeroing it first keeps its batch mates' draws valid.
    finite = torch.isfinite(logits).all(dim=-1)
    logits = torch.where(finite[:, None], logits, torch.zeros_like(logits))
    logp = torch.log_softmax(logits, dim=-1)
    toks = pick_tokens(logits, temperatures, top_ps, gens)
    cols = [toks[:, None], logp.gather(1, toks[:, None]), finite[:, None]]
    k = max(top_k)
    if k:
        vals, idx = logp.topk(k, dim=-1)
        cols += [idx, vals]
    # float64 holds token ids and float32 logprobs exactly.
    host = torch.cat([c.double() for c in cols], dim=1).tolist()
    return [
        Pick(
            token=int(r[0]),
            logprob=r[1],
            finite=bool(r[2]),
            top=tuple(zip(map(int, r[3 : 3 + n]), r[3 + k : 3 + k + n], strict=True)),
        )
        for r, n in zip(host, top_k, strict=True)
    ]
