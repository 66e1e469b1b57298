"""`dmoe miner --engine vllm` as a real process on a local chain: the protocol over signed HTTP
(streaming, scoring, the card, 429 at capacity, metrics), and no vLLM process left after its
SIGTERM, whether it came while serving or while the engine was still starting.

Skipped without vLLM (`bash scripts/test_vllm.sh` installs it and runs these).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from protocol import GenerateChunk, GenerateRequest, GenerateResponse, ScoreRequest
from subnet.chain import make_client
from subnet.chain.config import ChainConfig
from subnet.chain.local.chain import LocalChain
from subnet.chain.local.server import ChainServer
from subnet.miner import client as mc
from subnet.net import SignedClient
from tests.fixtures_chain import bootstrap_subnet, fast_genesis
from tests.vllm_support import hd32_experts, needs_vllm

pytestmark = needs_vllm

START_TIMEOUT_S = 600  # a cold vLLM start on a busy 2-core box


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def subnet(tmp_path, make_wallet):
    """A chain server on 127.0.0.1 with one validator and one miner registered."""
    config = ChainConfig(data_dir=tmp_path / "chain", port=0, block_time=3600.0, instant=True)
    server = ChainServer(LocalChain.create(fast_genesis(), config.data_dir), config)
    await server.start()
    endpoint = f"localchain://127.0.0.1:{server.port}"
    wallets = {n: make_wallet(f"vllm-{n}") for n in ("owner", "validator", "miner")}
    async with make_client(endpoint) as client:
        netuid = await bootstrap_subnet(
            client, server.chain, wallets["owner"], [wallets["validator"]], [wallets["miner"]]
        )
    yield endpoint, netuid, wallets
    await server.stop()


async def spawn_miner(subnet, wallet_dir: Path, log: Path, *extra: str):
    endpoint, netuid, wallets = subnet
    port = free_port()
    argv = [
        sys.executable, "-m", "subnet.cli", "miner", "--netuid", str(netuid),
        "--wallet.name", wallets["miner"].name, "--wallet.hotkey", "default",
        "--wallet.path", str(wallet_dir), "--subtensor.network", endpoint,
        "--axon.ip", "127.0.0.1", "--axon.port", str(port), "--no-publish",
        "--expert", str(hd32_experts()["math"]), "--engine", "vllm", *extra,
    ]  # fmt: skip
    out = log.open("wb")
    proc = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=asyncio.subprocess.STDOUT)
    out.close()
    return proc, f"http://127.0.0.1:{port}"


async def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def family(pid: int) -> list:
    """The process's descendants (psutil.Process; psutil comes with vLLM)."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def names(procs: list) -> set[str]:
    import psutil

    out = set()
    for p in procs:
        try:
            out.add(p.name())
        except psutil.NoSuchProcess:
            continue
    return out


async def terminate(proc, procs: list) -> int:
    """SIGTERM the miner; its exit code once every process it had is gone."""
    import psutil

    proc.send_signal(signal.SIGTERM)
    rc = await asyncio.wait_for(proc.wait(), 120)
    gone, alive = psutil.wait_procs(procs, timeout=15)
    assert alive == [], [p.pid for p in alive]
    return rc


async def test_vllm_miner_serves_the_protocol_then_stops_clean(subnet, wallet_dir, tmp_path):
    log = tmp_path / "miner.log"
    proc, url = await spawn_miner(subnet, wallet_dir, log, "--max-batch", "1", "--max-queue", "0")
    try:
        await wait_for(
            lambda: b"dmoe miner serving" in log.read_bytes() or proc.returncode is not None,
            START_TIMEOUT_S,
            "the miner to serve",
        )
        assert proc.returncode is None, log.read_text()[-3000:]
        _, _, wallets = subnet
        hotkey = wallets["miner"].hotkey.ss58_address
        client = SignedClient.create(wallets["validator"].hotkey)
        try:
            card = await mc.card(client, url, hotkey)
            assert card.engine.startswith("vllm/") and card.capacity == 1
            req = GenerateRequest(prompt="12 + 7 =", max_tokens=24, stop=("\n",))
            body = await mc.generate(client, url, hotkey, req)
            chunks, final = [], None
            async for item in mc.generate_stream(client, url, hotkey, req):
                if isinstance(item, GenerateChunk):
                    chunks.append(item)
                else:
                    final = item
            assert isinstance(final, GenerateResponse) and final.token_ids == body.token_ids
            assert "".join(c.text for c in chunks) == final.text == body.text
            ids = (*range(2, 12),)
            scored = await mc.score(client, url, hotkey, ScoreRequest(token_ids=ids, start=2))
            assert len(scored.logprobs) == 8 and all(r >= 0 for r in scored.ranks)
            # One slot, no queue: a second request while one runs is told when to come back.
            stream = mc.generate_stream(
                client, url, hotkey, GenerateRequest(prompt="x", max_tokens=400)
            )
            assert isinstance(await stream.__anext__(), GenerateChunk)
            with pytest.raises(mc.MinerError) as refused:
                await mc.generate(client, url, hotkey, GenerateRequest(prompt="y", max_tokens=4))
            assert refused.value.status == 429 and refused.value.body.retry_after
            await stream.aclose()  # the client leaves: the miner aborts it in vLLM
        finally:
            await client.close()
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/metrics") as r:
                metrics = await r.text()
        assert 'dmoe_miner_rejections_total{reason="at_capacity"} 1.0' in metrics
        assert 'dmoe_miner_requests_total{endpoint="score",status="200"} 1.0' in metrics
        procs = family(proc.pid)
        assert "VLLM::EngineCore" in names(procs)
        assert await terminate(proc, procs) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigterm_while_vllm_starts_leaves_no_process(subnet, wallet_dir, tmp_path):
    log = tmp_path / "miner.log"
    proc, _ = await spawn_miner(subnet, wallet_dir, log)
    try:
        await wait_for(
            lambda: "VLLM::EngineCore" in names(family(proc.pid)),
            START_TIMEOUT_S,
            "vLLM's engine core to be spawned",
        )
        procs = family(proc.pid)
        assert await terminate(proc, procs) == 0, log.read_text()[-3000:]
        assert b"dmoe miner serving" not in log.read_bytes()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigkill_of_the_miner_leaves_no_vllm_process(subnet, wallet_dir, tmp_path):
    """vLLM's engine core outlives a killed parent; the engine's reaper ends it."""
    import psutil

    log = tmp_path / "miner.log"
    proc, _ = await spawn_miner(subnet, wallet_dir, log)
    try:
        await wait_for(
            lambda: b"dmoe miner serving" in log.read_bytes() or proc.returncode is not None,
            START_TIMEOUT_S,
            "the miner to serve",
        )
        procs = family(proc.pid)
        assert {"VLLM::EngineCore", "VLLM::Worker"} <= names(procs), log.read_text()[-3000:]
        await asyncio.sleep(2.0)  # the reaper notes them once a second
        proc.kill()
        await proc.wait()
        gone, alive = psutil.wait_procs(procs, timeout=30)
        assert alive == [], [(p.pid, names([p])) for p in alive]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
