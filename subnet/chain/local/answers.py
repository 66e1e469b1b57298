"""How the chain server answers one RPC call: JSON-encoded results, batches, a per-state cache.

* `encode(value)`: compact JSON bytes (no spaces: a 4096-uid metagraph is ~15% smaller).
* `ReadCache`: the encoded answers of the big reads (`runtime_call`, `query_map`: a 4096-uid
  metagraph is ~1 MB of JSON) for the current state. Every state mutation goes through
  `ChainState.touch`, which bumps `state.version`, and every block bumps `state.block`; an entry
  is served only while both are what they were when it was computed, so many readers of the same
  block (validators, gateways, dashboards) pay for one encoding, never for a stale answer.
* `Refusal`: a call's 4xx (status, code, message, field), answered alone as the project's error
  JSON or as one entry of a batch.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from subnet.chain.local.api import BadParams, ChainApi
from subnet.chain.local.signing import SubmissionRejected

CACHED_METHODS = frozenset({"runtime_call", "query_map"})
CACHE_ENTRIES = 64
# A batch carries reads only: a submission may wait for its block, which would hold the reads
# that share its HTTP request hostage; a batch inside a batch has no use.
UNBATCHABLE = frozenset({"submit", "wait_block", "batch"})
MAX_BATCH_CALLS = 256


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Refusal(Exception):
    """A call the server refuses: HTTP `status` with the project's error body."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


class ReadCache:
    """Encoded answers of `CACHED_METHODS`, valid for one (block, state version)."""

    def __init__(self, max_entries: int = CACHE_ENTRIES):
        self.max_entries = max_entries
        self._stamp: tuple[int, int] | None = None
        self._entries: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, stamp: tuple[int, int], key: tuple[str, str]) -> bytes | None:
        if stamp != self._stamp:
            self._entries.clear()
            self._stamp = stamp
            return None
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, stamp: tuple[int, int], key: tuple[str, str], encoded: bytes) -> None:
        if stamp != self._stamp:
            return  # the state moved on while this answer was computed
        self._entries[key] = encoded
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


async def answer(api: ChainApi, cache: ReadCache, method: str, params: Any) -> bytes:
    """The encoded result of one call, or `Refusal`. `method` is known to `api`."""
    key = None
    if method in CACHED_METHODS and isinstance(params, dict):
        try:
            key = (method, json.dumps(params, sort_keys=True))
        except (TypeError, ValueError, RecursionError):
            key = None  # params it cannot key on are answered uncached
    state = api.chain.state
    stamp = (state.block, state.version)
    if key is not None:
        found = cache.get(stamp, key)
        if found is not None:
            cache.hits += 1
            return found
        cache.misses += 1
    try:
        value = await api.call(method, params)
    except BadParams as err:
        raise Refusal(400, "bad_params", str(err), "params") from err
    except SubmissionRejected as err:
        raise Refusal(401, "rejected_extrinsic", str(err), "extrinsic") from err
    encoded = encode(value)
    if key is not None:
        cache.put(stamp, key, encoded)
    return encoded


def batch_calls(params: Any) -> list[Any]:
    """The `calls` list of a `batch` request, or `Refusal` for the whole request."""
    calls = params.get("calls") if isinstance(params, dict) else None
    if not isinstance(calls, list) or not 1 <= len(calls) <= MAX_BATCH_CALLS:
        raise Refusal(
            400, "bad_params",
            f'batch: expected {{"calls": [{{"method": str, "params": {{...}}}}, ...]}} with 1 to '
            f"{MAX_BATCH_CALLS} calls", "params",
        )  # fmt: skip
    return calls


async def batch_entry(api: ChainApi, cache: ReadCache, call: Any) -> tuple[str, int, bytes]:
    """(metrics label, status, encoded entry) for one call of a batch; never raises Refusal."""
    label = "?"
    try:
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            raise Refusal(400, "bad_request", 'batch entry: expected {"method": str, "params": {}}')
        method = call["method"]
        if method in UNBATCHABLE:
            raise Refusal(400, "bad_request", f"{method!r} cannot be batched", "method")
        if method not in api.methods:
            raise Refusal(404, "unknown_method", f"unknown method {method!r}", "method")
        label = method
        encoded = await answer(api, cache, method, call.get("params", {}))
    except Refusal as refusal:
        entry = {"error": {**refusal.body(), "status": refusal.status}}
        return label, refusal.status, encode(entry)
    return label, 200, b'{"result":' + encoded + b"}"
