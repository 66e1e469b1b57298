"""SIGKILL the chain, a validator and a miner of a running localnet (separately) and restart each
with the same arguments, as an operator's supervisor would.

- chain: it resumes at (or after) the last block seen before the kill, and every transfer it
  acknowledged before the kill is in its state after the restart; validators set weights again.
- validator: it reloads its scores (state file: step counter and per-miner scores survive) and
  sets weights again within one tempo of coming back.
- miner: a client of the killed miner gets a prompt, clean error (no hang, no garbage); the
  gateway answers with a JSON body either way; the miner's score falls while it is down and
  recovers after the restart, within about as many validator samples as the downtime cost it.

Both modes kill and restart all three. The short mode runs in the default suite (CI, every
landing: crash recovery is part of what must hold) with one miner and one validator, and checks
the miner's score climbing again after its restart rather than waiting for the full recovery;
the long mode (`-m slow`, scripts/chaos.py) runs two of each and bounds the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable

import aiohttp
import bittensor as bt
import pytest
from bittensor_core import Keypair

from protocol import GenerateRequest
from subnet.localnet.config import LocalnetConfig
from subnet.localnet.runner import Localnet
from subnet.localnet.view import LOCALNET_API_KEY
from subnet.miner import client as miner_client
from subnet.net import SignedClient
from subnet.validator.scoring import ScoringConfig, half_life
from tests.faults.reliability import record

TEMPO = 12
BLOCK_S = 0.25


async def until(pred: Callable[[], Awaitable[object]], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, TimeoutError, aiohttp.ClientError, bt.ChainError):
            got = await pred()
            if got:
                return got
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def restart(net: Localnet, name: str) -> None:
    """SIGKILL `name` and start it again with the same argv and log. No await in between: the
    runner's watch loop (same event loop) never sees it dead."""
    child = net.procs.children[name]
    net.procs.kill(name)
    net.procs.start_argv(name, child.argv, child.log_path)


class Probe:
    def __init__(self, net: Localnet, http: aiohttp.ClientSession):
        self.net, self.http = net, http
        self.ports = {n.name: n.port for n in net.layout.neurons}

    async def status(self, validator: str) -> dict:
        url = f"http://127.0.0.1:{self.ports[validator]}/v1/status"
        async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as r:
            return await r.json() if r.status == 200 else {}

    async def health(self, name: str) -> bool:
        port = self.net.layout.chain_port if name == "chain" else self.ports[name]
        url = f"http://127.0.0.1:{port}/health"
        async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status == 200

    async def block(self) -> int:
        async with self.net._client() as c:
            return int(await asyncio.wait_for(c.block(), 5))


async def test_sigkill_chain_validator_and_miner_short(tmp_path, tiny_experts):
    await _scenario(tmp_path, tiny_experts, short=True)


@pytest.mark.slow
async def test_sigkill_chain_validator_and_miner(tmp_path, tiny_experts):
    await _scenario(tmp_path, tiny_experts, short=False)


async def _scenario(tmp_path, tiny_experts, *, short: bool) -> None:
    from pathlib import Path

    cfg = LocalnetConfig(
        data_dir=tmp_path / "ln",
        miners=1 if short else 2,
        validators=1 if short else 2,
        block_time=BLOCK_S,
        tempo=TEMPO,
        epochs=0,  # until cancelled
        experts_dir=Path(tiny_experts["code"]).parent,
        experts_size="test",
        dashboard=False,
        fresh=True,
    )
    net = Localnet.create(cfg)
    run = asyncio.create_task(net.run())
    figures: dict[str, object] = {}
    try:
        async with aiohttp.ClientSession() as http:
            p = Probe(net, http)
            miner1 = next(n for n in net.layout.neurons if n.name == "miner-1")

            async def weights_and_scores() -> dict | None:
                if run.done():
                    run.result()  # surface a failed start
                s = await p.status("validator-1")
                m = (s.get("miners") or {}).get(miner1.hotkey) or {}
                ok = s.get("last_weights_block") and (m.get("score") or 0) > 0
                return s if ok and len(net.history) >= 1 else None

            await until(weights_and_scores, 420, "a running subnet with weights set")
            figures["chain"] = await _chain_fault(net, p)
            figures["validator"] = await _validator_fault(net, p)
            figures["miner"] = {}
            await _miner_fault(net, p, miner1, figures["miner"], short=short)
            assert not run.done(), "the localnet stopped during the faults"
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        record("localnet_faults" + ("_short" if short else ""), figures)


async def _chain_fault(net: Localnet, p: Probe) -> dict:
    owner = bt.Wallet("owner", "default", path=str(net.layout.wallet_dir))
    dests = [Keypair.create_from_uri(f"//faults-dest-{i}") for i in range(6)]  # fresh chain
    acked: dict[str, int] = {}
    async with net._client() as c:
        for i, kp in enumerate(dests[:3]):
            res = await asyncio.wait_for(c.execute(bt.Transfer(kp.ss58_address, 1 + i), owner), 20)
            assert res.success, res.message
            acked[kp.ss58_address] = (1 + i) * 10**9
        # Three more in flight while the chain dies: whatever it acknowledged must survive.
        pending = [
            asyncio.create_task(c.execute(bt.Transfer(kp.ss58_address, 4 + i), owner))
            for i, kp in enumerate(dests[3:])
        ]
        await asyncio.sleep(BLOCK_S * 0.6)
        last_seen = int(await c.block())
        restart(net, "chain")
        for kp, (i, t) in zip(dests[3:], enumerate(pending), strict=True):
            with contextlib.suppress(Exception):  # a refused or broken call is not an ack
                res = await asyncio.wait_for(t, 30)
                if res.success:
                    acked[kp.ss58_address] = (4 + i) * 10**9
    t_restart = time.monotonic()
    await until(lambda: p.health("chain"), 60, "the chain back up")
    first = await until(p.block, 30, "a block from the restarted chain")
    async with net._client() as c:
        found = {}
        for ss58 in acked:
            info = await c.query(bt.storage.System.Account, [ss58])
            found[ss58] = int(info["data"]["free"])
    assert first >= last_seen, (first, last_seen)
    assert found == acked, "an acknowledged transfer was lost"
    v_before = (await p.status("validator-1")).get("last_weights_block") or 0

    async def weights_again() -> int | None:
        b = (await p.status("validator-1")).get("last_weights_block") or 0
        return b if b > max(v_before, first) else None

    again = await until(weights_again, 120, "weights set after the chain restart")
    return {"last_block_before_kill": last_seen, "first_block_after": first,
            "acknowledged_transfers": len(acked), "lost": 0,
            "weights_again_block": again, "restart_s": round(time.monotonic() - t_restart, 1)}  # fmt: skip


async def _validator_fault(net: Localnet, p: Probe) -> dict:
    before = await p.status("validator-1")
    scores = {hk: m["score"] for hk, m in before["miners"].items() if m.get("score")}
    restart(net, "validator-1")
    await until(lambda: p.health("validator-1"), 180, "validator-1 back up")
    up_block = await until(p.block, 30, "the block when validator-1 came back")
    after = await until(
        lambda: _with_miners(p.status("validator-1")), 60, "validator-1 status with miners"
    )
    # The state file: the step counter continues and the miners keep (about) their scores.
    assert after["step"] >= before["step"], (after["step"], before["step"])
    for hk, score in scores.items():
        got = after["miners"][hk]["score"]
        assert got is not None and got >= 0.5 * score, (hk, score, got)

    async def weights_again() -> int | None:
        b = (await p.status("validator-1")).get("last_weights_block") or 0
        return b if b >= up_block else None

    again = await until(weights_again, 120, "validator-1 setting weights after restart")
    assert again - up_block <= TEMPO, (again, up_block)
    return {"step_before": before["step"], "step_after": after["step"],
            "scores_kept": len(scores), "up_block": up_block, "weights_block": again,
            "blocks_to_weights": again - up_block}  # fmt: skip


async def _with_miners(st: Awaitable[dict]) -> dict | None:
    s = await st
    return (
        s
        if s.get("miners") and all(m.get("score") is not None for m in s["miners"].values())
        else None
    )


async def _miner_fault(net: Localnet, p: Probe, miner, out: dict, *, short: bool) -> None:
    async def score() -> float:
        s = await p.status("validator-1")
        return float(((s.get("miners") or {}).get(miner.hotkey) or {}).get("score") or 0.0)

    track: list[tuple] = []  # (samples, score, last reason) after the restart
    out["after_restart"] = track

    async def samples() -> int:
        s = await p.status("validator-1")
        return int(((s.get("miners") or {}).get(miner.hotkey) or {}).get("requests") or 0)

    s0, n0 = await score(), await samples()
    restart_args = net.procs.children[miner.name]
    net.procs.kill(miner.name)
    # Down on purpose for a while: hide it from the runner's watch loop, which stops the whole
    # localnet when a child dies unexpectedly.
    restart_args.proc = None
    t_down = time.monotonic()
    # A client of the dead miner: a prompt, clean error.
    vw = bt.Wallet("validator-1", "default", path=str(net.layout.wallet_dir))
    signed = SignedClient.create(vw.hotkey)
    t0 = time.monotonic()
    try:
        with pytest.raises((aiohttp.ClientConnectionError, miner_client.MinerError)):
            await asyncio.wait_for(
                miner_client.generate(
                    signed,
                    f"http://127.0.0.1:{miner.port}",
                    miner.hotkey,
                    GenerateRequest(prompt="1 + 1 =", max_tokens=4),
                ),  # fmt: skip
                10,
            )
    finally:
        await signed.close()
    client_error_s = time.monotonic() - t0
    # Through the gateway: an answer from another miner, or a JSON error; never a hang or a 500.
    body = {"model": miner.expert, "prompt": "def f(x):", "max_tokens": 4}
    headers = {"Authorization": f"Bearer {LOCALNET_API_KEY}"}
    url = f"http://127.0.0.1:{p.ports['validator-1']}/v1/completions"
    async with p.http.post(url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(30)) as r:
        gw_status, gw_body = r.status, await r.json()
    assert gw_status == 200 or ("error" in gw_body and gw_status in (429, 502, 503, 504)), gw_body
    # Down for about three validator steps' worth of samples, then back with the same args.
    await until(lambda: _dropped(score, s0), 60, "the validator noticing the dead miner")
    await asyncio.sleep(3.0)
    net.procs.start_argv(miner.name, restart_args.argv, restart_args.log_path)
    await until(lambda: p.health(miner.name), 180, "the miner back up")
    # Down until it answers again (its start-up included): the samples that failed meanwhile.
    downtime = time.monotonic() - t_down
    t_up, n_up, s_low = time.monotonic(), await samples(), await score()
    n_down = n_up - n0

    async def recovered() -> float | None:
        st = (await p.status("validator-1")).get("miners", {}).get(miner.hotkey) or {}
        s, n = float(st.get("score") or 0.0), int(st.get("requests") or 0) - n_up
        if not track or track[-1][0] != n:
            track.append((n, round(s, 3), st.get("last_reason")))
        return s if s >= 0.9 * s0 else None

    out.update({"score_before": round(s0, 3), "score_down": round(s_low, 3),
                "downtime_s": round(downtime, 1), "samples_while_down": n_down,
                "client_error_s": round(client_error_s, 3), "gateway_status": gw_status})  # fmt: skip
    if short:  # verified answers again after the restart: its score climbs from the low
        climbed = await until(
            lambda: _climbed(score, s_low), 120, "the miner's score climbing after restart"
        )
        out["score_climbing"] = round(float(climbed), 3)
        return
    b_up = await p.block()
    s_back = await until(recovered, 240, "the miner's score recovering after restart")
    n_recover = await samples() - n_up
    recover_s = time.monotonic() - t_up
    blocks = await p.block() - b_up
    # Not punished beyond the downtime: no ban or lasting penalty, only the evidence of the
    # failed samples, which ages with the scoring half-life (blocks). Ten half-lives leave a
    # thousandth of it; two tempos more for the probes that rebuild the speed figures.
    hl = half_life(ScoringConfig(), TEMPO)
    bound = math.ceil(10 * hl) + 2 * TEMPO
    out.update({"score_back": round(float(s_back), 3), "samples_to_recover": n_recover,
                "blocks_to_recover": blocks, "bound_blocks": bound,
                "recover_s": round(recover_s, 1)})  # fmt: skip
    assert blocks <= bound, (blocks, n_down, bound, track)


async def _dropped(score: Callable[[], Awaitable[float]], s0: float) -> bool:
    return await score() < 0.95 * s0


async def _climbed(score: Callable[[], Awaitable[float]], low: float) -> float | None:
    s = await score()
    return s if s > low + 1e-6 else None
