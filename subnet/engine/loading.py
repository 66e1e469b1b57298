"""Load an expert (local directory or Hugging Face id at a pinned revision) and pin its weights.

Weights hash recipe (validators recompute it the same way, `weights_hash(dir)`): sha256 over every
tensor of every `*.safetensors` file in the model directory, tensor names sorted (across files);
for each tensor feed `name`, `"|"`, dtype (e.g. `torch.float32`), `"|"`, shape as comma-joined
ints, `"\n"`, then the tensor's raw little-endian bytes in C order. File names, shard layout and
metadata do not matter; weights do.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from protocol import MAX_NEW_TOKENS, ExpertCard
from subnet.engine.experts import CARD_FILE

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ExpertLoadError(RuntimeError):
    """The expert could not be found or loaded; the message says what to fix."""


@dataclass
class LoadedExpert:
    model: Any  # a transformers PreTrainedModel in eval mode
    tokenizer: Any  # a transformers PreTrainedTokenizerBase
    card: ExpertCard
    device: torch.device
    path: Path
    # Every token that ends a generation: the union of `generation_config.eos_token_id` (a list
    # for Qwen2.5-Instruct, Llama-3-Instruct ...) and the tokenizer's. Engine, verifier and
    # scoring all read this one set.
    eos_ids: frozenset[int] = frozenset()


def eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The end-of-sequence set of a model: generation config and tokenizer, united."""
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    for source in (getattr(gen, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list | tuple):
            ids.update(int(x) for x in source if x is not None)
    return frozenset(ids)


def weights_hash(model_dir: Path) -> str:
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise ExpertLoadError(f"no *.safetensors files in {model_dir}")
    index: dict[str, Path] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                index[name] = f
    h = hashlib.sha256()
    for name in sorted(index):
        with safe_open(str(index[name]), framework="pt") as st:
            t = st.get_tensor(name).contiguous()
        h.update(f"{name}|{t.dtype}|{','.join(map(str, t.shape))}\n".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def resolve(path_or_id: str | Path, revision: str | None) -> tuple[Path, str]:
    """A local directory as is, or a hub snapshot (safetensors only) at `revision`."""
    p = Path(path_or_id).expanduser()
    if p.is_dir():
        return p, revision or "local"
    if str(path_or_id).startswith((".", "/", "~")):
        raise ExpertLoadError(f"expert directory {p} does not exist (build it: dmoe experts build)")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(
            str(path_or_id),
            revision=revision,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"],
        )
    except Exception as err:  # hub errors come in many types; all mean "cannot fetch"
        raise ExpertLoadError(
            f"cannot fetch {path_or_id!r} at revision {revision or 'main'}: {err}"
        ) from err
    return Path(local), revision or Path(local).name


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ExpertLoadError(f"dtype {dtype!r} is not one of auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load_expert(
    path_or_hf_id: str | Path,
    *,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    domains: tuple[str, ...] | None = None,
) -> LoadedExpert:
    """Load model + tokenizer in eval mode and build the card (capacity/engine filled by Engine)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, rev = resolve(path_or_hf_id, revision)
    meta: dict[str, Any] = {}
    if (path / CARD_FILE).is_file():
        meta = json.loads((path / CARD_FILE).read_text())
    dev = pick_device(device)
    tdtype = pick_dtype(dtype, dev)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=tdtype).to(dev).eval()
    except (OSError, ValueError) as err:
        raise ExpertLoadError(f"cannot load expert from {path}: {err}") from err
    max_context = int(
        meta.get("max_context") or getattr(model.config, "max_position_embeddings", 2048)
    )
    card = ExpertCard(
        model_id=str(meta.get("model_id") or path_or_hf_id),
        revision=str(meta.get("revision") or rev),
        weights_hash=weights_hash(path),
        domains=tuple(domains or meta.get("domains") or ("general",)),
        max_context=max_context,
        capacity=1,
        engine="hf",
        max_new_tokens=min(MAX_NEW_TOKENS, max_context),
        dtype=str(tdtype).removeprefix("torch."),
    )
    log.info("loaded %s@%s on %s (%s)", card.model_id, card.revision, dev, tdtype)
    return LoadedExpert(
        model=model,
        tokenizer=tokenizer,
        card=card,
        device=dev,
        path=path,
        eos_ids=eos_ids(model, tokenizer),
    )
