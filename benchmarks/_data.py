"""Message types and generators shared by the benchmarks (msgspec's ``generate_data.py``).

Everything here is deterministic (a seeded RNG), so two runs encode the
same bytes and codec sizes are comparable across machines.

The codec benchmark's messages are `qrpc.bench.messages` (shipped with
``qrpc bench codecs``).  Transport benchmarks (`bench_transport`): `Payload` sized so that its
msgpack body is exactly the requested number of bytes (100 B, 64 B, 64 KiB,
1 KiB), plus the control messages the contenders exchange.  The cmd_ids
below are used both by the qrpc registry and by the raw-aioquic and other
contenders' framing, so every contender carries byte-identical bodies.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Final

import msgspec

if TYPE_CHECKING:
    import qrpc

__all__ = [
    "ACK",
    "ECHO",
    "PAYLOAD",
    "SYNC",
    "SYNC_REPLY",
    "Ack",
    "Echo",
    "Payload",
    "Sync",
    "SyncReply",
    "make_payload",
    "payload_data",
    "transport_registry",
]

# -- transport benchmark messages -----------------------------------------------------

PAYLOAD: Final = 1
ECHO: Final = 2
SYNC: Final = 3
SYNC_REPLY: Final = 4
ACK: Final = 5

FIRST_SEQ: Final = 1 << 24
"""Sequence numbers start here so that every one encodes in 5 bytes (constant body size)."""


class Payload(msgspec.Struct):
    """A one-way message of a chosen encoded size (cmd_id 1)."""

    seq: int
    data: bytes


class Echo(msgspec.Struct):
    """A request answered with itself (cmd_id 2): request/reply latency."""

    seq: int
    data: bytes


class Sync(msgspec.Struct):
    """A request answered once every earlier message was handled (cmd_id 3)."""


class SyncReply(msgspec.Struct):
    """How many Payloads the receiver handled since the last Sync (cmd_id 4)."""

    count: int


class Ack(msgspec.Struct):
    """A broadcast receiver's acknowledgement (cmd_id 5)."""

    seq: int


_ENCODER: Final = msgspec.msgpack.Encoder()

# The contenders that are not qrpc encode and decode the same bodies with these.
ENCODE: Final = _ENCODER.encode
DECODE_ECHO: Final = msgspec.msgpack.Decoder(Echo).decode
DECODE_PAYLOAD: Final = msgspec.msgpack.Decoder(Payload).decode
DECODE_REPLY: Final = msgspec.msgpack.Decoder(SyncReply).decode
SYNC_BODY: Final = ENCODE(Sync())
"""The msgpack body of `Sync()`."""


def payload_data(size: int) -> bytes:
    """The `data` field that makes a `Payload`/`Echo` body exactly `size` bytes."""
    rng = random.Random(size)
    overhead = len(_ENCODER.encode(Payload(FIRST_SEQ, b"")))
    for length in range(max(0, size - overhead - 5), size + 1):
        data = rng.randbytes(length)
        if len(_ENCODER.encode(Payload(FIRST_SEQ, data))) == size:
            return data
    raise ValueError(f"no Payload encodes to exactly {size} bytes")


def make_payload(size: int) -> Payload:
    """A `Payload` whose msgpack body is `size` bytes."""
    return Payload(FIRST_SEQ, payload_data(size))


def transport_registry() -> qrpc.Registry:
    """The `qrpc.Registry` of the transport messages (imported lazily: codec
    benchmarks do not need qrpc)."""
    import qrpc

    registry = qrpc.Registry()
    registry.register(PAYLOAD, Payload)
    registry.register(ECHO, Echo)
    registry.register(SYNC, Sync)
    registry.register(SYNC_REPLY, SyncReply)
    registry.register(ACK, Ack)
    return registry
