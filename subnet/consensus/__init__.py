"""Yuma Consensus exactly as subtensor computes it (pure numpy, no chain, no I/O).

`epoch(state, params, rao_emission)` runs one subnet epoch (subtensor's sparse
`epoch_mechanism`) in one of two arithmetic modes:

* ``"float64"`` (default): vectorised numpy, within ~1e-9 of the chain (u16 outputs may differ
  by one where the chain's I32F32 truncation lands on a boundary);
* ``"fixed"``: integer emulation of I32F32 / I64F64 / I96F32 (floor on multiply, truncating
  divide, Rust's iteration order), bit-exact with subtensor's unit tests.

Also: `coinbase_split` (owner cut, miners/validators halves) and `neuron_to_prune`.
"""

from __future__ import annotations

from subnet.consensus.coinbase import CoinbaseSplit, coinbase_split, neuron_to_prune
from subnet.consensus.types import EpochResult, SparseRow, SubnetState, YumaParams

MODES = ("float64", "fixed")


def epoch(
    state: SubnetState, params: YumaParams, rao_emission: int, *, mode: str = "float64"
) -> EpochResult:
    """Run one Yuma epoch on `state` and split `rao_emission` rao across its uids.

    Pure: `state` is not modified; the caller persists the result (bonds, permits, ...).
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {MODES}")
    if rao_emission < 0:
        raise ValueError(f"rao_emission={rao_emission} must be >= 0")
    state.validate()
    if mode == "fixed":
        from subnet.consensus.epoch_fixed import epoch_fixed

        return epoch_fixed(state, params, int(rao_emission))
    from subnet.consensus.epoch_float import epoch_float

    return epoch_float(state, params, int(rao_emission))


__all__ = [
    "MODES",
    "CoinbaseSplit",
    "EpochResult",
    "SparseRow",
    "SubnetState",
    "YumaParams",
    "coinbase_split",
    "epoch",
    "neuron_to_prune",
]
