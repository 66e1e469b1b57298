"""Answers to many requests at once from one engine, outside a server: calibration, tests, tools.

All requests are in flight together, so the answers come out of continuous batching with rows
joining and leaving mid-flight, exactly as a miner under load produces them.
"""

from __future__ import annotations

import asyncio

from protocol import GenerateRequest, GenerateResponse
from subnet.engine.hf import HFEngine
from subnet.engine.loading import LoadedExpert


async def complete_all(
    expert: LoadedExpert,
    reqs: list[GenerateRequest],
    *,
    max_batch: int = 32,
    max_prefill: int = 8,
    drain_timeout: float = 30.0,
) -> list[GenerateResponse]:
    """Every request's final response, in order, from one HFEngine started for them."""
    engine = HFEngine.create(
        expert, max_batch=max_batch, max_queue=len(reqs) + 1, max_prefill=max_prefill
    )
    await engine.start()
    try:
        return list(await asyncio.gather(*(engine.complete(r) for r in reqs)))
    finally:
        await engine.stop(drain_timeout=drain_timeout)
