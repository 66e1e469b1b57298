"""Child processes of a localnet: start each neuron as its own process, watch it, stop it for sure.

Every child gets its own process group, so stopping it also stops anything it spawned, and its
own log file. Shutdown escalates from SIGTERM (graceful drain) to SIGKILL after a grace period,
and `stop_all` is safe to call twice, so Ctrl-C at any moment leaves no process behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ChildDied(RuntimeError):
    pass


class ProcessGroup:
    """The set of processes one localnet owns."""

    def __init__(self, env: dict[str, str] | None = None):
        self.children: dict[str, Child] = {}
        self.env = dict(os.environ if env is None else env)

    def start(self, name: str, args: list[str], log_path: Path) -> Child:
        """Start `dmoe <args>` with the same interpreter, logging to `log_path`."""
        return self.start_argv(name, [sys.executable, "-m", "subnet.cli", *args], log_path)

    def start_argv(self, name: str, argv: list[str], log_path: Path) -> Child:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab", buffering=0)  # noqa: SIM115 - the child owns it
        out.write(f"\n==== {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,  # own process group: killpg reaches its children too
        )
        out.close()
        child = Child(name, argv, log_path, proc)
        self.children[name] = child
        log.info("started %s (pid %d), log %s", name, proc.pid, log_path)
        return child

    async def wait_ready(
        self,
        name: str,
        probe: Callable[[], Awaitable[bool]],
        *,
        timeout: float,
        interval: float = 0.2,
    ) -> None:
        """Poll `probe` until it answers True; fail early, with the log tail, if the child dies."""
        child = self.children[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive:
                raise ChildDied(f"{name} exited with {child.proc.returncode}:\n{child.tail()}")
            try:
                if await asyncio.wait_for(probe(), timeout=max(interval * 5, 1.0)):
                    return
            except (OSError, TimeoutError):
                pass
            await asyncio.sleep(interval)
        raise TimeoutError(f"{name} not ready after {timeout:.0f}s:\n{child.tail()}")

    def dead(self) -> list[Child]:
        return [c for c in self.children.values() if c.proc is not None and not c.alive]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        child = self.children[name]
        if child.alive:
            _signal_group(child.proc, sig)
            child.proc.wait(timeout=10)

    async def stop_all(self, grace: float = 8.0) -> None:
        """SIGTERM every child (reverse start order), then SIGKILL whatever outlives `grace`."""
        alive = [c for c in reversed(list(self.children.values())) if c.alive]
        for child in alive:
            _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(c.alive for c in alive) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for child in alive:
            if child.alive:
                log.warning("%s did not stop in %.0fs; killing", child.name, grace)
                _signal_group(child.proc, signal.SIGKILL)
        for child in alive:
            try:
                child.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.error("%s (pid %d) survived SIGKILL", child.name, child.proc.pid)

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self.children.values() if c.proc is not None]


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
