"""Backends for the SDK-flow conformance tests: the in-process chain and the HTTP server.

Both give `(chain, client)`: `chain` is the LocalChain (tests make blocks with it), `client` a
real `bt.Client`. The server backend runs the real aiohttp server on 127.0.0.1:0 with instant
seal and a timer too slow to tick during a test, so blocks stay under the test's control while
every SDK call crosses HTTP (and signatures are verified by the server).
"""

from __future__ import annotations

import pytest

from subnet.chain import make_client
from subnet.chain.config import ChainConfig
from subnet.chain.local.chain import LocalChain
from subnet.chain.local.server import ChainServer
from tests.fixtures_chain import fast_genesis


@pytest.fixture(params=["inprocess", "server"])
async def backend(request, tmp_path):
    genesis = fast_genesis(weights_rate_limit=4)  # instant seal: one block per extrinsic
    if request.param == "inprocess":
        chain = LocalChain.create(genesis)
        async with make_client("local", chain=chain) as client:
            yield chain, client
        chain.close()
        return
    config = ChainConfig(data_dir=tmp_path / "chain", port=0, block_time=3600.0, instant=True)
    server = ChainServer(LocalChain.create(genesis, config.data_dir), config)
    await server.start()
    try:
        async with make_client(f"localchain://127.0.0.1:{server.port}") as client:
            yield server.chain, client
    finally:
        await server.stop()
