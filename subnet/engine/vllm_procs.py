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

    alive = _with_children([p for p in procs if _running(p)])
    for proc in alive:
        try:
            proc.terminate()
        except psutil.Error:
            pass  # exited meanwhile: nothing to end
    _, left = psutil.wait_procs(alive, timeout=grace_s)
    # An engine core still starting spawns its workers even after the SIGTERM; once it is
    # killed they are orphans, no longer anyone's descendants (they end themselves only when
    # they notice, a minute later on a busy machine). Those it spawned meanwhile die with it.
    left = _with_children(left)
    alive += [p for p in left if p not in alive]
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


def _with_children(procs: list) -> list:
    """`procs` and their living descendants, the resource tracker aside (see `spawned_since`)."""
    import psutil

    out = list(procs)
    for proc in procs:
        try:
            kids = proc.children(recursive=True)
        except psutil.Error:
            continue
        for kid in kids:
            try:
                tracker = "resource_tracker" in " ".join(kid.cmdline())
            except psutil.Error:
                continue
            if not tracker and kid not in out:
                out.append(kid)
    return out


def _running(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
