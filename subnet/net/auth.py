"""Server side of btauth/1: an aiohttp middleware that bounds, reads and verifies every request.

Order follows the subnet convention "reject cheap → verify signature and nonce → (handler:
prioritize → do the work)": an oversized body is refused from its Content-Length before it is
read, and another protocol version (the `X-Dmoe-Protocol` header every signed client sends)
before any signature work; then `bittensor.http_auth.verify` checks shape, receiver binding, freshness, signature and
replay. The handler receives the authenticated `Caller` and the raw body under typed keys.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from bittensor import http_auth

from protocol import (
    MAX_BODY_BYTES,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    ProtocolError,
    check_version_header,
)

log = logging.getLogger(__name__)

CALLER = web.RequestKey("dmoe.caller", http_auth.Caller)  # the authenticated sender
RAW_BODY = web.RequestKey("dmoe.raw_body", bytes)  # body exactly as received (what was signed)

# Freshness window: a signed request older than this is stale, newer than now + skew is refused.
MAX_AGE_S = 10.0
ALLOWED_SKEW_S = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    retry_after: float | None = None,
    field: str | None = None,
) -> web.Response:
    """The one error shape every dmoe server answers with (protocol.ErrorBody)."""
    body: dict[str, object] = {"error": code, "message": message}
    headers = {}
    if retry_after is not None:
        body["retry_after"] = retry_after
        headers["Retry-After"] = str(max(1, int(round(retry_after))))
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, headers=headers)


def btauth_middleware(
    own_hotkey_ss58: str,
    *,
    public_paths: Iterable[str] = ("/health", "/metrics"),
    max_body_bytes: int = MAX_BODY_BYTES,
    nonce_store: http_auth.NonceStore | None = None,
    max_age_s: float = MAX_AGE_S,
    allowed_skew_s: float = ALLOWED_SKEW_S,
) -> Callable:
    """Build the middleware for a server whose hotkey is `own_hotkey_ss58`.

    Requests to `public_paths` skip authentication (health checks, Prometheus scrapes). The nonce
    store keeps (hotkey, nonce) pairs for longer than the freshness window, so a replay inside
    the window is caught and one outside it is already stale.
    """
    public = frozenset(public_paths)
    store = nonce_store or http_auth.InMemoryNonceStore(retention=(max_age_s + allowed_skew_s) * 2)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public:
            return await handler(request)
        length = request.content_length
        if length is not None and length > max_body_bytes:
            return error_response(
                413, "body_too_large", f"body is {length} bytes; the limit is {max_body_bytes}"
            )
        try:  # another protocol version is refused before any signature work
            check_version_header(
                request.headers.get(PROTOCOL_HEADER), PROTOCOL_VERSION, PROTOCOL_HEADER
            )
        except ProtocolError as err:
            return error_response(400, err.code, str(err), field=err.field)
        try:
            raw = await _read_bounded(request, max_body_bytes)
        except ValueError as err:
            return error_response(413, "body_too_large", str(err))
        try:
            caller = http_auth.verify(
                request.headers,
                raw,
                method=request.method,
                path=request.path_qs,
                self_hotkey_ss58=own_hotkey_ss58,
                max_age=max_age_s,
                allowed_skew=allowed_skew_s,
                nonce_store=store,
            )
        except http_auth.AuthError as err:
            log.debug("auth rejected %s %s: %s", request.method, request.path, err)
            return error_response(401, type(err).__name__, str(err))
        request[CALLER] = caller
        request[RAW_BODY] = raw
        return await handler(request)

    return middleware


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    # Chunked bodies have no Content-Length: count as we read so a liar cannot exhaust memory.
    chunks = []
    total = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise ValueError(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
