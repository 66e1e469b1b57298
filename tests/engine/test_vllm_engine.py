"""VLLMEngine: the reference engine's protocol on vLLM, checked against HFEngine and the verifier.

One vLLM engine (one engine-core process) serves the whole module; the reference is HFEngine on
the same expert directory, float32 on CPU, where greedy tokens match exactly. Skipped without
vLLM (`bash scripts/test_vllm.sh` installs it and runs these).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio
import torch

from protocol import GenerateChunk, GenerateRequest, GenerateResponse, ScoreRequest
from subnet.engine import vllm_procs
from subnet.engine.base import EngineFull, RequestRejected
from subnet.engine.hf import HFEngine
from subnet.engine.prompt import encode_prompt
from subnet.engine.scoring import score_batch
from tests.vllm_support import hd32_experts, needs_vllm

pytestmark = [*needs_vllm, pytest.mark.asyncio(loop_scope="module")]

PROMPTS = [
    "12 + 7 =",
    "(3 + 4) * 2 = 14\n5 * 6 =",
    "99 - 45 = 54\n17 + 26 =",
    "x",
    "def parse(self, text):\n",
    "import os\nimport sys\n\nclass Reader:\n    def __init__(self, path):\n        self.",
]
MAX_BATCH, MAX_QUEUE = 4, 4


@pytest.fixture(scope="module")
def experts():
    from subnet.engine.loading import load_expert

    torch.set_num_threads(1)
    paths = hd32_experts()
    return paths, load_expert(paths["math"], device="cpu")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engines(experts):
    from subnet.engine.vllm_engine import VLLMEngine
    from subnet.engine.vllm_setup import load_expert_meta

    paths, hf_expert = experts
    meta = load_expert_meta(paths["math"], device="cpu")
    vllm = VLLMEngine.create(meta, max_batch=MAX_BATCH, max_queue=MAX_QUEUE)
    await vllm.start()
    ref = HFEngine.create(hf_expert, max_batch=8, max_queue=64)
    await ref.start()
    yield vllm, ref
    await ref.stop(drain_timeout=5)
    await vllm.stop(drain_timeout=5)


async def both(engines, reqs):
    vllm, ref = engines
    got = []
    for i in range(0, len(reqs), MAX_BATCH + MAX_QUEUE):  # stay within the vLLM engine's bound
        part = reqs[i : i + MAX_BATCH + MAX_QUEUE]
        got += await asyncio.gather(*(vllm.complete(r) for r in part))
    want = await asyncio.gather(*(ref.complete(r) for r in reqs))
    return got, want


async def test_card_says_what_serves_it(engines, experts):
    vllm, _ = engines
    assert vllm.card.engine.startswith("vllm/") and vllm.card.engine.endswith("cpu raw_logprobs")
    assert vllm.card.weights_hash == experts[1].card.weights_hash
    assert vllm.card.capacity == MAX_BATCH and vllm.eos_ids == experts[1].eos_ids
    # The declared precision (the verifier's tolerances follow it) is the one vLLM serves in.
    assert vllm.card.dtype == experts[1].card.dtype == "float32"
    from subnet.engine.vllm_engine import VLLMEngine, VLLMOptions

    bf16 = VLLMEngine.create(vllm.expert, options=VLLMOptions(dtype="bfloat16"))
    assert bf16.card.dtype == bf16._engine_args()["dtype"] == "bfloat16"


async def test_greedy_equals_the_reference_engine(engines, experts):
    reqs = [
        GenerateRequest(prompt=p, max_tokens=5 + 17 * i, top_logprobs=3)
        for i, p in enumerate(PROMPTS)
    ]
    got, want = await both(engines, reqs)
    for req, g, w in zip(reqs, got, want, strict=True):
        assert g.token_ids == w.token_ids, req.prompt
        assert (g.text, g.finish_reason, g.usage) == (w.text, w.finish_reason, w.usage)
        assert g.request_id == req.request_id
        for a, b in zip(g.logprobs, w.logprobs, strict=True):
            assert a.token_id == b.token_id and a.logprob == pytest.approx(b.logprob, abs=1e-4)
            assert [t for t, _ in a.top] == [t for t, _ in b.top]
    # Raw logprobs: those of a plain forward, whatever vLLM's batching did.
    tok, model = experts[1].tokenizer, experts[1].model
    prompt = encode_prompt(tok, reqs[1])
    direct = score_batch(model, [prompt + list(got[1].token_ids)], [len(prompt)])[0]
    assert [lp.logprob for lp in got[1].logprobs] == pytest.approx(direct.logprobs, abs=1e-4)


async def test_stop_sequences_and_eos_end_as_the_reference_ends(engines):
    reqs = [GenerateRequest(prompt=p, max_tokens=40, stop=("\n", "= =")) for p in PROMPTS]
    reqs += [GenerateRequest(prompt=p, max_tokens=40, stop=("  ",)) for p in PROMPTS]
    got, want = await both(engines, reqs)
    for g, w in zip(got, want, strict=True):
        assert (g.token_ids, g.text, g.finish_reason) == (w.token_ids, w.text, w.finish_reason)
    assert {g.finish_reason for g in got} >= {"stop"}


async def test_seeded_sampling_is_reproducible_and_seeds_differ(engines):
    vllm, _ = engines

    def req(seed):
        return GenerateRequest(prompt=PROMPTS[1], max_tokens=48, temperature=1.0, seed=seed)

    a, b, c = await asyncio.gather(
        vllm.complete(req(5)), vllm.complete(req(5)), vllm.complete(req(6))
    )
    assert a.token_ids == b.token_ids and a.text == b.text
    assert a.token_ids != c.token_ids
    assert all(lp.logprob <= 0.0 for lp in a.logprobs)


async def test_stream_chunks_add_up_to_the_response(engines):
    vllm, _ = engines
    chunks, final = [], None
    async for item in vllm.generate(GenerateRequest(prompt=PROMPTS[0], max_tokens=30)):
        if isinstance(item, GenerateChunk):
            chunks.append(item)
        else:
            final = item
    assert isinstance(final, GenerateResponse) and len(final.token_ids) == 30
    assert [t for c in chunks for t in c.token_ids] == list(final.token_ids)
    assert "".join(c.text for c in chunks) == final.text
    assert [c.index for c in chunks] == [
        sum(len(x.token_ids) for x in chunks[:i]) for i in range(len(chunks))
    ]
    assert len(chunks) > 1  # streamed, not sent in one piece at the end


async def test_score_matches_score_batch(engines, experts):
    vllm, _ = engines
    tok, model = experts[1].tokenizer, experts[1].model
    ids = tok.encode("12 + 30 = 42\n7 * 8 = 56\n", add_special_tokens=False)
    got = await vllm.score(ScoreRequest(token_ids=tuple(ids), start=3, top_k=4))
    want = score_batch(model, [ids], [3], top_k=4)[0]
    assert list(got.logprobs) == pytest.approx(want.logprobs, abs=1e-4)
    assert list(got.ranks) == want.ranks
    assert [[t for t, _ in row] for row in got.top] == [[t for t, _ in row] for row in want.top]
    with pytest.raises(RequestRejected, match="vocabulary"):
        await vllm.score(ScoreRequest(token_ids=(1, 10**6)))
    with pytest.raises(RequestRejected, match="context"):
        await vllm.score(ScoreRequest(token_ids=tuple([5] * (vllm.card.max_context + 1))))


async def test_cancel_aborts_in_vllm_and_frees_the_slot(engines):
    vllm, _ = engines
    handle = vllm.submit(GenerateRequest(prompt="x", max_tokens=400))
    async for item in handle:
        assert isinstance(item, GenerateChunk)
        break  # the consumer leaves: the handle cancels itself
    deadline = time.monotonic() + 10
    while (vllm.active or vllm._llm.get_num_unfinished_requests()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert vllm.active == 0 and vllm._llm.get_num_unfinished_requests() == 0
    res = await vllm.complete(GenerateRequest(prompt="x", max_tokens=3))
    assert res.finish_reason == "length"


async def test_bounds_refuse_at_once(engines):
    vllm, _ = engines
    with pytest.raises(RequestRejected, match="context"):
        vllm.submit(GenerateRequest(prompt="x", max_tokens=vllm.card.max_context))
    handles = [vllm.submit(GenerateRequest(prompt="x", max_tokens=200)) for _ in range(8)]
    assert vllm.active == MAX_BATCH and vllm.queue_depth == MAX_QUEUE
    with pytest.raises(EngineFull):
        vllm.submit(GenerateRequest(prompt="x", max_tokens=1))
    for h in handles:
        h.cancel()
    results = [await h.result() for h in handles]
    assert {r.finish_reason for r in results} == {"cancelled"}
    assert vllm.active == 0 and vllm.queue_depth == 0


async def test_honest_vllm_answers_verify_with_no_false_positive(engines, experts):
    """Greedy and sampled answers of several hundred tokens from vLLM, verified by the
    validator's own float32 transformers reference built from the same directory."""
    from subnet.validator.verifier import ExpertRegistry, Item, Verifier

    vllm, _ = engines
    paths, hf_expert = experts
    reqs = []
    for i, p in enumerate(PROMPTS):
        reqs.append(GenerateRequest(prompt=p, max_tokens=300))
        reqs.append(GenerateRequest(prompt=p, max_tokens=120, stop=("\n\n",)))
        for t, top_p in ((0.7, 1.0), (1.0, 1.0), (1.0, 0.9)):
            reqs.append(
                GenerateRequest(prompt=p, max_tokens=300, temperature=t, top_p=top_p, seed=100 + i)
            )
    answers = []
    for i in range(0, len(reqs), MAX_BATCH + MAX_QUEUE):
        part = reqs[i : i + MAX_BATCH + MAX_QUEUE]
        answers += await asyncio.gather(*(vllm.complete(r) for r in part))
    verifier = Verifier(await asyncio.to_thread(ExpertRegistry.load_dir, paths["math"].parent))
    items = [Item(vllm.card.weights_hash, r, a) for r, a in zip(reqs, answers, strict=True)]
    verdicts = await asyncio.to_thread(verifier.verify_many, items)
    failed = [(r, v) for r, v in zip(reqs, verdicts, strict=True) if not v.ok]
    assert not failed, failed[:3]
    assert sum(len(a.token_ids) for a in answers) > 5000
    # The same answers under another expert's card are caught (the check can fail).
    other = next(h for h in verifier.registry.experts if h != vllm.card.weights_hash)
    wrong = verifier.verify_many([Item(other, r, a) for r, a in zip(reqs, answers, strict=True)])
    assert sum(not v.ok for v in wrong) >= 0.9 * len(wrong)


async def test_stop_drains_then_ends_every_vllm_process(engines):
    """Last in the module: stopping the shared engine lets a running request finish, then
    leaves no process of vLLM behind."""
    vllm, _ = engines
    procs = list(vllm._procs)
    assert {p.name() for p in procs} >= {"VLLM::EngineCore"}
    running = asyncio.ensure_future(vllm.complete(GenerateRequest(prompt="x", max_tokens=20)))
    await asyncio.sleep(0)
    await vllm.stop(drain_timeout=60)
    assert (await running).finish_reason == "length"
    assert not [p for p in procs if vllm_procs._running(p)]
