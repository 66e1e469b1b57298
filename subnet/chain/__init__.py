"""The chain seam: `make_client` is the ONE place that picks the local chain or a real network.

    from subnet.chain import make_client
    client = make_client("local")                       # the `dmoe chain` at the default endpoint
    client = make_client("localchain://127.0.0.1:9944") # a `dmoe chain` server
    client = make_client("finney")                      # or "test", or "ws(s)://host:port"
    client = make_client("local", chain=chain)          # an in-process LocalChain (tests, tools)
    async with client: ...                              # a plain `bt.Client`

Everything above this function (intents, reads, metagraph) is the real SDK and identical for
local and real networks; nothing else in the project may branch on "local".

In-process chain (tests, tools, benchmarks):

    from subnet.chain import Genesis, LocalChain
    chain = LocalChain.create(Genesis.load().with_subnet(tempo=10), data_dir=None)  # in-memory
    chain.fund(wallet.coldkeypub.ss58_address, 1000)  # TAO
    chain.produce_blocks(12)                          # manual blocks; epochs run when due
    chain.block                                       # head height

Submissions seal their own block at once (instant seal) unless `chain.start(block_time)` runs
the timer. `subnet.chain.devnet.bootstrap_subnet(client, chain, owner, validators, miners,
stake_tao)` creates and starts a subnet, registers everyone, stakes the validators and makes
blocks until they hold permits; pytest fixtures wrap it in `tests/fixtures_chain.py`
(`local_chain`, `chain_client`). Commitments (miners publish their expert card this way):
`commitment_info(data)` builds the `Commitments.set_commitment` argument.

The server: `dmoe chain --data-dir DIR --port PORT [--genesis FILE] [--block-time S]`, funded
with `dmoe chain faucet --data-dir DIR --port PORT SS58... [--amount TAO]`; the SDK's own btcli
runs against it as `dmoe btcli ...`. Sudo on the local chain is the dev key `//Alice`
(`dev_sudo_keypair()`), for root-only hyperparameters via `Sudo.sudo`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from subnet.chain.commitments import commitment_info, decode_commitment
from subnet.chain.local.genesis import Genesis, GenesisError

if TYPE_CHECKING:
    import bittensor as bt

    from subnet.chain.local.chain import LocalChain

LOCAL_LABEL = "local"  # network label for local chains: keeps the SDK's caches apart from finney
LOCAL_SCHEME = "localchain://"
DEFAULT_LOCAL_URL = "localchain://127.0.0.1:9944"


def is_local(network_or_endpoint: str) -> bool:
    return network_or_endpoint == LOCAL_LABEL or network_or_endpoint.startswith(LOCAL_SCHEME)


def local_http_url(network_or_endpoint: str) -> str:
    """`local` / `localchain://host:port` -> the server's base URL."""
    endpoint = DEFAULT_LOCAL_URL if network_or_endpoint == LOCAL_LABEL else network_or_endpoint
    return "http://" + endpoint[len(LOCAL_SCHEME) :].rstrip("/")


def local_substrate(network_or_endpoint: str = LOCAL_LABEL, *, chain: LocalChain | None = None):
    """The SDK `Substrate` for a local chain: in-process if `chain` is given, else remote."""
    from subnet.chain.local.adapter import ChainSubstrate, InProcessNode
    from subnet.chain.local.api import ChainApi

    if chain is not None:
        return ChainSubstrate(InProcessNode(ChainApi(chain)))
    from subnet.chain.local.remote import HttpNode

    return ChainSubstrate(HttpNode(local_http_url(network_or_endpoint)))


def make_client(
    network_or_endpoint: str, *, chain: LocalChain | None = None, **kwargs: Any
) -> bt.Client:
    """A `bt.Client` for `local` / `localchain://h:p` / `finney` / `test` / `ws(s)://…`.

    `chain=` an in-process `LocalChain` wins over the endpoint. Extra keyword arguments go to
    `bt.Client` for real networks (e.g. `fallback_endpoints`).
    """
    import bittensor as bt

    if chain is not None or is_local(network_or_endpoint):
        return bt.Client(LOCAL_LABEL, substrate=local_substrate(network_or_endpoint, chain=chain))
    return bt.Client(network_or_endpoint, **kwargs)


def dev_sudo_keypair(genesis: Genesis | None = None):
    """The local chain's sudo key (a well-known dev URI; meaningless on real networks)."""
    from bittensor_core import Keypair

    return Keypair.create_from_uri((genesis or Genesis()).sudo_uri)


def __getattr__(name: str):  # lazy: importing subnet.chain must stay cheap
    if name == "LocalChain":
        from subnet.chain.local.chain import LocalChain

        return LocalChain
    raise AttributeError(name)


__all__ = [
    "DEFAULT_LOCAL_URL",
    "LOCAL_LABEL",
    "Genesis",
    "GenesisError",
    "LocalChain",
    "commitment_info",
    "decode_commitment",
    "dev_sudo_keypair",
    "is_local",
    "local_substrate",
    "make_client",
]
