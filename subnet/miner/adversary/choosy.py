"""Cheats on *which* requests get honest work: timing games, refusals, and telling tasks from
users. `refusal(eng, req)` says whether the miner answers `429` (before any work); the stream
cheats follow the `content` module's shape.

`looks_like_task` is what a rational miner would build from the validator's public code: the
task generator's field set (max_tokens from a short list, temperatures 0/0.7/1.0, no stop
sequences, a seed exactly when sampling) and its public templates (arithmetic drills, template
code with nonce-suffixed identifiers, template prose). Everything else is taken for a user.
"""

from __future__ import annotations

import asyncio
import re

from protocol import GenerateRequest, GenerateResponse

_TASK_MAX_TOKENS = frozenset({16, 32, 48, 64})
_TASK_SAMPLING = frozenset({(0.0, 1.0), (0.7, 1.0), (0.7, 0.95), (1.0, 1.0), (1.0, 0.95)})
_MATH_DRILL = re.compile(r"^(\d+ [-+] \d+ = -?\d+\n){2,}", re.M)
_NONCE_IDENT = re.compile(r"\b[a-z_]+_[a-z]{2}\d{1,2}\b|\b[A-Z][a-z]+[A-Z][a-z]\d{1,2}\b")
_TEMPLATE_PROSE = re.compile(
    r"^(Dear [A-Z]\w+, thank you|Once upon a time, in a|Here is a short summary of the meeting"
    r"|The report on the|My favourite thing about|In \d{4}, the people of)"
)


def looks_like_task(req: GenerateRequest) -> bool:
    """The cheater's guess: a validator's synthetic task (True) or a user's request."""
    fields = (
        req.max_tokens in _TASK_MAX_TOKENS
        and not req.stop
        and req.top_logprobs == 0
        and (req.temperature, req.top_p) in _TASK_SAMPLING
        and (req.seed is None) == (req.temperature == 0.0)
    )
    if req.messages is not None:
        if len(req.messages) != 1 or req.messages[0].role != "user":
            return False
        text = req.messages[0].content
    else:
        text = req.prompt or ""
    template = bool(
        _MATH_DRILL.search(text) or _NONCE_IDENT.search(text) or _TEMPLATE_PROSE.search(text)
    )
    return fields and template


def refusal(eng, req: GenerateRequest) -> bool:
    """Whether this cheat answers 429 to `req` (a refusal costs it nothing to produce)."""
    name = eng.config.name
    if name == "refuse_after":
        eng.answered += 1
        return eng.answered > eng.config.honest_requests
    if name == "refuse_users":
        return not looks_like_task(req)
    if name == "refuse_greedy":
        return req.temperature == 0.0
    return False


async def burst(eng, req: GenerateRequest, handle):
    from subnet.miner.adversary.handle import chunks

    honest = await handle.result()  # hold everything back, then send it in one burst
    for chunk in chunks(honest):
        yield chunk
    yield honest


async def slow_drip(eng, req: GenerateRequest, handle):
    async for item in handle:
        await asyncio.sleep(eng.config.drip_s)
        yield item


async def hang(eng, req: GenerateRequest, handle):
    from subnet.miner.adversary.handle import fake

    await asyncio.sleep(eng.config.hang_s)
    yield fake(req, eng.card.model_id, [3])


async def selective(eng, req: GenerateRequest, handle):
    """Honest work for what looks like a task; the cheap model for everyone else."""
    if looks_like_task(req):
        async for item in handle:
            yield item
        return
    handle.cancel()
    async for item in eng.alt.submit(req):
        yield item


async def noisy_sampled(eng, req: GenerateRequest, handle):
    """refuse_greedy: greedy requests were refused; sampled ones get the noisy weights, with
    that model's own (true) logprobs."""
    handle.cancel()
    async for item in eng.alt.submit(req):
        yield item


async def sybil(eng, req: GenerateRequest, handle):
    """A second hotkey on the same engine: relays each request, in real time, to the operator's
    other miner (which admits it) and streams its answer back unchanged."""
    from subnet.miner.client import generate_stream

    handle.cancel()
    c = eng.config
    async for item in generate_stream(
        eng.relay_client(), c.target_url, c.target_hotkey, req, timeout=60.0, read_timeout=30.0
    ):
        if isinstance(item, GenerateResponse):
            yield item
            return
        yield item
