"""Small builders shared by the validator tests."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from protocol import GenerateRequest, GenerateResponse, TokenLogprob, Usage
from subnet.validator.config import LoopConfig, ValidatorConfig
from subnet.validator.loop import Validator
from subnet.validator.sampling import SamplingConfig
from subnet.validator.state import StateStore
from subnet.validator.verifier import Verifier
from tests.builders import local_common


def validator_config(state_path: Path, *, per_step: int = 8, seed: int = 7, netuid: int = 1):
    return ValidatorConfig(
        common=local_common(netuid),
        state_path=state_path,
        # A one-second probe window keeps each step short.
        loop=LoopConfig(
            step_s=0.1, query_timeout_s=20, first_token_timeout_s=10, seed=seed, probe_window_s=1.0
        ),
        sampling=SamplingConfig(per_step=per_step),
    )


def make_validator(cfg, signed, registry, **kw) -> Validator:
    return Validator(
        cfg, signed=signed, verifier=Verifier(registry), store=StateStore(cfg.state_path), **kw
    )


def random_tokens(vocab: int, seed: int = 0):
    rng = random.Random(seed)

    def behaviour(req: GenerateRequest) -> GenerateResponse:
        ids = [rng.randrange(2, vocab) for _ in range(req.max_tokens)]
        return GenerateResponse(
            request_id=req.request_id,
            model="fake",
            token_ids=tuple(ids),
            text="",
            finish_reason="length",
            usage=Usage(1, len(ids)),
            logprobs=tuple(TokenLogprob(t, -0.5) for t in ids),
        )

    return behaviour


def replay(recorded: GenerateResponse):
    """Answer every request with a recorded answer (to some other prompt)."""

    def behaviour(req: GenerateRequest) -> GenerateResponse:
        n = min(req.max_tokens, len(recorded.token_ids))
        return replace(
            recorded,
            request_id=req.request_id,
            token_ids=recorded.token_ids[:n],
            logprobs=recorded.logprobs[:n],
            usage=replace(recorded.usage, completion_tokens=n),
            finish_reason="length" if n == req.max_tokens else "stop",
        )

    return behaviour


async def engine_answers(expert, reqs):
    """The project's engine's answers to `reqs` (one engine, all in flight together)."""
    from subnet.engine.offline import complete_all

    return await complete_all(expert, reqs, max_batch=16)


async def start_gateway(v, key: str, **cfg):
    """A gateway for `v` on 127.0.0.1, port 0: one API key, every organic answer verified."""
    from subnet.validator.config import GatewayConfig
    from subnet.validator.gateway import Gateway
    from subnet.validator.router import RouterConfig

    defaults = dict(port=0, api_keys=(key,), verify_share=1.0)
    defaults.update(cfg)
    gw = Gateway(v, GatewayConfig(**defaults), RouterConfig(explore=0.0))
    await gw.start("127.0.0.1", 0)
    return gw
