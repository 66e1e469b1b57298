"""Protocol version and the hard ceilings on every size; a server may enforce tighter ones
(its expert card says which)."""

PROTOCOL_VERSION = 1
# Sent by every signed client so a server can refuse another protocol version before it spends
# a signature check (and before it reads the body); the body's "version" field still counts.
PROTOCOL_HEADER = "X-Dmoe-Protocol"

MAX_PROMPT_CHARS = 32_768
MAX_MESSAGES = 64
MAX_NEW_TOKENS = 4_096
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 64
MAX_TOP_LOGPROBS = 20
MAX_SCORE_TOKENS = 8_192
MAX_REQUEST_ID_CHARS = 64
MAX_DOMAINS = 16
ROLES = ("system", "user", "assistant")
FINISH_REASONS = ("stop", "length", "eos", "cancelled", "error")
