"""dmoe: a Bittensor subnet serving a decentralized mixture of experts."""

__version__ = "0.1.0"
