"""`ChainApi`: the local chain's JSON-in / JSON-out method table (its "RPC").

The server exposes exactly these methods over HTTP, and the in-process adapter calls the same
table directly, so tests of the in-process chain exercise the same code path as remote clients.
Reads of items the chain does not model answer None / [] (as an unset OptionQuery would) and are
logged once, so SDK code that probes optional storage keeps working.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from subnet.chain.local import reads, runtime
from subnet.chain.local.calls import ComposedCall
from subnet.chain.local.chain import LocalChain
from subnet.chain.local.signing import Envelope, SubmissionRejected

log = logging.getLogger(__name__)


class BadParams(ValueError):
    """A request whose params do not fit the method (HTTP 400)."""


class ChainApi:
    def __init__(self, chain: LocalChain):
        self.chain = chain
        self._missing: set[str] = set()
        self.methods: dict[str, Callable[..., Awaitable[Any]]] = {
            name: getattr(self, name)
            for name in (
                "info", "block_hash", "get_block", "query", "query_map", "query_batch",
                "runtime_call", "constant", "events", "account_next_index", "estimate_fee",
                "mev_next_key", "submit", "register_inner", "find_extrinsic", "wait_block",
            )
        }  # fmt: skip

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        fn = self.methods.get(method)
        if fn is None:
            raise KeyError(method)
        if not isinstance(params, dict):
            raise BadParams("params must be an object")
        try:
            return await fn(**params)
        except (BadParams, SubmissionRejected):
            raise
        # Params of the wrong type or shape ("block": "abc", "call": "0xzz", a dict as a block
        # hash bound into SQLite) are the caller's error: 400, never a 500.
        except (TypeError, ValueError, KeyError, IndexError, OverflowError,
                sqlite3.InterfaceError, sqlite3.ProgrammingError) as err:  # fmt: skip
            raise BadParams(f"{method}: {err}") from err

    def _miss(self, what: str, default: Any) -> Any:
        if what not in self._missing:
            self._missing.add(what)
            log.info("local chain does not model %s; answering %r", what, default)
        return default

    # -- metadata ---------------------------------------------------------------------------
    async def info(self) -> dict:
        c = self.chain
        return {
            "genesis_hash": c.genesis_hash,
            "block": c.block,
            "block_time": c.genesis.block_time,
            "spec_version": 1,
            "instant": c.instant,
        }

    async def block_hash(self, block: int | None = None) -> str | None:
        c = self.chain
        if block is None:
            return c.hash_of(c.block)
        block = int(block)
        return c.hash_of(block) if 0 <= block <= c.block else None

    async def get_block(self, block: int | None = None, block_hash: str | None = None) -> Any:
        c = self.chain
        number = c.number_of(block_hash) if block_hash else (c.block if block is None else block)
        if number is None or not 0 <= int(number) <= c.block:
            return None
        number = int(number)
        ts = c.timestamp_ms(number) or 0
        parent = c.hash_of(number - 1) if number else "0x" + "00" * 32
        inherent = {"call": {"call_module": "Timestamp", "call_function": "set",
                             "call_args": [{"name": "now", "value": ts}]}}  # fmt: skip
        return {
            "header": {"number": number, "hash": c.hash_of(number), "parentHash": parent},
            "extrinsics": [inherent],
        }

    async def wait_block(self, after: int) -> int:
        return await self.chain.wait_block(int(after))

    # -- reads ------------------------------------------------------------------------------
    async def query(self, module: str, item: str, params: list | None = None) -> Any:
        with self.chain.lock:
            try:
                return reads.query(self.chain.state, self.chain.genesis, module, item, params or [])
            except reads.UnknownItem as err:
                return self._miss(str(err), None)
            except (IndexError, TypeError, ValueError) as err:
                raise BadParams(f"query {module}.{item}: {err}") from err

    async def query_batch(self, module: str, item: str, param_sets: list) -> list:
        return [await self.query(module, item, list(p)) for p in param_sets]

    async def query_map(self, module: str, item: str, params: list | None = None) -> list:
        with self.chain.lock:
            try:
                return reads.query_map(self.chain.state, module, item, params or [])
            except reads.UnknownItem as err:
                return self._miss(str(err), [])

    async def runtime_call(self, api: str, method: str, params: Any = None) -> Any:
        with self.chain.lock:
            try:
                return runtime.runtime_call(
                    self.chain.state, self.chain.genesis, api, method, params
                )
            except reads.UnknownItem as err:
                return self._miss(str(err), None)
            except (IndexError, KeyError, TypeError, ValueError) as err:
                raise BadParams(f"runtime_call {api}.{method}: {err}") from err

    async def constant(self, module: str, name: str) -> Any:
        try:
            return reads.constant(self.chain.genesis, module, name)
        except reads.UnknownItem as err:
            return self._miss(str(err), None)

    async def events(self, block_hash: str | None = None) -> list:
        number = self.chain.number_of(block_hash)
        return self.chain.events_at(number) if number is not None else []

    # -- writes -----------------------------------------------------------------------------
    async def account_next_index(self, address: str) -> int:
        return self.chain.next_index(str(address))

    async def estimate_fee(self, call: str) -> int:
        return self.chain.estimate_fee(ComposedCall.from_data(bytes.fromhex(call[2:])))

    async def mev_next_key(self) -> str:
        return "0x" + self.chain.mev_key().hex()

    async def submit(self, extrinsic: dict, wait: bool = True) -> dict:
        return await self.chain.submit(Envelope.from_dict(extrinsic), wait=bool(wait))

    async def register_inner(self, extrinsic: dict) -> str:
        return self.chain.register_inner(Envelope.from_dict(extrinsic))

    async def find_extrinsic(self, extrinsic_hash: str, block_hash: str) -> dict | None:
        return self.chain.receipt(str(extrinsic_hash), str(block_hash))
