"""Calls, dispatch errors and event records of the local chain, in the shapes the SDK expects.

A composed call is `ComposedCall(module, function, params)` whose params are plain JSON values
(bytes as "0x" hex, nested calls as `{"__call__": [module, function, params]}`), so the same call
travels unchanged from an SDK client to the chain process and its `.data` bytes are what gets
signed. The SDK tells composed calls apart by `hasattr(call, "data")` and reads
`module`/`function`/`params` for fee filters and sudo detection.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bittensor._generated.errors import ERRORS
from bittensor.error_map import DISPATCH_ERRORS

CALL_MAGIC = b"LCALL"
_DOCS = {info.name: info.docs for info in ERRORS.values()}
_PREFERRED_PALLETS = ("SubtensorModule", "AdminUtils", "Commitments", "Balances", "System")
_INDEX: dict[str, tuple[int, int]] = {}
for _key, _info in sorted(
    ERRORS.items(),
    key=lambda kv: (
        _PREFERRED_PALLETS.index(kv[1].pallet)
        if kv[1].pallet in _PREFERRED_PALLETS
        else len(_PREFERRED_PALLETS)
    ),
):
    _INDEX.setdefault(_info.name, _key)


class DispatchError(Exception):
    """A chain-side failure carrying subtensor's error name (the SDK maps names to codes)."""

    def __init__(self, name: str, detail: str = ""):
        super().__init__(name if not detail else f"{name}: {detail}")
        self.name = name
        self.detail = detail


def error_docs(name: str) -> str:
    """The runtime's docs for a pallet error name (what a real node reports as the message)."""
    if name in _DOCS and _DOCS[name]:
        return _DOCS[name]
    if name in DISPATCH_ERRORS:
        return DISPATCH_ERRORS[name][1]
    return name


def dispatch_error_payload(name: str) -> dict:
    """A decoded `DispatchError` for an error name, as it appears inside `Sudo.Sudid` events."""
    if name in _INDEX:
        pallet, index = _INDEX[name]
        return {"Module": {"index": pallet, "error": f"0x{index:02x}000000"}}
    return {name if name in DISPATCH_ERRORS else "Other": None}


def to_plain(value: Any) -> Any:
    """JSON-able form of call params (bytes -> hex, nested composed calls -> `__call__`)."""
    if isinstance(value, ComposedCall):
        return {"__call__": [value.module, value.function, value.params]}
    if hasattr(value, "module") and hasattr(value, "function") and hasattr(value, "params"):
        return {"__call__": [value.module, value.function, to_plain(dict(value.params))]}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if hasattr(value, "rao"):  # a Balance passed as an amount
        return int(value.rao)
    raise TypeError(f"cannot encode call parameter of type {type(value).__name__}")


class ComposedCall:
    """What `compose` returns: an opaque call with `.data` (the canonical bytes that are signed)."""

    __slots__ = ("module", "function", "params", "data")

    def __init__(self, module: str, function: str, params: dict[str, Any]):
        self._set(module, function, to_plain(params))

    def _set(self, module: str, function: str, plain: dict[str, Any]) -> None:
        self.module = module
        self.function = function
        self.params = plain
        body = json.dumps([module, function, plain], sort_keys=True, separators=(",", ":"))
        self.data = CALL_MAGIC + body.encode()

    @classmethod
    def from_data(cls, data: bytes) -> ComposedCall:
        if not data.startswith(CALL_MAGIC):
            raise ValueError("not a local-chain call")
        module, function, params = json.loads(data[len(CALL_MAGIC) :])
        if not (isinstance(module, str) and isinstance(function, str) and isinstance(params, dict)):
            raise ValueError("malformed local-chain call")
        # Decoded JSON is already plain (to_plain would copy it unchanged: a 4096-uid weights
        # row is 8192 values). `.data` is still re-encoded canonically: that is what was signed.
        call = cls.__new__(cls)
        call._set(module, function, params)
        return call

    @classmethod
    def from_plain(cls, value: Any) -> ComposedCall:
        """Rebuild a nested call from its `{"__call__": [...]}` form (e.g. `Sudo.sudo(call=...)`)."""
        if isinstance(value, ComposedCall):
            return value
        if not (isinstance(value, dict) and isinstance(value.get("__call__"), list)):
            raise DispatchError("CallFiltered", "expected a composed call")
        parts = value["__call__"]
        if len(parts) != 3 or not isinstance(parts[2], dict):
            raise DispatchError("CallFiltered", "malformed composed call")
        return cls(str(parts[0]), str(parts[1]), parts[2])

    @property
    def hash(self) -> str:
        return "0x" + hashlib.blake2b(self.data, digest_size=32).hexdigest()

    def __iter__(self):
        return iter((self.module, self.function, self.params))

    def __repr__(self) -> str:
        return f"ComposedCall({self.module}.{self.function})"


def event(module: str, name: str, attributes: Any, extrinsic_idx: int | None = None) -> dict:
    """An event record as the transport decodes `System.Events` (the SDK reads both levels)."""
    inner = {"module_id": module, "event_id": name, "attributes": attributes}
    return {
        "phase": "ApplyExtrinsic" if extrinsic_idx is not None else "Finalization",
        "extrinsic_idx": extrinsic_idx,
        "event": inner,
        **inner,
        "topics": [],
    }
