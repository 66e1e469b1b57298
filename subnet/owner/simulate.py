"""Offline Yuma simulator for subnet owners: run N epochs of `subnet.consensus.epoch` on a file.

Two input formats:

* a validators x miners case, as other Yuma simulators use it::

    {"yuma_version": "yuma2"|"yuma3",
     "hyperparameters": {"kappa", "bonds_penalty", "bonds_moving_average", "liquid_alpha_enabled",
                         "alpha_low", "alpha_high", "alpha_sigmoid_steepness"},
     "initial_bonds_u16": null | V x M, "self_weights": optional [V u16],
     "epochs": [{"stake": [V rao], "weights": [[M u16] per validator]}, ...]}

  validators are uids 0..V-1 (permitted, active, registered long ago), miners V..V+M-1; epochs
  run in sequence carrying bonds as the chain stores them;
* a recorded local-chain state: ``{"params": {YumaParams fields}, "state": {SubnetState
  fields}, "rao_emission": optional}``; each epoch advances one tempo and validators re-set the
  same weights.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from subnet.consensus import EpochResult, SubnetState, YumaParams, epoch
from subnet.consensus.types import YUMA_PARAM_ALIASES

DEFAULT_RAO = 1_000_000_000  # 1 alpha per epoch
MAX_EPOCHS = 100_000
_START_BLOCK = 10_000


class SimulationError(ValueError):
    """The input file is not a valid case or recorded state (the message says what to fix)."""


@dataclass
class Simulation:
    params: YumaParams
    state: SubnetState
    schedule: list[dict[str, Any]]  # per-epoch stake/weights (case format); empty: keep state
    validators: int  # V: uids 0..V-1 are validators (case format); n for recorded states
    rao_emission: int = DEFAULT_RAO
    is_case: bool = False


def load(path: str | Path) -> Simulation:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise SimulationError(f"cannot read {path}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise SimulationError(f"{path} is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise SimulationError(f"{path}: expected a JSON object")
    try:
        if "epochs" in data:
            return _from_case(data)
        if "state" in data:
            return _from_recorded(data)
    except (KeyError, TypeError, IndexError) as e:
        raise SimulationError(f"{path}: malformed input ({type(e).__name__}: {e})") from e
    except ValueError as e:
        raise SimulationError(f"{path}: {e}") from e
    raise SimulationError(f"{path}: expected a case ('epochs') or a recorded state ('state')")


def _from_case(data: dict[str, Any]) -> Simulation:
    version = data.get("yuma_version", "yuma3")
    if version not in ("yuma2", "yuma3"):
        raise SimulationError(f"yuma_version={version!r}: expected 'yuma2' or 'yuma3'")
    epochs = data["epochs"]
    if not epochs:
        raise SimulationError("'epochs' is empty: give at least one {stake, weights}")
    v = len(epochs[0]["stake"])
    m = len(epochs[0]["weights"][0])
    for k, ep in enumerate(epochs):
        if len(ep["stake"]) != v or len(ep["weights"]) != v:
            raise SimulationError(f"epoch {k}: need {v} stakes and {v} weight rows")
        if any(len(row) != m for row in ep["weights"]):
            raise SimulationError(f"epoch {k}: every weight row needs {m} u16 values")
        if any(not 0 <= int(w) <= 65535 for row in ep["weights"] for w in row):
            raise SimulationError(f"epoch {k}: weights must be u16 (0..65535)")
        bad = [s for s in ep["stake"] if not _is_number(s) or s < 0]
        if bad:
            raise SimulationError(
                f"epoch {k}: stakes must be non-negative numbers of rao, got {bad[0]!r}"
            )
    hp = dict(data.get("hyperparameters") or {})
    params = replace(
        _params(hp, "hyperparameters"),
        yuma3=version == "yuma3",
        max_allowed_validators=max(v, 1),
    )
    n = v + m
    bonds: list[Any] = [[] for _ in range(n)]
    initial = data.get("initial_bonds_u16")
    if initial is not None:
        for i, row in enumerate(initial[:v]):
            bonds[i] = [(v + j, int(b)) for j, b in enumerate(row) if int(b) > 0]
    state = SubnetState(
        n=n,
        stake=[0] * n,
        weights=[[] for _ in range(n)],
        bonds=bonds,
        block_at_registration=[0] * n,
        last_update=[0] * n,
        validator_permit=[True] * v + [False] * m,
        current_block=_START_BLOCK,
    )
    schedule = [
        {"stake": ep["stake"], "weights": ep["weights"], "self": data.get("self_weights")}
        for ep in epochs
    ]
    return Simulation(params, state, schedule, v, int(data.get("rao_emission", DEFAULT_RAO)), True)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _params(raw: dict[str, Any], where: str) -> YumaParams:
    """YumaParams from a file's dict; a name it does not know is an error, not a silent no-op."""
    known = sorted({*YumaParams.__dataclass_fields__, *YUMA_PARAM_ALIASES})
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            raise SimulationError(f"unknown hyperparameter {key!r} in '{where}': {hint}")
    return YumaParams.from_dict(raw)


def _from_recorded(data: dict[str, Any]) -> Simulation:
    params = _params(data.get("params") or {}, "params")
    raw = dict(data["state"])
    fields = set(SubnetState.__dataclass_fields__)
    unknown = set(raw) - fields
    if unknown:
        raise SimulationError(f"unknown state fields {sorted(unknown)}; expected {sorted(fields)}")
    for key in ("weights", "bonds"):
        raw[key] = [[(int(j), int(w)) for j, w in row] for row in raw[key]]
    state = SubnetState(**raw)
    state.validate()
    return Simulation(params, state, [], state.n, int(data.get("rao_emission", DEFAULT_RAO)))


def run(sim: Simulation, epochs: int | None = None, mode: str = "float64") -> list[EpochResult]:
    """Run `epochs` epochs (default: the case's schedule, or 1), carrying bonds and permits."""
    count = epochs if epochs is not None else max(len(sim.schedule), 1)
    state = replace(sim.state)
    tempo = max(sim.params.tempo, 1)
    results = []
    for e in range(count):
        block = _START_BLOCK + e * tempo
        if sim.schedule:
            state = _apply_case_epoch(state, sim, sim.schedule[min(e, len(sim.schedule) - 1)])
        last_update = [
            block - 1 if len(row) else lu
            for row, lu in zip(state.weights, state.last_update, strict=True)
        ]
        state = replace(state, current_block=block, last_update=last_update)
        result = epoch(state, sim.params, sim.rao_emission, mode=mode)
        results.append(result)
        state = replace(
            state,
            bonds=list(result.new_bonds),
            validator_permit=list(result.new_validator_permits),
        )
    return results


def _apply_case_epoch(state: SubnetState, sim: Simulation, ep: dict[str, Any]) -> SubnetState:
    v, n = sim.validators, state.n
    weights: list[Any] = [[] for _ in range(n)]
    for i, row in enumerate(ep["weights"]):
        entries = [(v + j, int(w)) for j, w in enumerate(row)]  # explicit zeros are stored
        if ep.get("self") and int(ep["self"][i]) > 0:
            entries.insert(0, (i, int(ep["self"][i])))  # masked by the epoch, as on chain
        weights[i] = entries
    stake = [int(s) for s in ep["stake"]] + [0] * (n - v)
    return replace(state, weights=weights, stake=stake)


def to_json(sim: Simulation, results: list[EpochResult]) -> dict[str, Any]:
    """The comparison shape: per epoch consensus/incentive [M], dividends/vtrust [V], bonds V x M."""
    v, n = sim.validators, sim.state.n
    miners = slice(v, n) if sim.is_case else slice(0, n)
    out = []
    for r in results:
        bonds = np.zeros((v, n))
        for i in range(v):
            row = r.bonds[i]
            if len(row):
                bonds[i, np.asarray(row[:, 0], dtype=np.int64)] = row[:, 1]
        out.append(
            {
                "consensus": r.consensus[miners].tolist(),
                "incentive": r.incentive[miners].tolist(),
                "dividends": r.dividends[:v].tolist(),
                "validator_trust": r.validator_trust[:v].tolist(),
                "bonds": bonds[:, miners].tolist(),
            }
        )
    return {"epochs": out}


def render_table(sim: Simulation, result: EpochResult, title: str):
    """A rich Table of one epoch's per-uid outputs."""
    from rich.table import Table

    table = Table(title=title)
    for col in (
        "uid",
        "role",
        "stake",
        "consensus",
        "incentive",
        "dividends",
        "vtrust",
        "emission",
    ):
        table.add_column(col, justify="right")
    for uid in range(sim.state.n):
        if sim.is_case:
            role = "V" if uid < sim.validators else "M"
        else:
            role = "V" if result.new_validator_permits[uid] else "M"
        table.add_row(
            str(uid),
            role,
            f"{result.stake[uid]:.4f}",
            f"{result.consensus[uid]:.4f}",
            f"{result.incentive[uid]:.4f}",
            f"{result.dividends[uid]:.4f}",
            f"{result.validator_trust[uid]:.4f}",
            str(result.server_emission[uid] + result.validator_emission[uid]),
        )
    return table


def check_plot_path(path: str | Path) -> None:
    """Fail before running if the plot cannot be written where asked."""
    path = Path(path)
    if not path.parent.is_dir():
        raise SimulationError(f"--plot {path}: folder {path.parent} does not exist")
    from matplotlib.figure import Figure

    kinds = Figure().canvas.get_supported_filetypes()
    if path.suffix.lstrip(".").lower() not in kinds:
        raise SimulationError(
            f"--plot {path}: unknown image type {path.suffix or '(none)'}; use .png, .svg or .pdf"
        )


def plot(sim: Simulation, results: list[EpochResult], path: str | Path) -> None:
    """PNG: miners' incentive and validators' dividends across epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(len(results))
    fig, (ax_i, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
    for uid in range(sim.state.n):
        inc = [r.incentive[uid] for r in results]
        div = [r.dividends[uid] for r in results]
        if any(inc):
            ax_i.plot(epochs, inc, label=f"uid {uid}")
        if any(div):
            ax_d.plot(epochs, div, label=f"uid {uid}")
    for ax, name in ((ax_i, "incentive (miners)"), (ax_d, "dividends (validators)")):
        ax.set_title(name)
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
