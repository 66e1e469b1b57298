"""`dmoe owner simulate`: case format, recorded states, JSON shape, plot and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from yuma_replay import load_vectors

from neurons.owner import main
from subnet.owner import simulate

EXAMPLES = Path(__file__).resolve().parents[2] / "subnet" / "owner" / "examples"


def rust_case(name: str) -> dict:
    """A subtensor Yuma 3 scenario written in the validators x miners case format."""
    v = load_vectors()[name]
    hp = v["hyperparameters"]
    rows = None
    epochs = []
    for ep in v["epochs"]:
        rows = ep.get("set_weights_rows_over_servers", rows)  # absent: weights are kept
        epochs.append({"stake": v["stake"][:3], "weights": rows})
    return {
        "yuma_version": "yuma3",
        "hyperparameters": {k: hp[k] for k in simulate_keys()},
        "initial_bonds_u16": None,
        "epochs": epochs,
    }


def simulate_keys() -> list[str]:
    return [
        "kappa",
        "bonds_penalty",
        "bonds_moving_average",
        "liquid_alpha_enabled",
        "alpha_low",
        "alpha_high",
        "alpha_sigmoid_steepness",
    ]


@pytest.mark.parametrize("mode", ["fixed", "float64"])
def test_case_format_reproduces_subtensor_scenario(tmp_path, capsys, mode):
    name = "test_yuma_3_kappa_moves_first"
    path = tmp_path / "case.json"
    path.write_text(json.dumps(rust_case(name)))
    assert main(["simulate", str(path), "--json", "--mode", mode]) == 0
    out = json.loads(capsys.readouterr().out)
    vector = load_vectors()[name]
    assert len(out["epochs"]) == len(vector["epochs"])
    for got, ep in zip(out["epochs"], vector["epochs"], strict=True):
        assert len(got["consensus"]) == len(got["incentive"]) == 2
        assert len(got["dividends"]) == len(got["validator_trust"]) == 3
        assert np.shape(got["bonds"]) == (3, 2)
        want = ep["assert_approx_1e-3"]["dividends"][:3]
        assert np.abs(np.array(got["dividends"]) - want).max() < 1e-3
        assert np.abs(np.array(got["bonds"]) - ep["bond_targets_not_asserted"]).max() < 2e-4


def test_examples_run_with_table_and_plot(tmp_path, capsys):
    for example in sorted(EXAMPLES.glob("*.json")):
        png = tmp_path / f"{example.stem}.png"
        assert main(["simulate", str(example), "--epochs", "8", "--plot", str(png)]) == 0
        assert png.read_bytes()[:4] == b"\x89PNG"
        out = capsys.readouterr().out
        assert "incent" in out and "emission" in out


def test_yuma2_json_bonds_are_column_normalised(capsys):
    assert main(["simulate", str(EXAMPLES / "yuma2_copier.json"), "--json"]) == 0
    for ep in json.loads(capsys.readouterr().out)["epochs"]:
        sums = np.array(ep["bonds"]).sum(axis=0)
        assert np.all((np.abs(sums - 1) < 1e-9) | (sums == 0))


def test_recorded_state_runs_epochs(tmp_path):
    state = {
        "params": {"yuma3": False, "tempo": 360},
        "state": {
            "n": 3,
            "stake": [10**12, 0, 0],
            "weights": [[[1, 65535], [2, 32768]], [], []],
            "bonds": [[], [], []],
            "block_at_registration": [0, 0, 0],
            "last_update": [0, 0, 0],
            "validator_permit": [True, False, False],
            "current_block": 1000,
        },
    }
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    results = simulate.run(simulate.load(path), epochs=3)
    assert len(results) == 3
    assert results[-1].incentive[1] == pytest.approx(2 / 3, abs=1e-4)
    assert results[-1].dividends[0] == pytest.approx(1.0)
    assert results[-1].new_bonds[0].tolist() == [[1, 65535], [2, 65535]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "expected a JSON object"),
        ('{"foo": 1}', "expected a case"),
        ('{"epochs": []}', "is empty"),
        ('{"epochs": [{"stake": [1], "weights": [[70000]]}]}', "u16"),
        ('{"epochs": [{"stake": [1, 2], "weights": [[1]]}]}', "need 2 stakes"),
        ('{"yuma_version": "yuma9", "epochs": [{"stake": [1], "weights": [[1]]}]}', "yuma2"),
        ('{"state": {"n": 1, "bogus": 2}}', "unknown state fields"),
    ],
)
def test_bad_input_gets_a_clear_error(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["simulate", str(path)]) == 2
    assert message in capsys.readouterr().err
