"""Turn a GenerateRequest into token ids; miners and validators must agree byte for byte.

A raw `prompt` is encoded as is (no special tokens added). `messages` use the tokenizer's chat
template when it has one (with the generation prompt appended); otherwise this fixed template:

    <role>: <content>\n   for each message, then   assistant:

A prompt that encodes to nothing becomes the single BOS (else EOS) token, so there is always a
position to predict from.
"""

from __future__ import annotations

from typing import Any

from protocol import GenerateRequest


def render_messages(messages) -> str:
    return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"


def encode_prompt(tokenizer: Any, req: GenerateRequest) -> list[int]:
    ids = _encode(tokenizer, req)
    if not ids:
        start = tokenizer.bos_token_id
        ids = [start if start is not None else tokenizer.eos_token_id]
    return ids


def _encode(tokenizer: Any, req: GenerateRequest) -> list[int]:
    if req.messages is None:
        return list(tokenizer.encode(req.prompt, add_special_tokens=False))
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in req.messages],
            add_generation_prompt=True,
            tokenize=True,
        )
        if isinstance(ids, dict):  # some tokenizers return a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)
    return list(tokenizer.encode(render_messages(req.messages), add_special_tokens=False))
