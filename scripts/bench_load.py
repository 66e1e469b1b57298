"""Load benchmark: a miner at 4x its capacity, and a `dmoe chain` process under 8 validators
setting weights and 50 neurons reading the metagraph every block. All traffic is to 127.0.0.1.

    .venv/bin/python scripts/bench_load.py [--quick]

Prints a table and writes bench_results/bench_load.json.
- miner: capacity = max_batch + max_queue; 4x that many concurrent streamed generations per
  wave. Admitted requests' TTFT (p50/p99, measured by the client), refusals (must be 429 with a
  Retry-After header, nothing else), peak RSS of the process (client + server, one process).
- gateway: N concurrent streaming clients (official `openai` async client, one API key each)
  through a validator's OpenAI gateway to a few real tiny-expert miners, all in this process:
  success rate, TTFT p50/p99 (first content chunk, as the client sees it), peak RSS.
- chain: separate process (`dmoe chain`, 0.25 s blocks). Per block each validator sets weights
  through the SDK and each reader fetches the metagraph; reports successes, latencies and how
  far block production drifted from its period.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_TMP = Path(tempfile.mkdtemp(prefix="bench-load-"))
for _var, _name in (("BTCLI_CONFIG", "c.json"), ("BTCLI_TOKEN_SYMBOLS_CACHE", "s.json"),
                    ("BTCLI_SUBNET_NAMES_CACHE", "n.json")):  # fmt: skip
    os.environ[_var] = str(_TMP / _name)

import bittensor as bt  # noqa: E402

RESULTS = ROOT / "bench_results" / "bench_load.json"


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def wallet(name: str) -> bt.Wallet:
    w = bt.Wallet(name, "default", path=str(_TMP / "wallets"))
    w.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
    w.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
    return w


# --- miner ----------------------------------------------------------------------------------
async def bench_miner(waves: int) -> dict:
    import torch

    from protocol import GenerateRequest
    from subnet.config import AxonConfig, CommonConfig, LoggingConfig, SubtensorConfig, WalletConfig
    from subnet.engine.experts import build_tiny_experts
    from subnet.engine.loading import load_expert
    from subnet.miner import client as mc
    from subnet.miner.admission import AdmissionPolicy, MetagraphSnapshot, Peer
    from subnet.miner.config import EngineConfig, MinerConfig, ServerConfig
    from subnet.miner.server import MinerServer
    from subnet.net import SignedClient

    torch.set_num_threads(1)
    experts = build_tiny_experts(
        Path(tempfile.gettempdir()) / "dmoe-tiny-experts-test", size="test"
    )
    expert = load_expert(experts["math"], device="cpu")
    miner_w, val_w = wallet("load-miner"), wallet("load-val")
    snapshot = MetagraphSnapshot(1, {val_w.hotkey.ss58_address: Peer(1, 1000.0, True)})
    batch, queue = 4, 4
    cfg = MinerConfig(
        common=CommonConfig(
            1,
            WalletConfig(),
            SubtensorConfig(),
            AxonConfig(ip="127.0.0.1", port=0),
            LoggingConfig(),
        ),  # fmt: skip
        engine=EngineConfig(expert="unused", max_batch=batch, max_queue=queue),
        server=ServerConfig(
            max_new_tokens=64,
            drain_s=5,
            policy=AdmissionPolicy(total_tokens_per_s=1e9, min_burst_tokens=1e9),
        ),  # fmt: skip
        publish=False,
    )
    server = MinerServer.create(cfg, wallet=miner_w, expert=expert, snapshot=snapshot)
    await server.start()
    client = SignedClient.create(val_w.hotkey, max_connections=1024)
    capacity = batch + queue
    concurrency = 4 * capacity
    ttfts: list[float] = []
    statuses: dict[str, int] = {}
    retry_after_ok = 0
    peak = rss_mb()
    t_all = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal retry_after_ok
        req = GenerateRequest(prompt=f"{i % 97} + {i % 13} =", max_tokens=32)
        t0 = time.perf_counter()
        try:
            async for _ in mc.generate_stream(client, server.url, server.hotkey, req):
                if t0 is not None:
                    ttfts.append(time.perf_counter() - t0)
                    t0 = None  # type: ignore[assignment]
            statuses["200"] = statuses.get("200", 0) + 1
        except mc.MinerError as err:
            statuses[str(err.status)] = statuses.get(str(err.status), 0) + 1
            if err.status == 429 and (err.body.retry_after or 0) > 0:
                retry_after_ok += 1

    async def sample_rss(stop: asyncio.Event) -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb())
            await asyncio.sleep(0.05)

    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(stop))
    for w in range(waves):
        await asyncio.gather(*(one(w * concurrency + i) for i in range(concurrency)))
    stop.set()
    await sampler
    wall = time.perf_counter() - t_all
    await client.close()
    await server.stop()
    refused = sum(v for k, v in statuses.items() if k != "200")
    return {
        "capacity": capacity,
        "concurrency": concurrency,
        "requests": waves * concurrency,
        "statuses": statuses,
        "refused_with_retry_after": retry_after_ok,
        "all_refusals_429_retry_after": refused == retry_after_ok,
        "ttft_p50_ms": pct(ttfts, 0.5) * 1e3,
        "ttft_p99_ms": pct(ttfts, 0.99) * 1e3,
        "peak_rss_mb": peak,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": wall,
    }


# --- gateway --------------------------------------------------------------------------------
async def bench_gateway(clients: int, n_miners: int = 4, max_tokens: int = 16) -> dict:
    """`clients` concurrent streaming chat completions through one gateway to `n_miners`."""
    import httpx2
    import openai
    import torch

    from subnet.config import AxonConfig, CommonConfig, LoggingConfig, SubtensorConfig, WalletConfig
    from subnet.engine.experts import build_tiny_experts
    from subnet.miner.admission import AdmissionPolicy, MetagraphSnapshot, Peer
    from subnet.miner.config import EngineConfig, MinerConfig, ServerConfig
    from subnet.miner.server import MinerServer
    from subnet.net import SignedClient
    from subnet.validator.config import GatewayConfig, LoopConfig, ValidatorConfig
    from subnet.validator.gateway import Gateway
    from subnet.validator.loop import Validator
    from subnet.validator.query import MinerInfo
    from subnet.validator.router import RouterConfig
    from subnet.validator.state import StateStore
    from subnet.validator.verifier import ExpertRegistry, Verifier

    torch.set_num_threads(1)
    root = build_tiny_experts(Path(tempfile.gettempdir()) / "dmoe-tiny-experts-test", size="test")
    reg = ExpertRegistry.load_dir(next(iter(root.values())).parent)
    experts = list(reg.experts.values())
    val_w = wallet("gw-val")
    snapshot = MetagraphSnapshot(1, {val_w.hotkey.ss58_address: Peer(0, 1000.0, True)})
    common = CommonConfig(1, WalletConfig(), SubtensorConfig(),
                          AxonConfig(ip="127.0.0.1", port=0), LoggingConfig())  # fmt: skip
    # Enough slots in all (batch + queue per miner) for every client: the gateway, not the
    # miners' admission, is what this measures.
    per_miner = -(-clients // n_miners)
    mcfg = MinerConfig(
        common=common,
        engine=EngineConfig(expert="unused", max_batch=16, max_queue=max(16, per_miner)),
        server=ServerConfig(
            max_new_tokens=64,
            drain_s=5,
            policy=AdmissionPolicy(total_tokens_per_s=1e9, min_burst_tokens=1e9),
        ),  # fmt: skip
        publish=False,
    )
    servers, infos = [], []
    for i in range(n_miners):
        server = MinerServer.create(mcfg, wallet=wallet(f"gw-miner{i}"),
                                    expert=experts[i % len(experts)], snapshot=snapshot)  # fmt: skip
        await server.start()
        servers.append(server)
        infos.append(MinerInfo(i + 1, server.hotkey, server.url, server.engine.card))
    signed = SignedClient.create(val_w.hotkey, max_connections=4 * clients)
    vcfg = ValidatorConfig(common=common, state_path=_TMP / "gw-state.json",
                           loop=LoopConfig(step_s=3600, seed=1))  # fmt: skip
    v = Validator(vcfg, signed=signed, verifier=Verifier(reg), store=StateStore(vcfg.state_path))
    v.set_miners(infos)
    keys = tuple(f"sk-load-{i}" for i in range(clients))  # one user (key) per client
    gw = Gateway(v, GatewayConfig(port=0, api_keys=keys, verify_share=0.0),
                 RouterConfig(explore=0.0))  # fmt: skip
    await gw.start("127.0.0.1", 0)
    http = httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    )
    base = f"http://127.0.0.1:{gw.port}/v1"
    ttfts: list[float] = []
    outcomes: dict[str, int] = {}
    first_tries: dict[str, int] = {}  # clean refusals (429/503 + Retry-After) on a first try
    peak = rss_mb()
    start = asyncio.Event()

    async def attempt(c: openai.AsyncOpenAI, i: int, t0: float) -> tuple[str, float | None]:
        first, parts = None, []
        try:
            stream = await c.chat.completions.create(
                model="auto", stream=True, max_tokens=max_tokens,
                messages=[{"role": "user", "content": f"What is {i % 97} + {i % 13} ="}],
            )  # fmt: skip
            async for chunk in stream:
                text = chunk.choices[0].delta.content if chunk.choices else None
                if text and first is None:
                    first = time.perf_counter() - t0
                parts.append(text or "")
            return ("ok" if first is not None and "".join(parts) else "empty"), first
        except openai.APIStatusError as err:
            retry = err.response.headers.get("retry-after")
            return f"{err.status_code}{'+retry-after' if retry else ''}", _num(retry)
        except (openai.APIError, httpx2.HTTPError) as err:
            return type(err).__name__, None

    async def one(i: int) -> None:
        c = openai.AsyncOpenAI(base_url=base, api_key=keys[i], http_client=http,
                               max_retries=0, timeout=120)  # fmt: skip
        await start.wait()
        t0 = time.perf_counter()  # TTFT as the user sees it, a retry included
        key, x = await attempt(c, i, t0)
        if key.endswith("+retry-after"):  # a clean refusal: do what it says, once
            first_tries[key] = first_tries.get(key, 0) + 1
            await asyncio.sleep(min(x or 1.0, 10.0))
            key, x = await attempt(c, i, t0)
            key = key if key != "ok" else "ok after a retry"
        if key.startswith("ok") and x is not None:
            ttfts.append(x)
        outcomes[key] = outcomes.get(key, 0) + 1

    async def sample_rss(stop: asyncio.Event) -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb())
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(one(i)) for i in range(clients)]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(stop))
    await asyncio.sleep(0.1)
    t_all = time.perf_counter()
    start.set()  # every client starts its stream at once
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t_all
    stop.set()
    await sampler
    await http.aclose()
    await gw.stop()
    await signed.close()
    for server in servers:
        await server.stop()
    return {
        "clients": clients,
        "miners": n_miners,
        "max_tokens": max_tokens,
        "outcomes": outcomes,
        "refused_first_try": first_tries,
        "first_try_success_rate": outcomes.get("ok", 0) / clients,
        "success_rate": sum(v for k, v in outcomes.items() if k.startswith("ok")) / clients,
        "ttft_p50_ms": pct(ttfts, 0.5) * 1e3,
        "ttft_p99_ms": pct(ttfts, 0.99) * 1e3,
        "peak_rss_mb": peak,
        "wall_s": wall,
        "loadavg_1m": os.getloadavg()[0],  # two shared cores: how busy the machine was
    }


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# --- chain ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def bench_chain(blocks: int, n_validators: int = 8, n_readers: int = 50) -> dict:
    from subnet.chain import Genesis, make_client
    from subnet.chain.devnet import bootstrap_subnet
    from subnet.chain.local.chain import LocalChain

    data = _TMP / "chain"
    genesis = Genesis.load().with_subnet(tempo=20, weights_rate_limit=0, immunity_period=1)
    chain = LocalChain.create(genesis, data)
    validators = [wallet(f"load-v{i}") for i in range(n_validators)]
    owner = wallet("load-owner")
    chain.fund(owner.coldkeypub.ss58_address, 10_000)
    async with make_client("local", chain=chain) as c:
        netuid = await bootstrap_subnet(c, chain, owner, validators, [], stake_tao=100)
    chain.produce_blocks(25)
    chain.close()
    port = _free_port()
    log = open(data / "server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "subnet.cli",
            "chain",
            "--data-dir",
            str(data),
            "--port",
            str(port),
            "--block-time",
            "0.25",
        ],  # fmt: skip
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"localchain://127.0.0.1:{port}"
    sw_ok, sw_fail, sw_ms, mg_ms, mg_fail, lag = 0, 0, [], [], 0, []
    try:
        for _ in range(300):
            if "listening" in (data / "server.log").read_text() or proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        head = make_client(endpoint)
        await head.__aenter__()
        start = await head.block()
        end = start + blocks
        heads: list[tuple[int, float]] = []

        async def validator(w: bt.Wallet) -> None:
            nonlocal sw_ok, sw_fail
            async with make_client(endpoint) as c:
                seen = await c.block()
                while seen < end:
                    await asyncio.wait_for(c.wait_for_block(seen + 1), 30)
                    seen = await c.block()
                    t = time.perf_counter()
                    r = await asyncio.wait_for(
                        c.execute(bt.SetWeights(netuid=netuid, weights={0: 1.0, 1: 2.0}), w), 30
                    )
                    sw_ms.append((time.perf_counter() - t) * 1e3)
                    if r.success:
                        sw_ok += 1
                    else:
                        sw_fail += 1

        async def reader() -> None:
            nonlocal mg_fail
            async with make_client(endpoint) as c:
                seen = await c.block()
                while seen < end:
                    await asyncio.wait_for(c.wait_for_block(seen + 1), 30)
                    seen = await c.block()
                    t = time.perf_counter()
                    try:
                        mg = await asyncio.wait_for(c.subnets.metagraph(netuid), 30)
                        mg_ms.append((time.perf_counter() - t) * 1e3)
                        lag.append(int(mg.block) - seen)
                    except (TimeoutError, bt.ChainError):
                        mg_fail += 1

        async def watch() -> None:
            seen = start
            while seen < end:
                await asyncio.wait_for(head.wait_for_block(seen + 1), 30)
                seen = await head.block()
                heads.append((seen, time.perf_counter()))

        t0 = time.perf_counter()
        await asyncio.gather(
            watch(), *(validator(w) for w in validators), *(reader() for _ in range(n_readers))
        )
        wall = time.perf_counter() - t0
        await head.__aexit__(None, None, None)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    produced = heads[-1][0] - start if heads else 0
    return {
        "validators": n_validators,
        "readers": n_readers,
        "blocks": produced,
        "block_period_s": wall / produced if produced else float("nan"),
        "set_weights_ok": sw_ok,
        "set_weights_failed": sw_fail,
        "set_weights_p50_ms": pct(sw_ms, 0.5),
        "set_weights_p99_ms": pct(sw_ms, 0.99),
        "metagraph_reads": len(mg_ms),
        "metagraph_failed": mg_fail,
        "metagraph_p50_ms": pct(mg_ms, 0.5),
        "metagraph_p99_ms": pct(mg_ms, 0.99),
        "wall_s": wall,
    }


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["miner", "gateway", "chain"], default=None)
    ap.add_argument("--clients", type=int, default=200, help="gateway: concurrent streams")
    args = ap.parse_args()
    results = json.loads(RESULTS.read_text()) if args.only and RESULTS.is_file() else {}
    if args.only in (None, "miner"):
        results["miner"] = await bench_miner(waves=2 if args.quick else 5)
    if args.only in (None, "gateway"):
        results["gateway"] = await bench_gateway(args.clients)
    if args.only in (None, "chain"):
        results["chain"] = await bench_chain(blocks=8 if args.quick else 40)
    for name, value in _rows(results):
        print(f"{name:<42} {value}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")
    return 0


def _rows(results: dict) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if "gateway" in results:
        g = results["gateway"]
        rows += [
            ("gateway: clients / miners", f"{g['clients']} / {g['miners']}"),
            ("gateway: outcomes", json.dumps(g["outcomes"])),
            ("gateway: refused on a first try", json.dumps(g["refused_first_try"])),
            (
                "gateway: success first try / with one retry",
                f"{g['first_try_success_rate']:.1%} / {g['success_rate']:.1%}",
            ),
            ("gateway: TTFT p50 / p99", f"{g['ttft_p50_ms']:.0f} / {g['ttft_p99_ms']:.0f} ms"),
            ("gateway: peak RSS (clients+gateway+miners)", f"{g['peak_rss_mb']:.0f} MB"),
        ]
    if "miner" not in results or "chain" not in results:
        return rows
    m, c = results["miner"], results["chain"]
    rows += [
        ("miner: concurrency / capacity", f"{m['concurrency']} / {m['capacity']}"),
        ("miner: statuses", json.dumps(m["statuses"])),
        ("miner: every refusal 429 + Retry-After", str(m["all_refusals_429_retry_after"])),
        ("miner: TTFT admitted p50 / p99", f"{m['ttft_p50_ms']:.0f} / {m['ttft_p99_ms']:.0f} ms"),
        ("miner: peak RSS (client+server)", f"{m['peak_rss_mb']:.0f} MB"),
        ("chain: validators / readers", f"{c['validators']} / {c['readers']}"),
        ("chain: blocks, period", f"{c['blocks']}, {c['block_period_s'] * 1e3:.0f} ms"),
        ("chain: set-weights ok / failed", f"{c['set_weights_ok']} / {c['set_weights_failed']}"),
        (
            "chain: set-weights p50 / p99",
            f"{c['set_weights_p50_ms']:.0f} / {c['set_weights_p99_ms']:.0f} ms",
        ),  # fmt: skip
        ("chain: metagraph reads / failed", f"{c['metagraph_reads']} / {c['metagraph_failed']}"),
        (
            "chain: metagraph p50 / p99",
            f"{c['metagraph_p50_ms']:.0f} / {c['metagraph_p99_ms']:.0f} ms",
        ),  # fmt: skip
    ]
    return rows


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
