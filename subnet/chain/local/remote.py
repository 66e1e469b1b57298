"""`HttpNode`: a client of the `dmoe chain` server (JSON over HTTP, websocket for new blocks).

Every request has a timeout; server-side refusals (4xx with the project's error JSON) become
`ChainError`s carrying the server's message, so SDK code sees the same exception type it sees
from a real node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from bittensor.result import ChainError

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 30.0
# A submission waits for its block: a few block times in timer mode, longer if the chain is busy.
SUBMIT_TIMEOUT_S = 120.0


class HttpNode:
    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        timeout = SUBMIT_TIMEOUT_S if method in ("submit", "wait_block") else READ_TIMEOUT_S
        try:
            async with self._sess().post(
                f"{self.base_url}/rpc",
                json={"method": method, "params": params},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200:
                    message = body.get("message") if isinstance(body, dict) else str(body)
                    raise ChainError(f"local chain refused {method}: {message}")
                return body["result"]
        except (TimeoutError, aiohttp.ClientError) as err:
            raise ChainError(f"local chain at {self.base_url} unreachable: {err!r}") from err

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
        if self._session is not None:
            await self._session.close()
            self._session = None
