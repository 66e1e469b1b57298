"""Benchmark the local chain: metagraph fetch, set-weights throughput, epoch time in a block.

    .venv/bin/python scripts/bench_chain.py [--quick] [--label NAME]

Prints a table and writes bench_results/bench_chain.json. Targets: metagraph @256 uids < 20 ms,
>= 200 set-weights/s from 8 concurrent validators through the SDK, epoch @4096 uids well inside
one fast block (250 ms).

Honest setup: the "server" figures run the chain as its own `dmoe chain` process (as in
production) on a data directory prepared here, with the clients (the metagraph reader, or the 8
validators: 8 `bt.Wallet`s, one `client.execute(bt.SetWeights(...), wallet)` loop each) in this
process. The "in-process" figures run the same state in this process (no HTTP). For set-weights
the CPU time each side spent per extrinsic is reported too: on a shared machine it is steadier
than the rate, and it says which side limits the rate. Neurons for the big subnets are registered
by direct dispatch (the SDK path is what the tests cover); reads and set-weights go through the
real `bt.Client`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_TMP = Path(tempfile.mkdtemp(prefix="bench-chain-"))
for _var, _name in (("BTCLI_CONFIG", "c.json"), ("BTCLI_TOKEN_SYMBOLS_CACHE", "s.json"),
                    ("BTCLI_SUBNET_NAMES_CACHE", "n.json")):  # fmt: skip
    os.environ[_var] = str(_TMP / _name)

import bittensor as bt  # noqa: E402
import numpy as np  # noqa: E402
from bittensor_core import Keypair  # noqa: E402

from subnet.chain import Genesis, make_client  # noqa: E402
from subnet.chain.devnet import bootstrap_subnet  # noqa: E402
from subnet.chain.local.calls import ComposedCall  # noqa: E402
from subnet.chain.local.chain import LocalChain  # noqa: E402

RAO = 10**9
VALIDATORS = 8
START_TIMEOUT_S = 60.0


def build_subnet(
    n: int, validators: int = 64, data_dir: Path | None = None
) -> tuple[LocalChain, int]:
    genesis = Genesis.load().with_subnet(
        tempo=100, max_allowed_uids=max(n, 256), max_regs_per_block=n + 1, weights_rate_limit=0,
        immunity_period=10, max_validators=validators,
    )  # fmt: skip
    chain = LocalChain.create(genesis, data_dir)
    owner = Keypair.create_from_uri("//bench-owner")
    chain.fund(owner.ss58_address, 10_000_000)
    chain.dispatch(owner.ss58_address, ComposedCall("SubtensorModule", "register_network",
                                                     {"hotkey": owner.ss58_address}), False)  # fmt: skip
    netuid = max(chain.state.subnets)
    chain.dispatch(
        owner.ss58_address, ComposedCall("SubtensorModule", "start_call", {"netuid": netuid}), False
    )
    rng = np.random.default_rng(0)
    for i in range(1, n):
        hotkey = f"5{i:047d}"  # unique placeholder ids; never signed with
        chain.dispatch(owner.ss58_address, ComposedCall("SubtensorModule", "burned_register",
                                                         {"netuid": netuid, "hotkey": hotkey}), False)  # fmt: skip
        if i <= validators:
            chain.state.add_stake(
                hotkey, owner.ss58_address, netuid, int(rng.integers(1, 1000)) * RAO
            )
    sn = chain.state.subnets[netuid]
    for uid in range(1, min(validators, n - 1) + 1):  # dense rows from every validator
        row = rng.integers(1, 65535, size=n).tolist()
        sn.neurons[uid].weights = list(enumerate(row))
        sn.neurons[uid].last_update = chain.block
        chain.state.touch("neuron", (netuid, uid))
    chain.produce_blocks(1)
    return chain, netuid


def _proc_cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process (Linux /proc), to split cost between the sides."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def chain_process(data_dir: Path) -> AsyncIterator[tuple[str, int]]:
    """`dmoe chain` on a prepared data dir, instant seal, no timer blocks: (endpoint, pid)."""
    cmd = [sys.executable, "-m", "subnet.cli", "chain", "--data-dir", str(data_dir),
           "--port", "0", "--block-time", "3600", "--instant"]  # fmt: skip
    log_path = data_dir / "server.log"
    with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while (m := re.search(r"listening on (localchain://\S+)", log_path.read_text())) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dmoe chain did not start:\n{log_path.read_text()}")
            await asyncio.sleep(0.1)
        yield m.group(1), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _time_metagraph(
    client: bt.Client, netuid: int, n: int, repeats: int, new_block: bool = False
) -> float:
    """Median fetch time; `new_block`: seal a block (a transfer) before each fetch, untimed."""
    mg = await client.subnets.metagraph(netuid)  # warm-up (SDK caches, connection)
    assert len(mg.neurons) == n
    alice, bob = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob").ss58_address
    times = []
    for _ in range(repeats):
        if new_block:
            assert (await client.execute(bt.Transfer(bob, 1.0), alice)).success
        t = time.perf_counter()
        await client.subnets.metagraph(netuid)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def bench_metagraph(n: int, repeats: int) -> dict:
    data_dir = _TMP / f"mg{n}"
    chain, netuid = build_subnet(n, data_dir=data_dir)
    out = {}
    async with make_client("local", chain=chain) as client:
        out["inprocess_ms"] = await _time_metagraph(client, netuid, n, repeats)
    chain.close()
    async with chain_process(data_dir) as (endpoint, _pid), make_client(endpoint) as client:
        out["server_ms"] = await _time_metagraph(client, netuid, n, repeats)
        # The first reader after a new block pays for building the answer (later ones of the
        # same block are served from the server's read cache).
        out["server_new_block_ms"] = await _time_metagraph(client, netuid, n, repeats, True)
    return out


def bench_epoch(n: int, repeats: int) -> dict:
    chain, netuid = build_subnet(n, data_dir=_TMP / f"epoch{n}")
    sn = chain.state.subnets[netuid]
    epoch_ms, block_ms = [], []
    for _ in range(repeats):
        chain.produce_blocks(sn.last_epoch_block + int(sn.hparams["tempo"]) - chain.block - 1)
        t = time.perf_counter()
        chain.produce_blocks(1)
        block_ms.append((time.perf_counter() - t) * 1000)
        assert chain.last_epochs and chain.last_epochs[0]["n"] == n
        epoch_ms.append(chain.last_epochs[0]["ms"])
    chain.close()
    return {
        "epoch_ms": statistics.median(epoch_ms),
        "block_with_epoch_ms": statistics.median(block_ms),
    }


def _wallet(name: str) -> bt.Wallet:
    w = bt.Wallet(name, "default", path=str(_TMP / "wallets"))
    w.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
    w.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
    return w


async def prepare_set_weights(data_dir: Path) -> tuple[int, list[bt.Wallet]]:
    """A subnet with 8 permitted validators, bootstrapped through the SDK, saved in data_dir."""
    wallets = [_wallet(f"v{i}") for i in range(VALIDATORS)]
    genesis = Genesis.load().with_subnet(tempo=1000, weights_rate_limit=0, immunity_period=1)
    chain = LocalChain.create(genesis, data_dir)
    async with make_client("local", chain=chain) as client:
        owner = _wallet("owner")
        chain.fund(owner.coldkeypub.ss58_address, 10_000)
        netuid = await bootstrap_subnet(client, chain, owner, wallets, [], stake_tao=100)
        chain.produce_blocks(1001)  # past the immunity/rate windows; an epoch gave permits
    chain.close()
    return netuid, wallets


async def _run_validators(
    client: bt.Client, netuid: int, wallets: list, seconds: float, server_pid: int
) -> dict:
    """8 concurrent `client.execute(bt.SetWeights(...), signer)` loops for `seconds`.

    `wallets`: `bt.Wallet`s (as the validators sign: the SDK re-reads and re-derives the hotkey
    from its keyfile on every execute, ~2.5 ms of client CPU) or unlocked hotkey `Keypair`s."""
    counts = [0] * len(wallets)
    targets = {j: float(j + 1) for j in range(len(wallets) + 1)}

    async def set_weights(i: int) -> None:
        result = await client.execute(bt.SetWeights(netuid=netuid, weights=targets), wallets[i])
        assert result.success, result.message
        counts[i] += 1

    async def validator(i: int) -> None:
        while time.perf_counter() < deadline:
            await set_weights(i)

    await asyncio.gather(*(set_weights(i) for i in range(len(wallets))))  # warm-up
    counts = [0] * len(wallets)
    node = getattr(client, "_substrate", None) and getattr(client._substrate, "node", None)
    sent = (getattr(node, "requests", 0), getattr(node, "calls", 0))
    deadline = time.perf_counter() + seconds
    cpu0, srv0, t = time.process_time(), _proc_cpu_s(server_pid), time.perf_counter()
    await asyncio.gather(*(validator(i) for i in range(len(wallets))))
    elapsed = time.perf_counter() - t
    total = sum(counts)
    out = {
        "set_weights_per_s": total / elapsed,
        "total": total,
        "client_cpu_ms_per_tx": (time.process_time() - cpu0) * 1000 / max(total, 1),
        "server_cpu_ms_per_tx": (_proc_cpu_s(server_pid) - srv0) * 1000 / max(total, 1),
    }
    if hasattr(node, "requests"):  # over HTTP: how many requests / calls one extrinsic cost
        out["http_requests_per_tx"] = (node.requests - sent[0]) / max(total, 1)
        out["calls_per_tx"] = (node.calls - sent[1]) / max(total, 1)
    return out


async def bench_set_weights(seconds: float) -> dict:
    out = {}
    for where in ("inprocess", "server", "server_keypair"):
        data_dir = _TMP / f"sw-{where}"
        netuid, wallets = await prepare_set_weights(data_dir)
        if where == "inprocess":
            chain = LocalChain.create(None, data_dir)  # resumes the prepared state
            async with make_client("local", chain=chain) as client:
                # One process: "server" CPU is already inside the client's figure.
                out[where] = await _run_validators(client, netuid, wallets, seconds, os.getpid())
                out[where]["server_cpu_ms_per_tx"] = 0.0
            chain.close()
            continue
        signers = [w.hotkey for w in wallets] if where == "server_keypair" else wallets
        async with chain_process(data_dir) as (endpoint, pid), make_client(endpoint) as client:
            out[where] = await _run_validators(client, netuid, signers, seconds, pid)
    return out


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats, shorter runs")
    ap.add_argument("--label", default="", help="recorded in the JSON (e.g. a commit)")
    ap.add_argument("--only", choices=("metagraph", "epoch", "set_weights"), default=None)
    args = ap.parse_args()
    repeats = 3 if args.quick else 10
    results: dict = {
        "label": args.label,
        "loadavg_start": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "metagraph": {},
        "epoch": {},
        "set_weights": {},
    }
    for n in (256, 4096):
        if args.only in (None, "metagraph"):
            results["metagraph"][n] = await bench_metagraph(n, repeats)
        if args.only in (None, "epoch"):
            results["epoch"][n] = bench_epoch(n, 3 if args.quick else 5)
    if args.only in (None, "set_weights"):
        results["set_weights"] = await bench_set_weights(3.0 if args.quick else 10.0)
    results["loadavg_end"] = os.getloadavg()[0]
    _print(results)
    out = ROOT / "bench_results" / "bench_chain.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


def _print(results: dict) -> None:
    print(f"load average {results['loadavg_start']:.1f} -> {results['loadavg_end']:.1f} "
          f"on {results['cpus']} CPUs")  # fmt: skip
    print(f"{'measure':<44} {'value':>28}  target")
    for n, v in results["metagraph"].items():
        name = f"metagraph @{n} (in-process / server proc)"
        target = "< 20 ms" if n == 256 else ""
        print(f"{name:<44} {v['inprocess_ms']:>9.1f} ms / {v['server_ms']:>9.1f} ms  {target}")
        name = "  server proc, first fetch after a new block"
        print(f"{name:<44} {v['server_new_block_ms']:>25.1f} ms")
    for n, v in results["epoch"].items():
        name = f"epoch @{n} (epoch / whole block)"
        target = "<< 250 ms" if n == 4096 else ""
        print(
            f"{name:<44} {v['epoch_ms']:>9.1f} ms / {v['block_with_epoch_ms']:>9.1f} ms  {target}"
        )
    labels = {"inprocess": "in-process", "server": "server proc",
              "server_keypair": "server proc, Keypair signers"}  # fmt: skip
    for key, v in results["set_weights"].items():
        name = f"set-weights/s, {VALIDATORS} vals, {labels.get(key, key)}"
        name = name.ljust(52)
        print(f"{name}{v['set_weights_per_s']:>20.0f}  >= 200")
        cpu = f"{v['client_cpu_ms_per_tx']:.2f} / {v['server_cpu_ms_per_tx']:.2f} ms"
        print(f"{'  CPU per extrinsic (client / server)':<44} {cpu:>28}")
        if "http_requests_per_tx" in v:
            reqs = f"{v['http_requests_per_tx']:.1f} ({v['calls_per_tx']:.1f} calls)"
            print(f"{'  HTTP requests per extrinsic':<44} {reqs:>28}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
