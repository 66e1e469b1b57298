"""OpenAI-compatible gateway on the validator: the whole network as one model for ordinary users.

`POST /v1/chat/completions`, `POST /v1/completions` (stream or not; SSE ends with
`data: [DONE]`; a usage chunk when `stream_options.include_usage`) and `GET /v1/models`. Fields
are honoured or refused with a 400 naming them before any miner is asked (`oai_fields`); every
error has OpenAI's shape (`oai_errors`). Bearer API keys from the flag, the environment or a
reloaded file, each with a token bucket (429 with Retry-After) and its own counters in
`/metrics` (`apikeys`). The learned gate (`validator.gate`) ranks the experts for each prompt
(a named domain: its experts by measured fit), and the router the miners serving them, and the
verified prompts train the gate; the first miner gets the request, a backup is
sent if no token arrives within the hedge delay (the loser is cancelled), and a miner dying
mid-answer is replaced by the next one, which continues from the text already sent.

Users receive only text derived from the streamed token ids with the reference tokenizer
(`text.TextStream`), never a miner's own text, and nothing past the end an honest engine would
stop at; logprobs, when asked, are those of exactly these tokens (`oai_logprobs`). A share of
organic answers (`verify_share`) is verified like synthetic tasks; the final answer must be
exactly the tokens that were streamed. Every outcome goes to the ledger: a failed verification
is a strike and a ban, a refusal within our share counts as one, a completed answer clears only
transport failures — never a cheat ban, and never before its verification has run.
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
from subnet.validator import openai_format as oai
from subnet.validator import router, scoring
from subnet.validator.apikeys import ApiKeys
from subnet.validator.config import GatewayConfig
from subnet.validator.oai_errors import from_http_exception, oai_error
from subnet.validator.oai_logprobs import Logprobs, feed
from subnet.validator.query import Assembly
from subnet.validator.tasks import DOMAINS
from subnet.validator.text import TextStream
from subnet.validator.verifier import Item

if TYPE_CHECKING:
    from subnet.validator.loop import Validator

log = logging.getLogger(__name__)

UPSTREAM_ERRORS = (MinerError, ProtocolError, aiohttp.ClientError, TimeoutError, ValueError)


# Where a request's API key label is kept for the metrics middleware.
KEY_LABEL = web.RequestKey("dmoe_key_label", str)


class Gateway:
    def __init__(self, validator: Validator, cfg: GatewayConfig, router_cfg: router.RouterConfig):
        self.v = validator
        self.ledger = validator.ledger
        self.cfg = cfg
        self.router_cfg = router_cfg
        self.keys = ApiKeys.create(cfg)
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
            if exc.status < 400:
                raise
            response = from_http_exception(exc, request)  # 404, 405, 413 in OpenAI's shape
        status = str(response.status)
        self.v.metrics.gateway.labels(path=_path_label(request), status=status).inc()
        label = request.get(KEY_LABEL)
        if label is not None:
            self.v.metrics.key_requests.labels(key=label, status=status).inc()
        return response

    # --- handlers
    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        label = self.keys.label(key) if key else None
        if label is None:
            return oai_error(401, "invalid_api_key", "missing or unknown API key (Bearer)")
        request[KEY_LABEL] = label
        wait = self.keys.take(key)
        if wait > 0:
            return oai_error(
                429, "rate_limit_exceeded", "too many requests for this API key", retry_after=wait
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
            ask = oai.parse(body, chat=chat, max_tokens_cap=self.cfg.max_tokens_cap)
        except web.HTTPRequestEntityTooLarge:
            return oai_error(413, "body_too_large", "request body too large")
        except ProtocolError as err:
            status = 413 if err.code == "body_too_large" else 400
            return oai_error(status, err.code, str(err), param=err.field)
        req = ask.req
        model = body.get("model") if isinstance(body.get("model"), str) else "auto"
        experts = {c.model_id: c.domains[0] for c in self._cards()}
        domain = oai.request_domain(model, req, experts)
        text = None if model in DOMAINS else oai.prompt_text(req)  # a named domain: its experts
        order = self._order(domain, model if model in experts else None, req.max_tokens, text)
        if not order:
            return oai_error(
                503, "no_miners", f"no miner can serve {domain!r} right now", retry_after=5
            )
        reply = oai.Reply(ask, chat=chat, model=model)
        resp: web.StreamResponse | None = None
        finish, usage_prompt, used, served_by = "stop", 0, 0, -1
        top = ask.top_logprobs if ask.logprobs else None
        sent: set[int] = set()  # every miner that saw this prompt
        try:
            async for kind, payload in self._generate(req, order, top, sent):
                if kind == "open":
                    served_by = payload
                elif kind == "text":
                    chunk = reply.add(*payload)
                    if chunk is not None:
                        if resp is None:
                            resp = await self._open_sse(request, served_by)
                        await _send(resp, chunk)
                else:
                    finish, usage_prompt, used = payload
        except NoMinerLeft as err:
            if resp is None:
                return oai_error(502, "upstream_failed", str(err), retry_after=1)
            finish, used = "stop", err.used  # the stream already started: end it cleanly
        finally:
            if sent:  # what users send is what tasks are made of (subnet.validator.traffic)
                self.v.traffic.observe(req, domain, sent, time.time())
        self._count_tokens(request, usage_prompt, used)
        if not ask.stream:
            return web.json_response(
                reply.completion(finish, usage_prompt, used),
                headers={"X-Dmoe-Uid": str(served_by)},
            )
        if resp is None:
            resp = await self._open_sse(request, served_by)
        for obj in reply.last_chunks(finish, usage_prompt, used):
            await _send(resp, obj)
        await resp.write(b"data: [DONE]\n\n")
        return resp

    def _count_tokens(self, request: web.Request, prompt: int, completion: int) -> None:
        tokens = self.v.metrics.key_tokens
        tokens.labels(key=request[KEY_LABEL], kind="prompt").inc(prompt)
        tokens.labels(key=request[KEY_LABEL], kind="completion").inc(completion)

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
        return [
            m.card for uid, m in self.ledger.miners.items() if self.ledger.expert(uid) is not None
        ]

    def _order(
        self, domain: str, model_id: str | None, max_tokens: int = 1, text: str | None = None
    ) -> list[int]:
        """Miners to try: a named model's, a named domain's experts by measured fit, or (the
        `auto` model) the experts the learned gate ranks for the prompt `text`, best first."""
        candidates = self.ledger.candidates(model_id, max_tokens)
        if model_id is not None:
            preference = sorted({c.expert for c in candidates})
        elif text is None:
            preference = self.ledger.preference(domain)
        else:
            preference = self.v.route(text)
        if preference:
            self.ledger.note_demand(preference[0])  # what the user asked for, served or not
        return router.pick(
            candidates,
            preference,
            now=time.monotonic(),
            bans=self.ledger.bans,
            rng=self.rng,
            cfg=self.router_cfg,
        )

    async def _generate(
        self,
        req: GenerateRequest,
        order: list[int],
        top: int | None = None,
        sent: set[int] | None = None,
    ) -> AsyncIterator[tuple[str, object]]:
        """("open", uid) per miner tried, ("text", (str, [TokenInfo])) pieces of derived text
        (with their tokens' logprobs when `top` is not None), then
        ("final", (openai finish reason, prompt tokens, completion tokens))."""
        queue = list(order)
        text_so_far = ""
        tokens_so_far = 0
        current = req
        while queue:
            opened = await self._hedged_open(current, queue, sent)
            if opened is None:
                break
            uid, agen, first, claim = opened
            yield "open", uid
            derived = self._text_stream(uid, current)
            lps = None if top is None else Logprobs(derived, top, len(text_so_far))
            streamed = Assembly()
            try:
                item = first
                while True:
                    if isinstance(item, GenerateChunk):
                        streamed.add(item)
                        out = feed(derived, lps, item.token_ids, item.logprobs)
                        if out[0] or out[1]:
                            yield "text", out
                    else:
                        assert isinstance(item, GenerateResponse)
                        # Everything may have come in the final event.
                        ids = () if streamed.token_ids else item.token_ids
                        text, tokens = feed(derived, lps, ids, item.logprobs[: len(ids)])
                        text += derived.finish()
                        tokens += lps.take(final=True) if lps is not None else []
                        if text or tokens:
                            yield "text", (text, tokens)
                        self.ledger.transport_success(uid)
                        self._after_answer(uid, current, item, streamed, organic=current is req)
                        n = len(derived.ids)
                        finish = "length" if derived.end == "length" else "stop"
                        yield "final", (finish, item.usage.prompt_tokens, tokens_so_far + n)
                        return
                    item = await asyncio.wait_for(anext(agen), self.cfg.request_timeout_s)
            except (*UPSTREAM_ERRORS, StopAsyncIteration) as err:
                log.info("uid %d failed mid-answer (%s); failing over", uid, type(err).__name__)
                self._upstream_failed(uid, err)
                text_so_far += derived.text[: derived.sent]
                tokens_so_far += len(derived.ids)
                current = oai.continuation(
                    req, self._rendered(req, uid), text_so_far, tokens_so_far
                )
            finally:
                claim.close()
                with contextlib.suppress(*UPSTREAM_ERRORS, RuntimeError):
                    await agen.aclose()
        raise NoMinerLeft("every selected miner failed", tokens_so_far)

    def _text_stream(self, uid: int, req: GenerateRequest) -> TextStream:
        expert = self.v.verifier.registry.get(self.ledger.expert(uid) or "")
        if expert is None:  # routed miners serve verifiable experts; this is a bug, not input
            raise RuntimeError(f"uid {uid} serves no reference expert")
        return TextStream(expert.tokenizer, expert.eos_ids, req.stop, req.max_tokens)

    async def _hedged_open(
        self, req: GenerateRequest, queue: list[int], sent: set[int] | None = None
    ):
        """Start the first miner; if it is slower than its hedge delay, race a backup. `sent`
        collects every miner that received the request (they saw the user's prompt)."""
        running: dict[asyncio.Task, int] = {}
        while queue or running:
            if queue:
                uid = queue.pop(0)
                running[asyncio.create_task(self._open(uid, req))] = uid
                if sent is not None:
                    sent.add(uid)
                delay = router.hedge_delay(self.ledger.expected_ttft(uid), self.router_cfg)
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
                    for loser in running:
                        await _close_loser(loser)
                    return task.result()
                log.info("uid %d could not start (%s)", uid, task.exception())
                self._upstream_failed(uid, task.exception())
        return None

    async def _open(self, uid: int, req: GenerateRequest):
        m = self.ledger.miners[uid]
        within = self.ledger.inflight(uid) < self.ledger.fair_share(uid)
        claim = contextlib.ExitStack()
        claim.enter_context(self.ledger.claim(uid))
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
        except BaseException as err:
            claim.close()
            with contextlib.suppress(*UPSTREAM_ERRORS, RuntimeError):
                await agen.aclose()
            if isinstance(err, MinerError) and err.status == 429:
                raise Refused(uid, err.body.retry_after, within) from err
            raise
        return uid, agen, first, claim

    def _upstream_failed(self, uid: int, err: BaseException | None) -> None:
        """A miner could not serve: a refusal within our share or a transport failure is a
        failed sample; either way the router avoids it for a while."""
        if isinstance(err, Refused):
            self.ledger.refusal(uid, err.retry_after, within_share=err.within_share)
            if err.within_share:
                log.info("uid %d organic scored 0: refused (429 within our share)", uid)
            return
        self.ledger.transport_failure(uid)
        reason = "timeout" if isinstance(err, TimeoutError) else "error"
        log.info("uid %d organic scored 0: %s %s", uid, reason, type(err).__name__)
        self.ledger.record(uid, [scoring.Sample(reason)])

    def _rendered(self, req: GenerateRequest, uid: int) -> str:
        if req.prompt is not None:
            return req.prompt
        expert = self.v.verifier.registry.get(self.ledger.expert(uid) or "")
        if expert is None:
            from subnet.engine.prompt import render_messages

            return render_messages(req.messages)
        return expert.tokenizer.decode(encode_prompt(expert.tokenizer, req))

    # --- organic answers count like tasks
    def _after_answer(
        self,
        uid: int,
        req: GenerateRequest,
        resp: GenerateResponse,
        streamed: Assembly,
        *,
        organic: bool,
    ) -> None:
        """A stream that contradicts its final answer is a cheat at once; otherwise a share of
        first answers (a failover continuation is not the user's request) is verified."""
        mismatch = streamed.mismatch(resp)
        if mismatch:
            log.warning("uid %d organic scored 0: stream_mismatch %s", uid, mismatch)
            self.ledger.record(uid, [scoring.Sample("stream_mismatch")])
            return
        if not organic or self.rng.random() >= self.cfg.verify_share:
            return
        h = self.ledger.expert(uid)
        if h is None:
            return
        task = asyncio.create_task(self._verify(uid, Item(h, req, resp, uid)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _verify(self, uid: int, item: Item) -> None:
        (verdict,) = await asyncio.to_thread(self.v.verifier.verify_many, [item])
        self.v.metrics.verdicts.labels(reason=verdict.reason).inc()
        if not verdict.ok:  # the loop's log format: localnet summaries count these
            log.warning("uid %d organic scored 0: %s %s", uid, verdict.reason, verdict.detail)
        else:  # what users ask is what the gate must learn to route (the loop trains it)
            self.v.gate_trainer.offer(oai.prompt_text(item.request))
        # Counted whatever domain it was routed under; a failure is a strike and a ban.
        greedy = item.request.temperature == 0
        sample = scoring.Sample(verdict.reason, stats=verdict.stats, greedy=greedy)
        self.ledger.record(uid, [sample])


class Refused(Exception):
    """A miner answered 429 before the stream began."""

    def __init__(self, uid: int, retry_after: float | None, within_share: bool):
        super().__init__(f"uid {uid} refused (429)")
        self.retry_after = retry_after
        self.within_share = within_share


class NoMinerLeft(RuntimeError):
    def __init__(self, message: str, used: int = 0):
        super().__init__(message)
        self.used = used  # completion tokens already taken (a stream that started ends with them)


async def _close_loser(task: asyncio.Task) -> None:
    with contextlib.suppress(asyncio.CancelledError, Refused, *UPSTREAM_ERRORS):
        result = await task
        result[3].close()
        await result[1].aclose()


async def _send(resp: web.StreamResponse, obj: dict) -> None:
    await resp.write(f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode())


def _path_label(request: web.Request) -> str:
    # The route's canonical path keeps the label set small whatever paths clients send.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"
