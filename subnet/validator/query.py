"""Ask one miner one question over signed HTTP and time it with the validator's own clock.

Every failure becomes a `QueryResult` with a status and a reason, never an exception: a bad
miner scores zero with a logged reason, and a `429` is "busy" (no score change, back off).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

import aiohttp

from protocol import ExpertCard, GenerateChunk, GenerateRequest, GenerateResponse, ProtocolError
from subnet.miner.client import MinerError, generate_stream
from subnet.net import SignedClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MinerInfo:
    uid: int
    hotkey: str
    url: str  # http://ip:port
    card: ExpertCard | None = None


@dataclass(frozen=True)
class QueryResult:
    uid: int
    status: str  # ok | timeout | error | busy
    reason: str = ""
    response: GenerateResponse | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    retry_after_s: float | None = None
    finished_at: float = 0.0


async def query(
    client: SignedClient,
    miner: MinerInfo,
    req: GenerateRequest,
    *,
    timeout_s: float,
    first_token_timeout_s: float,
) -> QueryResult:
    """Stream one generation; TTFT and tokens/s are measured here, not taken from the miner."""
    t0 = time.monotonic()
    ttft = None
    last_at = t0
    final: GenerateResponse | None = None
    try:
        async with asyncio.timeout(timeout_s):
            async for item in generate_stream(
                client,
                miner.url,
                miner.hotkey,
                req,
                timeout=timeout_s,
                read_timeout=first_token_timeout_s,
            ):
                if ttft is None:
                    ttft = time.monotonic() - t0
                last_at = time.monotonic()
                if isinstance(item, GenerateResponse):
                    final = item
                elif not isinstance(item, GenerateChunk):
                    raise ProtocolError("unexpected stream item", code="bad_reply")
    except MinerError as err:
        now = time.monotonic()
        if err.status == 429:
            return QueryResult(
                miner.uid,
                "busy",
                err.body.error,
                retry_after_s=err.body.retry_after,
                finished_at=now,
            )
        return QueryResult(
            miner.uid, "error", f"http {err.status} {err.body.error}", finished_at=now
        )
    except TimeoutError:
        return QueryResult(
            miner.uid, "timeout", f"no answer in {timeout_s}s", finished_at=time.monotonic()
        )
    except (aiohttp.ClientError, ProtocolError, json.JSONDecodeError, UnicodeDecodeError) as err:
        return QueryResult(
            miner.uid,
            "error",
            f"{type(err).__name__}: {str(err)[:200]}",
            finished_at=time.monotonic(),
        )
    now = time.monotonic()
    if final is None:
        return QueryResult(miner.uid, "error", "no final response", finished_at=now)
    n = len(final.token_ids)
    burst = buffered(n, ttft or 0.0, last_at - t0 - (ttft or 0.0))
    if burst:
        return QueryResult(miner.uid, "error", burst, ttft_s=ttft, finished_at=now)
    # Tokens per second over the whole exchange, first-token wait included: buffering an answer
    # to release it in one burst then earns nothing (and costs time to first token).
    tps = n / max(1e-6, now - t0) if n else None
    return QueryResult(miner.uid, "ok", "", final, ttft, tps, finished_at=now)


# A stream whose tokens all arrive in one burst long after the request was sent was buffered
# (to fake tokens/s): honest decoding spreads n tokens over n steps, each comparable to the
# first. Below these figures a client-side stall could look the same, so they are not judged.
BURST_MIN_TOKENS = 8
BURST_MIN_TTFT_S = 0.25
BURST_SPAN_SHARE = 0.05


def buffered(n_tokens: int, ttft_s: float, span_s: float) -> str:
    """'burst: ...' when the answer after the first token took under 5% of the first token's wait."""
    if n_tokens < BURST_MIN_TOKENS or ttft_s < BURST_MIN_TTFT_S:
        return ""
    if span_s >= BURST_SPAN_SHARE * ttft_s:
        return ""
    return (
        f"burst: {n_tokens} tokens in {span_s * 1e3:.1f} ms after {ttft_s * 1e3:.0f} ms of silence"
    )
