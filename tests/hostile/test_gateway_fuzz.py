"""Fuzz the validator's OpenAI-compatible gateway (with one real honest miner behind it): hostile
bodies get 200 or a 4xx JSON error, never a 5xx; bad or missing API keys are 401; the gateway and
the miner keep serving the same greedy answer afterwards."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

from subnet.net import SignedClient
from subnet.validator.config import GatewayConfig
from subnet.validator.gateway import Gateway
from subnet.validator.query import MinerInfo
from subnet.validator.router import RouterConfig
from subnet.validator.verifier import ExpertRegistry
from tests.hostile.conftest import MAX_NEW, Running
from tests.hostile.rawhttp import raw_exchange, request, status_of
from tests.hostile.strategies import hostile_bodies
from tests.validator.helpers import make_validator, validator_config

KEY = "sk-hostile"
FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
PROBE = json.dumps({"model": "math", "prompt": "12 + 30 =", "max_tokens": 6, "temperature": 0})


@pytest.fixture(scope="module")
def bg_gateway(bg_miner, hwallets, tiny_experts, tmp_path_factory):
    bg = bg_miner.bg  # same loop as the miner, like a validator and its gateway in one process
    registry = ExpertRegistry.load_dir(next(iter(tiny_experts.values())).parent)
    state = tmp_path_factory.mktemp("gw") / "state.json"

    async def start():
        signed = SignedClient.create(hwallets["val"].hotkey)
        v = make_validator(validator_config(state), signed, registry)
        m = bg_miner.server
        v.set_miners([MinerInfo(1, m.hotkey, m.url, m.engine.card)])
        cfg = GatewayConfig(
            port=0, api_keys=(KEY,), requests_per_minute=1e6, burst=10**6,
            max_body_bytes=64 * 1024, max_tokens_cap=MAX_NEW, verify_share=0.0,
        )  # fmt: skip
        gw = Gateway(v, cfg, RouterConfig(explore=0.0))
        await gw.start("127.0.0.1", 0)
        return gw, signed

    gw, signed = bg.run(start())
    yield Running(bg, gw, gw.port)

    async def stop():
        await gw.stop()
        await signed.close()

    bg.run(stop())


OAI_FIELDS = ["model", "prompt", "messages", "max_tokens", "temperature", "top_p", "seed",
              "stop", "stream", "n", "logprobs", "top_logprobs", "user", "stream_options",
              "tools", "response_format", "logit_bias", "echo"]  # fmt: skip


def _openai_error(reply) -> bool:
    """OpenAI's shape: {"error": {"message", "type", "param", "code"}} with a message."""
    try:
        err = reply.json().get("error")
    except (ValueError, AttributeError):
        return False
    return (
        isinstance(err, dict) and bool(err.get("message")) and {"type", "param", "code"} <= set(err)
    )


def _clean(reply) -> None:
    assert reply.status < 500, reply.body[:300]
    if reply.status != 200:
        assert 400 <= reply.status < 500 and _openai_error(reply), (reply.status, reply.body[:300])


def test_completions_and_chat_fuzz(bg_gateway):
    port = bg_gateway.port
    before = request(port, "POST", "/v1/completions", PROBE.encode(), AUTH).json()
    valid = {"model": "auto", "prompt": "1 +", "max_tokens": 3}

    @FUZZ
    @given(body=hostile_bodies(OAI_FIELDS, valid))
    def completions(body: bytes) -> None:
        _clean(request(port, "POST", "/v1/completions", body, AUTH))

    chat_valid = {
        "model": "auto",
        "messages": [{"role": "user", "content": "2 +"}],
        "max_tokens": 3,
    }

    @FUZZ
    @given(body=hostile_bodies(OAI_FIELDS, chat_valid))
    def chat(body: bytes) -> None:
        _clean(request(port, "POST", "/v1/chat/completions", body, AUTH))

    completions()
    chat()
    after = request(port, "POST", "/v1/completions", PROBE.encode(), AUTH).json()
    assert after["choices"][0]["text"] == before["choices"][0]["text"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": KEY},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic " + KEY},
        {"Authorization": "Bearer " + "x" * 7000},
    ],  # fmt: skip
)
@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions", "/v1/models"])
def test_bad_keys_are_401(bg_gateway, headers, path):
    method = "GET" if path == "/v1/models" else "POST"
    reply = request(bg_gateway.port, method, path, PROBE.encode(), headers)
    assert reply.status == 401 and _openai_error(reply)


def test_malformed_http(bg_gateway):
    port = bg_gateway.port
    for junk in (
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
        + b"\r\nContent-Length: 400\r\n\r\n{\"prompt\": \"1",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
        + b"\r\nContent-Length: 9999999999\r\n\r\n{}",
    ):  # fmt: skip
        status = status_of(raw_exchange(port, junk))
        assert status is None or 400 <= status < 500
    assert request(port, "POST", "/v1/completions", PROBE.encode(), AUTH).status == 200
