"""The tiny experts: built, cached, loadable like any HF model, and really different."""

from __future__ import annotations

import json

import torch

from protocol import ChatMessage, GenerateRequest
from subnet.engine.corpora import code_corpus, math_corpus
from subnet.engine.experts import build_tiny_experts
from subnet.engine.loading import weights_hash
from subnet.engine.prompt import encode_prompt
from subnet.engine.scoring import score_batch


def _loss(expert, text: str) -> float:
    ids = expert.tokenizer.encode(text, add_special_tokens=False)[:256]
    r = score_batch(expert.model, [ids], [1])[0]
    return -sum(r.logprobs) / len(r.logprobs)


def test_experts_share_a_tokenizer_and_carry_cards(tiny_experts, code_expert, math_expert):
    assert code_expert.tokenizer.get_vocab() == math_expert.tokenizer.get_vocab()
    card = json.loads((tiny_experts["code"] / "expert.json").read_text())
    assert card["model_id"] == "dmoe/tiny-code" and card["domains"] == ["code"]
    assert code_expert.card.model_id == "dmoe/tiny-code"
    assert code_expert.card.weights_hash == weights_hash(tiny_experts["code"])
    assert code_expert.card.weights_hash != math_expert.card.weights_hash
    assert list(tiny_experts["code"].glob("*.safetensors"))


def test_experts_really_differ(code_expert, math_expert):
    code = code_corpus(20_000)[5_000:7_000]
    math = math_corpus(2_000, seed=99)
    assert _loss(code_expert, code) < _loss(math_expert, code) - 1.0
    assert _loss(math_expert, math) < _loss(code_expert, math) - 1.0


def test_build_is_cached(tiny_experts):
    before = weights_hash(tiny_experts["math"])
    again = build_tiny_experts(tiny_experts["math"].parent, size="test")
    assert again == tiny_experts
    assert weights_hash(again["math"]) == before


def test_greedy_output_is_deterministic(math_expert):
    ids = torch.tensor([encode_prompt(math_expert.tokenizer, GenerateRequest(prompt="3 + 4 ="))])
    a = math_expert.model.generate(ids, max_new_tokens=8, do_sample=False)
    b = math_expert.model.generate(ids, max_new_tokens=8, do_sample=False)
    assert a.tolist() == b.tolist()


def test_encode_prompt_chat_fallback_template(code_expert):
    tok = code_expert.tokenizer
    req = GenerateRequest(messages=(ChatMessage("user", "hi"),))
    assert encode_prompt(tok, req) == tok.encode("user: hi\nassistant:", add_special_tokens=False)
    assert encode_prompt(tok, GenerateRequest(prompt="")) == [tok.bos_token_id]


def test_score_batch_padding_does_not_change_results(code_expert):
    tok = code_expert.tokenizer
    a = tok.encode("def add(a, b):\n    return a + b\n", add_special_tokens=False)
    b = tok.encode("x = 1", add_special_tokens=False)
    together = score_batch(code_expert.model, [a, b], [1, 2], top_k=3)
    alone = [score_batch(code_expert.model, [s], [st], top_k=3)[0] for s, st in ((a, 1), (b, 2))]
    for t, s in zip(together, alone, strict=True):
        assert t.ranks == s.ranks
        assert max(abs(x - y) for x, y in zip(t.logprobs, s.logprobs, strict=True)) < 1e-4
    assert len(together[1].logprobs) == len(b) - 2
    # rank 0 means the token is the argmax, whose logprob is the top-1 entry
    for lp, rank, top in zip(together[0].logprobs, together[0].ranks, together[0].top, strict=True):
        assert (rank == 0) == (abs(lp - top[0][1]) < 1e-6)
