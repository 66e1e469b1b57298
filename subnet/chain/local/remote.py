"""`HttpNode`: a client of the `dmoe chain` server (JSON over HTTP, websocket for new blocks).

Every request has a timeout; server-side refusals (4xx with the project's error JSON) become
`ChainError`s carrying the server's message, so SDK code sees the same exception type it sees
from a real node.

Reads issued in the same event-loop turn travel as one `batch` request: the SDK fires its
preflight queries with `asyncio.gather` (7 for a SetWeights), and concurrent callers sharing a
client (8 validators in a benchmark, a validator's gateway and its weight loop) wake up together
when their answers arrive, so their next reads coalesce too. Nothing waits for a batch to fill:
a read is sent at the end of the turn that issued it. Submissions and `wait_block` (which may
wait for a block) always go alone. One `aiohttp` session keeps its connections alive.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from bittensor.result import ChainError

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 30.0
# A submission waits for its block: a few block times in timer mode, longer if the chain is busy.
SUBMIT_TIMEOUT_S = 120.0
ALONE = frozenset({"submit", "wait_block"})  # may wait for a block: never batched
MAX_BATCH = 64  # calls per batch request (the server takes up to 256)

_Queued = tuple[str, dict[str, Any], asyncio.Future]


class HttpNode:
    def __init__(self, base_url: str, *, batching: bool = True):
        self.base_url = base_url.rstrip("/")
        self.batching = batching
        self._session: aiohttp.ClientSession | None = None
        self._queue: list[_Queued] = []
        self._sends: set[asyncio.Task] = set()  # strong references to in-flight batch sends
        self.requests = 0  # HTTP requests sent and calls they carried (benchmarks read these)
        self.calls = 0

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(json_serialize=_dumps)
        return self._session

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        if not self.batching or method in ALONE:
            return _unwrap(method, await self._post(method, params))
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)  # after every callback already ready in this turn
        self._queue.append((method, params, future))
        return await future

    def _flush(self) -> None:
        queued, self._queue = self._queue, []
        for start in range(0, len(queued), MAX_BATCH):
            task = asyncio.get_running_loop().create_task(
                self._send(queued[start : start + MAX_BATCH])
            )
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send(self, queued: list[_Queued]) -> None:
        live = [q for q in queued if not q[2].done()]  # a caller that gave up needs no answer
        if not live:
            return
        try:
            if len(live) == 1:  # alone in its turn: the plain request, no batch envelope
                method, params, _ = live[0]
                answers = [await self._post(method, params)]
            else:
                answers = await self._post_batch(live)
        except asyncio.CancelledError:  # the node is closing
            for _, _, future in live:
                future.cancel()
            raise
        except Exception as err:  # noqa: BLE001 - every waiting caller gets the failure
            for _, _, future in live:
                if not future.done():
                    future.set_exception(err)
            return
        for (method, _, future), entry in zip(live, answers, strict=True):
            if future.done():
                continue
            if isinstance(entry, asyncio.CancelledError):
                future.cancel()
                continue
            try:
                if isinstance(entry, Exception):
                    raise entry
                future.set_result(_unwrap(method, entry))
            except Exception as err:  # noqa: BLE001 - the failure belongs to this caller only
                future.set_exception(err)

    async def _post_batch(self, live: list[_Queued]) -> list[Any]:
        calls = [{"method": m, "params": p} for m, p, _ in live]
        try:
            body = await self._post("batch", {"calls": calls})
        except _TooLarge:
            # Calls that each fit the server's request limit but not together: one by one,
            # exactly as they would have gone without batching.
            posts = (self._post(m, p) for m, p, _ in live)
            return await asyncio.gather(*posts, return_exceptions=True)
        if not isinstance(body, list) or len(body) != len(live):
            raise ChainError(f"local chain answered a batch of {len(live)} with {body!r}")
        return body

    async def _post(self, method: str, params: dict[str, Any]) -> Any:
        """POST one request; its `result`, or ChainError for a refusal or an unreachable chain.

        For a batch, the result is the list of per-call entries, unwrapped by `_unwrap`."""
        timeout = SUBMIT_TIMEOUT_S if method in ALONE else READ_TIMEOUT_S
        self.requests += 1
        self.calls += len(params["calls"]) if method == "batch" else 1
        try:
            async with self._sess().post(
                f"{self.base_url}/rpc",
                json={"method": method, "params": params},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                body = await resp.json(content_type=None)
                if resp.status == 413 and method == "batch":
                    raise _TooLarge(method)
                if resp.status != 200:
                    raise _refused(method, body)
                result = body["result"]
        except (TimeoutError, aiohttp.ClientError) as err:
            raise ChainError(f"local chain at {self.base_url} unreachable: {err!r}") from err
        return {"result": result} if method != "batch" else result

    async def heads(self) -> AsyncIterator[int]:
        """New block numbers, from the server's websocket (reconnects if it drops)."""
        while True:
            try:
                async with self._sess().ws_connect(
                    f"{self.base_url}/blocks",
                    heartbeat=10.0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                ) as ws:
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            yield int(msg.json()["number"])
                        elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            break
            except (TimeoutError, aiohttp.ClientError) as err:
                log.warning("block subscription to %s dropped (%r); retrying", self.base_url, err)
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        for task in list(self._sends):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None


class _TooLarge(ChainError):
    """A batch over the server's request size limit (its calls are then sent one by one)."""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _refused(method: str, body: Any) -> ChainError:
    message = body.get("message") if isinstance(body, dict) else str(body)
    return ChainError(f"local chain refused {method}: {message}")


def _unwrap(method: str, entry: Any) -> Any:
    """A call's result from `{"result": ...}`, or its refusal `{"error": {...}}` as ChainError."""
    if isinstance(entry, dict) and "result" in entry:
        return entry["result"]
    error = entry.get("error") if isinstance(entry, dict) else None
    raise _refused(method, error if isinstance(error, dict) else entry)
