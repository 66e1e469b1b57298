"""OpenAI-compatible gateway on the validator: the whole network as one model for ordinary users.

`POST /v1/chat/completions`, `POST /v1/completions` (stream or not; SSE ends with
`data: [DONE]`) and `GET /v1/models`. Bearer API keys, a token bucket per key (429 with
Retry-After). Each request's domain (see `openai_format`) goes to the router, which orders the
miners for it; the first gets the request, a backup is sent if no token arrives within the hedge
delay (the loser is cancelled), and a miner dying mid-answer is replaced by the next one, which
continues from the text already sent. A share of organic answers is verified like synthetic ones;
a failure bans the miner (exponential backoff) and scores it zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from protocol import GenerateChunk, GenerateRequest, GenerateResponse, ProtocolError, decode_json
from subnet.engine.prompt import encode_prompt
from subnet.miner.client import MinerError, generate_stream
from subnet.net import error_response
from subnet.validator import openai_format as oai
from subnet.validator import router, scoring
from subnet.validator.config import GatewayConfig
from subnet.validator.tasks import DOMAINS
from subnet.validator.verifier import Item

if TYPE_CHECKING:
    from subnet.validator.loop import Validator

log = logging.getLogger(__name__)

UPSTREAM_ERRORS = (MinerError, ProtocolError, aiohttp.ClientError, TimeoutError, ValueError)


class KeyBuckets:
    """Per-key token buckets: `burst` requests at once, refilled at `rpm` per minute."""

    def __init__(self, keys: tuple[str, ...], rpm: float, burst: int):
        self.rate = rpm / 60.0
        self.burst = float(burst)
        self._state = {k: (self.burst, time.monotonic()) for k in keys}

    def known(self, key: str) -> bool:
        return key in self._state

    def take(self, key: str) -> float:
        """0 if admitted, else seconds until a request would be."""
        tokens, at = self._state[key]
        now = time.monotonic()
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._state[key] = (tokens - 1.0, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (1.0 - tokens) / self.rate if self.rate > 0 else 3600.0


class Gateway:
    def __init__(self, validator: Validator, cfg: GatewayConfig, router_cfg: router.RouterConfig):
        self.v = validator
        self.cfg = cfg
        self.router_cfg = router_cfg
        self.bans = router.Bans(router_cfg)
        self.keys = KeyBuckets(cfg.api_keys, cfg.requests_per_minute, cfg.burst)
        self.rng = random.Random()
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port: int | None = None

    # --- lifecycle
    def create_app(self) -> web.Application:
        app = web.Application(client_max_size=self.cfg.max_body_bytes, middlewares=[self._count])
        app.router.add_get("/metrics", self.v.metrics.handler)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/health", lambda _: web.json_response({"ok": True}))
        app.router.add_get("/v1/status", self.status)
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.create_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("gateway on http://%s:%d/v1", host, self.port)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _count(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.v.metrics.gateway.labels(path=_path_label(request), status=str(exc.status)).inc()
            raise
        self.v.metrics.gateway.labels(path=_path_label(request), status=str(response.status)).inc()
        return response

    # --- handlers
    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not key or not self.keys.known(key):
            return error_response(401, "invalid_api_key", "missing or unknown API key (Bearer)")
        wait = self.keys.take(key)
        if wait > 0:
            return error_response(
                429, "rate_limited", "too many requests for this API key", retry_after=wait
            )
        return None

    async def status(self, request: web.Request) -> web.Response:
        """Public, read-only: what this validator knows of each miner (the localnet dashboard,
        `dmoe status`). Nothing here is secret: weights end up on chain anyway."""
        return web.json_response(self.v.status())

    async def models(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        ids = ["auto", *DOMAINS, *sorted({c.model_id for c in self._cards()})]
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "dmoe"} for i in ids]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def _serve(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        denied = self._auth(request)
        if denied is not None:
            return denied
        try:
            raw = await request.read()
            body = decode_json(raw, max_bytes=self.cfg.max_body_bytes)
            req = oai.to_generate(body, chat=chat, max_tokens_cap=self.cfg.max_tokens_cap)
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "body_too_large", "request body too large")
        except ProtocolError as err:
            status = 413 if err.code == "body_too_large" else 400
            return error_response(status, err.code, str(err), field=err.field)
        model = body.get("model") if isinstance(body.get("model"), str) else "auto"
        experts = {c.model_id: c.domains[0] for c in self._cards()}
        domain = oai.request_domain(model, req, experts)
        order = self._order(domain, model if model in experts else None)
        if not order:
            return error_response(
                503, "no_miners", f"no miner can serve {domain!r} right now", retry_after=5
            )
        cid = oai.new_id(chat)
        stream = body.get("stream") is True
        resp: web.StreamResponse | None = None
        pieces: list[str] = []
        finish = "stop"
        used = 0
        usage_prompt = 0
        served_by = -1
        try:
            async for kind, payload in self._generate(req, order, domain):
                if kind == "open":
                    served_by = payload
                elif kind == "text":
                    pieces.append(payload)
                    if stream and payload:
                        if resp is None:
                            resp = await self._open_sse(request, served_by)
                        await _send(
                            resp, oai.chunk(cid, model, chat, payload, None, len(pieces) == 1)
                        )
                else:
                    final, used = payload
                    finish = oai.FINISH[final.finish_reason]
                    usage_prompt = final.usage.prompt_tokens
        except NoMinerLeft as err:
            if resp is None:
                return error_response(502, "upstream_failed", str(err), retry_after=1)
            finish = "stop"  # the stream already started: end it cleanly with what we have
        if not stream:
            return web.json_response(
                oai.completion(cid, model, chat, "".join(pieces), finish, usage_prompt, used),
                headers={"X-Dmoe-Uid": str(served_by)},
            )
        if resp is None:
            resp = await self._open_sse(request, served_by)
        await _send(resp, oai.chunk(cid, model, chat, "", finish, not pieces))
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def _open_sse(self, request: web.Request, uid: int) -> web.StreamResponse:
        # X-Dmoe-Uid: the miner that started the answer (operators and tests read it).
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Dmoe-Uid": str(uid),
            }
        )
        await resp.prepare(request)
        return resp

    # --- routing
    def _cards(self):
        return [m.card for m in self.v.miners.values() if m.card is not None]

    def _order(self, domain: str, model_id: str | None) -> list[int]:
        experts = [
            router.Expert(
                uid=m.uid,
                domains=m.card.domains,
                score=self.v.state.stat(m.uid, domain).ema,
                inflight=self.v.inflight.get(m.uid, 0),
                capacity=m.card.capacity,
                expected_ttft_s=self.v.ttft_ema.get(m.uid),
            )
            for m in self.v.miners.values()
            if m.card is not None and (model_id is None or m.card.model_id == model_id)
        ]
        return router.pick(
            experts, domain, now=time.monotonic(), bans=self.bans, rng=self.rng, cfg=self.router_cfg
        )

    async def _generate(
        self, req: GenerateRequest, order: list[int], domain: str
    ) -> AsyncIterator[tuple[str, object]]:
        """("open", uid) per miner tried, ("text", str) pieces, then ("final", (resp, tokens))."""
        queue = list(order)
        text_so_far = ""
        tokens_so_far = 0
        current = req
        while queue:
            opened = await self._hedged_open(current, queue)
            if opened is None:
                break
            uid, agen, first = opened
            yield "open", uid
            segment_text, segment_tokens = "", 0
            try:
                item = first
                while True:
                    if isinstance(item, GenerateChunk):
                        segment_text += item.text
                        segment_tokens += len(item.token_ids)
                        yield "text", item.text
                    else:
                        assert isinstance(item, GenerateResponse)
                        # A miner may send everything in the final event: pass on the rest.
                        rest = item.text[len(segment_text) :]
                        if rest:
                            yield "text", rest
                        self.bans.success(uid)
                        if current is req:
                            self._maybe_verify(uid, domain, req, item)
                        yield "final", (item, tokens_so_far + len(item.token_ids))
                        return
                    item = await asyncio.wait_for(anext(agen), self.cfg.request_timeout_s)
            except (*UPSTREAM_ERRORS, StopAsyncIteration) as err:
                log.info("uid %d failed mid-answer (%s); failing over", uid, type(err).__name__)
                self.bans.failure(uid, time.monotonic())
                text_so_far += segment_text
                tokens_so_far += segment_tokens
                current = oai.continuation(
                    req, self._rendered(req, uid), text_so_far, tokens_so_far
                )
            finally:
                self.v.inflight[uid] = max(0, self.v.inflight.get(uid, 1) - 1)
                with contextlib.suppress(*UPSTREAM_ERRORS, RuntimeError):
                    await agen.aclose()
        raise NoMinerLeft("every selected miner failed")

    async def _hedged_open(self, req: GenerateRequest, queue: list[int]):
        """Start the first miner; if it is slower than its hedge delay, race a backup."""
        running: dict[asyncio.Task, int] = {}
        while queue or running:
            if queue:
                uid = queue.pop(0)
                running[asyncio.create_task(self._open(uid, req))] = uid
                delay = router.hedge_delay(self.v.ttft_ema.get(uid), self.router_cfg)
            else:
                delay = None
            done, _ = await asyncio.wait(
                running, timeout=delay, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                uid = running.pop(task)
                if task.exception() is None:
                    for loser in running:
                        loser.cancel()
                    for loser, lost_uid in running.items():
                        await _close_loser(loser)
                        self.v.inflight[lost_uid] = max(0, self.v.inflight.get(lost_uid, 1) - 1)
                    return task.result()
                log.info("uid %d could not start (%s)", uid, task.exception())
                self.bans.failure(uid, time.monotonic())
                self.v.inflight[uid] = max(0, self.v.inflight.get(uid, 1) - 1)
        return None

    async def _open(self, uid: int, req: GenerateRequest):
        m = self.v.miners[uid]
        self.v.inflight[uid] = self.v.inflight.get(uid, 0) + 1
        agen = generate_stream(
            self.v.signed,
            m.url,
            m.hotkey,
            req,
            timeout=self.cfg.request_timeout_s,
            read_timeout=self.cfg.request_timeout_s,
        )
        try:
            first = await asyncio.wait_for(anext(agen), self.cfg.request_timeout_s)
        except BaseException:
            with contextlib.suppress(*UPSTREAM_ERRORS, RuntimeError):
                await agen.aclose()
            raise
        return uid, agen, first

    def _rendered(self, req: GenerateRequest, uid: int) -> str:
        if req.prompt is not None:
            return req.prompt
        card = self.v.miners[uid].card
        expert = self.v.verifier.registry.get(card.weights_hash) if card else None
        if expert is None:
            from subnet.engine.prompt import render_messages

            return render_messages(req.messages)
        return expert.tokenizer.decode(encode_prompt(expert.tokenizer, req))

    # --- organic verification
    def _maybe_verify(
        self, uid: int, domain: str, req: GenerateRequest, resp: GenerateResponse
    ) -> None:
        if self.rng.random() >= self.cfg.verify_share:
            return
        m = self.v.miners.get(uid)
        if m is None or m.card is None:
            return
        task = asyncio.create_task(
            self._verify(m, domain, Item(m.card.weights_hash, req, resp, uid))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _verify(self, m, domain: str, item: Item) -> None:
        (verdict,) = await asyncio.to_thread(self.v.verifier.verify_many, [item])
        if verdict.ok:
            return
        log.warning(
            "organic answer of uid %d failed verification: %s %s",
            m.uid,
            verdict.reason,
            verdict.detail,
        )
        self.bans.failure(m.uid, time.monotonic())
        stat = scoring.update(
            self.v.state.stat(m.uid, domain), 0.0, verdict.reason, time.time(), self.v.cfg.scoring
        )
        self.v.state.put(m.uid, m.hotkey, domain, stat)


class NoMinerLeft(RuntimeError):
    pass


async def _close_loser(task: asyncio.Task) -> None:
    with contextlib.suppress(asyncio.CancelledError, *UPSTREAM_ERRORS):
        result = await task
        await result[1].aclose()


async def _send(resp: web.StreamResponse, obj: dict) -> None:
    await resp.write(f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode())


def _path_label(request: web.Request) -> str:
    # The route's canonical path keeps the label set small whatever paths clients send.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"
