"""The localnet's layout on disk (ports, wallets, roles) and the views built from a metagraph.

`LocalnetLayout` is what makes a run resumable: it is written to `DATA_DIR/localnet.json` once and
reused, so the chain, miners and validators come back on the same ports with the same keys.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from subnet.localnet import history as hist
from subnet.localnet.config import LocalnetConfig
from subnet.localnet.dashboard import DashRow, NetView
from subnet.localnet.mixture import expert_rows, merge_status

log = logging.getLogger(__name__)

# Honest miners take the experts in turn: four miners (the default) cover the whole mixture.
EXPERT_CYCLE = ("code", "math", "general", "data")
LOCALNET_API_KEY = "sk-localnet"  # the gateways' API key on a localnet (printed in the summary)


@dataclass
class NeuronInfo:
    name: str  # wallet name, also the process and log name
    role: str  # "miner" | "validator"
    port: int  # miner: axon port; validator: gateway port
    expert: str = "-"  # miners: which offline expert they serve
    metrics_port: int = 0
    hotkey: str = ""
    adversary: str = ""  # miners run with --adversary NAME (a cheat, for reliability runs)
    # An honest-working miner of a cheating operator: the sybil's base engine (it admits the
    # sybil's relay), paid as honest work but checked with its relay.
    base_of: str = ""


@dataclass
class LocalnetLayout:
    data_dir: Path
    chain_port: int
    neurons: list[NeuronInfo] = field(default_factory=list)
    netuid: int | None = None
    owner_hotkey: str = ""

    @property
    def chain_endpoint(self) -> str:
        return f"localchain://127.0.0.1:{self.chain_port}"

    @property
    def chain_http(self) -> str:
        return f"http://127.0.0.1:{self.chain_port}"

    @property
    def wallet_dir(self) -> Path:
        return self.data_dir / "wallets"

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.json"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def path(self) -> Path:
        return self.data_dir / "localnet.json"

    @classmethod
    def load(cls, data_dir: Path) -> LocalnetLayout:
        """The layout a localnet wrote to `data_dir` (FileNotFoundError if there is none)."""
        raw = json.loads((data_dir / "localnet.json").read_text())
        return cls(
            data_dir=data_dir,
            chain_port=raw["chain_port"],
            neurons=[NeuronInfo(**n) for n in raw["neurons"]],
            netuid=raw.get("netuid"),
            owner_hotkey=raw.get("owner_hotkey", ""),
        )

    @classmethod
    def load_or_new(cls, cfg: LocalnetConfig, free_port: Callable[[], int]) -> LocalnetLayout:
        if (cfg.data_dir / "localnet.json").exists():
            lay = cls.load(cfg.data_dir)
            roles = [n.role for n in lay.neurons if not n.adversary and not n.base_of]
            cheats = tuple(n.adversary for n in lay.neurons if n.adversary)
            if (
                roles.count("miner") == cfg.miners
                and roles.count("validator") == cfg.validators
                and cheats == cfg.adversaries
            ):
                return lay
            raise ValueError(
                f"{cfg.data_dir} holds a localnet with {roles.count('miner')} miners, "
                f"{roles.count('validator')} validators and adversaries {','.join(cheats) or '-'}; "
                "pass the same, or --fresh to start over"
            )
        neurons = [
            NeuronInfo(f"validator-{i + 1}", "validator", free_port())
            for i in range(cfg.validators)
        ]
        neurons += [
            NeuronInfo(
                f"miner-{i + 1}", "miner", free_port(), expert=EXPERT_CYCLE[i % len(EXPERT_CYCLE)]
            )
            for i in range(cfg.miners)
        ]
        # Cheaters serve the experts honest miners serve: each is judged beside honest work on
        # its own expert (and an expert nobody honest serves would hand them a whole pool).
        honest = EXPERT_CYCLE[: max(1, min(cfg.miners, len(EXPERT_CYCLE)))]
        neurons += [
            NeuronInfo(
                f"cheat-{name}",
                "miner",
                free_port(),
                expert=honest[i % len(honest)],
                adversary=name,
            )
            for i, name in enumerate(cfg.adversaries)
        ]
        if "sybil" in cfg.adversaries:
            sybil = next(n for n in neurons if n.adversary == "sybil")
            neurons.append(
                NeuronInfo("sybil-base", "miner", free_port(), expert=sybil.expert, base_of="sybil")
            )
        lay = cls(data_dir=cfg.data_dir, chain_port=free_port(), neurons=neurons)
        lay.save()
        return lay

    def save(self) -> None:
        raw = {
            "chain_port": self.chain_port,
            "neurons": [asdict(n) for n in self.neurons],
            "netuid": self.netuid,
            "owner_hotkey": self.owner_hotkey,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw, indent=1))
        tmp.replace(self.path)

    def env(self) -> dict[str, str]:
        """Environment for child processes: SDK caches inside the data dir, never in $HOME."""
        cache = self.data_dir / "btcli"
        cache.mkdir(parents=True, exist_ok=True)
        return {
            "BTCLI_CONFIG": str(cache / "btcli.json"),
            "BTCLI_TOKEN_SYMBOLS_CACHE": str(cache / "token_symbols.json"),
            "BTCLI_SUBNET_NAMES_CACHE": str(cache / "subnet_names.json"),
            "PYTHONUNBUFFERED": "1",
            # Two cores are shared by every process: one torch thread each keeps them responsive.
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }

    def neuron_args(self, n: NeuronInfo, cfg: LocalnetConfig) -> list[str]:
        common = [
            "--netuid",
            str(self.netuid),
            "--wallet.name",
            n.name,
            "--wallet.hotkey",
            "default",
            "--wallet.path",
            str(self.wallet_dir),
            "--subtensor.network",
            "local",
            "--subtensor.chain_endpoint",
            self.chain_endpoint,
        ]
        if cfg.debug:
            common.append("--logging.debug")
        if n.role == "miner":
            return [
                "miner",
                *common,
                "--axon.port",
                str(n.port),
                "--expert",
                n.expert,
                "--experts.dir",
                str(cfg.experts_path),
                "--metagraph-refresh-s",
                str(max(2.0, cfg.block_time * cfg.tempo / 2)),
                # Capacity each validator's probes fill their share of: small, so a localnet of
                # many miners stays within two CPU cores.
                "--max-batch",
                str(4 if cfg.adversaries else 8),
                *(["--no-require-permit"] if n.base_of else []),
                *self._adversary_args(n),
            ]
        return [
            "validator",
            *common,
            "--gateway.port",
            str(n.port),
            "--gateway.api_keys",
            LOCALNET_API_KEY,
            "--state.path",
            str(self.data_dir / n.name / "state.json"),
            "--experts.dir",
            str(cfg.experts_path),
            "--registry",
            str(self.registry_path),
            # A step every ~2 blocks and a fresh metagraph every half epoch keep a short run lively.
            "--step-s",
            str(max(1.0, cfg.block_time * 4)),
            # Every miner in every step: hotkeys sharing an engine are probed together.
            "--sample-size",
            str(sum(1 for m in self.neurons if m.role == "miner")),
            # A probe window of a quarter of a tempo: a short tempo still holds several probes.
            "--probe-window-s",
            str(round(min(6.0, max(0.5, cfg.block_time * cfg.tempo / 4)), 2)),
            "--metagraph-refresh-s",
            str(max(2.0, cfg.block_time * cfg.tempo / 2)),
        ]

    def _adversary_args(self, n: NeuronInfo) -> list[str]:
        if not n.adversary:
            return []
        args = ["--adversary", n.adversary]
        if n.adversary == "copycat":
            # It relays the first honest miner's answers; that miner admits validators only,
            # so the relay is refused (403): admission is the real defence against copying.
            target = next(m for m in self.neurons if m.role == "miner" and not m.adversary)
            args += ["--adversary.target", f"http://127.0.0.1:{target.port},{target.hotkey}"]
        if n.adversary == "sybil":
            # Its own base miner, which admits it: one engine behind two hotkeys.
            base = next(m for m in self.neurons if m.base_of == "sybil")
            args += ["--adversary.target", f"http://127.0.0.1:{base.port},{base.hotkey}"]
        return args

    def by_hotkey(self) -> dict[str, NeuronInfo]:
        return {n.hotkey: n for n in self.neurons if n.hotkey}


def _role(hotkey: str, layout: LocalnetLayout) -> tuple[str, str, str]:
    if hotkey == layout.owner_hotkey:
        return "owner", "owner", "-"
    n = layout.by_hotkey().get(hotkey)
    if n is None:
        return "other", hotkey[:8], "-"
    return ("cheater" if n.adversary else n.role), n.name, n.expert


def epoch_row(
    mg: Any, layout: LocalnetLayout, epoch: int, prev: Any = None, emission_per_block: int = 0
) -> hist.EpochRow:
    """One epoch's outcome; with the previous epoch's metagraph, also what was minted and the
    owner's cut (the owner hotkey's stake gain: the chain stakes the cut to it)."""
    uids = []
    for nrn in mg.neurons:
        role, label, expert = _role(nrn.hotkey, layout)
        uids.append(
            hist.UidRow(
                uid=nrn.uid,
                hotkey=nrn.hotkey,
                role=role,
                label=label if expert == "-" else f"{label} ({expert})",
                incentive=float(nrn.incentive),
                dividends=float(nrn.dividends),
                emission_rao=int(nrn.emission.rao),
                stake_rao=int(nrn.total_stake.rao),
                validator_permit=bool(nrn.validator_permit),
            )
        )
    minted = cut = 0
    if prev is not None:
        minted = (mg.last_step - prev.last_step) * emission_per_block
        before = {n.hotkey: int(n.total_stake.rao) for n in prev.neurons}
        owner = next((u for u in uids if u.role == "owner"), None)
        if owner is not None and owner.hotkey in before:
            cut = owner.stake_rao - before[owner.hotkey]
    return hist.EpochRow(
        epoch=epoch, block=mg.block, uids=tuple(uids), minted_rao=minted, owner_cut_rao=cut
    )


async def _statuses(http: aiohttp.ClientSession, layout: LocalnetLayout) -> list[dict]:
    """Each validator gateway's public /v1/status (those that answer)."""
    out = []
    for n in layout.neurons:
        if n.role != "validator":
            continue
        try:
            timeout = aiohttp.ClientTimeout(total=1.5)
            async with http.get(f"http://127.0.0.1:{n.port}/v1/status", timeout=timeout) as r:
                if r.status != 200:
                    continue
                data = await r.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            continue
        if isinstance(data, dict):
            out.append(data)
    return out


def _validator_stats(statuses: list[dict]) -> dict[str, dict]:
    """Per-miner-hotkey stats merged over validators."""
    merged: dict[str, dict] = {}
    for data in statuses:
        for hk, s in (data.get("miners") or {}).items():
            m = merged.setdefault(hk, {"requests": 0, "verified": 0, "tps": [], "score": []})
            m["requests"] += int(s.get("requests", 0))
            m["verified"] += int(s.get("verified", 0))
            if s.get("tokens_per_s") is not None:
                m["tps"].append(float(s["tokens_per_s"]))
            if s.get("score") is not None:
                m["score"].append(float(s["score"]))
    return merged


def _expert_of_model(statuses: list[dict], layout: LocalnetLayout) -> dict[str, str]:
    """Model id (as validators report it) -> the localnet's expert name, via miner hotkeys."""
    by_hotkey = layout.by_hotkey()
    out = {}
    for data in statuses:
        for hk, s in (data.get("miners") or {}).items():
            n = by_hotkey.get(hk)
            if n is not None and s.get("expert"):
                out[str(s["expert"])] = n.expert
    return out


async def collect_view(
    mg: Any,
    layout: LocalnetLayout,
    http: aiohttp.ClientSession,
    epochs: int,
    target: int,
    routed: Mapping[int, int] | None = None,
) -> NetView:
    """The dashboard's data; `routed`: the simulated users' answers per serving uid."""
    statuses = await _statuses(http, layout)
    stats = _validator_stats(statuses)
    rows = []
    for nrn in mg.neurons:
        role, label, expert = _role(nrn.hotkey, layout)
        s = stats.get(nrn.hotkey)
        rows.append(
            DashRow(
                uid=nrn.uid,
                role=role,
                label=label,
                expert=expert,
                requests=s["requests"] if s else None,
                verified_rate=(s["verified"] / s["requests"]) if s and s["requests"] else None,
                tokens_per_s=(sum(s["tps"]) / len(s["tps"])) if s and s["tps"] else None,
                score=(sum(s["score"]) / len(s["score"])) if s and s["score"] else None,
                incentive=float(nrn.incentive),
                dividends=float(nrn.dividends),
                emission_rao=int(nrn.emission.rao),
                stake_rao=int(nrn.total_stake.rao),
                serving=role not in ("miner", "cheater") or nrn.axon is not None,
            )
        )
    experts_status = merge_status(statuses, _expert_of_model(statuses, layout))
    return NetView(
        netuid=mg.netuid,
        block=mg.block,
        tempo=mg.tempo,
        blocks_until_epoch=max(0, mg.tempo - mg.blocks_since_last_step),
        epochs_done=epochs,
        epochs_target=target or None,
        rows=tuple(rows),
        experts=expert_rows(rows, routed, experts_status),
        note=f"logs: {layout.log_dir}   Ctrl-C stops everything",
    )
