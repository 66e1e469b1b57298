"""The engine interface the miner server talks to, and the handle a generation comes back on.

An engine owns one model and batches requests from many callers:

    engine = HFEngine.create(expert, max_batch=32, max_queue=64)
    await engine.start()
    handle = engine.submit(req)          # sync; raises EngineFull or RequestRejected at once
    async for item in handle:            # GenerateChunk ... then one GenerateResponse
        ...
    handle.cancel()                      # client went away: the slot is freed at the next step
    resp = await engine.score(score_req) # ScoreResponse, teacher-forced, one batched forward
    await engine.stop()                  # drain in-flight work, then stop the worker

`engine.generate(req)` is the same as iterating `engine.submit(req)`; `engine.complete(req)`
returns only the final GenerateResponse.

`subnet.engine.vllm_engine.VLLMEngine` implements the same members on vLLM (its logprobs raw,
like `score_batch`'s; text, stops and finish reasons from the same `sequence.Seq` bookkeeping).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Protocol

from protocol import (
    ExpertCard,
    GenerateChunk,
    GenerateRequest,
    GenerateResponse,
    ScoreRequest,
    ScoreResponse,
)


class EngineFull(RuntimeError):
    """The queue is at its bound; the caller should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class RequestRejected(ValueError):
    """The request cannot be served by this expert (too long for its context, ...)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class EngineStopped(RuntimeError):
    """The engine is stopping or stopped and takes no new work."""


class GenerationHandle:
    """One generation's output stream: chunks as they come, then the final response.

    Produced on the worker thread (`push`, `finish` are thread-safe), consumed on the event loop.
    """

    def __init__(self, request_id: str, loop: asyncio.AbstractEventLoop):
        self.request_id = request_id
        self._loop = loop
        self._queue: asyncio.Queue[GenerateChunk | GenerateResponse] = asyncio.Queue()
        self._cancelled = threading.Event()
        self.response: GenerateResponse | None = None

    # --- worker side (thread-safe)
    def push(self, chunk: GenerateChunk) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, chunk)

    def finish(self, response: GenerateResponse) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, response)

    @staticmethod
    def deliver_all(items: list[tuple[GenerationHandle, GenerateChunk | GenerateResponse]]) -> None:
        """Event-loop side of a batched hand-over: one loop wake-up for a whole decode step."""
        for handle, item in items:
            handle._queue.put_nowait(item)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    # --- event-loop side
    def cancel(self) -> None:
        self._cancelled.set()

    def __aiter__(self) -> AsyncIterator[GenerateChunk | GenerateResponse]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[GenerateChunk | GenerateResponse]:
        try:
            while True:
                item = await self._queue.get()
                yield item
                if isinstance(item, GenerateResponse):
                    self.response = item
                    return
        finally:
            # Consumer stopped early (client gone, task cancelled): free the slot.
            if self.response is None:
                self.cancel()

    async def result(self) -> GenerateResponse:
        async for _ in self:
            pass
        assert self.response is not None
        return self.response


class Engine(Protocol):
    card: ExpertCard

    @property
    def queue_depth(self) -> int: ...  # requests waiting for a batch slot

    @property
    def active(self) -> int: ...  # sequences in the running batch

    @property
    def capacity(self) -> int: ...  # max sequences batched at once

    async def start(self) -> None: ...

    async def stop(self, drain_timeout: float = 30.0) -> None: ...

    def submit(self, req: GenerateRequest) -> GenerationHandle: ...

    def generate(self, req: GenerateRequest) -> AsyncIterator[GenerateChunk | GenerateResponse]: ...

    async def complete(self, req: GenerateRequest) -> GenerateResponse: ...

    async def score(self, req: ScoreRequest) -> ScoreResponse: ...
