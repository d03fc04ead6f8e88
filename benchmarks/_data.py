"""The msgpack encoders and decoders of the contenders that are not qrpc.

The messages themselves -- `Payload` sized to an exact body, `Echo`, `Sync`,
`SyncReply`, `Ack` and their cmd_ids -- are `qrpc.bench.messages`, shared
with ``qrpc bench``, so every contender carries byte-identical bodies.
"""

from __future__ import annotations

from typing import Final

import msgspec

from qrpc.bench.messages import Echo, Payload, Sync, SyncReply

__all__ = ["DECODE_ECHO", "DECODE_PAYLOAD", "DECODE_REPLY", "ENCODE", "SYNC_BODY"]

ENCODE: Final = msgspec.msgpack.Encoder().encode
DECODE_ECHO: Final = msgspec.msgpack.Decoder(Echo).decode
DECODE_PAYLOAD: Final = msgspec.msgpack.Decoder(Payload).decode
DECODE_REPLY: Final = msgspec.msgpack.Decoder(SyncReply).decode
SYNC_BODY: Final = ENCODE(Sync())
"""The msgpack body of `Sync()`."""
