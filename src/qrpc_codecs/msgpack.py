"""The default codec: MessagePack via msgspec (compact and the fastest here)."""

from __future__ import annotations

from typing import Final

import msgspec

from qrpc_codecs._msgspec import MsgspecCodec

__all__ = ["codec"]

codec: Final = MsgspecCodec("msgpack", msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder)
