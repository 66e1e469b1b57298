"""How late this process's event loop runs: a stalled loop makes honest streams look buffered.

A miner that holds its whole answer back and releases it at once shows up as a long wait for the
first token and then every token within a few milliseconds. A validator whose own event loop was
stalled (a busy CPU, the GIL held by verification) reads an honest stream the same way: the
chunks wait in the socket and are read together. `LoopLag` ticks every `period_s` and records
how late each tick ran, so a timing judgement can be skipped when the validator itself was not
listening.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque


class LoopLag:
    def __init__(self, period_s: float = 0.02, keep: int = 4096):
        self.period_s = period_s
        self._at: deque[float] = deque(maxlen=keep)  # monotonic time of each tick
        self._lag: deque[float] = deque(maxlen=keep)  # how late it ran, seconds
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Idempotent; ticks on the running loop until `stop`."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._tick(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _tick(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(self.period_s)
            now = time.monotonic()
            self._at.append(now)
            self._lag.append(max(0.0, now - t - self.period_s))

    def worst(self, start: float, end: float) -> float:
        """The longest the loop was late between `start` and `end` (monotonic seconds); a tick
        that ended after `end` still counts when its stall began before it."""
        at = list(self._at)
        lo = bisect.bisect_left(at, start)
        worst = 0.0
        for i in range(lo, len(at)):
            if at[i] - self._lag[i] > end:
                break
            worst = max(worst, self._lag[i])
        return worst
