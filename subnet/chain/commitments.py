"""Commitments (the Commitments pallet): how miners publish their expert card on chain.

Subtensor stores up to 3 fields of `Raw0..Raw128` bytes per hotkey and subnet, so at most 384
bytes: publish a compact card (or a hash and a URL). Works on any network:

    info = commitment_info(card_json_bytes)
    await client.submit_call(bt.calls.Commitments.set_commitment(netuid, info), wallet_hotkey)
    metagraph.commitments[uid].data   # the text back, as the SDK decodes it
"""

from __future__ import annotations

MAX_FIELDS = 3
MAX_RAW = 128


def commitment_info(data: bytes | str) -> dict:
    """The `info` argument of `Commitments.set_commitment` for `data` (<= 384 bytes)."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_FIELDS * MAX_RAW:
        raise ValueError(
            f"commitment is {len(raw)} bytes; the chain stores at most {MAX_FIELDS * MAX_RAW}"
        )
    chunks = [raw[i : i + MAX_RAW] for i in range(0, len(raw), MAX_RAW)] or [b""]
    return {"fields": [[{f"Raw{len(c)}": c}] for c in chunks]}


def decode_commitment(fields: list) -> bytes:
    """Concatenate the Raw payloads of decoded commitment fields (`[{"RawN": "0x…"}]`)."""
    out = b""
    for entry in fields:
        for item in entry if isinstance(entry, list) else [entry]:
            if isinstance(item, dict):
                for variant, value in item.items():
                    if variant.startswith("Raw") and isinstance(value, str):
                        out += bytes.fromhex(value.removeprefix("0x"))
    return out
