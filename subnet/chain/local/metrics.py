"""Prometheus metrics of the `dmoe chain` server (`GET /metrics`), in a registry of its own."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)


class ChainMetrics:
    def __init__(self, chain) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[str, int], Any] = {}
        self.rpc = Counter(
            "dmoe_chain_rpc_requests",
            "JSON-RPC requests by method and HTTP status",
            ["method", "status"],
            registry=self.registry,
        )
        block = Gauge("dmoe_chain_block", "head block number", registry=self.registry)
        block.set_function(lambda: chain.block)
        subnets = Gauge("dmoe_chain_subnets", "registered subnets", registry=self.registry)
        subnets.set_function(lambda: len(chain.state.subnets))

    def observe(self, method: str, status: int) -> None:
        # Labelled children are cached: `labels()` costs more than the increment, on every call.
        child = self._children.get((method, status))
        if child is None:
            child = self._children[(method, status)] = self.rpc.labels(
                method=method, status=str(status)
            )
        child.inc()

    async def handler(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
