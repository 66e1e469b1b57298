"""Every typical operator mistake, run as a real `dmoe` process, is answered in one line.

One real `dmoe chain` process serves a subnet prepared in-process (a staked validator with a
permit, a registered hotkey without stake, an unregistered one, an unfunded coldkey, a
password-protected coldkey), and each case of the catalogue runs `python -m subnet.cli ...`
against it (or against a dead port). Each must exit non-zero, print at most a few lines, no
traceback and no "Unclosed client session", name the fix (a substring per case), and, for a
miner or validator, fail before any model is built or loaded: DMOE_EXPERTS_DIR points at an
empty directory, so a process that got as far as the experts would spend a minute training
them and blow the time budget. The cases run concurrently, sharing the one chain.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import bittensor as bt
import pytest

from subnet.chain import make_client
from subnet.chain.local.chain import LocalChain
from tests.fixtures_chain import bootstrap_subnet, fast_genesis

REPO = Path(__file__).resolve().parents[2]
FAST_S = 60.0  # generous for a shared machine; training the tiny experts takes minutes
WORKERS = 4


@dataclass(frozen=True)
class Case:
    id: str
    argv: str  # formatted with the World's fields, then split on spaces
    fix: str  # the output must name the cause/fix: this substring
    fast: bool = False  # must fail within FAST_S (checks before any model work)
    max_lines: int = 2


W = "--wallet.path {wallets}"
UP = "--subtensor.chain_endpoint localchain://127.0.0.1:{port} " + W
DOWN = "--subtensor.chain_endpoint localchain://127.0.0.1:{dead} " + W

CASES = [
    # top level
    Case("unknown-command", "mine", "unknown command"),
    Case("bench-unknown", "bench nosuch", "available:"),
    Case("bench-typo", "bench chian", "did you mean 'chain'"),
    # dmoe chain: arguments, port, data dir (checked before anything is written)
    Case("chain-port-range", "chain --data-dir {tmp}/c1 --port 70000", "--port must be in"),
    Case("chain-port-in-use", "chain --data-dir {tmp}/never --port {port}", "already in use"),
    Case("chain-data-dir-file", "chain --data-dir {tmp}/afile --port 0", "is a file"),
    Case(
        "chain-bad-host",
        "chain --data-dir {tmp}/c2 --host no.such.host.invalid --port 0",
        "not an address",
    ),  # fmt: skip
    Case(
        "chain-foreign-host",
        "chain --data-dir {tmp}/c3 --host 192.0.2.1 --port 0",
        "not an address of this machine",
    ),  # fmt: skip
    Case("chain-second-on-data-dir", "chain --data-dir {chain_dir} --port 0", "pid"),
    Case("chain-block-time", "chain --data-dir {tmp}/c4 --block-time 0", "--block-time"),
    Case(
        "chain-genesis-missing", "chain --data-dir {tmp}/c5 --genesis {tmp}/no.toml", "--genesis"
    ),  # fmt: skip
    Case(
        "chain-genesis-bad",
        "chain --data-dir {tmp}/c6 --port 0 --genesis {tmp}/bad.toml",
        "unknown",
    ),  # fmt: skip
    Case("chain-corrupt-db", "chain --data-dir {tmp}/corrupt --port 0", "another --data-dir"),
    # dmoe chain faucet
    Case(
        "faucet-bad-address",
        "chain faucet --data-dir {chain_dir} --port {port} notanaddress",
        "not an SS58 address",
    ),  # fmt: skip
    Case(
        "faucet-bad-amount",
        "chain faucet --data-dir {chain_dir} --port {port} --amount -5 {poor_ss58}",
        "--amount must be a positive",
    ),  # fmt: skip
    Case(
        "faucet-chain-down",
        "chain faucet --data-dir {chain_dir} --port {dead} {poor_ss58}",
        "--port",
    ),  # fmt: skip
    Case("faucet-no-chain-dir", "chain faucet --data-dir {tmp}/none {poor_ss58}", "not found"),
    # dmoe owner: chain down, wallets, subnet, hyperparameters, registry, simulate
    Case("owner-status-chain-down", "owner status " + DOWN, "dmoe chain --data-dir"),
    Case(
        "owner-create-chain-down",
        "owner create --wallet.name owner " + DOWN,
        "cannot reach the chain",
    ),  # fmt: skip
    Case("owner-hparams-chain-down", "owner hparams get " + DOWN, "cannot reach the chain"),
    Case("owner-create-no-wallet", "owner create --wallet.name nobody " + UP, "wallet create"),
    Case(
        "owner-register-no-hotkey",
        "owner register --wallet.name vali --wallet.hotkey nohot --netuid {netuid} " + UP,
        "new-hotkey",
    ),  # fmt: skip
    Case("owner-create-unfunded", "owner create --wallet.name poor " + UP, "faucet"),
    Case(
        "owner-create-locked-coldkey", "owner create --wallet.name locked " + UP, "no terminal"
    ),  # fmt: skip
    Case("owner-status-no-subnet", "owner status --netuid 9 " + UP, "check --netuid"),
    Case(
        "owner-start-no-subnet",
        "owner start --netuid 9 --wallet.name owner " + UP,
        "check --netuid",
    ),  # fmt: skip
    Case("owner-bad-netuid", "owner status --netuid 70000 " + UP, "--netuid must be in"),
    Case("owner-bad-network", "owner status --subtensor.network mainnet", "finney"),
    Case(
        "owner-hparam-owner-bounds",
        "owner hparams set --netuid {netuid} --wallet.name owner --name tempo --value 10 " + UP,
        "--sudo-uri //Alice",
    ),  # fmt: skip
    Case(
        "owner-hparam-root-only",
        "owner hparams set --netuid {netuid} --wallet.name owner --name kappa --value 10 " + UP,
        "--sudo-uri //Alice",
    ),  # fmt: skip
    Case(
        "owner-hparam-typo",
        "owner hparams set --netuid {netuid} --wallet.name owner --name kapa --value 10 " + UP,
        "did you mean 'kappa'",
    ),  # fmt: skip
    Case(
        "owner-hparam-bad-value",
        "owner hparams set --netuid {netuid} --wallet.name owner "
        "--name immunity_period --value abc " + UP,
        "block count",
    ),  # fmt: skip
    Case(
        "owner-hparam-bad-sudo",
        "owner hparams set --netuid {netuid} --wallet.name owner "
        "--name kappa --value 10 --sudo-uri notauri " + UP,
        "not a key URI",
    ),  # fmt: skip
    Case(
        "registry-bad-version",
        "owner registry build --experts.dir {tmp} --out {tmp}/r.json --version -3",
        "--version must be a positive",
    ),  # fmt: skip
    Case(
        "registry-no-experts-dir",
        "owner registry build --experts.dir {tmp}/none --out {tmp}/r.json",
        "not a directory",
    ),  # fmt: skip
    Case(
        "registry-out-folder",
        "owner registry build --experts.dir {tmp} --out {tmp}/no/r.json",
        "does not exist",
    ),  # fmt: skip
    Case(
        "registry-publish-missing",
        "owner registry publish {tmp}/none.json --netuid {netuid} --wallet.name owner " + UP,
        "cannot read registry",
    ),  # fmt: skip
    Case("simulate-negative-stake", "owner simulate {tmp}/neg.json", "non-negative"),
    Case("simulate-string-stake", "owner simulate {tmp}/str.json", "non-negative"),
    Case("simulate-typo", "owner simulate {tmp}/kapa.json", "did you mean 'kappa'"),
    Case(
        "simulate-plot-folder",
        "owner simulate {tmp}/ok.json --plot {tmp}/no/x.png",
        "does not exist",
    ),  # fmt: skip
    # dmoe miner: everything it needs is checked before the expert is built or loaded
    Case("miner-chain-down", "miner --wallet.name vali " + DOWN, "dmoe chain --data-dir", True),
    Case("miner-no-wallet", "miner --wallet.name nobody " + UP, "wallet create", True),
    Case(
        "miner-unregistered",
        "miner --netuid {netuid} --wallet.name unreg " + UP,
        "--register",
        True,
    ),  # fmt: skip
    Case(
        "miner-register-unfunded",
        "miner --netuid {netuid} --wallet.name poor --register " + UP,
        "faucet",
        True,
    ),  # fmt: skip
    Case("miner-no-subnet", "miner --netuid 9 --wallet.name vali " + UP, "check --netuid", True),
    Case(
        "miner-port-in-use",
        "miner --netuid {netuid} --wallet.name vali --axon.port {port} " + UP,
        "already in use",
        True,
    ),  # fmt: skip
    Case(
        "miner-no-such-gpu",
        "miner --netuid {netuid} --wallet.name vali --device cuda:99 " + UP,
        "--device cpu",
        True,
    ),  # fmt: skip
    Case("miner-bad-device", "miner --device gpu " + UP, "cuda:N", True),
    Case("miner-expert-typo", "miner --expert cdoe " + UP, "did you mean 'code'", True),
    Case("miner-expert-dir", "miner --expert ./no/such/dir " + UP, "no such directory", True),
    Case("miner-unknown-domain", "miner --expert.domains cooking " + UP, "unknown domain", True),
    # dmoe validator
    Case("validator-chain-down", "validator --wallet.name vali " + DOWN, "dmoe chain", True),
    Case("validator-no-wallet", "validator --wallet.name nobody " + UP, "wallet create", True),
    Case(
        "validator-unregistered",
        "validator --netuid {netuid} --wallet.name unreg " + UP,
        "subnets register",
        True,
    ),  # fmt: skip
    Case(
        "validator-no-stake",
        "validator --netuid {netuid} --wallet.name nostake " + UP,
        "stake add",
        True,
    ),  # fmt: skip
    Case(
        "validator-no-subnet",
        "validator --netuid 9 --wallet.name vali " + UP,
        "check --netuid",
        True,
    ),  # fmt: skip
    Case(
        "validator-gateway-port",
        "validator --netuid {netuid} --wallet.name vali "
        "--gateway.port {port} --gateway.api_keys k " + UP,
        "already in use",
        True,
    ),  # fmt: skip
    Case("validator-gateway-no-keys", "validator --gateway.port 8000 " + UP, "api_keys", True),
    Case(
        "validator-registry-missing",
        "validator --netuid {netuid} --wallet.name vali --registry {tmp}/none.json " + UP,
        "cannot read registry",
        True,
    ),  # fmt: skip
    Case(
        "validator-experts-dir",
        "validator --experts-dir {tmp}/none " + UP,
        "dmoe experts build",
        True,
    ),  # fmt: skip
    # dmoe status / experts / localnet / btcli
    Case("status-no-localnet", "status --data-dir {tmp}/none", "dmoe localnet"),
    Case("status-chain-down", "status --data-dir {tmp}/deadnet", "does not answer"),
    Case("status-corrupt", "status --data-dir {tmp}/badnet", "unreadable"),
    Case("experts-out-file", "experts build --out {tmp}/afile", "is a file"),
    Case("localnet-bad-count", "localnet --miners 0 --data-dir {tmp}/ln", "--miners"),
    Case("btcli-remote", "btcli --endpoint finney subnets list", "use `btcli` directly"),
]


@dataclass(frozen=True)
class World:
    tmp: Path
    wallets: Path
    chain_dir: Path
    port: int
    dead: int
    netuid: int
    poor_ss58: str


@dataclass(frozen=True)
class Outcome:
    code: int
    output: str
    seconds: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wallets(root: Path) -> dict[str, bt.Wallet]:
    out = {}
    for name in ("owner", "vali", "nostake", "unreg", "poor", "locked"):
        w = bt.Wallet(name, "default", path=str(root))
        password = "correct horse" if name == "locked" else None
        w.create_new_coldkey(
            use_password=password is not None,
            coldkey_password=password,
            suppress=True,
            overwrite=True,
        )
        w.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
        out[name] = w
    return out


async def _prepare(chain: LocalChain, wallets: dict[str, bt.Wallet]) -> int:
    async with make_client("local", chain=chain) as client:
        netuid = await bootstrap_subnet(
            client, chain, wallets["owner"], [wallets["vali"]], [wallets["nostake"]], 100
        )
    chain.fund(wallets["unreg"].coldkeypub.ss58_address, 100)
    return netuid


def _files(tmp: Path, dead: int) -> None:
    (tmp / "afile").write_text("not a directory\n")
    (tmp / "bad.toml").write_text("[chain]\nno_such_key = 1\n")
    (tmp / "corrupt").mkdir()
    (tmp / "corrupt" / "chain.sqlite").write_bytes(b"this is not a database" * 100)
    case = {"yuma_version": "yuma3", "epochs": [{"stake": [10, 5], "weights": [[1], [2]]}]}
    (tmp / "ok.json").write_text(json.dumps(case))
    (tmp / "neg.json").write_text(json.dumps(case | {"epochs": [{"stake": [10, -5],
                                                               "weights": [[1], [2]]}]}))  # fmt: skip
    (tmp / "str.json").write_text(json.dumps(case | {"epochs": [{"stake": [10, "lots"],
                                                               "weights": [[1], [2]]}]}))  # fmt: skip
    (tmp / "kapa.json").write_text(json.dumps(case | {"hyperparameters": {"kapa": 1}}))
    for name, chain_port in (("deadnet", dead), ("badnet", None)):
        (tmp / name).mkdir()
        layout = {"chain_port": chain_port, "neurons": [], "netuid": 1}
        text = json.dumps(layout) if chain_port else "{not json"
        (tmp / name / "localnet.json").write_text(text)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    wallets = _wallets(tmp / "wallets")
    chain_dir = tmp / "chain"
    # The subnet is prepared in process (instant blocks), then served by a real `dmoe chain`.
    chain = LocalChain.create(fast_genesis(), chain_dir)
    try:
        netuid = asyncio.run(_prepare(chain, wallets))
    finally:
        chain.close()
    dead = _free_port()
    _files(tmp, dead)
    log = tmp / "chain.log"
    cmd = [sys.executable, "-m", "subnet.cli", "chain", "--data-dir", str(chain_dir),
           "--port", "0", "--block-time", "3600", "--instant"]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        port = None
        for _ in range(600):  # up to 60 s for the interpreter to import and bind
            found = re.search(r"listening on localchain://127\.0\.0\.1:(\d+)", log.read_text())
            if found:
                port = int(found.group(1))
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert port is not None, log.read_text()
        yield World(
            tmp, tmp / "wallets", chain_dir, port, dead, netuid,
            wallets["poor"].coldkeypub.ss58_address,
        )  # fmt: skip
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def _run(case: Case, world: World, env: dict[str, str]) -> Outcome:
    argv = case.argv.format(**vars(world)).split()
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "subnet.cli", *argv],
        cwd=world.tmp,
        env=env,
        stdin=subprocess.DEVNULL,  # no terminal: a password prompt must not hang or crash
        capture_output=True,
        text=True,
        timeout=240,
    )
    return Outcome(done.returncode, done.stdout + done.stderr, time.monotonic() - t0)


@pytest.fixture(scope="module")
def outcomes(world) -> dict[str, Outcome]:
    empty_experts = world.tmp / "experts"
    empty_experts.mkdir()
    env = dict(os.environ, DMOE_EXPERTS_DIR=str(empty_experts), PYTHONPATH=str(REPO))
    env.pop("DMOE_LOG_DEBUG", None)
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {c.id: pool.submit(_run, c, world, env) for c in CASES}
        return {cid: f.result() for cid, f in futures.items()}


def test_the_catalogue_is_large_and_unique():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_mistake_is_answered_in_one_line(case: Case, outcomes):
    got = outcomes[case.id]
    lines = [line for line in got.output.splitlines() if line.strip()]
    assert got.code != 0, got.output
    assert "Traceback" not in got.output, got.output
    assert "Unclosed" not in got.output, got.output
    assert len(lines) <= case.max_lines, got.output
    assert case.fix in got.output, got.output
    if case.fast:
        assert got.seconds < FAST_S, f"{got.seconds:.1f}s: {got.output}"


def test_nothing_is_written_when_the_chain_cannot_start(world, outcomes):
    assert outcomes["chain-port-in-use"].code != 0
    assert not (world.tmp / "never").exists()  # the bind failed before the data dir was made
    assert not (world.tmp / "c1").exists() and not (world.tmp / "c6").exists()


def test_debug_logging_keeps_the_traceback(world):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    case = Case("debug", "owner status --logging.debug " + DOWN, "cannot reach the chain")
    got = _run(case, world, env)
    assert got.code != 0 and "Traceback" in got.output and case.fix in got.output
    assert "Unclosed" not in got.output
