"""Property-based fuzzing of the wire protocol: any input gives a message or a ProtocolError, never a crash."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    ErrorBody,
    ExpertCard,
    GenerateChunk,
    GenerateRequest,
    GenerateResponse,
    ProtocolError,
    ScoreRequest,
    ScoreResponse,
    decode_json,
)

MESSAGES = (
    GenerateRequest,
    GenerateResponse,
    GenerateChunk,
    ScoreRequest,
    ScoreResponse,
    ExpertCard,
    ErrorBody,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
# Objects that use the real field names, so fuzzing reaches past "field is required".
FIELDS = [
    "prompt",
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "logprobs",
    "top_logprobs",
    "stream",
    "request_id",
    "version",
    "token_ids",
    "start",
    "top_k",
    "model",
    "text",
    "finish_reason",
    "usage",
    "timings",
    "model_id",
    "revision",
    "weights_hash",
    "domains",
    "max_context",
    "capacity",
    "engine",
    "index",
    "error",
    "message",
    "role",
    "content",
]
field_objects = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=12)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(obj=field_objects, which=st.sampled_from(MESSAGES))
def test_from_dict_never_crashes(obj, which):
    try:
        msg = which.from_dict(obj)
    except ProtocolError as err:
        assert str(err) and err.code
        return
    # Whatever was accepted must survive a round trip unchanged.
    again = which.from_dict(json.loads(json.dumps(msg.to_dict())))
    assert again == msg


@FAST
@given(raw=st.binary(max_size=300))
def test_decode_json_on_random_bytes(raw):
    try:
        value = decode_json(raw)
    except ProtocolError as err:
        assert err.code in ("malformed_json", "body_too_large")
    else:
        assert isinstance(value, dict)


@FAST
@given(value=json_values)
def test_decode_json_on_random_json(value):
    raw = json.dumps(value).encode()
    try:
        out = decode_json(raw)
    except ProtocolError:
        return
    assert out == json.loads(raw)
