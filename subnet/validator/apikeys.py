"""The gateway's API keys: from the command line, the environment or a file reloaded on change.

Key file (`--gateway.api_keys_file`, env `DMOE_API_KEYS_FILE`): one key per line, optionally
followed by a label (`sk-abc123 alice`); blank lines and `#` comments are ignored. The file is
re-read when its modification time or size changes (checked every `reload_s`, 5 s by default),
so keys are added and revoked without a restart; a file that no longer parses keeps the keys in
force and logs the line number (never a key). Keys from the flag or `DMOE_API_KEYS` stay valid
whatever the file says (localnets use them).

Each key has a stable label for `/metrics` and logs: the one the file gives, else `sha256:` and
the first 8 hex digits of the key's SHA-256, so counters never expose a key. Each key has a token
bucket: `burst` requests at once, refilled at `rpm` per minute; reloading keeps the buckets of
keys that stay.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from subnet.validator.config import GatewayConfig

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")
MAX_KEY_CHARS = 256


class KeyFileError(ValueError):
    """The key file cannot be used; the message names the file and line, never a key."""


def default_label(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def parse_keys(text: str, source: str = "key file") -> dict[str, str]:
    """key -> label from a key file's text (raises KeyFileError naming the line)."""
    keys: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) > 2:
            raise KeyFileError(f"{source} line {n}: expected 'KEY [LABEL]', got {len(parts)} words")
        key = parts[0]
        if len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise KeyFileError(f"{source} line {n}: a key is 1..{MAX_KEY_CHARS} printable chars")
        label = parts[1] if len(parts) == 2 else default_label(key)
        if not _LABEL.match(label):
            raise KeyFileError(f"{source} line {n}: a label is 1..32 of A-Z a-z 0-9 _ . : -")
        keys[key] = label
    return keys


def read_keys_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise KeyFileError(f"cannot read the key file {path}: {type(err).__name__}") from None
    return parse_keys(text, str(path))


@dataclass
class _Bucket:
    tokens: float
    at: float


class ApiKeys:
    """Which keys are valid, their labels and their rate limits."""

    def __init__(
        self,
        fixed: tuple[str, ...],
        path: Path | None,
        *,
        rpm: float,
        burst: int,
        reload_s: float = 5.0,
    ):
        self.fixed = {k: default_label(k) for k in fixed}
        self.path = path
        self.rate = rpm / 60.0
        self.burst = float(burst)
        self.reload_s = reload_s
        self._labels: dict[str, str] = dict(self.fixed)
        self._buckets: dict[str, _Bucket] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        if path is not None:
            self._install(read_keys_file(path), self._file_stamp())

    @classmethod
    def create(cls, cfg: GatewayConfig) -> ApiKeys:
        return cls(
            cfg.api_keys,
            cfg.api_keys_file,
            rpm=cfg.requests_per_minute,
            burst=cfg.burst,
            reload_s=cfg.api_keys_reload_s,
        )

    def __len__(self) -> int:
        return len(self._labels)

    def label(self, key: str) -> str | None:
        """The key's label, or None for an unknown key (the file is re-read first if due)."""
        now = time.monotonic()
        if self.path is not None and now - self._checked >= self.reload_s:
            self._checked = now
            self.reload()
        return self._labels.get(key)

    def take(self, key: str) -> float:
        """0 if admitted, else seconds until a request would be."""
        now = time.monotonic()
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate if self.rate > 0 else 3600.0

    def reload(self) -> bool:
        """Re-read the file if it changed; True when the key set was replaced."""
        if self.path is None:
            return False
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        try:
            keys = read_keys_file(self.path)
        except KeyFileError as err:
            log.warning("keeping the current API keys: %s", err)
            self._stamp = stamp  # warn once per change, not on every check
            return False
        self._install(keys, stamp)
        log.info("API keys reloaded from %s: %d keys", self.path, len(self._labels))
        return True

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path) if self.path is not None else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size) if st is not None else None

    def _install(self, from_file: dict[str, str], stamp: tuple[int, int] | None) -> None:
        self._labels = {**from_file, **self.fixed}
        # A revoked key's bucket goes; a key that stays keeps its state (no burst refill).
        self._buckets = {k: b for k, b in self._buckets.items() if k in self._labels}
        self._stamp = stamp
