"""An exclusive lock on a chain's data directory: one `dmoe chain` per SQLite database.

Two servers writing the same database would each keep their own in-memory state and overwrite
each other's blocks. The lock is an `flock` on `DIR/chain.lock`, released by the kernel when the
process dies (even by SIGKILL), so a stale lock never needs cleaning up. The file holds the
owner's pid so the refusal can name it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "chain.lock"


class DataDirBusy(RuntimeError):
    """Another process holds the data directory; the message names it and the fix."""


class DataDirLock:
    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Create `data_dir` if needed and lock it, or raise DataDirBusy (or OSError)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirBusy(
                f"{data_dir} is in use by another `dmoe chain` (pid {holder}): stop it, or "
                "pass another --data-dir"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
