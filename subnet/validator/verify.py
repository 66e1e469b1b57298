"""Verification of one miner answer, pure given the reference model's log-probabilities.

Tiered, cheapest first:
1. shape: token count within `max_tokens`, finish reason consistent with the tokens (an
   end-of-sequence id of the expert's EOS set ends an `eos` answer and appears nowhere before;
   `length` has exactly `max_tokens` tokens; `stop` ends on a requested stop sequence, else
   `premature_end`), one claimed logprob per token, no stop sequence crossed before the last
   token (`ignored_stop`);
2. the reference prefill (done by the caller in one batch, see `subnet.validator.verifier`):
   - greedy requests: every token must be the reference argmax, up to a tie gap in nats
     (`implausible_tokens`); an argmax end-of-sequence that was skipped is `skipped_eos`; a final
     end-of-sequence that is not the argmax is `premature_end`;
   - sampled requests: the answer's z-score above a floor and no token outside the top-p nucleus
     (`implausible_tokens`); an end-of-sequence the model was nearly sure of is `skipped_eos`;
     an end the sampling distribution gives a negligible probability is `premature_end`;
   - claimed logprobs within a tolerance of the reference (`logprob_mismatch`);
3. copies: an answer identical to one returned for a *different* request (prompt, seed,
   temperature, top_p) is `copycat` when it also failed, or when it is sampled and an honest
   sampler would produce it with negligible probability (a replayed or relayed answer);
4. text: the answer's `text` must be what the reference tokenizer derives from its token ids
   (`expected_text`), else `text_mismatch` — users receive only derived text.

Thresholds depend on the pair (miner precision, validator precision) and come from
`subnet/data/verify_thresholds.json`, written by `scripts/calibrate_verify.py` (see
`subnet.validator.thresholds`).

`Verdict.stats` carries per-answer sums that `subnet.validator.evidence` accumulates per miner
(keys in `STAT_KEYS`): a small systematic drift no single answer reveals shows up there.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from protocol import GenerateRequest, GenerateResponse
from subnet.validator.text import expected_text as expected_text  # the derivation, re-exported

REASONS = (
    "ok",
    "unknown_model",  # weights hash not in the validator's registry
    "bad_shape",  # finish reason and tokens disagree, empty answer, malformed
    "missing_logprobs",  # the validator asks for logprobs; none or the wrong number came back
    "ignored_max_tokens",
    "ignored_stop",
    "copycat",  # identical to an answer to another request, and not the declared model's own
    "implausible_tokens",  # the declared model would not have produced these tokens
    "logprob_mismatch",  # claimed logprobs differ from the declared model's
    "skipped_eos",
    "premature_end",  # ended where the declared model would not have (or `stop` with no stop)
    "text_mismatch",  # `text` is not what the token ids decode to
    "drift",  # set by `subnet.validator.evidence`: many answers reveal other weights
    "timeout",  # set by the caller, not here: no answer in time
    "error",  # transport or protocol error (the caller), or finish_reason error/cancelled
)
# Reasons that prove the miner did not serve the declared model honestly: a strike. The others
# are failures an honest but broken, overloaded or unregistered miner can have.
CHEATING = frozenset(REASONS) - {"ok", "timeout", "error", "unknown_model"}

# Per-answer sums for the per-miner evidence (see subnet.validator.evidence); all floats.
STAT_KEYS = (
    "tokens",  # returned tokens
    "lp_n",  # tokens whose claimed logprob was compared
    "lp_err_sum",  # Σ (claimed − reference) logprob, nats
    "lp_err_sq",  # Σ (claimed − reference)², nats², each token clipped (LP_CLIP)
    "lp_sim_err_sq",  # Σ (claimed − simulated miner of the declared precision)², clipped
    "lp_noise_sq",  # Σ (simulated miner − reference)², clipped, + a calibrated floor per token
    "greedy_n",  # greedy tokens checked
    "gap_sum",  # Σ (reference argmax logprob − chosen logprob) over greedy tokens, nats
    "sampled_n",  # sampled tokens checked
    "z_num",  # Σ (log p(t) − E_q[log p]) over sampled tokens
    "z_var",  # Σ (Var_q[log p] + Z_VAR_FLOOR) over sampled tokens
    "top1_n",  # sampled tokens that are the reference argmax
    "top1_expected",  # Σ q(argmax): how many an honest sampler picks on average
    "top1_var",  # Σ q(argmax) (1 − q(argmax))
)


@dataclass(frozen=True)
class Thresholds:
    """Per-answer limits for one (miner precision, validator precision) pair."""

    # Greedy: a token may trail the reference argmax by this many nats (near-ties flip between a
    # KV-cached decode and a full prefill, and more so in bfloat16).
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
    # Sampled: ending where the sampling distribution gives the end-of-sequence set less than
    # this log-probability is `premature_end` (an honest sampler does it at most this often per
    # position).
    end_min_logprob: float = math.log(1e-7)
    # Sampled: a copied answer whose log-probability under the request's sampling distribution
    # is below this is `copycat` (an honest sampler repeats it at most this often).
    copy_max_logprob: float = math.log(1e-6)


@dataclass(frozen=True)
class Reference:
    """The reference model's view of a completion; one entry per returned token.

    `eos_logprobs[i]` is the reference log-probability of ending (the EOS set) at position i, or
    None when unknown; `final_eos_logprob` the same after the last returned token.
    Sampled answers also get, under the distribution an honest sampler draws from (temperature,
    then top-p): Σ mean and variance of log p(t), tokens outside the nucleus, each token's
    log-probability `sample_logprobs`, the log-probability of ending at the last position
    `end_logprob`, and Σ q(argmax), Σ q(argmax)(1 − q(argmax)).
    """

    logprobs: tuple[float, ...]
    ranks: tuple[int, ...]
    top1_logprobs: tuple[float, ...]
    eos_logprobs: tuple[float | None, ...]
    final_eos_logprob: float | None = None
    expected_logprob: float = 0.0
    logprob_var: float = 0.0
    # Σ (clipped deviation of log p(t) from its mean − its mean under q) and Σ its variance
    # (`prefill.Z_CLIP`); None where only the unclipped sums are known.
    clipped_dev: float | None = None
    clipped_var: float = 0.0
    outside_nucleus: int = 0
    sample_logprobs: tuple[float, ...] = ()
    end_logprob: float | None = None
    top1_expected: float = 0.0
    top1_var: float = 0.0


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


# --- copies: which request an answer was given for


def request_key(prompt_ids: Sequence[int], req: GenerateRequest) -> bytes:
    """Identity of what an honest answer depends on: prompt, and for sampling, seed,
    temperature and top-p (a greedy answer depends on the prompt alone)."""
    sampling = (req.seed, req.temperature, req.top_p) if req.temperature > 0 else ()
    blob = repr((tuple(prompt_ids), sampling)).encode()
    return hashlib.blake2b(blob, digest_size=16).digest()


# --- the checks


def check_shape(
    req: GenerateRequest,
    resp: GenerateResponse,
    *,
    eos_id: int | None = None,
    eos_ids: Collection[int] = (),
    text_before_last: str,
    text_full: str | None = None,
) -> Verdict | None:
    """Cheap checks needing no model. `text_before_last` = readable_text(token_ids[:-1]),
    `text_full` = readable_text(token_ids) (None skips the matched-stop check)."""
    eos = _eos_set(eos_id, eos_ids)
    n = len(resp.token_ids)
    if n > req.max_tokens:
        return Verdict.fail(
            "ignored_max_tokens", f"{n} tokens returned for max_tokens={req.max_tokens}"
        )
    if resp.finish_reason in ("cancelled", "error"):  # the engine failed: no lie, no answer
        return Verdict.fail("error", f"finish_reason={resp.finish_reason}")
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
    if any(t in eos for t in resp.token_ids[:-1]):
        return Verdict.fail("skipped_eos", "generation continued past an end-of-sequence token")
    if resp.finish_reason == "eos" and resp.token_ids[-1] not in eos:
        return Verdict.fail("bad_shape", "finish_reason=eos but the last token is not EOS")
    # A stop sequence completed before the last token means the miner kept generating past it.
    for s in req.stop:
        if s in text_before_last:
            return Verdict.fail("ignored_stop", f"stop sequence {s!r} crossed before the end")
    if resp.finish_reason == "stop":
        if not req.stop:
            return Verdict.fail("premature_end", "finish_reason=stop but no stop was requested")
        if text_full is not None and not any(s in text_full for s in req.stop):
            return Verdict.fail("premature_end", "finish_reason=stop without a stop sequence")
    return None


def _eos_set(eos_id: int | None, eos_ids: Collection[int]) -> frozenset[int]:
    return frozenset(eos_ids) | ({eos_id} if eos_id is not None else set())


@dataclass(frozen=True)
class Simulated:
    """An honest miner of the declared precision, simulated by the verifier: a copy of the
    reference in that precision scores the same tokens (raw logprob of each returned token and
    of the argmax). Its distance to the reference is the yardstick of the miner's claims."""

    logprobs: tuple[float, ...]
    top1_logprobs: tuple[float, ...]


# Per-token squared errors are clipped at LP_CLIP² times the answer's mean simulated noise: one
# near-tie token whose low-precision logprob moves by 0.5 nats would otherwise outweigh a
# thousand ordinary tokens in the per-miner evidence.
LP_CLIP = 4.0
# Per sampled token, nats² added to the variance of the sampling z-score. A peaked or near-flat
# distribution has a tiny Var_q[log p] but a heavy lower tail: one honestly sampled rare token
# then reads as five standard deviations or more (seen on the tiny experts; on a 150k-token
# vocabulary at temperature 1 the tail holds percents of the mass). With each deviation clipped
# at `prefill.Z_CLIP` nats, one such token moves z by at most ~4; a wrong model's tokens sit
# nats below their expectation, token after token.
Z_VAR_FLOOR = 1.0


def _gaps(req: GenerateRequest, ref: Reference, sim: Simulated | None) -> list[float]:
    """Per greedy token: how far it trails the argmax under the reference, or under the
    simulated miner when that is closer (a low-precision miner's own argmax near a tie)."""
    gaps = [top - lp for top, lp in zip(ref.top1_logprobs, ref.logprobs, strict=True)]
    if sim is not None:
        own = [top - lp for top, lp in zip(sim.top1_logprobs, sim.logprobs, strict=True)]
        gaps = [min(g, o) for g, o in zip(gaps, own, strict=True)]
    return gaps


def _errors(resp: GenerateResponse, ref: Reference, sim: Simulated | None) -> list[float]:
    """Per token: |claimed − reference|, or |claimed − simulated miner| when that is closer."""
    errs = [abs(c.logprob - r) for c, r in zip(resp.logprobs, ref.logprobs, strict=True)]
    if sim is not None:
        own = [abs(c.logprob - s) for c, s in zip(resp.logprobs, sim.logprobs, strict=True)]
        errs = [min(e, o) for e, o in zip(errs, own, strict=True)]
    return errs


def answer_stats(
    req: GenerateRequest,
    resp: GenerateResponse,
    ref: Reference,
    *,
    sim: Simulated | None = None,
    noise_floor: float = 0.0,
) -> dict[str, float]:
    """Everything the reference says about an answer, as numbers (see STAT_KEYS).

    `noise_floor`: nats² per token an honest miner may differ by beyond the simulation (for
    float32 on both sides, the whole yardstick)."""
    n = len(resp.token_ids)
    stats: dict[str, float] = {"tokens": float(n), "mean_logprob": sum(ref.logprobs) / n}
    if req.temperature == 0.0:
        gaps = [max(0.0, g) for g in _gaps(req, ref, sim)]
        stats.update(max_gap=max(gaps), greedy_n=float(n), gap_sum=sum(gaps))
    else:
        if ref.clipped_dev is not None:
            z_num, z_var = ref.clipped_dev, ref.clipped_var + n * Z_VAR_FLOOR
        else:
            z_num, z_var = (
                sum(ref.logprobs) - ref.expected_logprob,
                ref.logprob_var + n * Z_VAR_FLOOR,
            )
        stats.update(
            z=z_num / math.sqrt(z_var),
            sampled_n=float(n),
            z_num=z_num,
            z_var=z_var,
            top1_n=float(sum(1 for r in ref.ranks if r == 0)),
            top1_expected=ref.top1_expected,
            top1_var=ref.top1_var,
        )
        if ref.sample_logprobs:
            stats["sample_logprob"] = sum(ref.sample_logprobs)
        if ref.end_logprob is not None and resp.finish_reason == "eos":
            stats["end_logprob"] = ref.end_logprob
    if req.logprobs and resp.logprobs:
        claimed = [c.logprob for c in resp.logprobs]
        d_ref = [c - r for c, r in zip(claimed, ref.logprobs, strict=True)]
        d_sim = (
            d_ref if sim is None else [c - s for c, s in zip(claimed, sim.logprobs, strict=True)]
        )
        noise = (
            [0.0] * n
            if sim is None
            else [(s - r) ** 2 for s, r in zip(sim.logprobs, ref.logprobs, strict=True)]
        )
        cap = LP_CLIP**2 * (sum(noise) / n + noise_floor)
        stats.update(
            max_logprob_err=max(_errors(resp, ref, sim)),
            lp_n=float(n),
            lp_err_sum=sum(d_ref),
            lp_err_sq=sum(min(d * d, cap) for d in d_ref),
            lp_sim_err_sq=sum(min(d * d, cap) for d in d_sim),
            lp_noise_sq=sum(min(x, cap) for x in noise) + n * noise_floor,
        )
    return stats


def check_reference(
    req: GenerateRequest,
    resp: GenerateResponse,
    ref: Reference,
    *,
    eos_id: int | None = None,
    eos_ids: Collection[int] = (),
    th: Thresholds,
    sim: Simulated | None = None,
    noise_floor: float = 0.0,
) -> Verdict:
    """Plausibility, the end of the answer and claimed logprobs against the reference prefill
    (and the simulated miner of the declared precision, when there is one)."""
    eos = _eos_set(eos_id, eos_ids)
    n = len(resp.token_ids)
    if len(ref.logprobs) != n:
        raise ValueError(f"reference covers {len(ref.logprobs)} tokens, response has {n}")
    stats = answer_stats(req, resp, ref, sim=sim, noise_floor=noise_floor)
    ends = resp.token_ids[-1] in eos
    if req.temperature == 0.0:
        gaps = _gaps(req, ref, sim)
        worst = max(range(n), key=gaps.__getitem__)
        if gaps[worst] > th.greedy_max_gap:
            # The specific failures: an argmax EOS replaced by another token, or an EOS that
            # was not the argmax (an answer cut short).
            eos_lp = ref.eos_logprobs[worst]
            if worst == n - 1 and ends:
                return Verdict.fail(
                    "premature_end",
                    f"greedy end-of-sequence is {gaps[worst]:.3f} nats below the argmax",
                    **stats,
                )
            if eos_lp is not None and eos_lp >= ref.top1_logprobs[worst] - th.greedy_max_gap:
                return Verdict.fail("skipped_eos", f"greedy EOS skipped at token {worst}", **stats)
            return Verdict.fail(
                "implausible_tokens",
                f"greedy token {worst} is {gaps[worst]:.3f} nats below the argmax "
                f"(rank {ref.ranks[worst]})",
                **stats,
            )
    else:
        if ends and ref.end_logprob is not None and ref.end_logprob < th.end_min_logprob:
            return Verdict.fail(
                "premature_end",
                f"ended where sampling ends with probability {math.exp(ref.end_logprob):.1e}",
                **stats,
            )
        if ref.outside_nucleus > th.max_outside_nucleus:
            return Verdict.fail(
                "implausible_tokens",
                f"{ref.outside_nucleus} tokens outside the top_p={req.top_p} nucleus",
                **stats,
            )
        if stats["z"] < th.sampled_min_z:
            return Verdict.fail(
                "implausible_tokens",
                f"tokens are {-stats['z']:.1f} standard deviations less likely than honest "
                "sampling",
                **stats,
            )
        if req.temperature <= 1.0:
            for i, (t, eos_lp) in enumerate(zip(resp.token_ids, ref.eos_logprobs, strict=True)):
                if t not in eos and eos_lp is not None and eos_lp >= th.eos_sure_logprob:
                    return Verdict.fail("skipped_eos", f"sure EOS skipped at token {i}", **stats)
    if "max_logprob_err" in stats and stats["max_logprob_err"] > th.logprob_tol:
        errs = _errors(resp, ref, sim)
        i = errs.index(max(errs))
        return Verdict.fail(
            "logprob_mismatch",
            f"token {i}: claimed {resp.logprobs[i].logprob:.4f}, reference {ref.logprobs[i]:.4f}",
            **stats,
        )
    return Verdict(True, "ok", "", stats)


def label_copy(
    v: Verdict, copied: bool, th: Thresholds = Thresholds(), *, independent: bool = True
) -> Verdict:
    """An answer identical to one given for another request is a copy when it also failed (the
    copy is the root cause), or when an honest sampler would repeat it with negligible
    probability. Identical greedy answers alone are no proof: small models answer different
    prompts alike ("= = =", blank lines), and the declared model's own answer passes.

    `independent`: the two requests drew independent randomness (different seeds, or no seed).
    Under one seed an honest sampler's draws are the same noise whatever the prompt (Gumbel or
    inverse-CDF sampling), so near-flat distributions give the same tokens for different
    prompts: improbability then proves nothing."""
    if not copied:
        return v
    if not v.ok and v.reason in ("implausible_tokens", "logprob_mismatch"):
        return Verdict.fail(
            "copycat", f"identical to an answer to another request; {v.detail}", **v.stats
        )
    lq = v.stats.get("sample_logprob")
    if v.ok and independent and lq is not None and lq < th.copy_max_logprob:
        return Verdict.fail(
            "copycat",
            f"identical to an answer to another request; an honest sampler repeats it with "
            f"probability {math.exp(lq):.1e}",
            **v.stats,
        )
    return v


def check_text(v: Verdict, text: str, expected: str | None) -> Verdict:
    """Last: a plausible answer whose text is not its tokens' text (an advertisement)."""
    if not v.ok or expected is None or text == expected:
        return v
    at = next((i for i, (a, b) in enumerate(zip(text, expected, strict=False)) if a != b), None)
    at = min(len(text), len(expected)) if at is None else at
    return Verdict.fail(
        "text_mismatch",
        f"text differs from the decoded tokens at character {at} "
        f"({len(text)} characters sent, {len(expected)} derived)",
        **v.stats,
    )


def precheck(
    req: GenerateRequest,
    resp: GenerateResponse,
    *,
    known_model: bool,
    eos_id: int | None = None,
    eos_ids: Collection[int] = (),
    text_before_last: str,
    text_full: str | None = None,
    th: Thresholds = Thresholds(),
) -> Verdict | None:
    """Everything before the prefill; None means "needs the reference model"."""
    shape = check_shape(
        req,
        resp,
        eos_id=eos_id,
        eos_ids=eos_ids,
        text_before_last=text_before_last,
        text_full=text_full,
    )
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
    eos_id: int | None = None,
    eos_ids: Collection[int] = (),
    text_before_last: str,
    text_full: str | None = None,
    expected: str | None = None,
    copied: bool = False,
    th: Thresholds = Thresholds(),
    sim: Simulated | None = None,
    noise_floor: float = 0.0,
) -> Verdict:
    """The full verdict. `ref` None means the declared weights are not in the registry;
    `expected` None skips the text check (callers without a tokenizer)."""
    early = precheck(
        req,
        resp,
        known_model=ref is not None,
        eos_id=eos_id,
        eos_ids=eos_ids,
        text_before_last=text_before_last,
        text_full=text_full,
        th=th,
    )
    if early is not None:
        return early
    assert ref is not None
    v = check_reference(
        req, resp, ref, eos_id=eos_id, eos_ids=eos_ids, th=th, sim=sim, noise_floor=noise_floor
    )
    return check_text(label_copy(v, copied, th), resp.text, expected)
