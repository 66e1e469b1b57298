"""`dmoe localnet`: the whole subnet on one machine, and the system's executable spec.

In order: start the chain as its own process; create wallets for the owner, validators and
miners; fund them from the faucet, create and start the subnet, register everyone and stake the
validators (all through the real SDK, `subnet.chain.devnet.bootstrap_subnet`); build the offline
experts if they are not cached; start miners serving different experts and validators as separate
processes; watch the metagraph, recording every epoch, until `--epochs` have passed with every
neuron up; stop everything and print a summary, a table and a PNG plot.

The data directory makes a run resumable: the chain restarts from its SQLite database, the
wallets and ports are reused, validators reload their scores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import bittensor as bt

from subnet.chain.devnet import FUND_TAO
from subnet.localnet import history as hist
from subnet.localnet.config import LocalnetConfig
from subnet.localnet.mixture import (
    mean_incentive_shares,
    mixture_table,
    tracking_gap,
    with_incentive,
)
from subnet.localnet.procs import ProcessGroup
from subnet.localnet.view import LocalnetLayout, NeuronInfo, collect_view, epoch_row

log = logging.getLogger(__name__)

READY_TIMEOUT_S = (
    180.0  # a miner loads its expert and registers in seconds; CPU contention stretches it
)


# Ports the kernel hands out for outgoing connections: a port picked there and bound only a
# minute later (a miner loading its model) can meanwhile be taken by one of the localnet's own
# thousands of client connections ("address already in use").
_EPHEMERAL = (32768, 60999)
_PICK_FROM = (20000, 32767)


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return _EPHEMERAL


def _free_port() -> int:
    """A port free now and outside the kernel's ephemeral range (random, checked by binding)."""
    lo, hi = _ephemeral_range()
    candidates = [p for p in range(*_PICK_FROM) if not lo <= p <= hi]
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # everything taken: let the kernel pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wallet(path: Path, name: str) -> bt.Wallet:
    w = bt.Wallet(name, "default", path=str(path))
    if not w.coldkeypub_file.exists_on_device():
        w.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
    if not w.hotkey_file.exists_on_device():
        w.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
    return w


@dataclass
class Localnet:
    config: LocalnetConfig
    layout: LocalnetLayout
    procs: ProcessGroup = field(default_factory=ProcessGroup)
    history: list[hist.EpochRow] = field(default_factory=list)
    epochs_this_run: int = 0
    emission_per_block: int = 0  # alpha rao the chain mints per block for the subnet (genesis)
    users: Any = None  # the simulated users' stats (subnet.localnet.users.UserStats)
    experts: tuple = ()  # the last view's per-expert rows (subnet.localnet.mixture.ExpertRow)

    @classmethod
    def create(cls, config: LocalnetConfig) -> Localnet:
        if config.fresh and config.data_dir.exists():
            shutil.rmtree(config.data_dir)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        layout = LocalnetLayout.load_or_new(config, _free_port)
        from subnet.chain import Genesis

        net = cls(config, layout, emission_per_block=Genesis.load().alpha_emission_rao)
        net.history = hist.load(config.data_dir / "history.json")  # a resumed run appends
        net.procs.env.update(layout.env())
        return net

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> hist.Summary:
        try:
            await self._start_chain()
            client = self._client()
            async with client:
                await self._bootstrap(client)
                await self._build_experts()
                await self._publish_registry(client)
                await self._start_neurons()
                users = self._users()
                self.users = users.stats  # live: the dashboard shows routed shares as they come
                stop_users = asyncio.Event()
                load = asyncio.create_task(users.run(stop_users), name="users")
                try:
                    await self._watch(client)
                finally:
                    stop_users.set()
                    await asyncio.wait_for(load, 90)
        finally:
            await self.procs.stop_all()
        return self._finish()

    async def _start_chain(self) -> None:
        cfg, lay = self.config, self.layout
        genesis = lay.data_dir / "genesis.toml"
        # Every wallet funded at genesis: a faucet transfer each would cost a block apiece.
        names = ["owner", *(n.name for n in lay.neurons)]
        funded = {_wallet(lay.wallet_dir, n).coldkeypub.ss58_address: FUND_TAO for n in names}
        genesis.write_text(
            "# written by dmoe localnet\n"
            f"[chain]\nblock_time = {cfg.block_time}\n\n"
            f"[subnet]\ntempo = {cfg.tempo}\nweights_rate_limit = {max(1, cfg.tempo // 2)}\n\n"
            "[balances]\n" + "".join(f'"{k}" = {v}\n' for k, v in funded.items())
        )
        self.procs.start(
            "chain",
            [
                "chain",
                "--data-dir",
                str(lay.data_dir / "chain"),
                "--port",
                str(lay.chain_port),
                "--genesis",
                str(genesis),
                "--block-time",
                str(cfg.block_time),
            ],
            lay.log_dir / "chain.log",
        )
        await self.procs.wait_ready("chain", self._http_ok(f"{lay.chain_http}/health"), timeout=60)

    def _client(self) -> bt.Client:
        from subnet.chain import make_client

        return make_client(self.layout.chain_endpoint)

    async def _bootstrap(self, client: bt.Client) -> None:
        from subnet.chain.devnet import bootstrap_subnet

        lay = self.layout
        wallets = {n.name: _wallet(lay.wallet_dir, n.name) for n in lay.neurons}
        owner = _wallet(lay.wallet_dir, "owner")
        for n in lay.neurons:
            n.hotkey = wallets[n.name].hotkey.ss58_address
        lay.owner_hotkey = owner.hotkey.ss58_address
        if lay.netuid is not None and await client.subnets.metagraph(lay.netuid) is not None:
            log.info("resuming subnet %d from %s", lay.netuid, lay.data_dir)
            return
        validators = [wallets[n.name] for n in lay.neurons if n.role == "validator"]
        miners = [wallets[n.name] for n in lay.neurons if n.role == "miner"]
        lay.netuid = await bootstrap_subnet(
            client, None, owner, validators, miners, stake_tao=self.config.stake_tao, fund_tao=0
        )
        lay.save()

    async def _build_experts(self) -> None:
        from subnet.engine.buildbar import build_with_bar

        out = self.config.experts_path
        paths = await asyncio.to_thread(build_with_bar, out, self.config.experts_size)
        log.info("experts ready: %s", {k: str(v) for k, v in paths.items()})

    async def _publish_registry(self, client: bt.Client) -> None:
        """The owner registers the offline experts as the subnet's registry, as a real owner would."""
        from subnet.owner import tools
        from subnet.owner.registry import build_from_dir, check_published, save

        reg = await asyncio.to_thread(build_from_dir, self.config.experts_path)
        save(reg, self.layout.registry_path)
        published = await tools.published_registry(client, self.layout.netuid)
        if check_published(reg, published)[0] != "ok":
            owner = _wallet(self.layout.wallet_dir, "owner")
            await tools.publish_registry(client, owner, self.layout.netuid, reg)
            log.info(
                "published expert registry %s (%s)", reg.digest()[:12], self.layout.registry_path
            )

    async def _start_neurons(self) -> None:
        lay = self.layout
        for n in lay.neurons:
            self.procs.start(n.name, lay.neuron_args(n, self.config), lay.log_dir / f"{n.name}.log")
        for n in lay.neurons:
            url = f"http://127.0.0.1:{n.port}/health"
            await self.procs.wait_ready(n.name, self._http_ok(url), timeout=READY_TIMEOUT_S)
        log.info("all %d neurons up", len(lay.neurons))

    def _users(self):
        from subnet.localnet.users import Users
        from subnet.localnet.view import LOCALNET_API_KEY

        gateways = [
            f"http://127.0.0.1:{n.port}" for n in self.layout.neurons if n.role == "validator"
        ]
        return Users(
            gateways,
            LOCALNET_API_KEY,
            rps=self.config.users_rps,
            mix=dict(self.config.users_mix) or None,
        )

    async def _watch(self, client: bt.Client) -> None:
        """Redraw the dashboard until enough epochs passed with every neuron up."""
        from rich.console import Console
        from rich.live import Live

        from subnet.localnet.dashboard import render

        console = Console()
        last_step: int | None = None
        prev = None
        epochs = 0
        first = len(self.history)  # epochs recorded by earlier runs in this data dir
        live = Live(console=console, refresh_per_second=2) if self.config.dashboard else None
        with live if live is not None else contextlib.nullcontext():
            async with aiohttp.ClientSession() as http:
                while True:
                    dead = self.procs.dead()
                    if dead:
                        c = dead[0]
                        raise RuntimeError(f"{c.name} exited unexpectedly:\n{c.tail()}")
                    try:
                        mg = await asyncio.wait_for(
                            client.subnets.metagraph(self.layout.netuid), 10
                        )
                    except (TimeoutError, bt.ChainError) as err:
                        log.warning("metagraph read failed: %s", err)
                        await asyncio.sleep(1)
                        continue
                    if last_step is not None and mg.last_step != last_step:
                        epochs += 1
                        row = epoch_row(
                            mg, self.layout, first + epochs, prev, self.emission_per_block
                        )
                        self.history.append(row)
                        hist.save(self.history, self.layout.data_dir / "history.json")
                        if live is None:
                            console.print(_epoch_line(row))
                    if last_step is None or mg.last_step != last_step:
                        prev = mg
                    last_step = mg.last_step
                    routed = self.users.by_uid if self.users is not None else None
                    view = await collect_view(
                        mg, self.layout, http, epochs, self.config.epochs, routed
                    )
                    self.experts = view.experts
                    if live is not None:
                        live.update(render(view))
                    self.epochs_this_run = epochs
                    if self.config.epochs and epochs >= self.config.epochs:
                        return
                    await asyncio.sleep(max(0.5, self.config.block_time * 2))

    def _finish(self) -> hist.Summary:
        lay = self.layout
        summary = hist.summarize(self.history)
        summary.epochs = self.epochs_this_run
        if self.history and self.config.adversaries:
            from subnet.localnet.cheats import cheat_checks, reasons_from_logs, settled

            logs = [lay.log_dir / f"{n.name}.log" for n in lay.neurons if n.role == "validator"]
            # This run's epochs (when it resumed); the mean is over their later half.
            ran = self.history[-max(1, self.epochs_this_run) :]
            summary.checks += cheat_checks(ran[-1], reasons_from_logs(logs), settled(ran))
        if self.history:
            # The run's epochs, not the last one alone: one epoch's incentive is noisy.
            run = self.history[-max(1, self.epochs_this_run) :]
            self.experts = with_incentive(self.experts, mean_incentive_shares(run))
            hist.plot(self.history, lay.data_dir / "incentive.png", self.experts)
        return summary

    @staticmethod
    def _http_ok(url: str):
        async def probe() -> bool:
            timeout = aiohttp.ClientTimeout(total=2)
            async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url) as r:
                return r.status == 200

        return probe


def _epoch_line(row: hist.EpochRow) -> str:
    parts = [f"epoch {row.epoch} @ block {row.block}:"]
    for u in row.uids:
        if u.role in ("miner", "cheater"):
            parts.append(f"{u.label} I={u.incentive:.3f}")
        elif u.role == "validator":
            parts.append(f"{u.label} D={u.dividends:.3f}")
    return "  ".join(parts)


def write_report(net: Localnet, summary: hist.Summary, seconds: float) -> str:
    """The end-of-run text a newcomer reads."""
    lay = net.layout
    lines = [
        "",
        f"dmoe localnet: {summary.epochs} epochs on subnet {lay.netuid} in {seconds:.0f}s",
        "",
    ]
    if net.history:
        lines.append(
            f"{'uid':>4} {'role':<10} {'neuron':<26} {'incentive':>9} {'dividends':>9} {'emission α':>11}"
        )
        for u in net.history[-1].uids:
            lines.append(
                f"{u.uid:>4} {u.role:<10} {u.label:<26} {u.incentive:>9.3f} {u.dividends:>9.3f} {u.emission_rao / 1e9:>11.3f}"
            )
        lines.append("")
    if net.experts:
        lines.append(mixture_table(net.experts))
        lines.append("(routed: users' answers; incentive: share of miner incentive, run's mean)")
        lines.append("")
    for what, ok, detail in summary.checks:
        lines.append(f"  [{'ok' if ok else 'FAIL'}] {what}: {detail}")
    lines += [
        "",
        f"plot: {lay.data_dir / 'incentive.png'}   history: {lay.data_dir / 'history.json'}",
        f"logs: {lay.log_dir}/   resume: dmoe localnet --data-dir {lay.data_dir}",
    ]
    text = "\n".join(lines)
    (lay.data_dir / "summary.txt").write_text(text + "\n")
    (lay.data_dir / "summary.json").write_text(
        json.dumps(
            {
                "ok": summary.ok,
                "epochs": summary.epochs,
                "seconds": round(seconds, 1),
                "checks": [{"what": w, "ok": o, "detail": d} for w, o, d in summary.checks],
                "users": net.users.to_dict() if net.users is not None else None,
                "experts": [e.to_dict() for e in net.experts],
                "pay_tracking_gap": tracking_gap(net.experts),
            },
            indent=1,
        )
    )
    return text


async def run_localnet(config: LocalnetConfig) -> tuple[Localnet, hist.Summary, float]:
    t0 = time.monotonic()
    net = Localnet.create(config)
    summary = await net.run()
    return net, summary, time.monotonic() - t0


__all__ = ["Localnet", "NeuronInfo", "run_localnet", "write_report"]
