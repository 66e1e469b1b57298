"""Authentication across every signed endpoint: only fresh, untampered, correctly addressed
requests from admitted validators get through; everything else is a 401/403 JSON error.

Miner: `/v1/generate`, `/v1/score` (btauth/1 + admission), `/v1/card` (btauth/1 only).
Chain server: unsigned, forged, tampered and replayed extrinsics are refused and change nothing.
"""

from __future__ import annotations

import json
import time

import pytest
from bittensor_core import Keypair

from subnet.chain.local.calls import ComposedCall
from subnet.chain.local.signing import sign
from tests.hostile.rawhttp import request, signed_headers
from tests.hostile.test_chain_fuzz import chain_fingerprint

BODIES = {
    "/v1/generate": json.dumps({"prompt": "1 +", "max_tokens": 2, "stream": False}).encode(),
    "/v1/score": json.dumps({"token_ids": [5, 6, 7]}).encode(),
    "/v1/card": b"",
}
METHOD = {"/v1/generate": "POST", "/v1/score": "POST", "/v1/card": "GET"}


def _case(case: str, w, m, path: str):
    """(headers, body) for one attack on `path`."""
    method, body, val = METHOD[path], BODIES[path], w["val"].hotkey
    now = time.time_ns()
    if case == "unsigned":
        return {"Content-Type": "application/json"}, body
    if case == "tampered_body":
        return signed_headers(val, method, path, body, m.hotkey), body + b" "
    if case == "tampered_signature":
        h = signed_headers(val, method, path, body, m.hotkey)
        sig = h["X-Bittensor-Signature"]
        h["X-Bittensor-Signature"] = sig[:-2] + ("00" if sig[-2:] != "00" else "11")
        return h, body
    if case == "other_path":
        return signed_headers(val, method, path + "x", body, m.hotkey), body
    if case == "wrong_receiver":
        return signed_headers(val, method, path, body, w["val2"].hotkey.ss58_address), body
    if case == "no_receiver":
        h = signed_headers(val, method, path, body, m.hotkey)
        return {k: v for k, v in h.items() if k != "X-Bittensor-Receiver"}, body
    if case == "stale":
        return signed_headers(val, method, path, body, m.hotkey, nonce_ns=now - 60 * 10**9), body
    if case == "future":
        return signed_headers(val, method, path, body, m.hotkey, nonce_ns=now + 60 * 10**9), body
    if case == "forged_signer":  # signed by a stranger, claiming to be the validator
        h = signed_headers(w["stranger"].hotkey, method, path, body, m.hotkey)
        h["X-Bittensor-Hotkey"] = val.ss58_address
        return h, body
    if case == "garbage_headers":
        h = signed_headers(val, method, path, body, m.hotkey)
        h["X-Bittensor-Nonce"] = "NaN"
        return h, body
    raise AssertionError(case)


ATTACKS = ["unsigned", "tampered_body", "tampered_signature", "other_path", "wrong_receiver",
           "no_receiver", "stale", "future", "forged_signer", "garbage_headers"]  # fmt: skip


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("case", ATTACKS)
def test_bad_signatures_are_401(bg_miner, hwallets, path, case):
    headers, body = _case(case, hwallets, bg_miner, path)
    reply = request(bg_miner.port, METHOD[path], path, body, headers)
    assert reply.status == 401, (case, reply.status, reply.body[:200])
    assert reply.is_json_error


@pytest.mark.parametrize("path", list(BODIES))
def test_replay_is_401(bg_miner, hwallets, path):
    headers = signed_headers(
        hwallets["val"].hotkey, METHOD[path], path, BODIES[path], bg_miner.hotkey
    )
    first = request(bg_miner.port, METHOD[path], path, BODIES[path], headers)
    again = request(bg_miner.port, METHOD[path], path, BODIES[path], headers)
    assert first.status == 200, first.body[:200]
    assert again.status == 401 and again.is_json_error


@pytest.mark.parametrize("path", ["/v1/generate", "/v1/score"])
@pytest.mark.parametrize(
    "who, code",
    [("stranger", "not_registered"), ("plain", "not_validator"), ("lowstake", "low_stake")],
)
def test_unadmitted_callers_are_403(bg_miner, hwallets, path, who, code):
    headers = signed_headers(hwallets[who].hotkey, "POST", path, BODIES[path], bg_miner.hotkey)
    reply = request(bg_miner.port, "POST", path, BODIES[path], headers)
    assert (reply.status, reply.json()["error"]) == (403, code)


def test_chain_rejects_unsigned_forged_tampered_replayed(bg_chain):
    chain, port = bg_chain.server.chain, bg_chain.port
    alice, bob = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")
    transfer = ComposedCall(
        "Balances", "transfer_keep_alive", {"dest": bob.ss58_address, "value": 10**9}
    )
    genuine = sign(transfer, alice, None, chain.genesis_hash).to_dict()
    unsigned = dict(genuine, signature="0x")
    zeroed = dict(genuine, signature="0x" + "00" * 64)
    forged = dict(
        sign(transfer, bob, None, chain.genesis_hash).to_dict(), address=alice.ss58_address
    )
    tampered = dict(genuine, ts_ns=genuine["ts_ns"] + 1)
    future = sign(transfer, alice, None, chain.genesis_hash).to_dict()
    future["ts_ns"] += 3600 * 10**9  # a future timestamp no longer matches the signature either
    before = chain_fingerprint(chain)
    for name, ext in [("unsigned", unsigned), ("zeroed", zeroed), ("forged", forged),
                      ("tampered", tampered), ("future", future)]:  # fmt: skip
        body = json.dumps({"method": "submit", "params": {"extrinsic": ext}}).encode()
        reply = request(port, "POST", "/rpc", body)
        assert reply.status == 401 and reply.is_json_error, (name, reply.body[:200])
    assert chain_fingerprint(chain) == before
    body = json.dumps({"method": "submit", "params": {"extrinsic": genuine}}).encode()
    assert request(port, "POST", "/rpc", body).json()["result"]["success"]
    after = chain_fingerprint(chain)
    replay = request(port, "POST", "/rpc", body)
    assert replay.status == 401 and "replayed" in replay.json()["message"]
    assert chain_fingerprint(chain) == after
