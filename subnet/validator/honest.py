"""A straightforward honest generator (Hugging Face `generate` with a KV cache) for calibration,
tests and benchmarks: what an honest miner's answer looks like, independent of the miner's
engine, so the verifier is calibrated against more than one implementation.
"""

from __future__ import annotations

import random
import time

import torch

from protocol import GenerateRequest, GenerateResponse, Timings, TokenLogprob, Usage
from subnet.engine.loading import LoadedExpert
from subnet.engine.prompt import encode_prompt
from subnet.validator.text import expected_text, readable_text


@torch.inference_mode()
def honest_generate(expert: LoadedExpert, req: GenerateRequest) -> GenerateResponse:
    tok = expert.tokenizer
    eos = sorted(expert.eos_ids or {tok.eos_token_id})
    prompt = encode_prompt(tok, req)
    t0 = time.perf_counter()
    kwargs = dict(max_new_tokens=req.max_tokens, do_sample=req.temperature > 0)
    if req.temperature > 0:
        # No seed: fresh randomness, as the protocol asks (a fixed default would give
        # different prompts the same noise).
        torch.manual_seed(req.seed if req.seed is not None else random.randrange(1 << 62))
        kwargs.update(temperature=req.temperature, top_p=req.top_p, top_k=0)
    out = expert.model.generate(
        torch.tensor([prompt], device=expert.device),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long, device=expert.device),
        output_logits=True,
        return_dict_in_generate=True,
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos[0],
        **kwargs,
    )
    ids = out.sequences[0, len(prompt) :].tolist()
    steps = torch.stack([step[0] for step in out.logits[: len(ids)]]).float()
    chosen = torch.tensor(ids[: len(steps)], device=steps.device)
    lps = torch.log_softmax(steps, -1).gather(1, chosen[:, None])[:, 0].tolist()
    ids = ids[: len(lps)]
    finish = "eos" if ids and ids[-1] in eos else "length"
    # generate knows no stop strings: cut where the engine would have stopped.
    for k in range(1, len(ids) + 1) if req.stop else ():
        if any(s in readable_text(tok, ids[:k]) for s in req.stop):
            ids, finish = ids[:k], "stop"
            break
    if finish == "length" and len(ids) < req.max_tokens:
        finish = "stop"
    ms = (time.perf_counter() - t0) * 1000
    return GenerateResponse(
        request_id=req.request_id,
        model=expert.card.model_id,
        token_ids=tuple(ids),
        text=expected_text(tok, req, ids, finish),
        finish_reason=finish,
        usage=Usage(len(prompt), len(ids)),
        logprobs=tuple(TokenLogprob(t, min(0.0, lp)) for t, lp in zip(ids, lps, strict=False)),
        timings=Timings(ttft_ms=0.0, total_ms=ms),
    )
