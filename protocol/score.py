"""Scoring messages, version 1: teacher-forced log-probabilities of given token ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol.limits import (
    MAX_REQUEST_ID_CHARS,
    MAX_SCORE_TOKENS,
    MAX_TOP_LOGPROBS,
    PROTOCOL_VERSION,
)
from protocol.messages import new_request_id
from protocol.validate import (
    ProtocolError,
    check_version,
    get_float,
    get_int,
    get_list,
    get_str,
    get_token_ids,
)


@dataclass(frozen=True)
class ScoreRequest:
    """Teacher-forced log-probabilities of `token_ids[start:]` given everything before each one."""

    token_ids: tuple[int, ...]
    start: int = 1
    top_k: int = 0
    request_id: str = field(default_factory=new_request_id)
    version: int = PROTOCOL_VERSION

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreRequest:
        check_version(d, PROTOCOL_VERSION)
        ids = get_token_ids(d, "token_ids", max_len=MAX_SCORE_TOKENS)
        if len(ids) < 2:
            raise ProtocolError("'token_ids' needs at least 2 tokens to score", field="token_ids")
        return cls(
            token_ids=tuple(ids),
            start=get_int(d, "start", lo=1, hi=len(ids) - 1, default=1),
            top_k=get_int(d, "top_k", lo=0, hi=MAX_TOP_LOGPROBS, default=0),
            request_id=get_str(
                d, "request_id", max_len=MAX_REQUEST_ID_CHARS, min_len=1, default=new_request_id()
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "request_id": self.request_id,
            "token_ids": list(self.token_ids),
            "start": self.start,
            "top_k": self.top_k,
        }


@dataclass(frozen=True)
class ScoreResponse:
    """`logprobs[i]` and `ranks[i]` (0 = the model's argmax) for token `start + i`."""

    request_id: str
    logprobs: tuple[float, ...]
    ranks: tuple[int, ...]
    top: tuple[tuple[tuple[int, float], ...], ...] = ()
    version: int = PROTOCOL_VERSION

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreResponse:
        check_version(d, PROTOCOL_VERSION)
        lps = get_list(d, "logprobs", max_len=MAX_SCORE_TOKENS)
        ranks = get_list(d, "ranks", max_len=MAX_SCORE_TOKENS)
        if len(lps) != len(ranks):
            raise ProtocolError("'logprobs' and 'ranks' must have the same length", field="ranks")
        return cls(
            request_id=get_str(d, "request_id", max_len=MAX_REQUEST_ID_CHARS),
            logprobs=tuple(get_float({"x": x}, "x", lo=-1e9, hi=0.0) for x in lps),
            ranks=tuple(get_int({"x": x}, "x", lo=0, hi=1 << 24) for x in ranks),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "request_id": self.request_id,
            "logprobs": list(self.logprobs),
            "ranks": list(self.ranks),
            "top": [[list(p) for p in row] for row in self.top],
        }
