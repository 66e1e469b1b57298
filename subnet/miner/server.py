"""`MinerServer`: wires the expert, the engine, the app and the chain duties; start/stop pair.

    server = MinerServer.create(config)            # loads the expert (blocking)
    await server.start()                           # engine, HTTP on config.common.axon, chain
    ... server.port ...
    await server.stop()                            # stop accepting, drain, close

Pass `snapshot=` to run without a chain (admission from a fixed metagraph, e.g. in tests), or
`client=` for an already-open `bt.Client` (otherwise one is made with `make_client`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from aiohttp import web

from subnet.engine.base import Engine
from subnet.engine.hf import HFEngine
from subnet.engine.loading import LoadedExpert, load_expert
from subnet.miner import chain as miner_chain
from subnet.miner.admission import MetagraphSnapshot
from subnet.miner.app import Gate, create_app
from subnet.miner.config import EngineConfig, MinerConfig
from subnet.miner.metrics import MinerMetrics

log = logging.getLogger(__name__)


def load_for(ec: EngineConfig) -> LoadedExpert:
    """The expert as the chosen engine needs it: vLLM loads the weights in its own process, so
    this one keeps only the tokenizer, the card and the end-of-sequence set."""
    if ec.engine == "vllm":
        from subnet.engine.vllm_setup import load_expert_meta

        return load_expert_meta(
            ec.expert, revision=ec.revision, device=ec.device, domains=ec.domains or None
        )
    return load_expert(
        ec.expert,
        revision=ec.revision,
        device=ec.device,
        dtype=ec.dtype,
        domains=ec.domains or None,
    )


def engine_for(expert: LoadedExpert, ec: EngineConfig) -> Engine:
    """The engine the miner's flags describe, serving `expert`."""
    if ec.engine == "vllm":
        from subnet.engine.vllm_engine import VLLMEngine, VLLMOptions

        return VLLMEngine.create(
            expert,
            max_batch=ec.max_batch,
            max_queue=ec.max_queue,
            stream_interval_s=ec.stream_interval_s,
            options=VLLMOptions(
                dtype=ec.dtype,
                tensor_parallel_size=ec.tensor_parallel_size,
                kv_cache_gib=ec.kv_cache_gib,
            ),
        )
    return HFEngine.create(
        expert,
        max_batch=ec.max_batch,
        max_queue=ec.max_queue,
        cpu_threads=ec.cpu_threads,
        stream_interval_s=ec.stream_interval_s,
    )


class MinerServer:
    def __init__(
        self,
        config: MinerConfig,
        engine: Engine,
        wallet: Any,
        *,
        snapshot: MetagraphSnapshot | None,
        client: Any = None,
    ) -> None:
        self.config = config
        self.engine = engine
        # The card carries the server's cap on new tokens: validators size tasks and route
        # users within it instead of learning it from a 400.
        cap = min(engine.card.max_new_tokens, config.server.max_new_tokens)
        engine.card = replace(engine.card, max_new_tokens=cap)
        self.wallet = wallet
        self.gate = Gate(config.server.policy, snapshot or MetagraphSnapshot())
        self.metrics = MinerMetrics(engine)
        self._fixed_snapshot = snapshot is not None
        self._client = client
        self._own_client = False
        self._runner: web.AppRunner | None = None
        self._refresher: asyncio.Task | None = None
        self.port: int | None = None

    @classmethod
    def create(
        cls,
        config: MinerConfig,
        *,
        wallet: Any = None,
        expert: LoadedExpert | None = None,
        snapshot: MetagraphSnapshot | None = None,
        client: Any = None,
    ) -> MinerServer:
        wallet = wallet or config.common.wallet.load()
        expert = expert or load_for(config.engine)
        return cls(
            config, engine_for(expert, config.engine), wallet, snapshot=snapshot, client=client
        )

    @property
    def hotkey(self) -> str:
        return self.wallet.hotkey.ss58_address

    @property
    def url(self) -> str:
        return f"http://{self.config.common.axon.ip}:{self.port}"

    async def start(self) -> None:
        if not self._fixed_snapshot:
            # Refuse to start before opening a port if the hotkey is not registered.
            await self._open_client()
            try:
                self.gate.snapshot = await miner_chain.ensure_registered(
                    self._client,
                    self.wallet,
                    self.config.common.netuid,
                    register=self.config.register,
                )
            except BaseException:
                await self._close_client()
                raise
        await self.engine.start()
        app = create_app(
            self.engine,
            hotkey_ss58=self.hotkey,
            config=self.config.server,
            gate=self.gate,
            metrics=self.metrics,
        )
        # handler_cancellation: a client that disconnects cancels its handler, which frees the
        # engine slot of a non-streaming generation too.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        axon = self.config.common.axon
        site = web.TCPSite(self._runner, axon.ip, axon.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("miner %s serving %s on %s", self.hotkey, self.engine.card.model_id, self.url)
        if not self._fixed_snapshot:
            if self.config.publish:
                await miner_chain.publish(
                    self._client,
                    self.wallet,
                    self.config.common.netuid,
                    axon.advertised_ip,
                    axon.external_port or self.port,
                    self.engine.card,
                )
            self._refresher = asyncio.create_task(
                miner_chain.refresh_forever(
                    self._client,
                    self.config.common.netuid,
                    self.config.server.refresh_s,
                    self._apply_snapshot,
                )
            )

    def _apply_snapshot(self, snapshot: MetagraphSnapshot) -> None:
        self.gate.snapshot = snapshot

    async def _open_client(self) -> None:
        if self._client is None:
            from subnet.chain import make_client

            self._client = make_client(self.config.common.subtensor.endpoint)
            await self._client.__aenter__()
            self._own_client = True

    async def stop(self) -> None:
        """Stop taking requests, let in-flight ones finish (bounded), then close everything."""
        await miner_chain.cancel(self._refresher)
        self._refresher = None
        await self.engine.stop(drain_timeout=self.config.server.drain_s)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._close_client()

    async def _close_client(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None
            self._own_client = False
