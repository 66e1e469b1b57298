"""Replays subtensor's unit-test scenarios (tests/data/subtensor_test_vectors.json) on `epoch`.

Each scenario is driven the way the Rust test drives the chain: weights set at a block stamp
`last_update`, permits and bonds written by one epoch feed the next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from subnet.consensus import EpochResult, SubnetState, YumaParams, epoch

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "subtensor_test_vectors.json"


def load_vectors() -> dict[str, dict[str, Any]]:
    data = json.loads(VECTORS_PATH.read_text())
    return {v["name"]: v for v in data["vectors"]}


def params_of(vector: dict[str, Any]) -> YumaParams:
    hp = dict(vector["hyperparameters"])
    hp.setdefault("tempo", 1)
    return YumaParams.from_dict(hp)


def bond_at(result: EpochResult, i: int, j: int) -> int:
    row = result.new_bonds[i]
    hits = [int(v) for c, v in row.tolist() if int(c) == j]
    return hits[0] if hits else 0


@dataclass
class Chain:
    """The few storage items an epoch reads, advanced the way subtensor's tests advance them."""

    n: int
    stake: list[int]
    params: YumaParams
    mode: str
    weights: list[list[tuple[int, int]]] = field(default_factory=list)
    bonds: list[Any] = field(default_factory=list)
    last_update: list[int] = field(default_factory=list)
    bar: list[int] = field(default_factory=list)
    permits: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.weights = self.weights or [[] for _ in range(self.n)]
        self.bonds = self.bonds or [[] for _ in range(self.n)]
        self.last_update = self.last_update or [0] * self.n
        self.bar = self.bar or [0] * self.n
        self.permits = self.permits or [False] * self.n

    def set_weights(self, uid: int, row: list[tuple[int, int]], block: int) -> None:
        self.weights[uid] = [(int(j), int(v)) for j, v in row]
        self.last_update[uid] = block

    def run(self, block: int, rao: int = 1_000_000_000) -> EpochResult:
        state = SubnetState(
            n=self.n,
            stake=self.stake,
            weights=self.weights,
            bonds=self.bonds,
            block_at_registration=self.bar,
            last_update=self.last_update,
            validator_permit=self.permits,
            current_block=block,
        )
        result = epoch(state, self.params, rao, mode=self.mode)
        self.permits = list(result.new_validator_permits)
        self.bonds = [np.asarray(r) for r in result.new_bonds]
        return result


def yuma3_scenario(vector: dict[str, Any], mode: str) -> list[tuple[int, EpochResult]]:
    """`setup_yuma_3_scenario` + the per-epoch weight schedule; returns (epoch, result)."""
    n = vector["n"]
    servers = vector["servers"]
    chain = Chain(n, list(vector["stake"]), params_of(vector), mode)
    chain.run(block=1)  # no weights yet: only sets permits (top-3 non-zero stake)
    block = 1
    out = []
    schedule = _bonds_reset_schedule(vector) if "targets" in vector else None
    n_epochs = 41 if schedule else len(vector["epochs"])
    for e in range(n_epochs):
        rows = schedule(e) if schedule else vector["epochs"][e].get("set_weights_rows_over_servers")
        if rows is not None:
            for uid, row in enumerate(rows):
                chain.set_weights(uid, list(zip(servers, row, strict=True)), block)
        if schedule and e == 20:
            # do_reset_bonds(hotkey of uid 3): drop column 3 from every stored bond row.
            chain.bonds = [
                [(j, v) for j, v in np.asarray(r).tolist() if j != 3] for r in chain.bonds
            ]
        block += 1
        out.append((e, chain.run(block)))
    return out


def _bonds_reset_schedule(vector: dict[str, Any]):
    x = 65535

    def rows(e: int) -> list[list[int]]:
        if e == 0:
            return [[x, 0]] * 3
        if e == 1:
            return [[x, 0], [0, x], [0, x]]
        if e <= 20:
            return [[0, x]] * 3
        if e == 21:
            return [[0, x], [x, 0], [x, 0]]
        return [[x, 0]] * 3

    return rows
