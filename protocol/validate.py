"""Field validators for wire messages: every size bounded, every number finite.

Each helper reads one field from a decoded JSON object and either returns a clean Python value or
raises `ProtocolError` naming the field and the fix. Unknown fields are simply never read, which is
how messages stay forward compatible.
"""

from __future__ import annotations

import json
import math
from typing import Any

# A request body larger than this is refused before it is parsed (bytes).
MAX_BODY_BYTES = 1 << 20
# JSON nested deeper than this is refused: no message of ours nests more than 4 levels.
MAX_DEPTH = 16


class ProtocolError(ValueError):
    """A message that does not follow the protocol. `code` is stable and machine-readable."""

    def __init__(self, message: str, *, code: str = "invalid_request", field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": str(self), "field": self.field}


_MISSING = object()


def decode_json(raw: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """Decode a request body into a JSON object, refusing oversized, deep or non-UTF-8 input."""
    if len(raw) > max_bytes:
        raise ProtocolError(
            f"body is {len(raw)} bytes; the limit is {max_bytes}", code="body_too_large"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProtocolError(
            f"body is not valid UTF-8 ({err.reason})", code="malformed_json"
        ) from err
    _check_depth(text)
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ProtocolError(f"body is not valid JSON: {err}", code="malformed_json") from err
    if not isinstance(value, dict):
        raise ProtocolError("body must be a JSON object", code="malformed_json")
    return value


def _reject_constant(name: str) -> None:
    raise ProtocolError(f"{name} is not allowed in JSON bodies", code="malformed_json")


def _check_depth(text: str) -> None:
    # A cheap scan before json.loads: brackets inside strings only over-count, which errs safe.
    depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ProtocolError(
                    f"JSON nests deeper than {MAX_DEPTH} levels", code="malformed_json"
                )
        elif ch in "]}":
            depth -= 1


def get_int(
    d: dict[str, Any], key: str, *, lo: int, hi: int, default: Any = _MISSING
) -> int | None:
    v = d.get(key, _MISSING)
    if v is _MISSING or v is None:
        if default is _MISSING:
            raise ProtocolError(f"'{key}' is required", field=key)
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer() and math.isfinite(v):
            v = int(v)
        else:
            raise ProtocolError(f"'{key}' must be an integer, got {type(v).__name__}", field=key)
    if not lo <= v <= hi:
        raise ProtocolError(f"'{key}' must be in [{lo}, {hi}], got {v}", field=key)
    return v


def get_float(
    d: dict[str, Any], key: str, *, lo: float, hi: float, default: Any = _MISSING
) -> float | None:
    v = d.get(key, _MISSING)
    if v is _MISSING or v is None:
        if default is _MISSING:
            raise ProtocolError(f"'{key}' is required", field=key)
        return default
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ProtocolError(f"'{key}' must be a number, got {type(v).__name__}", field=key)
    v = float(v)
    if not math.isfinite(v):
        raise ProtocolError(f"'{key}' must be finite", field=key)
    if not lo <= v <= hi:
        raise ProtocolError(f"'{key}' must be in [{lo}, {hi}], got {v}", field=key)
    return v


def get_bool(d: dict[str, Any], key: str, *, default: bool) -> bool:
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise ProtocolError(f"'{key}' must be true or false", field=key)
    return v


def get_str(
    d: dict[str, Any], key: str, *, max_len: int, default: Any = _MISSING, min_len: int = 0
) -> str | None:
    v = d.get(key, _MISSING)
    if v is _MISSING or v is None:
        if default is _MISSING:
            raise ProtocolError(f"'{key}' is required", field=key)
        return default
    if not isinstance(v, str):
        raise ProtocolError(f"'{key}' must be a string, got {type(v).__name__}", field=key)
    if len(v) > max_len:
        raise ProtocolError(f"'{key}' is {len(v)} characters; the limit is {max_len}", field=key)
    if len(v) < min_len:
        raise ProtocolError(f"'{key}' must have at least {min_len} characters", field=key)
    return v


def get_list(
    d: dict[str, Any], key: str, *, max_len: int, default: Any = _MISSING, min_len: int = 0
) -> list[Any] | None:
    v = d.get(key, _MISSING)
    if v is _MISSING or v is None:
        if default is _MISSING:
            raise ProtocolError(f"'{key}' is required", field=key)
        return default
    if not isinstance(v, list):
        raise ProtocolError(f"'{key}' must be a list, got {type(v).__name__}", field=key)
    if len(v) > max_len:
        raise ProtocolError(f"'{key}' has {len(v)} items; the limit is {max_len}", field=key)
    if len(v) < min_len:
        raise ProtocolError(f"'{key}' needs at least {min_len} items", field=key)
    return v


def get_token_ids(
    d: dict[str, Any], key: str, *, max_len: int, vocab_max: int = 1 << 24
) -> list[int]:
    ids = get_list(d, key, max_len=max_len)
    for i, t in enumerate(ids):
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab_max:
            raise ProtocolError(f"'{key}[{i}]' must be a token id in [0, {vocab_max})", field=key)
    return ids


def get_dict(d: dict[str, Any], key: str, *, default: Any = _MISSING) -> dict[str, Any] | None:
    v = d.get(key, _MISSING)
    if v is _MISSING or v is None:
        if default is _MISSING:
            raise ProtocolError(f"'{key}' is required", field=key)
        return default
    if not isinstance(v, dict):
        raise ProtocolError(f"'{key}' must be an object", field=key)
    return v


def check_version(d: dict[str, Any], supported: int) -> int:
    v = get_int(d, "version", lo=0, hi=1 << 31, default=supported)
    if v != supported:
        raise ProtocolError(
            f"protocol version {v} is not supported; this peer speaks version {supported}",
            code="unsupported_version",
            field="version",
        )
    return v


def check_version_header(value: str | None, supported: int, header: str) -> None:
    """A peer's protocol version from a header (absent: decided later from the body)."""
    if value is None:
        return
    if not value.strip().isdigit() or int(value) != supported:
        raise ProtocolError(
            f"protocol version {value[:16]!r} is not supported; this peer speaks version "
            f"{supported} (header {header})",
            code="unsupported_version",
            field=header,
        )
