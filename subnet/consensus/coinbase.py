"""Per-tempo emission split and deregistration choice, as subtensor's coinbase does them.

Pure integer arithmetic in rao so that nothing is lost: every split returns parts that sum to
exactly the amount minted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_OWNER_CUT_U16 = 11796  # SubnetOwnerCut: 11796/65535 ~ 18%
DEFAULT_MIN_NON_IMMUNE_UIDS = 10  # MinNonImmuneUids


@dataclass(frozen=True)
class CoinbaseSplit:
    """One tempo's alpha emission in rao: owner + server + validator + root == total."""

    total: int
    owner: int
    server: int  # paid to miners by incentive (the epoch's server emission)
    validator: int  # paid to validators by dividends
    root: int  # validator share routed to root stakers (0 without root stake)

    @property
    def epoch_emission(self) -> int:
        """What `epoch(...)` distributes: server + validator + root pending emission."""
        return self.server + self.validator + self.root


def coinbase_split(
    alpha_out: int,
    owner_cut_u16: int = DEFAULT_OWNER_CUT_U16,
    root_proportion: float = 0.0,
) -> CoinbaseSplit:
    """Split `alpha_out` rao for one tempo: owner cut first, then miners 50% / validators 50%.

    owner_cut_u16: SubnetOwnerCut (u16 fraction of 65535). root_proportion in [0, 1]:
    tao_weight*RootTAO / (tao_weight*RootTAO + alpha_issuance); that fraction of the validator
    half goes to root stakers. Flooring remainders go to the validator half, so the four parts
    always sum to `alpha_out` exactly.
    """
    if alpha_out < 0:
        raise ValueError(f"alpha_out={alpha_out} must be >= 0 rao")
    if not 0 <= owner_cut_u16 <= 65535:
        raise ValueError(f"owner_cut_u16={owner_cut_u16} must be a u16")
    if not 0.0 <= root_proportion <= 1.0:
        raise ValueError(f"root_proportion={root_proportion} must be in [0, 1]")
    owner = alpha_out * owner_cut_u16 // 65535
    rest = alpha_out - owner
    server = rest // 2
    validator_half = rest - server
    root = int(validator_half * root_proportion)
    return CoinbaseSplit(alpha_out, owner, server, validator_half - root, root)


def neuron_to_prune(
    emission: Sequence[int],
    block_at_registration: Sequence[int],
    current_block: int,
    immunity_period: int,
    immortal_uids: Sequence[int] = (),
    min_non_immune_uids: int = DEFAULT_MIN_NON_IMMUNE_UIDS,
) -> int | None:
    """The uid a new registration replaces on a full subnet (`get_neuron_to_prune`).

    Lowest `emission` (rao, last epoch), then earliest registration, then lowest uid. Owner
    immortal uids (the owner hotkey's uid) are never chosen. Immune neurons
    (`current_block - registered < immunity_period`) are only chosen when no more than
    `min_non_immune_uids` non-immune ones remain. None when every uid is immortal.
    """
    if len(emission) != len(block_at_registration):
        raise ValueError("emission and block_at_registration must have one entry per uid")
    skip = set(immortal_uids)
    best_free: tuple[int, int, int] | None = None
    best_immune: tuple[int, int, int] | None = None
    free_count = 0
    for uid, (em, reg) in enumerate(zip(emission, block_at_registration, strict=True)):
        if uid in skip:
            continue
        key = (int(em), int(reg), uid)
        if current_block - reg < immunity_period:
            best_immune = key if best_immune is None or key < best_immune else best_immune
        else:
            free_count += 1
            best_free = key if best_free is None or key < best_free else best_free
    if best_free is not None and free_count > min_non_immune_uids:
        return best_free[2]
    return best_immune[2] if best_immune is not None else None
