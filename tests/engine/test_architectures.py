"""Every common decoder architecture (random-init, tiny): continuous batching gives exactly what
`generate` gives one request at a time, prompts shorter and longer than any sliding window mixed
in one batch; the validator accepts every answer; chunked scoring equals the full forward."""

from __future__ import annotations

import asyncio

import pytest
import torch

from protocol import GenerateRequest
from subnet.engine.archs import ARCHS, SLIDING, build_random_expert
from subnet.engine.loading import load_expert
from subnet.engine.offline import complete_all
from subnet.engine.prompt import encode_prompt
from subnet.engine.scoring import logit_chunks, padded_logits, score_batch, split_head

WINDOW = 16
# Token counts with the tiny tokenizer: 3, 14, 68, 4, 42 (the window is 16; answers cross it too).
PROMPTS = [
    "x = 1",
    "def parse(self, text):\n",
    "import os\nimport sys\n\nclass Reader:\n    def __init__(self, path):\n"
    "        self.path = path\n        self.lines = []\n",
    "12 + 7 =",
    "for i in range(10):\n    print(i, i * i, i ** 3)\n    total += i\nreturn",
]


@pytest.fixture(scope="module")
def arch_dirs(tiny_experts, tmp_path_factory):
    root = tmp_path_factory.mktemp("archs")
    return {a: build_random_expert(a, tiny_experts["code"], root / a, window=WINDOW) for a in ARCHS}


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


async def engine_answers(expert, reqs):
    # 3 rows, 2 joining per step: rows of every length join and leave mid-flight.
    return await complete_all(expert, reqs, max_batch=3, max_prefill=2, drain_timeout=5)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_batched_greedy_equals_generate_and_verifies(arch, arch_dirs):
    from subnet.validator.verifier import ExpertRegistry, Item, Verifier

    expert = load_expert(arch_dirs[arch], device="cpu")
    reqs = [
        GenerateRequest(prompt=p, max_tokens=10 + 4 * i, logprobs=True)
        for i, p in enumerate(PROMPTS)
    ]
    answers = asyncio.run(engine_answers(expert, reqs))
    for req, res in zip(reqs, answers, strict=True):
        assert res.finish_reason in ("length", "eos"), (arch, res.finish_reason)
        assert list(res.token_ids) == reference(expert, req), (arch, req.prompt)
    registry = ExpertRegistry.load_dir(arch_dirs[arch])
    items = [Item(expert.card.weights_hash, r, a) for r, a in zip(reqs, answers, strict=True)]
    verdicts = Verifier(registry).verify_many(items)
    assert [v.reason for v in verdicts] == ["ok"] * len(items), [v.detail for v in verdicts]


@pytest.mark.parametrize("arch", SLIDING)
def test_the_window_matters(arch, arch_dirs, tmp_path):
    """Without its window the same weights answer a long prompt differently, so the equality
    above really exercises sliding-window attention past the window."""
    from transformers import AutoConfig

    expert = load_expert(arch_dirs[arch], device="cpu")
    config = AutoConfig.from_pretrained(arch_dirs[arch])
    config.sliding_window = 10_000  # wider than any prompt: full attention
    wide = type(expert.model)(config).eval()
    wide.load_state_dict(expert.model.state_dict())
    ids = torch.tensor([encode_prompt(expert.tokenizer, GenerateRequest(prompt=PROMPTS[2]))])
    with torch.inference_mode():
        narrow_logits = expert.model(ids).logits[0, -1]
        wide_logits = wide(ids).logits[0, -1]
    assert (narrow_logits - wide_logits).abs().max() > 1e-3


@pytest.mark.parametrize("arch", list(ARCHS))
def test_chunked_logits_equal_the_full_forward(arch, arch_dirs):
    expert = load_expert(arch_dirs[arch], device="cpu")
    assert split_head(expert.model) is not None  # every listed architecture splits its head
    tok = expert.tokenizer
    seqs = [tok.encode(p, add_special_tokens=False) for p in PROMPTS[1:3]]
    full = padded_logits(expert.model, seqs).float()
    spans = [(0, len(s)) for s in seqs]
    got = {(i, p): c for i, p, c in logit_chunks(expert.model, seqs, spans, max_rows=5)}
    assert all(c.shape[0] <= 5 for c in got.values())
    for i, s in enumerate(seqs):
        chunks = torch.cat([got[(i, p)] for p in range(0, len(s), 5)])
        torch.testing.assert_close(chunks, full[i, : len(s)], rtol=1e-5, atol=1e-5)
    # Scoring in chunks of 3 positions or all at once: the same numbers.
    a = score_batch(expert.model, seqs, [1, 5], top_k=3, max_rows=3)
    b = score_batch(expert.model, seqs, [1, 5], top_k=3, max_rows=1000)
    for x, y in zip(a, b, strict=True):
        # (a random-init model's near-ties may swap one place under another matmul shape)
        assert all(abs(p - q) <= 1 for p, q in zip(x.ranks, y.ranks, strict=True))
        assert [t for t, _ in x.top[0]] == [t for t, _ in y.top[0]]
        assert max(abs(u - v) for u, v in zip(x.logprobs, y.logprobs, strict=True)) < 1e-4
