"""Fuzz every miner endpoint with hostile bodies, signed by an admitted validator so the bytes
reach the parsers: every answer is 200 or a 4xx JSON error, never a 5xx, and the miner keeps
serving exactly what it served before (same greedy output, no leaked batch slots)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.rawhttp import raw_exchange, request, signed_headers, status_of
from tests.hostile.strategies import hostile_bodies

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PROBE = json.dumps({"prompt": "12 + 30 =", "max_tokens": 6, "stream": False}).encode()


def _post(m, key, path: str, body: bytes, **kw):
    headers = signed_headers(key, "POST", path, body, m.hotkey, **kw)
    return request(m.port, "POST", path, body, headers)


def _probe(m, key) -> list[int]:
    reply = _post(m, key, "/v1/generate", PROBE)
    assert reply.status == 200, reply.body[:300]
    return reply.json()["token_ids"]


def _assert_clean(reply) -> None:
    assert reply.status < 500, reply.body[:300]
    if reply.status != 200:
        assert 400 <= reply.status < 500 and reply.is_json_error, (reply.status, reply.body[:300])


GENERATE_FIELDS = ["prompt", "messages", "max_tokens", "temperature", "top_p", "seed", "stop",
                   "logprobs", "top_logprobs", "stream", "request_id", "version"]  # fmt: skip


def test_generate_fuzz(bg_miner, hwallets):
    key = hwallets["val"].hotkey
    before = _probe(bg_miner, key)

    @FUZZ
    @given(body=hostile_bodies(GENERATE_FIELDS, {"prompt": "1 +", "max_tokens": 4}))
    def check(body: bytes) -> None:
        _assert_clean(_post(bg_miner, key, "/v1/generate", body))

    check()
    assert _probe(bg_miner, key) == before
    assert bg_miner.server.engine.active == 0


def test_score_fuzz(bg_miner, hwallets):
    key = hwallets["val"].hotkey

    @FUZZ
    @given(
        body=hostile_bodies(["token_ids", "start", "top_k", "version"], {"token_ids": [5, 6, 7]})
    )
    def check(body: bytes) -> None:
        _assert_clean(_post(bg_miner, key, "/v1/score", body))

    check()
    ok = _post(
        bg_miner, key, "/v1/score", json.dumps({"token_ids": [5, 6, 7], "start": 1}).encode()
    )
    assert ok.status == 200 and len(ok.json()["logprobs"]) == 2


@FUZZ
@given(
    path=st.sampled_from(["/v1/card", "/v1/card?x=1", "/v1/card/../v1/card", "/nope", "/v1/%ff"]),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    body=st.binary(max_size=64),
)
def test_card_and_unknown_routes(bg_miner, hwallets, path, method, body):
    reply = request(
        bg_miner.port,
        method,
        path,
        body,
        signed_headers(hwallets["val"].hotkey, method, path, body, bg_miner.hotkey),
    )
    assert reply.status < 500
    if method == "GET" and path.startswith("/v1/card") and ".." not in path:
        assert reply.status == 200 and reply.json()["model_id"] == "dmoe/tiny-math"


def test_malformed_http_keeps_serving(bg_miner, hwallets):
    key, port = hwallets["val"].hotkey, bg_miner.port
    # Truncated body: Content-Length promises more than arrives, then the client half-closes.
    body = PROBE[:10]
    head = signed_headers(key, "POST", "/v1/generate", PROBE, bg_miner.hotkey)
    lines = [f"{k}: {v}" for k, v in head.items()] + [f"Content-Length: {len(PROBE)}"]
    raw = ("POST /v1/generate HTTP/1.1\r\nHost: x\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode()
    status = status_of(raw_exchange(port, raw + body))
    assert status is None or 400 <= status < 500
    # Huge header, many headers, a header with invalid bytes, garbage request line.
    for junk in (
        b"GET /v1/card HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /v1/card HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n",
        b"GET /v1/card HTTP/1.1\r\nHost: x\r\nX-Bad: \xff\x00\xfe\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"POST /v1/generate HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/generate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        status = status_of(raw_exchange(port, junk))
        assert status is None or 400 <= status < 500, junk[:40]
    # Huge signature header values on a signed path are a 4xx too.
    head["X-Bittensor-Signature"] = "0x" + "ab" * 4000
    reply = request(port, "POST", "/v1/generate", PROBE, head)
    assert 400 <= reply.status < 500
    assert len(_probe(bg_miner, key)) == 6
