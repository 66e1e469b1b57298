"""The official `openai` client through every parameter the gateway supports and every one it
refuses, against a real gateway in front of real miners: usage in streams, logprobs in OpenAI's
shapes (streamed or not, from the tokens the text was derived from), OpenAI's error shape with
`param`, refusals before any miner is asked, and keys from a reloaded file counted per key."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from subnet.validator.config import GatewayConfig
from subnet.validator.gateway import Gateway
from subnet.validator.router import RouterConfig
from subnet.validator.scoring import Tally
from tests.validator.helpers import make_validator, random_tokens, validator_config

KEY = "sk-compat-1"
CODE = [{"role": "user", "content": "def add(a, b):\n    return"}]


@pytest.fixture
async def served(tmp_path, registry, by_domain, mwallets, signed, start_miner):
    """A gateway before an honest code miner (uid 1) and an honest math miner (uid 2)."""
    code_server, code = await start_miner(by_domain["code"], mwallets[0], uid=1)
    _, math = await start_miner(by_domain["math"], mwallets[1], uid=2)
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([code, math])
    gw = await _gateway(v)
    yield gw, code_server
    await gw.stop()


async def _gateway(v, **cfg) -> Gateway:
    defaults = dict(port=0, api_keys=(KEY,), verify_share=0.0, requests_per_minute=1e6, burst=1000)
    defaults.update(cfg)
    gw = Gateway(v, GatewayConfig(**defaults), RouterConfig(explore=0.0))
    await gw.start("127.0.0.1", 0)
    return gw


def _client(gw, key=KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{gw.port}/v1", api_key=key, max_retries=0, timeout=30
    )


def _generated(server) -> float:
    value = server.metrics.registry.get_sample_value(
        "dmoe_miner_requests_total", {"endpoint": "generate", "status": "200"}
    )
    return value or 0.0


async def test_usage_and_logprobs_streamed_and_not(served):
    gw, _ = served
    client = _client(gw)
    ask = dict(model="code", messages=CODE, max_tokens=12, temperature=0)
    whole = await client.chat.completions.create(**ask, logprobs=True, top_logprobs=2)
    content = whole.choices[0].message.content
    lps = whole.choices[0].logprobs.content
    assert content and "".join(t.token for t in lps) == content
    assert b"".join(bytes(t.bytes) for t in lps) == content.encode()
    for t in lps:  # greedy: the chosen token is the likeliest alternative
        assert len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob
        assert t.logprob == pytest.approx(t.top_logprobs[0].logprob, abs=1e-4) and t.logprob <= 0
    assert len(lps) <= whole.usage.completion_tokens

    stream = await client.chat.completions.create(
        **ask, logprobs=True, top_logprobs=2, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    streamed = [t for c in chunks[:-1] if c.choices[0].logprobs for t in c.choices[0].logprobs.content]  # fmt: skip
    assert text == content and [t.token for t in streamed] == [t.token for t in lps]
    assert [t.logprob for t in streamed] == pytest.approx([t.logprob for t in lps], abs=1e-4)

    plain = await client.chat.completions.create(**ask)  # asked for nothing: as before
    assert plain.choices[0].message.content == content and plain.choices[0].logprobs is None
    assert [c async for c in await client.chat.completions.create(**ask, stream=True)][-1].usage is None  # fmt: skip

    done = await client.completions.create(
        model="math", prompt="12 + 7 =", max_tokens=8, temperature=0, logprobs=3
    )
    lp, text = done.choices[0].logprobs, done.choices[0].text
    assert "".join(lp.tokens) == text and len(lp.token_logprobs) == len(lp.tokens)
    assert lp.text_offset == [sum(map(len, lp.tokens[:i])) for i in range(len(lp.tokens))]
    for tok, top in zip(lp.tokens, lp.top_logprobs, strict=True):
        assert tok in top and 3 <= len(top) <= 4  # the chosen token, as OpenAI, is included
    tstream = await client.completions.create(
        model="math", prompt="12 + 7 =", max_tokens=8, temperature=0, logprobs=3, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    tchunks = [c async for c in tstream]
    assert "".join(t for c in tchunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.tokens) == text  # fmt: skip
    assert tchunks[-1].usage.completion_tokens == done.usage.completion_tokens == 8


async def test_a_stop_sequence_ends_text_and_logprobs(served):
    gw, _ = served
    client = _client(gw)
    free = await client.completions.create(
        model="math", prompt="12 + 7 =", max_tokens=12, temperature=0
    )
    text = free.choices[0].text
    cut = text[len(text) // 2 :][:2]  # a stop sequence the answer contains
    done = await client.completions.create(
        model="math", prompt="12 + 7 =", max_tokens=12, temperature=0, stop=[cut], logprobs=0
    )
    assert done.choices[0].text == text[: text.index(cut)]
    assert "".join(done.choices[0].logprobs.tokens) == done.choices[0].text


REFUSED_CHAT = [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logit_bias": {"10": 5}}, "logit_bias"),
    ({"n": 2}, "n"),
    ({"frequency_penalty": 1.0}, "frequency_penalty"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"extra_body": {"top_k": 4}}, "top_k"),
]
REFUSED_TEXT = [({"n": 3}, "n"), ({"echo": True}, "echo"), ({"best_of": 2}, "best_of")]


async def test_refusals_name_the_field_before_any_miner_is_asked(served):
    gw, code_server = served
    client = _client(gw)
    before = _generated(code_server)
    for extra, param in REFUSED_CHAT:
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model="code", messages=CODE, max_tokens=4, **extra)
        assert err.value.param == param and param in err.value.message
        assert err.value.code == "unsupported_parameter" or param in ("top_logprobs", "stream_options")  # fmt: skip
    for extra, param in REFUSED_TEXT:
        with pytest.raises(openai.BadRequestError) as err:
            await client.completions.create(model="code", prompt="import", max_tokens=4, **extra)
        assert err.value.param == param
    assert _generated(code_server) == before  # no miner was asked

    # The values that ask for nothing are accepted, and change nothing.
    ask = dict(model="code", messages=CODE, max_tokens=8, temperature=0)
    plain = await client.chat.completions.create(**ask)
    same = await client.chat.completions.create(
        **ask, n=1, tools=[], response_format={"type": "text"}, logit_bias={},
        frequency_penalty=0, presence_penalty=0, user="u-1", seed=3, top_p=1.0,
    )  # fmt: skip
    assert same.choices[0].message.content == plain.choices[0].message.content


async def test_errors_in_openai_shape(served, tmp_path, registry, signed, by_domain, mwallets, start_scripted):  # fmt: skip
    gw, _ = served
    with pytest.raises(openai.AuthenticationError) as err:
        await _client(gw, key="sk-wrong").models.list()
    assert err.value.code == "invalid_api_key" and "API key" in err.value.message
    url = f"http://127.0.0.1:{gw.port}"
    auth = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession() as s:
        for method, path, data, status in [
            ("POST", "/v1/embeddings", b"{}", 404),
            ("GET", "/v1/chat/completions", None, 405),
            ("POST", "/v1/completions", b"{", 400),
            ("POST", "/v1/completions", b"x" * (2 << 20), 413),
        ]:
            async with s.request(method, url + path, data=data, headers=auth) as r:
                body = await r.json()
                assert r.status == status and set(body["error"]) == {"message", "type", "param", "code"}  # fmt: skip
                assert body["error"]["message"]

    empty = make_validator(validator_config(tmp_path / "e.json"), signed, registry)
    none_gw = await _gateway(empty)
    math = by_domain["math"]
    dying = await start_scripted(
        random_tokens(len(math.tokenizer)), mwallets[2], 3, math.card, die_mid_stream=True
    )
    lone = make_validator(validator_config(tmp_path / "d.json"), signed, registry)
    lone.set_miners([dying])
    dying_gw = await _gateway(lone)
    try:
        with pytest.raises(openai.InternalServerError) as err:  # 503: nobody serves
            await _client(none_gw).completions.create(model="math", prompt="1 +", max_tokens=4)
        assert err.value.status_code == 503 and err.value.code == "no_miners"
        with pytest.raises(openai.InternalServerError) as err:  # 502: every miner failed
            await _client(dying_gw).completions.create(model="math", prompt="1 +", max_tokens=4)
        assert err.value.status_code == 502 and err.value.code == "upstream_failed"
    finally:
        await none_gw.stop()
        await dying_gw.stop()


async def test_logprobs_come_only_from_answers_that_carry_them(
    tmp_path, registry, by_domain, mwallets, signed, start_miner, start_scripted
):
    """A miner whose answer lacks the alternatives asked for is failed over, not passed on."""
    math = by_domain["math"]
    bare = await start_scripted(random_tokens(len(math.tokenizer)), mwallets[2], 3, math.card)
    _, honest = await start_miner(math, mwallets[1], uid=2)
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([bare, honest])
    block = v.ledger.block()
    v.state.put(3, bare.hotkey, Tally(block, 10, 10, tokens=900, seconds=1))  # tried first
    v.state.put(2, honest.hotkey, Tally(block, 10, 10, tokens=500, seconds=1))
    gw = await _gateway(v)
    try:
        raw = await _client(gw).completions.with_raw_response.create(
            model="math", prompt="3 + 4 =", max_tokens=6, temperature=0, logprobs=2
        )
        done = raw.parse()
        assert raw.headers["x-dmoe-uid"] == "2"  # uid 3 was asked first (its tally is better)
        assert "".join(done.choices[0].logprobs.tokens) == done.choices[0].text
        assert all(len(top) >= 2 for top in done.choices[0].logprobs.top_logprobs)
        assert v.state.tally(3).samples >= 1 and v.ledger.banned(3)
    finally:
        await gw.stop()


async def test_keys_from_a_reloaded_file_are_counted_per_key(
    tmp_path, registry, by_domain, mwallets, signed, start_miner
):
    _, math = await start_miner(by_domain["math"], mwallets[1], uid=2)
    v = make_validator(validator_config(tmp_path / "s.json"), signed, registry)
    v.set_miners([math])
    keys = tmp_path / "keys"
    keys.write_text("sk-alice-secret alice\nsk-bob-secret\n")
    gw = await _gateway(v, api_keys=("sk-cli",), api_keys_file=keys, api_keys_reload_s=0.0)
    try:
        done = await _client(gw, "sk-alice-secret").completions.create(
            model="math", prompt="1 + 1 =", max_tokens=5
        )
        await _client(gw, "sk-bob-secret").models.list()
        keys.write_text("sk-alice-secret alice\nsk-carol-secret carol\n")  # bob revoked
        with pytest.raises(openai.AuthenticationError):
            await _client(gw, "sk-bob-secret").models.list()
        await _client(gw, "sk-carol-secret").models.list()
        await _client(gw, "sk-cli").models.list()  # the command line's keys stay
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{gw.port}/metrics") as r:
                metrics = await r.text()
        assert "secret" not in metrics
        assert 'dmoe_gateway_key_requests_total{key="alice",status="200"} 1.0' in metrics
        assert 'dmoe_gateway_key_requests_total{key="carol",status="200"} 1.0' in metrics
        assert f'dmoe_gateway_key_tokens_total{{key="alice",kind="completion"}} {done.usage.completion_tokens}.0' in metrics  # fmt: skip
        assert 'key="sha256:' in metrics  # bob, unlabelled, by his key's hash
    finally:
        await gw.stop()
