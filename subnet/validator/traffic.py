"""What organic traffic looks like: the request fields users send and their recent prompts.

The gateway calls `observe` for every user request it served; synthetic tasks (`tasks.make_task`)
are drawn from what was recorded, so a miner cannot tell the two apart by their fields or by
their wording. Per domain, bounded and rotated (oldest out first):

- `shapes`: the fields of the last `shapes_size` requests (everything in `GenerateRequest` but
  the text: max_tokens, sampling, seed, stop, logprobs, top_logprobs, stream, and anything the
  protocol adds later), with their message structure (chat or completion, roles) and length;
- `entries`: the last `pool_size` prompts themselves, with every uid that saw each one (an
  answer, a hedged backup, a failover), so a task for miner m can come from prompts m never saw;
  a conversation and its earlier turns share that set;
- `systems`: recent distinct system prompts;
- `seen`: who saw each of the last `seen_size` texts (hashes only), so a prompt that comes back
  after leaving the pool still counts as seen by the miners that answered it before.

Plain data, saved in the validator's state file (`to_dict`; user prompts are dropped unless
`include_prompts`); `from_dict` loads what it can of anything and never raises.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict, deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol import GenerateRequest, ProtocolError
from protocol.limits import MAX_DOMAINS
from subnet.validator.weave import Vocab, build_vocab, tokens_by_kind

log = logging.getLogger(__name__)

PROFILE_VERSION = 1
# Never recorded as fields: the text itself, and what is fresh on every request.
_NOT_FIELDS = ("prompt", "messages", "request_id", "version")


@dataclass(frozen=True)
class TrafficConfig:
    pool_size: int = 128  # recent prompts kept per domain
    shapes_size: int = 512  # recent request shapes kept per domain
    systems_size: int = 16  # distinct system prompts kept per domain
    seen_size: int = 8192  # texts (by hash) whose miners are remembered after leaving the pool
    share_window: int = 4096  # requests over which each domain's share of traffic is counted
    max_prompt_chars: int = 16_384  # longer prompts count as shapes but are not pooled
    min_pool: int = 16  # below this many usable prompts, tasks fall back to templates in part
    max_domains: int = MAX_DOMAINS


@dataclass(frozen=True)
class Shape:
    """One request without its text: the fields as sent, its structure and its size."""

    fields: Mapping[str, Any]
    roles: tuple[str, ...] | None  # None: a completion (`prompt`)
    chars: int

    def to_dict(self) -> dict[str, Any]:
        roles = None if self.roles is None else list(self.roles)
        return {"fields": dict(self.fields), "roles": roles, "chars": self.chars}


@dataclass
class Entry:
    """One recent organic prompt. `served_by` grows when the same text (or a conversation it
    belongs to) is sent to another miner."""

    shape: Shape
    prompt: str | None
    messages: tuple[tuple[str, str], ...] | None
    served_by: set[int] = field(default_factory=set)
    at: float = 0.0
    key: str = field(init=False)
    prefix_keys: frozenset[str] = field(init=False)  # earlier turns, as the user sent them
    bound: int = field(init=False)  # at most this many prompt tokens (`token_bound`)
    _tokens: tuple[tuple[str, str, str], ...] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.key = _key(self.prompt, self.messages)
        self.bound = token_bound(self.prompt, self.messages)
        msgs = self.messages or ()
        self.prefix_keys = frozenset(
            _key(None, msgs[:i]) for i in range(1, len(msgs)) if msgs[i - 1][0] == "user"
        )

    def editable(self) -> tuple[str, ...]:
        """The texts a task may change: system prompts are shared by many users' requests, and
        one never seen before would stand out."""
        if self.prompt is not None:
            return (self.prompt,)
        return tuple(c for r, c in self.messages or () if r != "system")

    def tokens(self) -> tuple[tuple[str, str, str], ...]:
        if self._tokens is None:  # once per entry, on first use (not on the gateway's path)
            self._tokens = tokens_by_kind(self.editable())
        return self._tokens

    def request(self) -> GenerateRequest:
        """The request as the user sent it (a fresh request id)."""
        return build_request(self.shape.fields, self.prompt, self.messages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape.to_dict(),
            "prompt": self.prompt,
            "messages": None if self.messages is None else [list(m) for m in self.messages],
            "served_by": sorted(self.served_by),
            "at": self.at,
        }


def build_request(
    fields: Mapping[str, Any],
    prompt: str | None,
    messages: tuple[tuple[str, str], ...] | None,
) -> GenerateRequest:
    """A validated request from recorded fields and a text (raises ProtocolError)."""
    d: dict[str, Any] = dict(fields)
    if prompt is not None:
        d["prompt"] = prompt
    if messages is not None:
        d["messages"] = [{"role": r, "content": c} for r, c in messages]
    return GenerateRequest.from_dict(d)


def token_bound(prompt: str | None, messages: tuple[tuple[str, str], ...] | None) -> int:
    """An upper bound on a prompt's tokens under any tokenizer: byte-level vocabularies give at
    most one token per byte, and a chat template adds a few special tokens per message."""
    if prompt is not None:
        return len(prompt.encode()) + 8
    return sum(len(c.encode()) + 16 for _, c in messages or ()) + 16


def _key(prompt: str | None, messages) -> str:
    text = prompt if prompt is not None else "\x1e".join(f"{r}\x1f{c}" for r, c in messages)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def content_key(req: GenerateRequest) -> str:
    """Identity of a request's text (not its fields): equal for the same prompt or chat."""
    msgs = None if req.messages is None else tuple((m.role, m.content) for m in req.messages)
    return _key(req.prompt, msgs)


def shape_of(req: GenerateRequest) -> Shape:
    d = req.to_dict()
    fields = {k: v for k, v in d.items() if k not in _NOT_FIELDS}
    if req.messages is None:
        return Shape(fields, None, len(req.prompt or ""))
    return Shape(
        fields, tuple(m.role for m in req.messages), sum(len(m.content) for m in req.messages)
    )


class TrafficProfile:
    """Bounded record of organic requests per domain; see the module docstring."""

    def __init__(self, cfg: TrafficConfig = TrafficConfig()):
        self.cfg = cfg
        self.observed = 0
        self._shapes: dict[str, deque[Shape]] = {}
        self._entries: dict[str, deque[Entry]] = {}
        self._systems: dict[str, deque[str]] = {}
        self._vocab: dict[str, tuple[int, Vocab]] = {}
        self._generation: dict[str, int] = {}
        self._seen: OrderedDict[str, set[int]] = OrderedDict()
        self._counts: dict[str, float] = {}  # requests per domain, decayed over share_window

    # --- recording
    def observe(
        self, req: GenerateRequest, domain: str, served_by: int | Collection[int], now: float
    ) -> None:
        """Record one organic request, and every uid it was sent to."""
        if domain not in self._shapes and len(self._shapes) >= self.cfg.max_domains:
            log.warning(
                "traffic profile: more than %d domains; %r not recorded", len(self._shapes), domain
            )
            return
        uids = {served_by} if isinstance(served_by, int) else set(served_by)
        shape = shape_of(req)
        self.observed += 1
        keep = 1.0 - 1.0 / self.cfg.share_window
        for d in self._counts:
            self._counts[d] *= keep
        self._counts[domain] = self._counts.get(domain, 0.0) + 1.0
        self._shapes.setdefault(domain, deque(maxlen=self.cfg.shapes_size)).append(shape)
        msgs = None if req.messages is None else tuple((m.role, m.content) for m in req.messages)
        for role, content in msgs or ():
            systems = self._systems.setdefault(domain, deque(maxlen=self.cfg.systems_size))
            if role == "system" and content not in systems:
                systems.append(content)
        if shape.chars > self.cfg.max_prompt_chars:
            return
        entry = Entry(shape, req.prompt, msgs, uids, now)
        for key in (entry.key, *entry.prefix_keys):
            entry.served_by |= self._seen.get(key, set())
        self._link(domain, entry)
        self._remember(entry.key, entry.served_by)
        for key in entry.prefix_keys:
            self._remember(key, uids)
        self._entries.setdefault(domain, deque(maxlen=self.cfg.pool_size)).append(entry)
        self._generation[domain] = self._generation.get(domain, 0) + 1

    def _link(self, domain: str, new: Entry) -> None:
        """Entries of the same text or conversation share who saw them: a miner that answered
        turn one has seen the text a task built on turn two would start with."""
        related = [
            e
            for e in self._entries.get(domain, ())
            if e.key == new.key or e.key in new.prefix_keys or new.key in e.prefix_keys
        ]
        seen = set(new.served_by).union(*(e.served_by for e in related))
        for e in (*related, new):
            e.served_by |= seen

    def _remember(self, key: str, uids: set[int]) -> None:
        self._seen.setdefault(key, set()).update(uids)
        self._seen.move_to_end(key)
        while len(self._seen) > self.cfg.seen_size:
            self._seen.popitem(last=False)

    # --- reading (tasks.make_task)
    def domains(self) -> tuple[str, ...]:
        return tuple(self._shapes)

    def count(self, domain: str) -> float:
        """Recent requests of the domain (about the last `share_window` of all domains)."""
        return self._counts.get(domain, 0.0)

    def shapes(self, domain: str) -> tuple[Shape, ...]:
        return tuple(self._shapes.get(domain, ()))

    def entries(self, domain: str) -> tuple[Entry, ...]:
        return tuple(self._entries.get(domain, ()))

    def systems(self, domain: str) -> tuple[str, ...]:
        return tuple(self._systems.get(domain, ()))

    def vocab(self, domain: str) -> Vocab:
        """Replaceable tokens of the domain's pooled prompts (system prompts excluded)."""
        gen = self._generation.get(domain, 0)
        cached = self._vocab.get(domain)
        if cached is None or cached[0] != gen:
            pairs = (p for e in self._entries.get(domain, ()) for p in e.tokens())
            cached = (gen, build_vocab(pairs))
            self._vocab[domain] = cached
        return cached[1]

    def summary(self) -> dict[str, Any]:
        """Counts for status pages: no prompt text."""
        return {
            "observed": self.observed,
            "domains": {
                d: {"shapes": len(s), "prompts": len(self._entries.get(d, ()))}
                for d, s in self._shapes.items()
            },
        }

    # --- persistence
    def to_dict(self, include_prompts: bool = True) -> dict[str, Any]:
        return {
            "version": PROFILE_VERSION,
            "observed": self.observed,
            "shapes": {d: [s.to_dict() for s in q] for d, q in self._shapes.items()},
            "entries": {
                d: [e.to_dict() for e in q] for d, q in self._entries.items() if include_prompts
            },
            "systems": {d: list(q) for d, q in self._systems.items() if include_prompts},
            "seen": {k: sorted(u) for k, u in self._seen.items()},
            "counts": dict(self._counts),
        }

    @classmethod
    def from_dict(cls, d: Any, cfg: TrafficConfig = TrafficConfig()) -> TrafficProfile:
        """Whatever loads; a bad record is skipped, anything unreadable gives an empty profile."""
        profile = cls(cfg)
        if not isinstance(d, Mapping) or d.get("version") != PROFILE_VERSION:
            if d:
                log.warning("traffic profile unreadable or of another version; starting empty")
            return profile
        for domain, items in _domain_lists(d.get("shapes"), cfg):
            shapes = [s for s in map(_load_shape, items) if s is not None]
            if shapes:
                profile._shapes[domain] = deque(shapes, maxlen=cfg.shapes_size)
        for domain, items in _domain_lists(d.get("entries"), cfg):
            entries = [e for e in map(_load_entry, items) if e is not None]
            if entries and domain in profile._shapes:
                profile._entries[domain] = deque(entries, maxlen=cfg.pool_size)
        for domain, items in _domain_lists(d.get("systems"), cfg):
            if domain in profile._shapes:
                q = profile._systems.setdefault(domain, deque(maxlen=cfg.systems_size))
                q.extend(s for s in items if isinstance(s, str) and s and s not in q)
        counts = d.get("counts")
        for domain, n in counts.items() if isinstance(counts, Mapping) else ():
            ok = isinstance(n, int | float) and not isinstance(n, bool) and 0 <= n < 1e12
            if domain in profile._shapes and ok:
                profile._counts[domain] = float(n)
        for domain, shapes in profile._shapes.items():
            profile._counts.setdefault(domain, float(len(shapes)))
        seen = d.get("seen")
        for key, uids in list(seen.items() if isinstance(seen, Mapping) else ())[-cfg.seen_size :]:
            if isinstance(key, str) and isinstance(uids, list):
                profile._seen[key] = {u for u in uids if type(u) is int and u >= 0}
        observed = d.get("observed")
        profile.observed = observed if isinstance(observed, int) and observed >= 0 else 0
        return profile


def _domain_lists(value: Any, cfg: TrafficConfig):
    if not isinstance(value, Mapping):
        return
    for domain, items in list(value.items())[: cfg.max_domains]:
        if isinstance(domain, str) and domain and isinstance(items, list):
            yield domain, items


def _load_shape(d: Any) -> Shape | None:
    if not isinstance(d, Mapping):
        return None
    fields, roles, chars = d.get("fields"), d.get("roles"), d.get("chars")
    if not isinstance(fields, Mapping) or not isinstance(chars, int) or chars < 0:
        return None
    if roles is not None and not (
        isinstance(roles, list) and roles and all(isinstance(r, str) for r in roles)
    ):
        return None
    shape = Shape(dict(fields), None if roles is None else tuple(roles), chars)
    try:  # the fields must make a valid request (bounds, types) with some text
        GenerateRequest.from_dict({**shape.fields, "prompt": "x"})
    except (ProtocolError, TypeError, ValueError):
        return None
    return shape


def _load_entry(d: Any) -> Entry | None:
    if not isinstance(d, Mapping):
        return None
    shape = _load_shape(d.get("shape"))
    prompt, raw, served, at = d.get("prompt"), d.get("messages"), d.get("served_by"), d.get("at")
    if shape is None or not isinstance(served, list):
        return None
    messages = None
    if raw is not None:
        if not isinstance(raw, list) or not all(
            isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m) for m in raw
        ):
            return None
        messages = tuple((r, c) for r, c in raw)
    entry = Entry(
        shape,
        prompt if isinstance(prompt, str) else None,
        messages,
        {u for u in served if isinstance(u, int) and not isinstance(u, bool)},
        float(at) if isinstance(at, int | float) and not isinstance(at, bool) else 0.0,
    )
    try:
        entry.request()
    except (ProtocolError, TypeError, ValueError):
        return None
    return entry
