"""The processes a vLLM engine spawns, found and ended by pid.

vLLM v1 runs its engine core in a spawned process (plus one worker process per tensor-parallel
rank, or per CPU worker). `AsyncLLM.shutdown` ends them, but a start that fails or times out
half-way, or a shutdown that hangs, can leave them behind: the engine notes the descendants that
appeared during its start (`spawned_since`) and ends exactly those (`end`), never by name.
multiprocessing's resource tracker is left alone: it is shared by the whole process and exits
with it. psutil comes with vLLM.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def descendants() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


def spawned_since(before: set[int]) -> list:
    """Descendants (psutil.Process) that were not there in `before`, the resource tracker aside."""
    import psutil

    out = []
    for proc in psutil.Process().children(recursive=True):
        if proc.pid in before:
            continue
        try:
            if "resource_tracker" in " ".join(proc.cmdline()):
                continue
        except psutil.Error:  # gone already, or not ours to read
            continue
        out.append(proc)
    return out


def end(procs: list, grace_s: float = 5.0) -> list[int]:
    """SIGTERM every process still alive, SIGKILL those left after `grace_s`; returns the pids
    that had to be ended (empty when vLLM had already stopped them all)."""
    import psutil

    alive = [p for p in procs if _running(p)]
    for proc in alive:
        try:
            proc.terminate()
        except psutil.Error:
            pass  # exited meanwhile: nothing to end
    _, left = psutil.wait_procs(alive, timeout=grace_s)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    if left:
        psutil.wait_procs(left, timeout=grace_s)
    if alive:
        log.info("ended %d leftover vLLM process(es): %s", len(alive), [p.pid for p in alive])
    return [p.pid for p in alive]


def _running(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
