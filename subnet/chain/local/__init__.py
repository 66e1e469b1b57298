"""The dmoe local chain: a subtensor-like state machine behind the SDK's `Substrate` seam."""

from subnet.chain.local.adapter import ChainSubstrate, InProcessNode
from subnet.chain.local.api import ChainApi
from subnet.chain.local.chain import LocalChain
from subnet.chain.local.genesis import Genesis, GenesisError

__all__ = ["ChainApi", "ChainSubstrate", "Genesis", "GenesisError", "InProcessNode", "LocalChain"]
