"""One failing request never fails its batch mates; bad input is refused before the model; a
model that ends on either of two EOS ids stops on both (engine and honest generator)."""

from __future__ import annotations

import asyncio
import functools
import json

import pytest
import torch

from protocol import GenerateRequest
from subnet.engine.archs import build_random_expert
from subnet.engine.base import RequestRejected
from subnet.engine.experts import CARD_FILE
from subnet.engine.hf import HFEngine
from subnet.engine.loading import load_expert
from subnet.engine.prompt import encode_prompt

CLEAN = ["x = 1", "def parse(self, text):\n", "12 + 7 =", "for i in range(3):\n    print(i)"]


@pytest.fixture(scope="module")
def llama_dir(tiny_experts, tmp_path_factory):
    return build_random_expert("llama", tiny_experts["code"], tmp_path_factory.mktemp("llama"))


def reference(expert, req: GenerateRequest) -> list[int]:
    ids = encode_prompt(expert.tokenizer, req)
    out = expert.model.generate(
        torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        max_new_tokens=req.max_tokens,
        do_sample=False,
        eos_token_id=sorted(expert.eos_ids),
        pad_token_id=expert.tokenizer.pad_token_id,
    )
    return out[0, len(ids) :].tolist()


async def all_at_once(expert, reqs, **engine_kw):
    """Submit every request before the worker's next step, so they share prefill groups."""
    engine = HFEngine.create(expert, max_batch=8, max_queue=8, max_prefill=8, **engine_kw)
    await engine.start()
    try:
        with engine._wake:  # (a re-entrant lock) the worker sees all newcomers in one step
            handles = [engine.submit(r) for r in reqs]
        return await asyncio.gather(*(h.result() for h in handles))
    finally:
        await engine.stop(drain_timeout=5)


def roundtrip_token(tok, avoid: set[int]) -> int:
    """A token id that appears nowhere in `avoid` and encodes back to itself, alone or twice."""
    for t in range(len(tok) - 1, 2, -1):
        once, twice = ([t] * n for n in (1, 2))
        if t not in avoid and all(
            tok.encode(tok.decode(ids), add_special_tokens=False) == ids for ids in (once, twice)
        ):
            return t
    raise AssertionError("no round-tripping token")


def test_a_row_with_non_finite_logits_ends_in_error_alone(llama_dir):
    expert = load_expert(llama_dir, device="cpu")
    tok = expert.tokenizer
    clean = [GenerateRequest(prompt=p, max_tokens=12) for p in CLEAN]
    refs = [reference(expert, r) for r in clean]
    used = {t for r, ref in zip(clean, refs, strict=True) for t in encode_prompt(tok, r) + ref}
    bad = roundtrip_token(tok, used)
    # A corrupted checkpoint: one token's input embedding is NaN (untied from the output head
    # first, or every row's logit for that token would be NaN too).
    emb = expert.model.get_input_embeddings()
    emb.weight = torch.nn.Parameter(emb.weight.detach().clone(), requires_grad=False)
    emb.weight[bad] = float("nan")
    poisoned = [
        GenerateRequest(prompt=tok.decode([bad]), max_tokens=12),
        GenerateRequest(prompt=tok.decode([bad, bad]), max_tokens=12, temperature=1.0, seed=3),
    ]
    answers = asyncio.run(all_at_once(expert, [*clean[:2], *poisoned, *clean[2:]]))
    assert [a.finish_reason for a in answers[2:4]] == ["error", "error"]
    for ref, a in zip(refs, answers[:2] + answers[4:], strict=True):
        assert a.finish_reason == "length" and list(a.token_ids) == ref


def test_a_prompt_the_model_cannot_take_fails_alone(llama_dir, monkeypatch):
    expert = load_expert(llama_dir, device="cpu")
    tok = expert.tokenizer
    clean = [GenerateRequest(prompt=p, max_tokens=10) for p in CLEAN]
    refs = [reference(expert, r) for r in clean]
    marker = roundtrip_token(tok, {t for r in clean for t in encode_prompt(tok, r)})
    forward = expert.model.forward

    @functools.wraps(forward)  # keeps the signature the engine reads its cache argument from
    def refuses_marker(*args, input_ids=None, **kwargs):
        if input_ids is not None and input_ids.shape[1] > 1 and (input_ids == marker).any():
            raise RuntimeError("this prompt breaks the model")
        return forward(*args, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(expert.model, "forward", refuses_marker)
    broken = GenerateRequest(prompt=tok.decode([marker, marker]), max_tokens=10)
    answers = asyncio.run(all_at_once(expert, [clean[0], broken, *clean[1:]]))
    assert answers[1].finish_reason == "error"
    for ref, a in zip(refs, [answers[0], *answers[2:]], strict=True):
        assert a.finish_reason == "length" and list(a.token_ids) == ref


async def test_requests_past_a_learned_position_table_are_rejected(tiny_experts, tmp_path):
    # gpt2's positions are a 64-row table; its card claims 512 tokens of context.
    path = build_random_expert("gpt2", tiny_experts["code"], tmp_path / "gpt2", max_context=64)
    card = json.loads((path / CARD_FILE).read_text())
    (path / CARD_FILE).write_text(json.dumps({**card, "max_context": 512}))
    engine = HFEngine.create(load_expert(path, device="cpu"), max_batch=2)
    await engine.start()
    try:
        with pytest.raises(RequestRejected, match="context of 64"):
            engine.submit(GenerateRequest(prompt="x = 1", max_tokens=70))
        ok = await engine.complete(GenerateRequest(prompt="x = 1", max_tokens=40))
        assert ok.finish_reason in ("length", "eos")
    finally:
        await engine.stop(drain_timeout=5)


@pytest.fixture(scope="module")
def two_eos(tiny_experts, tmp_path_factory):
    """A model whose generation config lists two EOS ids (as Qwen2.5- and Llama-3-Instruct
    ship): the tokenizer's, and a token it greedily produces a few tokens into an answer."""
    root = tmp_path_factory.mktemp("two-eos")
    one = load_expert(build_random_expert("llama", tiny_experts["code"], root / "one"))
    req = GenerateRequest(prompt=CLEAN[1], max_tokens=16, logprobs=True)
    free = reference(one, req)
    at = next(i for i in range(3, len(free)) if free[i] not in free[:i])
    eos = [one.tokenizer.eos_token_id, free[at]]
    path = build_random_expert("llama", tiny_experts["code"], root / "two", eos_ids=eos)
    return load_expert(path, device="cpu"), req, free[: at + 1]


def test_two_eos_ids_end_engine_and_honest_answers(two_eos):
    from subnet.validator.honest import honest_generate

    expert, req, want = two_eos
    assert expert.eos_ids == frozenset({expert.tokenizer.eos_token_id, want[-1]})
    assert expert.tokenizer.eos_token_id != want[-1]
    (res,) = asyncio.run(all_at_once(expert, [req]))
    assert list(res.token_ids) == want and res.finish_reason == "eos"
    honest = honest_generate(expert, req)
    assert list(honest.token_ids) == want and honest.finish_reason == "eos"


def test_two_eos_answers_verify(two_eos):
    from subnet.validator.verifier import ExpertRegistry, Item, Verifier

    expert, req, _ = two_eos
    (res,) = asyncio.run(all_at_once(expert, [req]))
    registry = ExpertRegistry.load_dir(expert.path)
    (verdict,) = Verifier(registry).verify_many([Item(expert.card.weights_hash, req, res)])
    assert verdict.ok, verdict
