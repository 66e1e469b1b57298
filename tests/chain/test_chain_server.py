"""The chain server: hostile requests change nothing; timer blocks reach SDK waits over the
websocket; a SIGKILLed server restarts with everything it acknowledged."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import bittensor as bt
import pytest
from bittensor_core import Keypair

from subnet.chain import make_client
from subnet.chain.config import ChainConfig
from subnet.chain.local.calls import ComposedCall
from subnet.chain.local.chain import LocalChain
from subnet.chain.local.server import ChainServer
from subnet.chain.local.signing import sign
from tests.fixtures_chain import fast_genesis

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def server(tmp_path):
    config = ChainConfig(
        data_dir=tmp_path / "chain", port=0, block_time=3600.0, instant=True,
        max_request_bytes=64 * 1024,
    )  # fmt: skip
    srv = ChainServer(LocalChain.create(fast_genesis(), config.data_dir), config)
    await srv.start()
    yield srv
    await srv.stop()


async def _post(session, url, data: bytes):
    async with session.post(url, data=data, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_hostile_requests_get_4xx_and_change_nothing(server):
    chain, url = server.chain, f"http://127.0.0.1:{server.port}/rpc"
    alice, bob = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")
    before = (chain.block, dict(chain.state.balances), dict(chain.state.nonces))
    transfer = ComposedCall(
        "Balances", "transfer_keep_alive", {"dest": bob.ss58_address, "value": 10**9}
    )
    forged = sign(transfer, bob, None, chain.genesis_hash).to_dict()
    forged["address"] = alice.ss58_address  # Bob's signature claiming to be Alice
    tampered = sign(transfer, alice, None, chain.genesis_hash).to_dict()
    tampered["call"] = "0x" + ComposedCall("Balances", "transfer_keep_alive",
                                           {"dest": bob.ss58_address, "value": 10**15}).data.hex()  # fmt: skip
    stale = sign(transfer, alice, None, chain.genesis_hash).to_dict()
    stale["ts_ns"] -= 3600 * 10**9
    cases = [
        (b"{not json", 400, "bad_json"),
        (b'["method"]', 400, "bad_request"),
        (json.dumps({"method": "drop_tables", "params": {}}).encode(), 404, "unknown_method"),
        (json.dumps({"method": "query", "params": {"nope": 1}}).encode(), 400, "bad_params"),
        (json.dumps({"method": "submit", "params": {"extrinsic": forged}}).encode(), 401, None),
        (json.dumps({"method": "submit", "params": {"extrinsic": tampered}}).encode(), 401, None),
        (json.dumps({"method": "submit", "params": {"extrinsic": stale}}).encode(), 401, None),
        (
            json.dumps({"method": "submit", "params": {"extrinsic": {"call": 5}}}).encode(),
            401,
            None,
        ),
        (b'{"method": "query", "params": {"x": "' + b"a" * 100_000 + b'"}}', 413, "too_large"),
    ]
    async with aiohttp.ClientSession() as session:
        for body, status, code in cases:
            got_status, got = await _post(session, url, body)
            assert got_status == status, (body[:60], got)
            assert "message" in got and (code is None or got["error"] == code)
        assert (chain.block, chain.state.balances, chain.state.nonces) == before
        # A genuine extrinsic is applied once; replaying its exact bytes is refused.
        genuine = json.dumps({"method": "submit", "params": {"extrinsic": sign(
            transfer, alice, None, chain.genesis_hash).to_dict()}}).encode()  # fmt: skip
        status, first = await _post(session, url, genuine)
        assert status == 200 and first["result"]["success"]
        status, replay = await _post(session, url, genuine)
        assert status == 401 and "replayed" in replay["message"]
    assert chain.state.balances[bob.ss58_address] == 10**9


async def test_timer_blocks_reach_sdk_waits(tmp_path):
    config = ChainConfig(data_dir=tmp_path / "chain", port=0, block_time=0.05)
    srv = ChainServer(LocalChain.create(fast_genesis(), config.data_dir), config)
    await srv.start()
    try:
        async with make_client(f"localchain://127.0.0.1:{srv.port}") as client:
            start = await client.block()
            await asyncio.wait_for(client.wait_for_block(start + 3), 10)
            assert await client.block() >= start + 3
            # Submissions wait for the block that includes them.
            alice = Keypair.create_from_uri("//Alice")
            result = await client.execute(
                bt.Transfer(Keypair.create_from_uri("//Bob").ss58_address, 1.0), alice
            )
            assert result.success and int(result.extrinsic_id.split("-")[0]) > start
    finally:
        await srv.stop()


def _spawn(data_dir: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "subnet.cli", "chain", "--data-dir", str(data_dir),
           "--port", str(port), "--block-time", "3600", "--instant"]  # fmt: skip
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "server.log", "a")  # a file, not a pipe: a full pipe would block it
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
    for _ in range(300):  # up to 30 s for the interpreter to import and bind
        if "listening" in (data_dir / "server.log").read_text():
            (data_dir / "server.log").write_text("")
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError((data_dir / "server.log").read_text())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _snapshot(client, netuid: int) -> dict:
    mg = await client.subnets.metagraph(netuid)
    weights = await client.query_map(bt.storage.SubtensorModule.Weights, [netuid])
    return {
        "block": mg.block,
        "stake": [n.alpha_stake.rao for n in mg.neurons],
        "emission": [n.emission.rao for n in mg.neurons],
        "incentive": [n.incentive for n in mg.neurons],
        "weights": [(k, [tuple(p) for p in v]) for k, v in weights],
    }


async def test_sigkill_restart_keeps_state(tmp_path, make_wallet):
    data_dir, port = tmp_path / "chain", _free_port()
    owner, v1, m1 = make_wallet("owner"), make_wallet("v1"), make_wallet("m1")
    proc = _spawn(data_dir, port)
    try:
        async with make_client(f"localchain://127.0.0.1:{port}") as client:
            netuid = await _bootstrap_remote(client, owner, v1, m1)
            before = await _snapshot(client, netuid)
        assert before["weights"] and any(before["emission"])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc = _spawn(data_dir, port)
        async with make_client(f"localchain://127.0.0.1:{port}") as client:
            assert await _snapshot(client, netuid) == before
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def _bootstrap_remote(client, owner, v1, m1) -> int:
    """Bootstrap over HTTP; instant seal with no timer, so blocks come from our submissions."""
    alice = Keypair.create_from_uri("//Alice")
    for w in (owner, v1, m1):
        assert (await client.execute(bt.Transfer(w.coldkeypub.ss58_address, 500.0), alice)).success
    netuid = int((await client.execute(bt.RegisterSubnet(), owner)).data["netuid"])
    assert (await client.execute(bt.StartCall(netuid=netuid), owner)).success
    for w in (v1, m1):
        assert (await client.execute(bt.BurnedRegister(netuid=netuid), w)).success
    stake = bt.AddStake(hotkey_ss58=v1.hotkey.ss58_address, netuid=netuid, amount_tao=50)
    assert (await client.execute(stake, v1)).success
    # Blocks come from transfers (instant seal): enough for an epoch (tempo 20) and the rate limit.
    for _ in range(22):
        await client.execute(bt.Transfer(owner.coldkeypub.ss58_address, 0.01), alice)
    sw = await client.execute(bt.SetWeights(netuid=netuid, weights={2: 1.0}), v1)
    assert sw.success, sw.message
    for _ in range(22):
        await client.execute(bt.Transfer(owner.coldkeypub.ss58_address, 0.01), alice)
    return netuid
