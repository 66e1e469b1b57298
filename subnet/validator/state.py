"""Validator state that must survive restarts: per-(uid, domain) stats, hotkeys, last weights.

Written atomically (temp file in the same directory, fsync, `os.replace`), so a crash leaves
either the old or the new file, never a torn one. `StateStore.load()` runs before the loop
starts; nothing writes until a load succeeded or found no file. A corrupt file is moved aside
(`.corrupt-<time>`) and reported, never silently overwritten. A hotkey change at a uid (the
slot was re-registered) resets that uid only.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from subnet.validator.scoring import Stat

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class ValidatorState:
    hotkeys: dict[int, str] = field(default_factory=dict)  # uid -> hotkey the stats belong to
    stats: dict[int, dict[str, Stat]] = field(default_factory=dict)  # uid -> domain -> Stat
    last_weights: dict[int, float] = field(default_factory=dict)
    last_weights_block: int = -1
    step: int = 0

    def stat(self, uid: int, domain: str) -> Stat:
        return self.stats.get(uid, {}).get(domain, Stat())

    def put(self, uid: int, hotkey: str, domain: str, stat: Stat) -> None:
        if self.hotkeys.get(uid) != hotkey:
            self.reset_uid(uid, hotkey)
        self.stats.setdefault(uid, {})[domain] = stat

    def reset_uid(self, uid: int, hotkey: str) -> None:
        self.stats.pop(uid, None)
        self.last_weights.pop(uid, None)
        self.hotkeys[uid] = hotkey

    def sync_hotkeys(self, current: Mapping[int, str]) -> list[int]:
        """Reset uids whose hotkey changed or which left the subnet; returns the reset uids."""
        reset = []
        for uid in list(self.hotkeys):
            hk = current.get(uid)
            if hk != self.hotkeys[uid]:
                reset.append(uid)
                if hk is None:
                    self.stats.pop(uid, None)
                    self.last_weights.pop(uid, None)
                    self.hotkeys.pop(uid)
                else:
                    self.reset_uid(uid, hk)
        return reset

    def to_dict(self) -> dict[str, object]:
        return {
            "version": STATE_VERSION,
            "saved_at": time.time(),
            "step": self.step,
            "hotkeys": {str(u): hk for u, hk in self.hotkeys.items()},
            "stats": {
                str(u): {d: s.to_dict() for d, s in by_domain.items()}
                for u, by_domain in self.stats.items()
            },
            "last_weights": {str(u): w for u, w in self.last_weights.items()},
            "last_weights_block": self.last_weights_block,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> ValidatorState:
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"state version {d.get('version')!r}; expected {STATE_VERSION}")
        return cls(
            hotkeys={int(u): str(hk) for u, hk in dict(d.get("hotkeys", {})).items()},
            stats={
                int(u): {str(dom): Stat.from_dict(s) for dom, s in dict(by).items()}
                for u, by in dict(d.get("stats", {})).items()
            },
            last_weights={int(u): float(w) for u, w in dict(d.get("last_weights", {})).items()},
            last_weights_block=int(d.get("last_weights_block", -1)),
            step=int(d.get("step", 0)),
        )


class StateStore:
    """Loads once, then saves atomically. Refuses to save before a load."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._loaded = False

    def load(self) -> ValidatorState:
        self._loaded = True
        if not self.path.exists():
            log.info("no validator state at %s; starting fresh", self.path)
            return ValidatorState()
        try:
            state = ValidatorState.from_dict(json.loads(self.path.read_text()))
        except (ValueError, TypeError, AttributeError) as err:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.error("validator state %s unreadable (%s); moved to %s", self.path, err, aside)
            return ValidatorState()
        log.info(
            "loaded validator state: %d uids, step %d, weights at block %d",
            len(state.hotkeys),
            state.step,
            state.last_weights_block,
        )
        return state

    def save(self, state: ValidatorState) -> None:
        if not self._loaded:
            raise RuntimeError("StateStore.save before load: would overwrite saved scores")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(state.to_dict(), separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
