"""VLLMEngine on a model whose generation config lists a second end-of-sequence id that is a
regular token (as Llama-3- and Qwen2.5-Instruct ship): answers end on it, its text is left out
of `text` (as HFEngine and the verifier's `expected_text` have it), and every answer verifies.

Skipped without vLLM (`bash scripts/test_vllm.sh` installs it and runs these).
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from protocol import GenerateRequest
from subnet.engine.loading import load_expert
from subnet.engine.offline import complete_all
from subnet.validator.text import expected_text
from tests.vllm_support import hd32_experts, needs_vllm

pytestmark = needs_vllm

PROMPT = "(3 + 4) * 2 = 14\n5 * 6 ="


@pytest.fixture(scope="module")
def two_eos(tmp_path_factory):
    """A copy of the hd32 math expert whose generation config adds, as a second EOS, a regular
    token it greedily produces in an answer to PROMPT (the tiny expert repeats one token)."""
    src = hd32_experts()["math"]
    one = load_expert(src, device="cpu")
    req = GenerateRequest(prompt=PROMPT, max_tokens=24, logprobs=True)
    free = asyncio.run(_complete(one, [req]))[0].token_ids
    special = set(one.tokenizer.all_special_ids)
    at = next(
        i
        for i in range(len(free))
        if free[i] not in free[:i] and free[i] not in special and one.tokenizer.decode([free[i]])
    )
    dst = tmp_path_factory.mktemp("two-eos") / "math"
    shutil.copytree(src, dst)
    gen_file = dst / "generation_config.json"
    gen = json.loads(gen_file.read_text())
    gen["eos_token_id"] = [one.tokenizer.eos_token_id, free[at]]
    gen_file.write_text(json.dumps(gen))
    return dst, req, list(free[: at + 1])


async def _complete(expert, reqs):
    return await complete_all(expert, reqs, max_batch=8, drain_timeout=5)


async def _vllm_complete(path, reqs):
    from subnet.engine.vllm_engine import VLLMEngine
    from subnet.engine.vllm_setup import load_expert_meta

    engine = VLLMEngine.create(load_expert_meta(path, device="cpu"), max_batch=8, max_queue=32)
    await engine.start()
    try:
        return engine, await asyncio.gather(*(engine.complete(r) for r in reqs))
    finally:
        await engine.stop(drain_timeout=5)


def test_a_regular_end_of_sequence_id_is_no_text_and_answers_verify(two_eos):
    from subnet.validator.verifier import ExpertRegistry, Item, Verifier

    path, greedy, want = two_eos
    reqs = [greedy, GenerateRequest(prompt=PROMPT, max_tokens=24, stop=("\n\n",))]
    reqs += [
        GenerateRequest(prompt=p, max_tokens=64, temperature=t, top_p=tp, seed=7 + i)
        for i, (p, t, tp) in enumerate(
            [(PROMPT, 1.0, 1.0), (PROMPT, 0.7, 0.95), ("12 + 7 =", 1.0, 1.0), ("x", 1.0, 0.9)] * 3
        )
    ]
    engine, answers = asyncio.run(_vllm_complete(path, reqs))
    tok = engine.tokenizer
    assert engine.eos_ids == frozenset({tok.eos_token_id, want[-1]})
    first = answers[0]
    assert list(first.token_ids) == want and first.finish_reason == "eos"
    assert tok.decode([want[-1]], skip_special_tokens=True)  # the end has text of its own...
    assert first.text == tok.decode(want[:-1], skip_special_tokens=True)  # ...left out
    (ref,) = asyncio.run(_complete(load_expert(path, device="cpu"), [greedy]))
    assert (ref.token_ids, ref.text, ref.finish_reason) == (
        first.token_ids,
        first.text,
        first.finish_reason,
    )
    for r, a in zip(reqs, answers, strict=True):
        assert a.text == expected_text(tok, r, a.token_ids, a.finish_reason), r
    # Sampled answers that end on the regular EOS after some text leave its text out too.
    ended = [a for a in answers[2:] if a.finish_reason == "eos" and a.token_ids[-1] == want[-1]]
    assert any(len(a.token_ids) > 1 for a in ended), [a.token_ids for a in answers[2:]]
    for a in ended:
        assert a.text == tok.decode(a.token_ids[:-1], skip_special_tokens=True)
    registry = ExpertRegistry.load_dir(path)
    items = [Item(engine.card.weights_hash, r, a) for r, a in zip(reqs, answers, strict=True)]
    verdicts = Verifier(registry).verify_many(items)
    assert [v.reason for v in verdicts] == ["ok"] * len(items), [v.detail for v in verdicts]
