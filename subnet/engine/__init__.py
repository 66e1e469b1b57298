"""Inference engine: expert loading, the offline tiny experts, prompt encoding, scoring, batching.

Import from the submodules; this package module stays import-light so `dmoe --help` does not
load torch.

    experts.py   build_tiny_experts(out_dir, size="default"|"test", progress=None) -> {domain: Path}
    loading.py   load_expert(path_or_hf_id, revision=, device=, dtype=, domains=) -> LoadedExpert
                 (.model, .tokenizer, .card: protocol.ExpertCard, .device, .path);
                 weights_hash(dir) -- the recipe validators recompute (see the module docstring)
    prompt.py    encode_prompt(tokenizer, GenerateRequest) -> list[int]  (shared with validators)
    scoring.py   score_batch(model, sequences, starts, top_k=0) -> list[ScoreResult]  (one
                 right-padded forward; logprob, rank (0 = argmax) and top-k per scored token);
                 logit_chunks(model, sequences, spans, max_rows=None) -> iterator of
                 (sequence index, first position, float32 logits chunk): the LM head a bounded
                 chunk of positions at a time (memory no longer tokens x vocabulary)
    archs.py     build_random_expert(arch, tokenizer_dir, out_dir, window=16, eos_ids=None):
                 random-init experts of ten decoder architectures (tests, scripts/gpu_check.sh)
    base.py      Engine protocol, GenerationHandle, EngineFull / RequestRejected / EngineStopped
    hf.py        HFEngine: the transformers reference backend with continuous batching
    forward.py   the model calls of one step (group prefill, batch decode, the step's tokens
                 read back in one device-to-host transfer), free of engine state
    kvbatch.py   the running batch's KV cache in fixed row slots (rows join after prefill and
                 leave when done at the cost of the rows that move, not the whole batch)
    sampling.py  pick_tokens (greedy, seeded temperature/top-p, generators on the logits'
                 device, no host sync) and stop-sequence helpers

How a generation flows: `engine.submit(req)` encodes the prompt, checks context and queue bounds
(raising at once), and queues it; the worker thread, between decode steps, prefills up to
`max_prefill` waiting requests (one unpadded forward each, first token sent at once), appends
their KV rows to the running batch in one copy, and runs one decode step for every row; outputs
go back to the event loop once per step.

KV layout, measured (scripts/bench_miner.py, tiny code expert, 64 new tokens, 1 CPU thread):
one padded cache shared by the batch (rows left-padded to a common time axis, RoPE positions
from each row's own token count) beats per-sequence caches, which need one forward per sequence
per step -- the naive miner's profile: 244-313 / 256-304 / 252-263 tok/s at 8 / 32 / 64
concurrent requests against 772-1156 / 1788-2081 / 2128-2211 for this engine (0.7-0.9 of a
static batch; two runs on a shared 2-core box).
Cache layers grow in place with doubling headroom (27% faster decode steps than the stock
concatenating DynamicCache at batch 32). Newcomers are prefilled one at a time, unpadded, and
their first token is sent before the next decode step.

A vLLM backend (miners on real GPUs; `pip install dmoe[vllm]`) implements the same `Engine`
protocol, see `subnet.engine.base`: submit -> AsyncLLMEngine.generate with SamplingParams built
from the request (prompt ids from encode_prompt, raw logprobs), chunks pushed to the
GenerationHandle; score -> score_batch on an HF copy (or prompt_logprobs); the miner server
needs nothing else. It is not built here: no GPU was lent to measure it.
"""
