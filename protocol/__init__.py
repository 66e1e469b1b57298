"""dmoe wire protocol: typed, versioned, validated messages. Imports neither torch nor bittensor."""

from protocol.card import ErrorBody, ExpertCard
from protocol.limits import (
    FINISH_REASONS,
    MAX_NEW_TOKENS,
    MAX_SCORE_TOKENS,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
)
from protocol.messages import (
    ChatMessage,
    GenerateChunk,
    GenerateRequest,
    GenerateResponse,
    Timings,
    TokenLogprob,
    Usage,
    new_request_id,
)
from protocol.score import ScoreRequest, ScoreResponse
from protocol.validate import MAX_BODY_BYTES, ProtocolError, check_version_header, decode_json

__all__ = [
    "FINISH_REASONS",
    "MAX_BODY_BYTES",
    "MAX_NEW_TOKENS",
    "MAX_SCORE_TOKENS",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "ChatMessage",
    "ErrorBody",
    "ExpertCard",
    "GenerateChunk",
    "GenerateRequest",
    "GenerateResponse",
    "ProtocolError",
    "ScoreRequest",
    "ScoreResponse",
    "Timings",
    "TokenLogprob",
    "Usage",
    "check_version_header",
    "decode_json",
    "new_request_id",
]
