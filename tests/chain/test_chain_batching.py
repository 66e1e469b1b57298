"""The read path's shortcuts change no answer: batches, the server's read cache, local hashes.

* `batch` over the wire: each entry answered (or refused) on its own, in order; a malformed
  batch is a 4xx; submissions cannot ride in one; nothing in a refused batch touches state.
* `HttpNode` sends the reads one event-loop turn issues as one request, and a refused read
  fails only its own caller.
* The server's cached big reads follow the state: a new block or a mutation gives a new answer.
* The adapter's locally computed block hashes equal the chain's.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import bittensor as bt
import pytest
from bittensor_core import Keypair

from subnet.chain import make_client
from subnet.chain.config import ChainConfig
from subnet.chain.local.answers import MAX_BATCH_CALLS
from subnet.chain.local.calls import ComposedCall
from subnet.chain.local.chain import LocalChain
from subnet.chain.local.remote import HttpNode
from subnet.chain.local.server import CACHE_KEY, ChainServer
from subnet.chain.local.signing import sign
from tests.fixtures_chain import fast_genesis

ALICE = Keypair.create_from_uri("//Alice")
BOB = Keypair.create_from_uri("//Bob").ss58_address


@pytest.fixture
async def server(tmp_path):
    config = ChainConfig(data_dir=tmp_path / "chain", port=0, block_time=3600.0, instant=True)
    srv = ChainServer(LocalChain.create(fast_genesis(), config.data_dir), config)
    await srv.start()
    yield srv
    await srv.stop()


async def _rpc(port: int, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"http://127.0.0.1:{port}/rpc", json=body, timeout=aiohttp.ClientTimeout(total=10)
        ) as resp:
            return resp.status, await resp.json(content_type=None)


async def test_batch_answers_each_entry_and_refuses_malformed_batches(server):
    chain = server.chain
    before = (chain.block, dict(chain.state.balances), dict(chain.state.nonces))
    transfer = ComposedCall("Balances", "transfer_keep_alive", {"dest": BOB, "value": 10**9})
    signed = sign(transfer, ALICE, None, chain.genesis_hash).to_dict()
    calls = [
        {
            "method": "query",
            "params": {"module": "System", "item": "Account", "params": [ALICE.ss58_address]},
        },  # fmt: skip
        {"method": "drop_tables", "params": {}},
        {"method": "query", "params": {"nope": 1}},
        {"method": "submit", "params": {"extrinsic": signed}},
        {"method": "batch", "params": {"calls": []}},
        "not an object",
        {"method": "info"},
    ]
    status, body = await _rpc(server.port, {"method": "batch", "params": {"calls": calls}})
    assert status == 200
    entries = body["result"]
    assert len(entries) == len(calls)
    direct = (await _rpc(server.port, {"method": "query", "params": calls[0]["params"]}))[1]
    assert entries[0] == direct and entries[0]["result"]["data"]["free"] > 0
    expected = [None, (404, "unknown_method"), (400, "bad_params"), (400, "bad_request"),
                (400, "bad_request"), (400, "bad_request"), None]  # fmt: skip
    for entry, want in zip(entries, expected, strict=True):
        if want is None:
            assert "result" in entry
        else:
            assert (entry["error"]["status"], entry["error"]["error"]) == want, entry
            assert entry["error"]["message"]
    assert entries[6]["result"]["block"] == chain.block
    for params in ({"calls": []}, {"calls": "x"}, [], {"calls": [{"method": "info"}] * 257}):
        status, body = await _rpc(server.port, {"method": "batch", "params": params})
        assert status == 400 and body["error"] == "bad_params", body
    assert MAX_BATCH_CALLS == 256
    # The submission inside the batch was refused, not applied: nothing changed.
    assert (chain.block, chain.state.balances, chain.state.nonces) == before


async def test_http_node_coalesces_one_turn_of_reads(server):
    node = HttpNode(f"http://127.0.0.1:{server.port}")
    try:
        items = ["Tempo", "MaxAllowedUids", "ImmunityPeriod", "Kappa"]
        direct = [await node.call("query", {"module": "SubtensorModule", "item": i,
                                            "params": [0]}) for i in items]  # fmt: skip
        requests, calls = node.requests, node.calls
        assert (requests, calls) == (4, 4)  # one at a time: plain requests
        together = await asyncio.gather(
            *(
                node.call("query", {"module": "SubtensorModule", "item": i, "params": [0]})
                for i in items
            ),  # fmt: skip
            node.call("query", {"module": "SubtensorModule"}),  # refused: no item
            node.call("info", {}),
            return_exceptions=True,
        )
        assert node.requests == requests + 1 and node.calls == calls + 6
        assert together[:4] == direct
        assert isinstance(together[4], bt.ChainError) and "refused query" in str(together[4])
        assert together[5]["block"] == server.chain.block
    finally:
        await node.close()


async def test_a_batch_over_the_size_limit_goes_call_by_call(tmp_path):
    config = ChainConfig(data_dir=tmp_path / "chain", port=0, block_time=3600.0, instant=True,
                         max_request_bytes=48 * 1024)  # fmt: skip
    srv = ChainServer(LocalChain.create(fast_genesis(), config.data_dir), config)
    await srv.start()
    node = HttpNode(f"http://127.0.0.1:{srv.port}")
    try:
        # Each read is ~32 KB: alone it fits the limit, two in one batch do not.
        big = {"module": "SubtensorModule", "item": "Tempo", "param_sets": [[0]] * 8000}
        answers = await asyncio.gather(
            node.call("query_batch", big), node.call("query_batch", big), node.call("info", {})
        )
        assert answers[0] == answers[1] and len(answers[0]) == 8000
        assert answers[2]["block"] == srv.chain.block
        assert node.requests == 4  # the refused batch, then each call alone
    finally:
        await node.close()
        await srv.stop()


async def test_sdk_set_weights_over_http_uses_few_requests(server, make_wallet):
    from subnet.chain.devnet import bootstrap_subnet

    owner, v1 = make_wallet("owner"), make_wallet("v1")
    async with make_client(f"localchain://127.0.0.1:{server.port}") as client:
        netuid = await bootstrap_subnet(client, server.chain, owner, [v1], [], stake_tao=10)
        node = client._substrate.node
        await client.execute(bt.SetWeights(netuid=netuid, weights={0: 1.0, 1: 1.0}), v1)
        requests, calls = node.requests, node.calls
        server.chain.produce_blocks(int(server.chain.genesis.subnet["weights_rate_limit"]))
        result = await client.execute(bt.SetWeights(netuid=netuid, weights={0: 1.0, 1: 3.0}), v1)
        assert result.success, result.message
        # plan: head, 7 preflight reads in one batch, two more reads; then the submission.
        assert node.requests - requests <= 5 < node.calls - calls
        rows = await client.query_map(bt.storage.SubtensorModule.Weights, [netuid])
        assert dict(rows)[1] == [[0, 21845], [1, 65535]]


async def test_cached_reads_follow_the_state(server):
    chain, cache = server.chain, server.runner.app[CACHE_KEY]
    chain.fund(ALICE.ss58_address, 1000)
    register = ComposedCall("SubtensorModule", "register_network", {"hotkey": ALICE.ss58_address})
    chain.dispatch(ALICE.ss58_address, register, False)
    chain.produce_blocks(1)
    netuid = max(chain.state.subnets)
    tempo = {"module": "SubtensorModule", "item": "Tempo", "params": []}
    node = HttpNode(f"http://127.0.0.1:{server.port}")
    try:
        first = dict(await node.call("query_map", tempo))
        hits, misses = cache.hits, cache.misses
        assert dict(await node.call("query_map", tempo)) == first
        assert (cache.hits, cache.misses) == (hits + 1, misses)  # same state: from the cache
        chain.produce_blocks(1)
        assert dict(await node.call("query_map", tempo)) == first
        assert cache.misses == misses + 1  # a new block: computed again
        # A mutation with no block (tools, tests) is seen too: every mutation touches.
        chain.state.subnets[netuid].hparams["tempo"] = 77
        chain.state.touch("subnet", netuid)
        assert dict(await node.call("query_map", tempo))[netuid] == 77
    finally:
        await node.close()


async def test_local_block_hashes_match_the_chain(server):
    chain = server.chain
    chain.produce_blocks(3)
    async with make_client(f"localchain://127.0.0.1:{server.port}") as client:
        substrate = client._substrate
        head = await substrate.block_number()
        requests = substrate.node.requests
        local = [await substrate.block_hash(n) for n in range(head + 1)]
        assert substrate.node.requests == requests  # all computed locally
        assert local == [chain.hash_of(n) for n in range(head + 1)]
        assert await substrate.block_hash(head + 5) is None  # asked: not a block yet
        assert await substrate.block_hash(None) == chain.hash_of(chain.block)
        assert substrate.node.requests == requests + 2
    body = json.dumps({"method": "block_hash", "params": {"block": head}})
    assert json.loads(body)  # the server's own answer agrees
    assert (await _rpc(server.port, json.loads(body)))[1]["result"] == local[head]
