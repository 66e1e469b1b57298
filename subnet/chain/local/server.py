"""The `dmoe chain` server: the local chain behind a small JSON protocol over aiohttp.

    POST /rpc      {"method": <ChainApi method>, "params": {...}} -> {"result": ...}
    POST /rpc      {"method": "batch", "params": {"calls": [{"method", "params"}, ...]}}
                   -> {"result": [{"result": ...} | {"error": {error JSON, "status": n}}, ...]}
    GET  /blocks   websocket: {"number": n} for every new block
    GET  /health   {"block": n, "genesis_hash": ...}
    GET  /metrics  Prometheus: head block, subnets, requests by method and status

Refusals are 4xx with the project's error JSON and change nothing: malformed JSON (400
bad_json), an unknown method (404 unknown_method), bad params (400 bad_params), a bad signature
or a stale/replayed extrinsic (401 rejected_extrinsic), an oversized body (413 too_large).
A batch (reads only; `HttpNode` sends the calls one event-loop turn issues together, e.g. the
SDK's parallel preflight queries) answers each call as its own entry, in order; a refused entry
changes nothing and does not affect the others. Big read answers are cached per state version
(`answers.ReadCache`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import weakref
from dataclasses import dataclass

from aiohttp import WSCloseCode, web

from subnet.chain.config import ChainConfig
from subnet.chain.local.answers import ReadCache, Refusal, answer, batch_calls, batch_entry
from subnet.chain.local.api import ChainApi
from subnet.chain.local.chain import LocalChain
from subnet.chain.local.datadir import DataDirLock
from subnet.chain.local.genesis import Genesis
from subnet.chain.local.metrics import ChainMetrics
from subnet.net import error_response
from subnet.preflight import bind

log = logging.getLogger(__name__)

API_KEY = web.AppKey("chain_api", ChainApi)
SOCKETS_KEY = web.AppKey("sockets", weakref.WeakSet)
LIMIT_KEY = web.AppKey("max_request_bytes", int)
METRICS_KEY = web.AppKey("metrics", ChainMetrics)
CACHE_KEY = web.AppKey("read_cache", ReadCache)


def create_app(api: ChainApi, max_request_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_request_bytes)
    app[API_KEY] = api
    app[SOCKETS_KEY] = weakref.WeakSet()
    app[LIMIT_KEY] = max_request_bytes
    app[METRICS_KEY] = metrics = ChainMetrics(api.chain)
    app[CACHE_KEY] = ReadCache()
    app.router.add_get("/metrics", metrics.handler)
    app.router.add_post("/rpc", rpc)
    app.router.add_get("/blocks", blocks)
    app.router.add_get("/health", health)
    app.on_shutdown.append(_close_sockets)
    return app


async def rpc(request: web.Request) -> web.StreamResponse:
    method, response = await _rpc(request)
    request.app[METRICS_KEY].observe(method, response.status)
    return response


async def _rpc(request: web.Request) -> tuple[str, web.StreamResponse]:
    """(metrics label, response): only known methods get a label of their own."""
    api = request.app[API_KEY]
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[LIMIT_KEY]
        return "?", error_response(413, "too_large", f"request body over {limit} bytes")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        # RecursionError: deeply nested JSON ("[[[[...") exhausts the decoder's stack.
        return "?", error_response(400, "bad_json", f"request body is not JSON: {err}")
    if not isinstance(body, dict) or not isinstance(body.get("method"), str):
        return "?", error_response(400, "bad_request", 'expected {"method": str, "params": {...}}')
    method, params = body["method"], body.get("params", {})
    if method == "batch":
        return "batch", await _batch(request.app, params)
    if method not in api.methods:
        return "?", error_response(
            404, "unknown_method", f"unknown method {method!r}", field="method"
        )
    try:
        encoded = await answer(api, request.app[CACHE_KEY], method, params)
    except Refusal as refusal:
        return method, error_response(
            refusal.status, refusal.code, refusal.message, field=refusal.field
        )
    return method, _json(b'{"result":' + encoded + b"}")


async def _batch(app: web.Application, params: object) -> web.StreamResponse:
    try:
        calls = batch_calls(params)
    except Refusal as refusal:
        return error_response(refusal.status, refusal.code, refusal.message, field=refusal.field)
    api, cache, metrics = app[API_KEY], app[CACHE_KEY], app[METRICS_KEY]
    entries = []
    for call in calls:
        label, status, entry = await batch_entry(api, cache, call)
        metrics.observe(label, status)
        entries.append(entry)
    return _json(b'{"result":[' + b",".join(entries) + b"]}")


def _json(body: bytes) -> web.Response:
    # Pre-encoded: cached answers are spliced in as bytes, never decoded and encoded again.
    return web.Response(body=body, content_type="application/json")


async def blocks(request: web.Request) -> web.StreamResponse:
    chain = request.app[API_KEY].chain
    ws = web.WebSocketResponse(heartbeat=10.0)
    await ws.prepare(request)
    request.app[SOCKETS_KEY].add(ws)

    async def pump() -> None:
        seen = chain.block
        while not ws.closed:
            seen = await chain.wait_block(seen)
            await ws.send_json({"number": seen})

    task = asyncio.create_task(pump())
    try:
        async for _ in ws:  # ends when the client or the server's shutdown closes the socket
            pass
    finally:
        task.cancel()
    return ws


async def health(request: web.Request) -> web.StreamResponse:
    info = await request.app[API_KEY].info()
    return web.json_response(info)


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[SOCKETS_KEY]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"chain shutting down")


@dataclass
class ChainServer:
    """The chain plus its HTTP site; `create` wires, `start`/`stop` run and shut down."""

    chain: LocalChain
    config: ChainConfig
    runner: web.AppRunner | None = None
    port: int = 0
    sock: socket.socket | None = None  # bound by `create` before the database is touched
    lock: DataDirLock | None = None

    @classmethod
    def create(cls, config: ChainConfig) -> ChainServer:
        """Validate the genesis, bind the port, lock the data dir, then open the database.

        In that order, a bad genesis, a busy port or a busy data directory leaves nothing
        written (raises GenesisError, PreflightError or DataDirBusy)."""
        genesis = Genesis.load(config.genesis) if config.genesis else None
        sock = bind(config.host, config.port, "--port")
        lock = None
        try:
            lock = DataDirLock.acquire(config.data_dir)
            chain = LocalChain.create(genesis, config.data_dir)
        except BaseException:
            sock.close()
            if lock is not None:
                lock.release()
            raise
        return cls(chain, config, sock=sock, lock=lock)

    async def start(self) -> None:
        app = create_app(ChainApi(self.chain), self.config.max_request_bytes)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()
        if self.sock is not None:
            site: web.BaseSite = web.SockSite(self.runner, self.sock)
        else:
            site = web.TCPSite(self.runner, self.config.host, self.config.port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        self.chain.start(self.config.block_time, instant=self.config.instant)
        log.info(
            "local chain on %s:%d at block %d (block time %.2fs%s)",
            self.config.host, self.port, self.chain.block,
            self.config.block_time or self.chain.genesis.block_time,
            ", instant seal" if self.config.instant else "",
        )  # fmt: skip

    async def stop(self) -> None:
        await self.chain.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.sock is not None:
            self.sock.close()
        self.chain.close()
        if self.lock is not None:
            self.lock.release()
