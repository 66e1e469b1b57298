"""Precision: the card declares it, the validator picks its own (`--verify.*`), and thresholds
come from the calibrated table per (miner, validator) pair."""

from __future__ import annotations

import argparse
import json

import pytest

from protocol import ExpertCard, ProtocolError
from subnet.config import ConfigError
from subnet.engine.loading import load_expert
from subnet.validator.config import add_validator_args, validator_config_from_args
from subnet.validator.thresholds import DTYPES, TABLE_PATH, ThresholdTable
from subnet.validator.verifier import simulated_dtype
from subnet.validator.verify import Thresholds

CARD = dict(model_id="m", revision="r", weights_hash="ab" * 32, domains=["code"],
            max_context=512, capacity=4, engine="hf")  # fmt: skip


def test_card_dtype_round_trips_defaults_and_is_validated():
    assert ExpertCard.from_dict(CARD).dtype == "float32"  # old cards: float32
    card = ExpertCard.from_dict(CARD | {"dtype": "bfloat16"})
    assert card.dtype == "bfloat16" and ExpertCard.from_dict(card.to_dict()) == card
    with pytest.raises(ProtocolError, match="dtype"):
        ExpertCard.from_dict(CARD | {"dtype": "int8"})


def test_loaded_expert_card_says_its_dtype(tiny_experts):
    assert load_expert(tiny_experts["code"], device="cpu", dtype="float16").card.dtype == "float16"
    assert load_expert(tiny_experts["code"], device="cpu", dtype="auto").card.dtype == "float32"


def _config(argv):
    p = argparse.ArgumentParser()
    add_validator_args(p)
    return validator_config_from_args(p.parse_args(argv), env={})


def test_verify_flags():
    assert (_config([]).verify.device, _config([]).verify.dtype) == ("auto", "auto")
    cfg = _config(["--verify.device", "cuda:1", "--verify.dtype", "bfloat16"])
    assert (cfg.verify.device, cfg.verify.dtype) == ("cuda:1", "bfloat16")
    with pytest.raises(ConfigError, match="--verify.device"):
        _config(["--verify.device", "tpu"])
    with pytest.raises(SystemExit):  # argparse names the choices
        _config(["--verify.dtype", "int8"])


def test_shipped_table_covers_the_cpu_pairs_and_is_no_tighter_than_float32():
    table = ThresholdTable.load()
    base = Thresholds()
    for v in ("float32", "bfloat16"):
        for m in DTYPES:
            pair = table.pairs[f"{m}/{v}"]
            assert pair.answer.greedy_max_gap >= base.greedy_max_gap
            assert pair.answer.logprob_tol >= base.logprob_tol
            assert pair.noise_floor > 0
    raw = json.loads(TABLE_PATH.read_text())
    assert "calibrate_verify.py" in raw["about"]  # says how to regenerate it


def test_unmeasured_pair_gets_the_loosest_measured(caplog):
    table = ThresholdTable.from_dict(
        {
            "pairs": {
                "float32/float32": {"thresholds": {"logprob_tol": 0.05}, "noise_floor": 1e-6},
                "bfloat16/float32": {
                    "thresholds": {"logprob_tol": 0.3, "sampled_min_z": -6},
                    "noise_floor": 2e-6,
                },
            }
        }  # fmt: skip
    )
    got = table.get("float16", "float16")
    assert got.answer.logprob_tol == 0.3 and got.answer.sampled_min_z == -6
    assert got.noise_floor == 2e-6 and "no calibrated thresholds" in caplog.text
    assert table.get("float32", "float32").answer.logprob_tol == 0.05
    with pytest.raises(ValueError, match="dtype"):
        ThresholdTable.from_dict({"pairs": {"int8/float32": {}}})


def test_simulated_precision_per_pair():
    assert simulated_dtype("bfloat16", "float32") == "bfloat16"
    assert simulated_dtype("float32", "bfloat16") == "float32"
    assert simulated_dtype("bfloat16", "bfloat16") == "float32"
    assert simulated_dtype("float32", "float32") is None
