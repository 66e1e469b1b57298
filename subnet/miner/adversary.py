"""Cheating miners for the subnet's own tests: one wrapper engine, one behaviour per cheat.

Every cheat a miner is paid to try, as a behaviour of one class wrapped around an honest engine
(`AdversarialEngine`), so the real miner process runs it (`dmoe miner --adversary NAME`, hidden):

  wrong_model   serves another expert's weights under the declared card (`swap_weights`)
  random        uniformly random token ids          repeat    one token over and over
  copycat       relays another miner's answer (`--adversary.target URL,HOTKEY`), one request late
  replay        answers with a cached answer of its own to an earlier prompt
  pad_eos       ends the answer early (EOS) and pads to max_tokens with filler tokens
  burst         buffers the whole answer, then sends every chunk at once (fakes tokens/s)
  lie_usage     honest tokens, inflated usage counts  lie_logprobs  honest tokens, made-up logprobs
  slow_drip     honest tokens, one chunk every `drip_s`  oversized  a chunk of several MB
  malformed     a final answer that breaks the protocol (negative / out-of-range token ids)
  hang          accepts the request and never answers

The validator must catch each with a reason (`tests/hostile/test_adversaries.py`). Only the
`generate` path cheats; cards, scoring and capacity pass through to the honest engine.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from protocol import GenerateChunk, GenerateRequest, GenerateResponse, TokenLogprob, Usage
from subnet.engine.base import Engine, GenerationHandle

log = logging.getLogger(__name__)

ADVERSARIES = ("wrong_model", "random", "repeat", "copycat", "replay", "pad_eos", "burst",
               "lie_usage", "lie_logprobs", "slow_drip", "oversized", "malformed", "hang")  # fmt: skip


@dataclass(frozen=True)
class AdversaryConfig:
    name: str
    target_url: str = ""  # copycat: the miner whose answers it relays
    target_hotkey: str = ""
    drip_s: float = 5.0  # slow_drip: seconds between chunks (past a validator's read timeout)
    hang_s: float = 3600.0  # hang: how long a request is held (the client gives up first)
    oversized_bytes: int = 4 << 20  # past the 1 MiB SSE event limit of the client
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in ADVERSARIES:
            raise ValueError(f"unknown adversary {self.name!r}; one of {', '.join(ADVERSARIES)}")
        if self.name == "copycat" and not (self.target_url and self.target_hotkey):
            raise ValueError("copycat needs --adversary.target URL,HOTKEY")


def parse_target(value: str | None) -> tuple[str, str]:
    """`URL,HOTKEY` -> (url, hotkey); empty -> ("", "")."""
    if not value:
        return "", ""
    url, _, hotkey = value.partition(",")
    return url.strip(), hotkey.strip()


class _Handle:
    """Duck-typed GenerationHandle: iterates a coroutine-made stream; `response` at the end."""

    def __init__(self, request_id: str, items: AsyncIterator[GenerateChunk | GenerateResponse]):
        self.request_id = request_id
        self._items = items
        self.response: GenerateResponse | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __aiter__(self) -> AsyncIterator[GenerateChunk | GenerateResponse]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[GenerateChunk | GenerateResponse]:
        async for item in self._items:
            if isinstance(item, GenerateResponse):
                self.response = item
            yield item
            if self.response is not None:
                return

    async def result(self) -> GenerateResponse:
        async for _ in self:
            pass
        assert self.response is not None
        return self.response


def _chunks(resp: GenerateResponse) -> list[GenerateChunk]:
    return [
        GenerateChunk(resp.request_id, i, (t,), "", resp.logprobs[i : i + 1])
        for i, t in enumerate(resp.token_ids)
    ]


async def _paced(resp: GenerateResponse, step_s: float = 0.003):
    """Stream a made-up answer one token per chunk at a decode-like pace (a cheat that wants
    to look fast and honest does not burst)."""
    for chunk in _chunks(resp):
        await asyncio.sleep(step_s)
        yield chunk
    yield resp


def _fake(req: GenerateRequest, model: str, ids: list[int], lp: float = -0.1) -> GenerateResponse:
    return GenerateResponse(
        request_id=req.request_id,
        model=model,
        token_ids=tuple(ids),
        text="",
        finish_reason="length",
        usage=Usage(8, len(ids)),
        logprobs=tuple(TokenLogprob(t, lp) for t in ids) if req.logprobs else (),
    )


class AdversarialEngine:
    """An honest engine with one cheat on its generate path; everything else passes through."""

    def __init__(
        self,
        inner: Engine,
        config: AdversaryConfig,
        vocab_size: int,
        eos_id: int,
        keypair: Any = None,  # copycat signs its relayed requests with it
    ):
        self.inner = inner
        self.keypair = keypair
        self.config = config
        self.vocab = vocab_size
        self.eos = eos_id
        self.rng = random.Random(config.seed)
        self.cache: deque[GenerateResponse] = deque(maxlen=64)  # replay, copycat
        self._relay: Any = None  # copycat: SignedClient, made on first use
        self._tasks: set[asyncio.Task] = set()  # copycat: relays in flight

    # --- pass-through members the server reads
    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def stop(self, drain_timeout: float = 30.0) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._relay is not None:
            await self._relay.close()
        await self.inner.stop(drain_timeout)

    def submit(self, req: GenerateRequest) -> GenerationHandle:
        # Capacity and validation stay honest: refuse at once what the honest engine refuses.
        if self.config.name in ("random", "repeat", "hang", "copycat", "malformed", "oversized"):
            stream = getattr(self, "_" + self.config.name)(req)
        else:
            handle = self.inner.submit(req)
            stream = getattr(self, "_" + self.config.name)(req, handle)
        return _Handle(req.request_id, stream)  # type: ignore[return-value]

    async def generate(
        self, req: GenerateRequest
    ) -> AsyncIterator[GenerateChunk | GenerateResponse]:
        async for item in self.submit(req):
            yield item

    async def complete(self, req: GenerateRequest) -> GenerateResponse:
        return await self.submit(req).result()

    # --- content cheats
    async def _random(self, req: GenerateRequest):
        ids = [self.rng.randrange(2, self.vocab) for _ in range(req.max_tokens)]
        resp = _fake(req, self.card.model_id, ids)
        async for item in _paced(resp):
            yield item

    async def _repeat(self, req: GenerateRequest):
        resp = _fake(req, self.card.model_id, [self.rng.randrange(2, self.vocab)] * req.max_tokens)
        async for item in _paced(resp):
            yield item

    async def _replay(self, req: GenerateRequest, handle):
        honest = await handle.result()
        old = self.cache[0] if self.cache else honest
        self.cache.append(honest)
        n = min(req.max_tokens, len(old.token_ids))
        resp = replace(
            old,
            request_id=req.request_id,
            token_ids=old.token_ids[:n],
            logprobs=old.logprobs[:n] if req.logprobs else (),
            usage=Usage(honest.usage.prompt_tokens, n),
            finish_reason="length" if n == req.max_tokens else old.finish_reason,
        )
        async for item in _paced(resp):
            yield item

    async def _copycat(self, req: GenerateRequest):
        from subnet.miner.client import generate
        from subnet.net import SignedClient

        if self._relay is None:
            self._relay = SignedClient.create(self.keypair)
        c = self.config

        async def relay() -> None:
            self.cache.append(await generate(self._relay, c.target_url, c.target_hotkey, req))

        # Relay in the background and answer at once with the last relayed answer (one request
        # late: another miner's answer to a different prompt). Only the first request waits.
        task = asyncio.create_task(relay())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if not self.cache:
            await asyncio.shield(task)
        old = self.cache[-1]
        n = min(req.max_tokens, len(old.token_ids))
        resp = replace(old, request_id=req.request_id, token_ids=old.token_ids[:n],
                      logprobs=old.logprobs[:n] if req.logprobs else (),
                      usage=Usage(old.usage.prompt_tokens, n),
                      finish_reason="length" if n == req.max_tokens else old.finish_reason)  # fmt: skip
        async for item in _paced(resp):
            yield item

    async def _pad_eos(self, req: GenerateRequest, handle):
        # Generate three quarters of the answer, end it (EOS), then pad to max_tokens with cheap
        # filler: the bill says max_tokens were generated. (An engine run with ignore_eos does
        # the same.)
        honest = await handle.result()
        keep = max(1, req.max_tokens * 3 // 4)
        ids, lps = list(honest.token_ids[:keep]), list(honest.logprobs[:keep])
        filler = ids[-1] if ids else 2
        for t in [self.eos] + [filler] * req.max_tokens:
            if len(ids) >= req.max_tokens:
                break
            ids.append(t)
            lps.append(TokenLogprob(t, -0.1))
        resp = replace(
            honest,
            token_ids=tuple(ids),
            logprobs=tuple(lps) if req.logprobs else (),
            finish_reason="length",
            usage=Usage(honest.usage.prompt_tokens, len(ids)),
        )
        async for item in _paced(resp):
            yield item

    async def _lie_usage(self, req: GenerateRequest, handle):
        async for item in handle:
            if isinstance(item, GenerateResponse):
                n = item.usage.completion_tokens
                item = replace(item, usage=Usage(item.usage.prompt_tokens, min(4096, n * 10 + 7)))
            yield item

    async def _lie_logprobs(self, req: GenerateRequest, handle):
        async for item in handle:
            if isinstance(item, GenerateResponse):  # claim near-certainty for every token
                item = replace(item, logprobs=tuple(TokenLogprob(lp.token_id, -0.001)
                                                    for lp in item.logprobs))  # fmt: skip
            yield item

    async def _malformed(self, req: GenerateRequest):
        yield _fake(req, self.card.model_id, [-1, self.vocab + 10**6] + [3] * 4)

    async def _oversized(self, req: GenerateRequest):
        yield GenerateChunk(req.request_id, 0, (3,), "x" * self.config.oversized_bytes)
        yield _fake(req, self.card.model_id, [3])

    # --- timing cheats
    async def _burst(self, req: GenerateRequest, handle):
        honest = await handle.result()  # hold everything back, then send it in one burst
        for chunk in _chunks(honest):
            yield chunk
        yield honest

    async def _slow_drip(self, req: GenerateRequest, handle):
        async for item in handle:
            await asyncio.sleep(self.config.drip_s)
            yield item

    async def _hang(self, req: GenerateRequest):
        await asyncio.sleep(self.config.hang_s)
        yield _fake(req, self.card.model_id, [3])


def swap_weights(declared: Any, served: Any) -> Any:
    """wrong_model: the `served` LoadedExpert's weights behind the `declared` expert's card."""
    return replace(served, card=declared.card)


def install(server: Any, config: AdversaryConfig, expert: Any) -> None:
    """Wrap a created (not yet started) MinerServer's engine with the cheat."""
    if config.name == "wrong_model":
        return  # done at load time with swap_weights; the engine itself is honest
    tok = expert.tokenizer
    server.engine = AdversarialEngine(
        server.engine, config, len(tok), tok.eos_token_id, keypair=server.wallet.hotkey
    )
    log.warning("adversary %r installed: this miner cheats on purpose (tests only)", config.name)


def install_from_config(server: Any, config: Any) -> None:
    """`dmoe miner --adversary NAME`: install the cheat on a created MinerServer.

    wrong_model serves the sibling tiny expert's weights (code <-> math, same architecture)
    under the declared card, so it rebuilds the engine around the swapped expert.
    """
    from pathlib import Path

    from subnet.engine.loading import load_expert
    from subnet.miner.server import engine_for

    url, hotkey = parse_target(config.adversary_target)
    adv = AdversaryConfig(config.adversary, url, hotkey)
    ec = config.engine
    declared = load_expert(ec.expert, device=ec.device, dtype=ec.dtype)
    if adv.name == "wrong_model":
        here = Path(ec.expert)
        sibling = here.parent / ("math" if here.name == "code" else "code")
        served = swap_weights(declared, load_expert(sibling, device=ec.device, dtype=ec.dtype))
        server.engine = engine_for(served, ec)
        log.warning("adversary 'wrong_model': serving %s weights as %s", sibling, here)
        return
    install(server, adv, declared)
