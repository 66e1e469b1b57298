"""Client side of btauth/1: an aiohttp session that signs every request and bounds every wait.

Signing uses the hotkey `Keypair` loaded once (about 80 µs a signature) rather than the Wallet,
which would re-read the key file on every call (about 3 ms).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from bittensor import http_auth

from protocol import PROTOCOL_HEADER, PROTOCOL_VERSION


class SignedClient:
    """Signs requests with `hotkey` for a given receiver. Own one per process; close it on exit."""

    def __init__(self, hotkey: Any, session: aiohttp.ClientSession):
        self.hotkey = hotkey
        self.session = session

    @classmethod
    def create(cls, hotkey: Any, *, max_connections: int = 256) -> SignedClient:
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=64)
        return cls(hotkey, aiohttp.ClientSession(connector=connector))

    @property
    def ss58_address(self) -> str:
        return self.hotkey.ss58_address

    def sign(self, method: str, url: str, body: bytes, receiver_ss58: str) -> dict[str, str]:
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return http_auth.sign(
            self.hotkey, method=method, path=target, body=body, receiver_ss58=receiver_ss58
        )

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: str,
        *,
        receiver_ss58: str,
        payload: dict[str, Any] | bytes | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 3.0,
        read_timeout: float | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a signed request; `timeout` bounds the whole exchange, `read_timeout` each read."""
        if isinstance(payload, bytes):
            body = payload
        elif payload is None:
            body = b""
        else:
            body = json.dumps(payload, separators=(",", ":")).encode()
        headers = self.sign(method, url, body, receiver_ss58)
        headers[PROTOCOL_HEADER] = str(PROTOCOL_VERSION)
        if body:
            headers["Content-Type"] = "application/json"
        tm = aiohttp.ClientTimeout(
            total=timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        async with self.session.request(
            method, url, data=body, headers=headers, timeout=tm
        ) as resp:
            yield resp

    async def post_json(
        self, url: str, payload: dict[str, Any], *, receiver_ss58: str, timeout: float = 30.0
    ) -> tuple[int, dict[str, Any]]:
        """POST and decode a JSON reply; non-JSON replies come back as {'error', 'message'}."""
        async with self.request(
            "POST", url, receiver_ss58=receiver_ss58, payload=payload, timeout=timeout
        ) as resp:
            raw = await resp.read()
            try:
                data = json.loads(raw)
            except ValueError:
                data = {"error": "non_json_reply", "message": raw[:200].decode("utf-8", "replace")}
            if not isinstance(data, dict):
                data = {"error": "non_object_reply", "message": str(data)[:200]}
            return resp.status, data

    async def close(self) -> None:
        await self.session.close()
