"""Synthetic tasks: prompts with fresh randomness, drawn to look like the gateway's own traffic.

A miner must not be able to tell a validator's task from a user's request, or it could serve
tasks honestly and users cheaply. So once the gateway has served users (`traffic.TrafficProfile`):

- a task is a recent organic prompt of its domain that the target miner never saw, with a few of
  its own tokens replaced by others users wrote (`weave`): a cached or copied answer does not fit,
  and no n-gram or length marks it;
- its fields (chat or completion, system prompt, max_tokens, temperature, top_p, seed, stop,
  logprobs, ...) are those the user sent with it, so tasks follow the recorded distribution;
- its domain is drawn in proportion to the organic traffic (`pick_domain`).

Before that (cold start, or while a domain's pool is thin) the prompts come from the public
templates in `subnet/data/tasks/` (`<domain>_templates.txt`; math is generated), with fields
drawn from the recorded shapes, else from `COLD_START`: what common OpenAI clients send through
the gateway (`openai_format.to_generate` fills temperature 1.0 and max_tokens 64 for chat, 16
for completions when a client leaves them out).
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from protocol import ExpertCard, GenerateRequest, ProtocolError
from protocol.limits import MAX_NEW_TOKENS
from subnet.validator.traffic import Entry, TrafficProfile, build_request, token_bound
from subnet.validator.weave import weave

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "tasks"
DOMAINS = ("code", "math", "general", "data")
DEFAULT_SYSTEM = "You are a helpful assistant."  # the system prompt of OpenAI's own examples
# Seeds people pick; a larger recorded seed is replaced by a fresh one of as many digits, so a
# task does not repeat a user's (random-looking) seed next to a near copy of the user's prompt.
_KEEP_SEED_BELOW = 10_000
_COMMON_SEEDS = (0, 1, 42, 123, 1234)
_TRIES = 4  # organic prompts tried per task (some have nothing to vary)
# Without a card, tasks fit the smallest context of an expert the project ships (the tiny test
# experts); a miner's card gives its own.
DEFAULT_CONTEXT = 512
_WEAVE_SLACK = 16  # tokens a woven prompt may grow by


@dataclass(frozen=True)
class Limits:
    """What the target miner can take: a task it must refuse would measure nothing."""

    max_context: int = DEFAULT_CONTEXT
    max_new_tokens: int = MAX_NEW_TOKENS

    @classmethod
    def of(cls, card: ExpertCard | None) -> Limits:
        return cls() if card is None else cls(card.max_context, card.max_new_tokens)

    def room(self, prompt_bound: int) -> int:
        """The most new tokens that fit after a prompt of at most `prompt_bound` tokens."""
        return min(self.max_new_tokens, self.max_context - prompt_bound)


@dataclass(frozen=True)
class ClientShape:
    """A kind of client, as the gateway forwards its requests, and its share of the traffic."""

    share: float
    chat: bool
    max_tokens: tuple[int, ...]
    temperatures: tuple[float, ...]
    top_ps: tuple[float, ...] = (1.0,)
    system_share: float = 0.0
    seed_share: float = 0.0
    stops: tuple[tuple[str, ...], ...] = ((),)


# At most 64 new tokens (the gateway's default for chat) until users show what they ask for: a
# cold start is a guess, and a miner may refuse more without its card saying so
# (`--max-new-tokens`). Recorded traffic then sets the sizes.
COLD_START: tuple[ClientShape, ...] = (
    ClientShape(0.35, chat=True, max_tokens=(64,), temperatures=(1.0,)),  # SDK defaults
    # LangChain's ChatOpenAI: temperature 0.7, often with a system prompt.
    ClientShape(0.25, chat=True, max_tokens=(64,), temperatures=(0.7,), system_share=0.5),
    # Evaluation harnesses and agents: greedy, sometimes seeded.
    ClientShape(
        0.15,
        chat=True,
        max_tokens=(32, 64),
        temperatures=(0.0,),
        system_share=0.3,
        seed_share=0.3,
    ),
    ClientShape(0.10, chat=False, max_tokens=(16,), temperatures=(1.0,)),  # legacy completions
    # Autocompletion: short, near-greedy, cut at a line or a paragraph.
    ClientShape(
        0.15,
        chat=False,
        max_tokens=(32, 64),
        temperatures=(0.0, 0.2),
        stops=((), ("\n",), ("\n\n",)),
    ),
)


@dataclass(frozen=True)
class Task:
    domain: str
    request: GenerateRequest
    nonce: str  # the randomness woven into the prompt (for logs and copy detection)
    source: str = "template"  # "organic:<content key>" when built on a user's prompt


@cache
def _templates(name: str) -> tuple[str, ...]:
    # Templates are separated by lines of %%; a file without them has one template per line
    # (main read general_templates.txt as a single ten-line template).
    text = (DATA_DIR / name).read_text(encoding="utf-8")
    if "%%\n" not in text:
        return tuple(line for line in text.splitlines() if line.strip())
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


_GENERATED = {"math": _math_prompt}


def make_prompt(domain: str, rng: random.Random) -> tuple[str, str]:
    """(template prompt text, nonce) for a domain: the cold start."""
    if domain in _GENERATED:
        return _GENERATED[domain](rng)
    name = f"{domain}_templates.txt"
    if not (DATA_DIR / name).is_file():
        raise ValueError(
            f"no task templates for domain {domain!r}: add subnet/data/tasks/{name} "
            f"(templates separated by lines of %%) or a generator in tasks._GENERATED"
        )
    return _fill(rng.choice(_templates(name)), rng)


def pick_domain(
    rng: random.Random, domains: Sequence[str], profile: TrafficProfile | None = None
) -> str:
    """One of `domains` in proportion to its organic traffic (uniform before any), with a floor
    of 5% of an even share so a declared domain users rarely ask for is still checked."""
    counts = [profile.count(d) if profile is not None else 0 for d in domains]
    total = sum(counts)
    if total == 0:
        return rng.choice(list(domains))
    floor = max(1.0, 0.05 * total / len(domains))
    return rng.choices(list(domains), [c + floor for c in counts])[0]


def make_task(
    domain: str,
    rng: random.Random,
    profile: TrafficProfile | None = None,
    *,
    for_uid: int | None = None,
    card: ExpertCard | None = None,
) -> Task:
    """One synthetic task for `domain` (pure given `rng` and the profile's contents).

    Built on a recent organic prompt of the domain that `for_uid` never saw when the profile has
    enough of them; the public templates otherwise, with fields as recorded (else COLD_START).
    Prompt and max_tokens fit the context of `card` (the target miner's)."""
    limits = Limits.of(card)
    if profile is not None:
        task = _from_organic(domain, rng, profile, for_uid, limits)
        if task is not None:
            return task
    return _from_template(domain, rng, profile, limits)


def _from_organic(
    domain: str,
    rng: random.Random,
    profile: TrafficProfile,
    for_uid: int | None,
    limits: Limits,
) -> Task | None:
    usable = [
        e
        for e in profile.entries(domain)
        if (for_uid is None or for_uid not in e.served_by)
        and _max_tokens(e.shape.fields) <= limits.room(e.bound + _WEAVE_SLACK)
    ]
    # A thin pool would repeat the same few prompts: mix in templates until it fills.
    if not usable or rng.random() * profile.cfg.min_pool >= len(usable):
        return None
    vocab = profile.vocab(domain)
    for entry in rng.sample(usable, min(_TRIES, len(usable))):
        woven = weave(entry.editable(), vocab, rng)
        if woven is None:
            continue
        new_texts, nonce = woven
        prompt, messages = _replace_editable(entry, new_texts)
        try:
            req = build_request(fresh_fields(entry.shape.fields, rng), prompt, messages)
        except ProtocolError:
            continue
        return Task(domain, req, nonce, f"organic:{entry.key}")
    return None


def _max_tokens(fields: Mapping[str, Any]) -> int:
    value = fields.get("max_tokens", 64)
    return value if isinstance(value, int) else 64


def _replace_editable(entry: Entry, texts: tuple[str, ...]):
    if entry.prompt is not None:
        return texts[0], None
    it = iter(texts)
    return None, tuple((r, c if r == "system" else next(it)) for r, c in entry.messages or ())


def fresh_fields(fields: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """Recorded fields for a new request: a random-looking seed is replaced by a fresh one."""
    out = dict(fields)
    seed = out.get("seed")
    if isinstance(seed, int) and seed >= _KEEP_SEED_BELOW:
        digits = len(str(seed))
        out["seed"] = rng.randrange(10 ** (digits - 1), min(10**digits, 1 << 63))
    return out


def _from_template(
    domain: str, rng: random.Random, profile: TrafficProfile | None, limits: Limits
) -> Task:
    prompt, nonce = make_prompt(domain, rng)
    system_texts = profile.systems(domain) if profile is not None else ()
    system_text = rng.choice(system_texts) if system_texts else DEFAULT_SYSTEM
    room = limits.room(token_bound(None, (("system", system_text), ("user", prompt))))
    shapes = profile.shapes(domain) if profile is not None else ()
    if not shapes and profile is not None:
        shapes = tuple(s for d in profile.domains() for s in profile.shapes(d))
    fitting = [s for s in shapes if _max_tokens(s.fields) <= room]
    if fitting or shapes:
        shape = rng.choice(fitting or shapes)
        fields = fresh_fields(shape.fields, rng)
        chat = shape.roles is not None
        system = chat and "system" in (shape.roles or ())
    else:
        for _ in range(8):  # redraw rather than clamp: clamping would change the mix
            fields, chat, system = _cold_start_fields(rng)
            if fields["max_tokens"] <= room:
                break
    fields["max_tokens"] = max(1, min(_max_tokens(fields), room))
    if not chat:
        return Task(domain, build_request(fields, prompt, None), nonce)
    messages = ((("system", system_text),) if system else ()) + (("user", prompt),)
    return Task(domain, build_request(fields, None, messages), nonce)


def _cold_start_fields(rng: random.Random) -> tuple[dict[str, Any], bool, bool]:
    """(fields, chat, with a system prompt) of one request from the COLD_START mix."""
    client = rng.choices(COLD_START, [c.share for c in COLD_START])[0]
    fields: dict[str, Any] = {
        "max_tokens": rng.choice(client.max_tokens),
        "temperature": rng.choice(client.temperatures),
        "top_p": rng.choice(client.top_ps),
        "stop": list(rng.choice(client.stops)),
        "logprobs": True,  # the gateway always asks: a share of answers is verified
        "top_logprobs": 0,
        "stream": True,
    }
    if rng.random() < client.seed_share:
        fields["seed"] = rng.choice(_COMMON_SEEDS)
    return fields, client.chat, rng.random() < client.system_share
