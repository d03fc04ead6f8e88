"""The messages qrpc's benchmarks send.

``qrpc bench codecs`` times these when it is given no Struct of its own.
They are deterministic (a seeded RNG), so two runs encode the same bytes and encoded
sizes compare across machines (the shapes follow msgspec's own benchmarks):

- ``typical``: six fields -- int, str, float, list of 10 ints, bool, 64 bytes;
- ``large``: a 64 KiB bytes field plus a list of 1,000 small Structs;
- ``blob``: one 64 KiB bytes field, the only shape the ``raw`` codec carries.

The transport benchmarks (``qrpc bench transport`` and every contender of
the source tree's ``benchmarks/``) exchange `Payload`, `Echo`, `Sync`,
`SyncReply` and `Ack` under fixed cmd_ids, with `Payload` sized so that its
msgpack body is exactly the requested number of bytes: every contender
carries byte-identical bodies.
"""

from __future__ import annotations

import random
from typing import Final

import msgspec

from qrpc.registry import Registry

__all__ = [
    "ACK",
    "ECHO",
    "FIRST_SEQ",
    "PAYLOAD",
    "SIZES",
    "SYNC",
    "SYNC_REPLY",
    "Ack",
    "Blob",
    "Echo",
    "Item",
    "Large",
    "Payload",
    "Sync",
    "SyncReply",
    "Typical",
    "blob",
    "large",
    "make_payload",
    "payload_data",
    "transport_registry",
    "typical",
]


class Typical(msgspec.Struct):
    """About six fields: what most application messages look like."""

    count: int
    name: str
    ratio: float
    values: list[int]
    flag: bool
    blob: bytes


class Item(msgspec.Struct):
    """One element of `Large.items`."""

    id: int
    name: str
    score: float
    active: bool


class Large(msgspec.Struct):
    """A 64 KiB bytes field plus a list of 1,000 small Structs."""

    blob: bytes
    items: list[Item]


def typical(seed: int = 1) -> Typical:
    """The typical message (164 bytes of msgpack)."""
    rng = random.Random(seed)
    return Typical(
        count=rng.randrange(1 << 20, 1 << 30),
        name="sensor-" + "".join(rng.choice("abcdefghij") for _ in range(9)),
        ratio=rng.random() * 1000,
        values=[rng.randrange(0, 1 << 16) for _ in range(10)],
        flag=True,
        blob=rng.randbytes(64),
    )


def large(seed: int = 2) -> Large:
    """The large message (about 110 KiB of msgpack)."""
    rng = random.Random(seed)
    items = [
        Item(
            id=index,
            name="item-" + "".join(rng.choice("klmnopqrst") for _ in range(6)),
            score=rng.random(),
            active=bool(index % 2),
        )
        for index in range(1000)
    ]
    return Large(blob=rng.randbytes(64 * 1024), items=items)


class Blob(msgspec.Struct):
    """A single bytes field: the one shape every codec, ``raw`` included, carries."""

    data: bytes


def blob(seed: int = 3) -> Blob:
    """64 KiB of bytes in a one-field Struct."""
    return Blob(random.Random(seed).randbytes(64 * 1024))


SIZES: Final = {"typical": typical, "large": large, "blob": blob}
"""The built-in messages by name (``qrpc bench codecs --size``)."""


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


_ENCODE: Final = msgspec.msgpack.Encoder().encode


def payload_data(size: int) -> bytes:
    """The `data` field that makes a `Payload`/`Echo` body exactly `size` bytes."""
    rng = random.Random(size)
    overhead = len(_ENCODE(Payload(FIRST_SEQ, b"")))
    for length in range(max(0, size - overhead - 5), size + 1):
        data = rng.randbytes(length)
        if len(_ENCODE(Payload(FIRST_SEQ, data))) == size:
            return data
    raise ValueError(f"no Payload encodes to exactly {size} bytes")


def make_payload(size: int) -> Payload:
    """A `Payload` whose msgpack body is `size` bytes."""
    return Payload(FIRST_SEQ, payload_data(size))


def transport_registry() -> Registry:
    """The registry of the transport messages."""
    registry = Registry()
    registry.register(PAYLOAD, Payload)
    registry.register(ECHO, Echo)
    registry.register(SYNC, Sync)
    registry.register(SYNC_REPLY, SyncReply)
    registry.register(ACK, Ack)
    return registry
