"""`ChainSubstrate`: bittensor 11.3.0's `Substrate` protocol over a local-chain node.

A node is anything with `async call(method, params)`, `heads()` (an async iterator of new block
numbers) and `close()`: `InProcessNode` wraps a `ChainApi` in this process, `HttpNode`
(`remote.py`) talks to a `dmoe chain` server. The adapter signs every submission with the
caller's signer here, in the caller's process; the chain verifies the signature.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from bittensor import calls as generated_calls
from bittensor._transport import codec as codec_mod
from bittensor._transport.contract import UnsignedExtrinsic
from bittensor.balance import Balance
from bittensor.result import ChainError, ExtrinsicResult
from bittensor_core import ss58_decode

from subnet.chain.local.api import ChainApi
from subnet.chain.local.calls import ComposedCall, to_plain
from subnet.chain.local.signing import Envelope, SubmissionRejected, sign, signing_payload


class InProcessNode:
    """A node backed by a chain in this process (tests, tools, benchmarks)."""

    def __init__(self, api: ChainApi):
        self.api = api

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        return await self.api.call(method, params)

    async def heads(self) -> AsyncIterator[int]:
        seen = self.api.chain.block
        while True:
            seen = await self.api.chain.wait_block(seen)
            yield seen

    async def close(self) -> None:
        return None


def result_from_dict(d: dict) -> ExtrinsicResult:
    """Rebuild the SDK's receipt from the chain's JSON receipt."""
    if d.get("success"):
        return ExtrinsicResult(
            success=True,
            message=d.get("message", "Success"),
            block_hash=d.get("block_hash"),
            extrinsic_id=d.get("extrinsic_id"),
            fee=Balance.from_rao(int(d["fee"])) if d.get("fee") is not None else None,
            events=list(d.get("events") or []),
        )
    message = d.get("message") or "Extrinsic failed."
    return ExtrinsicResult(
        success=False,
        message=message,
        block_hash=d.get("block_hash"),
        extrinsic_id=d.get("extrinsic_id"),
        fee=Balance.from_rao(int(d["fee"])) if d.get("fee") is not None else None,
        events=list(d.get("events") or []),
        error=ChainError(message, d.get("error")),
    )


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


class ChainSubstrate:
    """Implements the SDK's `Substrate` protocol (`bittensor/_substrate.py`) for a local chain."""

    def __init__(self, node: Any):
        self.node = node
        self.token_symbols: dict[int, str] = {}
        self._info: dict | None = None
        self._head = -1  # highest block this adapter has seen the chain reach
        # The local chain's fee is flat per call kind (accounts.fee_for: the genesis fee, or 0
        # for free calls), so one estimate per (module, function) serves every later plan.
        self._fees: dict[tuple[str, str], int] = {}

    async def _call(self, rpc: str, /, **params: Any) -> Any:
        return await self.node.call(rpc, params)

    async def _genesis_hash(self) -> str:
        if self._info is None:
            await self.connect()
        return self._info["genesis_hash"]

    # -- display / lifecycle ------------------------------------------------------------------
    def balance(self, rao: int, netuid: int = 0) -> Balance:
        symbol = self.token_symbols.get(netuid) if netuid else None
        return Balance(int(rao), netuid, symbol)

    async def connect(self) -> None:
        try:
            self._info = await self._call("info")
        except BaseException:
            # `bt.Client.__aenter__` fails here, so no `__aexit__` will close the node's session.
            await self.node.close()
            raise
        self._head = max(self._head, int(self._info["block"]))

    async def close(self) -> None:
        await self.node.close()

    # -- chain metadata ---------------------------------------------------------------------
    async def block_hash(self, block: int | None = None) -> str | None:
        # A block at or below a head already seen exists, and its hash is a pure function of
        # the genesis hash and its number (no forks): the SDK's "hash of the block I was just
        # told is the head" needs no round trip. The head itself, or a newer block, is asked.
        if (
            isinstance(block, int)
            and not isinstance(block, bool)
            and 0 <= block <= self._head
            and self._info is not None
        ):
            return _hash(self._info["genesis_hash"], block)
        return await self._call("block_hash", block=block)

    async def block_number(self) -> int:
        number = int((await self._call("info"))["block"])
        self._head = max(self._head, number)
        return number

    async def finalized_block_number(self) -> int:
        return await self.block_number()  # instant finality

    async def block_time(self) -> float:
        if self._info is None:
            await self.connect()
        return float(self._info["block_time"])

    async def spec_version(self) -> int:
        return 1

    async def get_block(self, block_number: int | None = None, block_hash: str | None = None):
        return await self._call("get_block", block=block_number, block_hash=block_hash)

    # -- reads ------------------------------------------------------------------------------
    async def query(self, module, storage_function, params=None, block_hash=None) -> Any:
        value = await self._call(
            "query", module=module, item=storage_function, params=to_plain(list(params or []))
        )
        return _tupled(value) if storage_function == "AlphaValues" else value

    async def map_has_entries(self, module, storage_function, params, block_hash=None) -> bool:
        return bool(await self.query_map(module, storage_function, params))

    async def query_map(self, module, storage_function, params=None, block_hash=None) -> list:
        entries = await self._call(
            "query_map", module=module, item=storage_function, params=to_plain(list(params or []))
        )
        return [(_tupled(k), v) for k, v in entries]

    async def query_batch(self, module, storage_function, param_sets, block_hash=None) -> list:
        sets = [to_plain(list(p)) for p in param_sets]
        return await self._call(
            "query_batch", module=module, item=storage_function, param_sets=sets
        )

    async def runtime_call(self, api, method, params, block_hash=None) -> Any:
        return await self._call("runtime_call", api=api, method=method, params=to_plain(params))

    async def constant(self, module: str, name: str) -> Any:
        return await self._call("constant", module=module, name=name)

    async def decode_scale(self, type_string: str, data: Any) -> Any:
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
        if type_string == "Call":
            try:
                call = ComposedCall.from_data(raw)
            except ValueError as err:
                raise ChainError(f"local chain cannot decode this call: {err}") from err
            return {
                "call_module": call.module,
                "call_function": call.function,
                "call_args": [{"name": k, "value": v} for k, v in call.params.items()],
            }
        raise ChainError(f"the local chain does not SCALE-decode {type_string}")

    async def blocks(self, *, finalized: bool = False) -> AsyncIterator[dict]:
        genesis_hash = await self._genesis_hash()
        async for number in self.node.heads():
            yield {"header": {"number": number, "hash": _hash(genesis_hash, number),
                              "parentHash": _hash(genesis_hash, number - 1)}}  # fmt: skip

    async def events(self, block_hash: str | None = None) -> list[dict]:
        return await self._call("events", block_hash=block_hash)

    # -- calls and fees ---------------------------------------------------------------------
    async def compose(self, call) -> ComposedCall:
        if isinstance(call, ComposedCall):
            return call
        module, function, params = call
        known = getattr(getattr(generated_calls, module, None), function, None) is not None
        if not known and not (module == "AdminUtils" and function.startswith("sudo_set_")):
            raise ChainError(f"call {module}.{function} not found in runtime metadata")
        return ComposedCall(module, function, dict(params))

    async def estimate_fee(self, call, keypair) -> Balance:
        call = await self.compose(call)
        kind = (call.module, call.function)
        if kind not in self._fees:
            self._fees[kind] = int(await self._call("estimate_fee", call="0x" + call.data.hex()))
        return Balance.from_rao(self._fees[kind])

    async def estimate_weight(self, call, keypair) -> dict:
        return {"ref_time": 1_000_000, "proof_size": 3_593}

    async def account_next_index(self, address: str) -> int:
        return int(await self._call("account_next_index", address=str(address)))

    # -- writes -----------------------------------------------------------------------------
    async def mev_next_key(self) -> bytes | None:
        key = await self._call("mev_next_key")
        return bytes.fromhex(key[2:]) if key else None

    async def sign_extrinsic(self, call, keypair, *, nonce: int, period: int) -> tuple[bytes, str]:
        call = await self.compose(call)
        env = sign(call, keypair, nonce, await self._genesis_hash())
        ext_hash = await self._call("register_inner", extrinsic=env.to_dict())
        return json.dumps(env.to_dict()).encode(), ext_hash

    async def find_extrinsic(self, extrinsic_hash: str, block_hash: str):
        found = await self._call(
            "find_extrinsic", extrinsic_hash=extrinsic_hash, block_hash=block_hash
        )
        return result_from_dict(found) if found is not None else None

    async def submit(
        self, call, keypair, *, nonce=None, period=128, wait_for_inclusion=True,
        wait_for_finalization=True,
    ) -> ExtrinsicResult:  # fmt: skip
        call = await self.compose(call)
        env = sign(call, keypair, nonce, await self._genesis_hash())
        return await self._submit(env, wait_for_inclusion or wait_for_finalization)

    async def _submit(self, env: Envelope, wait: bool) -> ExtrinsicResult:
        try:
            answer = await self._call("submit", extrinsic=env.to_dict(), wait=wait)
        except (SubmissionRejected, ChainError) as err:  # pool-level rejection: nothing applied
            return ExtrinsicResult(success=False, message=str(err), error=ChainError(str(err)))
        return result_from_dict(answer)

    async def prepare(
        self, call, *, address, crypto_type=1, nonce=None, period=128, tip=0, metadata_hash=None
    ) -> UnsignedExtrinsic:
        import time

        call = await self.compose(call)
        genesis_hash = await self._genesis_hash()
        nonce = await self.account_next_index(address) if nonce is None else nonce
        ts_ns = time.time_ns()
        payload = signing_payload(genesis_hash, address, nonce, ts_ns, call.data)
        return UnsignedExtrinsic(
            call_data=call.data, address=address, public_key=bytes(ss58_decode(address)),
            crypto_type=crypto_type, era="00", nonce=nonce, tip=tip, tip_asset_id=None,
            genesis_hash=genesis_hash, era_block_hash=genesis_hash, spec_version=1,
            transaction_version=1, metadata_hash=metadata_hash, payload=payload,
            payload_json={"ts_ns": ts_ns}, included_in_extrinsic=b"", included_in_signed_data=b"",
        )  # fmt: skip

    async def submit_signature(
        self, unsigned, signature, *, wait_for_inclusion=True, wait_for_finalization=True
    ) -> ExtrinsicResult:
        sig = bytes.fromhex(signature[2:]) if isinstance(signature, str) else bytes(signature)
        env = Envelope(
            call=ComposedCall.from_data(bytes(unsigned.call_data)),
            address=unsigned.address,
            crypto_type=int(unsigned.crypto_type),
            nonce=unsigned.nonce,
            ts_ns=int(unsigned.payload_json["ts_ns"]),
            signature=sig,
        )
        return await self._submit(env, wait_for_inclusion or wait_for_finalization)

    async def submit_signed(self, extrinsic, keypair, **_: Any) -> ExtrinsicResult:
        raise ChainError("the local chain does not support pre-signed (multisig) extrinsics")

    def multisig_account(self, signatories: list[str], threshold: int):
        return codec_mod.multisig_account(signatories, threshold)

    async def submit_multisig(self, call, keypair, multisig_account, **_: Any) -> ExtrinsicResult:
        raise ChainError("the local chain does not support multisig")


def _hash(genesis_hash: str, number: int) -> str:
    """`LocalChain.hash_of`, computed on the client side."""
    digest = hashlib.blake2b(f"{genesis_hash}:{number}".encode(), digest_size=32)
    return "0x" + digest.hexdigest()
