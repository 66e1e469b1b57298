"""Prometheus metrics of a validator, served at its gateway's `GET /metrics` (own registry)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)


class ValidatorMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.verdicts = Counter(
            "dmoe_validator_verdicts", "answers scored, by verdict reason", ["reason"], registry=r
        )
        self.step_s = Histogram(
            "dmoe_validator_step_seconds",
            "wall time of one scoring step",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.weights = Counter(
            "dmoe_validator_weight_sets", "weight vectors submitted, by outcome", ["ok"], registry=r
        )
        self.gateway = Counter(
            "dmoe_gateway_requests",
            "gateway requests by path and status",
            ["path", "status"],
            registry=r,
        )
        # Keys appear by label (a name from the key file, or sha256:<8 hex>), never themselves.
        self.key_requests = Counter(
            "dmoe_gateway_key_requests",
            "gateway requests by API key label and status",
            ["key", "status"],
            registry=r,
        )
        self.key_tokens = Counter(
            "dmoe_gateway_key_tokens",
            "tokens served by API key label, prompt and completion",
            ["key", "kind"],
            registry=r,
        )

    async def handler(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
