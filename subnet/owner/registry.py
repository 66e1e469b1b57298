"""The expert registry: which models count on this subnet, published by the owner.

A versioned JSON file lists each expert (model id, pinned revision, weights hash, domains).
The owner publishes it by committing `{"registry": VERSION, "sha256": DIGEST}` from the subnet
owner hotkey (the Commitments pallet, at most 384 bytes, so the file itself travels out of band:
in the repository, on a web page, with the validator's models). Validators load the file, check
its digest against the owner's commitment, and refuse experts not in it (`unknown_model`).

    dmoe owner registry build --experts.dir DIR --out registry.json [--version N]
    dmoe owner registry publish registry.json --netuid N --wallet.name owner
    dmoe validator ... --registry registry.json
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT = "dmoe-registry/1"
_HEX = re.compile(r"^[0-9a-f]{16,128}$")


class RegistryError(ValueError):
    """A registry file or commitment that cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class RegistryEntry:
    model_id: str
    revision: str
    weights_hash: str
    domains: tuple[str, ...]


@dataclass(frozen=True)
class Registry:
    version: int
    experts: tuple[RegistryEntry, ...]

    @property
    def hashes(self) -> frozenset[str]:
        return frozenset(e.weights_hash for e in self.experts)

    def allows(self, weights_hash: str) -> bool:
        return weights_hash in self.hashes

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "experts": [asdict(e) | {"domains": list(e.domains)} for e in self.experts],
        }

    def canonical_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def commitment(self) -> str:
        """What the owner commits on chain (well under the 384-byte limit)."""
        return json.dumps(
            {"registry": self.version, "sha256": self.digest()}, separators=(",", ":")
        )

    @classmethod
    def from_dict(cls, d: Any) -> Registry:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise RegistryError(f"not a registry: expected {{'format': '{FORMAT}', ...}}")
        version = d.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RegistryError("registry 'version' must be a positive integer")
        raw = d.get("experts")
        if not isinstance(raw, list) or not raw or len(raw) > 256:
            raise RegistryError("registry 'experts' must list 1..256 experts")
        entries = []
        for i, e in enumerate(raw):
            try:
                entry = RegistryEntry(
                    model_id=str(e["model_id"]),
                    revision=str(e["revision"]),
                    weights_hash=str(e["weights_hash"]),
                    domains=tuple(str(x) for x in e["domains"]),
                )
            except (KeyError, TypeError) as err:
                raise RegistryError(
                    f"experts[{i}] needs model_id, revision, weights_hash, domains ({err})"
                ) from None
            if not _HEX.match(entry.weights_hash) or not entry.domains:
                raise RegistryError(
                    f"experts[{i}]: weights_hash must be lowercase hex; domains non-empty"
                )
            entries.append(entry)
        if len({e.weights_hash for e in entries}) != len(entries):
            raise RegistryError("registry lists the same weights_hash twice")
        return cls(version=version, experts=tuple(entries))


def load(path: Path) -> Registry:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise RegistryError(f"cannot read registry {path}: {err}") from None
    return Registry.from_dict(data)


def save(registry: Registry, path: Path) -> None:
    Path(path).write_text(json.dumps(registry.to_dict(), indent=1) + "\n")


def parse_commitment(text: str) -> tuple[int, str] | None:
    """(version, sha256) from an owner commitment, or None if it is not a registry commitment."""
    try:
        d = json.loads(text)
    except ValueError:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("registry"), int):
        return None
    digest = d.get("sha256")
    return (d["registry"], digest) if isinstance(digest, str) else None


def check_published(registry: Registry, commitment_text: str | None) -> tuple[str, str]:
    """("ok" | "absent" | "mismatch", why) for `registry` against the owner's commitment."""
    parsed = parse_commitment(commitment_text) if commitment_text else None
    if parsed is None:
        return "absent", "the subnet owner has not published a registry commitment"
    version, digest = parsed
    if digest != registry.digest():
        return "mismatch", (
            f"registry file (version {registry.version}, sha256 {registry.digest()[:12]}) differs "
            f"from the one the owner published (version {version}, sha256 {digest[:12]}); "
            "fetch the owner's current registry file"
        )
    return "ok", f"registry version {version} matches the owner's commitment"


def build_from_dir(experts_dir: Path, version: int = 1) -> Registry:
    """A registry of every expert directory under `experts_dir` (with its recomputed hash)."""
    from subnet.engine.loading import weights_hash

    if version < 1:
        raise RegistryError(
            f"--version must be a positive integer (bump it on every change), got {version}"
        )
    root = Path(experts_dir)
    if not root.is_dir():
        raise RegistryError(
            f"--experts.dir {experts_dir} is not a directory (one folder per expert; "
            "`dmoe experts build` makes the tiny ones)"
        )
    entries = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        card_file = d / "expert.json"
        if not any(d.glob("*.safetensors")):
            continue
        try:
            card = json.loads(card_file.read_text()) if card_file.exists() else {}
        except ValueError as err:
            raise RegistryError(f"{card_file} is not a JSON expert card ({err})") from None
        entries.append(
            RegistryEntry(
                model_id=str(card.get("model_id", d.name)),
                revision=str(card.get("revision", "local")),
                weights_hash=weights_hash(d),
                domains=tuple(card.get("domains", [d.name])),
            )
        )
    if not entries:
        raise RegistryError(f"no expert directories with safetensors under {experts_dir}")
    # What `load` (and so `publish` and validators) accepts, checked before the file is written.
    return Registry.from_dict(Registry(version=version, experts=tuple(entries)).to_dict())
