"""Calling a miner: signed generate (streamed or not), score and card, decoded into messages.

    async for item in generate_stream(client, url, miner_hotkey, req):  # GenerateChunk..., GenerateResponse
    resp = await generate(client, url, miner_hotkey, req)             # one JSON body
    ok = await score(client, url, miner_hotkey, score_req)

A non-200 answer raises `MinerError(status, ErrorBody)`; malformed answers raise ProtocolError.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

from aiohttp.http_exceptions import HttpProcessingError

from protocol import (
    ErrorBody,
    ExpertCard,
    GenerateChunk,
    GenerateRequest,
    GenerateResponse,
    ProtocolError,
    ScoreRequest,
    ScoreResponse,
)
from subnet.net import SignedClient

MAX_EVENT_BYTES = 1 << 20


class MinerError(RuntimeError):
    def __init__(self, status: int, body: ErrorBody):
        super().__init__(f"{status} {body.error}: {body.message}")
        self.status = status
        self.body = body


async def _raise_for(resp) -> None:
    if resp.status == 200:
        return
    raw = await resp.read()
    try:
        body = ErrorBody.from_dict(json.loads(raw))
    except (ValueError, ProtocolError, AttributeError):
        body = ErrorBody("bad_reply", raw[:200].decode("utf-8", "replace"))
    raise MinerError(resp.status, body)


async def generate_stream(
    client: SignedClient,
    url: str,
    receiver: str,
    req: GenerateRequest,
    *,
    timeout: float = 60.0,
    read_timeout: float = 30.0,
) -> AsyncIterator[GenerateChunk | GenerateResponse]:
    """POST /v1/generate with stream=true; yields chunks, then the final response."""
    payload = replace(req, stream=True).to_dict()
    async with client.request(
        "POST",
        url.rstrip("/") + "/v1/generate",
        receiver_ss58=receiver,
        payload=payload,
        timeout=timeout,
        read_timeout=read_timeout,
    ) as resp:
        await _raise_for(resp)
        event = "message"
        lines = resp.content.__aiter__()
        while True:
            try:
                line = await lines.__anext__()
            except StopAsyncIteration:
                break
            except HttpProcessingError as err:  # a line past aiohttp's limit (LineTooLong)
                raise ProtocolError(f"SSE event too large: {err}", code="bad_reply") from err
            if len(line) > MAX_EVENT_BYTES:
                raise ProtocolError("SSE event too large", code="bad_reply")
            text = line.decode("utf-8").rstrip("\r\n")
            if text.startswith("event:"):
                event = text[6:].strip()
            elif text.startswith("data:"):
                data = json.loads(text[5:].strip())
                if event == "done":
                    yield GenerateResponse.from_dict(data)
                    return
                yield GenerateChunk.from_dict(data)
            elif not text:
                event = "message"
    raise ProtocolError("stream ended without a final 'done' event", code="bad_reply")


async def generate(
    client: SignedClient, url: str, receiver: str, req: GenerateRequest, *, timeout: float = 60.0
) -> GenerateResponse:
    async with client.request(
        "POST",
        url.rstrip("/") + "/v1/generate",
        receiver_ss58=receiver,
        payload=replace(req, stream=False).to_dict(),
        timeout=timeout,
    ) as resp:
        await _raise_for(resp)
        return GenerateResponse.from_dict(await resp.json())


async def score(
    client: SignedClient, url: str, receiver: str, req: ScoreRequest, *, timeout: float = 30.0
) -> ScoreResponse:
    async with client.request(
        "POST",
        url.rstrip("/") + "/v1/score",
        receiver_ss58=receiver,
        payload=req.to_dict(),
        timeout=timeout,
    ) as resp:
        await _raise_for(resp)
        return ScoreResponse.from_dict(await resp.json())


async def card(
    client: SignedClient, url: str, receiver: str, *, timeout: float = 10.0
) -> ExpertCard:
    async with client.request(
        "GET", url.rstrip("/") + "/v1/card", receiver_ss58=receiver, timeout=timeout
    ) as resp:
        await _raise_for(resp)
        return ExpertCard.from_dict(await resp.json())
