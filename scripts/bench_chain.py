"""Benchmark the local chain: metagraph fetch, set-weights throughput, epoch time in a block.

    .venv/bin/python scripts/bench_chain.py [--quick]

Prints a table and writes bench_results/bench_chain.json. Targets: metagraph @256 uids < 20 ms,
>= 200 set-weights/s from 8 concurrent validators through the SDK, epoch @4096 uids well inside
one fast block (250 ms). Neurons for the big subnets are registered by direct dispatch (the SDK
path is what the tests cover); reads and set-weights go through the real `bt.Client`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
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
from subnet.chain.config import ChainConfig  # noqa: E402
from subnet.chain.local.calls import ComposedCall  # noqa: E402
from subnet.chain.local.chain import LocalChain  # noqa: E402
from subnet.chain.local.server import ChainServer  # noqa: E402

RAO = 10**9


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


async def bench_metagraph(n: int, repeats: int) -> dict:
    chain, netuid = build_subnet(n)
    out = {}
    async with make_client("local", chain=chain) as client:
        await client.subnets.metagraph(netuid)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            mg = await client.subnets.metagraph(netuid)
            times.append((time.perf_counter() - t) * 1000)
        assert len(mg.neurons) == n
        out["inprocess_ms"] = statistics.median(times)
    config = ChainConfig(data_dir=_TMP / f"mg{n}", port=0, block_time=3600, instant=True,
                         max_request_bytes=64 << 20)  # fmt: skip
    server = ChainServer(chain, config)
    await server.start()
    try:
        async with make_client(f"localchain://127.0.0.1:{server.port}") as client:
            await client.subnets.metagraph(netuid)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                await client.subnets.metagraph(netuid)
                times.append((time.perf_counter() - t) * 1000)
            out["http_ms"] = statistics.median(times)
    finally:
        await server.stop()
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


async def bench_set_weights(seconds: float, over_http: bool) -> dict:
    wallets = []
    for i in range(8):
        w = bt.Wallet(f"v{i}", "default", path=str(_TMP / "wallets"))
        w.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
        w.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
        wallets.append(w)
    genesis = Genesis.load().with_subnet(tempo=1000, weights_rate_limit=0, immunity_period=1)
    chain = LocalChain.create(genesis, _TMP / f"sw{over_http}")
    server = None
    if over_http:
        server = ChainServer(
            chain, ChainConfig(data_dir=_TMP / "swsrv", port=0, block_time=3600, instant=True)
        )
        await server.start()
    from subnet.chain.devnet import bootstrap_subnet

    endpoint = f"localchain://127.0.0.1:{server.port}" if server else "local"
    async with make_client(endpoint, chain=None if server else chain) as client:
        owner = bt.Wallet("owner", "default", path=str(_TMP / "wallets"))
        owner.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
        owner.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
        chain.fund(owner.coldkeypub.ss58_address, 10_000)
        netuid = await bootstrap_subnet(client, chain, owner, wallets, [], stake_tao=100)
        chain.produce_blocks(1001)  # past the immunity/rate windows; an epoch gave permits
        counts = [0] * 8
        deadline = time.perf_counter() + seconds

        async def validator(i: int) -> None:
            targets = {j: float(j + 1) for j in range(9)}
            while time.perf_counter() < deadline:
                result = await client.execute(
                    bt.SetWeights(netuid=netuid, weights=targets), wallets[i]
                )
                assert result.success, result.message
                counts[i] += 1

        t = time.perf_counter()
        await asyncio.gather(*(validator(i) for i in range(8)))
        elapsed = time.perf_counter() - t
    if server:
        await server.stop()
    return {"set_weights_per_s": sum(counts) / elapsed, "total": sum(counts)}


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    repeats = 3 if args.quick else 10
    results: dict = {"metagraph": {}, "epoch": {}, "set_weights": {}}
    for n in (256, 4096):
        results["metagraph"][n] = await bench_metagraph(n, repeats)
        results["epoch"][n] = bench_epoch(n, 3 if args.quick else 5)
    for http in (False, True):
        key = "http" if http else "inprocess"
        results["set_weights"][key] = await bench_set_weights(3.0 if args.quick else 10.0, http)
    rows = [
        ("metagraph @256 (in-process / HTTP)", results["metagraph"][256], "< 20 ms"),
        ("metagraph @4096 (in-process / HTTP)", results["metagraph"][4096], ""),
        ("epoch @256 (epoch / whole block)", results["epoch"][256], ""),
        ("epoch @4096 (epoch / whole block)", results["epoch"][4096], "<< 250 ms"),
    ]
    print(f"{'measure':<40} {'value':>26}  target")
    for name, value, target in rows:
        a, b = list(value.values())
        print(f"{name:<40} {a:>10.1f} ms / {b:>8.1f} ms  {target}")
    for key, value in results["set_weights"].items():
        print(
            f"{'set-weights/s, 8 validators, ' + key:<40} {value['set_weights_per_s']:>26.0f}  >= 200"
        )
    out = ROOT / "bench_results" / "bench_chain.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
