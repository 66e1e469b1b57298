"""Calibrated verification thresholds per (miner precision, validator precision) pair.

The table lives in `subnet/data/verify_thresholds.json`, written by
`scripts/calibrate_verify.py --write` next to the figures it rests on (honest answers,
worst observed margins, detection rates). Per pair: the per-answer `Thresholds` and the noise
floor of the per-miner evidence (`noise_floor`: nats² per token that an honest miner of that
pair may differ from the reference beyond what the validator can simulate, see
`subnet.validator.verifier`). Plus one `EvidenceThresholds` for `subnet.validator.evidence`.

A pair the table lacks (say a GPU pair when only CPU pairs were measured) gets the most
tolerant thresholds of the measured pairs, and a warning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from subnet.validator.evidence import EvidenceThresholds
from subnet.validator.verify import Thresholds

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
TABLE_PATH = Path(__file__).resolve().parent.parent / "data" / "verify_thresholds.json"
# Larger is more tolerant for these fields; smaller for the others.
_LOOSER_IS_LARGER = {"greedy_max_gap", "logprob_tol", "max_outside_nucleus", "eos_sure_logprob"}


def pair_key(miner: str, validator: str) -> str:
    return f"{miner}/{validator}"


@dataclass(frozen=True)
class PairThresholds:
    answer: Thresholds
    noise_floor: float  # nats² per compared token, added to the simulated honest noise


def _thresholds(d: dict[str, Any]) -> Thresholds:
    known = {f.name: f.type for f in fields(Thresholds)}
    kw = {}
    for k, v in d.items():
        if k in known:
            kw[k] = int(v) if k == "max_outside_nucleus" else float(v)
    return Thresholds(**kw)


def loosest(items: list[PairThresholds]) -> PairThresholds:
    """Element-wise the most tolerant of several pairs' thresholds."""
    kw = {}
    for f in fields(Thresholds):
        vals = [getattr(p.answer, f.name) for p in items]
        kw[f.name] = max(vals) if f.name in _LOOSER_IS_LARGER else min(vals)
    return PairThresholds(Thresholds(**kw), max(p.noise_floor for p in items))


class ThresholdTable:
    def __init__(self, pairs: dict[str, PairThresholds], evidence: EvidenceThresholds):
        if not pairs:
            raise ValueError("a threshold table needs at least one pair")
        self.pairs = pairs
        self.evidence = evidence
        self._fallback = loosest(list(pairs.values()))
        self._warned: set[str] = set()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ThresholdTable:
        pairs = {}
        for key, entry in (d.get("pairs") or {}).items():
            miner, _, validator = key.partition("/")
            if miner not in DTYPES or validator not in DTYPES:
                raise ValueError(f"threshold pair {key!r} is not <dtype>/<dtype> of {DTYPES}")
            pairs[key] = PairThresholds(
                _thresholds(entry.get("thresholds", {})), float(entry.get("noise_floor", 0.0))
            )
        return cls(pairs, EvidenceThresholds.from_dict(d.get("evidence") or {}))

    @classmethod
    def load(cls, path: Path = TABLE_PATH) -> ThresholdTable:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError, AttributeError) as err:
            raise ValueError(
                f"cannot read verification thresholds {path}: {err} "
                "(regenerate: python scripts/calibrate_verify.py --write)"
            ) from err

    @classmethod
    def default(cls) -> ThresholdTable:
        """Built-in float32/float32 thresholds only (tests, and tables being regenerated)."""
        return cls({pair_key("float32", "float32"): PairThresholds(Thresholds(), 1e-6)},
                   EvidenceThresholds())  # fmt: skip

    def get(self, miner: str, validator: str) -> PairThresholds:
        key = pair_key(miner, validator)
        found = self.pairs.get(key)
        if found is not None:
            return found
        if key not in self._warned:
            self._warned.add(key)
            log.warning("no calibrated thresholds for %s: using the loosest measured pair", key)
        return self._fallback
