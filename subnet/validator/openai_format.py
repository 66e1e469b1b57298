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
from typing import Any

from protocol import ChatMessage, GenerateRequest, ProtocolError
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


def to_generate(body: dict[str, Any], *, chat: bool, max_tokens_cap: int) -> GenerateRequest:
    """Validate an OpenAI body into our request (raises ProtocolError naming the field)."""
    if body.get("n", 1) != 1:
        raise ProtocolError("only n=1 is supported", field="n")
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


def chunk(cid: str, model: str, chat: bool, text: str, finish: str | None, first: bool) -> dict:
    if chat:
        delta: dict[str, str] = {"content": text} if text else {}
        if first:
            delta["role"] = "assistant"
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    return {
        "id": cid,
        "object": obj,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }


def completion(
    cid: str,
    model: str,
    chat: bool,
    text: str,
    finish: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict:
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
        }
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return {
        "id": cid,
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
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
        stream=True,
    )


__all__ = ["ChatMessage", "classify", "to_generate"]
