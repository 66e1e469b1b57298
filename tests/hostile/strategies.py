"""Hypothesis strategies for hostile JSON bodies: random values, wrong types, huge numbers,
NaN/Infinity literals, deep nesting, invalid UTF-8, truncations of valid bodies."""

from __future__ import annotations

import json

from hypothesis import strategies as st

HUGE = st.sampled_from([10**30, -(10**30), 2**63, -(2**63) - 1, 1e308, -1e308, 2**64 + 1])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=12,
)


def _dump(v) -> bytes:
    return json.dumps(v).encode()


def field_bodies(fields: list[str]) -> st.SearchStrategy[bytes]:
    """Objects whose keys are the endpoint's real fields (so the validators run) with any values."""
    keys = st.sampled_from(fields) | st.text(max_size=10)
    return st.dictionaries(keys, JSON, max_size=len(fields) + 1).map(_dump)


LITERALS = st.sampled_from(
    [
        b"NaN",
        b'{"x": NaN}',
        b'{"max_tokens": Infinity}',
        b'{"prompt": "a", "temperature": -Infinity}',
        b"[" * 30_000 + b"]" * 30_000,
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
        b"\xff\xfe\x00garbage",
        b'{"prompt": "\xed\xa0\x80"}',  # a UTF-8-encoded lone surrogate
        b'{"prompt": "\\ud800"}',  # a JSON-escaped lone surrogate
        b"",
        b"null",
        b"\x00" * 64,
        b'{"method": "query", "params": {"module": "System", "item": "Account", "params": '
        b"[" * 3000 + b"]" * 3000 + b"}}",
    ]
)


def hostile_bodies(fields: list[str], valid: dict) -> st.SearchStrategy[bytes]:
    valid_raw = _dump(valid)
    truncated = st.integers(0, len(valid_raw) - 1).map(lambda n: valid_raw[:n])
    flipped = st.tuples(st.integers(0, len(valid_raw) - 1), st.integers(0, 255)).map(
        lambda p: valid_raw[: p[0]] + bytes([p[1]]) + valid_raw[p[0] + 1 :]
    )
    # A valid body with one or two fields replaced by hostile values reaches the deepest checks.
    mutated = st.dictionaries(st.sampled_from(fields), JSON | HUGE, min_size=1, max_size=2).map(
        lambda d: _dump({**valid, **d})
    )
    return st.one_of(
        mutated,
        mutated,
        mutated,
        field_bodies(fields),
        JSON.map(_dump),
        LITERALS,
        truncated,
        flipped,
        st.binary(max_size=200),
    )
