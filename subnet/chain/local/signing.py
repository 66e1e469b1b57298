"""Signed submissions to the local chain: the client signs, the chain verifies.

An envelope carries the call bytes, the signer's address and crypto type, the account nonce (or
None: "next"), a timestamp and a signature over a canonical payload bound to the chain's genesis
hash. Keys never leave the signing process; the chain checks the signature, the freshness window
and a replay cache before anything touches state.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import bittensor_core

from subnet.chain.local.calls import ComposedCall

SCHEME = b"dmoe-localchain/1"
MAX_AGE_NS = 60 * 10**9  # a signed envelope is accepted for 60 s ...
MAX_SKEW_NS = 5 * 10**9  # ... and up to 5 s from the future (clock skew)
REPLAY_CACHE = 100_000  # hashes remembered; at 60 s validity this is >1600 submissions/s


class SubmissionRejected(ValueError):
    """The envelope is malformed, stale, replayed or badly signed (nothing was applied)."""


@dataclass(frozen=True)
class Envelope:
    call: ComposedCall
    address: str
    crypto_type: int
    nonce: int | None
    ts_ns: int
    signature: bytes

    def payload(self, genesis_hash: str) -> bytes:
        return signing_payload(genesis_hash, self.address, self.nonce, self.ts_ns, self.call.data)

    def hash(self, genesis_hash: str) -> str:
        digest = hashlib.blake2b(self.payload(genesis_hash) + self.signature, digest_size=32)
        return "0x" + digest.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": "0x" + self.call.data.hex(),
            "address": self.address,
            "crypto_type": self.crypto_type,
            "nonce": self.nonce,
            "ts_ns": self.ts_ns,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Envelope:
        if not isinstance(d, dict):
            raise SubmissionRejected("extrinsic must be an object")
        try:
            call = ComposedCall.from_data(_hex(d["call"]))
            nonce = d.get("nonce")
            if nonce is not None and (not isinstance(nonce, int) or nonce < 0):
                raise SubmissionRejected("nonce must be a non-negative integer or null")
            return cls(
                call=call,
                address=str(d["address"]),
                crypto_type=int(d.get("crypto_type", 1)),
                nonce=nonce,
                ts_ns=int(d["ts_ns"]),
                signature=_hex(d["signature"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, SubmissionRejected):
                raise
            raise SubmissionRejected(f"malformed extrinsic: {err}") from err


def _hex(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise SubmissionRejected("expected a 0x-prefixed hex string")
    return bytes.fromhex(value[2:])


def signing_payload(
    genesis_hash: str, address: str, nonce: int | None, ts_ns: int, call_data: bytes
) -> bytes:
    parts = [
        SCHEME,
        genesis_hash.encode(),
        address.encode(),
        b"-" if nonce is None else str(nonce).encode(),
        str(ts_ns).encode(),
        hashlib.sha256(call_data).hexdigest().encode(),
    ]
    return b"\n".join(parts)


def sign(call: ComposedCall, keypair: Any, nonce: int | None, genesis_hash: str) -> Envelope:
    """Sign with any SDK signer (Keypair, WalletSigner, ...): only `.sign` and the address."""
    ts_ns = time.time_ns()
    address = keypair.ss58_address
    payload = signing_payload(genesis_hash, address, nonce, ts_ns, call.data)
    signature = bytes(keypair.sign(payload))
    crypto_type = int(getattr(keypair, "crypto_type", 1) or 1)
    return Envelope(call, address, crypto_type, nonce, ts_ns, signature)


class Verifier:
    """Checks envelopes: freshness, signature, then replay (recorded only once verified)."""

    def __init__(self, genesis_hash: str):
        self.genesis_hash = genesis_hash
        self._seen: OrderedDict[str, int] = OrderedDict()

    def verify(self, env: Envelope, now_ns: int | None = None) -> str:
        """The extrinsic hash, or SubmissionRejected."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        if env.ts_ns < now_ns - MAX_AGE_NS or env.ts_ns > now_ns + MAX_SKEW_NS:
            raise SubmissionRejected("stale or future-dated extrinsic (check the clock)")
        try:
            ok = bittensor_core.verify(
                env.payload(self.genesis_hash), env.signature, env.address, env.crypto_type
            )
        except Exception as err:  # the native verifier raises on malformed keys/signatures
            raise SubmissionRejected(f"bad signature: {err}") from err
        if not ok:
            raise SubmissionRejected("bad signature")
        ext_hash = env.hash(self.genesis_hash)
        if ext_hash in self._seen:
            raise SubmissionRejected("replayed extrinsic")
        self._seen[ext_hash] = env.ts_ns
        while len(self._seen) > REPLAY_CACHE:
            self._seen.popitem(last=False)
        return ext_hash
