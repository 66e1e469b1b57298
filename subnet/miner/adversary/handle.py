"""The stream a cheat answers on, and small builders of made-up answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from protocol import GenerateChunk, GenerateRequest, GenerateResponse, TokenLogprob, Usage


class CheatHandle:
    """Duck-typed GenerationHandle: iterates a coroutine-made stream; `response` at the end."""

    def __init__(self, request_id: str, items: AsyncIterator[GenerateChunk | GenerateResponse]):
        self.request_id = request_id
        self._items = items
        self.response: GenerateResponse | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __aiter__(self) -> AsyncIterator[GenerateChunk | GenerateResponse]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[GenerateChunk | GenerateResponse]:
        async for item in self._items:
            if isinstance(item, GenerateResponse):
                self.response = item
            yield item
            if self.response is not None:
                return

    async def result(self) -> GenerateResponse:
        async for _ in self:
            pass
        assert self.response is not None
        return self.response


def chunks(resp: GenerateResponse) -> list[GenerateChunk]:
    """One chunk per token (text left empty: validators derive it)."""
    return [
        GenerateChunk(resp.request_id, i, (t,), "", resp.logprobs[i : i + 1])
        for i, t in enumerate(resp.token_ids)
    ]


async def paced(resp: GenerateResponse, step_s: float = 0.003):
    """Stream a made-up answer one token per chunk at a decode-like pace (a cheat that wants
    to look fast and honest does not burst)."""
    for chunk in chunks(resp):
        await asyncio.sleep(step_s)
        yield chunk
    yield resp


def fake(req: GenerateRequest, model: str, ids: list[int], lp: float = -0.1) -> GenerateResponse:
    return GenerateResponse(
        request_id=req.request_id,
        model=model,
        token_ids=tuple(ids),
        text="",
        finish_reason="length",
        usage=Usage(8, len(ids)),
        logprobs=tuple(TokenLogprob(t, lp) for t in ids) if req.logprobs else (),
    )
