"""One end-of-sequence set: a model whose generation config lists two EOS ids (as Qwen2.5- and
Llama-3-Instruct ship) ends on either, and every such honest answer verifies."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest
import torch

from protocol import GenerateRequest, Usage
from subnet.validator import verify
from subnet.validator.verifier import ExpertRegistry, Item, Verifier
from tests.validator.helpers import engine_answers


@pytest.fixture(scope="module")
def two_eos_dir(tiny_experts, tmp_path_factory):
    """A random-init 2-layer Llama on the tiny tokenizer plus a special `<|eot|>` token, with
    generation_config.eos_token_id = [<|endoftext|>, <|eot|>] and both ends made likely."""
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("two-eos")
    tok = AutoTokenizer.from_pretrained(tiny_experts["code"])
    tok.add_special_tokens({"additional_special_tokens": ["<|eot|>"]})
    eot = tok.convert_tokens_to_ids("<|eot|>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
                         max_position_embeddings=256, tie_word_embeddings=False,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # each end ~ a few percent per step: answers end on both ids
        head = model.lm_head.weight
        for i in (tok.eos_token_id, eot):
            head[i] = model.model.norm.weight.sign() * head.abs().mean() * 2.5
    model.generation_config = GenerationConfig(
        eos_token_id=[tok.eos_token_id, eot], pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out, frozenset({tok.eos_token_id, eot})


def test_answers_ending_on_either_eos_verify(two_eos_dir):
    path, eos = two_eos_dir
    registry = ExpertRegistry.load_dir(path)
    (expert,) = registry.experts.values()
    assert expert.eos_ids == eos
    rng = random.Random(1)
    reqs = [
        GenerateRequest(prompt=f"def f_{i}(x):", max_tokens=48, temperature=t, seed=rng.randrange(1 << 30), top_p=p)
        for i in range(24)
        for t, p in [((0.0, 1.0), (1.0, 1.0), (0.7, 0.95))[i % 3]]
    ]  # fmt: skip
    answers = asyncio.run(engine_answers(expert, reqs))
    ends = {a.token_ids[-1] for a in answers if a.finish_reason == "eos"}
    assert ends == eos, f"answers ended on {ends}, want both of {eos}"
    items = [Item(expert.card.weights_hash, r, a) for r, a in zip(reqs, answers, strict=True)]
    verdicts = Verifier(registry).verify_many(items)
    assert [v.reason for v in verdicts] == ["ok"] * len(items), [v.detail for v in verdicts]

    # Going on past either end, or claiming `eos` on another token, is not honest.
    ended = [(r, a) for r, a in zip(reqs, answers, strict=True) if a.finish_reason == "eos"]
    bad = []
    for r, a in ended:
        more = replace(a, token_ids=(*a.token_ids, 5), logprobs=(*a.logprobs, a.logprobs[0]),
                       finish_reason="length", usage=Usage(a.usage.prompt_tokens, len(a.token_ids) + 1))  # fmt: skip
        more = replace(more, logprobs=tuple(replace(lp, token_id=t) for lp, t in
                                            zip(more.logprobs, more.token_ids, strict=True)))  # fmt: skip
        bad.append(Item(expert.card.weights_hash, replace(r, max_tokens=len(more.token_ids)), more))
        lps = (*a.logprobs[:-1], replace(a.logprobs[-1], token_id=7))
        swapped = replace(a, token_ids=(*a.token_ids[:-1], 7), logprobs=lps)
        bad.append(Item(expert.card.weights_hash, r, swapped))
    reasons = [v.reason for v in Verifier(registry).verify_many(bad)]
    assert set(reasons[0::2]) == {"skipped_eos"} and set(reasons[1::2]) == {"bad_shape"}


def test_end_probability_sums_over_the_set(two_eos_dir):
    """The prefill's end-of-sequence log-probability is the log of the summed probabilities."""
    from subnet.validator.prefill import reference_prefill

    path, eos = two_eos_dir
    registry = ExpertRegistry.load_dir(path)
    (expert,) = registry.experts.values()
    prompt, answer = [5, 6, 7], [8, 9]
    (both,) = reference_prefill(expert.model, [prompt], [answer], [1.0], [1.0], eos, 256)
    singles = [
        reference_prefill(expert.model, [prompt], [answer], [1.0], [1.0], {e}, 256)[0]
        for e in sorted(eos)
    ]
    total = sum(torch.tensor(s.final_eos_logprob).exp() for s in singles)
    assert both.final_eos_logprob == pytest.approx(float(total.log()), abs=1e-5)
    assert verify.Thresholds().end_min_logprob < both.end_logprob <= 0.0
