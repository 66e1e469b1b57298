"""The learned gate of the mixture: for a prompt, which expert (by weights hash) fits it best.

Each expert gets a linear model over hashed byte n-grams of the text (1- to 4-grams of the
last 2 KiB, square-rooted counts, unit length) that predicts the expert's mean per-token
log-likelihood of that text. The validator measures exactly that number anyway, on its
reference copies (`gate_measure.measure_quality`: prompts of its tasks and of organic traffic,
the answers it verifies), and feeds it back through `observe`: one normalised LMS step per
expert, so the gate keeps learning as traffic shifts and costs O(features) per update.

Cold start: the hand-written classifier (`openai_format.classify`) names a domain and the
experts declaring it get `rule_bonus` nats over the others. The gate keeps score of both
rankings on its own evidence (before each update, the regret in nats of the learned and of the
rule's pick, as moving averages) and trusts the learned models once they beat the rule there;
until then, and whenever they fall behind again, the rule ranks. An expert that just joined is
blended from the rule prior into its learned model over its first `warm_after` observations.
Experts that leave are simply not ranked; their models stay (bounded, least recently observed
evicted) in case they come back.

Pure numpy at request time (`rank`: tens of microseconds for a handful of experts); state is
plain data (`to_dict` / `from_dict`, which never raises on a damaged dict).
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

GATE_VERSION = 1
# weights hash -> declared domains, or just the hashes (their domains already known to the gate)
Experts = Mapping[str, Sequence[str]] | Sequence[str]
_WORD = re.compile(rb"[a-z0-9_]+|[^\sa-z0-9_]")


@dataclass(frozen=True)
class GateConfig:
    dim_bits: int = 13  # 8192 hashed features: 32 KiB an array; 2^14 gained ~1% in the bench
    ngrams: tuple[int, ...] = (1, 2, 3, 4)  # byte n-gram lengths: symbols, digits, word pieces
    max_bytes: int = 2048  # the prompt's tail; what comes next depends most on the end
    step: float = 1.5  # normalised LMS step (0..2): how far one update moves a prediction
    average: float = 0.02  # weight of the newest iterate in the averaged model (~50 observations)
    warm_after: int = 32  # observations before an expert's learned model fully replaces the rule
    rule_bonus: float = 1.0  # nats the rule's domain is worth to an expert that declares it
    max_experts: int = 64  # models kept (departed experts' included); least recently seen go
    regret_decay: float = 0.05  # weight of the newest observation in the regret averages
    min_compared: int = 16  # observations with 2+ experts before the learned ranking may lead


def featurize(text: str, cfg: GateConfig) -> tuple[np.ndarray, np.ndarray]:
    """(feature indices, values) of a text, unit length. Pure.

    Two halves of equal weight: hashed byte n-grams (symbols, digits, indentation, pieces of
    words) and hashed lower-cased words and word pairs ("sql query", "python function").
    """
    data = text.encode("utf-8", "replace")[-cfg.max_bytes :]
    parts = [_byte_grams(data, cfg), _words(data, cfg)]
    keys = [k for k in parts if len(k)]
    if not keys:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    dim = 1 << cfg.dim_bits
    counts = np.zeros(dim, dtype=np.float32)
    for k in keys:
        c = np.sqrt(np.bincount(k, minlength=dim).astype(np.float32))
        counts += c / np.linalg.norm(c)
    idx = np.flatnonzero(counts)
    val = counts[idx]
    return idx, val / np.linalg.norm(val)


def _byte_grams(data: bytes, cfg: GateConfig) -> np.ndarray:
    b = np.frombuffer(data, dtype=np.uint8).astype(np.uint32)
    keys = []
    h = np.zeros(0, dtype=np.uint32)
    with np.errstate(over="ignore"):
        for n in range(1, max(cfg.ngrams) + 1):
            if len(b) < n:
                break
            # FNV-style rolling hash of the n bytes starting at each position.
            h = b.copy() if n == 1 else (h[:-1] * np.uint32(0x01000193)) ^ b[n - 1 :]
            if n in cfg.ngrams:
                keys.append(_mix(h, n, cfg))
    return np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint32)


def _words(data: bytes, cfg: GateConfig) -> np.ndarray:
    words = _WORD.findall(data.lower())
    if not words:
        return np.zeros(0, dtype=np.uint32)
    h = np.array([zlib.crc32(w) for w in words], dtype=np.uint32)
    with np.errstate(over="ignore"):
        pairs = (h[:-1] * np.uint32(0x01000193)) ^ h[1:]
        return np.concatenate([_mix(h, 11, cfg), _mix(pairs, 12, cfg)])


def _mix(h: np.ndarray, salt: int, cfg: GateConfig) -> np.ndarray:
    """Multiplicative hashing of 32-bit keys (salted per feature family) into dim_bits."""
    with np.errstate(over="ignore"):
        salted = h + np.uint32(salt * 0x9E3779B9 & 0xFFFFFFFF)
        return (salted * np.uint32(0x85EBCA6B)) >> np.uint32(32 - cfg.dim_bits)


class _Head:
    """One expert's linear model: bias + w · x, learned by normalised LMS, and read through the
    running average of its iterates (Polyak averaging, then an exponential window), which keeps
    the fast learner's noise out of the ranking."""

    __slots__ = ("w", "bias", "avg_w", "avg_bias", "n", "seen")

    def __init__(self, dim: int) -> None:
        self.w = np.zeros(dim, dtype=np.float32)
        self.avg_w = np.zeros(dim, dtype=np.float32)
        self.bias = self.avg_bias = 0.0
        self.n = 0
        self.seen = 0  # gate step of the last observation (for eviction)

    def predict(self, idx: np.ndarray, val: np.ndarray) -> float:
        return self.avg_bias + float(self.avg_w[idx] @ val)

    def update(self, idx: np.ndarray, val: np.ndarray, target: float, cfg: GateConfig) -> None:
        if self.n == 0:
            self.bias = self.avg_bias = target  # start from the first measurement, not zero
        err = target - (self.bias + float(self.w[idx] @ val))
        # x has unit length and the bias is one more unit feature: a step of 1 would move this
        # text's prediction all the way to the target; 1.5 over-relaxes (stable below 2).
        self.w[idx] += np.float32(cfg.step * err / 2.0) * val
        self.bias += cfg.step * err / 2.0
        self.n += 1
        beta = max(cfg.average, 1.0 / self.n)
        self.avg_w += np.float32(beta) * (self.w - self.avg_w)
        self.avg_bias += beta * (self.bias - self.avg_bias)


class Gate:
    """Ranks experts (weights hashes) for a text; learns online from measured qualities."""

    def __init__(
        self,
        cfg: GateConfig = GateConfig(),
        rule: Callable[[str], str] | None = None,
    ):
        self.cfg = cfg
        self.rule = rule if rule is not None else _default_rule()
        self.heads: dict[str, _Head] = {}
        self.steps = 0  # observations so far
        # Declared domains of the experts seen in `rank`/`observe` calls: what the rule needs to
        # rank them when the gate checks itself against the rule.
        self._domains: dict[str, tuple[str, ...]] = {}
        self.regret = {"learned": 0.0, "rule": 0.0}  # moving averages, nats per token
        self.compared = 0  # observations that compared the two rankings

    def scores(self, text: str, experts: Experts) -> dict[str, float]:
        """Predicted mean log-likelihood (nats per token) of `text` for each expert.

        `experts` maps weights hash -> declared domains (the cold start's only use of them), or
        is a plain sequence of hashes whose domains an earlier call or `observe` gave.
        """
        if isinstance(experts, Mapping):
            self._remember(experts)
        else:
            experts = {h: self._domains.get(h, ()) for h in experts}
        idx, val = featurize(text, self.cfg)
        return self._scores(idx, val, text, experts, learned=self.trusted())

    def trusted(self) -> bool:
        """Whether the learned models rank better than the rule on the evidence so far."""
        return (
            self.compared >= self.cfg.min_compared and self.regret["learned"] <= self.regret["rule"]
        )

    def _scores(self, idx, val, text, experts, *, learned: bool) -> dict[str, float]:
        preds: dict[str, tuple[float, float]] = {}
        for h in experts:
            head = self.heads.get(h)
            if head is not None and head.n > 0:
                trust = min(1.0, head.n / self.cfg.warm_after) if learned else 0.0
                preds[h] = (head.predict(idx, val), trust)
        if learned and all(preds.get(h, (0.0, 0.0))[1] >= 1.0 for h in experts):
            return {h: p for h, (p, _) in preds.items()}
        # The prior: level with the mean prediction of the others, plus the rule's bonus for
        # the experts that declare the rule's domain.
        ref = sum(p for p, _ in preds.values()) / len(preds) if preds else 0.0
        domain = self.rule(text)
        out = {}
        for h, domains in experts.items():
            p, w = preds.get(h, (0.0, 0.0))
            prior = ref + (self.cfg.rule_bonus if domain in domains else 0.0)
            out[h] = w * p + (1.0 - w) * prior
        return out

    def rank(self, text: str, experts: Experts) -> list[tuple[str, float]]:
        """(weights hash, predicted quality), best first; ties in hash order (deterministic)."""
        scored = self.scores(text, experts)
        return sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))

    def observe(
        self,
        text: str,
        quality: Mapping[str, float],
        domains: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        """Learn from measured per-expert quality of `text`; returns how many experts learned.

        `domains` (weights hash -> declared domains) is only needed for experts never passed
        to `rank`. Non-finite measurements are skipped (an overflowed forward is no evidence).
        """
        if domains:
            self._remember(domains)
        good = {h: float(q) for h, q in quality.items() if _finite(q)}
        if not good:
            return 0
        idx, val = featurize(text, self.cfg)
        if len(good) >= 2:
            self._score_rankings(idx, val, text, good)
        self.steps += 1
        dim = 1 << self.cfg.dim_bits
        for h, q in good.items():
            head = self.heads.get(h)
            if head is None:
                head = self.heads[h] = _Head(dim)
            head.update(idx, val, q, self.cfg)
            head.seen = self.steps
        self._evict()
        return len(good)

    def _score_rankings(self, idx, val, text, good: dict[str, float]) -> None:
        """Prequential check: the regret of each ranking's pick on this text, before learning."""
        experts = {h: self._domains.get(h, ()) for h in good}
        best = max(good.values())
        decay = self.cfg.regret_decay if self.compared else 1.0
        for name, learned in (("learned", True), ("rule", False)):
            scored = self._scores(idx, val, text, experts, learned=learned)
            pick = min(scored, key=lambda h: (-scored[h], h))  # as `rank` breaks ties
            self.regret[name] += decay * ((best - good[pick]) - self.regret[name])
        self.compared += 1

    def _remember(self, experts: Mapping[str, Sequence[str]]) -> None:
        for h, ds in experts.items():
            self._domains[h] = tuple(str(d) for d in ds)
        if len(self._domains) > 4 * self.cfg.max_experts:
            self._domains = {h: d for h, d in self._domains.items() if h in self.heads}

    def evidence(self) -> dict[str, int]:
        """Observations behind each expert's model (for status pages and logs)."""
        return {h: head.n for h, head in self.heads.items()}

    def _evict(self) -> None:
        while len(self.heads) > self.cfg.max_experts:
            oldest = min(self.heads, key=lambda h: self.heads[h].seen)
            del self.heads[oldest]

    def to_dict(self) -> dict[str, object]:
        return {
            "version": GATE_VERSION,
            "dim_bits": self.cfg.dim_bits,
            "ngrams": list(self.cfg.ngrams),
            "max_bytes": self.cfg.max_bytes,
            "steps": self.steps,
            "regret": dict(self.regret),
            "compared": self.compared,
            "domains": {h: list(d) for h, d in self._domains.items()},
            "experts": {
                h: {
                    "w": _b64(head.w),
                    "avg_w": _b64(head.avg_w),
                    "bias": head.bias,
                    "avg_bias": head.avg_bias,
                    "n": head.n,
                    "seen": head.seen,
                }
                for h, head in self.heads.items()
            },
        }

    @classmethod
    def from_dict(
        cls,
        d: object,
        cfg: GateConfig = GateConfig(),
        rule: Callable[[str], str] | None = None,
    ) -> Gate:
        """A gate from `to_dict` output; whatever is damaged or from another feature layout is
        dropped with a warning (the gate then relearns it), never raised."""
        gate = cls(cfg, rule)
        if not isinstance(d, Mapping):
            if d is not None:
                log.warning("gate state is a %s, not a mapping; starting fresh", type(d).__name__)
            return gate
        layout = (d.get("dim_bits"), d.get("ngrams"), d.get("max_bytes"))
        if d.get("version") != GATE_VERSION or layout != (
            cfg.dim_bits,
            list(cfg.ngrams),
            cfg.max_bytes,
        ):
            log.warning("gate state of another version or feature layout; starting fresh")
            return gate
        gate.steps = _count(d.get("steps"))
        gate.compared = _count(d.get("compared"))
        regret = d.get("regret")
        if isinstance(regret, Mapping) and all(_finite(regret.get(k)) for k in gate.regret):
            gate.regret = {k: float(regret[k]) for k in gate.regret}
        else:
            gate.compared = 0  # no usable comparison: the rule leads until there is one
        domains = d.get("domains")
        for h, ds in domains.items() if isinstance(domains, Mapping) else ():
            if isinstance(h, str) and isinstance(ds, list) and all(isinstance(x, str) for x in ds):
                gate._domains[h] = tuple(ds)
        experts = d.get("experts")
        dim = 1 << cfg.dim_bits
        for h, e in experts.items() if isinstance(experts, Mapping) else ():
            head = _head_from(e, dim)
            if isinstance(h, str) and head is not None:
                gate.heads[h] = head
            else:
                log.warning("dropping a damaged gate model for expert %r", str(h)[:16])
        gate._evict()
        return gate


def _head_from(e: object, dim: int) -> _Head | None:
    if not isinstance(e, Mapping):
        return None
    head = _Head(dim)
    try:
        head.w, head.avg_w = _unb64(e["w"], dim), _unb64(e["avg_w"], dim)
        head.bias, head.avg_bias = float(e["bias"]), float(e["avg_bias"])
        head.n, head.seen = int(e["n"]), int(e.get("seen", 0))
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    if not (math.isfinite(head.bias) and math.isfinite(head.avg_bias)) or head.n < 0:
        return None
    return head


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(a.astype("<f4").tobytes()).decode("ascii")


def _unb64(text: object, dim: int) -> np.ndarray:
    a = np.frombuffer(base64.b64decode(str(text), validate=True), dtype="<f4")
    if a.shape != (dim,) or not np.isfinite(a).all():
        raise ValueError("weights of the wrong size or not finite")
    return a.astype(np.float32)  # a writable copy


def _count(x: object) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else 0


def _finite(q: object) -> bool:
    return isinstance(q, int | float) and not isinstance(q, bool) and math.isfinite(q)


def _default_rule() -> Callable[[str], str]:
    from subnet.validator.openai_format import classify

    return classify
