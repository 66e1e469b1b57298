"""Scores → weights on chain, once per tempo, aligned to the epoch and aware of the rate limit.

`weights_due` (pure) decides: nothing has been set since the last epoch ran, the subnet's
weights rate limit has passed since our last update, and the tempo is far enough along that the
vector reflects this tempo's evidence (`min_tempo_fraction`) while still landing before the next
epoch. `WeightSetter` is the thin shell: `client.execute(bt.SetWeights(...), wallet)` (never
`bt.set_weights()`, which ignores an injected substrate), retries transient failures, treats
`RATE_LIMITED` as "not yet", logs every vector it sets, and in dry-run mode only logs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import bittensor as bt

log = logging.getLogger(__name__)

# Raised with the project's protocol changes that invalidate old validators' weights.
WEIGHTS_VERSION = 1


@dataclass(frozen=True)
class WeightsConfig:
    version_key: int = WEIGHTS_VERSION
    dry_run: bool = False  # --dry-run: compute and log, never submit
    retries: int = 2  # extra attempts after a transient failure
    retry_delay_s: float = 1.0
    timeout_s: float = 60.0  # one submission, inclusion included
    # Set once the tempo is this far along (so the vector uses the tempo's evidence).
    min_tempo_fraction: float = 0.5


@dataclass(frozen=True)
class EpochView:
    """What the decision needs from the chain, read by the caller."""

    block: int
    tempo: int
    blocks_since_last_step: int
    weights_rate_limit: int
    last_update: int  # block of our hotkey's last weights (-1: never)
    weights_version: int = 0


def weights_due(view: EpochView, last_set_block: int, cfg: WeightsConfig) -> tuple[bool, str]:
    """(due, why) — once per tempo, after `min_tempo_fraction` of it, outside the rate limit."""
    last_step = view.block - view.blocks_since_last_step
    if last_set_block > last_step:
        return False, f"already set at block {last_set_block} this tempo"
    if view.blocks_since_last_step < int(view.tempo * cfg.min_tempo_fraction):
        return False, f"tempo {view.blocks_since_last_step}/{view.tempo} blocks along"
    last = max(view.last_update, last_set_block)
    if last >= 0 and view.block - last < view.weights_rate_limit:
        return False, f"rate limited until block {last + view.weights_rate_limit}"
    if cfg.version_key < view.weights_version:
        return (
            False,
            f"version_key {cfg.version_key} < subnet weights_version {view.weights_version}",
        )
    return True, "due"


@dataclass(frozen=True)
class SetOutcome:
    ok: bool
    message: str
    retry_later: bool = False  # rate limit or transient: try again on a later block


TRANSIENT_CODES = {bt.ErrorCode.UNKNOWN, bt.ErrorCode.INTERNAL, bt.ErrorCode.TOO_EARLY}


class WeightSetter:
    def __init__(self, client: bt.Client, wallet: bt.Wallet, netuid: int, cfg: WeightsConfig):
        self.client = client
        self.wallet = wallet
        self.netuid = netuid
        self.cfg = cfg

    async def set(self, weights: dict[int, float]) -> SetOutcome:
        if not weights:
            log.info("weights: nothing to set (no miner has a positive score yet)")
            return SetOutcome(False, "empty", retry_later=True)
        vector = " ".join(f"{u}:{w:.4f}" for u, w in sorted(weights.items()))
        if self.cfg.dry_run:
            log.info("weights (dry run) netuid=%d: %s", self.netuid, vector)
            return SetOutcome(True, "dry run")
        intent = bt.SetWeights(
            netuid=self.netuid,
            uids=list(weights),
            weights=list(weights.values()),
            version_key=self.cfg.version_key,
        )
        last = SetOutcome(False, "not attempted")
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                await asyncio.sleep(self.cfg.retry_delay_s * attempt)
            last = await self._attempt(intent)
            if last.ok:
                log.info("weights set netuid=%d: %s (%s)", self.netuid, vector, last.message)
                return last
            if not last.retry_later:
                break
            if "rate" in last.message:
                break  # waiting inside this call cannot help; the next block check will
        log.warning("weights not set netuid=%d: %s", self.netuid, last.message)
        return last

    async def _attempt(self, intent: bt.SetWeights) -> SetOutcome:
        try:
            result = await asyncio.wait_for(
                self.client.execute(intent, self.wallet), self.cfg.timeout_s
            )
        except bt.ChainError as err:
            # The SDK preflights registration and the rate limit before signing.
            rate = err.code == bt.ErrorCode.RATE_LIMITED
            msg = f"{'rate limited' if rate else err.code}: {err.message}"
            return SetOutcome(False, msg, retry_later=rate or err.code in TRANSIENT_CODES)
        except (TimeoutError, bt.RpcConnectionError) as err:
            return SetOutcome(False, f"transient: {type(err).__name__}: {err}", retry_later=True)
        if result.success:
            return SetOutcome(True, result.message or "included")
        code = getattr(result.error, "code", bt.ErrorCode.UNKNOWN)
        return SetOutcome(
            False, f"on-chain failure {code}: {result.message}", retry_later=code in TRANSIENT_CODES
        )
