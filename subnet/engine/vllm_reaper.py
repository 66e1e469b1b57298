"""A watchdog process that ends vLLM's processes when the process that started them dies.

vLLM's engine core (and its workers) outlive a parent that is killed (SIGKILL, the OOM killer,
a crash): they would keep the model, its KV cache and, on a GPU, the card's memory forever.
`Reaper.start()` spawns `python -m subnet.engine.vllm_reaper PID` with a pipe on its stdin; it
notes, every second, the descendants of PID named `VLLM::*` (vLLM's process titles), and when the
pipe closes -- PID exited, however it died, or `Reaper.stop()` -- it ends those still alive (a
SIGTERM, then a SIGKILL after a grace period) and exits. It ignores SIGINT and SIGTERM, which a
terminal or a service manager may send to the whole process group: it stops on its pipe only.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often the watched process's descendants are noted
GRACE_S = 5.0  # SIGTERM to SIGKILL


class Reaper:
    """The parent's side: `start()` before vLLM spawns anything, `stop()` after it is shut down."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "subnet.engine.vllm_reaper", str(os.getpid())],
            stdin=subprocess.PIPE,
            close_fds=True,
        )

    def stop(self, timeout: float = 2 * GRACE_S + POLL_S) -> None:
        """Close the pipe (the reaper ends what is left, normally nothing) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def watch(pid: int) -> None:
    """The reaper's loop (in its own process): note, then end, PID's vLLM descendants."""
    import psutil

    watched = psutil.Process(pid)
    seen: dict[int, psutil.Process] = {}
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break  # EOF: the watched process is gone or done with vLLM
        try:
            for proc in watched.children(recursive=True):
                if proc.pid not in seen and proc.name().startswith("VLLM::"):
                    seen[proc.pid] = proc
        except psutil.Error:  # the watched process is exiting: its pipe closes next
            continue
    alive = []
    for proc in seen.values():
        try:
            if proc.is_running():  # is_running also checks the pid was not reused
                proc.terminate()
                alive.append(proc)
        except psutil.Error:
            continue
    _, left = psutil.wait_procs(alive, timeout=GRACE_S)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            continue


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    watch(int(sys.argv[1]))
