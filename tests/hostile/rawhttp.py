"""Servers in a background event loop, and a raw HTTP client for sync property tests.

Hypothesis drives sync test functions; the server under test runs in its own thread and loop
(as it would in its own process), and requests go over real sockets with `http.client` or raw
bytes, so malformed HTTP (huge headers, truncated bodies) reaches the real server stack.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from bittensor import http_auth


class Background:
    """An event loop in a daemon thread; `run(coro)` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def is_json_error(self) -> bool:
        try:
            data = self.json()
        except ValueError:
            return False
        return isinstance(data, dict) and bool(data.get("message")) and "error" in data


def request(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, resp.read(), {k: v for k, v in resp.getheaders()})
    finally:
        conn.close()


def signed_headers(
    keypair: Any, method: str, path: str, body: bytes, receiver: str, **kw: Any
) -> dict[str, str]:
    headers = http_auth.sign(
        keypair, method=method, path=path, body=body, receiver_ss58=receiver, **kw
    )
    headers["Content-Type"] = "application/json"
    return headers


def raw_exchange(
    port: int, data: bytes, *, shut_write: bool = True, timeout: float = 10.0
) -> bytes:
    """Send raw bytes (e.g. a truncated request), half-close, and read whatever comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the server answered and closed before taking all of it: read what it said
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def status_of(raw: bytes) -> int | None:
    """The status code of a raw HTTP reply, or None if the server just closed the socket."""
    if not raw.startswith(b"HTTP/1."):
        return None
    return int(raw.split(b" ", 2)[1])
