"""Cheap start-up checks: wallet keys, ports, device, chain reachable, subnet, registration, permit.

Entry points run these before any model is built, trained, downloaded or loaded, so a miner or
validator that cannot work says why within seconds. Each failure is a `PreflightError` whose
message names the cause and the fix; `subnet.cli` prints it as one line. The decisions
(`validator_problem`, `TempoWarner`) are pure functions over plain data.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subnet.config import SubtensorConfig, WalletConfig

CONNECT_TIMEOUT_S = 15.0  # a reachable chain answers its first read well inside this
READ_TIMEOUT_S = 30.0


class PreflightError(RuntimeError):
    """A start-up check that failed; the message names the cause and the fix."""


# --- commands the messages suggest -------------------------------------------------------------
def btcli(subtensor: SubtensorConfig, args: str) -> str:
    """`btcli ARGS` for the configured network (`dmoe btcli` on a local chain)."""
    from subnet.chain import is_local

    if is_local(subtensor.endpoint):
        return f"dmoe btcli {args}"
    return f"btcli {args} -n {subtensor.endpoint}"


def _wallet_args(wallet: WalletConfig) -> str:
    return f"-w {wallet.name} -H {wallet.hotkey}{_path_arg(wallet)}"


def _path_arg(wallet: WalletConfig) -> str:
    return "" if wallet.path == WalletConfig().path else f" --wallet-path {wallet.path}"


# --- wallet ------------------------------------------------------------------------------------
def load_wallet(cfg: WalletConfig, subtensor: SubtensorConfig, *, coldkey: bool = False):
    """The wallet with its hotkey loaded (and its coldkey checked usable if the command signs
    with it), so a missing or locked key is reported now rather than mid-run."""
    wallet_dir = cfg.path / cfg.name
    if not wallet_dir.is_dir():
        raise PreflightError(
            f"no wallet {cfg.name!r} under {cfg.path}: create it with "
            f"`{btcli(subtensor, f'wallet create {_wallet_args(cfg)}')}` "
            "(or pass --wallet.name / --wallet.path)"
        )
    if coldkey:
        _check_coldkey(cfg, subtensor, wallet_dir / "coldkey")
    path = wallet_dir / "hotkeys" / cfg.hotkey
    if not path.is_file():
        raise PreflightError(
            f"wallet {cfg.name!r} has no hotkey {cfg.hotkey!r} ({path}): create it with "
            f"`{btcli(subtensor, f'wallet new-hotkey {_wallet_args(cfg)}')}` "
            "(or pass --wallet.hotkey)"
        )
    _unlockable(path, "hotkey")
    wallet = cfg.load()
    wallet.hotkey  # noqa: B018 - loads (and validates) the key now, not mid-run
    return wallet


def _check_coldkey(cfg: WalletConfig, subtensor: SubtensorConfig, path: Path) -> None:
    if not path.is_file():
        raise PreflightError(
            f"wallet {cfg.name!r} has no coldkey ({path}): create it with "
            f"`{btcli(subtensor, f'wallet create {_wallet_args(cfg)}')}` or regenerate it"
        )
    _unlockable(path, "coldkey")


def _unlockable(path: Path, what: str) -> None:
    """An encrypted key needs a terminal to ask for its password, or the SDK's BT_PW_ variable."""
    from bittensor.keyfiles import Keyfile

    keyfile = Keyfile(path)
    if (
        keyfile.is_encrypted()
        and not sys.stdin.isatty()
        and not os.environ.get(keyfile.env_var_name())
    ):
        raise PreflightError(
            f"the {what} {path} is password-protected and there is no terminal to ask for the "
            f"password: run in a terminal, or set {keyfile.env_var_name()}"
        )


# --- local resources ---------------------------------------------------------------------------
def bind(host: str, port: int, flag: str) -> socket.socket:
    """A listening socket on host:port, or PreflightError naming the flag to change."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise PreflightError(
            f"{host!r} is not an address of this machine (e.g. 127.0.0.1 or 0.0.0.0)"
        ) from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp's own sites do
        sock.bind(addr)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise PreflightError(port_problem(host, port, flag, err)) from None
    return sock


def port_problem(host: str, port: int, flag: str, err: OSError) -> str:
    if err.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another process, or the same command "
            f"running twice): stop it or pick another {flag} (0 picks a free one)"
        )
    if err.errno == errno.EACCES:
        return f"no permission to listen on {host}:{port}: pick {flag} above 1023"
    if err.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine: bind 127.0.0.1 or 0.0.0.0"
    return f"cannot listen on {host}:{port} ({err.strerror or err}): check {flag}"


def port_free(host: str, port: int, flag: str) -> None:
    """Fail now, not after loading a model, if host:port cannot be bound (0 is always free)."""
    if port != 0:
        bind(host, port, flag).close()


def device_usable(device: str) -> None:
    """`--device cuda` on a CPU build of torch, or a GPU index that does not exist."""
    if device in ("auto", "cpu"):
        return
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            seen = f"{count} CUDA device(s)" if count else "no CUDA device"
            build = "" if torch.version.cuda else " (a CPU-only build)"
            raise PreflightError(
                f"--device {device}: torch {torch.__version__}{build} sees {seen}; "
                "pass --device cpu (or auto), or install a CUDA build of torch"
            )
    elif device == "mps" and not torch.backends.mps.is_available():
        raise PreflightError("--device mps: no Apple GPU available; pass --device cpu or auto")


# --- chain -------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def connected(subtensor: SubtensorConfig, fix: str | None = None) -> AsyncIterator[Any]:
    """An open `bt.Client`, or PreflightError saying the chain does not answer and `fix` (by
    default: how to start a local chain or point at another endpoint)."""
    import bittensor as bt

    from subnet.chain import make_client

    client = make_client(subtensor.endpoint)
    try:
        await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT_S)
    except (TimeoutError, OSError, bt.ChainError, bt.RpcConnectionError) as err:
        with contextlib.suppress(Exception):
            await client.close()
        raise PreflightError(unreachable(subtensor.endpoint, err, fix)) from err
    try:
        yield client
    finally:
        await client.close()


def unreachable(endpoint: str, err: BaseException, fix: str | None = None) -> str:
    from subnet.chain import is_local

    cause = root_cause(err)
    if fix is not None:
        pass
    elif is_local(endpoint):
        fix = (
            "start it (`dmoe chain --data-dir DIR`, or `dmoe localnet`) or point "
            "--subtensor.chain_endpoint at a running one"
        )
    else:
        fix = "check the network, or pass --subtensor.chain_endpoint wss://HOST:PORT"
    return f"cannot reach the chain at {endpoint} ({cause}): {fix}"


def root_cause(err: BaseException) -> str:
    """The innermost OS-level reason ("connection refused"), else the error's own text."""
    seen = err
    while seen is not None:
        os_error = getattr(seen, "os_error", None)  # aiohttp's ClientConnectorError
        if isinstance(os_error, OSError):
            seen = os_error
        if isinstance(seen, OSError) and isinstance(seen.errno, int) and seen.errno > 0:
            return os.strerror(seen.errno).lower()  # aiohttp's own strerror quotes the call
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        if isinstance(seen, TimeoutError):
            return "timed out"
        seen = seen.__cause__ or seen.__context__
    return str(err) or type(err).__name__


async def subnet_metagraph(client: Any, netuid: int, *, commitments: bool = False) -> Any:
    mg = await asyncio.wait_for(
        client.subnets.metagraph(netuid, commitments=commitments), READ_TIMEOUT_S
    )
    if mg is None:
        raise PreflightError(
            f"subnet {netuid} does not exist on this chain: check --netuid "
            "(`dmoe owner status --netuid N` shows a subnet)"
        )
    return mg


# --- standing on the subnet (pure) -------------------------------------------------------------
@dataclass(frozen=True)
class Standing:
    uid: int | None  # None: not registered
    stake: float = 0.0  # alpha
    permit: bool = False


def standing_of(mg: Any, hotkey: str) -> Standing:
    n = mg.by_hotkey(hotkey)
    if n is None:
        return Standing(None)
    return Standing(int(n.uid), n.total_stake.rao / 1e9, bool(n.validator_permit))


def validator_problem(
    st: Standing, netuid: int, hotkey: str, register_cmd: str, stake_cmd: str
) -> str | None:
    """Why a validator with this standing cannot work (miners refuse it), or None."""
    if st.uid is None:
        return (
            f"hotkey {hotkey} is not registered on subnet {netuid}: register it "
            f"(`{register_cmd}`), then stake (`{stake_cmd}`)"
        )
    if st.stake <= 0:
        return (
            f"hotkey {hotkey} (uid {st.uid}) has no stake on subnet {netuid}, so no validator "
            f"permit and miners refuse its queries: stake to it (`{stake_cmd}`)"
        )
    if not st.permit:
        return (
            f"hotkey {hotkey} (uid {st.uid}, {st.stake:,.2f} α) holds no validator permit on "
            f"subnet {netuid} yet (permits go to the top stakes at each epoch): wait for the "
            f"next epoch or add stake (`{stake_cmd}`)"
        )
    return None


class TempoWarner:
    """At most one warning per tempo while the validator cannot work (`validator_problem`)."""

    def __init__(self) -> None:
        self._last_epoch: int | None = None

    def check(self, block: int, tempo: int, problem: str | None) -> str | None:
        if problem is None:
            self._last_epoch = None
            return None
        epoch = block // max(tempo + 1, 1)
        if epoch == self._last_epoch:
            return None
        self._last_epoch = epoch
        return problem


# --- whole checks per process ------------------------------------------------------------------
async def validator_ready(
    client: Any, netuid: int, wallet_cfg: WalletConfig, subtensor: SubtensorConfig, hotkey: str
) -> str | None:
    """The reason this validator cannot work on `netuid` (None: it can). Raises if no subnet."""
    mg = await subnet_metagraph(client, netuid)
    return validator_problem(
        standing_of(mg, hotkey),
        netuid,
        hotkey,
        btcli(subtensor, f"subnets register --netuid {netuid} {_wallet_args(wallet_cfg)}"),
        btcli(
            subtensor,
            f"stake add --netuid {netuid} -w {wallet_cfg.name} "
            f"--hotkey {wallet_cfg.name}/{wallet_cfg.hotkey} --amount-tao 100{_path_arg(wallet_cfg)}",
        ),
    )


async def miner_ready(
    client: Any,
    netuid: int,
    wallet: Any,
    wallet_cfg: WalletConfig,
    subtensor: SubtensorConfig,
    *,
    register: bool,
) -> None:
    """Subnet exists; the hotkey is registered, or `register` and the coldkey can pay the burn."""
    mg = await subnet_metagraph(client, netuid)
    hotkey = wallet.hotkey.ss58_address
    if mg.by_hotkey(hotkey) is not None:
        return
    if not register:
        cmd = btcli(subtensor, f"subnets register --netuid {netuid} {_wallet_args(wallet_cfg)}")
        raise PreflightError(
            f"hotkey {hotkey} is not registered on subnet {netuid}: pass --register to "
            f"burn-register it, or `{cmd}`"
        )
    coldkey = wallet.coldkeypub.ss58_address
    balance, burn = await asyncio.wait_for(
        asyncio.gather(client.balances.get(coldkey), client.subnets.burn(netuid)), READ_TIMEOUT_S
    )
    if balance.rao < burn.rao:
        raise PreflightError(
            f"coldkey {coldkey} holds {balance.rao / 1e9:,.4f} TAO but registering on subnet "
            f"{netuid} burns {burn.rao / 1e9:,.4f} TAO: {fund_hint(subtensor, coldkey)}"
        )


def fund_hint(subtensor: SubtensorConfig, coldkey: str) -> str:
    from subnet.chain import is_local, local_http_url

    if not is_local(subtensor.endpoint):
        return f"transfer TAO to {coldkey}"
    port = local_http_url(subtensor.endpoint).rpartition(":")[2]
    flag = "" if port == "9944" else f" --port {port}"
    return f"fund it (`dmoe chain faucet --data-dir DIR{flag} {coldkey}`)"


_UNFUNDED = frozenset({"NotEnoughBalanceToStake", "InsufficientBalance", "BalanceTooLow"})
_NO_SUBNET = frozenset({"SubnetNotExists", "SubNetworkDoesNotExist"})
_UNREGISTERED = frozenset({"HotKeyNotRegisteredInSubNet", "HotKeyAccountNotExists"})


def chain_hint(message: str, name: str | None = None) -> str:
    """The fix for a chain refusal the operator can act on ("" if none is known).

    `name` is the chain's error name (`ChainError.name`); the message is the fallback."""
    text = message.lower()
    if name in _UNFUNDED or "more stake than there exists" in text:
        return (
            "the coldkey cannot pay: fund it (local chain: `dmoe chain faucet --data-dir DIR "
            "COLDKEY_SS58`; otherwise transfer TAO to it)"
        )
    if name in _NO_SUBNET or "non-existent subnet" in text:
        return "check --netuid (`dmoe owner status --netuid N` shows a subnet)"
    if name in _UNREGISTERED:
        return "register the hotkey on the subnet first (`dmoe owner register`, or btcli)"
    return ""
