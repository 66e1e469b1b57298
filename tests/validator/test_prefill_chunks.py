"""The reference prefill reads logits a bounded chunk at a time: any chunk size, same Reference."""

from __future__ import annotations

import math

from subnet.validator.prefill import reference_prefill, simulate


def test_chunked_prefill_equals_one_chunk(by_domain):
    expert = by_domain["math"]
    tok = expert.tokenizer
    prompts = [tok.encode(t, add_special_tokens=False) for t in ("1 + 2 =", "x = 3 * (4 - 1)")]
    answers = [tok.encode(" 3 and then some", add_special_tokens=False)[:7],
               tok.encode(" 9; y = x", add_special_tokens=False)[:5]]  # fmt: skip
    args = (expert.model, prompts, answers, [0.0, 0.8], [1.0, 0.9], expert.eos_ids, 512)
    whole = reference_prefill(*args, max_rows=4096)
    for rows in (1, 2, 3):
        chunked = reference_prefill(*args, max_rows=rows)
        for a, b in zip(whole, chunked, strict=True):
            assert a.ranks == b.ranks and len(a.eos_logprobs) == len(b.eos_logprobs)
            for x, y in ((a.logprobs, b.logprobs), (a.top1_logprobs, b.top1_logprobs),
                         (a.eos_logprobs, b.eos_logprobs), (a.sample_logprobs, b.sample_logprobs)):  # fmt: skip
                assert all(math.isclose(u, v, abs_tol=1e-4) for u, v in zip(x, y, strict=True))
            assert math.isclose(a.final_eos_logprob, b.final_eos_logprob, abs_tol=1e-4)
            assert math.isclose(a.logprob_var, b.logprob_var, rel_tol=1e-4, abs_tol=1e-4)
            assert a.outside_nucleus == b.outside_nucleus
            if a.end_logprob is not None:
                assert math.isclose(a.end_logprob, b.end_logprob, abs_tol=1e-4)
    assert whole[1].sample_logprobs and whole[0].sample_logprobs == ()  # greedy has none
    sims = [simulate(expert.model, prompts, answers, max_rows=r) for r in (1, 4096)]
    for a, b in zip(*sims, strict=True):
        assert all(
            math.isclose(u, v, abs_tol=1e-4) for u, v in zip(a.logprobs, b.logprobs, strict=True)
        )
