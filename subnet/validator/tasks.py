"""Synthetic tasks: per-domain prompts, each with fresh randomness, shaped like organic traffic.

A task's randomness (identifiers, numbers, names) is woven into the prompt itself, so the
continuation depends on it: an answer cached from an earlier task, or copied from another
miner's (different) task, does not fit. The request fields are drawn from the same distribution
the gateway produces for typical OpenAI clients (chat vs completion shape, greedy vs sampled,
length), so a miner cannot tell a validator's task from a user's request.

Corpora live in `subnet/data/tasks/` (small templates and word lists; math is generated).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from protocol import ChatMessage, GenerateRequest

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "tasks"
DOMAINS = ("code", "math", "general", "data")


@dataclass(frozen=True)
class TaskMix:
    """How request fields are drawn; matches what the gateway forwards for common clients."""

    chat_share: float = 0.5  # share sent as `messages` (chat completions) rather than `prompt`
    greedy_share: float = 0.5  # temperature 0; greedy answers get the strictest verification
    temperatures: tuple[float, ...] = (0.7, 1.0)
    top_ps: tuple[float, ...] = (1.0, 0.95)
    max_tokens: tuple[int, ...] = (16, 32, 48, 64)


@dataclass(frozen=True)
class Task:
    domain: str
    request: GenerateRequest
    nonce: str  # the randomness woven into the prompt (for logs and copy detection)


@cache
def _templates(name: str) -> tuple[str, ...]:
    text = (DATA_DIR / name).read_text(encoding="utf-8")
    return tuple(t.strip("\n") + "\n" for t in text.split("%%\n") if t.strip())


@cache
def _words() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for line in (DATA_DIR / "words.txt").read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition(":")
        if values.strip():
            out[key.strip()] = tuple(values.split())
    return out


def heldout_text(domain: str) -> str:
    """Held-out domain text used to measure how well an expert fits a domain (never trained on)."""
    return (DATA_DIR / f"heldout_{domain}.txt").read_text(encoding="utf-8")


def _fill(template: str, rng: random.Random) -> tuple[str, str]:
    words = _words()
    picks: dict[str, str] = {}
    for key, values in words.items():
        picks[key] = rng.choice(values)
    # Second choices differ from the first so "{arg}, {arg2}" reads like real code.
    picks["arg2"] = rng.choice([w for w in words["arg"] if w != picks["arg"]])
    picks["Person2"] = rng.choice([w for w in words["Person"] if w != picks["Person"]])
    # A short random suffix on identifiers: about 2^20 variants per template on its own.
    suffix = "".join(rng.choice(string.ascii_lowercase) for _ in range(2)) + str(rng.randrange(100))
    picks["name"] = f"{picks['name']}_{suffix}"
    picks["Name"] = f"{picks['Name']}{suffix.capitalize()}"
    picks["n"], picks["m"], picks["m2"] = (str(rng.randint(2, 999)) for _ in range(3))
    picks["year"] = str(rng.randint(1700, 2024))
    text = template.format(**picks)
    nonce = f"{picks['name']}/{picks['n']}/{picks['m']}/{picks['year']}"
    return text, nonce


def _math_prompt(rng: random.Random) -> tuple[str, str]:
    # A few worked lines then an open one: the answer depends on the fresh numbers.
    lines = []
    for _ in range(rng.randint(2, 4)):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        op = rng.choice("+-")
        lines.append(f"{a} {op} {b} = {a + b if op == '+' else a - b}")
    a, b, c = rng.randint(0, 99), rng.randint(0, 99), rng.randint(1, 12)
    last = rng.choice([f"{a} + {b} =", f"{a} - {b} =", f"({a} + {b}) * {c} =", f"{c} * {b % 13} ="])
    lines.append(last)
    return "\n".join(lines), last


def make_prompt(domain: str, rng: random.Random) -> tuple[str, str]:
    """(prompt text, nonce) for a domain."""
    if domain == "math":
        return _math_prompt(rng)
    if domain == "code":
        return _fill(rng.choice(_templates("code_templates.txt")), rng)
    if domain == "general":
        return _fill(rng.choice(_templates("general_templates.txt")), rng)
    if domain == "data":
        return _fill(rng.choice(_templates("data_templates.txt")), rng)
    raise ValueError(f"unknown task domain {domain!r}; known: {', '.join(DOMAINS)}")


def make_task(domain: str, rng: random.Random, mix: TaskMix = TaskMix()) -> Task:
    """One synthetic task for `domain`, drawn with `rng` (pass a seeded Random for tests)."""
    prompt, nonce = make_prompt(domain, rng)
    greedy = rng.random() < mix.greedy_share
    temperature = 0.0 if greedy else rng.choice(mix.temperatures)
    top_p = 1.0 if greedy else rng.choice(mix.top_ps)
    fields = dict(
        max_tokens=rng.choice(mix.max_tokens),
        temperature=temperature,
        top_p=top_p,
        seed=None if greedy else rng.randrange(1 << 62),
        logprobs=True,
        stream=True,
    )
    if rng.random() < mix.chat_share:
        req = GenerateRequest(messages=(ChatMessage("user", prompt),), **fields)
    else:
        req = GenerateRequest(prompt=prompt, **fields)
    return Task(domain=domain, request=req, nonce=nonce)
