"""The messages ``qrpc bench codecs`` times when it is given no Struct of its own.

Deterministic (a seeded RNG), so two runs encode the same bytes and encoded
sizes compare across machines (the shapes follow msgspec's own benchmarks):

- ``typical``: six fields -- int, str, float, list of 10 ints, bool, 64 bytes;
- ``large``: a 64 KiB bytes field plus a list of 1,000 small Structs;
- ``blob``: one 64 KiB bytes field, the only shape the ``raw`` codec carries.
"""

from __future__ import annotations

import random
from typing import Final

import msgspec

__all__ = ["SIZES", "Blob", "Item", "Large", "Typical", "blob", "large", "typical"]


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
