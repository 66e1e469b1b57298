"""Cheats on what an answer contains. Each is `async def cheat(eng, req, handle)` yielding the
stream the miner sends; `handle` is the honest engine's generation (None for cheats that never
run the model), `eng` the `AdversarialEngine` (its rng, cache, vocabulary, EOS)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from protocol import GenerateChunk, GenerateRequest, GenerateResponse, TokenLogprob, Usage
from subnet.miner.adversary.handle import fake, paced

AD = " Visit cheap-gpus.example for 50% off!"


async def random(eng, req: GenerateRequest, handle):
    ids = [eng.rng.randrange(2, eng.vocab) for _ in range(req.max_tokens)]
    async for item in paced(fake(req, eng.card.model_id, ids)):
        yield item


async def repeat(eng, req: GenerateRequest, handle):
    ids = [eng.rng.randrange(2, eng.vocab)] * req.max_tokens
    async for item in paced(fake(req, eng.card.model_id, ids)):
        yield item


def _stale(old: GenerateResponse, req: GenerateRequest, prompt_tokens: int) -> GenerateResponse:
    n = min(req.max_tokens, len(old.token_ids))
    return replace(
        old,
        request_id=req.request_id,
        token_ids=old.token_ids[:n],
        logprobs=old.logprobs[:n] if req.logprobs else (),
        usage=Usage(prompt_tokens, n),
        finish_reason="length" if n == req.max_tokens else old.finish_reason,
    )


async def replay(eng, req: GenerateRequest, handle):
    honest = await handle.result()
    old = eng.cache[0] if eng.cache else honest
    eng.cache.append(honest)
    async for item in paced(_stale(old, req, honest.usage.prompt_tokens)):
        yield item


async def copycat(eng, req: GenerateRequest, handle):
    """Relays the target miner's answer one request late: another prompt's answer."""
    task = asyncio.create_task(_relay_into_cache(eng, req))
    eng.tasks.add(task)
    task.add_done_callback(eng.tasks.discard)
    if not eng.cache:
        await asyncio.shield(task)  # only the first request waits for its relay
    old = eng.cache[-1]
    async for item in paced(_stale(old, req, old.usage.prompt_tokens)):
        yield item


async def _relay_into_cache(eng, req: GenerateRequest) -> None:
    from subnet.miner.client import generate

    c = eng.config
    eng.cache.append(await generate(eng.relay_client(), c.target_url, c.target_hotkey, req))


async def pad_eos(eng, req: GenerateRequest, handle):
    # Generate three quarters of the answer, end it (EOS), then pad to max_tokens with cheap
    # filler: the bill says max_tokens were generated. (An engine run with ignore_eos does the
    # same.)
    honest = await handle.result()
    keep = max(1, req.max_tokens * 3 // 4)
    ids, lps = list(honest.token_ids[:keep]), list(honest.logprobs[:keep])
    filler = ids[-1] if ids else 2
    for t in [eng.eos] + [filler] * req.max_tokens:
        if len(ids) >= req.max_tokens:
            break
        ids.append(t)
        lps.append(TokenLogprob(t, -0.1))
    resp = replace(
        honest,
        token_ids=tuple(ids),
        logprobs=tuple(lps) if req.logprobs else (),
        finish_reason="length",
        usage=Usage(honest.usage.prompt_tokens, len(ids)),
    )
    async for item in paced(resp):
        yield item


async def lie_usage(eng, req: GenerateRequest, handle):
    async for item in handle:
        if isinstance(item, GenerateResponse):
            n = item.usage.completion_tokens
            item = replace(item, usage=Usage(item.usage.prompt_tokens, min(4096, n * 10 + 7)))
        yield item


async def lie_logprobs(eng, req: GenerateRequest, handle):
    async for item in handle:
        if isinstance(item, GenerateResponse):  # claim near-certainty for every token
            item = replace(
                item, logprobs=tuple(TokenLogprob(lp.token_id, -0.001) for lp in item.logprobs)
            )
        yield item


async def lie_text(eng, req: GenerateRequest, handle):
    """Honest tokens and logprobs, its own text: an advertisement rides along with the answer."""
    async for item in handle:
        if isinstance(item, GenerateChunk) and item.index == 0:
            item = replace(item, text=item.text + AD)
        elif isinstance(item, GenerateResponse):
            item = replace(item, text=item.text + AD)
        yield item


async def stop_early(eng, req: GenerateRequest, handle):
    """One honest token, then `stop` although no stop sequence was asked for or met."""
    honest = await handle.result()
    resp = replace(
        honest,
        token_ids=honest.token_ids[:1],
        logprobs=honest.logprobs[:1],
        text="",
        finish_reason="stop",
        usage=Usage(honest.usage.prompt_tokens, min(1, len(honest.token_ids))),
    )
    async for item in paced(resp):
        yield item


async def short(eng, req: GenerateRequest, handle):
    """Three honest tokens, then an end-of-sequence the model did not choose."""
    honest = await handle.result()
    if len(honest.token_ids) <= 3:
        resp = honest
    else:
        ids = (*honest.token_ids[:3], eng.eos)
        lps = (*honest.logprobs[:3], TokenLogprob(eng.eos, -0.05)) if req.logprobs else ()
        resp = replace(
            honest,
            token_ids=ids,
            logprobs=lps,
            finish_reason="eos",
            usage=Usage(honest.usage.prompt_tokens, len(ids)),
        )
    async for item in paced(resp):
        yield item


async def malformed(eng, req: GenerateRequest, handle):
    yield fake(req, eng.card.model_id, [-1, eng.vocab + 10**6] + [3] * 4)


async def oversized(eng, req: GenerateRequest, handle):
    yield GenerateChunk(req.request_id, 0, (3,), "x" * eng.config.oversized_bytes)
    yield fake(req, eng.card.model_id, [3])


async def honest(eng, req: GenerateRequest, handle):
    """The honest stream (cheats whose lie is elsewhere: a refusal, the card, the weights)."""
    async for item in handle:
        yield item
