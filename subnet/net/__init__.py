"""Signed HTTP between neurons: btauth/1 (bittensor.http_auth) for aiohttp servers and clients."""

from subnet.net.auth import CALLER, RAW_BODY, btauth_middleware, error_response
from subnet.net.client import SignedClient

__all__ = ["CALLER", "RAW_BODY", "SignedClient", "btauth_middleware", "error_response"]
