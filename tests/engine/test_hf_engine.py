"""HFEngine: continuous batching gives exactly what the model gives one request at a time."""

from __future__ import annotations

import asyncio

import pytest
import torch

from protocol import GenerateChunk, GenerateRequest, GenerateResponse, ScoreRequest
from subnet.engine.base import EngineFull, RequestRejected
from subnet.engine.hf import HFEngine
from subnet.engine.prompt import encode_prompt
from subnet.engine.scoring import score_batch

PROMPTS = [
    "12 + 7 =",
    "def parse(self, text):\n",
    "(3 + 4) * 2 = 14\n5 * 6 =",
    "import os\nimport sys\n\nclass Reader:\n    def __init__(self, path):\n        self.",
    "x",
    "99 - 45 = 54\n17 + 26 =",
]


@pytest.fixture
async def engine(math_expert):
    eng = HFEngine.create(math_expert, max_batch=4, max_queue=16, max_prefill=2)
    await eng.start()
    yield eng
    await eng.stop(drain_timeout=5)


def reference(expert, req: GenerateRequest) -> list[int]:
    ids = encode_prompt(expert.tokenizer, req)
    out = expert.model.generate(torch.tensor([ids]), max_new_tokens=req.max_tokens, do_sample=False)
    return out[0, len(ids) :].tolist()


async def test_concurrent_greedy_equals_generate(engine, math_expert):
    # 6 requests, batch of 4, 2 joining per step: rows join and leave mid-flight.
    reqs = [GenerateRequest(prompt=p, max_tokens=3 + 5 * i) for i, p in enumerate(PROMPTS)]
    results = await asyncio.gather(*(engine.complete(r) for r in reqs))
    for req, res in zip(reqs, results, strict=True):
        ref = reference(math_expert, req)
        # generate stops at EOS too; our token list includes the EOS token like generate's does
        assert list(res.token_ids) == ref, req.prompt
        assert res.finish_reason in ("length", "eos")
        assert res.request_id == req.request_id
        assert res.usage.completion_tokens == len(ref)
        assert res.text == math_expert.tokenizer.decode(ref, skip_special_tokens=True)
    assert engine.active == 0 and engine.queue_depth == 0


async def test_logprobs_match_a_direct_forward(engine, math_expert):
    req = GenerateRequest(prompt=PROMPTS[2], max_tokens=12, top_logprobs=3)
    res = await engine.complete(req)
    prompt = encode_prompt(math_expert.tokenizer, req)
    direct = score_batch(math_expert.model, [prompt + list(res.token_ids)], [len(prompt)], 3)[0]
    for lp, want, top in zip(res.logprobs, direct.logprobs, direct.top, strict=True):
        assert abs(lp.logprob - want) < 1e-4
        assert [t for t, _ in lp.top] == [t for t, _ in top]
    assert all(r == 0 for r in direct.ranks)  # greedy picks the argmax every time


async def test_streamed_chunks_add_up_to_the_response(engine):
    req = GenerateRequest(prompt=PROMPTS[0], max_tokens=10)
    chunks, final = [], None
    async for item in engine.generate(req):
        if isinstance(item, GenerateChunk):
            chunks.append(item)
        else:
            final = item
    assert isinstance(final, GenerateResponse)
    assert [t for c in chunks for t in c.token_ids] == list(final.token_ids)
    assert "".join(c.text for c in chunks) == final.text
    assert [c.index for c in chunks] == sorted(c.index for c in chunks)
    assert all(len(c.token_ids) == 1 for c in chunks)  # no interval: every token at once


async def test_stream_interval_holds_tokens_between_chunks(math_expert):
    interval = 0.5
    eng = HFEngine.create(math_expert, max_batch=2, max_queue=2, stream_interval_s=interval)
    await eng.start()
    try:
        req = GenerateRequest(prompt=PROMPTS[1], max_tokens=24)
        chunks, final = [], None
        started = asyncio.get_running_loop().time()
        async for item in eng.generate(req):
            if isinstance(item, GenerateChunk):
                chunks.append(item)
            else:
                final = item
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        await eng.stop(drain_timeout=5)
    assert final is not None and final.usage.completion_tokens == 24
    assert len(chunks[0].token_ids) == 1  # the first token is never held
    # At most one chunk per interval after the first, plus the one that ends the stream.
    assert len(chunks) <= 2 + int(elapsed / interval)
    assert [t for c in chunks for t in c.token_ids] == list(final.token_ids)
    assert "".join(c.text for c in chunks) == final.text
    assert [c.index for c in chunks] == [sum(len(c.token_ids) for c in chunks[:i]) for i in
                                         range(len(chunks))]  # fmt: skip


def test_stream_interval_is_bounded(math_expert):
    with pytest.raises(ValueError, match="stream_interval_s"):
        HFEngine.create(math_expert, stream_interval_s=-0.1)


async def test_seeded_sampling_ignores_batch_mates(engine):
    req = GenerateRequest(prompt=PROMPTS[1], max_tokens=12, temperature=1.2, top_p=0.9, seed=7)
    alone = await engine.complete(req)
    mates = [GenerateRequest(prompt=p, max_tokens=8, temperature=1.0) for p in PROMPTS[2:5]]
    crowded, *_ = await asyncio.gather(engine.complete(req), *(engine.complete(m) for m in mates))
    assert crowded.token_ids == alone.token_ids
    other = await engine.complete(
        GenerateRequest(prompt=PROMPTS[1], max_tokens=12, temperature=1.2, top_p=0.9, seed=8)
    )
    assert other.token_ids != alone.token_ids


async def test_stop_sequence_truncates_text(engine, math_expert):
    free = await engine.complete(GenerateRequest(prompt=PROMPTS[5], max_tokens=16))
    stop = free.text[3:5]
    assert len(stop) == 2 and free.text.find(stop) >= 0
    res = await engine.complete(GenerateRequest(prompt=PROMPTS[5], max_tokens=16, stop=(stop,)))
    assert res.finish_reason == "stop"
    assert res.text == free.text[: free.text.find(stop)]
    assert list(res.token_ids) == list(free.token_ids[: len(res.token_ids)])


async def test_cancel_frees_the_slot(math_expert):
    eng = HFEngine.create(math_expert, max_batch=1, max_queue=0)
    await eng.start()
    try:
        handle = eng.submit(GenerateRequest(prompt="1 + 1 =", max_tokens=400))
        with pytest.raises(EngineFull):
            eng.submit(GenerateRequest(prompt="2 + 2 =", max_tokens=4))
        async for item in handle:
            assert isinstance(item, GenerateChunk)
            break  # the consumer walks away after the first chunk
        await handle.result()
        assert handle.response.finish_reason == "cancelled"
        assert handle.response.usage.completion_tokens < 400
        res = await eng.complete(GenerateRequest(prompt="2 + 2 =", max_tokens=4))
        assert res.usage.completion_tokens == 4
        assert eng.active == 0
    finally:
        await eng.stop(drain_timeout=5)


async def test_too_long_for_context_is_rejected(engine):
    with pytest.raises(RequestRejected):
        engine.submit(GenerateRequest(prompt="1 + 1 = 2\n" * 200, max_tokens=64))


async def test_score_matches_score_batch(engine, math_expert):
    ids = math_expert.tokenizer.encode("12 + 30 = 42\n", add_special_tokens=False)
    got = await engine.score(ScoreRequest(token_ids=tuple(ids), start=2, top_k=2))
    want = score_batch(math_expert.model, [ids], [2], top_k=2)[0]
    assert list(got.ranks) == want.ranks
    assert max(abs(a - b) for a, b in zip(got.logprobs, want.logprobs, strict=True)) < 1e-5
    assert len(got.top) == len(ids) - 2 and len(got.top[0]) == 2


def test_incremental_detokenization_matches_a_full_decode(math_expert):
    from subnet.engine.sequence import Seq

    tok = math_expert.tokenizer
    text = "héllo wörld: ∑ x² → 42 ✓ def f(): return 'ünïcode' 😀 end"
    ids = tok.encode(text, add_special_tokens=False)
    seq = Seq(req=GenerateRequest(prompt="x"), handle=None, prompt=[1], submitted=0.0, gen=None)
    for t in ids:
        seq.out.append(t)
        seq.detokenize(tok)
        assert "\ufffd" not in seq.text  # half characters are held back, never streamed
        assert text.startswith(seq.text)
    assert seq.text == text == tok.decode(ids)


async def test_grouped_prefill_with_a_row_that_ends_at_once(math_expert):
    from subnet.engine.sequence import prefill_groups

    eng = HFEngine.create(math_expert, max_batch=8, max_queue=8, max_prefill=8)
    await eng.start()
    try:
        # Similar lengths share one padded prefill; the max_tokens=1 row leaves before the join.
        prompts = ["1 + 2 =", "33 + 4 =", "5 + 66 =", "70 + 8 =", "(1 + 2) * 3 = 9\n4 * 4 ="]
        reqs = [
            GenerateRequest(prompt=p, max_tokens=n)
            for p, n in zip(prompts, (1, 5, 9, 3, 6), strict=True)
        ]
        lens = sorted(len(encode_prompt(math_expert.tokenizer, r)) for r in reqs)
        assert any(len(g) > 1 for g in prefill_groups([_seq(n) for n in lens]))
        with eng._wake:  # (a re-entrant lock) the worker sees all five newcomers in one step
            handles = [eng.submit(r) for r in reqs]
        results = await asyncio.gather(*(h.result() for h in handles))
        for req, res in zip(reqs, results, strict=True):
            assert list(res.token_ids) == reference(math_expert, req)
    finally:
        await eng.stop(drain_timeout=5)


def _seq(n: int):
    from subnet.engine.sequence import Seq

    return Seq(req=GenerateRequest(prompt="x"), handle=None, prompt=[0] * n, submitted=0, gen=None)


def test_prefill_groups_pad_when_padding_costs_less_than_a_forward():
    from subnet.engine.sequence import PREFILL_FORWARD_TOKENS, prefill_groups

    def sizes(lens):
        return [[len(s.prompt) for s in g] for g in prefill_groups([_seq(n) for n in lens])]

    # Short prompts of different lengths share a forward: padding 20 -> 90 is 70 tokens' work,
    # less than what a second forward costs.
    assert sizes([20, 90]) == [[20, 90]]
    # Long prompts group only within the slack: 500 tokens of padding is more than a forward.
    assert sizes([500, 1000]) == [[500], [1000]]
    assert sizes([900, 1000]) == [[900, 1000]]
    # The padding bound is the larger of the two (never below one forward's worth).
    n = PREFILL_FORWARD_TOKENS
    assert sizes([1, 1 + n]) == [[1, 1 + n]] and sizes([1, 2 + n]) == [[1], [2 + n]]
