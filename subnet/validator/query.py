"""Ask one miner one question over signed HTTP and time it with the validator's own clock.

Every failure becomes a `QueryResult` with a status and a reason, never an exception: `busy`
(a `429`; the ledger decides what it costs), `timeout`, `error` (transport or protocol), or
`invalid` (`stream_mismatch`: a final answer that differs from the tokens streamed before it —
users receive the streamed tokens, validators verify the final answer, so the two must be the
same). An `ok` answer held back and released in one burst carries `code="buffered"`: a timing
judgement that a stalled validator can also produce, so it fails the answer (once verified)
without proving a cheat.
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
from subnet.validator.lag import LoopLag

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
    status: str  # ok | timeout | error | busy | invalid
    reason: str = ""  # detail for logs
    code: str = ""  # invalid: the verdict-like reason (buffered, stream_mismatch)
    response: GenerateResponse | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    retry_after_s: float | None = None
    finished_at: float = 0.0
    # When each token of the answer reached us (monotonic seconds): a probe pays for the
    # verified tokens that arrived within its window.
    token_times: tuple[float, ...] = ()


async def query(
    client: SignedClient,
    miner: MinerInfo,
    req: GenerateRequest,
    *,
    timeout_s: float,
    first_token_timeout_s: float,
    lag: LoopLag | None = None,
) -> QueryResult:
    """Stream one generation; TTFT and tokens/s are measured here, not taken from the miner.
    With `lag`, a burst is judged only when this loop was listening while the answer came."""
    t0 = time.monotonic()
    ttft = None
    last_at = t0
    final: GenerateResponse | None = None
    streamed = Assembly()
    times: list[float] = []  # arrival time of each streamed token
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
                elif isinstance(item, GenerateChunk):
                    streamed.add(item)
                    times.extend([last_at] * len(item.token_ids))
                else:
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
    mismatch = streamed.mismatch(final)
    if mismatch:
        return QueryResult(
            miner.uid, "invalid", mismatch, "stream_mismatch", ttft_s=ttft, finished_at=now
        )
    n = len(final.token_ids)
    # Tokens that came only in the final event arrived when it did.
    times = times[:n] + [last_at] * max(0, n - len(times))
    burst = buffered(n, ttft or 0.0, last_at - t0 - (ttft or 0.0))
    code = "buffered" if burst else ""
    if burst and lag is not None and lag.worst(t0, last_at) >= BURST_LISTEN_SHARE * (ttft or 0.0):
        # Our own loop stalled while the miner spoke: no judgement either way — neither a
        # failure nor paid tokens (a buffering miner must not profit from our stalls).
        code = "unjudged"
    # A burst still goes to verification: a wrong answer's own reason is the stronger finding.
    # Tokens per second over the whole exchange, first-token wait included (display).
    tps = n / max(1e-6, now - t0) if n else None
    return QueryResult(
        miner.uid,
        "ok",
        burst,
        code,
        final,
        ttft,
        tps,
        finished_at=now,
        token_times=tuple(times),
    )


class Assembly:
    """The tokens (and claimed logprobs) a stream delivered, chunk by chunk, in order."""

    def __init__(self) -> None:
        self.token_ids: list[int] = []
        self.logprobs: list = []
        self.error = ""

    def add(self, chunk: GenerateChunk) -> None:
        if self.error:
            return
        if chunk.index != len(self.token_ids):
            self.error = f"chunk at index {chunk.index} after {len(self.token_ids)} tokens"
            return
        self.token_ids.extend(chunk.token_ids)
        self.logprobs.extend(chunk.logprobs)

    def mismatch(self, final: GenerateResponse) -> str:
        """Why the final answer is not what was streamed ('' when it is, or nothing streamed)."""
        if self.error:
            return f"stream_mismatch: {self.error}"
        if not self.token_ids:
            return ""
        if tuple(self.token_ids) != final.token_ids:
            return (
                f"stream_mismatch: {len(self.token_ids)} tokens streamed, the final answer "
                f"holds {len(final.token_ids)} others"
            )
        if self.logprobs and tuple(self.logprobs) != final.logprobs:
            return "stream_mismatch: streamed logprobs differ from the final answer's"
        return ""


# A stream whose tokens all arrive in one burst long after the request was sent was buffered
# (to fake tokens/s): honest decoding spreads n tokens over n steps, each comparable to the
# first. Below these figures a client-side stall could look the same, so they are not judged.
BURST_MIN_TOKENS = 8
BURST_MIN_TTFT_S = 0.25
BURST_SPAN_SHARE = 0.05
# ... and only when our own event loop was never late by this share of the wait (see `lag`).
BURST_LISTEN_SHARE = 0.25


def buffered(n_tokens: int, ttft_s: float, span_s: float) -> str:
    """'burst: ...' when the answer after the first token took under 5% of the first token's wait."""
    if n_tokens < BURST_MIN_TOKENS or ttft_s < BURST_MIN_TTFT_S:
        return ""
    if span_s >= BURST_SPAN_SHARE * ttft_s:
        return ""
    return (
        f"burst: {n_tokens} tokens in {span_s * 1e3:.1f} ms after {ttft_s * 1e3:.0f} ms of silence"
    )
