"""Random-init experts of the common decoder architectures: the matrix the engine is held to.

Real miners serve Qwen, Llama, Mistral, Gemma or Phi checkpoints; the offline tiny experts are
all Llama. `build_random_expert(arch, tokenizer_dir, out_dir)` saves a small random-init model of
one architecture (2 layers, hidden 64) with a given tokenizer, loadable by `load_expert` like any
expert, so tests and `scripts/gpu_check.sh` can check the engine and the verifier on each.

Sliding-window architectures get a window of `window` tokens (16 by default) so short test
prompts already cross it. Weights are drawn with a wide `initializer_range` so that greedy
choices are clear-cut rather than near-ties between almost uniform logits: a random model at the
usual 0.02 puts its top two logits ~1e-4 apart, where a padded batch and a lone sequence may
legitimately pick different tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from subnet.engine.experts import CARD_FILE

HIDDEN, HEADS, KV_HEADS, LAYERS = 64, 4, 2, 2

# model_type -> config fields beyond the common ones (sliding windows filled in by `config_for`).
ARCHS: dict[str, dict[str, Any]] = {
    "llama": {},
    "qwen2": {"use_sliding_window": True, "max_window_layers": 1, "sliding_window": "window"},
    "qwen3": {"head_dim": 16},
    "mistral": {"sliding_window": "window"},
    "gemma2": {"sliding_window": "window", "head_dim": 16, "query_pre_attn_scalar": 16},
    "gemma3_text": {
        "sliding_window": "window",
        "head_dim": 16,
        "query_pre_attn_scalar": 16,
        "layer_types": ["sliding_attention", "full_attention"],
    },
    "phi3": {"sliding_window": "window"},
    "olmo2": {},
    "gpt2": {"n_embd": HIDDEN, "n_layer": LAYERS, "n_head": HEADS},
    "gpt_neox": {"rotary_pct": 0.5},
}
SLIDING = ("qwen2", "mistral", "gemma2", "gemma3_text", "phi3")


def config_for(
    arch: str,
    vocab_size: int,
    *,
    window: int = 16,
    max_context: int = 512,
    eos_token_id: int | list[int] = 0,
    pad_token_id: int = 1,
    initializer_range: float = 0.5,
):
    """A transformers config of `arch` (a key of ARCHS), small and CPU-fast."""
    from transformers import AutoConfig

    extra = {k: (window if v == "window" else v) for k, v in ARCHS[arch].items()}
    common: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=max_context,
        initializer_range=initializer_range,
        eos_token_id=eos_token_id,
        bos_token_id=eos_token_id if isinstance(eos_token_id, int) else eos_token_id[0],
        pad_token_id=pad_token_id,
        tie_word_embeddings=arch not in ("gpt_neox", "phi3"),
    )
    if arch == "gpt2":
        common = {k: v for k, v in common.items() if "hidden" not in k and "heads" not in k}
        common["n_positions"] = common.pop("max_position_embeddings")
    return AutoConfig.for_model(arch, **{**common, **extra})


def build_random_expert(
    arch: str,
    tokenizer_dir: Path,
    out_dir: Path,
    *,
    window: int = 16,
    max_context: int = 512,
    eos_ids: list[int] | None = None,
    seed: int = 0,
) -> Path:
    """Save a random-init `arch` model with the tokenizer of `tokenizer_dir` into `out_dir`.

    `eos_ids` (default: the tokenizer's EOS) becomes `generation_config.eos_token_id`; a list of
    two reproduces the Qwen2.5-Instruct / Llama-3-Instruct layout.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos: int | list[int] = eos_ids if eos_ids else tok.eos_token_id
    config = config_for(
        arch,
        len(tok),
        window=window,
        max_context=max_context,
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=eos, bos_token_id=config.bos_token_id, pad_token_id=config.pad_token_id
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    card = {"model_id": f"random/{arch}", "revision": f"seed{seed}", "max_context": max_context}
    (out_dir / CARD_FILE).write_text(json.dumps(card))
    return out_dir
