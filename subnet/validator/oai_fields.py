"""Which OpenAI request fields the gateway honours, and the refusal of every other one.

Nothing is silently ignored: a field is honoured, accepted at the value that asks for nothing
(`n: 1`, `tools: []`, `response_format: {"type": "text"}`, `logit_bias: {}`, a zero penalty,
...), inert by nature (an identifier for the caller's own bookkeeping, which changes no answer),
or refused with a 400 whose `param` names it. `null` always means "not given". Unknown fields
are refused too, as OpenAI does. The check runs before any miner is contacted.
"""

from __future__ import annotations

from typing import Any

from protocol import ProtocolError

# Honoured (read by openai_format.parse).
HONOURED_COMMON = frozenset(
    {"model", "max_tokens", "temperature", "top_p", "seed", "stop", "stream", "stream_options"}
)
HONOURED_CHAT = frozenset({"messages", "max_completion_tokens", "logprobs", "top_logprobs"})
HONOURED_TEXT = frozenset({"prompt", "logprobs"})

# Changes nothing in an answer by its nature: ids and tags for the caller's own accounting.
INERT_COMMON = frozenset({"user"})
INERT_CHAT = frozenset({"metadata", "safety_identifier", "prompt_cache_key"})

# Accepted only at these values (those that ask for nothing); anything else is refused.
NOOP_COMMON: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "frequency_penalty": (0,),
    "presence_penalty": (0,),
    "logit_bias": ({},),
}
NOOP_CHAT: dict[str, tuple[Any, ...]] = {
    "response_format": ({"type": "text"},),
    "tools": ([],),
    "functions": ([],),
    "tool_choice": ("none",),
    "function_call": ("none",),
    "parallel_tool_calls": (),
    "modalities": (["text"],),
    "audio": (),
    "prediction": (),
    "reasoning_effort": (),
    "verbosity": (),
    "web_search_options": (),
    "store": (False,),
    "service_tier": ("auto", "default"),
}
NOOP_TEXT: dict[str, tuple[Any, ...]] = {"best_of": (1,), "echo": (False,), "suffix": ("",)}

WHY = {
    "n": "only n=1 is supported (one choice per request)",
    "response_format": "structured output is not supported; only {'type': 'text'}",
    "tools": "tool calling is not supported",
    "functions": "function calling is not supported",
    "tool_choice": "tool calling is not supported",
    "function_call": "function calling is not supported",
    "parallel_tool_calls": "tool calling is not supported",
    "logit_bias": "logit_bias is not supported (answers are verified against plain sampling)",
    "frequency_penalty": "penalties are not supported (answers are verified against plain sampling)",
    "presence_penalty": "penalties are not supported (answers are verified against plain sampling)",
    "best_of": "only best_of=1 is supported",
    "echo": "echo is not supported",
    "suffix": "suffix (insertion) is not supported",
    "modalities": "only text output is supported",
    "audio": "audio output is not supported",
    "store": "stored completions are not supported",
}


def check_fields(body: dict[str, Any], *, chat: bool) -> None:
    """Raise ProtocolError (code `unsupported_parameter`, naming the field) for any field the
    gateway would otherwise ignore."""
    honoured = HONOURED_COMMON | (HONOURED_CHAT if chat else HONOURED_TEXT)
    inert = INERT_COMMON | (INERT_CHAT if chat else frozenset())
    noop = {**NOOP_COMMON, **(NOOP_CHAT if chat else NOOP_TEXT)}
    for name, value in body.items():
        if name in honoured or name in inert or value is None:
            continue
        if name not in noop:
            raise ProtocolError(
                f"unrecognized request argument supplied: {name}",
                code="unsupported_parameter",
                field=name,
            )
        if not any(_same(value, ok) for ok in noop[name]):
            why = WHY.get(name, f"'{name}' is not supported")
            raise ProtocolError(
                f"{why}; got {name}={_short(value)}", code="unsupported_parameter", field=name
            )


def _same(value: Any, ok: Any) -> bool:
    # JSON's 0 and 0.0 are the same; True is not 1.
    if isinstance(value, bool) or isinstance(ok, bool):
        return value is ok
    return value == ok


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
