"""Verification of one miner answer, pure given the reference model's log-probabilities.

Tiered, cheapest first:
1. shape: token count within `max_tokens`, finish reason consistent with the tokens, one claimed
   logprob per token, no stop sequence crossed before the last token (`ignored_stop`);
2. the reference prefill (done by the caller in one batch, see `subnet.validator.verifier`):
   - greedy requests: every token must be the reference argmax, up to a tie gap in nats
     (`implausible_tokens`); an argmax end-of-sequence that was skipped is `skipped_eos`;
   - sampled requests: mean token logprob above a floor and few very unlikely tokens
     (`implausible_tokens`); an end-of-sequence the model was nearly sure of is `skipped_eos`;
   - claimed logprobs within a tolerance of the reference (`logprob_mismatch`);
3. copy: a failed answer identical to one already seen for a *different* prompt is `copycat`.

Thresholds are calibrated on honest output of the tiny experts (float32 on CPU, greedy and
sampled at temperature 0.7 and 1.0) by `scripts/calibrate_verify.py`; the defaults below are
that script's recommendations with wide margins. Measured (bench_results/calibrate_verify.json,
test-size tiny experts, torch 2.13 float32 CPU, 1,200 honest answers: 900 from the miner's
HFEngine, 300 from HF `generate`; 607 greedy, 593 sampled): 0 false positives; greedy max gap
0.0 (threshold 0.02); max |claimed - reference| logprob 4.8e-6 (threshold 0.05); sampled z-score
min -3.63, median 0.06 (threshold -5). Detection: random tokens 100%, another expert's answers
under the declared card 100% (implausible_tokens / logprob_mismatch / copycat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from protocol import GenerateRequest, GenerateResponse

REASONS = (
    "ok",
    "unknown_model",  # weights hash not in the validator's registry
    "bad_shape",  # finish reason and tokens disagree, empty answer, malformed
    "missing_logprobs",  # the validator asks for logprobs; none or the wrong number came back
    "ignored_max_tokens",
    "ignored_stop",
    "copycat",  # identical to another miner's answer to a different prompt
    "implausible_tokens",  # the declared model would not have produced these tokens
    "logprob_mismatch",  # claimed logprobs differ from the declared model's
    "skipped_eos",
    "timeout",  # set by the caller, not here: no answer in time
    "error",  # set by the caller: transport or protocol error
)


@dataclass(frozen=True)
class Thresholds:
    # Greedy: a token may trail the reference argmax by this many nats (float32 near-ties between
    # a KV-cached decode and a full prefill). Honest max observed is ~1e-5; a different token is
    # typically > 0.1 behind.
    greedy_max_gap: float = 0.02
    # Sampled: z-score of Σ log p(t_i) against honest sampling (~N(0, 1) when honest). -5 is a
    # one-in-3-million honest event; random tokens or another model's answers sit far below.
    sampled_min_z: float = -5.0
    # Sampled with top_p < 1: tokens allowed outside the nucleus (numerical boundary cases).
    max_outside_nucleus: int = 0
    # |claimed - reference| per token, nats.
    logprob_tol: float = 0.05
    # Sampled: skipping an end-of-sequence the model gives at least this logprob is `skipped_eos`
    # (log 0.9999: an honest sampler skips it once in 10,000 such positions).
    eos_sure_logprob: float = -1e-4


@dataclass(frozen=True)
class Reference:
    """The reference model's view of a completion; one entry per returned token.

    `eos_logprobs[i]` is the reference logprob of end-of-sequence at position i when it is
    among the top-k the prefill returned, else None (then it is below the k-th, i.e. unlikely).
    `final_eos_logprob` is the same after the last returned token.
    """

    logprobs: tuple[float, ...]
    ranks: tuple[int, ...]
    top1_logprobs: tuple[float, ...]
    eos_logprobs: tuple[float | None, ...]
    final_eos_logprob: float | None = None
    # Sampled answers: Σ over positions of the mean and variance of log p(t) for t drawn the
    # way an honest sampler draws (temperature, then top-p), and tokens outside the nucleus.
    expected_logprob: float = 0.0
    logprob_var: float = 0.0
    outside_nucleus: int = 0


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    detail: str = ""
    stats: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fail(cls, reason: str, detail: str, **stats: float) -> Verdict:
        assert reason in REASONS, reason
        return cls(False, reason, detail, stats)


OK = Verdict(True, "ok")


def check_shape(
    req: GenerateRequest, resp: GenerateResponse, *, eos_id: int, text_before_last: str
) -> Verdict | None:
    """Cheap checks needing no model. `text_before_last` = decode(token_ids[:-1])."""
    n = len(resp.token_ids)
    if n > req.max_tokens:
        return Verdict.fail(
            "ignored_max_tokens", f"{n} tokens returned for max_tokens={req.max_tokens}"
        )
    if resp.finish_reason in ("cancelled", "error"):
        return Verdict.fail("bad_shape", f"finish_reason={resp.finish_reason}")
    if n == 0:
        return Verdict.fail("bad_shape", "no tokens returned")
    if resp.usage.completion_tokens != n:  # inflated usage bills tokens never generated
        return Verdict.fail(
            "bad_shape", f"usage claims {resp.usage.completion_tokens} tokens for {n} returned"
        )
    if req.logprobs and len(resp.logprobs) != n:
        return Verdict.fail("missing_logprobs", f"{len(resp.logprobs)} logprobs for {n} tokens")
    if any(lp.token_id != t for lp, t in zip(resp.logprobs, resp.token_ids, strict=False)):
        return Verdict.fail("missing_logprobs", "logprob entries name other tokens")
    if resp.finish_reason == "length" and n != req.max_tokens:
        return Verdict.fail("bad_shape", f"finish_reason=length after {n}/{req.max_tokens} tokens")
    if eos_id in resp.token_ids[:-1]:
        return Verdict.fail("skipped_eos", "generation continued past an end-of-sequence token")
    if resp.finish_reason == "eos" and resp.token_ids[-1] != eos_id:
        return Verdict.fail("bad_shape", "finish_reason=eos but the last token is not EOS")
    # A stop sequence completed before the last token means the miner kept generating past it.
    for s in req.stop:
        if s in text_before_last:
            return Verdict.fail("ignored_stop", f"stop sequence {s!r} crossed before the end")
    return None


def label_copy(v: Verdict, copied: bool) -> Verdict:
    """A failed answer identical to one given for another prompt is a copy (the root cause).

    Identical outputs alone are no proof: small models answer different prompts alike ("= = =",
    blank lines), so a copy that the declared model would itself produce passes.
    """
    if copied and not v.ok and v.reason in ("implausible_tokens", "logprob_mismatch"):
        return Verdict.fail("copycat", f"identical to an answer to another prompt; {v.detail}")
    return v


def check_reference(
    req: GenerateRequest, resp: GenerateResponse, ref: Reference, *, eos_id: int, th: Thresholds
) -> Verdict:
    """Plausibility, skipped EOS and claimed logprobs against the reference prefill."""
    n = len(resp.token_ids)
    if len(ref.logprobs) != n:
        raise ValueError(f"reference covers {len(ref.logprobs)} tokens, response has {n}")
    mean_lp = sum(ref.logprobs) / n
    stats: dict[str, float] = {"mean_logprob": mean_lp}
    if req.temperature == 0.0:
        gaps = [top - lp for top, lp in zip(ref.top1_logprobs, ref.logprobs, strict=True)]
        worst = max(range(n), key=gaps.__getitem__)
        stats["max_gap"] = gaps[worst]
        # An EOS argmax that the miner replaced with another token is the specific failure.
        eos_lp = ref.eos_logprobs[worst]
        if gaps[worst] > th.greedy_max_gap:
            if eos_lp is not None and eos_lp >= ref.top1_logprobs[worst] - th.greedy_max_gap:
                return Verdict.fail("skipped_eos", f"greedy EOS skipped at token {worst}", **stats)
            return Verdict.fail(
                "implausible_tokens",
                f"greedy token {worst} is {gaps[worst]:.3f} nats below the argmax "
                f"(rank {ref.ranks[worst]})",
                **stats,
            )
    else:
        z = (sum(ref.logprobs) - ref.expected_logprob) / math.sqrt(ref.logprob_var + 1e-6)
        stats["z"] = z
        if ref.outside_nucleus > th.max_outside_nucleus:
            return Verdict.fail(
                "implausible_tokens",
                f"{ref.outside_nucleus} tokens outside the top_p={req.top_p} nucleus",
                **stats,
            )
        if z < th.sampled_min_z:
            return Verdict.fail(
                "implausible_tokens",
                f"tokens are {-z:.1f} standard deviations less likely than honest sampling",
                **stats,
            )
        if req.temperature <= 1.0:
            for i, (t, eos_lp) in enumerate(zip(resp.token_ids, ref.eos_logprobs, strict=True)):
                if t != eos_id and eos_lp is not None and eos_lp >= th.eos_sure_logprob:
                    return Verdict.fail("skipped_eos", f"sure EOS skipped at token {i}", **stats)
    if req.logprobs:
        diffs = [abs(c.logprob - r) for c, r in zip(resp.logprobs, ref.logprobs, strict=True)]
        stats["max_logprob_err"] = max(diffs)
        if stats["max_logprob_err"] > th.logprob_tol:
            i = diffs.index(stats["max_logprob_err"])
            return Verdict.fail(
                "logprob_mismatch",
                f"token {i}: claimed {resp.logprobs[i].logprob:.4f}, "
                f"reference {ref.logprobs[i]:.4f}",
                **stats,
            )
    return Verdict(True, "ok", "", stats)


def precheck(
    req: GenerateRequest,
    resp: GenerateResponse,
    *,
    known_model: bool,
    eos_id: int,
    text_before_last: str,
    th: Thresholds = Thresholds(),
) -> Verdict | None:
    """Everything before the prefill; None means "needs the reference model"."""
    shape = check_shape(req, resp, eos_id=eos_id, text_before_last=text_before_last)
    if shape is not None:
        return shape
    if not known_model:
        return Verdict.fail("unknown_model", "declared weights hash is not in the registry")
    return None


def verify(
    req: GenerateRequest,
    resp: GenerateResponse,
    ref: Reference | None,
    *,
    eos_id: int,
    text_before_last: str,
    copied: bool = False,
    th: Thresholds = Thresholds(),
) -> Verdict:
    """The full verdict. `ref` None means the declared weights are not in the registry."""
    early = precheck(
        req,
        resp,
        known_model=ref is not None,
        eos_id=eos_id,
        text_before_last=text_before_last,
        th=th,
    )
    if early is not None:
        return early
    return label_copy(check_reference(req, resp, ref, eos_id=eos_id, th=th), copied)
