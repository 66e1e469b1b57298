"""One generation request inside the engine: its tokens, text, what was sent, and how it ends.

Pure bookkeeping with no model in it: incremental detokenization, stop and length checks,
the next streamed chunk, the final response. `prefill_groups` decides which newcomers share a
padded prefill forward.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from protocol import GenerateChunk, GenerateRequest, GenerateResponse, Timings, TokenLogprob, Usage
from subnet.engine.base import GenerationHandle
from subnet.engine.sampling import find_stop, stable_length

# Newcomers share a prefill forward while the padding it adds stays within this fraction of
# their tokens, or within PREFILL_FORWARD_TOKENS, whichever is larger.
PREFILL_PAD_SLACK = 0.25
# What one more forward costs, in prompt tokens' worth of work. A forward pays a fixed price
# whatever its size: the weights are read once (a GPU's decode and short prefills are bound by
# that read: an 8B model in bfloat16 reads 16 GB at ~4.8 TB/s ~= 3.3 ms, the time of ~140
# tokens of its compute) and, for small models, Python and kernel-launch overhead per op
# (tiny code expert on a CPU: a 56-token prefill 6.8 ms, of which ~4 ms is fixed). Padding
# fewer tokens than this to share a forward is cheaper than a second forward.
PREFILL_FORWARD_TOKENS = 128


@dataclass
class Seq:
    req: GenerateRequest
    handle: GenerationHandle
    prompt: list[int]
    submitted: float
    gen: torch.Generator | None
    out: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    text: str = ""
    sent_tokens: int = 0
    sent_chars: int = 0
    searched: int = 0
    prefix_at: int = 0  # incremental detokenizer window (see detokenize)
    read_at: int = 0
    stopped: bool = False
    finished: bool = False
    started: float = 0.0
    first_token: float = 0.0
    sent_at: float = 0.0  # when the last chunk went out (0: none yet, so the first goes at once)

    def detokenize(self, tokenizer) -> None:
        """Extend `text` by the newly readable text (incremental: O(1) tokens per step).

        Decodes a short window before the new tokens and keeps only the difference, so
        tokenizers that merge across token boundaries (leading spaces, multi-byte characters)
        come out the same as decoding the whole sequence.
        """
        dec = tokenizer.decode
        before = dec(self.out[self.prefix_at : self.read_at], skip_special_tokens=True)
        after = dec(self.out[self.prefix_at :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self.prefix_at, self.read_at = self.read_at, len(self.out)

    def check_finish(self, tok: int, eos_ids, tokenizer) -> str | None:
        """The finish reason after appending `tok`, or None to keep going."""
        if tok in eos_ids:
            return "eos"
        if self.req.stop:  # text is needed after every token only to find a stop sequence;
            # otherwise it is caught up when a chunk is sent (`detokenize` takes any number of
            # new tokens), which spares two decodes per row per step
            self.detokenize(tokenizer)
            at = find_stop(self.text, self.req.stop, self.searched)
            self.searched = len(self.text)
            if at is not None:
                self.text = self.text[:at]
                self.stopped = True
                return "stop"
        if len(self.out) >= self.req.max_tokens:
            return "length"
        return None

    def next_chunk(self, tokenizer, *, final: bool) -> GenerateChunk | None:
        """The tokens and the stable text not yet sent (all of it when final), or None."""
        if not final and not self.req.stop:
            self.detokenize(tokenizer)  # without stops, text is caught up only when sent
        end = len(self.text) if final else stable_length(self.text, self.req.stop)
        if self.sent_tokens == len(self.out) and end <= self.sent_chars:
            return None
        chunk = GenerateChunk(
            request_id=self.req.request_id,
            index=self.sent_tokens,
            token_ids=tuple(self.out[self.sent_tokens :]),
            text=self.text[self.sent_chars : max(end, self.sent_chars)],
            logprobs=tuple(self.logprobs[self.sent_tokens :]),
        )
        self.sent_tokens = len(self.out)
        self.sent_chars = max(end, self.sent_chars)
        return chunk

    def response(self, model_id: str, reason: str) -> GenerateResponse:
        now = time.monotonic()
        ms = 1000.0
        return GenerateResponse(
            request_id=self.req.request_id,
            model=model_id,
            token_ids=tuple(self.out),
            text=self.text,
            finish_reason=reason,
            usage=Usage(prompt_tokens=len(self.prompt), completion_tokens=len(self.out)),
            logprobs=tuple(self.logprobs),
            timings=Timings(
                queue_ms=max(0.0, (self.started or now) - self.submitted) * ms,
                ttft_ms=max(0.0, (self.first_token or now) - self.submitted) * ms,
                total_ms=(now - self.submitted) * ms,
            ),
        )


def prefill_groups(seqs: list[Seq]) -> list[list[Seq]]:
    """Split newcomers (sorted by prompt length) into groups cheap to prefill together."""
    groups: list[list[Seq]] = []
    total = 0
    for seq in seqs:
        n = len(seq.prompt)
        group = groups[-1] if groups else None
        pad = n * (len(group) + 1) - (total + n) if group else 0
        if group and pad <= max(PREFILL_PAD_SLACK * (total + n), PREFILL_FORWARD_TOKENS):
            group.append(seq)
            total += n
        else:
            groups.append([seq])
            total = n
    return groups
