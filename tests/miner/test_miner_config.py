"""Miner flags: parsed once into frozen config, bad values refused with the flag to fix."""

from __future__ import annotations

import argparse

import pytest

from subnet.config import ConfigError
from subnet.miner.config import add_miner_args, miner_config_from_args


def parse(argv):
    p = argparse.ArgumentParser()
    add_miner_args(p)
    return miner_config_from_args(p.parse_args(argv), {})


def test_engine_flags_reach_the_engine_config(tmp_path):
    cfg = parse(["--experts.dir", str(tmp_path), "--max-batch", "8", "--stream-interval-ms", "0"])
    assert cfg.engine.max_batch == 8 and cfg.engine.stream_interval_s == 0.0
    assert cfg.engine.expert == str(tmp_path / "code") and cfg.engine.tiny_dir == tmp_path
    assert parse([]).engine.stream_interval_s == pytest.approx(0.04)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--max-batch", "0"], "--max-batch"),
        (["--max-queue", "-1"], "--max-queue"),
        (["--stream-interval-ms", "5000"], "--stream-interval-ms"),
        (["--stream-interval-ms", "-1"], "--stream-interval-ms"),
    ],
)
def test_bad_values_name_the_flag(argv, needle):
    with pytest.raises(ConfigError, match=needle):
        parse(argv)
