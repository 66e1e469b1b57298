"""VLLMEngine's failed starts leave no process behind (vLLM's engine core outlives its parent).

Skipped without vLLM (`bash scripts/test_vllm.sh` installs it and runs these).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from protocol import GenerateRequest
from subnet.engine import vllm_procs
from subnet.engine.base import EngineStopped
from subnet.engine.vllm_engine import VLLMEngine, VLLMOptions
from subnet.engine.vllm_setup import EngineUnavailable, load_expert_meta
from tests.vllm_support import hd32_experts, needs_vllm

pytestmark = needs_vllm


async def left_behind(before: set[int], wait_s: float = 30.0) -> list:
    """Processes spawned since `before` still alive after up to `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = [p for p in vllm_procs.spawned_since(before) if vllm_procs._running(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        await asyncio.sleep(0.5)


async def test_a_start_that_times_out_ends_what_it_spawned():
    engine = VLLMEngine.create(
        load_expert_meta(hd32_experts()["code"], device="cpu"),
        max_batch=2,
        max_queue=2,
        options=VLLMOptions(start_timeout_s=3.0),
    )
    before = vllm_procs.descendants()
    with pytest.raises(EngineUnavailable, match="did not start within 3 s"):
        await engine.start()
    assert await left_behind(before) == []
    await engine.stop()  # a never-started engine stops cleanly too


async def test_a_model_vllm_cannot_run_fails_start_and_ends_its_processes(tiny_experts):
    # The test-size experts' 12-wide heads have no vLLM CPU attention kernel: the engine core
    # starts, loads, and dies.
    engine = VLLMEngine.create(
        load_expert_meta(tiny_experts["math"], device="cpu"), max_batch=2, max_queue=2
    )
    before = vllm_procs.descendants()
    with pytest.raises(EngineUnavailable, match="vLLM could not start"):
        await engine.start()
    assert await left_behind(before) == []
    with pytest.raises(EngineStopped, match="not accepting"):
        engine.submit(GenerateRequest(prompt="x"))


# A process that, like vLLM's engine core still starting, spawns a worker after its SIGTERM.
SPAWNS_ON_SIGTERM = """
import signal, subprocess, sys, time
def on_term(*_):
    kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print(kid.pid, flush=True)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
for _ in range(300):
    time.sleep(1)
"""


def test_end_also_ends_what_a_process_spawned_after_its_sigterm():
    """Killing such a process would leave its worker an orphan, no longer a descendant."""
    import subprocess
    import sys

    import psutil

    def gone(pid: int) -> bool:
        try:
            return not vllm_procs._running(psutil.Process(pid))
        except psutil.NoSuchProcess:
            return True

    parent = subprocess.Popen(
        [sys.executable, "-c", SPAWNS_ON_SIGTERM], stdout=subprocess.PIPE, text=True
    )
    kid = None
    try:
        assert parent.stdout.readline().strip() == "ready"
        ended = vllm_procs.end([psutil.Process(parent.pid)], grace_s=3.0)
        kid = int(parent.stdout.readline())
        assert kid in ended
        assert gone(kid)
    finally:
        parent.kill()
        if kid is not None and not gone(kid):
            psutil.Process(kid).kill()
