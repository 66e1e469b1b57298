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
`max_prefill` waiting requests (newcomers share one left-padded forward while the padding costs
less than another forward, `sequence.prefill_groups`; first tokens sent at once), appends their
KV rows to the running batch in one copy, and runs one decode step for every row; outputs go
back to the event loop once per step. Text is detokenized when a chunk goes out, or after every
token only for a request with stop sequences.

KV layout (scripts/bench_miner.py measures it; figures in the README): one padded cache shared
by the batch (rows left-padded to a common time axis, RoPE positions from each row's own token
count) beats per-sequence caches, which need one forward per sequence per step -- the naive
miner's profile, the "naive" column. Cache layers grow in place with doubling headroom rather
than concatenating (the stock DynamicCache re-copies the whole batch each step).

The vLLM backend (`dmoe miner --engine vllm`; GPU `pip install 'dmoe[vllm]'`, CPU
`bash scripts/setup_vllm.sh`) implements the same `Engine` protocol:
    vllm_engine.py   VLLMEngine: AsyncLLM in its own processes, raw logprobs, the reference
                     bookkeeping of sequence.py for text / stop / EOS
    vllm_setup.py    vllm_version() (installed?), load_expert_meta (the expert without weights)
    vllm_mapping.py  pure request -> SamplingParams and vLLM logprobs -> protocol translations
    vllm_procs.py    the processes vLLM spawned, ended by pid; vllm_reaper.py ends them if the
                     miner dies without stopping the engine
"""
