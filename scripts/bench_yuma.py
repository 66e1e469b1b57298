"""Benchmark one Yuma epoch (subnet.consensus.epoch) at realistic subnet sizes, both modes.

Weights are dense and realistic: every validator scores every miner with a noisy copy of one
"true quality" vector, max-upscaled to u16 as set_weights stores it; bonds come from a warm-up
epoch. Weight and bond rows are given as `SparseRows` (CSR, u16 uids and values: the compact
form the epoch returns bonds in, and the headline "float64" column); the float64 epoch is also
timed with weights as per-row (k, 2) int64 arrays ("pairs") and with list-of-tuples rows
("tuples", the local chain's literal storage). Each timing includes reading `bonds_csr` (the
stored bonds as CSR arrays, what the chain persists).

    .venv/bin/python scripts/bench_yuma.py [--fixed-max-uids 4096] [--repeat 5]

Prints a table and writes bench_results/bench_yuma.json. Use `taskset -c 0` for one core.
The "machine check" line (load average and one in-place add over 64 MB, past the caches)
says how loaded the machine was: on a shared machine every timing scales with it, so
compare runs only at similar checks.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from subnet.consensus import SubnetState, YumaParams, epoch
from subnet.consensus.types import SparseRows

SIZES = [(64, 256), (256, 1024), (256, 4096)]


def make_state(validators: int, n: int, seed: int = 0) -> SubnetState:
    rng = np.random.default_rng(seed)
    quality = rng.pareto(2.0, n - validators) + 0.05
    miners = np.arange(validators, n)
    weights = []
    for _ in range(validators):
        noisy = np.clip(quality * rng.lognormal(0.0, 0.3, quality.size), 0, None)
        w = np.round(noisy * 65535 / noisy.max()).astype(np.int64)
        weights.append(np.column_stack((miners, w)))
    empty = np.zeros((0, 2), dtype=np.int64)
    weights += [empty] * (n - validators)
    stake = np.concatenate([rng.lognormal(25, 1.5, validators), np.zeros(n - validators)])
    return SubnetState(
        n=n,
        stake=stake.round().astype(np.int64).tolist(),
        weights=weights,
        bonds=[empty] * n,
        block_at_registration=[0] * n,
        last_update=[9_990] * n,
        validator_permit=[True] * validators + [False] * (n - validators),
        current_block=10_000,
    )


def timed(state: SubnetState, params: YumaParams, mode: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        stored = epoch(state, params, 10**9, mode=mode).bonds_csr  # what the chain stores
        assert len(stored) == state.n
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def machine_check_ms(repeat: int = 20) -> float:
    """Best time of one memory-bound numpy pass over 64 MB: a yardstick for machine load."""
    a = np.ones(1 << 23)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.add(a, 1.0, out=a)
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def as_csr(rows: list) -> SparseRows:
    """Rows as the chain can keep them: CSR with u16 uids and u16 values."""
    csr = SparseRows.from_rows(rows)
    return SparseRows(csr.indptr, csr.indices.astype(np.uint16), csr.values.astype(np.uint16))


def as_tuples(rows: list) -> list:
    return [[(int(j), int(v)) for j, v in np.asarray(r).tolist()] for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="best of N (float64)")
    ap.add_argument("--fixed-max-uids", type=int, default=4096, help="skip fixed above this n")
    args = ap.parse_args()
    check = machine_check_ms()
    load = os.getloadavg()[0]
    print(f"machine check: load average {load:.1f}, 64 MB in-place add {check:.2f} ms")
    rows = []
    for validators, n in SIZES:
        for yuma3 in (False, True):
            params = YumaParams(yuma3=yuma3, liquid_alpha=yuma3, max_allowed_validators=validators)
            state = make_state(validators, n)
            warm = epoch(state, params, 10**9)  # realistic stored bonds for the timed epoch
            state.bonds = warm.new_bonds  # the stored form as the epoch returns it (CSR)
            state.validator_permit = list(warm.new_validator_permits)
            pair_rows = state.weights
            state.weights = as_csr(pair_rows)
            row = {
                "validators": validators,
                "uids": n,
                "yuma": 3 if yuma3 else 2,
                "float64_ms": timed(state, params, "float64", args.repeat),
            }
            pair_state = SubnetState(**{**state.__dict__})
            pair_state.weights = pair_rows
            row["float64_pair_rows_ms"] = timed(pair_state, params, "float64", args.repeat)
            tuple_state = SubnetState(**{**state.__dict__})
            tuple_state.weights, tuple_state.bonds = (
                as_tuples(state.weights),
                as_tuples(state.bonds),
            )
            row["float64_tuple_rows_ms"] = timed(tuple_state, params, "float64", args.repeat)
            fixed_ok = n <= args.fixed_max_uids
            row["fixed_ms"] = timed(state, params, "fixed", 1) if fixed_ok else None
            rows.append(row)
            print_row(row, header=len(rows) == 1)
    out = Path("bench_results")
    out.mkdir(exist_ok=True)
    meta = {
        "cpu_count": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "load_average": load,
        "machine_check_ms": check,
        "machine_check_after_ms": machine_check_ms(),
    }
    (out / "bench_yuma.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"\nwrote {out / 'bench_yuma.json'} (cores usable: {meta['affinity']})")


def print_row(row: dict, header: bool) -> None:
    if header:
        print(
            f"{'V x uids':>11} {'yuma':>4} {'float64 ms':>11} {'f64 pairs ms':>13}"
            f" {'f64 tuples ms':>14} {'fixed ms':>10}"
        )
    fixed = "skipped" if row["fixed_ms"] is None else f"{row['fixed_ms']:.0f}"
    size = f"{row['validators']}x{row['uids']}"
    print(
        f"{size:>11} {row['yuma']:>4} {row['float64_ms']:>11.1f}"
        f" {row['float64_pair_rows_ms']:>13.1f}"
        f" {row['float64_tuple_rows_ms']:>14.1f} {fixed:>10}",
        flush=True,
    )


if __name__ == "__main__":
    main()
