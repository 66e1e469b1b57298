"""Wire messages: round trips, bounds on every size, unknown fields ignored, clear errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from protocol import (
    MAX_BODY_BYTES,
    ExpertCard,
    GenerateRequest,
    GenerateResponse,
    ProtocolError,
    ScoreRequest,
    ScoreResponse,
    TokenLogprob,
    Usage,
    decode_json,
)


def test_generate_request_round_trip_and_unknown_fields_ignored():
    req = GenerateRequest(
        prompt="def f(x):", max_tokens=16, temperature=0.7, seed=3, stop=("\n\n",)
    )
    d = req.to_dict()
    d["some_future_field"] = {"x": 1}
    back = GenerateRequest.from_dict(json.loads(json.dumps(d)))
    assert back == req


def test_chat_messages_round_trip():
    d = {"messages": [{"role": "user", "content": "2+2="}], "max_tokens": 4}
    req = GenerateRequest.from_dict(d)
    assert req.messages[0].content == "2+2=" and req.prompt is None
    assert GenerateRequest.from_dict(req.to_dict()) == req


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 10**9}, "max_tokens"),
        ({"max_tokens": "8"}, "max_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"seed": -5}, "seed"),
        ({"stop": ["x"] * 10}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"prompt": "x" * 40_000}, "prompt"),
        ({"version": 99}, "version"),
        ({"logprobs": "yes"}, "logprobs"),
    ],
)
def test_generate_request_rejects_bad_fields(patch, field):
    d = {"prompt": "hi", "max_tokens": 8} | patch
    with pytest.raises(ProtocolError) as err:
        GenerateRequest.from_dict(d)
    assert err.value.field == field
    assert str(err.value)


def test_prompt_xor_messages():
    with pytest.raises(ProtocolError):
        GenerateRequest.from_dict({"max_tokens": 3})
    with pytest.raises(ProtocolError):
        GenerateRequest.from_dict({"prompt": "a", "messages": [{"role": "user", "content": "b"}]})
    with pytest.raises(ProtocolError, match="role"):
        GenerateRequest.from_dict({"messages": [{"role": "robot", "content": "b"}]})


def test_unknown_version_has_its_own_code():
    with pytest.raises(ProtocolError) as err:
        GenerateRequest.from_dict({"prompt": "a", "version": 2})
    assert err.value.code == "unsupported_version"


def test_decode_json_limits():
    assert decode_json(b'{"a": 1}') == {"a": 1}
    with pytest.raises(ProtocolError, match="limit") as err:
        decode_json(b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert err.value.code == "body_too_large"
    for bad in (b"{", b"[1]", b"\xff\xfe", b'{"a": NaN}', b"[" * 5000 + b"]" * 5000):
        with pytest.raises(ProtocolError) as err:
            decode_json(bad)
        assert err.value.code == "malformed_json"


def test_response_and_score_messages_round_trip():
    resp = GenerateResponse(
        request_id="r1",
        model="dmoe/tiny-code",
        token_ids=(5, 6),
        text="ab",
        finish_reason="length",
        usage=Usage(3, 2),
        logprobs=(TokenLogprob(5, -0.1, ((5, -0.1), (7, -2.5))), TokenLogprob(6, -1.0)),
    )
    assert GenerateResponse.from_dict(json.loads(json.dumps(resp.to_dict()))) == resp
    bad = resp.to_dict() | {"logprobs": resp.to_dict()["logprobs"][:1]}
    with pytest.raises(ProtocolError, match="one entry per token"):
        GenerateResponse.from_dict(bad)
    bad = resp.to_dict()
    bad["logprobs"][0]["logprob"] = 0.5  # a probability above 1 is a lie
    with pytest.raises(ProtocolError):
        GenerateResponse.from_dict(bad)

    sreq = ScoreRequest(token_ids=(1, 2, 3, 4), start=2)
    assert ScoreRequest.from_dict(sreq.to_dict()) == sreq
    with pytest.raises(ProtocolError):
        ScoreRequest.from_dict({"token_ids": [1, 2, 3], "start": 3})
    with pytest.raises(ProtocolError):
        ScoreRequest.from_dict({"token_ids": [1, -2, 3]})
    sresp = ScoreResponse(request_id="x", logprobs=(-0.5, -math.log(2)), ranks=(0, 3))
    assert ScoreResponse.from_dict(sresp.to_dict()) == sresp


def test_expert_card_round_trip_and_bounds():
    card = ExpertCard(
        model_id="dmoe/tiny-math",
        revision="v1",
        weights_hash="ab" * 32,
        domains=("math",),
        max_context=512,
        capacity=32,
        engine="hf-continuous/0.1",
    )
    assert ExpertCard.from_dict(card.to_dict()) == card
    with pytest.raises(ProtocolError):
        ExpertCard.from_dict(card.to_dict() | {"domains": []})
    with pytest.raises(ProtocolError):
        ExpertCard.from_dict(card.to_dict() | {"capacity": 0})


def test_protocol_imports_neither_torch_nor_bittensor():
    code = (
        "import sys, protocol; "
        "bad = [m for m in ('torch', 'bittensor', 'transformers', 'numpy') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
