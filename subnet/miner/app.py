"""The miner's aiohttp app: thin handlers over the engine, behind btauth/1 and admission.

Order for every POST: body size (413, before reading) → the `X-Dmoe-Protocol` version header
(400, before any signature work) → btauth/1 signature, receiver, freshness and nonce (401) →
JSON + protocol version + field checks (400; the body is parsed only once the sender is
authenticated) → admission from the metagraph snapshot (403) → per-caller token quota (429) →
engine capacity (429 + Retry-After) → engine. `/health` and `/metrics` are public;
`/v1/card` is signed like the rest but not admission-checked (anyone registered may read it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from aiohttp import web

from protocol import (
    GenerateChunk,
    GenerateRequest,
    GenerateResponse,
    ProtocolError,
    ScoreRequest,
    decode_json,
)
from subnet.engine.base import Engine, EngineFull, EngineStopped, RequestRejected
from subnet.miner.admission import (
    AdmissionPolicy,
    MetagraphSnapshot,
    TokenBuckets,
    admit,
    quota,
)
from subnet.miner.config import ServerConfig
from subnet.miner.metrics import MinerMetrics
from subnet.net import CALLER, RAW_BODY, btauth_middleware, error_response

log = logging.getLogger(__name__)

# Scoring is one prefill: charge it a fraction of a generated token per scored token.
SCORE_TOKEN_COST = 0.1


@dataclass
class Gate:
    """Admission state: the current snapshot (swapped by the refresher) and the quota buckets."""

    policy: AdmissionPolicy
    snapshot: MetagraphSnapshot = field(default_factory=MetagraphSnapshot)
    buckets: TokenBuckets = field(default_factory=TokenBuckets)

    def check(self, hotkey: str, cost: float) -> Refusal | None:
        """Admission (403) then the caller's token bucket (429); None means go ahead."""
        decision = admit(self.policy, self.snapshot, hotkey)
        if not decision.allowed:
            return Refusal(403, decision.code, decision.message)
        rate, cap = quota(self.policy, self.snapshot, hotkey)
        wait = self.buckets.take(hotkey, cost, rate, cap)
        if wait == float("inf"):
            return Refusal(
                429, "quota_exceeded", f"cost {cost:.0f} exceeds your quota burst {cap:.0f}"
            )
        if wait > 0:
            return Refusal(
                429,
                "quota_exceeded",
                f"token quota of {rate:.0f}/s used up (stake-weighted); retry later",
                retry_after=wait,
            )
        return None


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str
    retry_after: float | None = None

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, retry_after=self.retry_after)


ENGINE = web.AppKey("engine", Engine)
GATE = web.AppKey("gate", Gate)
METRICS = web.AppKey("metrics", MinerMetrics)
CONFIG = web.AppKey("config", ServerConfig)


def create_app(
    engine: Engine,
    *,
    hotkey_ss58: str,
    config: ServerConfig,
    gate: Gate | None = None,
    metrics: MinerMetrics | None = None,
) -> web.Application:
    """The app for a started engine; `gate` carries the metagraph snapshot (fixed in tests)."""
    app = web.Application(
        middlewares=[btauth_middleware(hotkey_ss58, max_body_bytes=config.max_body_bytes)],
        client_max_size=config.max_body_bytes,
    )
    app[ENGINE] = engine
    app[GATE] = gate or Gate(config.policy)
    app[METRICS] = metrics or MinerMetrics(engine)
    app[CONFIG] = config
    app.router.add_post("/v1/generate", generate)
    app.router.add_post("/v1/score", score)
    app.router.add_get("/v1/card", card)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_view)
    return app


def _parse(request: web.Request, cls):
    try:
        return cls.from_dict(
            decode_json(request[RAW_BODY], max_bytes=request.app[CONFIG].max_body_bytes)
        )
    except ProtocolError as err:
        status = 413 if err.code == "body_too_large" else 400
        return error_response(status, err.code, str(err), field=err.field)


async def generate(request: web.Request) -> web.StreamResponse:
    app, metrics = request.app, request.app[METRICS]
    req = _parse(request, GenerateRequest)
    if isinstance(req, web.Response):
        metrics.reject("generate", req.status, "bad_request")
        return req
    limit = app[CONFIG].max_new_tokens
    if req.max_tokens > limit:
        metrics.reject("generate", 400, "max_tokens")
        return error_response(
            400,
            "max_tokens_too_large",
            f"max_tokens {req.max_tokens} > {limit}",
            field="max_tokens",
        )
    hotkey = request[CALLER].hotkey_ss58
    refused = app[GATE].check(hotkey, req.max_tokens)
    if refused is not None:
        metrics.reject("generate", refused.status, refused.code)
        return refused.response()
    try:
        handle = app[ENGINE].submit(req)
    except EngineFull as err:
        metrics.reject("generate", 429, "at_capacity")
        return error_response(429, "at_capacity", str(err), retry_after=err.retry_after)
    except RequestRejected as err:
        metrics.reject("generate", 400, "rejected")
        return error_response(400, "request_rejected", str(err), field=err.field)
    except EngineStopped as err:
        metrics.reject("generate", 503, "stopping")
        return error_response(503, "stopping", str(err), retry_after=5.0)

    arrived = time.monotonic()
    first: float | None = None
    resp: web.StreamResponse | None = None
    try:
        async for item in handle:
            if first is None:
                first = time.monotonic()
                metrics.ttft.observe(first - arrived)
            if not req.stream:
                continue
            if resp is None:
                resp = web.StreamResponse(
                    headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
                )
                await resp.prepare(request)
            await resp.write(_sse(item))
    except asyncio.CancelledError:
        handle.cancel()  # the client went away: free the batch slot at the next step
        raise
    except ConnectionResetError:
        # A client that leaves mid-stream (a hedging gateway's loser, a validator shutting
        # down) is not an error of ours: free the slot and end quietly.
        handle.cancel()
        log.debug("client left mid-stream")
        metrics.reject("generate", 499, "client_left")
        return resp if resp is not None else web.Response(status=499)
    final = handle.response
    assert final is not None
    _account(app, hotkey, req, final, arrived)
    metrics.requests.labels("generate", "200").inc()
    if resp is None:
        return web.json_response(final.to_dict())
    try:
        await resp.write_eof()
    except ConnectionResetError:
        # The answer is complete; a client (e.g. a hedging gateway) that left before the end
        # of the stream is not an error of ours.
        log.debug("client left before the end of the stream")
    return resp


def _sse(item: GenerateChunk | GenerateResponse) -> bytes:
    data = json.dumps(item.to_dict(), separators=(",", ":"))
    if isinstance(item, GenerateResponse):
        return f"event: done\ndata: {data}\n\n".encode()
    return f"data: {data}\n\n".encode()


def _account(
    app: web.Application, hotkey: str, req: GenerateRequest, final: GenerateResponse, arrived: float
) -> None:
    metrics, gate = app[METRICS], app[GATE]
    n = final.usage.completion_tokens
    metrics.tokens.labels("prompt").inc(final.usage.prompt_tokens)
    metrics.tokens.labels("completion").inc(n)
    elapsed = time.monotonic() - arrived
    if n and elapsed > 0:
        metrics.tokens_per_s.observe(n / elapsed)
    _, cap = quota(gate.policy, gate.snapshot, hotkey)
    gate.buckets.refund(hotkey, req.max_tokens - n, cap)


async def score(request: web.Request) -> web.Response:
    app, metrics = request.app, request.app[METRICS]
    req = _parse(request, ScoreRequest)
    if isinstance(req, web.Response):
        metrics.reject("score", req.status, "bad_request")
        return req
    refused = app[GATE].check(request[CALLER].hotkey_ss58, len(req.token_ids) * SCORE_TOKEN_COST)
    if refused is not None:
        metrics.reject("score", refused.status, refused.code)
        return refused.response()
    try:
        result = await app[ENGINE].score(req)
    except EngineFull as err:
        metrics.reject("score", 429, "at_capacity")
        return error_response(429, "at_capacity", str(err), retry_after=err.retry_after)
    except RequestRejected as err:
        metrics.reject("score", 400, "rejected")
        return error_response(400, "request_rejected", str(err), field=err.field)
    except EngineStopped as err:
        metrics.reject("score", 503, "stopping")
        return error_response(503, "stopping", str(err), retry_after=5.0)
    metrics.tokens.labels("scored").inc(len(req.token_ids))
    metrics.requests.labels("score", "200").inc()
    return web.json_response(result.to_dict())


async def card(request: web.Request) -> web.Response:
    return web.json_response(request.app[ENGINE].card.to_dict())


async def health(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return web.json_response(
        {
            "status": "ok",
            "model": engine.card.model_id,
            "active": engine.active,
            "queue_depth": engine.queue_depth,
            "capacity": engine.capacity,
            "metagraph_block": request.app[GATE].snapshot.block,
        }
    )


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
