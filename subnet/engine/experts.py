"""Offline tiny experts: small Llama-style causal LMs trained on CPU in about a minute.

`build_tiny_experts(out_dir)` trains one byte-level BPE tokenizer on all corpora, then one model
per domain (`code` on Python stdlib source, `math` on generated arithmetic, `general` on the
prose of the interpreter's documentation topics, `data` on generated JSON/SQL/CSV/shell; see
`corpora`), and saves each with
`save_pretrained` (safetensors) + the tokenizer + `expert.json` (the card's static part), so they
load through exactly the same path as a Hugging Face model (`subnet.engine.loading.load_expert`).

Builds are cached: `out_dir/<domain>/expert.json` records the recipe hash (sizes, steps, seeds,
corpus digests, library versions); a matching hash skips the build. Training is seeded and
single-process, so the same machine always produces the same weights. torch is imported
lazily so that importing this module (for its constants) stays cheap.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from subnet.engine import corpora

log = logging.getLogger(__name__)

CARD_FILE = "expert.json"
DEFAULT_EXPERTS_DIR = Path("~/.dmoe/experts").expanduser()  # where `dmoe experts build` writes
TOKENIZER_DIR = "tokenizer"
EOS = "<|endoftext|>"
PAD = "<|pad|>"
DOMAINS = ("code", "math", "general", "data")

# progress(domain, step, total_steps, loss) — the CLI draws a rich bar from it.
Progress = Callable[[str, int, int, float], None]


@dataclass(frozen=True)
class Recipe:
    vocab_size: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_context: int
    seq_len: int
    batch: int
    steps: int
    lr: float
    corpus_chars: int
    seed: int = 0


RECIPES = {
    # ~1.4M parameters each; about 25 s per expert on 2 idle CPU cores.
    "default": Recipe(
        vocab_size=1024,
        hidden=128,
        layers=4,
        heads=4,
        intermediate=344,
        max_context=1024,
        seq_len=128,
        batch=16,
        steps=160,
        lr=3e-3,
        corpus_chars=400_000,
    ),
    # Seconds to build; still clearly domain-specialised.
    "test": Recipe(
        vocab_size=384,
        hidden=48,
        layers=2,
        heads=4,
        intermediate=96,
        max_context=512,
        seq_len=64,
        batch=8,
        steps=40,
        lr=5e-3,
        corpus_chars=60_000,
    ),
    # The test size with 32-wide attention heads: vLLM's CPU attention kernels take head sizes
    # of 32, 64, 80, ... only (the "test" size's are 12 wide). For the vLLM backend's tests.
    "test-hd32": Recipe(
        vocab_size=384,
        hidden=64,
        layers=2,
        heads=2,
        intermediate=128,
        max_context=512,
        seq_len=64,
        batch=8,
        steps=40,
        lr=5e-3,
        corpus_chars=60_000,
    ),
}


def recipe_hash(recipe: Recipe, texts: dict[str, str]) -> str:
    import tokenizers
    import torch
    import transformers

    blob = json.dumps(
        {
            "recipe": asdict(recipe),
            "corpora": {d: corpora.digest(t) for d, t in sorted(texts.items())},
            "versions": [torch.__version__, transformers.__version__, tokenizers.__version__],
            "format": 1,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_tiny_experts(
    out_dir: Path, *, size: str = "default", progress: Progress | None = None
) -> dict[str, Path]:
    """Build (or reuse) the tiny experts under `out_dir`; returns domain -> model directory."""
    if size not in RECIPES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(RECIPES)}")
    recipe = RECIPES[size]
    out_dir = Path(out_dir)
    texts = {d: corpora.corpus(d, recipe.corpus_chars) for d in DOMAINS}
    rhash = recipe_hash(recipe, texts)
    paths = {d: out_dir / d for d in DOMAINS}
    if all(_cached(p, rhash) for p in paths.values()):
        return paths
    out_dir.mkdir(parents=True, exist_ok=True)
    # Several processes (test sessions, a miner and a validator) may build into one directory.
    with open(out_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build(paths, texts, recipe, rhash, size, progress)
    return paths


def _build(
    paths: dict[str, Path],
    texts: dict[str, str],
    recipe: Recipe,
    rhash: str,
    size: str,
    progress: Progress | None,
) -> None:
    if all(_cached(p, rhash) for p in paths.values()):
        return
    tokenizer = _train_tokenizer(texts, recipe)
    for domain, path in paths.items():
        if _cached(path, rhash):
            continue
        t0 = time.monotonic()
        model = _train_model(domain, texts[domain], tokenizer, recipe, progress)
        path.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)
        card = {
            "model_id": f"dmoe/tiny-{domain}",
            "revision": rhash,
            "domains": [domain],
            "max_context": recipe.max_context,
            "size": size,
            "recipe_hash": rhash,
        }
        # Written last: its presence with the right hash is what marks the build complete.
        (path / CARD_FILE).write_text(json.dumps(card, indent=2))
        log.info("built expert %s in %.1fs at %s", domain, time.monotonic() - t0, path)


def _cached(path: Path, rhash: str) -> bool:
    card = path / CARD_FILE
    if not card.is_file():
        return False
    try:
        return json.loads(card.read_text()).get("recipe_hash") == rhash
    except ValueError:
        return False


def _train_tokenizer(texts: dict[str, str], recipe: Recipe):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Equal shares of each domain so neither dominates the merges.
    tok.train_from_iterator([texts[d] for d in sorted(texts)], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=PAD,
        model_max_length=recipe.max_context,
    )


def _train_model(domain: str, text: str, tokenizer, recipe: Recipe, progress: Progress | None):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        intermediate_size=recipe.intermediate,
        max_position_embeddings=recipe.max_context,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    ids = torch.tensor(tokenizer.backend_tokenizer.encode(text).ids, dtype=torch.long)
    gen = torch.Generator().manual_seed(recipe.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=recipe.steps, pct_start=0.1
    )
    model.train()
    for step in range(recipe.steps):
        starts = torch.randint(0, len(ids) - recipe.seq_len - 1, (recipe.batch,), generator=gen)
        batch = torch.stack([ids[s : s + recipe.seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress is not None:
            progress(domain, step + 1, recipe.steps, loss.item())
    model.eval()
    model.generation_config = GenerationConfig(
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    return model
