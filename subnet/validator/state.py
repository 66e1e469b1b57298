"""Validator state that must survive restarts: per-miner evidence, hotkeys, demand, last weights.

Written atomically (temp file in the same directory, fsync, `os.replace`), so a crash leaves
either the old or the new file, never a torn one. `StateStore.load()` runs before the loop
starts; nothing writes until a load succeeded or found no file. A corrupt file is moved aside
(`.corrupt-<time>`) and reported, never silently overwritten. A hotkey change at a uid (the
slot was re-registered) resets that uid only. Version 1 files (an EMA per miner and domain) are
read and converted: their sample counts and pass rates carry over; throughput is measured anew.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subnet.validator.scoring import Tally

log = logging.getLogger(__name__)

STATE_VERSION = 2


@dataclass
class ValidatorState:
    hotkeys: dict[int, str] = field(default_factory=dict)  # uid -> hotkey the evidence belongs to
    tallies: dict[int, Tally] = field(default_factory=dict)  # uid -> decayed evidence
    # uid -> accumulated verification statistics (subnet.validator.evidence), plain data
    evidence: dict[int, dict[str, Any]] = field(default_factory=dict)
    # weights hash -> (decayed routed demand, block it is valued at)
    demand: dict[str, tuple[float, float]] = field(default_factory=dict)
    last_weights: dict[int, float] = field(default_factory=dict)
    last_weights_block: int = -1
    step: int = 0

    def tally(self, uid: int) -> Tally:
        return self.tallies.get(uid, Tally())

    def put(self, uid: int, hotkey: str, tally: Tally) -> None:
        if self.hotkeys.get(uid) != hotkey:
            self.reset_uid(uid, hotkey)
        self.tallies[uid] = tally

    def reset_uid(self, uid: int, hotkey: str) -> None:
        self.tallies.pop(uid, None)
        self.evidence.pop(uid, None)
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
                    self.tallies.pop(uid, None)
                    self.evidence.pop(uid, None)
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
            "tallies": {str(u): t.to_dict() for u, t in self.tallies.items()},
            "evidence": {str(u): e for u, e in self.evidence.items()},
            "demand": {h: list(v) for h, v in self.demand.items()},
            "last_weights": {str(u): w for u, w in self.last_weights.items()},
            "last_weights_block": self.last_weights_block,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> ValidatorState:
        version = d.get("version")
        if version == 1:
            return _from_v1(d)
        if version != STATE_VERSION:
            raise ValueError(f"state version {version!r}; expected {STATE_VERSION}")
        demand = {}
        for h, v in dict(d.get("demand", {})).items():
            w, at = (list(v) + [0.0, 0.0])[:2] if isinstance(v, list) else (0.0, 0.0)
            if _finite(w) and _finite(at) and w >= 0:
                demand[str(h)] = (float(w), float(at))
        return cls(
            hotkeys={int(u): str(hk) for u, hk in dict(d.get("hotkeys", {})).items()},
            tallies={
                int(u): Tally.from_dict(dict(t)) for u, t in dict(d.get("tallies", {})).items()
            },
            evidence={
                int(u): dict(e)
                for u, e in dict(d.get("evidence", {})).items()
                if isinstance(e, dict)
            },
            demand=demand,
            last_weights={int(u): float(w) for u, w in dict(d.get("last_weights", {})).items()},
            last_weights_block=int(d.get("last_weights_block", -1)),
            step=int(d.get("step", 0)),
        )


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _from_v1(d: Mapping[str, object]) -> ValidatorState:
    """Version 1 kept an EMA of rewards per (uid, domain): carry over samples and pass rates."""
    tallies = {}
    for u, by_domain in dict(d.get("stats", {})).items():
        samples = passed = 0.0
        count = failures = 0
        for s in dict(by_domain).values():
            n = max(0, int(dict(s).get("evidence", 0)))
            ema = float(dict(s).get("ema", 0.0))
            ema = ema if math.isfinite(ema) and 0.0 <= ema <= 1.0 else 0.0
            w = min(n, 20)  # a v1 EMA reflects about its last 10-20 samples
            samples += w
            passed += w * ema
            count += n
            failures += max(0, int(dict(s).get("failures", 0)))
        tallies[int(u)] = Tally(samples=samples, passed=passed, count=count, failures=failures)
    log.info("validator state: converted a version 1 file (%d uids)", len(tallies))
    return ValidatorState(
        hotkeys={int(u): str(hk) for u, hk in dict(d.get("hotkeys", {})).items()},
        tallies=tallies,
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
        _write_atomic(self.path, json.dumps(state.to_dict(), separators=(",", ":")).encode())

    # Side files: larger plain data owned by other modules (the organic traffic profile, the
    # learned gate), saved less often than the per-step state, beside it.
    def side_path(self, name: str) -> Path:
        return self.path.with_name(f"{self.path.stem}.{name}.json")

    def load_side(self, name: str) -> Any:
        """The side file's data, or None (absent, or unreadable: moved aside and reported)."""
        path = self.side_path(name)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            os.replace(path, aside)
            log.error("%s unreadable (%s); moved to %s", path, err, aside)
            return None

    def save_side(self, name: str, data: Any) -> None:
        if not self._loaded:
            raise RuntimeError("StateStore.save_side before load")
        _write_atomic(self.side_path(name), json.dumps(data, separators=(",", ":")).encode())


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename: a crash leaves the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
