"""`AdversarialEngine`: an honest engine with one cheat on its generate path.

Capacity, scoring and the card pass through to the honest engine; `submit` either refuses
(`EngineFull`, which the server answers with `429`), or runs the cheat's stream function over the
honest generation. Cheats that need a second model (a cheap one for users, noisy weights for
sampled requests) get it as `alt`, an engine started and stopped with the honest one.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from protocol import GenerateChunk, GenerateRequest, GenerateResponse
from subnet.engine.base import Engine, EngineFull, GenerationHandle
from subnet.miner.adversary import choosy, content
from subnet.miner.adversary.handle import CheatHandle

# Cheats that never run the honest model (the rest shape its generation).
WITHOUT_MODEL = frozenset({"random", "repeat", "hang", "copycat", "malformed", "oversized"})

STREAMS: dict[str, Callable[..., AsyncIterator[GenerateChunk | GenerateResponse]]] = {
    "random": content.random,
    "repeat": content.repeat,
    "copycat": content.copycat,
    "replay": content.replay,
    "pad_eos": content.pad_eos,
    "lie_usage": content.lie_usage,
    "lie_logprobs": content.lie_logprobs,
    "lie_text": content.lie_text,
    "stop_early": content.stop_early,
    "short": content.short,
    "malformed": content.malformed,
    "oversized": content.oversized,
    "burst": choosy.burst,
    "slow_drip": choosy.slow_drip,
    "hang": choosy.hang,
    "selective": choosy.selective,
    "refuse_greedy": choosy.noisy_sampled,
    "sybil": choosy.sybil,
    # The lie is elsewhere: a refusal (choosy.refusal), the card, or the weights loaded.
    "refuse_after": content.honest,
    "refuse_users": content.honest,
    "overclaim": content.honest,
    "perturbed": content.honest,
}


class AdversarialEngine:
    def __init__(
        self,
        inner: Engine,
        config: Any,  # AdversaryConfig
        vocab_size: int,
        eos_id: int,
        *,
        keypair: Any = None,  # relays (copycat, sybil) sign their requests with it
        alt: Engine | None = None,
    ):
        self.inner = inner
        self.alt = alt
        self.keypair = keypair
        self.config = config
        self.vocab = vocab_size
        self.eos = eos_id
        self.rng = random.Random(config.seed)
        self.cache: deque[GenerateResponse] = deque(maxlen=64)  # replay, copycat
        self.tasks: set = set()  # copycat: relays in flight
        self.answered = 0  # refuse_after: requests seen
        self._relay: Any = None

    # --- pass-through members the server reads
    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def start(self) -> None:
        await self.inner.start()
        if self.alt is not None:
            await self.alt.start()

    async def stop(self, drain_timeout: float = 30.0) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self._relay is not None:
            await self._relay.close()
        if self.alt is not None:
            await self.alt.stop(drain_timeout)
        await self.inner.stop(drain_timeout)

    def relay_client(self):
        from subnet.net import SignedClient

        if self._relay is None:
            self._relay = SignedClient.create(self.keypair)
        return self._relay

    def submit(self, req: GenerateRequest) -> GenerationHandle:
        if choosy.refusal(self, req):
            raise EngineFull("busy", retry_after=self.config.retry_after_s)
        name = self.config.name
        handle = None if name in WITHOUT_MODEL else self.inner.submit(req)
        stream = STREAMS[name](self, req, handle)
        return CheatHandle(req.request_id, stream)  # type: ignore[return-value]

    async def generate(
        self, req: GenerateRequest
    ) -> AsyncIterator[GenerateChunk | GenerateResponse]:
        async for item in self.submit(req):
            yield item

    async def complete(self, req: GenerateRequest) -> GenerateResponse:
        return await self.submit(req).result()
