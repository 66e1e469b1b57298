"""Per-miner evidence: sufficient statistics over many verified answers, and a drift test.

One answer of slightly different weights (2% noise on every tensor) usually passes every
per-answer check; a few hundred tokens of them do not. `Evidence` keeps sums of what
`Verdict.stats` carries (see `subnet.validator.verify.STAT_KEYS`), `add` folds in one answer,
`decay` ages everything by a factor (the caller's half-life), and `judge` fails a miner with
reason `drift` when one of three tests speaks:

- logprob noise: how far claimed logprobs sit from the nearer of two honest yardsticks, the
  reference and a copy of it at the miner's declared precision (`lp_err_sq`, `lp_sim_err_sq`),
  against how far that copy sits from the reference (`lp_noise_sq`, plus a calibrated floor),
  each token clipped (`verify.LP_CLIP`). Honest serving stays near one yardstick; other weights
  sit far from both. The test waits for `min_lp_tokens` compared tokens; the ratio of growing
  sums converges, so its false-positive rate shrinks as evidence accumulates.
- sampling z: Σ (log p(t) − E_q log p) against Σ Var_q (honest: mean 0, variance Σ Var; each
  token's variance floored, `verify.Z_VAR_FLOOR`, against heavy tails);
- argmax rate: sampled tokens that are the reference argmax against Σ q(argmax).
  Both use a normal-mixture boundary (Robbins): |S| > sqrt((V + ρ) (ln((V + ρ)/ρ) + 2 ln(2/α))),
  which an honest martingale crosses with probability at most α however long it runs — the
  threshold grows with the evidence instead of being tested again and again at a fixed level.

Pure: no I/O, frozen values, tolerant of garbage in `from_dict` (the validator's state file).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from subnet.validator.verify import Verdict

# Sums that can be negative; every other sum is a count or a sum of squares (>= 0).
SIGNED = frozenset({"lp_err_sum", "z_num"})


@dataclass(frozen=True)
class EvidenceThresholds:
    min_lp_tokens: float = 800.0  # compared tokens before the logprob-noise test speaks
    lp_noise_ratio: float = 1.5  # min(Σ err², Σ sim err²) / Σ simulated noise² above: drift
    alpha: float = 1e-6  # false-positive bound of each mixture test over an unbounded run
    rho: float = 200.0  # mixture scale, in variance units (~ where the tests are sharpest)
    min_sampled_tokens: float = 200.0  # sampled tokens before the z and argmax tests speak

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvidenceThresholds:
        kw = {}
        for f in fields(cls):
            v = d.get(f.name) if isinstance(d, Mapping) else None
            if isinstance(v, int | float) and math.isfinite(v) and v > 0:
                kw[f.name] = float(v)
        return cls(**kw)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Evidence:
    answers: float = 0.0
    greedy_answers: float = 0.0
    sampled_answers: float = 0.0
    tokens: float = 0.0
    lp_n: float = 0.0
    lp_err_sum: float = 0.0
    lp_err_sq: float = 0.0
    lp_sim_err_sq: float = 0.0
    lp_noise_sq: float = 0.0
    greedy_n: float = 0.0
    gap_sum: float = 0.0
    sampled_n: float = 0.0
    z_num: float = 0.0
    z_var: float = 0.0
    top1_n: float = 0.0
    top1_expected: float = 0.0
    top1_var: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> Evidence:
        """Whatever the state file holds: unknown keys, wrong types, NaN or negative counts
        are dropped (an unreadable entry is no evidence, not an error)."""
        if not isinstance(d, Mapping):
            return cls()
        kw = {}
        for f in fields(cls):
            v = d.get(f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                continue
            if v < 0 and f.name not in SIGNED:
                continue
            kw[f.name] = float(v)
        return cls(**kw)


_SUMS = tuple(f.name for f in fields(Evidence) if not f.name.endswith("answers"))


def add(ev: Evidence, verdict_stats: Mapping[str, float], *, greedy: bool) -> Evidence:
    """`ev` plus one answer's `Verdict.stats` (keys it lacks count as 0)."""
    kw = {}
    for name in _SUMS:
        v = verdict_stats.get(name)
        if isinstance(v, int | float) and math.isfinite(v) and (v >= 0 or name in SIGNED):
            kw[name] = getattr(ev, name) + float(v)
    return replace(
        ev,
        answers=ev.answers + 1,
        greedy_answers=ev.greedy_answers + (1 if greedy else 0),
        sampled_answers=ev.sampled_answers + (0 if greedy else 1),
        **kw,
    )


def decay(ev: Evidence, factor: float) -> Evidence:
    """Every sum times `factor` in [0, 1] (old evidence weighs less; 0 forgets it all)."""
    if not 0.0 <= factor <= 1.0:
        raise ValueError(f"decay factor must be in [0, 1], got {factor}")
    return Evidence(**{f.name: getattr(ev, f.name) * factor for f in fields(Evidence)})


def mixture_bound(var: float, alpha: float, rho: float) -> float:
    """|S| beyond this, for a martingale S with accumulated variance `var`, happens to an honest
    miner with probability <= alpha over its whole run (two-sided normal mixture)."""
    v = max(var, 0.0) + rho
    return math.sqrt(v * (math.log(v / rho) + 2 * math.log(2 / alpha)))


def lp_ratio(ev: Evidence) -> float:
    """How far claimed logprobs sit from the nearer of the reference and the simulated honest
    miner, in units of the simulated honest noise (honest serving: below 1 on the tiny experts)."""
    return min(ev.lp_err_sq, ev.lp_sim_err_sq) / ev.lp_noise_sq if ev.lp_noise_sq > 0 else 0.0


def scores(ev: Evidence, th: EvidenceThresholds) -> dict[str, float]:
    """Each test's statistic over its threshold (> 1 fails), for tests with enough evidence."""
    out: dict[str, float] = {}
    if ev.lp_n >= th.min_lp_tokens and ev.lp_noise_sq > 0:
        out["lp_noise"] = lp_ratio(ev) / th.lp_noise_ratio
    if ev.sampled_n >= th.min_sampled_tokens:
        out["z"] = abs(ev.z_num) / mixture_bound(ev.z_var, th.alpha, th.rho)
        top1 = ev.top1_n - ev.top1_expected
        out["top1"] = abs(top1) / mixture_bound(ev.top1_var, th.alpha, th.rho)
    return out


def judge(ev: Evidence, thresholds: EvidenceThresholds) -> Verdict | None:
    """A failed verdict (`drift`) when the evidence shows weights other than the declared."""
    s = scores(ev, thresholds)
    if s.get("lp_noise", 0.0) > 1.0:
        ratio = lp_ratio(ev)
        return Verdict.fail(
            "drift",
            f"claimed logprobs differ from the reference {ratio:.1f}x more (squared) than honest "
            f"serving at this precision, over {ev.lp_n:.0f} tokens",
            **s,
        )
    if s.get("z", 0.0) > 1.0:
        z = ev.z_num / math.sqrt(ev.z_var + 1e-6)
        return Verdict.fail(
            "drift",
            f"sampled tokens are {z:+.1f} standard deviations from honest sampling over "
            f"{ev.sampled_n:.0f} tokens",
            **s,
        )
    if s.get("top1", 0.0) > 1.0:
        return Verdict.fail(
            "drift",
            f"sampled the reference argmax {ev.top1_n:.0f} times where honest sampling gives "
            f"{ev.top1_expected:.0f} over {ev.sampled_n:.0f} tokens",
            **s,
        )
    return None
