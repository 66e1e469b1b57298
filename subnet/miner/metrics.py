"""Prometheus metrics of one miner server, on its own registry (several servers per process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from subnet.engine.base import Engine


class MinerMetrics:
    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "dmoe_miner_requests", "Requests answered", ["endpoint", "status"], registry=r
        )
        self.rejections = Counter(
            "dmoe_miner_rejections", "Requests refused, by reason", ["reason"], registry=r
        )
        self.tokens = Counter("dmoe_miner_tokens", "Tokens processed", ["kind"], registry=r)
        self.ttft = Histogram(
            "dmoe_miner_ttft_seconds",
            "Time from arrival to first token",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=r,
        )
        self.tokens_per_s = Histogram(
            "dmoe_miner_request_tokens_per_second",
            "Decode speed of each finished request",
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=r,
        )
        queue = Gauge("dmoe_miner_queue_depth", "Requests waiting for a batch slot", registry=r)
        queue.set_function(lambda: engine.queue_depth)
        batch = Gauge("dmoe_miner_batch_size", "Sequences in the running batch", registry=r)
        batch.set_function(lambda: engine.active)
        cap = Gauge("dmoe_miner_capacity", "Max sequences batched at once", registry=r)
        cap.set_function(lambda: engine.capacity)

    def reject(self, endpoint: str, status: int, reason: str) -> None:
        self.rejections.labels(reason).inc()
        self.requests.labels(endpoint, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
