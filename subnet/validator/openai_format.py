"""OpenAI wire format, pure: request bodies → GenerateRequest, results → completion objects.

Domain of a request: the `model` field when it names a domain (`code`, `math`, `general`) or an
expert's model id (e.g. `dmoe/tiny-code`); otherwise (`auto`, `dmoe`, anything else) a cheap
keyword classifier over the prompt: structured data first (a JSON object or list, SQL
statements, a `$ ` shell line, the words JSON/SQL/CSV), then code markers (`def `, `import `,
`return`, braces, ```), then arithmetic (`12 + 7`, "solve", "compute"), else `general`. The
classifier is only the cold start of the learned gate (`subnet.validator.gate`).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from protocol import ChatMessage, GenerateRequest, ProtocolError
from protocol.limits import MAX_TOP_LOGPROBS
from subnet.validator.oai_fields import check_fields
from subnet.validator.oai_logprobs import TokenInfo
from subnet.validator.tasks import DOMAINS

FINISH = {"eos": "stop", "stop": "stop", "length": "length", "cancelled": "stop", "error": "stop"}
# SQL keywords only in capitals ("select one from the menu" is English); a CSV header is a line
# of three or more bare comma-separated words.
_DATA = re.compile(
    r'^\s*(\[\s*)?\{\s*"|^\$ |\b(SELECT\s+[\w*,. ()]+\s+FROM|INSERT\s+INTO|CREATE\s+TABLE'
    r"|UPDATE\s+\w+\s+SET|DELETE\s+FROM|GROUP\s+BY)\b|(?<!import )\b(?i:json|sql|csv|jq)\b"
    r"|^\w+(,\w+){2,}$",
    re.M,
)
_CODE = re.compile(r"```|\bdef |\bimport |\bclass |\breturn\b|[{};]|\bfunction\b|=>|\bprint\(")
_MATH = re.compile(r"\d+\s*[-+*/^=]\s*\d+|\b(solve|compute|calculate|sum of|equation)\b", re.I)


def classify(text: str) -> str:
    if _DATA.search(text):
        return "data"
    if _CODE.search(text):
        return "code"
    if _MATH.search(text):
        return "math"
    return "general"


def _content(value: Any, index: int) -> str:
    # OpenAI allows a string or a list of parts; only text parts are meaningful here.
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for p in value:
            if (
                not isinstance(p, dict)
                or p.get("type") != "text"
                or not isinstance(p.get("text"), str)
            ):
                raise ProtocolError(
                    f"messages[{index}].content parts must be text parts", field="messages"
                )
            parts.append(p["text"])
        return "".join(parts)
    raise ProtocolError(f"messages[{index}].content must be a string", field="messages")


@dataclass(frozen=True)
class Ask:
    """A parsed OpenAI request: the miner request and what the answer's shape must include."""

    req: GenerateRequest
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk with usage
    logprobs: bool = False  # per-token logprobs in the answer
    top_logprobs: int = 0  # alternatives per token (chat top_logprobs, text logprobs=k)


def parse(body: dict[str, Any], *, chat: bool, max_tokens_cap: int) -> Ask:
    """Validate an OpenAI body (raises ProtocolError naming the field), before any miner is
    asked: unsupported fields are refused, never ignored (see oai_fields)."""
    check_fields(body, chat=chat)
    stream = _opt(body, "stream", bool, False)
    opts = body.get("stream_options")
    include_usage = False
    if opts is not None:
        if not stream:
            raise ProtocolError(
                "stream_options is only allowed when stream is true", field="stream_options"
            )
        if not isinstance(opts, dict) or not set(opts) <= {"include_usage"}:
            raise ProtocolError(
                "stream_options must be an object with only 'include_usage'",
                field="stream_options",
            )
        include_usage = _opt(opts, "include_usage", bool, False, "stream_options.include_usage")
    if chat:
        logprobs = _opt(body, "logprobs", bool, False)
        top = _opt(body, "top_logprobs", int, 0)
        if top and not logprobs:
            raise ProtocolError("top_logprobs needs logprobs=true", field="top_logprobs")
    else:
        k = _opt(body, "logprobs", int, None)
        logprobs, top = k is not None, k or 0
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        name = "top_logprobs" if chat else "logprobs"
        raise ProtocolError(f"'{name}' must be in [0, {MAX_TOP_LOGPROBS}]", field=name)
    req = to_generate(body, chat=chat, max_tokens_cap=max_tokens_cap, top_logprobs=top)
    return Ask(req, stream, include_usage, logprobs, top)


def _opt(d: dict[str, Any], key: str, kind: type, default: Any, name: str | None = None) -> Any:
    v = d.get(key)
    if v is None:
        return default
    if type(v) is not kind:  # bool is not an int here
        raise ProtocolError(f"'{name or key}' must be a {kind.__name__}", field=name or key)
    return v


def to_generate(
    body: dict[str, Any], *, chat: bool, max_tokens_cap: int, top_logprobs: int = 0
) -> GenerateRequest:
    """The miner request of an OpenAI body (raises ProtocolError naming the field)."""
    d: dict[str, Any] = {}
    if chat:
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise ProtocolError("'messages' must be a non-empty list", field="messages")
        d["messages"] = [
            {
                "role": m.get("role") if isinstance(m, dict) else None,
                "content": _content(m.get("content") if isinstance(m, dict) else None, i),
            }
            for i, m in enumerate(msgs)
        ]
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ProtocolError("'prompt' must be a string", field="prompt")
        d["prompt"] = prompt
        limit = body.get("max_tokens", 16)
    d["max_tokens"] = 64 if limit is None else limit
    if isinstance(d["max_tokens"], int) and d["max_tokens"] > max_tokens_cap:
        raise ProtocolError(
            f"'max_tokens' is {d['max_tokens']}; this gateway allows at most {max_tokens_cap}",
            field="max_tokens",
        )
    stop = body.get("stop")
    d["stop"] = [stop] if isinstance(stop, str) else (stop or [])
    for key in ("temperature", "top_p", "seed"):
        if body.get(key) is not None:
            d[key] = body[key]
    d.setdefault("temperature", 1.0)  # OpenAI's default
    d["logprobs"] = True  # needed to verify a sample of answers
    d["top_logprobs"] = top_logprobs
    d["stream"] = True
    return GenerateRequest.from_dict(d)


def prompt_text(req: GenerateRequest) -> str:
    if req.prompt is not None:
        return req.prompt
    return "\n".join(m.content for m in req.messages or ())


def request_domain(model: str, req: GenerateRequest, expert_domains: dict[str, str]) -> str:
    if model in DOMAINS:
        return model
    if model in expert_domains:
        return expert_domains[model]
    return classify(prompt_text(req))


def new_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]


class Reply:
    """The OpenAI objects of one answer, streamed (chunks) or whole (a completion)."""

    def __init__(self, ask: Ask, *, chat: bool, model: str):
        self.ask = ask
        self.chat = chat
        self.model = model
        self.id = new_id(chat)
        self.created = int(time.time())
        self.text: list[str] = []
        self.tokens: list[TokenInfo] = []
        self.chunks = 0

    def add(self, text: str, tokens: list[TokenInfo]) -> dict | None:
        """Keep a piece of the answer; returns its chunk when streaming and there is something
        to send."""
        self.text.append(text)
        self.tokens.extend(tokens)
        if not self.ask.stream or (not text and not tokens):
            return None
        return self._chunk(text, tokens, None)

    def last_chunks(self, finish: str, prompt_tokens: int, completion_tokens: int) -> list[dict]:
        """The chunk with the finish reason, then the usage chunk when the user asked for it."""
        out = [self._chunk("", [], finish)]
        if self.ask.include_usage:
            out.append(
                {
                    **self._head("chat.completion.chunk" if self.chat else "text_completion"),
                    "choices": [],
                    "usage": usage(prompt_tokens, completion_tokens),
                }
            )
        return out

    def completion(self, finish: str, prompt_tokens: int, completion_tokens: int) -> dict:
        text = "".join(self.text)
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
            if self.ask.logprobs:
                choice["logprobs"] = chat_logprobs(self.tokens)
        else:
            lp = text_logprobs(self.tokens) if self.ask.logprobs else None
            choice = {"index": 0, "text": text, "logprobs": lp, "finish_reason": finish}
        return {
            **self._head("chat.completion" if self.chat else "text_completion"),
            "choices": [choice],
            "usage": usage(prompt_tokens, completion_tokens),
        }

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def _chunk(self, text: str, tokens: list[TokenInfo], finish: str | None) -> dict:
        self.chunks += 1
        if self.chat:
            delta: dict[str, str] = {"content": text} if text else {}
            if self.chunks == 1:
                delta["role"] = "assistant"
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            if self.ask.logprobs:
                choice["logprobs"] = chat_logprobs(tokens) if tokens else None
            obj = "chat.completion.chunk"
        else:
            lp = text_logprobs(tokens) if self.ask.logprobs and tokens else None
            choice = {"index": 0, "text": text, "logprobs": lp, "finish_reason": finish}
            obj = "text_completion"
        out = {**self._head(obj), "choices": [choice]}
        if self.ask.include_usage:
            out["usage"] = None  # as OpenAI: every chunk but the last has a null usage
        return out


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def chat_logprobs(tokens: list[TokenInfo]) -> dict[str, Any]:
    """Chat's shape: `content[{token, logprob, bytes, top_logprobs[{token, logprob, bytes}]}]`."""
    content = [
        {**_token(t.token, t.logprob), "top_logprobs": [_token(a, lp) for a, lp in t.top]}
        for t in tokens
    ]
    return {"content": content, "refusal": None}


def text_logprobs(tokens: list[TokenInfo]) -> dict[str, Any]:
    """Text completions' shape; as OpenAI, each position's alternatives include the chosen token
    (so up to `logprobs` + 1 entries), keyed by token text."""
    top = []
    for t in tokens:
        alts: dict[str, float] = {}
        for a, lp in t.top:  # most likely first: of two with the same text, the likelier wins
            alts.setdefault(a, lp)
        alts.setdefault(t.token, t.logprob)
        top.append(alts)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": top,
        "text_offset": [t.offset for t in tokens],
    }


def continuation(req: GenerateRequest, rendered_prompt: str, text_so_far: str, used: int):
    """The request a backup miner gets after the first died mid-answer: go on from the text."""
    return GenerateRequest(
        prompt=rendered_prompt + text_so_far,
        max_tokens=max(1, req.max_tokens - used),
        temperature=req.temperature,
        top_p=req.top_p,
        seed=req.seed,
        stop=req.stop,
        logprobs=True,
        top_logprobs=req.top_logprobs,
        stream=True,
    )


__all__ = ["Ask", "ChatMessage", "Reply", "classify", "parse", "to_generate"]
