"""Which domains an expert is tested in, pure: earned from measurements, never from a card.

A miner's card lists the domains it *claims*; claiming more must not pay more, so nothing here
reads it. An expert (weights hash) earns a domain when the owner's registry lists it for that
domain (when the validator runs with a registry) and its measured fit — mean token
log-likelihood on the domain's held-out text, on the validator's reference copy — is within
`margin` nats of the best registered expert's. An expert that earns nothing is still tested in
the domain it fits best, so its miners can be verified (they are paid only by routed demand).
"""

from __future__ import annotations

from collections.abc import Mapping

# Within this many nats per token of the best expert's fit (exp(-0.5) = 61% of its per-token
# likelihood). The tiny experts sit 1.5-3 nats apart outside their own domain.
FIT_MARGIN_NATS = 0.5


def earned_domains(
    fit: Mapping[str, Mapping[str, float]],
    owner_domains: Mapping[str, tuple[str, ...]] | None = None,
    *,
    margin: float = FIT_MARGIN_NATS,
) -> dict[str, tuple[str, ...]]:
    """weights hash -> the domains it is tested in (sorted; never empty when it has a fit)."""
    best: dict[str, float] = {}
    for per_domain in fit.values():
        for d, lp in per_domain.items():
            best[d] = max(best.get(d, lp), lp)
    out: dict[str, tuple[str, ...]] = {}
    for h, per_domain in fit.items():
        allowed = set(per_domain)
        if owner_domains is not None:
            allowed &= set(owner_domains.get(h, ()))
        earned = sorted(d for d in allowed if per_domain[d] >= best[d] - margin)
        if not earned and per_domain:
            earned = [max(per_domain, key=per_domain.get)]
        out[h] = tuple(earned)
    return out


def experts_for(domain: str, earned: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The experts (weights hashes) that earned `domain`, in a stable order."""
    return sorted(h for h, ds in earned.items() if domain in ds)


def best_expert(
    domain: str,
    fit: Mapping[str, Mapping[str, float]],
    candidates: list[str],
) -> str | None:
    """The candidate with the best measured fit to `domain` (the cold-start gate's choice)."""
    scored = [(fit.get(h, {}).get(domain, float("-inf")), h) for h in candidates]
    scored = [(lp, h) for lp, h in scored if lp > float("-inf")]
    if not scored:
        return candidates[0] if candidates else None
    return max(scored)[1]
