"""The expert card a miner declares, and the error body every server answers with."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from protocol.limits import MAX_DOMAINS, MAX_NEW_TOKENS, PROTOCOL_VERSION
from protocol.validate import (
    ProtocolError,
    check_version,
    get_float,
    get_int,
    get_list,
    get_str,
)

# Precisions a card may declare; validators tolerate an honest miner's rounding per pair of
# (miner, validator) precision. Quantised serving is another registry entry, not a precision.
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ExpertCard:
    """What a miner declares it serves. `weights_hash` pins the exact weights (sha256 hex)."""

    model_id: str
    revision: str
    weights_hash: str
    domains: tuple[str, ...]
    max_context: int
    capacity: int  # concurrent sequences the engine batches
    engine: str  # e.g. "hf-continuous/0.1" or "vllm/0.6"
    max_new_tokens: int = MAX_NEW_TOKENS
    dtype: str = "float32"  # the precision the weights are served in (one of DTYPES)
    version: int = PROTOCOL_VERSION

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExpertCard:
        check_version(d, PROTOCOL_VERSION)
        domains = get_list(d, "domains", max_len=MAX_DOMAINS, min_len=1)
        for i, x in enumerate(domains):
            if not isinstance(x, str) or not 0 < len(x) <= 32:
                raise ProtocolError(f"'domains[{i}]' must be a short string", field="domains")
        dtype = get_str(d, "dtype", max_len=16, default="float32")  # absent on older cards
        if dtype not in DTYPES:
            raise ProtocolError(f"'dtype' must be one of {', '.join(DTYPES)}", field="dtype")
        return cls(
            model_id=get_str(d, "model_id", max_len=256, min_len=1),
            revision=get_str(d, "revision", max_len=64, min_len=1),
            weights_hash=get_str(d, "weights_hash", max_len=128, min_len=8),
            domains=tuple(domains),
            max_context=get_int(d, "max_context", lo=1, hi=1 << 20),
            capacity=get_int(d, "capacity", lo=1, hi=1 << 16),
            engine=get_str(d, "engine", max_len=64),
            max_new_tokens=get_int(
                d, "max_new_tokens", lo=1, hi=MAX_NEW_TOKENS, default=MAX_NEW_TOKENS
            ),
            dtype=dtype,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["domains"] = list(self.domains)
        return d


@dataclass(frozen=True)
class ErrorBody:
    """Every 4xx/5xx body: a stable code, a message for humans, optionally when to retry."""

    error: str
    message: str
    retry_after: float | None = None
    field: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorBody:
        return cls(
            error=get_str(d, "error", max_len=64),
            message=get_str(d, "message", max_len=4096, default=""),
            retry_after=get_float(d, "retry_after", lo=0.0, hi=86400.0, default=None),
            field=get_str(d, "field", max_len=64, default=None),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}
