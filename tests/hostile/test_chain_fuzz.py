"""Fuzz the chain server's `/rpc` with hostile bodies: every refusal is a 4xx JSON error, reads
answer 200, nothing is a 5xx, and the chain's height and state hash are unchanged (no request in
the fuzz is a validly signed extrinsic)."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.rawhttp import raw_exchange, request, status_of
from tests.hostile.strategies import JSON, LITERALS, hostile_bodies

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# wait_block is a long poll by design (it answers at the next block); it is fuzzed separately.
METHODS = ["info", "block_hash", "get_block", "query", "query_map", "query_batch",
           "runtime_call", "constant", "events", "account_next_index", "estimate_fee",
           "mev_next_key", "submit", "register_inner", "find_extrinsic"]  # fmt: skip
PARAM_NAMES = ["block", "block_hash", "module", "item", "params", "param_sets", "api", "method",
               "name", "address", "call", "extrinsic", "wait", "extrinsic_hash"]  # fmt: skip


def chain_fingerprint(chain) -> tuple[int, str]:
    """Height and a hash of the full state (what a rejected request must not change)."""
    with chain.lock:
        s = chain.state
        blob = pickle.dumps((s.block, s.balances, s.nonces, s.owners, s.stake, s.hotkey_alpha,
                             {k: v.__dict__ for k, v in sorted(s.subnets.items())}))  # fmt: skip
        return chain.block, hashlib.sha256(blob).hexdigest()


def _extrinsic_like() -> st.SearchStrategy:
    hexes = st.binary(max_size=40).map(lambda b: "0x" + b.hex()) | JSON
    return st.fixed_dictionaries(
        {},
        optional={
            "call": hexes,
            "address": JSON | st.just("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"),
            "crypto_type": JSON,
            "nonce": JSON,
            "ts_ns": JSON,
            "signature": hexes,
        },
    )


def rpc_bodies() -> st.SearchStrategy[bytes]:
    params = st.dictionaries(
        st.sampled_from(PARAM_NAMES) | st.text(max_size=8),
        JSON | _extrinsic_like(),
        max_size=4,
    )
    method = st.sampled_from(METHODS) | JSON
    envelope = st.fixed_dictionaries({"method": method}, optional={"params": params | JSON})
    return st.one_of(
        envelope.map(lambda d: json.dumps(d).encode()),
        envelope.map(lambda d: json.dumps(d).encode()),
        hostile_bodies(["method", "params"], {"method": "info", "params": {}}),
        LITERALS,
    )


def test_rpc_fuzz_changes_nothing(bg_chain):
    chain, port = bg_chain.server.chain, bg_chain.port
    before = chain_fingerprint(chain)

    @FUZZ
    @given(body=rpc_bodies())
    def check(body: bytes) -> None:
        reply = request(port, "POST", "/rpc", body, {"Content-Type": "application/json"})
        assert reply.status < 500, (body[:200], reply.body[:300])
        if reply.status != 200:
            assert 400 <= reply.status < 500 and reply.is_json_error, (body[:200], reply.body[:300])

    check()
    assert chain_fingerprint(chain) == before
    assert request(port, "GET", "/health").json()["block"] == before[0]


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n" + b'{"method": "info"',
        b"POST /rpc HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{}",
        b"POST /rpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"ffff\r\n"
        + b"a" * 65535
        + b"\r\n" * 2,
        b"GET /blocks HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"\x00\x01\x02garbage\r\n\r\n",
    ],
)
def test_malformed_http_is_4xx_or_closed(bg_chain, raw):
    before = chain_fingerprint(bg_chain.server.chain)
    status = status_of(raw_exchange(bg_chain.port, raw))
    assert status is None or 400 <= status < 500
    assert request(bg_chain.port, "GET", "/health").status == 200
    assert chain_fingerprint(bg_chain.server.chain) == before


@pytest.mark.parametrize(
    "method, params",
    [
        ("estimate_fee", {"call": "0xzz"}),
        ("estimate_fee", {"call": "zz"}),
        ("estimate_fee", {"call": "0x"}),
        ("estimate_fee", {"call": "0x" + "ff" * 40}),
        ("get_block", {"block": "x"}),
        ("get_block", {"block": 10**30}),
        ("get_block", {"block": -1}),
        ("get_block", {"block_hash": 5}),
        ("get_block", {"block": 1.5e308}),
        ("block_hash", {"block": "abc"}),
        ("block_hash", {"block": 1e308}),
        ("block_hash", {"block": [1]}),
        ("events", {"block_hash": 5}),
        ("events", {"block_hash": {"a": 1}}),
        ("account_next_index", {"address": []}),
        ("find_extrinsic", {"extrinsic_hash": None, "block_hash": []}),
        ("query", {"module": 5, "item": None}),
        ("query", {"module": "SubtensorModule", "item": "Uids", "params": [10**30, {"x": 1}]}),
        ("query", {"module": "System", "item": "Account", "params": "abc"}),
        ("query_map", {"module": [], "item": {}}),
        ("query_batch", {"module": "System", "item": "Account", "param_sets": [5, None]}),
        ("query_batch", {"module": "System", "item": "Account", "param_sets": 7}),
        ("runtime_call", {"api": 5, "method": [], "params": {"x": float("1e308")}}),
        (
            "runtime_call",
            {"api": "SubnetInfoRuntimeApi", "method": "get_metagraph", "params": [10**30]},
        ),  # fmt: skip
        (
            "runtime_call",
            {"api": "NeuronInfoRuntimeApi", "method": "get_neurons_lite", "params": ["x"]},
        ),  # fmt: skip
        ("constant", {"module": None, "name": 5}),
        ("submit", {"extrinsic": {"call": "0xzz", "address": "a", "ts_ns": "x", "signature": 1}}),
        (
            "submit",
            {
                "extrinsic": {
                    "call": "0x00",
                    "address": "a",
                    "ts_ns": 1,
                    "signature": "0x",
                    "crypto_type": "sr",
                }
            },
        ),  # fmt: skip
        ("submit", {"extrinsic": [], "wait": "yes"}),
        ("register_inner", {"extrinsic": {"call": "0x0000", "address": 5, "nonce": -1}}),
        ("mev_next_key", {"x": 1}),
        ("wait_block", {"after": "soon"}),
        ("wait_block", {"after": -(10**30)}),
    ],
)
def test_each_method_with_hostile_params(bg_chain, method, params):
    chain, port = bg_chain.server.chain, bg_chain.port
    before = chain_fingerprint(chain)
    body = json.dumps({"method": method, "params": params}).encode()
    reply = request(port, "POST", "/rpc", body, timeout=10)
    assert reply.status < 500, reply.body[:300]
    assert reply.status == 200 or reply.is_json_error, reply.body[:300]
    assert chain_fingerprint(chain) == before
