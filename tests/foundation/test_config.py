"""Config: bittensor-style flags, env fallbacks, and errors that name the fix."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from subnet.config import ConfigError, add_common_args, common_from_args


def parse(argv, env=None):
    p = argparse.ArgumentParser()
    add_common_args(p)
    return common_from_args(p.parse_args(argv), env or {})


def test_defaults():
    cfg = parse([])
    assert cfg.netuid == 1 and cfg.subtensor.network == "local"
    assert cfg.subtensor.endpoint.startswith("localchain://")
    assert cfg.axon.port == 8091 and not cfg.logging.debug


def test_flags_and_env_fallbacks():
    cfg = parse(
        [
            "--netuid",
            "7",
            "--wallet.name",
            "vali",
            "--subtensor.network",
            "test",
            "--axon.port",
            "0",
        ],
        {"BT_WALLET_HOTKEY": "hk1", "BT_WALLET_PATH": "/tmp/w", "DMOE_NETUID": "9"},
    )
    assert cfg.netuid == 7  # flag beats env
    assert (
        cfg.wallet.name == "vali"
        and cfg.wallet.hotkey == "hk1"
        and cfg.wallet.path == Path("/tmp/w")
    )
    assert cfg.subtensor.endpoint == "test" and cfg.axon.port == 0


def test_config_is_frozen():
    cfg = parse([])
    with pytest.raises(AttributeError):
        cfg.netuid = 3


@pytest.mark.parametrize(
    "argv, env, needle",
    [
        (["--netuid", "70000"], {}, "--netuid"),
        ([], {"DMOE_NETUID": "abc"}, "--netuid must be an integer"),
        (["--subtensor.network", "mainnet"], {}, "finney"),
        (["--axon.ip", "localhost:80"], {}, "--axon.ip"),
        (["--wallet.name", "a/b"], {}, "--wallet.name"),
        (["--axon.port", "99999"], {}, "--axon.port"),
    ],
)
def test_errors_name_the_fix(argv, env, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        parse(argv, env)


def test_dmoe_cli_lists_commands(capsys):
    from subnet.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("chain", "miner", "validator", "localnet", "owner"):
        assert cmd in out
    assert main(["nope"]) == 2
