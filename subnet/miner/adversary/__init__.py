"""Cheating miners for the subnet's own tests: every strategy a rational miner is paid to try.

Each cheat wraps an honest engine (`AdversarialEngine`) or lies at load time, so a real miner
process runs it (`dmoe miner --adversary NAME`, hidden) and the validator must make it not pay
(`tests/hostile/test_adversaries.py`, the localnet cheater scenario, docs/THREAT_MODEL.md).

What the answer contains (`content`):
  wrong_model   another expert's weights under the declared card (`swap_weights`)
  perturbed     its own weights perturbed by 2% of each tensor's std, answering everything
  random        uniformly random token ids          repeat    one token over and over
  copycat       relays another miner's answer (`--adversary.target URL,HOTKEY`), one request late
  replay        answers with a cached answer of its own to an earlier prompt
  pad_eos       ends the answer early (EOS) and pads to max_tokens with filler tokens
  lie_usage     honest tokens, inflated usage counts  lie_logprobs  honest tokens, made-up logprobs
  lie_text      honest tokens and logprobs, its own text (an advertisement)
  stop_early    one honest token, then `stop` with no stop sequence met
  short         three honest tokens, then an end-of-sequence the model did not choose
  malformed     a final answer that breaks the protocol   oversized   a chunk of several MB
Which requests get honest work, and when (`choosy`):
  burst         buffers the whole answer, then sends every chunk at once
  slow_drip     honest tokens, one chunk every `drip_s`   hang   accepts and never answers
  refuse_after  honest for its first `honest_requests` requests, then `429` to everything
  refuse_users  `429` to what looks like a user's request, honest on what looks like a task
  refuse_greedy `429` to greedy requests (checked token by token); noisy weights on sampled ones
  selective     honest on what looks like a task, the cheap (sibling) model for users
What it declares or how many hotkeys it runs:
  overclaim     an honest code expert declaring code, math and general
  sybil         a second hotkey relaying, in real time, to the operator's other miner (one
                engine behind two hotkeys; `--adversary.target URL,HOTKEY`)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from subnet.miner.adversary.engine import AdversarialEngine

log = logging.getLogger(__name__)

ADVERSARIES = ("wrong_model", "random", "repeat", "copycat", "replay", "pad_eos", "burst",
               "lie_usage", "lie_logprobs", "slow_drip", "oversized", "malformed", "hang",
               "lie_text", "stop_early", "short", "refuse_after", "refuse_users",
               "refuse_greedy", "selective", "overclaim", "perturbed", "sybil")  # fmt: skip
NEEDS_TARGET = frozenset({"copycat", "sybil"})
# The weights each load-time cheat serves: a fraction of each tensor's std added as noise.
PERTURBED_STD = 0.02
NOISY_STD = 0.07  # refuse_greedy's sampled answers
OVERCLAIMED = ("code", "math", "general")


@dataclass(frozen=True)
class AdversaryConfig:
    name: str
    target_url: str = ""  # copycat, sybil: the miner whose answers it relays
    target_hotkey: str = ""
    drip_s: float = 5.0  # slow_drip: seconds between chunks (past a validator's read timeout)
    hang_s: float = 3600.0  # hang: how long a request is held (the client gives up first)
    oversized_bytes: int = 4 << 20  # past the 1 MiB SSE event limit of the client
    honest_requests: int = 40  # refuse_after: requests answered before it refuses all
    retry_after_s: float = 30.0  # what its refusals ask the caller to wait
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in ADVERSARIES:
            raise ValueError(f"unknown adversary {self.name!r}; one of {', '.join(ADVERSARIES)}")
        if self.name in NEEDS_TARGET and not (self.target_url and self.target_hotkey):
            raise ValueError(f"{self.name} needs --adversary.target URL,HOTKEY")


def parse_target(value: str | None) -> tuple[str, str]:
    """`URL,HOTKEY` -> (url, hotkey); empty -> ("", "")."""
    if not value:
        return "", ""
    url, _, hotkey = value.partition(",")
    return url.strip(), hotkey.strip()


def swap_weights(declared: Any, served: Any) -> Any:
    """wrong_model: the `served` LoadedExpert's weights behind the `declared` expert's card."""
    return replace(served, card=declared.card)


def perturbed_copy(expert: Any, rel_std: float, seed: int = 0) -> Any:
    """The same expert (card and tokenizer) with every weight tensor perturbed by `rel_std` of
    its own standard deviation: a model close to, but not, the declared one."""
    import copy

    from subnet.engine.perturb import perturb

    model = copy.deepcopy(expert.model)
    perturb(model, rel_std, seed=seed)
    return replace(expert, model=model)


def install(server: Any, config: AdversaryConfig, expert: Any, *, alt: Any = None) -> None:
    """Put the cheat on a created (not yet started) MinerServer. `alt` is the second expert a
    cheat serves (selective: the cheap model; refuse_greedy: noisy weights); built here when
    absent and derivable from `expert`."""
    from subnet.miner.server import engine_for

    name = config.name
    if name in ("wrong_model", "perturbed"):
        return  # done at load time (swap_weights, perturbed_copy): the engine itself is honest
    if name == "overclaim":
        server.engine.card = replace(server.engine.card, domains=OVERCLAIMED)
        return
    if name == "refuse_greedy" and alt is None:
        alt = perturbed_copy(expert, NOISY_STD, seed=config.seed + 1)
    alt_engine = engine_for(alt, server.config.engine) if alt is not None else None
    if name == "selective" and alt_engine is None:
        raise ValueError("selective needs the cheap model it serves users with (alt)")
    tok = expert.tokenizer
    server.engine = AdversarialEngine(
        server.engine,
        config,
        len(tok),
        tok.eos_token_id,
        keypair=server.wallet.hotkey,
        alt=alt_engine,
    )
    log.warning("adversary %r installed: this miner cheats on purpose (tests only)", name)


def install_from_config(server: Any, config: Any) -> None:
    """`dmoe miner --adversary NAME`: install the cheat on a created MinerServer.

    wrong_model (and selective, for its users) serve the sibling tiny expert's weights (code <->
    math, same architecture and tokenizer) under the declared card; perturbed serves its own
    weights with noise; both rebuild the engine around the weights they serve.
    """
    from pathlib import Path

    from subnet.engine.loading import load_expert
    from subnet.miner.server import engine_for

    url, hotkey = parse_target(config.adversary_target)
    adv = AdversaryConfig(config.adversary, url, hotkey)
    ec = config.engine
    declared = load_expert(ec.expert, device=ec.device, dtype=ec.dtype)
    here = Path(ec.expert)
    sibling = here.parent / ("math" if here.name == "code" else "code")
    if adv.name == "wrong_model":
        served = swap_weights(declared, load_expert(sibling, device=ec.device, dtype=ec.dtype))
        server.engine = engine_for(served, ec)
        log.warning("adversary 'wrong_model': serving %s weights as %s", sibling, here)
        return
    if adv.name == "perturbed":
        server.engine = engine_for(perturbed_copy(declared, PERTURBED_STD), ec)
        log.warning("adversary 'perturbed': weights moved by %.0f%% std", 100 * PERTURBED_STD)
        return
    alt = None
    if adv.name == "selective":
        alt = swap_weights(declared, load_expert(sibling, device=ec.device, dtype=ec.dtype))
    install(server, adv, declared, alt=alt)


__all__ = [
    "ADVERSARIES",
    "AdversarialEngine",
    "AdversaryConfig",
    "install",
    "install_from_config",
    "parse_target",
    "perturbed_copy",
    "swap_weights",
]
