"""Simulated users for a localnet: a small mixed load through the validators' OpenAI gateways.

What a real subnet's users bring and the localnet would otherwise lack: organic requests that
the router must place (so demand-following pay and the gate have something to follow), that
cheaters may treat differently from tasks (refusing them, or serving a cheap model), and that
the gateway verifies a share of. Requests look like common OpenAI clients': chat or text
completions, `model="auto"`, the client's default temperature or a common one, a few stop lists,
streamed or not, with prompts drawn from a per-domain mix (`mix`, e.g. mostly math).

Each answer's `X-Dmoe-Uid` header says which miner served it: the run's summary turns that into
each expert's routed share.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

log = logging.getLogger(__name__)

# Prompts a user might send, per domain; none follows a task template.
PROMPTS: dict[str, tuple[str, ...]] = {
    "code": (
        "def reverse_words(sentence):\n    ",
        "Write a Python function that returns the n-th Fibonacci number.",
        "import json\n\ndef load_config(path):\n",
        "class Stack:\n    def __init__(self):\n",
        "How do I read a file line by line in Python?",
        "for i in range(10):\n    if i % 2 == 0:\n",
    ),
    "math": (
        "What is 17 + 25?",
        "12 * 4 =",
        "Compute 81 - 39.",
        "If I have 7 apples and buy 15 more, how many do I have?",
        "(3 + 9) * 2 =",
        "What is 144 divided by 12?",
    ),
    "general": (
        "Tell me a short story about a lighthouse keeper.",
        "What should I pack for a weekend trip to the mountains?",
        "Summarize the plot of a mystery novel in two sentences.",
        "Write a polite email declining a meeting invitation.",
        "Why do leaves change colour in autumn?",
        "Describe a quiet morning in a small town.",
    ),
    "data": (
        '{"name": "Ada", "roles": ["admin", "editor"], "active": ',
        "SELECT name, total FROM orders WHERE total > 100 ORDER BY",
        "Convert this CSV to JSON:\nid,city,population\n1,Oslo,709000\n",
        "$ cat events.log | grep error | cut -d' ' -f2 | sort | uniq -c",
        "Write a SQL query that counts users per country.",
        "services:\n  web:\n    image: nginx\n    ports:\n",
    ),
}
# Common client settings: the default (temperature 1), chat apps' 0.7, deterministic 0.
TEMPERATURES = (None, None, 0.7, 0.0)
MAX_TOKENS = (16, 24, 32, 48, 64)
STOPS = (None, None, None, ["\n\n"], ["."])


@dataclass
class UserStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    by_uid: Counter = field(default_factory=Counter)  # served answers per miner uid
    by_domain: Counter = field(default_factory=Counter)  # requests per prompt domain

    def to_dict(self) -> dict:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "by_uid": {str(u): n for u, n in sorted(self.by_uid.items())},
            "by_domain": dict(self.by_domain),
        }


class Users:
    def __init__(
        self,
        gateways: list[str],
        api_key: str,
        *,
        rps: float,
        mix: Mapping[str, float] | None = None,
        seed: int = 0,
        timeout_s: float = 60.0,
    ):
        self.gateways = gateways
        self.api_key = api_key
        self.rps = rps
        self.mix = dict(mix or {d: 1.0 for d in PROMPTS})
        self.rng = random.Random(seed)
        self.timeout_s = timeout_s
        self.stats = UserStats()
        self._inflight: set[asyncio.Task] = set()

    def request(self) -> tuple[str, str, dict]:
        """(domain, path, body) of the next user request."""
        domains = [d for d in self.mix if d in PROMPTS and self.mix[d] > 0]
        domain = self.rng.choices(domains, weights=[self.mix[d] for d in domains])[0]
        prompt = self.rng.choice(PROMPTS[domain])
        body: dict = {"model": "auto", "max_tokens": self.rng.choice(MAX_TOKENS)}
        temperature = self.rng.choice(TEMPERATURES)
        if temperature is not None:
            body["temperature"] = temperature
        stop = self.rng.choice(STOPS)
        if stop:
            body["stop"] = stop
        body["stream"] = self.rng.random() < 0.5
        if self.rng.random() < 0.6:
            body["messages"] = [{"role": "user", "content": prompt}]
            return domain, "/v1/chat/completions", body
        body["prompt"] = prompt
        return domain, "/v1/completions", body

    async def run(self, stop: asyncio.Event) -> None:
        """Send requests at `rps` (Poisson arrivals) until `stop`; waits for those in flight."""
        if self.rps <= 0 or not self.gateways:
            return
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not stop.is_set():
                task = asyncio.create_task(self._one(http))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                try:
                    await asyncio.wait_for(stop.wait(), self.rng.expovariate(self.rps))
                except TimeoutError:
                    pass
            if self._inflight:
                await asyncio.wait(self._inflight, timeout=self.timeout_s)

    async def _one(self, http: aiohttp.ClientSession) -> None:
        domain, path, body = self.request()
        url = self.rng.choice(self.gateways).rstrip("/") + path
        self.stats.sent += 1
        self.stats.by_domain[domain] += 1
        headers = {"Authorization": f"Bearer {self.api_key}"}
        try:
            async with http.post(url, json=body, headers=headers) as r:
                raw = await r.read()
                if r.status != 200:
                    self.stats.failed += 1
                    log.debug("user request %s: HTTP %d %s", path, r.status, raw[:200])
                    return
                uid = int(r.headers.get("X-Dmoe-Uid", "-1"))
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            self.stats.failed += 1
            log.debug("user request %s failed: %s", path, err)
            return
        self.stats.ok += 1
        if uid >= 0:
            self.stats.by_uid[uid] += 1
