"""The gateway's errors in OpenAI's shape, so that every OpenAI client surfaces the message.

`{"error": {"message", "type", "param", "code"}}`: the `openai` client raises
`BadRequestError`, `AuthenticationError`, `NotFoundError`, `RateLimitError`, ... with `.message`,
`.param` and `.code` taken from it. Only the gateway speaks this shape; miners and the local chain
keep dmoe's own `{"error": code, "message": ...}` (`subnet.net.error_response`).
"""

from __future__ import annotations

from aiohttp import web

# OpenAI's `type` per status; the `code` says which case it is.
TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
}


def error_body(status: int, message: str, *, code: str | None, param: str | None = None) -> dict:
    return {
        "error": {
            "message": message,
            "type": TYPES.get(status, "invalid_request_error" if status < 500 else "server_error"),
            "param": param,
            "code": code,
        }
    }


def oai_error(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(round(retry_after))))
    return web.json_response(
        error_body(status, message, code=code, param=param), status=status, headers=headers
    )


def from_http_exception(exc: web.HTTPException, request: web.Request) -> web.Response:
    """aiohttp's own refusals (unknown path, wrong method, body over the limit) as OpenAI errors."""
    codes = {404: "unknown_url", 405: "method_not_allowed", 413: "body_too_large"}
    code = codes.get(exc.status, exc.reason.lower().replace(" ", "_"))
    message = f"{exc.reason}: {request.method} {request.path}"
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    return web.json_response(
        error_body(exc.status, message, code=code), status=exc.status, headers=headers
    )
