"""JSON via msgspec: readable on the wire, handy for debugging and for non-Python peers."""

from __future__ import annotations

from typing import Final

import msgspec

from qrpc_codecs._msgspec import MsgspecCodec

__all__ = ["codec"]

codec: Final = MsgspecCodec("json", msgspec.json.Encoder(), msgspec.json.Decoder)
