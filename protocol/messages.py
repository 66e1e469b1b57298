"""Generation messages, version 1: the request, streamed chunks and the final response.

Every message is a frozen dataclass with `to_dict()` for sending and `from_dict()` for receiving;
`from_dict` validates every field with bounds and ignores fields it does not know.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from protocol.limits import (
    FINISH_REASONS,
    MAX_MESSAGES,
    MAX_NEW_TOKENS,
    MAX_PROMPT_CHARS,
    MAX_REQUEST_ID_CHARS,
    MAX_STOP_CHARS,
    MAX_STOP_SEQUENCES,
    MAX_TOP_LOGPROBS,
    PROTOCOL_VERSION,
    ROLES,
)
from protocol.validate import (
    ProtocolError,
    check_version,
    get_bool,
    get_dict,
    get_float,
    get_int,
    get_list,
    get_str,
    get_token_ids,
)


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str

    @classmethod
    def from_dict(cls, d: Any, index: int) -> ChatMessage:
        if not isinstance(d, dict):
            raise ProtocolError(f"'messages[{index}]' must be an object", field="messages")
        role = get_str(d, "role", max_len=16)
        if role not in ROLES:
            raise ProtocolError(
                f"'messages[{index}].role' must be one of {', '.join(ROLES)}", field="messages"
            )
        return cls(role=role, content=get_str(d, "content", max_len=MAX_PROMPT_CHARS))


@dataclass(frozen=True)
class GenerateRequest:
    """Generate up to `max_tokens` tokens after `prompt` (or the chat template of `messages`)."""

    prompt: str | None = None
    messages: tuple[ChatMessage, ...] | None = None
    max_tokens: int = 64
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    seed: int | None = None  # None: fresh randomness (a fixed default would repeat answers)
    stop: tuple[str, ...] = ()
    logprobs: bool = True
    top_logprobs: int = 0
    stream: bool = True
    request_id: str = field(default_factory=new_request_id)
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ProtocolError("give exactly one of 'prompt' or 'messages'", field="prompt")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerateRequest:
        check_version(d, PROTOCOL_VERSION)
        prompt = get_str(d, "prompt", max_len=MAX_PROMPT_CHARS, default=None)
        raw_messages = get_list(d, "messages", max_len=MAX_MESSAGES, default=None, min_len=1)
        messages = None
        if raw_messages is not None:
            messages = tuple(ChatMessage.from_dict(m, i) for i, m in enumerate(raw_messages))
            if sum(len(m.content) for m in messages) > MAX_PROMPT_CHARS:
                raise ProtocolError(
                    f"messages total more than {MAX_PROMPT_CHARS} characters", field="messages"
                )
        stop = get_list(d, "stop", max_len=MAX_STOP_SEQUENCES, default=[])
        for i, s in enumerate(stop):
            if not isinstance(s, str) or not 0 < len(s) <= MAX_STOP_CHARS:
                raise ProtocolError(
                    f"'stop[{i}]' must be a string of 1..{MAX_STOP_CHARS} characters", field="stop"
                )
        return cls(
            prompt=prompt,
            messages=messages,
            max_tokens=get_int(d, "max_tokens", lo=1, hi=MAX_NEW_TOKENS, default=64),
            temperature=get_float(d, "temperature", lo=0.0, hi=2.0, default=0.0),
            top_p=get_float(d, "top_p", lo=1e-6, hi=1.0, default=1.0),
            seed=get_int(d, "seed", lo=0, hi=(1 << 63) - 1, default=None),
            stop=tuple(stop),
            logprobs=get_bool(d, "logprobs", default=True),
            top_logprobs=get_int(d, "top_logprobs", lo=0, hi=MAX_TOP_LOGPROBS, default=0),
            stream=get_bool(d, "stream", default=True),
            request_id=get_str(
                d, "request_id", max_len=MAX_REQUEST_ID_CHARS, min_len=1, default=new_request_id()
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        if self.messages is None:
            d.pop("messages")
        else:
            d["messages"] = [asdict(m) for m in self.messages]
            d.pop("prompt")
        return d


@dataclass(frozen=True)
class TokenLogprob:
    """Log-probability of the chosen token, and the top alternatives when asked for."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()

    @classmethod
    def from_dict(cls, d: Any) -> TokenLogprob:
        if not isinstance(d, dict):
            raise ProtocolError("each logprob entry must be an object", field="logprobs")
        top = get_list(d, "top", max_len=MAX_TOP_LOGPROBS, default=[])
        parsed = []
        for pair in top:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise ProtocolError("'top' entries must be [token_id, logprob]", field="logprobs")
            parsed.append(
                (
                    get_int({"t": pair[0]}, "t", lo=0, hi=1 << 24),
                    get_float({"l": pair[1]}, "l", lo=-1e9, hi=0.0),
                )
            )
        return cls(
            token_id=get_int(d, "token_id", lo=0, hi=1 << 24),
            logprob=get_float(d, "logprob", lo=-1e9, hi=0.0),
            top=tuple(parsed),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "logprob": self.logprob,
            "top": [list(p) for p in self.top],
        }


@dataclass(frozen=True)
class GenerateChunk:
    """One streamed piece: the tokens produced since the previous chunk."""

    request_id: str
    index: int  # position of the first token of this chunk in the completion
    token_ids: tuple[int, ...]
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerateChunk:
        return cls(
            request_id=get_str(d, "request_id", max_len=MAX_REQUEST_ID_CHARS),
            index=get_int(d, "index", lo=0, hi=MAX_NEW_TOKENS),
            token_ids=tuple(get_token_ids(d, "token_ids", max_len=MAX_NEW_TOKENS)),
            text=get_str(d, "text", max_len=MAX_NEW_TOKENS * 64),
            logprobs=tuple(
                TokenLogprob.from_dict(x)
                for x in get_list(d, "logprobs", max_len=MAX_NEW_TOKENS, default=[])
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "index": self.index,
            "token_ids": list(self.token_ids),
            "text": self.text,
            "logprobs": [lp.to_dict() for lp in self.logprobs],
        }


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Usage:
        return cls(
            prompt_tokens=get_int(d, "prompt_tokens", lo=0, hi=1 << 20),
            completion_tokens=get_int(d, "completion_tokens", lo=0, hi=MAX_NEW_TOKENS),
        )


@dataclass(frozen=True)
class Timings:
    """Server-side timings in milliseconds (the validator measures its own; these are claims)."""

    queue_ms: float = 0.0
    ttft_ms: float = 0.0
    total_ms: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Timings:
        return cls(
            queue_ms=get_float(d, "queue_ms", lo=0.0, hi=1e8, default=0.0),
            ttft_ms=get_float(d, "ttft_ms", lo=0.0, hi=1e8, default=0.0),
            total_ms=get_float(d, "total_ms", lo=0.0, hi=1e8, default=0.0),
        )


@dataclass(frozen=True)
class GenerateResponse:
    """The whole completion: sent as the body when not streaming, or as the final SSE event."""

    request_id: str
    model: str
    token_ids: tuple[int, ...]
    text: str
    finish_reason: str
    usage: Usage
    logprobs: tuple[TokenLogprob, ...] = ()
    timings: Timings = Timings()
    version: int = PROTOCOL_VERSION

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerateResponse:
        check_version(d, PROTOCOL_VERSION)
        finish = get_str(d, "finish_reason", max_len=16)
        if finish not in FINISH_REASONS:
            raise ProtocolError(
                f"'finish_reason' must be one of {', '.join(FINISH_REASONS)}", field="finish_reason"
            )
        token_ids = tuple(get_token_ids(d, "token_ids", max_len=MAX_NEW_TOKENS))
        logprobs = tuple(
            TokenLogprob.from_dict(x)
            for x in get_list(d, "logprobs", max_len=MAX_NEW_TOKENS, default=[])
        )
        if logprobs and len(logprobs) != len(token_ids):
            raise ProtocolError("'logprobs' must have one entry per token", field="logprobs")
        return cls(
            request_id=get_str(d, "request_id", max_len=MAX_REQUEST_ID_CHARS),
            model=get_str(d, "model", max_len=256),
            token_ids=token_ids,
            text=get_str(d, "text", max_len=MAX_NEW_TOKENS * 64),
            finish_reason=finish,
            usage=Usage.from_dict(get_dict(d, "usage")),
            logprobs=logprobs,
            timings=Timings.from_dict(get_dict(d, "timings", default={})),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "request_id": self.request_id,
            "model": self.model,
            "token_ids": list(self.token_ids),
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": asdict(self.usage),
            "logprobs": [lp.to_dict() for lp in self.logprobs],
            "timings": asdict(self.timings),
        }
