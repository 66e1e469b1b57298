"""The decisions behind the one-line errors: pure functions, table-driven, plus the validator's
once-per-tempo warning on a real in-process chain."""

from __future__ import annotations

import errno
import logging

import bittensor as bt
import pytest

from subnet import preflight
from subnet.cli import explain
from subnet.config import ConfigError, SubtensorConfig, WalletConfig
from subnet.preflight import PreflightError, Standing, TempoWarner, validator_problem
from tests.fixtures_chain import bootstrap_subnet


def _refused() -> OSError:
    err = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 9)")
    wrapped = bt.ChainError("local chain at http://127.0.0.1:9 unreachable: ...")
    wrapped.__cause__ = err
    return wrapped


@pytest.mark.parametrize(
    ("err", "code", "needle"),
    [
        (ConfigError("--netuid must be an integer"), 2, "--netuid"),
        (PreflightError("no wallet 'x'"), 1, "no wallet"),
        (_refused(), 1, "connection refused"),
        (bt.ChainError("Not enough balance", "NotEnoughBalanceToStake"), 1, "faucet"),
        (bt.ChainError("Trying to perform action on non-existent subnet."), 1, "--netuid"),
        (OSError(errno.EADDRINUSE, "Address already in use"), 1, "another port"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y.json"), 1, "/x/y"),
        (EOFError(), 1, "BT_PW_"),
        (TimeoutError(), 1, "timed out"),
    ],
)
def test_expected_failures_become_one_line(err, code, needle):
    got = explain(err)
    assert got is not None and got[0] == code
    assert needle in got[1] and "\n" not in got[1]


@pytest.mark.parametrize("err", [KeyError("x"), AttributeError("y"), ZeroDivisionError()])
def test_bugs_keep_their_traceback(err):
    assert explain(err) is None


def test_root_cause_names_the_os_reason():
    assert preflight.root_cause(_refused()) == "connection refused"


@pytest.mark.parametrize(
    ("standing", "needle"),
    [
        (Standing(None), "subnets register"),
        (Standing(3, 0.0, False), "stake add"),
        (Standing(3, 5.0, False), "next epoch"),
        (Standing(3, 0.0, True), "stake add"),  # a permit without stake is not kept
    ],
)
def test_validator_problem_names_the_fix(standing, needle):
    problem = validator_problem(standing, 1, "5Hk", "btcli subnets register", "btcli stake add")
    assert problem is not None and needle in problem


def test_a_permitted_validator_has_no_problem():
    assert validator_problem(Standing(3, 5.0, True), 1, "5Hk", "r", "s") is None


def test_tempo_warner_warns_once_per_tempo_and_again_after_recovery():
    w = TempoWarner()
    tempo = 10  # an epoch every 11 blocks
    assert w.check(0, tempo, "no permit") == "no permit"
    assert w.check(5, tempo, "no permit") is None  # same tempo
    assert w.check(11, tempo, "no permit") == "no permit"  # next tempo
    assert w.check(12, tempo, None) is None  # fixed
    assert w.check(13, tempo, "no permit") == "no permit"  # broken again: at once


def test_btcli_command_fits_the_network():
    wallet = WalletConfig(name="v", hotkey="h")
    assert preflight.btcli(SubtensorConfig(), "x").startswith("dmoe btcli x")
    assert preflight.btcli(SubtensorConfig(network="test"), "x") == "btcli x -n test"
    assert preflight._wallet_args(wallet) == "-w v -H h"


def test_port_problem_names_the_flag():
    msg = preflight.port_problem("127.0.0.1", 80, "--axon.port", OSError(errno.EACCES, "denied"))
    assert "--axon.port" in msg


async def test_unpermitted_validator_warns_each_tempo(
    tmp_path, local_chain, chain_client, make_wallet, caplog
):
    """Started anyway (--allow-no-permit), the loop says why miners refuse it, once a tempo."""
    from subnet.net import SignedClient
    from subnet.validator.verifier import ExpertRegistry
    from tests.validator.helpers import make_validator, validator_config

    owner, stranger = make_wallet("pf-owner"), make_wallet("pf-stranger")
    netuid = await bootstrap_subnet(chain_client, local_chain, owner, [], [], stake_tao=10)
    signed = SignedClient.create(stranger.hotkey)
    try:
        cfg = validator_config(tmp_path / "s.json", netuid=netuid)
        v = make_validator(
            cfg, signed, ExpertRegistry({}, {}), client=chain_client, wallet=stranger
        )
        with caplog.at_level(logging.WARNING, logger="subnet.validator.loop"):
            await v.refresh_metagraph()
            await v.refresh_metagraph()  # same tempo: no second warning
            local_chain.produce_blocks(11)
            await v.refresh_metagraph()
    finally:
        await signed.close()
    warnings = [r.getMessage() for r in caplog.records if "cannot work" in r.getMessage()]
    assert len(warnings) == 2 and "not registered" in warnings[0]
