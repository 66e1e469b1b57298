"""Shared fixtures: real wallets in a temporary directory, and SDK caches kept out of $HOME."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_experts", "tests.fixtures_chain"]

# The SDK caches token symbols per network label on connect; keep every test's caches private.
_CACHE_DIR = Path(tempfile.mkdtemp(prefix="dmoe-test-cache-"))
for _var, _name in (
    ("BTCLI_CONFIG", "btcli.json"),
    ("BTCLI_TOKEN_SYMBOLS_CACHE", "token_symbols.json"),
    ("BTCLI_SUBNET_NAMES_CACHE", "subnet_names.json"),
):
    os.environ.setdefault(_var, str(_CACHE_DIR / _name))


@pytest.fixture(scope="session")
def wallet_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wallets")


@pytest.fixture(scope="session")
def make_wallet(wallet_dir):
    """make_wallet(name) -> a real bittensor Wallet with unencrypted keys, created once per name."""
    import bittensor as bt

    cache: dict[str, bt.Wallet] = {}

    def make(name: str) -> bt.Wallet:
        if name not in cache:
            w = bt.Wallet(name, "default", path=str(wallet_dir))
            w.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
            w.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
            cache[name] = w
        return cache[name]

    return make
