"""Inputs and outputs of one Yuma Consensus epoch, in the units subtensor stores them.

Everything here is plain data: the local chain builds a `SubnetState` from its storage, calls
`epoch(...)` once per tempo, and writes the `EpochResult` back. Units follow the chain exactly
(u16 weights/bonds, rao, blocks) so that nothing is converted twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

U16_MAX = 65535

# A sparse row as the chain stores it: `[(uid, u16), ...]` in ascending uid order. A numpy array
# of shape (k, 2) is accepted too (cheaper to build for big subnets; see `scripts/bench_yuma.py`).
SparseRow = Sequence[tuple[int, int]] | np.ndarray


class SparseRows(Sequence[np.ndarray]):
    """n sparse rows in CSR form (`indptr`, `indices`, `values`), readable as a list of rows.

    `rows[i]` is row i as a (k, 2) array `[[uid, value], ...]` in ascending uid order (int64
    for integer values), built on access: the epoch hands 4096 x 4096 bonds over as three
    flat arrays instead of thousands of small ones, and `scatter_rows` reads them back in one
    vectorised write. Treat as read-only.
    """

    __slots__ = ("indptr", "indices", "values")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> None:
        if len(indptr) < 1 or int(indptr[-1]) != len(indices) or len(indices) != len(values):
            raise ValueError("SparseRows: indptr[-1], len(indices), len(values) must agree")
        self.indptr, self.indices, self.values = indptr, indices, values

    @classmethod
    def from_rows(cls, rows: Sequence[SparseRow], dtype: Any = np.int64) -> SparseRows:
        """CSR of per-row `[(uid, value)]` lists or (k, 2) arrays."""
        if isinstance(rows, SparseRows):
            return rows
        pairs = [np.asarray(r, dtype=dtype).reshape(-1, 2) for r in rows]
        counts = np.fromiter(map(len, pairs), dtype=np.int64, count=len(pairs))
        flat = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=dtype)
        indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return cls(indptr, flat[:, 0].astype(np.int64), flat[:, 1])

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, i: slice) -> list[np.ndarray]: ...
    def __getitem__(self, i: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        i %= n
        a, b = int(self.indptr[i]), int(self.indptr[i + 1])
        kind = np.float64 if self.values.dtype.kind == "f" else np.int64
        row = np.empty((b - a, 2), dtype=kind)
        row[:, 0], row[:, 1] = self.indices[a:b], self.values[a:b]
        return row

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[k] for k in range(len(self)))

    def row_lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def to_lists(self) -> list[list[tuple[int, int]]]:
        """Rows as `[(uid, value)]` lists of Python numbers (the local chain's storage)."""
        ptr, cols, vals = self.indptr.tolist(), self.indices.tolist(), self.values.tolist()
        return [
            list(zip(cols[a:b], vals[a:b], strict=True))
            for a, b in zip(ptr[:-1], ptr[1:], strict=True)
        ]


# The SDK / simulator spellings `YumaParams.from_dict` also accepts.
YUMA_PARAM_ALIASES = {
    "bonds_moving_average": "bonds_moving_avg",
    "liquid_alpha_enabled": "liquid_alpha",
    "yuma3_enabled": "yuma3",
    "activity_cutoff_blocks": "activity_cutoff",
}


@dataclass(frozen=True)
class YumaParams:
    """Subnet hyperparameters that the epoch reads, in raw chain units with subtensor's defaults.

    Defaults are subtensor's runtime `Initial*` values, except `yuma3` (true for every subnet
    created since 2026-03) and `max_allowed_validators` (64 for new subnets).
    """

    kappa: int = 32767  # u16; consensus majority = kappa/65535 (~0.5)
    bonds_moving_avg: int = 900_000  # per-million; EMA alpha = 1 - bma/1e6 (0.1)
    bonds_penalty: int = 65535  # u16; beta = penalty/65535: 1 => bonds follow clipped weights
    yuma3: bool = True  # absolute bonds (Yuma 3) instead of relative ones (Yuma 2, "classic")
    liquid_alpha: bool = False  # per-entry sigmoid EMA alpha (Yuma 3 only)
    alpha_low: int = 45875  # u16 proportion (0.7)
    alpha_high: int = 58982  # u16 proportion (0.9)
    alpha_sigmoid_steepness: int = 1000  # i16; effective steepness = value/100
    max_allowed_validators: int = 64  # top-k stake holders get a validator permit
    activity_cutoff: int = 5000  # blocks; older last_update => inactive
    tempo: int = 360  # blocks per epoch; used for `last_tempo` when no step block is recorded
    stake_threshold: int = 0  # rao; stake below it is zeroed (owner exempt)

    def __post_init__(self) -> None:
        for name in ("kappa", "bonds_penalty", "alpha_low", "alpha_high"):
            value = getattr(self, name)
            if not 0 <= int(value) <= U16_MAX:
                raise ValueError(f"YumaParams.{name}={value} is not a u16 (0..65535)")
        if not 0 <= self.bonds_moving_avg <= 1_000_000:
            raise ValueError(
                f"YumaParams.bonds_moving_avg={self.bonds_moving_avg} must be per-million (0..1e6)"
            )
        if not -32768 <= self.alpha_sigmoid_steepness <= 32767:
            raise ValueError("YumaParams.alpha_sigmoid_steepness must fit an i16")
        if self.alpha_low > self.alpha_high:
            raise ValueError("YumaParams.alpha_low must be <= alpha_high")
        if self.max_allowed_validators < 0 or self.activity_cutoff < 0 or self.tempo < 0:
            raise ValueError("max_allowed_validators, activity_cutoff and tempo must be >= 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> YumaParams:
        """Build from a dict, accepting the SDK / simulator spellings of the field names."""
        known = {f for f in cls.__dataclass_fields__}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            name = YUMA_PARAM_ALIASES.get(key, key)
            if name in known:
                kwargs[name] = value
        return cls(**kwargs)


@dataclass
class SubnetState:
    """One subnet's epoch inputs exactly as stored on chain (uids 0..n-1).

    stake: combined stake per uid in rao (alpha + tao * tao_weight), ints or floats.
    weights / bonds: sparse rows `[(uid, u16)]`, one per uid (weights row max-upscaled by
        set_weights; Yuma 2 bonds column max-upscaled, Yuma 3 bonds as proportions*65535).
        Entries with uid >= n are ignored, as the chain does.
    block_at_registration / last_update: block numbers per uid.
    validator_permit: the permits written by the previous epoch.
    last_mechanism_step_block: `LastMechansimStepBlock`; 0 means "never" and then
        last_tempo = current_block - tempo (what subtensor's unit tests exercise).
    commit_blocks: with commit-reveal on, the earliest non-expired commit block per uid
        (None where there is none); None disables the commit-reveal mask.
    """

    n: int
    stake: Sequence[float] | np.ndarray
    weights: list[SparseRow]
    bonds: list[SparseRow]
    block_at_registration: list[int]
    last_update: list[int]
    validator_permit: list[bool]
    current_block: int
    last_mechanism_step_block: int = 0
    owner_uid: int | None = None
    commit_blocks: list[int | None] | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        n = self.n
        if n < 0:
            raise ValueError(f"SubnetState.n={n} must be >= 0")
        for name in ("stake", "weights", "bonds", "block_at_registration", "last_update"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"SubnetState.{name} has {len(getattr(self, name))} entries, n={n}"
                )
        if len(self.validator_permit) != n:
            raise ValueError(
                f"SubnetState.validator_permit has {len(self.validator_permit)}, n={n}"
            )
        if self.commit_blocks is not None and len(self.commit_blocks) != n:
            raise ValueError(f"SubnetState.commit_blocks has {len(self.commit_blocks)}, n={n}")
        if self.owner_uid is not None and not 0 <= self.owner_uid:
            raise ValueError(f"SubnetState.owner_uid={self.owner_uid} must be a uid or None")
        stake = np.asarray(self.stake)
        if stake.dtype.kind not in "iufb":
            stake = stake.astype(np.float64)  # huge ints, numeric strings: only the sign matters
        if len(stake) and stake.min() < 0:
            raise ValueError("SubnetState.stake must be non-negative rao")


@dataclass
class EpochResult:
    """Every per-uid output of one epoch, as floats and as the u16 values the chain stores.

    Float arrays are proportions in [0, 1] (length n). `*_u16` are `floor(x * 65535)`, except
    `pruning_scores_u16` (max-upscaled, rounded, as subtensor stored it). Emissions are rao.
    `bonds` are the EMA bonds before storage conversion: Yuma 2's column-normalised EMA bonds
    (before the max-upscale), Yuma 3's absolute bonds in [0, 1]; `new_bonds` is what is stored.
    Both are sequences of n rows (lists, or `SparseRows` from the float64 epoch; `bonds_csr`
    gives the stored ones as CSR arrays either way).
    Ranks/trust/pruning scores were dropped from chain storage in 2025-10 but are kept here
    for dashboards.
    """

    mode: str
    active: np.ndarray
    stake: np.ndarray
    active_stake: np.ndarray
    consensus: np.ndarray
    ranks: np.ndarray
    trust: np.ndarray
    validator_trust: np.ndarray
    incentive: np.ndarray
    dividends: np.ndarray
    pruning_scores: np.ndarray
    new_validator_permits: list[bool]
    bonds: Sequence[Any]
    new_bonds: Sequence[Any]
    server_emission: list[int]
    validator_emission: list[int]
    emission: list[int]
    rao_emission: int
    stake_u16: list[int] = field(default_factory=list)
    consensus_u16: list[int] = field(default_factory=list)
    ranks_u16: list[int] = field(default_factory=list)
    trust_u16: list[int] = field(default_factory=list)
    validator_trust_u16: list[int] = field(default_factory=list)
    incentive_u16: list[int] = field(default_factory=list)
    dividends_u16: list[int] = field(default_factory=list)
    pruning_scores_u16: list[int] = field(default_factory=list)

    @property
    def bonds_csr(self) -> SparseRows:
        """`new_bonds` (the stored u16 bonds) as CSR arrays; free when the epoch built it so."""
        return SparseRows.from_rows(self.new_bonds)

    @property
    def active_u16(self) -> list[bool]:
        """`Active` is stored as bools on chain; kept for symmetry with the other outputs."""
        return [bool(a) for a in self.active]

    @property
    def dust(self) -> int:
        """Rao of `rao_emission` that flooring left unpaid (subtensor never mints it)."""
        return self.rao_emission - sum(self.server_emission) - sum(self.validator_emission)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every output (floats as lists)."""
        out: dict[str, Any] = {"mode": self.mode, "rao_emission": self.rao_emission}
        for name, value in self.__dict__.items():
            if isinstance(value, np.ndarray):
                out[name] = value.tolist()
            elif isinstance(value, SparseRows):
                out[name] = [row.tolist() for row in value]
            elif name not in out:
                out[name] = value
        return out
