"""The reference engine: Hugging Face transformers with continuous batching on one worker thread.

The worker loop, between decode steps: drop cancelled rows, answer pending score requests (one
batched forward), prefill waiting requests into free slots (one unpadded forward each, its
first token sent at once) and append them to the running batch, then run one decode step for
every row. Finished rows leave at once. The event loop only enqueues work and reads results (`GenerationHandle`),
so it never waits on the model.

Failures stay with their request: a prefill group that raises is retried one prompt at a time,
and the prompt that still fails, like a row whose logits are not finite, ends with
finish_reason "error" while its batch mates carry on. Input the model cannot index (token ids
past its embedding, positions past a learned position table) is refused at submit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass, replace

import torch

from protocol import (
    GenerateChunk,
    GenerateRequest,
    GenerateResponse,
    ScoreRequest,
    ScoreResponse,
    TokenLogprob,
)
from subnet.engine.base import EngineFull, EngineStopped, GenerationHandle, RequestRejected
from subnet.engine.forward import (
    Pick,
    cache_kwarg,
    decode,
    position_table_size,
    prefill,
    read_step,
)
from subnet.engine.kvbatch import KVBatch, select_rows
from subnet.engine.loading import LoadedExpert, eos_ids
from subnet.engine.prompt import encode_prompt
from subnet.engine.sampling import make_generator
from subnet.engine.scoring import score_batch
from subnet.engine.sequence import Seq as _Seq
from subnet.engine.sequence import prefill_groups

log = logging.getLogger(__name__)

ENGINE_NAME = "hf-continuous/0.1"
# Tokens in one scoring forward (two maximum-size requests). It bounds the base model's
# activations (tokens x hidden per layer); the logits no longer scale with it, `logit_chunks`
# applies the LM head to ~64 MiB of positions at a time.
SCORE_TOKENS_PER_STEP = 16_384


@dataclass
class _ScoreJob:
    req: ScoreRequest
    future: Future


class HFEngine:
    def __init__(
        self,
        expert: LoadedExpert,
        *,
        max_batch: int,
        max_queue: int,
        max_prefill: int,
        cpu_threads: int | None,
        stream_interval_s: float,
    ) -> None:
        self.expert = expert
        self.model = expert.model
        self.tokenizer = expert.tokenizer
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.max_prefill = max_prefill
        self.cpu_threads = cpu_threads
        self.stream_interval_s = stream_interval_s
        self.card = replace(expert.card, capacity=max_batch, engine=ENGINE_NAME)
        self.eos_ids = expert.eos_ids or eos_ids(self.model, self.tokenizer)
        self.vocab_size = self.model.get_input_embeddings().num_embeddings
        self.max_positions = min(self.card.max_context, position_table_size(self.model))
        self._pending: deque[_Seq] = deque()
        self._scores: deque[_ScoreJob] = deque()
        self._rows: list[_Seq] = []
        self._inflight = 0  # submitted and not yet finished (guarded by _wake)
        # Chunks and responses made during a step, handed to the event loop in one call.
        self._outbox: list[tuple[GenerationHandle, GenerateChunk | GenerateResponse]] = []
        self._batch = KVBatch(max_batch)
        self._cache_kw = cache_kwarg(self.model)
        self._wake = threading.Condition()
        self._running = False
        self._accepting = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.steps = 0  # decode steps run (for metrics)

    @classmethod
    def create(
        cls,
        expert: LoadedExpert,
        *,
        max_batch: int = 32,
        max_queue: int = 64,
        max_prefill: int = 8,
        cpu_threads: int | None = 1,
        stream_interval_s: float = 0.0,
    ) -> HFEngine:
        """`max_prefill` bounds how many newcomers join per step, so decoding rows keep moving.

        `cpu_threads` (CPU only; process-wide torch setting, None leaves it alone): tiny models
        are dominated by per-op overhead, and on a shared CPU two OpenMP threads spin against
        each other — measured 7 ms vs 390 ms per decode step on a busy 2-core box.

        `stream_interval_s`: a running sequence's tokens go out at most this often (its first
        token and its end at once). Each chunk costs the server a task wake-up, an SSE write and
        a socket send on the event loop, which shares the GIL with this worker: at 32 streams,
        40 ms cut the miner's event-loop CPU by a third (~1.0 s to ~0.65 s per 6,000 tokens).
        """
        if max_batch < 1 or max_queue < 0 or max_prefill < 1:
            raise ValueError("max_batch and max_prefill must be >= 1, max_queue >= 0")
        if not 0.0 <= stream_interval_s <= 1.0:
            raise ValueError("stream_interval_s must be within [0, 1] seconds")
        return cls(
            expert,
            max_batch=max_batch,
            max_queue=max_queue,
            max_prefill=max_prefill,
            cpu_threads=cpu_threads,
            stream_interval_s=stream_interval_s,
        )

    # --- introspection
    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def active(self) -> int:
        # Running or being prefilled: everything admitted that is no longer waiting.
        return max(0, self._inflight - len(self._pending))

    @property
    def capacity(self) -> int:
        return self.max_batch

    # --- lifecycle
    async def start(self) -> None:
        if self.cpu_threads and self.expert.device.type == "cpu":
            torch.set_num_threads(self.cpu_threads)
        self._loop = asyncio.get_running_loop()
        self._running = self._accepting = True
        self._thread = threading.Thread(target=self._work, name="engine-worker", daemon=True)
        self._thread.start()

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Refuse new work, let in-flight generations finish (up to the timeout), then stop."""
        self._accepting = False
        deadline = time.monotonic() + drain_timeout
        while (self._inflight or self._scores) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for seq in list(self._pending) + list(self._rows):
            seq.handle.cancel()
        with self._wake:
            self._running = False
            self._wake.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)

    # --- requests (event-loop side)
    def submit(self, req: GenerateRequest) -> GenerationHandle:
        if not self._accepting or self._loop is None:
            raise EngineStopped("the engine is not accepting requests")
        prompt = encode_prompt(self.tokenizer, req)
        if len(prompt) + req.max_tokens > self.max_positions:
            raise RequestRejected(
                f"prompt ({len(prompt)} tokens) + max_tokens ({req.max_tokens}) exceeds the "
                f"context of {self.max_positions} tokens",
                field="max_tokens",
            )
        if max(prompt) >= self.vocab_size:
            # Checked here, not left to the model: on a GPU an out-of-range index is a device
            # assert that takes every other request (and the process's CUDA context) with it.
            raise RequestRejected(
                f"the prompt encodes to token {max(prompt)}, outside the model's vocabulary "
                f"of {self.vocab_size} (the tokenizer has more tokens than the model)",
                field="prompt",
            )
        handle = GenerationHandle(req.request_id, self._loop)
        gen = make_generator(req.seed, self.expert.device) if req.temperature > 0 else None
        seq = _Seq(req=req, handle=handle, prompt=prompt, submitted=time.monotonic(), gen=gen)
        with self._wake:
            if self._inflight >= self.max_batch + self.max_queue:
                raise EngineFull(
                    f"{len(self._rows)} running and {len(self._pending)} queued; at capacity",
                    retry_after=1.0,
                )
            self._inflight += 1
            self._pending.append(seq)
            self._wake.notify()
        return handle

    async def generate(
        self, req: GenerateRequest
    ) -> AsyncIterator[GenerateChunk | GenerateResponse]:
        async for item in self.submit(req):
            yield item

    async def complete(self, req: GenerateRequest) -> GenerateResponse:
        return await self.submit(req).result()

    async def score(self, req: ScoreRequest) -> ScoreResponse:
        if not self._accepting:
            raise EngineStopped("the engine is not accepting requests")
        if len(req.token_ids) > self.max_positions:
            raise RequestRejected(
                f"{len(req.token_ids)} tokens exceed the context of {self.max_positions}",
                field="token_ids",
            )
        if max(req.token_ids) >= self.vocab_size:
            raise RequestRejected(
                f"token ids must be below the vocabulary size {self.vocab_size}", "token_ids"
            )
        job = _ScoreJob(req, Future())
        with self._wake:
            if len(self._scores) >= max(1, self.max_queue):
                raise EngineFull(f"{len(self._scores)} score requests queued; at capacity")
            self._scores.append(job)
            self._wake.notify()
        return await asyncio.wrap_future(job.future)

    # --- worker thread
    def _work(self) -> None:
        # inference_mode is thread-local: everything the worker computes skips autograd.
        with torch.inference_mode():
            self._loop_forever()

    def _loop_forever(self) -> None:
        while True:
            with self._wake:
                while self._running and not (self._pending or self._scores or self._rows):
                    self._wake.wait()
                if not self._running:
                    break
                free = min(self.max_batch - len(self._rows), self.max_prefill)
                newcomers = [self._pending.popleft() for _ in range(min(free, len(self._pending)))]
                scores = self._take_scores()
            try:
                self._step(newcomers, scores)
                self._flush()
            except Exception as err:  # a model failure must not kill the worker silently
                # Prefill, scoring and token bookkeeping isolate their failures per request; a
                # decode step feeds only the model's own tokens to rows whose prompts were
                # checked and prefilled, so its failure is the model's or the device's (out of
                # memory) and the running batch fails with it.
                log.exception("engine step failed; failing the running batch")
                for job in scores:
                    if not job.future.done():
                        job.future.set_exception(err)
                for seq in self._rows + newcomers:
                    self._finish(seq, "error")
                self._rows = []
                self._batch.clear()
                self._flush()
        for seq in self._rows + list(self._pending):
            self._finish(seq, "cancelled")
        self._flush()
        for job in self._scores:
            job.future.set_exception(EngineStopped("the engine stopped"))

    def _take_scores(self) -> list[_ScoreJob]:
        """Score jobs for this step, up to SCORE_TOKENS_PER_STEP tokens (at least one job)."""
        jobs: list[_ScoreJob] = []
        tokens = 0
        while self._scores and (
            not jobs or tokens + len(self._scores[0].req.token_ids) <= SCORE_TOKENS_PER_STEP
        ):
            job = self._scores.popleft()
            jobs.append(job)
            tokens += len(job.req.token_ids)
        return jobs

    def _flush(self) -> None:
        if self._outbox and self._loop is not None:
            items, self._outbox = self._outbox, []
            try:
                self._loop.call_soon_threadsafe(GenerationHandle.deliver_all, items)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                log.debug("dropped %d outputs after the event loop closed", len(items))

    def _step(self, newcomers: list[_Seq], scores: list[_ScoreJob]) -> None:
        self._drop_cancelled()
        if scores:
            self._score(scores)
        newcomers = [s for s in newcomers if not self._cancel_if_gone(s)]
        if newcomers:
            self._prefill(newcomers)
        if self._rows:
            self._decode()

    def _cancel_if_gone(self, seq: _Seq) -> bool:
        if seq.handle.cancelled:
            self._finish(seq, "cancelled")
            return True
        return False

    def _drop_cancelled(self) -> None:
        gone = [i for i, s in enumerate(self._rows) if s.handle.cancelled]
        if gone:
            seqs = [self._rows[i] for i in gone]
            self._rows = [self._rows[i] for i in self._batch.remove(gone)]
            for seq in seqs:
                self._finish(seq, "cancelled")

    def _score(self, jobs: list[_ScoreJob]) -> None:
        try:
            results = score_batch(
                self.model,
                [list(j.req.token_ids) for j in jobs],
                [j.req.start for j in jobs],
                top_k=max(j.req.top_k for j in jobs),
            )
        except Exception as err:  # find the job that fails; the others still get answers
            if len(jobs) == 1:
                log.exception("score request %s failed", jobs[0].req.request_id)
                jobs[0].future.set_exception(err)
            else:
                for job in jobs:
                    self._score([job])
            return
        for job, r in zip(jobs, results, strict=True):
            top = tuple(tuple(row[: job.req.top_k]) for row in r.top) if job.req.top_k else ()
            job.future.set_result(
                ScoreResponse(
                    request_id=job.req.request_id,
                    logprobs=tuple(r.logprobs),
                    ranks=tuple(r.ranks),
                    top=top,
                )
            )

    def _prefill(self, seqs: list[_Seq]) -> None:
        """Prefill newcomers in groups of similar prompt length, sending each group's first
        tokens at once; then append all their KV rows to the batch in one copy.

        Short prompts are overhead-bound (a forward of 4 costs little more than a forward of 1),
        long ones compute-bound (padding is waste): grouping only prompts whose padded size stays
        within PREFILL_PAD_SLACK of their real size gets both right.
        """
        caches: list[tuple[object, torch.Tensor]] = []
        joined: list[_Seq] = []
        work = deque(prefill_groups(sorted(seqs, key=lambda s: len(s.prompt))))
        while work:
            group = work.popleft()
            now = time.monotonic()
            for seq in group:
                seq.started = seq.started or now
            try:
                cache, mask, logits = self._prefill_forward(group)
            except Exception:  # one prompt the model cannot take must not fail the others
                if len(group) > 1:
                    log.warning("a prefill of %d prompts failed; retrying one by one", len(group))
                    work.extendleft([s] for s in reversed(group))
                else:
                    log.exception("prefill failed for request %s", group[0].req.request_id)
                    self._finish(group[0], "error")
                    self._flush()
                continue
            done = self._record(group, logits)
            keep = [j for j in range(len(group)) if j not in done]
            for j, reason in done.items():
                self._finish(group[j], reason)
            self._flush()
            if keep:
                if len(keep) < len(group):
                    cache, mask = select_rows(cache, mask, keep)
                caches.append((cache, mask))
                joined.extend(group[j] for j in keep)
        if caches:
            self._batch.join(caches)
            self._rows.extend(joined)

    def _prefill_forward(self, group: list[_Seq]):
        pad = self.tokenizer.pad_token_id or 0
        prompts = [s.prompt for s in group]
        return prefill(self.model, self._cache_kw, prompts, pad, self.expert.device)

    def _decode(self) -> None:
        last = [s.out[-1] for s in self._rows]
        logits = decode(self.model, self._cache_kw, self._batch, last, self.expert.device)
        self.steps += 1
        done = self._record(self._rows, logits)
        if done:
            # Leave the batch before the caller hears of it, so `active` is already lower.
            finished = [(self._rows[i], r) for i, r in done.items()]
            self._rows = [self._rows[i] for i in self._batch.remove(list(done))]
            for seq, reason in finished:
                self._finish(seq, reason)

    def _record(self, rows: list[_Seq], logits: torch.Tensor) -> dict[int, str]:
        """Choose and record one token per row; returns {row index: finish reason} of the done."""
        picks = read_step(
            logits,
            [s.req.temperature for s in rows],
            [s.req.top_p for s in rows],
            [s.gen for s in rows],
            [s.req.top_logprobs for s in rows],
        )
        now = time.monotonic()
        done: dict[int, str] = {}
        for j, (seq, pick) in enumerate(zip(rows, picks, strict=True)):
            if not pick.finite:
                log.warning("request %s: the model's logits are not finite", seq.req.request_id)
                done[j] = "error"
                continue
            try:
                reason = self._append(seq, pick, now)
            except Exception:  # one request's bookkeeping must not fail its batch mates
                log.exception("request %s failed while recording a token", seq.req.request_id)
                reason = "error"
            if reason is not None:
                done[j] = reason
        return done

    def _append(self, seq: _Seq, pick: Pick, now: float) -> str | None:
        """Record one chosen token of `seq`; returns its finish reason or None."""
        seq.out.append(pick.token)
        if seq.req.logprobs:
            seq.logprobs.append(TokenLogprob(pick.token, pick.logprob, pick.top))
        if not seq.first_token:
            seq.first_token = now
        reason = seq.check_finish(pick.token, self.eos_ids, self.tokenizer)
        if reason is None and now - seq.sent_at >= self.stream_interval_s:
            self._emit(seq, final=False)
        return reason

    def _emit(self, seq: _Seq, *, final: bool) -> None:
        """Send the tokens and the stable text not yet sent (all of it when final)."""
        chunk = seq.next_chunk(self.tokenizer, final=final)
        if chunk is not None:
            seq.sent_at = time.monotonic()
            self._outbox.append((seq.handle, chunk))

    def _finish(self, seq: _Seq, reason: str) -> None:
        if seq.finished:  # a failed step may list a sequence twice
            return
        seq.finished = True
        with self._wake:
            self._inflight -= 1
        if not seq.stopped and seq.out:
            # Text held back by the incremental decoder (an unfinished character) goes out now.
            # An end-of-sequence id is no text, even one that is not a special token (a model
            # listing several EOS ids, as Llama-3- and Qwen2.5-Instruct do).
            ids = seq.out[:-1] if reason == "eos" else seq.out
            seq.text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if reason in ("eos", "stop", "length"):
            self._emit(seq, final=True)
        self._outbox.append((seq.handle, seq.response(self.card.model_id, reason)))
